"""The lake: where full loads, change sets and manifests are published.

Keys (seed-compatible): `{prefix}/full-load/{table}/{table}.parquet` (the latest full table) and
`{prefix}/cdc/{table}/{table}_{run_id}.parquet` with `run_id` = `YYYYMMDD_HHMMSS` (UTC). Besides them:
`{prefix}/base/{table}/{table}_{run_id}.parquet`, the table's first full load, kept for replay, and
`{prefix}/manifests/{table}/{table}_{run_id}.json`, the commit marker of each capture, written last.
Keys are deterministic, so a retried upload overwrites instead of duplicating.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from .config import LakeConfig
from .errors import LakeError, NotAvailableError


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file, as manifests record it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def full_load_key(table: str) -> str:
    return f"full-load/{table}/{table}.parquet"


def cdc_key(table: str, run_id: str) -> str:
    return f"cdc/{table}/{table}_{run_id}.parquet"


def base_key(table: str, run_id: str) -> str:
    return f"base/{table}/{table}_{run_id}.parquet"


def manifest_key(table: str, run_id: str) -> str:
    return f"manifests/{table}/{table}_{run_id}.json"


class Lake(Protocol):
    """A place that stores files under keys relative to the lake's root."""

    url: str

    def put(self, local: Path, key: str) -> None: ...

    def get(self, key: str, local: Path) -> Path: ...

    def list(self, prefix: str) -> list[str]: ...

    def local(self, key: str, folder: Path) -> Path: ...


class LocalLake:
    """A folder as the lake; every write is atomic (temporary file + rename)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def put(self, local: Path, key: str) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            os.close(fd)
            shutil.copyfile(local, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            raise LakeError(f"Cannot write {key} into the lake {self.url} ({exc.strerror or exc}) — check the "
                            "folder exists and is writable") from exc

    def get(self, key: str, local: Path) -> Path:
        source = self._path(key)
        if not source.is_file():
            raise LakeError(f"The lake {self.url} has no {key} — was it captured into another lake?")
        shutil.copyfile(source, local)
        return Path(local)

    def local(self, key: str, folder: Path) -> Path:
        """A local path to read `key` from: the lake's own file (no copy)."""
        path = self._path(key)
        if not path.is_file():
            raise LakeError(f"The lake {self.url} has no {key} — was it captured into another lake?")
        return path

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith(".upload-"))


def make_lake(config: LakeConfig) -> Lake:
    """The lake a config names."""
    if config.is_s3:
        raise NotAvailableError(f"The S3 lake ({config.url}) is not available yet in this version — use a local "
                                'folder for now: "lake": "lake"')
    return LocalLake(config.path)
