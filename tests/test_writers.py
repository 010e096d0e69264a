"""The lake is the source of truth: a new data dir resumes the history, a second writer never duplicates or
overwrites, and a writer killed in the middle of a commit (or never coming back) never blocks the table."""

from __future__ import annotations

import itertools
import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cdc_core import load_config
from cdc_core.engines.duckdb.diff import diff
from cdc_core.engines.duckdb.snapshot import load_snapshot
from cdc_core.lake import make_lake, read_manifests

from .conftest import BUCKET, run_cli
from .writers import (
    TABLE,
    Stalled,
    cdc_rows,
    changes_between,
    demo_version,
    killed,
    lake_objects,
    publish_version,
    race,
    writer,
)

# real processes racing on timing (pauses, signals, kills at random moments): one worker runs them all, one
# after another, while the other workers run the rest
pytestmark = pytest.mark.xdist_group("timing")

DATA = Path(__file__).parent / "data"


@pytest.fixture(params=["local", "s3"])
def lake_url(request, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "lake")
    request.getfixturevalue("s3")  # moto keeps its buckets for the whole process: a prefix of this test's own
    return f"s3://{BUCKET}/{tmp_path.name}"


def test_a_fresh_data_dir_continues_the_lake_history(tmp_path: Path, lake_url: str):
    first, second = writer(tmp_path, "a", lake_url), writer(tmp_path, "b", lake_url)
    v1, v2 = (DATA / "clientes_20250918.csv").read_text(), (DATA / "clientes_20250922.csv").read_text()
    publish_version(tmp_path, v1)
    assert run_cli("--once", "--config", str(first)).code == 0
    run_a = read_manifests(make_lake(load_config(first).lake), "clientes")[-1]["run_id"]
    publish_version(tmp_path, v2)
    result = run_cli("--once", "--config", str(second))
    assert result.code == 0, result.out + result.err
    assert "changes   I     27  U    138  D      0" in result.out and f"rebased on the lake's run {run_a}" in result.out
    lake = make_lake(load_config(second).lake)
    assert len(lake.list("base/clientes/")) == 1
    assert {(op, key) for _, op, key in cdc_rows(second)} == changes_between(tmp_path, v1, v2)
    runs = read_manifests(lake, "clientes")
    assert [m["parent"] for m in runs] == [None, run_a]
    for config in (first, second):  # A is behind the lake: one cycle brings it on, then both verify
        run_cli("--once", "--config", str(config))
        assert run_cli("verify", "--config", str(config)).code == 0


def test_verify_from_a_fresh_data_dir_checks_the_lake_alone(tmp_path: Path):
    first = writer(tmp_path, "a", str(tmp_path / "lake"))
    for version in (1, 2, 3):
        publish_version(tmp_path, demo_version(version))
        assert run_cli("--once", "-q", "--config", str(first)).code == 0
    fresh = writer(tmp_path, "fresh", str(tmp_path / "lake"))
    checked = run_cli("verify", "--config", str(fresh))
    assert checked.code == 0 and "ok      clientes" in checked.out
    full = tmp_path / "lake" / "full-load" / "clientes" / "clientes.parquet"
    rows = pq.read_table(full)
    pq.write_table(rows.slice(1), full)  # the full load no longer is the latest run's
    assert "is not the full load of run" in run_cli("verify", "--config", str(fresh)).out


def test_a_stale_writer_rebases_and_captures_only_what_changed_since_the_lakes_last_run(tmp_path: Path):
    lake = str(tmp_path / "lake")
    stale, other = writer(tmp_path, "a", lake), writer(tmp_path, "b", lake)
    versions = [demo_version(v) for v in (1, 2, 3)]
    publish_version(tmp_path, versions[0])
    assert run_cli("--once", "--config", str(stale)).code == 0
    publish_version(tmp_path, versions[1])
    assert run_cli("--once", "--config", str(other)).code == 0
    publish_version(tmp_path, versions[2])
    assert run_cli("--once", "--config", str(stale)).code == 0
    runs = read_manifests(make_lake(load_config(stale).lake), "clientes")
    last = {(op, key) for run, op, key in cdc_rows(stale) if run == runs[-1]["run_id"]}
    assert last == changes_between(tmp_path, versions[1], versions[2])
    assert len(cdc_rows(stale)) == len(changes_between(tmp_path, versions[0], versions[1])) + len(last)


