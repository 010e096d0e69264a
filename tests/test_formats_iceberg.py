"""Iceberg tables in the lake: state and time travel per run, one catalog commit per run, idempotent and crash-safe
applies, schema evolution; a local SQLite catalog and S3 with the Glue catalog (moto) — read back with pyiceberg."""

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
from hypothesis import given, settings

from cdc_core.errors import ConfigError, LakeError
from cdc_core.formats import CommitConflict
from cdc_core.formats.iceberg import LAST_RUN, RUN_KEY, IcebergFormat

from . import format_runs
from .format_runs import Chain, apply_and_check, assert_same, demo_chain, format_for, real_chain

moto_endpoint, s3_lake = format_runs.moto_endpoint, format_runs.s3_lake  # fixtures


def head(fmt: IcebergFormat):
    return lambda table: fmt._existing(table).metadata_location


def run_snapshots(fmt: IcebergFormat, table: str) -> list[tuple[str, str]]:
    """(run id, operation) of every snapshot on the main branch, oldest first."""
    found = fmt._existing(table)
    return [(s.summary[RUN_KEY], s.summary.operation.value) for s in
            (found.snapshot_by_id(e.snapshot_id) for e in found.history())]


@pytest.fixture
def fmt(tmp_path: Path) -> IcebergFormat:
    return format_for(tmp_path, "iceberg")


# --- real and demo data ----------------------------------------------------------------------------------

@pytest.mark.parametrize("table", ["clientes", "produtos"])
def test_real_runs_give_state_and_time_travel(fmt: IcebergFormat, tmp_path: Path, table: str):
    chain = real_chain(tmp_path / "runs", table)
    versions = apply_and_check(fmt, chain, head(fmt))
    found = fmt._existing(table)
    assert found.properties[LAST_RUN] == chain.runs[-1].run_id
    assert found.current_snapshot().snapshot_id == versions[-1]
    assert [r for r, _ in run_snapshots(fmt, table)] == [r.run_id for r in chain.runs]  # one snapshot per run
    assert (tmp_path / "lake" / "iceberg" / "catalog.db").is_file()


def test_demo_clientes_inserts_updates_and_deletes(fmt: IcebergFormat, tmp_path: Path):
    chain = demo_chain(tmp_path / "runs", "clientes", "idCliente", range(1, 7))
    assert sum(c["D"] for c in chain.counts[1:]) > 0 and sum(c["U"] for c in chain.counts[1:]) > 0
    apply_and_check(fmt, chain, head(fmt))
    assert [op for _, op in run_snapshots(fmt, "clientes")] == ["append"] + ["overwrite"] * 5


def test_demo_type_drift_widens_the_column(fmt: IcebergFormat, tmp_path: Path):
    chain = demo_chain(tmp_path / "runs", "transacao_produto", "idTransacaoProduto", range(12, 17))
    types = [chain.snapshot(r).schema.field("IdProduto").type for r in chain.runs]
    widened = types.index(pa.string())
    apply_and_check(fmt, chain, head(fmt))
    assert fmt.current("transacao_produto").schema.field("IdProduto").type == pa.string()
    assert fmt.as_of("transacao_produto", chain.runs[widened - 1].run_id).schema.field("IdProduto").type == pa.int64()
    # the widening run rewrote the table: a delete and an append snapshot, both naming the run
    assert [r for r, _ in run_snapshots(fmt, "transacao_produto")].count(chain.runs[widened].run_id) == 2


def test_before_images_and_changed_columns_of_a_later_core_are_ignored(fmt, tmp_path: Path):
    chain = demo_chain(tmp_path / "runs", "clientes", "idCliente", range(1, 4)).with_before_images()
    assert "B" in pq.read_table(chain.runs[1].changes)["op"].to_pylist()
    apply_and_check(fmt, chain, head(fmt))


# --- schema evolution ------------------------------------------------------------------------------------

BASE = pa.table({"id": ["1", "2", "3", "4"], "n": pa.array([10, 20, 30, 40], pa.int64()),
                 "name": ["a", "b", "c", "d"]})


def chain_of(tmp_path: Path, *snapshots: pa.Table, key: tuple[str, ...] = ("id",)) -> Chain:
    chain = Chain(tmp_path / "runs", "t", key)
    for snapshot in snapshots:
        chain.add(snapshot)
    return chain


def test_added_column(fmt: IcebergFormat, tmp_path: Path):
    added = BASE.append_column("score", pa.array([1.5, None, 2.5, None], pa.float64()))
    chain = chain_of(tmp_path, BASE, added, added.slice(1))
    apply_and_check(fmt, chain, head(fmt))


