"""The commit log: one ordered chain per table, right with stalled and killed writers, read in constant time.

Each of the first tests is one way the lake went wrong before the log (issue 25), replayed with real processes."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from cdc_core import load_config, read_changes
from cdc_core.chain import head, head_pointer_key, walk_back
from cdc_core.config import LakeConfig
from cdc_core.engines.duckdb.snapshot import load_snapshot
from cdc_core.lake import LocalLake, make_lake, read_manifests
from cdc_core.replay import replay
from cdc_core.retention import tidy

from .conftest import BUCKET, run_cli, write_config
from .writers import TABLE, Stalled, demo_version, killed, publish_version, two_writers, writer

# real processes racing on timing (pauses, signals, kills at random moments): one worker runs them all, one
# after another, while the other workers run the rest
pytestmark = pytest.mark.xdist_group("timing")


def runs_of(config: Path) -> list[dict]:
    return read_manifests(make_lake(load_config(config).lake), "clientes")


def assert_one_chain_of_versions(tmp_path: Path, config: Path, versions: list[str]) -> list[int]:
    """Every committed run's table is one of `versions`, each later run a later version (never older data over
    newer), and the runs form one chain; returns the version index of each run."""
    lake = make_lake(load_config(config).lake)
    runs = read_manifests(lake, "clientes")
    assert [m.get("parent") for m in runs] == [None, *(m["run_id"] for m in runs[:-1])]
    snapshots = []
    for i, text in enumerate(versions):
        (tmp_path / f"v{i}.csv").write_text(text)
        snapshots.append(load_snapshot(tmp_path / f"v{i}.csv", TABLE, tmp_path / f"v{i}.parquet").path)
    found = []
    for run in runs:
        out = replay(lake, "clientes", tmp_path / f"r_{run['run_id']}.parquet", as_of=run["run_id"]).path
        same = [i for i, snap in enumerate(snapshots) if _same_table(snap, out)]
        assert same, f"run {run['run_id']} is none of the source versions"
        found.append(same[-1])
    assert found == sorted(set(found)), f"a run holds older data than the run before it: {found}"
    return found


def _same_table(a: Path, b: Path) -> bool:
    from cdc_core.engines.duckdb.diff import diff

    changes = diff(a, b, "idCliente")
    return changes.total == 0 and not changes.schema_changed


def test_a_writer_stalled_before_its_full_load_never_puts_an_older_table_over_a_newer_run(tmp_path: Path):
    lake, slow, other, versions = two_writers(tmp_path, 3)
    publish_version(tmp_path, versions[1])
    manifests = tmp_path / "lake" / "manifests" / "clientes"
    paused = Stalled(slow, "after_put_manifest", lambda: len(list(manifests.glob("*.json"))) == 2)
    publish_version(tmp_path, versions[2])
    assert run_cli("--once", "--config", str(other)).code == 0  # commits version 3 on the stalled writer's run
    out, err = paused.finish()
    assert paused.returncode == 0, out + err
    fresh = writer(tmp_path, "fresh", lake)
    checked = run_cli("verify", "--config", str(fresh))
    assert checked.code == 0, checked.out  # the full load is the head's (version 3), not the stalled one's
    full = tmp_path / "lake/full-load/clientes/clientes.parquet"
    (tmp_path / "v3.csv").write_text(versions[2])
    assert _same_table(load_snapshot(tmp_path / "v3.csv", TABLE, tmp_path / "v3.parquet").path, full)
    assert assert_one_chain_of_versions(tmp_path, other, versions) == [0, 1, 2]


def test_a_cycle_that_fetched_before_another_writer_committed_never_commits_its_older_file(tmp_path: Path):
    lake, slow, other, versions = two_writers(tmp_path, 4)
    publish_version(tmp_path, versions[1])
    assert killed(slow, "after_stage").returncode == -signal.SIGKILL  # version 2 waits in its outbox
    publish_version(tmp_path, versions[2])
    manifests = tmp_path / "lake" / "manifests" / "clientes"
    # fetches version 3, publishes its pending version 2, then stalls before capturing the fetch
    paused = Stalled(slow, "after_put_full", lambda: len(list(manifests.glob("*.json"))) == 2)
    publish_version(tmp_path, versions[3])
    assert run_cli("--once", "--config", str(other)).code == 0  # version 4 on top of version 2
    out, err = paused.finish()
    assert paused.returncode == 1 and "after this cycle fetched" in out, out + err
    assert assert_one_chain_of_versions(tmp_path, other, versions) == [0, 1, 3]
    runs = runs_of(other)
    assert all(run["run_id"] > run["parent"] for run in runs[1:])  # ids sort along the chain
    assert run_cli("--once", "--config", str(slow)).code == 0  # fetches again: version 4, no changes
    for config in (slow, other, writer(tmp_path, "fresh", lake)):
        assert run_cli("verify", "--config", str(config)).code == 0
    assert len(runs_of(other)) == 3


def test_a_writer_killed_after_its_link_finds_its_run_committed_when_another_built_on_it(tmp_path: Path):
    _, first, other, _ = two_writers(tmp_path, 1)
    publish_version(tmp_path, demo_version(2))
    assert killed(first, "after_link").returncode == -signal.SIGKILL  # committed: linked, no manifest yet
    publish_version(tmp_path, demo_version(3))
    assert run_cli("--once", "--config", str(other)).code == 0  # completes a's manifest, builds on a's run
    back = run_cli("--once", "--config", str(first))
    assert back.code == 0, back.out + back.err
    assert "was not published" not in back.out + back.err and "FAILED" not in back.out
    assert not (tmp_path / "a" / "data" / "discarded").exists()
    assert len(runs_of(first)) == 3
    assert run_cli("verify", "--config", str(first)).code == 0


def test_a_dry_run_writes_nothing_to_the_lake_not_even_a_missing_manifest(tmp_path: Path):
    config = writer(tmp_path, "a", str(tmp_path / "lake"))
    publish_version(tmp_path, demo_version(1))
    assert run_cli("--once", "--config", str(config)).code == 0
    publish_version(tmp_path, demo_version(2))
    assert killed(config, "after_link").returncode == -signal.SIGKILL
    before = {p: p.read_bytes() for p in (tmp_path / "lake").rglob("*") if p.is_file()}
    for args in (["--dry-run"], ["verify"], ["replay", "--table", "clientes", "--output",
                                             str(tmp_path / "out.parquet")]):
        run_cli(*args, "--config", str(writer(tmp_path, "reader", str(tmp_path / "lake"))))
        assert {p: p.read_bytes() for p in (tmp_path / "lake").rglob("*") if p.is_file()} == before, args
    assert run_cli("--once", "--config", str(config)).code == 0  # a real cycle completes the commit
    assert len(runs_of(config)) == 2 and run_cli("verify", "--config", str(config)).code == 0


def test_a_delta_writer_stalled_before_its_link_loses_and_the_table_follows_the_winner(tmp_path: Path):
    lake, slow, other, _ = two_writers(tmp_path, 1, table_format="delta")
    publish_version(tmp_path, demo_version(2))
    cdc = tmp_path / "lake" / "cdc" / "clientes"
    paused = Stalled(slow, "after_put_cdc", lambda: cdc.is_dir() and any(cdc.iterdir()))
    publish_version(tmp_path, demo_version(3))
    assert run_cli("--once", "--config", str(other)).code == 0
    out, err = paused.finish()
    assert paused.returncode == 1 and "on the same parent first" in out, out + err
    for config in (other, slow, writer(tmp_path, "fresh", lake, table_format="delta")):
        checked = run_cli("verify", "--config", str(config))  # the Delta table is the head's full load
        assert checked.code == 0 or config == slow, checked.out
    assert run_cli("--once", "--config", str(slow)).code == 0
    assert run_cli("verify", "--config", str(slow)).code == 0
    from deltalake import DeltaTable

    runs = runs_of(other)
    applied = [h.get("cdc.run_id") for h in DeltaTable(str(tmp_path / "lake/delta/clientes")).history()]
    assert [r for r in applied if r][::-1] == [m["run_id"] for m in runs]


def test_the_head_is_found_in_a_constant_number_of_reads_and_a_stale_pointer_is_followed(tmp_path: Path):
    config = write_config(tmp_path, tables=[{"name": "clientes", "pk": "idCliente", "sep": ";"}],
                          source={"type": "demo", "seed": 2, "scale": 0.02}, checkpoint_every=4)
    from cdc_core import run_once

    loaded = load_config(config)
    for _ in range(9):
        run_once(loaded)
    lake = CountingLake(tmp_path / "lake")
    top = head(lake, "clientes")
    assert top["run_id"] == max(m["run_id"] for m in read_manifests(lake, "clientes"))
    lake.reads.clear()
    assert head(lake, "clientes", repair=False)["run_id"] == top["run_id"] and len(lake.reads) == 3
    runs = read_manifests(lake, "clientes")
    pointer = tmp_path / "lake" / head_pointer_key("clientes")
    pointer.write_text(json.dumps({"run_id": runs[2]["run_id"]}))  # a writer that stalled before moving it
    lake.reads.clear()
    assert head(lake, "clientes", repair=False)["run_id"] == top["run_id"]
    assert len(lake.reads) == 3 + (len(runs) - 3)  # one link (holding its manifest) per run it is behind
    pointer.unlink()  # a lake from before the pointer: found from one listing
    assert head(lake, "clientes")["run_id"] == top["run_id"] and pointer.is_file()
    bases = [m["run_id"] for m in runs if any(f["key"].startswith("base/") for f in m["files"])]
    assert len(bases) == 3 and [m.get("since_base") for m in runs] == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    for run in runs:  # a replay reads the newest base at or before the run and at most 3 CDC files
        chain = walk_back(lake, "clientes", run, lambda m: any(f["key"].startswith("base/") for f in m["files"]))
        assert len(chain) <= 4
    changes = read_changes(lake, "clientes", since=runs[5]["run_id"])
    assert set(changes["_cdc_run_id"].to_pylist()) == {m["run_id"] for m in runs[6:] if m["has_changes"]}


class CountingLake(LocalLake):
    """A local lake that notes every read of a key (GET or HEAD)."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.reads: list[str] = []

    def get(self, key: str) -> bytes | None:
        self.reads.append(key)
        return super().get(key)