def test_two_writers_racing_on_each_version_commit_every_change_exactly_once(tmp_path: Path, lake_url: str):
    configs = [writer(tmp_path, "a", lake_url), writer(tmp_path, "b", lake_url)]
    versions = [demo_version(v) for v in range(1, 6)]
    seen: dict[str, bytes] = {}
    for text in versions:
        publish_version(tmp_path, text)
        results = race(configs)  # the one that loses waits for the winner, rebases on it and captures again
        assert all(r.returncode == 0 for r in results), [r.stdout + r.stderr for r in results]
        now = lake_objects(configs[0])
        assert {k: v for k, v in now.items() if k in seen} == seen  # nothing ever changes bytes
        seen = now
    rows = cdc_rows(configs[0])
    expected = set().union(*(changes_between(tmp_path, a, b) for a, b in itertools.pairwise(versions)))
    assert len(rows) == len({(op, key, run) for run, op, key in rows})  # no change row twice in a run
    by_transition = {}
    for run, op, key in rows:
        by_transition.setdefault(run, set()).add((op, key))
    assert sum(len(v) for v in by_transition.values()) == sum(
        len(changes_between(tmp_path, a, b)) for a, b in itertools.pairwise(versions))
    assert set().union(*by_transition.values()) == expected
    lake = make_lake(load_config(configs[0]).lake)
    assert len(lake.list("base/clientes/")) == 1 and not [k for k in lake.list("commits/") if k.endswith(".intent")]
    for config in configs:
        assert run_cli("--once", "--config", str(config)).code == 0
        assert run_cli("verify", "--config", str(config)).code == 0
    replayed = tmp_path / "replayed.parquet"
    assert run_cli("replay", "--table", "clientes", "--output", str(replayed), "--config", str(configs[1])).code == 0
    (tmp_path / "last.csv").write_text(versions[-1])
    last = load_snapshot(tmp_path / "last.csv", TABLE, tmp_path / "last.parquet")
    assert diff(last.path, replayed, "idCliente").total == 0


@pytest.mark.parametrize("fault", ["after_stage", "after_put_cdc", "after_link", "after_put_manifest",
                                   "after_put_full"])
def test_a_writer_killed_in_its_commit_finishes_it_on_its_next_run(tmp_path: Path, fault: str):
    config = writer(tmp_path, "a", str(tmp_path / "lake"))
    publish_version(tmp_path, demo_version(1))
    assert run_cli("--once", "--config", str(config)).code == 0
    publish_version(tmp_path, demo_version(2))
    stopped = killed(config, fault)
    assert stopped.returncode == -signal.SIGKILL
    rerun = run_cli("--once", "--config", str(config))
    assert rerun.code == 0, rerun.out + rerun.err
    runs = read_manifests(make_lake(load_config(config).lake), "clientes")
    assert len(runs) == 2 and runs[1]["parent"] == runs[0]["run_id"]
    assert {(op, key) for _, op, key in cdc_rows(config)} == changes_between(tmp_path, demo_version(1),
                                                                             demo_version(2))
    assert run_cli("verify", "--config", str(config)).code == 0


def test_a_writer_killed_before_its_link_never_blocks_the_table_and_leaves_no_orphan(tmp_path: Path):
    lake = str(tmp_path / "lake")
    gone, other = writer(tmp_path, "a", lake), writer(tmp_path, "b", lake)
    publish_version(tmp_path, demo_version(1))
    assert run_cli("--once", "--config", str(gone)).code == 0
    publish_version(tmp_path, demo_version(2))
    assert killed(gone, "after_put_cdc").returncode == -signal.SIGKILL  # its CDC file written, never linked
    assert len(list((tmp_path / "lake" / "cdc" / "clientes").iterdir())) == 1
    now = run_cli("--once", "--config", str(other))  # nothing to wait for: the next writer commits at once
    assert now.code == 0 and "changes" in now.out, now.out + now.err
    back = run_cli("--once", "--config", str(gone))  # its pending run lost: discarded, then it rebases
    assert back.code == 0 and "another writer committed the same data first" in back.err, back.out + back.err
    for config in (gone, other):
        assert run_cli("--once", "--config", str(config)).code == 0
        assert run_cli("verify", "--config", str(config)).code == 0
    runs = read_manifests(make_lake(load_config(other).lake), "clientes")
    assert len(runs) == 2
    assert {(op, key) for _, op, key in cdc_rows(other)} == changes_between(tmp_path, demo_version(1),
                                                                            demo_version(2))
    listed = {f["key"] for m in runs for f in m["files"]}
    in_lake = {p.relative_to(tmp_path / "lake").as_posix() for p in (tmp_path / "lake").rglob("*.parquet")}
    assert in_lake == listed  # nothing the killed writer wrote is left under cdc/ or base/
    assert not list((tmp_path / "lake" / "commits").rglob("*.intent"))


