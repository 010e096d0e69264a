"""Random stalls: a writer stopped (SIGSTOP) at a random moment while another captures a newer version, then
continued or killed, round after round — the lake keeps one chain of ever newer versions, its head is the last
version, and every projection (full load, Delta, Iceberg) equals it, `verify`ed from a fresh data dir."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import BUCKET, ROOT, run_cli
from .test_log import assert_one_chain_of_versions
from .writers import demo_version, publish_version, writer

# real processes racing on timing (pauses, signals, kills at random moments): one worker runs them one after
# another, while the other runs the rest (the first timing group: the log, recovery and writers' tests)
pytestmark = pytest.mark.xdist_group("timing: stalls and formats")

SEED = int(os.environ.get("CDC_STALL_SEED", "25"))


def start(config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "cdc_core", "--once", "--config", str(config)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.parametrize(("where", "table_format", "rounds"), [
    ("local", None, 7), ("s3", None, 4), ("local", "delta", 4), ("local", "iceberg", 3)])
def test_writers_stopped_at_random_moments_never_fork_or_revert_the_lake(tmp_path: Path, request, where: str,
                                                                         table_format: str | None, rounds: int):
    rng = random.Random(f"{SEED}-{where}-{table_format}")
    if where == "s3":
        request.getfixturevalue("s3")
    lake = str(tmp_path / "lake") if where == "local" else f"s3://{BUCKET}/{tmp_path.name}"
    extra = {"table_format": table_format} if table_format else {}
    slow, other = (writer(tmp_path, name, lake, **extra) for name in ("a", "b"))
    versions = [demo_version(v) for v in range(1, 2 * rounds + 2)]
    publish_version(tmp_path, versions[0])
    assert run_cli("--once", "--config", str(slow)).code == 0
    what = []
    for i in range(rounds):
        publish_version(tmp_path, versions[2 * i + 1])
        proc = start(slow, tmp_path / f"a{i}.log")
        time.sleep(rng.uniform(0.3, 3.5))  # anywhere: starting, fetching, staging, committing, projecting
        stopped = proc.poll() is None
        if stopped:
            os.kill(proc.pid, signal.SIGSTOP)
        publish_version(tmp_path, versions[2 * i + 2])
        newer = run_cli("--once", "--config", str(other))
        assert newer.code == 0, f"seed {SEED} round {i}: {newer.out}{newer.err}"
        kill = stopped and rng.random() < 0.4
        if stopped:
            os.kill(proc.pid, signal.SIGKILL if kill else signal.SIGCONT)
        code = proc.wait(timeout=120)
        what.append("killed" if kill else f"exit {code}" if stopped else "done")
        assert code in (0, 1, -signal.SIGKILL), (tmp_path / f"a{i}.log").read_text()
    settle = run_cli("--once", "--config", str(other))  # the source is at the last version
    assert settle.code == 0, settle.out + settle.err
    found = assert_one_chain_of_versions(tmp_path, other, versions)
    assert found[-1] == len(versions) - 1, (found, what)  # the head is the last version
    fresh = writer(tmp_path, "fresh", lake, **extra)
    for config in (fresh, slow, other):  # the full load and the format table are the head's, seen from anywhere
        if config == slow:
            assert run_cli("--once", "--config", str(slow)).code == 0
        checked = run_cli("verify", "--config", str(config))
        assert checked.code == 0, f"seed {SEED}, rounds {what}: {checked.out}{checked.err}"
