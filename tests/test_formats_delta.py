"""Delta tables in the lake: state, change data feed and time travel per run, idempotent and crash-safe applies,
schema evolution, local and S3 (moto) — read back with delta-rs' own readers, never by globbing Parquet files."""

from __future__ import annotations

import datetime as dt
import decimal
import multiprocessing
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from hypothesis import given, settings

from cdc_core.errors import ConfigError, LakeError
from cdc_core.formats import CommitConflict, differences
from cdc_core.formats.delta import APP_ID, RUN_KEY, DeltaFormat

from . import format_runs
from .format_runs import Chain, apply_and_check, assert_same, demo_chain, format_for, real_chain

moto_endpoint, s3_lake = format_runs.moto_endpoint, format_runs.s3_lake  # fixtures

CDF = {"I": "insert", "U": "update_postimage", "D": "delete"}


def delta(fmt: DeltaFormat, table: str, version: int | None = None) -> DeltaTable:
    return DeltaTable(fmt.uri(table), version=version, storage_options=fmt.storage_options)


def head(fmt: DeltaFormat):
    return lambda table: delta(fmt, table).version()


def cdf_counts(fmt: DeltaFormat, table: str) -> dict[int, dict[str, int]]:
    """The change data feed's row count per version and change type (arro3's string_view cast for pyarrow)."""
    feed = pa.table(delta(fmt, table).load_cdf(starting_version=0, columns=["_change_type", "_commit_version"]))
    feed = feed.cast(pa.schema([pa.field(f.name, pa.string() if pa.types.is_string_view(f.type) else f.type)
                                for f in feed.schema]))
    out: dict[int, dict[str, int]] = {}
    for row in feed.group_by(["_commit_version", "_change_type"]).aggregate([([], "count_all")]).to_pylist():
        out.setdefault(row["_commit_version"], {})[row["_change_type"]] = row["count_all"]
    return out


def expected_cdf(counts: dict[str, int]) -> dict[str, int]:
    out = {CDF[op]: n for op, n in counts.items() if n}
    if counts["U"]:
        out["update_preimage"] = counts["U"]
    return out


def commits(fmt: DeltaFormat, table: str) -> list[dict]:
    return sorted(delta(fmt, table).history(), key=lambda h: h["version"])


@pytest.fixture
def fmt(tmp_path: Path) -> DeltaFormat:
    return format_for(tmp_path, "delta")


# --- real and demo data ----------------------------------------------------------------------------------

@pytest.mark.parametrize("table", ["clientes", "produtos"])
def test_real_runs_give_state_feed_and_time_travel(fmt: DeltaFormat, tmp_path: Path, table: str):
    chain = real_chain(tmp_path / "runs", table)
    versions = apply_and_check(fmt, chain, head(fmt))
    assert versions == [0, 1]
    feed = cdf_counts(fmt, table)
    assert feed[0] == {"insert": pq_rows(chain.runs[0])}
    assert feed[1] == expected_cdf(chain.counts[1])
    dt_ = delta(fmt, table)
    assert dt_.metadata().configuration["delta.enableChangeDataFeed"] == "true"
    assert dt_.transaction_version(APP_ID) == int(chain.runs[1].run_id.replace("_", ""))
    assert [c[RUN_KEY] for c in commits(fmt, table)] == [r.run_id for r in chain.runs]
    assert [c["operation"] for c in commits(fmt, table)] == ["WRITE", "MERGE"]


def pq_rows(run) -> int:
    return pq.ParquetFile(run.snapshot).metadata.num_rows


def test_demo_clientes_inserts_updates_and_deletes_one_merge_per_run(fmt: DeltaFormat, tmp_path: Path):
    chain = demo_chain(tmp_path / "runs", "clientes", "idCliente", range(1, 7))
    assert sum(c["D"] for c in chain.counts[1:]) > 0 and sum(c["U"] for c in chain.counts[1:]) > 0
    versions = apply_and_check(fmt, chain, head(fmt))
    feed = cdf_counts(fmt, "clientes")
    for version, counts in zip(versions[1:], chain.counts[1:], strict=True):
        assert feed.get(version, {}) == expected_cdf(counts)
    assert len(set(versions)) == len(versions) == len(commits(fmt, "clientes"))


