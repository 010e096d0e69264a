"""The lake: where full loads, change sets and manifests are published — a folder (`LocalLake`) or S3 (`S3Lake`).

What the keys are and what a manifest must hold to be believed is `layout`; how runs commit is
`chain` and `commit`. Every local write is atomic (a temporary file renamed into place) and flushed to disk.
Manifests never change once written, so each is read once per process (`read_manifests`).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .config import LakeConfig
from .durable import fsync_dir, hold_lock
from .errors import LakeError
from .layout import check_manifest, inside, sha256

SWAP_WAIT = 30.0  # seconds a local compare-and-swap waits for a writer holding the same key's lock
_manifest_cache: dict[tuple[str, str], dict] = {}
_cache_lock = threading.Lock()


class Lake(Protocol):
    """A place that stores files under keys relative to the lake's root."""

    url: str

    def put(self, local: Path, key: str, on_bytes: Callable[[int], None] | None = None) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def local(self, key: str, folder: Path) -> Path: ...

    def read(self, key: str) -> bytes: ...

    def get(self, key: str) -> bytes | None: ...

    def create(self, local: Path, key: str, on_bytes: Callable[[int], None] | None = None,
               digest: str | None = None) -> bool:
        """Put `local` (whose SHA-256 is `digest`, when known) at `key` only if absent; False if it exists."""
        ...

    def checksum(self, key: str) -> str | None: ...

    def delete(self, key: str) -> None: ...

    def version(self, key: str) -> str | None:
        """An opaque tag that changes whenever `key` is replaced (S3: its ETag); None if absent."""
        ...

    def swap(self, local: Path, key: str, expected: str | None, digest: str | None = None) -> bool:
        """Replace `key` with `local` (whose SHA-256 is `digest`, when known) only if its `version` is still
        `expected` (None: only if absent); False if another writer replaced it first (compare-and-swap)."""
        ...


def read_manifests(lake: Lake, table: str) -> list[dict]:
    """The checked manifests of `table`'s committed runs, oldest first (each read once per process)."""
    found = []
    for key in lake.list(f"manifests/{table}/"):
        if not key.endswith(".json") or key.rsplit("/", 1)[-1].startswith("."):
            continue
        with _cache_lock:
            manifest = _manifest_cache.get((lake.url, key))
        if manifest is None:
            manifest = parse_manifest(lake, key, lake.read(key))
            with _cache_lock:
                _manifest_cache[(lake.url, key)] = manifest
        found.append(manifest)
    return sorted(found, key=lambda m: m["run_id"])


def parse_manifest(lake: Lake, key: str, raw: bytes) -> dict:
    """The checked manifest that the bytes `raw` read from `key` hold; LakeError when they are not one."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LakeError(f"Manifest {key} in {lake.url} is not valid JSON ({exc}) — restore it from a backup") from None
    return check_manifest(data, key, lake.url)


class LocalLake:
    """A folder as the lake; every write is atomic (temporary file + rename)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return inside(self.root, key)

    def put(self, local: Path, key: str, on_bytes: Callable[[int], None] | None = None) -> None:
        """Put `local` at `key`: a temporary file (a hard link, or a flushed copy across file systems) renamed
        into place, so readers see the old file or the new one, never half of one."""
        target, tmp = self._path(key), None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._stage(local, target.parent)
            os.replace(tmp, target)
            tmp = None
            fsync_dir(target.parent)
        except OSError as exc:
            raise self._error(key, exc) from exc
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        if on_bytes:
            on_bytes(target.stat().st_size)

    def create(self, local: Path, key: str, on_bytes: Callable[[int], None] | None = None,
               digest: str | None = None) -> bool:
        """Put `local` at `key` only if `key` does not exist (an exclusive link of a complete file); False if it
        does. Files cdc_core hands over are complete and never change, so a hard link shares their bytes."""
        target, tmp = self._path(key), None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._stage(local, target.parent)
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            fsync_dir(target.parent)
        except OSError as exc:
            raise self._error(key, exc) from exc
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        if on_bytes:
            on_bytes(target.stat().st_size)
        return True

    @staticmethod
    def _stage(local: Path, folder: Path) -> str:
        """A temporary name in `folder` holding `local`'s bytes: a hard link when both are on one file system (no
        copy), else a copy flushed to disk."""
        tmp = str(folder / f".upload-{uuid.uuid4().hex}")
        try:
            os.link(local, tmp)
            return tmp
        except OSError:
            pass
        try:
            with open(tmp, "wb") as out, open(local, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def _error(self, key: str, exc: OSError) -> LakeError:
        return LakeError(f"Cannot write {key} into the lake {self.url} ({exc.strerror or exc}) — check the folder "
                         "exists and is writable")

    def read(self, key: str) -> bytes:
        found = self.get(key)
        if found is None:
            raise LakeError(f"The lake {self.url} has no {key} — was it captured into another lake?")
        return found

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LakeError(f"Cannot read {key} from the lake {self.url} ({exc.strerror or exc})") from None

    def checksum(self, key: str) -> str | None:
        """The file's SHA-256: the one `swap` noted beside the file while it is still that very file (no read of
        a large full load every cycle), else computed."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            noted, digest = (path.parent / f".{path.name}.sha256").read_text().split()
        except (OSError, ValueError):
            noted = digest = None
        return digest if noted == self.version(key) else sha256(path)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def version(self, key: str) -> str | None:
        try:
            found = self._path(key).stat()
        except FileNotFoundError:
            return None
        return f"{found.st_ino}-{found.st_mtime_ns}-{found.st_size}"  # every put is a new file (a rename)

    def swap(self, local: Path, key: str, expected: str | None, digest: str | None = None) -> bool:
        """Compare and replace under a lock file beside `key` (an OS lock: a killed writer never leaves it held; a
        stalled one makes the others wait up to `SWAP_WAIT` seconds, then fail with LakeError)."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with hold_lock(target.parent / f".{target.name}.lock", SWAP_WAIT) as held:
            if not held:
                raise LakeError(f"Another writer has held the lock of {key} in {self.url} for {SWAP_WAIT:.0f} s "
                                "(stopped?) — the next cycle writes it")
            if self.version(key) != expected:
                return False
            self.put(local, key)
            note = target.parent / f".{target.name}.sha256"
            note.unlink(missing_ok=True)
            note.write_text(f"{self.version(key)} {digest or sha256(local)}\n")  # read back only while it holds
            return True

    def local(self, key: str, folder: Path) -> Path:
        """A local path to read `key` from: the lake's own file (no copy)."""
        path = self._path(key)
        if not path.is_file():
            raise LakeError(f"The lake {self.url} has no {key} — was it captured into another lake?")
        return path

    def list(self, prefix: str = "") -> list[str]:
        """The keys that start with `prefix` (a folder, or any string as on S3), hidden files left out."""
        folder, _, start = prefix.rpartition("/")
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            return []
        found = []
        for path in base.glob(f"{glob.escape(start)}*"):  # one folder's matching names, not the whole tree
            found += [path] if path.is_file() else path.rglob("*")
        return sorted(p.relative_to(self.root).as_posix() for p in found
                      if p.is_file() and not p.name.startswith("."))


def make_lake(config: LakeConfig) -> Lake:
    """The lake a config names; ConfigError naming the extra when an S3 lake's boto3 is not installed."""
    if config.is_s3:
        from .extras import require
        from .s3lake import S3Lake

        require("the S3 lake")

        return S3Lake(config)
    return LocalLake(config.path)
