"""Virtual environments for the packaging tests: the wheel as a user builds it, installed into a fresh venv.

Installing duckdb and pyarrow (or Airflow) takes a while, so the libraries live in a venv kept under a cache folder
(`$CDC_TEST_CACHE`, default `~/.cache/cdc_core-tests`), made on first use and keyed by exactly what it holds (the
Python version and the requirement list, e.g. the wheel's own base dependencies). Every test session then makes
a *fresh* venv that sees those libraries through a `.pth` file and runs `pip install <the wheel>` into it with
`--no-index`: pip resolves the wheel's dependencies against what is there, installs only cdc_core, and never goes
to the network. Concurrent sessions never share an installed cdc_core.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CDC_TEST_CACHE") or Path.home() / ".cache" / "cdc_core-tests")
SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
UNUSED_DAYS = 14  # a cached venv nobody used for this long is removed when another one of its kind is made


def build_wheel(out: Path) -> Path:
    """`pip wheel . --no-deps` on a clean copy of the source tree (tracked and new files, no build/ leftovers)."""
    src = out / "src"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--quiet", "--wheel-dir", str(out)])
    return next(out.glob("*.whl"))


def base_requirements(wheel: Path) -> list[str]:
    """The wheel's `Requires-Dist` lines that no extra guards: what `pip install cdc-core` brings."""
    with zipfile.ZipFile(wheel) as z:
        metadata = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(metadata).decode().splitlines()
    return [line.split(":", 1)[1].strip() for line in lines
            if line.startswith("Requires-Dist:") and "extra ==" not in line]


def dependencies(kind: str, requirements: list[str]) -> Path:
    """A venv holding `requirements` (never cdc_core itself), made once and reused while they stay the same."""
    key = hashlib.sha256("\n".join([sys.version, *sorted(requirements)]).encode()).hexdigest()[:16]
    folder = CACHE / f"{kind}-{key}"
    done = folder / ".complete"
    CACHE.mkdir(parents=True, exist_ok=True)
    with _locked(CACHE / f"{kind}-{key}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            run([sys.executable, "-m", "venv", str(folder)])
            run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements])
            done.write_text("\n".join(requirements) + "\n")
            _prune(kind, keep=folder)
        done.touch()  # last used
    return folder


def fresh_venv(path: Path, deps: Path, wheel: Path) -> Path:
    """A new venv at `path` that sees the libraries of `deps`, with `pip install <wheel>` (offline) done in it."""
    run([sys.executable, "-m", "venv", "--without-pip", str(path)])
    (path / SITE / "_cdc_test_dependencies.pth").write_text(f"{deps / SITE}\n")
    run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index", str(wheel)])
    return path


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure, raise with its output (pip's reasons) in the message."""
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # another session making the same venv: wait for it
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _prune(kind: str, keep: Path) -> None:
    """Remove venvs of the same kind that nobody used for `UNUSED_DAYS` (their requirements changed since)."""
    for other in CACHE.glob(f"{kind}-*"):
        done = other / ".complete"
        if other != keep and other.is_dir() and done.exists() and \
                time.time() - done.stat().st_mtime > UNUSED_DAYS * 86400:
            shutil.rmtree(other, ignore_errors=True)
