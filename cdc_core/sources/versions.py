"""Per-table versions of file sources (http, s3) carried in one `Fetch.version` string.

A file source knows one version per table (an ETag, a Last-Modified date, a checksum). The pipeline records one
source version per capture and hands the latest back as `last_version`, so the per-table versions travel as one
canonical JSON object (sorted keys, no spaces): equal versions are equal strings, and the validators of the
version each table was captured at come back to the source on the next cycle.
"""

from __future__ import annotations

import json
from typing import Any


def encode(per_table: dict[str, Any]) -> str:
    """The canonical string of a {table: version} mapping."""
    return json.dumps(per_table, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def decode(version: str | None) -> dict[str, Any]:
    """The {table: version} mapping a string holds; empty for None or a string some other source wrote."""
    if not version:
        return {}
    try:
        found = json.loads(version)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