def test_a_writer_stalled_before_its_link_loses_to_one_that_links_first_on_the_same_data(tmp_path: Path):
    lake = str(tmp_path / "lake")
    slow, other = writer(tmp_path, "a", lake), writer(tmp_path, "b", lake)
    publish_version(tmp_path, demo_version(1))
    assert run_cli("--once", "--config", str(slow)).code == 0
    publish_version(tmp_path, demo_version(2))
    cdc = tmp_path / "lake" / "cdc" / "clientes"
    holder = Stalled(slow, "after_put_cdc", lambda: cdc.is_dir() and any(cdc.iterdir()))  # data, no link
    met = run_cli("--once", "--config", str(other))
    assert met.code == 0 and "changes" in met.out, met.out + met.err  # links first: no claim to wait for
    out, err = holder.finish()
    assert holder.returncode == 0, out + err
    assert "no changes: another writer committed the same data first" in err, err
    runs = read_manifests(make_lake(load_config(other).lake), "clientes")
    assert [m["parent"] for m in runs[1:]] == [r["run_id"] for r in runs[:-1]]
    assert {(op, key) for _, op, key in cdc_rows(other)} == changes_between(tmp_path, demo_version(1),
                                                                            demo_version(2))


def test_a_writer_that_loses_with_older_data_never_commits_it_over_the_newer_run(tmp_path: Path):
    lake = str(tmp_path / "lake")
    slow, other = writer(tmp_path, "a", lake), writer(tmp_path, "b", lake)
    publish_version(tmp_path, demo_version(1))
    assert run_cli("--once", "--config", str(slow)).code == 0
    publish_version(tmp_path, demo_version(2))
    outbox = tmp_path / "a" / "data" / "outbox" / "clientes"
    paused = Stalled(slow, "after_stage",  # has staged version 2
                     lambda: outbox.is_dir() and any(not p.name.startswith(".") for p in outbox.iterdir()))
    publish_version(tmp_path, demo_version(3))
    assert run_cli("--once", "--config", str(other)).code == 0  # version 3 is the lake's head
    out, err = paused.finish()
    assert paused.returncode == 1 and "another writer committed run" in out, out + err
    assert {(op, key) for _, op, key in cdc_rows(other)} == changes_between(tmp_path, demo_version(1),
                                                                            demo_version(3))
    assert run_cli("--once", "--config", str(slow)).code == 0  # its next cycle fetches again: nothing to undo
    assert {(op, key) for _, op, key in cdc_rows(other)} == changes_between(tmp_path, demo_version(1),
                                                                            demo_version(3))
    for config in (slow, other):
        assert run_cli("verify", "--config", str(config)).code == 0


def test_run_ids_follow_the_lake_not_the_clock_of_one_data_dir(tmp_path: Path):
    lake = str(tmp_path / "lake")
    first, second = writer(tmp_path, "a", lake), writer(tmp_path, "b", lake)
    publish_version(tmp_path, demo_version(1))
    assert run_cli("--once", "--config", str(first)).code == 0
    manifest = read_manifests(make_lake(load_config(first).lake), "clientes")[0]
    future = "20991231_235959"  # a lake whose last run is ahead of this machine's clock (another writer's clock)
    lake_dir = Path(lake)
    for sub in ("manifests", "base"):
        for path in (lake_dir / sub / "clientes").iterdir():
            path.rename(path.with_name(path.name.replace(manifest["run_id"], future)))
    text = (lake_dir / "manifests/clientes" / f"clientes_{future}.json").read_text()
    (lake_dir / "manifests/clientes" / f"clientes_{future}.json").write_text(text.replace(manifest["run_id"], future))
    publish_version(tmp_path, demo_version(2))
    result = run_cli("--once", "--config", str(second))
    assert result.code == 0, result.out + result.err
    runs = [m["run_id"] for m in read_manifests(make_lake(load_config(second).lake), "clientes")]
    assert runs == [future, "21000101_000000"]  # the lake's own history decides the next id, not this clock