def test_demo_type_drift_widens_the_column_in_the_runs_one_commit(fmt: DeltaFormat, tmp_path: Path):
    """transacao_produto.IdProduto is BIGINT until a text id appears (version 14 at this scale)."""
    chain = demo_chain(tmp_path / "runs", "transacao_produto", "idTransacaoProduto", range(12, 17))
    types = [chain.snapshot(r).schema.field("IdProduto").type for r in chain.runs]
    widened = types.index(pa.string())
    assert types[widened - 1] == pa.int64()
    versions = apply_and_check(fmt, chain, head(fmt))
    history = commits(fmt, "transacao_produto")
    assert len(history) == len(chain.runs)  # one commit per run, the widening included
    rewrite = history[widened]
    assert rewrite[RUN_KEY] == chain.runs[widened].run_id
    assert "IdProduto" in rewrite["cdc.schema_change"] and rewrite["cdc.operation"] == "rewrite"
    feed = cdf_counts(fmt, "transacao_produto")
    # the rewrite shows as every old row deleted and every new row inserted: replayed, still the right state
    assert feed[versions[widened]] == {"delete": pq_rows(chain.runs[widened - 1]),
                                       "insert": pq_rows(chain.runs[widened])}
    for i in range(1, len(chain.runs)):
        if i != widened:
            assert feed[versions[i]] == expected_cdf(chain.counts[i])
    assert fmt.current("transacao_produto").schema.field("IdProduto").type == pa.string()
    assert fmt.as_of("transacao_produto", chain.runs[widened - 1].run_id).schema.field("IdProduto").type == pa.int64()


def test_before_images_and_changed_columns_of_a_later_core_are_ignored(fmt, tmp_path: Path):
    chain = demo_chain(tmp_path / "runs", "clientes", "idCliente", range(1, 4)).with_before_images()
    assert "B" in pq.read_table(chain.runs[1].changes)["op"].to_pylist()
    versions = apply_and_check(fmt, chain, head(fmt))
    feed = cdf_counts(fmt, "clientes")
    assert [feed[v] for v in versions[1:]] == [expected_cdf(c) for c in chain.counts[1:]]


# --- schema evolution ------------------------------------------------------------------------------------

BASE = pa.table({"id": ["1", "2", "3", "4"], "n": pa.array([10, 20, 30, 40], pa.int64()),
                 "name": ["a", "b", "c", "d"]})


def chain_of(tmp_path: Path, *snapshots: pa.Table, key: tuple[str, ...] = ("id",)) -> Chain:
    chain = Chain(tmp_path / "runs", "t", key)
    for snapshot in snapshots:
        chain.add(snapshot)
    return chain


def test_added_column_enters_in_the_merge(fmt: DeltaFormat, tmp_path: Path):
    added = BASE.append_column("score", pa.array([1.5, None, 2.5, None], pa.float64()))
    added = added.set_column(2, "name", pa.array(["a", "B", "c", "d"]))
    chain = chain_of(tmp_path, BASE, added)
    assert chain.counts[1] == {"I": 0, "U": 3, "D": 0}
    versions = apply_and_check(fmt, chain, head(fmt))
    assert commits(fmt, "t")[1]["operation"] == "MERGE"
    assert cdf_counts(fmt, "t")[versions[1]] == expected_cdf(chain.counts[1])


def test_removed_column_is_gone_not_stale(fmt: DeltaFormat, tmp_path: Path):
    removed = BASE.drop_columns(["name"]).set_column(1, "n", pa.array([10, 21, 30, 40], pa.int64()))
    chain = chain_of(tmp_path, BASE, removed, removed.slice(1))
    versions = apply_and_check(fmt, chain, head(fmt))
    assert "name" not in fmt.current("t").column_names
    assert "name" in fmt.as_of("t", chain.runs[0].run_id).column_names
    assert commits(fmt, "t")[1]["cdc.schema_change"] == "removed: name"
    assert cdf_counts(fmt, "t")[versions[2]] == {"delete": 1}  # the next run is an exact MERGE again


