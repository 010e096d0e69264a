"""`./cdc` and `./test` set up the venv they need on first use: `./cdc` the core, the terminal app and the notebooks
(the three faces of the default config), `./test` every extra and the test tools; an install that already holds
what a command needs is not redone.

The venv's python is a stand-in that records how it was called, so these tests see what the scripts ask pip for
without installing anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .conftest import ROOT

RECORDER = '#!/bin/sh\necho "$*" >> "$(dirname "$0")/../calls"\n'


def venv_with(tmp_path: Path, installed: list[str] | None = None) -> Path:
    """A venv folder whose python records its arguments; `installed`: the extras it says were installed before."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(RECORDER)
    (venv / "bin" / "python").chmod(0o755)
    if installed is not None:
        stamp = subprocess.run(["cksum"], stdin=(ROOT / "pyproject.toml").open("rb"), capture_output=True,
                               text=True, check=True).stdout.split()[0]
        (venv / ".cdc-installed").write_text("".join(f"{stamp}-{extras}\n" for extras in installed))
    return venv


def run(script: str, venv: Path, *args: str) -> list[str]:
    """Run ./cdc or ./test with CDC_VENV=venv; the calls its python got, one line each (pip's, then the command)."""
    calls = venv / "calls"
    calls.unlink(missing_ok=True)
    proc = subprocess.run([str(ROOT / script), *args], env={**os.environ, "CDC_VENV": str(venv)}, cwd=venv.parent,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return calls.read_text().splitlines()


def pip_installs(calls: list[str]) -> list[str]:
    return [call.split()[-1] for call in calls if call.startswith("-m pip install")]


def test_a_fresh_cdc_installs_the_core_the_terminal_app_and_the_notebooks_only(tmp_path: Path):
    venv = venv_with(tmp_path)
    calls = run("cdc", venv, "--once")
    assert pip_installs(calls) == [".[tui,notebooks]"]
    assert calls[-1] == "-m cdc_core --once"
    assert pip_installs(run("cdc", venv, "--once")) == []  # set up once


def test_test_after_cdc_installs_every_extra_and_cdc_then_installs_nothing(tmp_path: Path):
    venv = venv_with(tmp_path)
    run("cdc", venv, "--version")
    calls = run("test", venv, "-k", "diff")
    assert pip_installs(calls) == [".[all,test]"]
    assert calls[-1] == "-m pytest -k diff"
    assert pip_installs(run("cdc", venv, "--version")) == []
    assert pip_installs(run("test", venv)) == []


def test_a_venv_set_up_with_every_extra_serves_cdc_but_not_test(tmp_path: Path):
    venv = venv_with(tmp_path, installed=["all"])  # what ./cdc installed before it installed less
    assert pip_installs(run("cdc", venv, "--version")) == []
    assert pip_installs(run("test", venv)) == [".[all,test]"]


def test_a_changed_pyproject_reinstalls(tmp_path: Path):
    venv = venv_with(tmp_path, installed=["all,test"])
    (venv / ".cdc-installed").write_text("0-all,test\n")  # the checksum of another pyproject.toml
    assert pip_installs(run("cdc", venv, "--version")) == [".[tui,notebooks]"]