def test_retention_keeps_runs_from_the_checkpoint_before_the_horizon_and_replay_says_how_far_back(tmp_path: Path):
    from datetime import UTC, datetime, timedelta

    config = write_config(tmp_path, tables=[{"name": "clientes", "pk": "idCliente", "sep": ";"}],
                          source={"type": "demo", "seed": 2, "scale": 0.02}, checkpoint_every=3,
                          lake_retention="30d")
    from cdc_core import run_once

    for _ in range(8):
        run_once(load_config(config))
    lake = LocalLake(tmp_path / "lake")
    runs = read_manifests(lake, "clientes")
    (tmp_path / "orphan.parquet").write_bytes(b"x")  # a file no run lists (a writer killed before its link)
    lake.put(tmp_path / "orphan.parquet", "cdc/clientes/clientes_20000101_000000.parquet")
    stale_intent = f"commits/clientes/clientes_{runs[3]['run_id']}.{runs[4]['run_id']}.dead.intent"
    live_intent = f"commits/clientes/clientes_{runs[-1]['run_id']}.20991231_000000.live.intent"
    for key in (stale_intent, live_intent):  # a writer killed on an old parent; one committing on the head now
        lake.put(tmp_path / "orphan.parquet", key)
    moment = datetime.strptime(runs[7]["run_id"], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    removed = tidy(lake, runs[-1], 30 * 86400, now=moment + timedelta(days=30))  # the horizon: between runs 7, 8
    kept = read_manifests(lake, "clientes")
    assert [m["run_id"] for m in kept] == [m["run_id"] for m in runs[6:]]  # from the checkpoint at run 7 on
    assert "cdc/clientes/clientes_20000101_000000.parquet" in removed and stale_intent in removed
    assert live_intent not in removed and lake.get(live_intent) is not None
    assert run_cli("verify", "--config", str(config)).code == 0
    too_old = run_cli("replay", "--config", str(config), "--table", "clientes", "--as-of", runs[3]["run_id"],
                      "--output", str(tmp_path / "old.parquet"))
    assert too_old.code == 1 and f"the lake keeps runs from {runs[6]['run_id']} on" in too_old.out + too_old.err
    inside = replay(lake, "clientes", tmp_path / "in.parquet", as_of=runs[6]["run_id"])
    assert inside.run_id == runs[6]["run_id"] and inside.rows == runs[6]["rows"]


def test_a_lake_and_data_dir_written_before_the_log_keep_working(tmp_path: Path):
    """tests/data/old-lake: two runs of the previous protocol (claims, no head pointer, no checkpoints), and a third
    run killed after its CDC file (a claim left in the lake, the run pending in the outbox)."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(Path(__file__).parent / "data" / "old-lake", old, symlinks=True)
    def reader(name: str) -> Path:
        (tmp_path / name).mkdir()
        return write_config(tmp_path / name, source={"type": "directory", "path": str(old / "source")},
                            lake=str(old / "lake"), tables=[{"name": "clientes", "pk": "id", "sep": ";",
                                                             "date_field": "atualizado"}])

    config, fresh = old / "config.json", reader("fresh")
    assert run_cli("verify", "--config", str(fresh)).code == 0  # before: the lake alone
    result = run_cli("--once", "--config", str(config))  # the pending run goes out, then the fetch: no change
    assert result.code == 0 and "no changes" in result.out, result.out + result.err
    runs = runs_of(config)
    assert [m["counts"] for m in runs[1:]] == [{"I": 1, "U": 1, "D": 1}, {"I": 1, "U": 1, "D": 0}]
    assert runs[2]["parent"] == runs[1]["run_id"] and runs[2]["checkpoint"]  # the first run after it: a base
    assert (old / "lake" / head_pointer_key("clientes")).is_file()
    assert not list((old / "lake" / "claims").rglob("*.json"))  # the old protocol's claims are tidied away
    for each in (config, fresh):
        again = run_cli("--once", "--config", str(each))
        assert again.code == 0, again.out + again.err
        checked = run_cli("verify", "--config", str(each))
        assert checked.code == 0, checked.out  # after: both data dirs and the lake agree
    (old / "source" / "clientes.csv").write_text("id;nome;pontos;atualizado\n1;Ana;16;2025-01-04 10:00:00\n"
                                                 "3;Caio;35;2025-01-03 10:00:00\n4;Duda;40;2025-01-02 10:00:00\n")
    assert run_cli("--once", "--config", str(fresh)).code == 0
    assert [m["counts"] for m in runs_of(fresh)][-1] == {"I": 0, "U": 1, "D": 1}
    assert run_cli("verify", "--config", str(reader("third"))).code == 0


@pytest.mark.parametrize("size_mb", [1, 6])  # one PUT, and a multipart upload above the 5 MB threshold
def test_s3_create_if_absent_and_compare_and_swap_hold_for_every_size(s3, tmp_path: Path, size_mb: int):
    from cdc_core.s3lake import S3Lake

    lake = S3Lake(LakeConfig(url=f"s3://{BUCKET}", bucket=BUCKET, multipart_threshold_mb=5))
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"a" * size_mb * 1024 * 1024)
    second.write_bytes(b"b" * size_mb * 1024 * 1024)
    assert lake.create(first, "cdc/t/t_20250101_000000.parquet")
    assert not lake.create(second, "cdc/t/t_20250101_000000.parquet")
    assert lake.read("cdc/t/t_20250101_000000.parquet")[:1] == b"a"
    assert lake.swap(first, "full-load/t/t.parquet", None)
    stale = lake.version("full-load/t/t.parquet")
    assert lake.swap(second, "full-load/t/t.parquet", stale)
    if size_mb == 1:  # moto checks If-Match on a PUT (S3 also on a multipart completion)
        assert not lake.swap(first, "full-load/t/t.parquet", stale)
    assert not lake.swap(first, "full-load/t/t.parquet", None)
    assert lake.read("full-load/t/t.parquet")[:1] == b"b"
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")  # nothing half-done is left


def test_local_compare_and_swap_refuses_a_stale_version(tmp_path: Path):
    lake = LocalLake(tmp_path / "lake")
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    assert lake.swap(tmp_path / "a", "full-load/t/t.parquet", None)
    seen = lake.version("full-load/t/t.parquet")
    assert not lake.swap(tmp_path / "b", "full-load/t/t.parquet", None)
    assert lake.swap(tmp_path / "b", "full-load/t/t.parquet", seen)
    assert not lake.swap(tmp_path / "a", "full-load/t/t.parquet", seen)
    assert lake.read("full-load/t/t.parquet") == b"b"


def test_s3_requests_per_capture_do_not_grow_with_the_history(s3, tmp_path: Path, monkeypatch):
    """Requests of one capture (a fresh process's, as cron runs it) at run 10 and at run 200 of an S3 lake; runs
    11-199 are made on a local copy of the lake and put back (the same keys and checksums), to save CI time."""
    from cdc_core import lake as lake_module
    from cdc_core import run_once, s3lake

    made = []
    original = s3lake.s3_client

    def counted(config):
        client = original(config)
        client.meta.events.register("before-send.s3", lambda request, **_: made.append(request.method))
        return client

    monkeypatch.setattr(s3lake, "s3_client", counted)
    (tmp_path / "source").mkdir()
    url = f"s3://{BUCKET}/count"

    def capture(run: int, lake: str) -> int:
        rows = [f"{i};{run if i == run else 0}" for i in range(1000)]  # a 1,000-row table, one row changed
        (tmp_path / "source" / "t.csv").write_text("id;v\n" + "\n".join(rows) + "\n")
        config = write_config(tmp_path, tables=[{"name": "t", "pk": "id", "sep": ";"}], lake=lake,
                              source={"type": "directory", "path": "source"}, checkpoint_every=1000)
        made.clear()
        lake_module._manifest_cache.clear()  # a fresh process, as cron runs it
        report = run_once(load_config(config))
        assert report.tables[0].status == ("full_load" if run == 0 else "changes"), report.tables[0].error
        return len(made)

    at = {run + 1: capture(run, url) for run in range(10)}
    remote, local = make_lake(LakeConfig(url=url, bucket=BUCKET, prefix="count")), LocalLake(tmp_path / "copy")
    for key in remote.list(""):
        local.put(remote.local(key, tmp_path / "download"), key)
    for run in range(10, 199):
        capture(run, str(tmp_path / "copy"))
    for key in local.list(""):
        if remote.checksum(key) != local.checksum(key):
            remote.put(local.local(key, tmp_path), key)
    at[200] = capture(199, url)
    assert at[200] <= at[10] + 2, at  # run 200 costs what run 10 cost
    assert at[10] == at[5], at