WIDENED = [
    ("int64", pa.array([10, 20, 30, 40], pa.int64())),
    ("float64", pa.array([1.5, 2.5, None, 4.0], pa.float64())),
    ("decimal", pa.array([decimal.Decimal("1.10"), None, decimal.Decimal("3.30"), decimal.Decimal("4.40")],
                         pa.decimal128(10, 2))),
    ("bool", pa.array([True, False, None, True])),
    ("date", pa.array([dt.date(2025, 1, d) for d in (1, 2, 3, 4)], pa.date32())),
    ("timestamp", pa.array([dt.datetime(2025, 1, 1, h, tzinfo=dt.UTC) for h in (1, 2, 3, 4)],
                           pa.timestamp("us", tz="UTC"))),
]


@pytest.mark.parametrize("kind,values", WIDENED, ids=[w[0] for w in WIDENED])
def test_widened_column_becomes_string_in_one_commit(fmt: DeltaFormat, tmp_path: Path, kind: str, values):
    before = BASE.set_column(1, "n", values)
    after = before.set_column(1, "n", pa.array(pc.cast(values, pa.string()).to_pylist()[:3] + ["001 - text"]))
    chain = chain_of(tmp_path, before, after)
    apply_and_check(fmt, chain, head(fmt))
    assert fmt.current("t").schema.field("n").type == pa.string()
    assert fmt.as_of("t", chain.runs[0].run_id).schema.field("n").type == values.type
    assert len(commits(fmt, "t")) == 2


def test_zone_less_timestamps_are_written_as_utc_never_timestamp_ntz(fmt: DeltaFormat, tmp_path: Path):
    naive = pa.array([dt.datetime(2025, 1, 1, h) for h in (1, 2, 3, 4)], pa.timestamp("ms"))
    chain = chain_of(tmp_path, BASE.append_column("at", naive), BASE.append_column("at", naive).slice(1))
    apply_and_check(fmt, chain, head(fmt))
    assert fmt.current("t").schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert "timestampNtz" not in (delta(fmt, "t").protocol().writer_features or [])
    assert fmt.current("t").sort_by("id")["at"][0].as_py() == dt.datetime(2025, 1, 1, 2, tzinfo=dt.UTC)


def test_composite_key_and_awkward_column_names(fmt: DeltaFormat, tmp_path: Path):
    base = pa.table({"Loja": ["1", "1", "2"], "id item": ["a", "b", "a"], "preço.R$": [1.0, 2.0, 3.0],
                     "q`x": pa.array([1, 2, 3], pa.int64())})
    nxt = pa.table({"Loja": ["1", "2", "2"], "id item": ["a", "a", "b"], "preço.R$": [1.5, 3.0, 9.0],
                    "q`x": pa.array([1, 3, 7], pa.int64())})
    chain = chain_of(tmp_path, base, nxt, key=("Loja", "id item"))
    assert chain.counts[1] == {"I": 1, "U": 1, "D": 1}
    versions = apply_and_check(fmt, chain, head(fmt))
    assert cdf_counts(fmt, "t")[versions[1]] == expected_cdf(chain.counts[1])


def test_run_without_changes_makes_no_commit(fmt: DeltaFormat, tmp_path: Path):
    chain = chain_of(tmp_path, BASE, BASE, BASE.slice(1))
    assert chain.runs[1].changes is None
    assert [fmt.apply(run) for run in chain.runs[:2]] == [0, 0]
    assert fmt.apply(chain.runs[1]) == 0 and len(commits(fmt, "t")) == 1
    assert fmt.applied_version("t", chain.runs[1].run_id) is None  # nothing written, nothing recorded
    assert fmt.apply(chain.runs[2]) == 1
    assert fmt.applied_version("t", chain.runs[1].run_id) == 0  # a later run reached: its state is version 0
    assert_same(fmt.as_of("t", chain.runs[1].run_id), BASE, ("id",))


def test_format_switched_on_later_starts_from_the_runs_snapshot(fmt: DeltaFormat, tmp_path: Path):
    chain = chain_of(tmp_path, BASE, BASE.slice(1))
    assert fmt.apply(chain.runs[1]) == 0  # a run with changes, but no Delta table yet: created from its snapshot
    assert_same(fmt.current("t"), chain.snapshot(chain.runs[1]), ("id",))
    assert commits(fmt, "t")[0][RUN_KEY] == chain.runs[1].run_id
    assert fmt.applied_version("t", chain.runs[0].run_id) is None
    with pytest.raises(LakeError, match="started with a later run"):
        fmt.as_of("t", chain.runs[0].run_id)
    with pytest.raises(LakeError, match="not applied"):
        fmt.as_of("t", chain.runs[1].run_id[:-1] + "9")


