"""The `table_format` key and the `iceberg` block: the open table format kept in the lake next to its files."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .fields import _check_keys, _choice

TABLE_FORMATS = ("delta", "iceberg")
ICEBERG_KEYS = {"namespace", "catalog"}


@dataclass(frozen=True)
class TableFormatConfig:
    """The open table format kept in the lake next to its files: `delta` or `iceberg` (with its catalog)."""

    name: str
    namespace: str = "cdc"
    catalog: dict[str, str] = field(default_factory=dict, hash=False)  # pyiceberg catalog properties


def _table_format(raw: dict) -> TableFormatConfig | None:
    """`"table_format": "delta" | "iceberg"` and the `"iceberg"` block; an S3 lake needs an explicit catalog."""
    name, iceberg = raw.get("table_format"), raw.get("iceberg")
    if iceberg is not None and not isinstance(iceberg, dict):
        raise ConfigError('Config key "iceberg" must be an object like {"namespace": "cdc", "catalog": {"type": '
                          '"glue"}}')
    iceberg = iceberg or {}
    _check_keys(iceberg, ICEBERG_KEYS, "iceberg.")
    if name is None:
        return None
    name = _choice(name, TABLE_FORMATS, "table_format")
    namespace = iceberg.get("namespace", "cdc")
    if not isinstance(namespace, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", namespace):
        raise ConfigError(f'Config key "iceberg.namespace" is {namespace!r} — use letters, digits and "_" '
                          '(e.g. "cdc")')
    catalog: Any = iceberg.get("catalog", {})
    if not isinstance(catalog, dict) or not all(isinstance(v, str | int | float | bool) for v in catalog.values()):
        raise ConfigError('Config key "iceberg.catalog" must be an object of pyiceberg catalog properties, e.g. '
                          '{"type": "glue", "glue.region": "us-east-1"}')
    catalog = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in catalog.items()}
    lake = raw.get("lake") if isinstance(raw.get("lake"), str) else ""
    if name == "iceberg" and not catalog and (lake.startswith("s3://") or (raw.get("lake") is None)):
        raise ConfigError('Config key "iceberg.catalog" is missing: an S3 lake needs an explicit Iceberg catalog — '
                          'add "iceberg": {"catalog": {"type": "glue"}} (or a SQL or REST catalog)')
    return TableFormatConfig(name=name, namespace=namespace, catalog=catalog)