def test_removed_column_is_dropped_from_the_schema_not_kept_stale(fmt: IcebergFormat, tmp_path: Path):
    removed = BASE.drop_columns(["name"]).set_column(1, "n", pa.array([10, 21, 30, 40], pa.int64()))
    back = removed.append_column("name", pa.array([None, None, None, "new"]))  # comes back: a new column
    chain = chain_of(tmp_path, BASE, removed, removed.slice(1), back.slice(1))
    apply_and_check(fmt, chain, head(fmt))
    assert fmt.current("t").sort_by("id").column("name").to_pylist() == [None, None, "new"]


def test_schema_change_without_change_rows_still_travels_in_time(fmt: IcebergFormat, tmp_path: Path):
    empty = BASE.append_column("note", pa.nulls(4, pa.string()))  # an all-NULL new column: no change row
    chain = chain_of(tmp_path, BASE, empty)
    assert chain.runs[1].changes is None
    apply_and_check(fmt, chain, head(fmt))


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
def test_widened_column_becomes_string_in_one_catalog_commit(fmt: IcebergFormat, tmp_path: Path, kind, values):
    before = BASE.set_column(1, "n", values)
    after = before.set_column(1, "n", pa.array(pc.cast(values, pa.string()).to_pylist()[:3] + ["001 - text"]))
    chain = chain_of(tmp_path, before, after)
    fmt.apply(chain.runs[0])
    log = len(fmt._existing("t").metadata.metadata_log)
    apply_and_check(fmt, Chain(chain.folder, "t", ("id",), runs=chain.runs[1:], counts=chain.counts[1:]),
                    head(fmt))
    assert len(fmt._existing("t").metadata.metadata_log) == log + 1  # one metadata file more: one commit
    assert fmt.current("t").schema.field("n").type == pa.string()
    assert fmt.as_of("t", chain.runs[0].run_id).schema.field("n").type == values.type


def test_composite_key_and_awkward_column_names(fmt: IcebergFormat, tmp_path: Path):
    base = pa.table({"Loja": ["1", "1", "2"], "id item": ["a", "b", "a"], "preço.R$": [1.0, 2.0, 3.0],
                     "q`x": pa.array([1, 2, 3], pa.int64())})
    nxt = pa.table({"Loja": ["1", "2", "2"], "id item": ["a", "a", "b"], "preço.R$": [1.5, 3.0, 9.0],
                    "q`x": pa.array([1, 3, 7], pa.int64())})
    chain = chain_of(tmp_path, base, nxt, key=("Loja", "id item"))
    assert chain.counts[1] == {"I": 1, "U": 1, "D": 1}
    apply_and_check(fmt, chain, head(fmt))


def test_run_without_changes_makes_no_commit(fmt: IcebergFormat, tmp_path: Path):
    chain = chain_of(tmp_path, BASE, BASE, BASE.slice(1))
    first = fmt.apply(chain.runs[0])
    before = head(fmt)("t")
    assert fmt.apply(chain.runs[1]) == first and head(fmt)("t") == before
    assert fmt.applied_version("t", chain.runs[1].run_id) is None
    fmt.apply(chain.runs[2])
    assert fmt.applied_version("t", chain.runs[1].run_id) == first
    assert_same(fmt.as_of("t", chain.runs[1].run_id), BASE, ("id",))


def test_a_first_capture_again_replaces_the_state(fmt, tmp_path: Path):
    """A lake started afresh (its first full load again) on an existing table: the snapshot becomes the state."""
    other = pa.table({"id": ["9"], "n": ["x"]})
    chain = chain_of(tmp_path, BASE, BASE.slice(1), other)
    chain.runs[2] = replace(chain.runs[2], changes=None, first=True)
    apply_and_check(fmt, chain, head(fmt))


def test_a_foreign_iceberg_table_is_refused(fmt: IcebergFormat, tmp_path: Path):
    fmt.catalog.create_table(fmt.identifier("t"), schema=BASE.schema)
    chain = chain_of(tmp_path, BASE)
    with pytest.raises(LakeError, match="not written by cdc_core"):
        fmt.apply(chain.runs[0])


# --- races and crashes -----------------------------------------------------------------------------------

def test_a_writer_that_read_before_another_committed_loses_the_race(fmt: IcebergFormat, tmp_path: Path,
                                                                      monkeypatch):
    chain = chain_of(tmp_path, BASE, BASE.slice(1))
    fmt.apply(chain.runs[0])
    other = format_for(tmp_path, "iceberg")
    stale = other._existing("t")  # the other writer loaded the table …
    fmt.apply(chain.runs[1])  # … then this one committed run 2
    monkeypatch.setattr(other, "_open", lambda table: stale)
    with pytest.raises(CommitConflict, match="lost the race"):
        other.apply(chain.runs[1])
    assert [r for r, _ in run_snapshots(fmt, "t")] == [r.run_id for r in chain.runs]
    assert_same(fmt.current("t"), chain.snapshot(chain.runs[1]), ("id",))