def test_a_first_capture_again_replaces_the_state(fmt, tmp_path: Path):
    """A lake started afresh (its first full load again) on an existing table: the snapshot becomes the state."""
    other = pa.table({"id": ["9"], "n": ["x"]})
    chain = chain_of(tmp_path, BASE, BASE.slice(1), other)
    chain.runs[2] = replace(chain.runs[2], changes=None, first=True)
    apply_and_check(fmt, chain, head(fmt))


def test_a_foreign_delta_table_is_refused(fmt: DeltaFormat, tmp_path: Path):
    from deltalake import write_deltalake

    write_deltalake(fmt.uri("t"), BASE)
    chain = chain_of(tmp_path, BASE)
    with pytest.raises(LakeError, match="did not write"):
        fmt.apply(chain.runs[0])


# --- races and crashes -----------------------------------------------------------------------------------

def test_a_writer_that_read_before_another_committed_loses_the_race(fmt: DeltaFormat, tmp_path: Path,
                                                                      monkeypatch):
    chain = chain_of(tmp_path, BASE, BASE.slice(1))
    fmt.apply(chain.runs[0])
    other = format_for(tmp_path, "delta")
    stale = delta(fmt, "t")  # the other writer read version 0 …
    fmt.apply(chain.runs[1])  # … then this one committed run 2
    monkeypatch.setattr(other, "_open", lambda table, version=None: stale)
    with pytest.raises(CommitConflict, match="lost the race"):
        other.apply(chain.runs[1])
    assert [c.get(RUN_KEY) for c in commits(fmt, "t")] == [r.run_id for r in chain.runs]
    assert_same(fmt.current("t"), chain.snapshot(chain.runs[1]), ("id",))


def test_two_writers_creating_the_table_one_loses(fmt, tmp_path: Path, monkeypatch):
    chain = chain_of(tmp_path, BASE)
    other = format_for(tmp_path, "delta")
    monkeypatch.setattr(other, "_open", lambda table, version=None: None)  # it looked before this one created the table
    fmt.apply(chain.runs[0])
    with pytest.raises(CommitConflict, match="lost the race"):
        other.apply(chain.runs[0])
    assert_same(fmt.current("t"), BASE, ("id",))


def _apply_in_child(lake: str, folder: str, run, ready) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.format_runs import format_for as make

    fmt = make(Path(folder), "delta", lake)
    ready.set()
    fmt.apply(run)


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.5])
def test_kill_9_during_apply_then_rerun_applies_the_run_exactly_once(fmt: DeltaFormat, tmp_path: Path,
                                                                     delay: float):
    """A child applies run 2 and is killed at a random point; the rerun applies it once (spawn: no fork)."""
    chain = demo_chain(tmp_path / "runs", "clientes", "idCliente", range(1, 3), scale=1)
    fmt.apply(chain.runs[0])
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_apply_in_child, args=("lake", str(tmp_path), chain.runs[1], ready))
    child.start()
    assert ready.wait(60)
    child.join(delay)
    child.kill()
    child.join()
    version = fmt.apply(chain.runs[1])
    assert [c.get(RUN_KEY) for c in commits(fmt, "clientes")] == [r.run_id for r in chain.runs]
    assert_same(fmt.current("clientes"), chain.snapshot(chain.runs[1]), ("idCliente",))
    assert cdf_counts(fmt, "clientes")[version] == expected_cdf(chain.counts[1])


def test_tables_applied_from_parallel_workers(fmt, tmp_path: Path):
    """The pipeline captures tables in parallel threads with one format object."""
    chains = [demo_chain(tmp_path / name, name, key, range(1, 5))
              for name, key in (("clientes", "idCliente"), ("transacoes", "IdTransacao"), ("produtos", "IdProduto"))]
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda chain: [fmt.apply(run) for run in chain.runs], chains))
    for chain in chains:
        assert_same(fmt.current(chain.table), chain.snapshot(chain.runs[-1]), chain.key, chain.table)
        for run in chain.runs[1:]:
            assert fmt.applied_version(chain.table, run.run_id) is not None or run.changes is None


