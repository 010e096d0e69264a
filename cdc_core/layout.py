"""The lake's layout: which keys exist, what a key means, and what a manifest must hold to be believed.

Keys (seed-compatible): `full-load/{table}/{table}.parquet`, `cdc/{table}/{table}_{run_id}.parquet`,
`base/{table}/{table}_{run_id}.parquet`, `manifests/{table}/{table}_{run_id}.json`; the log's own keys under
`commits/` (see `chain`). Every key read from a manifest must match this layout exactly (`parse_key`), a manifest
must name the table and run of its own key and list only that run's files (`check_manifest`), and a key never
resolves outside the lake's folder or a download folder (`inside`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import LakeError


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file, as manifests record it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


RUN_ID = r"\d{8}_\d{6}"
RUN_ID_FORMAT = "%Y%m%d_%H%M%S"  # a run id is its UTC start, to the second
TABLE = r"[A-Za-z0-9_-]+"
_KEY = re.compile(rf"(?P<kind>full-load|cdc|base|manifests)/(?P<table>{TABLE})/(?P=table)"
                  rf"(?:_(?P<run>{RUN_ID}))?\.(?P<ext>parquet|json)")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class LakeKey:
    """A key of the lake layout, taken apart."""

    kind: str  # full-load | cdc | base | manifests
    table: str
    run_id: str | None


def parse_key(key: str) -> LakeKey:
    """Take a lake key apart; anything that is not exactly one of the layout's keys raises `LakeError`."""
    match = _KEY.fullmatch(key) if isinstance(key, str) else None
    ok = match is not None and (
        (match["kind"] == "full-load") == (match["run"] is None)
        and (match["ext"] == "json") == (match["kind"] == "manifests"))
    if not ok:
        raise LakeError(f"{key!r} is not a key of the lake layout — the lake is damaged or was written by something "
                        "else: nothing was read from it")
    return LakeKey(match["kind"], match["table"], match["run"])


def full_load_key(table: str) -> str:
    return f"full-load/{table}/{table}.parquet"


def cdc_key(table: str, run_id: str) -> str:
    return f"cdc/{table}/{table}_{run_id}.parquet"


def base_key(table: str, run_id: str) -> str:
    return f"base/{table}/{table}_{run_id}.parquet"


def manifest_key(table: str, run_id: str) -> str:
    return f"manifests/{table}/{table}_{run_id}.json"


def link_key(table: str, parent: str | None) -> str:
    """The commit point of the run after `parent`: created once, it holds that run's manifest."""
    return f"commits/{table}/{table}_{parent or 'root'}.json"


def inside(folder: Path, key: str) -> Path:
    """`folder/key` as a path, refusing any key that would resolve outside `folder`."""
    root = Path(folder).resolve()
    path = root.joinpath(*key.split("/")).resolve()
    if not path.is_relative_to(root) or path == root:
        raise LakeError(f"{key!r} would resolve outside {root} — the lake is damaged or was written by something "
                        "else: nothing was read or written")
    return path


def check_manifest(manifest: object, key: str, url: str = "the lake") -> dict:
    """A manifest that belongs to its key: its table and run, only that run's files, well-formed entries."""
    where = parse_key(key)

    def bad(what: str) -> LakeError:
        return LakeError(f"Manifest {key} in {url} is damaged ({what}) — restore it from a backup; nothing was read "
                         "from it")

    if where.kind != "manifests" or not isinstance(manifest, dict):
        raise bad("not a manifest object")
    if manifest.get("table") != where.table or manifest.get("run_id") != where.run_id:
        raise bad("it names another table or run than its key")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise bad('"files" is not a list of files')
    for item in files:
        part = parse_key(item.get("key"))
        if part.table != where.table or part.kind == "manifests" or part.run_id not in (None, where.run_id):
            raise bad(f"it lists {item.get('key')!r}, which is not a file of this run")
        if not isinstance(item.get("sha256"), str) or not _SHA256.fullmatch(item["sha256"]):
            raise bad(f"the checksum of {item['key']} is not a SHA-256")
    if not isinstance(manifest.get("columns"), dict) or not isinstance(manifest.get("pk"), list):
        raise bad('"columns" or "pk" is missing')
    return manifest


def manifest_file(manifest: dict, kind: str) -> str:
    """The key of the `kind` file ("cdc", "base", "full-load") that a checked manifest lists."""
    for item in manifest["files"]:
        if parse_key(item["key"]).kind == kind:
            return item["key"]
    raise LakeError(f'Manifest of run {manifest["run_id"]} ({manifest["table"]}) lists no {kind}/ file — the '
                    "lake is damaged")


def full_load_file(manifest: dict) -> dict:
    """The full-load entry (key, bytes, sha256, rows) of a checked manifest: the table as of its run."""
    return next(f for f in manifest["files"] if f["key"] == full_load_key(manifest["table"]))