def test_two_writers_creating_the_table_one_loses(fmt, tmp_path: Path, monkeypatch):
    chain = chain_of(tmp_path, BASE)
    other = format_for(tmp_path, "iceberg")
    monkeypatch.setattr(other, "_open", lambda table: None)  # it looked before this one created the table
    fmt.apply(chain.runs[0])
    with pytest.raises(CommitConflict, match="lost the race"):
        other.apply(chain.runs[0])
    assert_same(fmt.current("t"), BASE, ("id",))


def _apply_in_child(folder: str, run, ready) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.format_runs import format_for as make

    fmt = make(Path(folder), "iceberg")
    fmt.catalog  # noqa: B018 — connect before saying ready
    ready.set()
    fmt.apply(run)


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0])
def test_kill_9_during_apply_then_rerun_applies_the_run_exactly_once(fmt: IcebergFormat, tmp_path: Path,
                                                                     delay: float):
    chain = demo_chain(tmp_path / "runs", "clientes", "idCliente", range(1, 3), scale=1)
    fmt.apply(chain.runs[0])
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_apply_in_child, args=(str(tmp_path), chain.runs[1], ready))
    child.start()
    assert ready.wait(60)
    child.join(delay)
    child.kill()
    child.join()
    fmt.apply(chain.runs[1])
    assert [r for r, _ in run_snapshots(fmt, "clientes")] == [r.run_id for r in chain.runs]
    assert_same(fmt.current("clientes"), chain.snapshot(chain.runs[1]), ("idCliente",))


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


# --- S3 with the Glue catalog ------------------------------------------------------------------------------

def test_s3_lake_with_glue_catalog(s3_lake: str, moto_endpoint: str, tmp_path: Path):
    catalog = {"type": "glue", "glue.endpoint": moto_endpoint, "glue.region": "us-east-1"}
    fmt = format_for(tmp_path, "iceberg", s3_lake, iceberg={"namespace": tmp_path.name.lower().replace("-", "_")[:40],
                                                             "catalog": catalog})
    chain = demo_chain(tmp_path / "runs", "transacao_produto", "idTransacaoProduto", range(13, 16))
    apply_and_check(fmt, chain, head(fmt))
    location = fmt._existing("transacao_produto").location()
    assert location.startswith(f"{s3_lake}/iceberg/")
    import boto3

    glue = boto3.client("glue", region_name="us-east-1", endpoint_url=moto_endpoint)
    table = glue.get_table(DatabaseName=fmt.config.namespace, Name="transacao_produto")["Table"]
    assert table["Parameters"]["table_type"].upper() == "ICEBERG"


# --- config ------------------------------------------------------------------------------------------------

def test_missing_pyiceberg_is_a_config_error_naming_the_extra(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyiceberg", None)
    with pytest.raises(ConfigError, match=r"needs pyiceberg: pip install 'cdc-core\[iceberg\]'"):
        format_for(tmp_path, "iceberg")


def test_s3_lake_needs_an_explicit_catalog(tmp_path: Path):
    with pytest.raises(ConfigError, match="an S3 lake needs an explicit Iceberg catalog"):
        format_for(tmp_path, "iceberg", "s3://bucket/prefix")


# --- the law, on random sequences ----------------------------------------------------------------------------

@settings(max_examples=15, deadline=None)
@given(format_runs.snapshot_sequences())
def test_random_sequences_of_snapshots_come_back_run_by_run(snapshots):
    with tempfile.TemporaryDirectory() as folder:
        fmt = format_for(Path(folder), "iceberg")
        chain = chain_of(Path(folder), *snapshots)
        apply_and_check(fmt, chain, head(fmt))


def test_readme_reader_pyiceberg_with_the_default_sqlite_catalog(tmp_path: Path):
    """What the README shows a user: the default catalog opened by hand, the table now and as of a run."""
    from pyiceberg.catalog import load_catalog

    chain = real_chain(tmp_path / "runs", "clientes")
    fmt = format_for(tmp_path, "iceberg")
    for run in chain.runs:
        fmt.apply(run)
    lake = tmp_path / "lake"
    catalog = load_catalog("cdc", type="sql", uri=f"sqlite:///{lake}/iceberg/catalog.db",
                           warehouse=f"file://{lake}/iceberg")
    table = catalog.load_table("cdc.clientes")
    assert table.location() == f"file://{lake}/iceberg/cdc/clientes"
    assert table.scan().to_arrow().num_rows == chain.snapshot(chain.runs[1]).num_rows
    runs = {s.summary["cdc.run_id"]: s.snapshot_id for s in table.snapshots()}
    assert table.scan(snapshot_id=runs[chain.runs[0].run_id]).to_arrow().num_rows == \
        chain.snapshot(chain.runs[0]).num_rows
    assert table.properties["cdc.key"] == "idCliente"