# --- S3 ----------------------------------------------------------------------------------------------------

def test_s3_lake_real_runs_with_change_feed(s3_lake: str, tmp_path: Path):
    fmt = format_for(tmp_path, "delta", s3_lake)
    assert fmt.uri("clientes") == f"{s3_lake}/delta/clientes"
    assert "testing-secret-value" not in repr(fmt.__dict__)  # options are resolved lazily, on first use
    chain = real_chain(tmp_path / "runs", "clientes")
    versions = apply_and_check(fmt, chain, head(fmt))
    assert cdf_counts(fmt, "clientes")[versions[1]] == expected_cdf(chain.counts[1])


# --- config ------------------------------------------------------------------------------------------------

def test_missing_deltalake_is_a_config_error_naming_the_extra(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "deltalake", None)
    with pytest.raises(ConfigError, match=r"needs deltalake: pip install 'cdc-core\[delta\]'"):
        format_for(tmp_path, "delta")


# --- the law, on random sequences ----------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(format_runs.snapshot_sequences())
def test_random_sequences_of_snapshots_come_back_run_by_run(snapshots):
    with tempfile.TemporaryDirectory() as folder:
        fmt = format_for(Path(folder), "delta")
        chain = chain_of(Path(folder), *snapshots)
        versions = apply_and_check(fmt, chain, head(fmt))
        feed, history = cdf_counts(fmt, "t"), {c["version"]: c for c in commits(fmt, "t")}
        for i in range(1, len(chain.runs)):
            commit = history.get(versions[i])
            if versions[i] == versions[i - 1]:  # nothing written
                assert chain.runs[i].changes is None
            elif commit["cdc.operation"] == "merge":
                assert feed.get(versions[i], {}) == expected_cdf(chain.counts[i])
            else:  # a rewrite: every old row out, every new row in
                old, new = pq_rows(chain.runs[i - 1]), pq_rows(chain.runs[i])
                assert feed.get(versions[i], {}) == {k: v for k, v in (("delete", old), ("insert", new)) if v}


def test_differences_says_what_differs_for_verify(fmt: DeltaFormat, tmp_path: Path):
    chain = chain_of(tmp_path, BASE, BASE.slice(1))
    fmt.apply(chain.runs[0])
    state, key = fmt.current("t"), ("id",)
    assert differences(state, BASE, key) is None
    assert differences(state, chain.snapshot(chain.runs[1]), key) == "4 rows, not 3"
    assert differences(state, BASE.drop_columns(["name"]), key) == "columns differ (extra: name; missing: —)"
    assert differences(state, BASE.set_column(1, "n", pa.array(["1", "2", "3", "4"])), key) == \
        "column types differ: n is int64, not string"
    assert differences(state, BASE.set_column(2, "name", pa.array(["a", "b", "x", "d"])), key) == \
        "row 3 in key order differs (id='3')"


def test_readme_readers_deltalake_and_pyarrow(tmp_path: Path):
    """What the README shows a user: the table read with deltalake and pyarrow, by path, now and as of a run."""
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    chain = real_chain(tmp_path / "runs", "clientes")
    fmt = format_for(tmp_path, "delta")
    versions = [fmt.apply(run) for run in chain.runs]
    path = str(tmp_path / "lake" / "delta" / "clientes")
    dt_ = DeltaTable(path)
    assert dt_.to_pyarrow_table().num_rows == pq_rows(chain.runs[1])
    dataset = dt_.to_pyarrow_dataset()
    assert dataset.to_table(filter=ds.field("flEmail") == 1).num_rows == \
        pq.read_table(chain.runs[1].snapshot, filters=[("flEmail", "=", 1)]).num_rows
    runs = {h["cdc.run_id"]: h["version"] for h in dt_.history() if "cdc.run_id" in h}
    assert runs == dict(zip([r.run_id for r in chain.runs], versions, strict=True))
    assert DeltaTable(path, version=runs[chain.runs[0].run_id]).to_pyarrow_table().num_rows == \
        pq_rows(chain.runs[0])
    changes = pa.table(dt_.load_cdf(starting_version=1))
    assert sorted(set(changes["_change_type"].cast(pa.string()).to_pylist())) == \
        ["insert", "update_postimage", "update_preimage"]
