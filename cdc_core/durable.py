"""Making writes survive a power cut: fsync of files and of the folders that hold them (renames included)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_file(path: Path) -> None:
    """Flush a file's bytes to disk (a file another library wrote, before it is sealed or renamed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk, so that a new file or a rename in it survives a power cut."""
    fsync_file(path)  # a folder is fsynced through a read-only descriptor, like a file


def fsync_tree(path: Path) -> None:
    """Flush every file under `path`, then each folder (deepest first), then `path`'s own parent."""
    folders = []
    for root, dirs, files in os.walk(path):
        folders.append(Path(root))
        for name in files:
            fsync_file(Path(root) / name)
    for folder in reversed(folders):
        fsync_dir(folder)
    fsync_dir(Path(path).parent)


@contextmanager
def hold_lock(path: Path, wait: float) -> Iterator[bool]:
    """Hold an OS lock on `path` (created if absent) for the block, waiting up to `wait` seconds for another
    holder; yields False when it could not be had in time. A killed holder releases it at once."""
    with open(path, "a+") as f:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
