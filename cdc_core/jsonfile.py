"""The data dir's small JSON files (state, entries, the guards' window), replaced atomically and read strictly."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .durable import fsync_dir
from .errors import StateError


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON so that readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)  # key order kept: a manifest lists columns in file order
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_json(path: Path) -> dict | None:
    """The JSON file at `path`, None when there is none; a damaged one raises `StateError`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateError(f"State file {path} is damaged ({exc}) — restore it from a backup or delete the "
                         "table's state to capture it afresh") from None
