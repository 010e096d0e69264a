"""A Parquet input already in the lake's types is the snapshot as it is (copied, not re-encoded); any other is
re-encoded. Either way the snapshot holds the same values, types and data-quality numbers the write gives."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc_core.config import TableConfig
from cdc_core.engines.duckdb import snapshot, verbatim
from cdc_core.engines.duckdb.diff import diff
from cdc_core.engines.rules import schema_of

from .conftest import write_config

UTC = dt.UTC
TABLE = TableConfig("t", ("id",), date_field="ts")
LAKE_TYPED = {  # pyarrow type, values (None among them) for each lake type
    "n": (pa.int64(), st.integers(-2**63, 2**63 - 1)),
    "x": (pa.float64(), st.floats(allow_nan=False)),
    "b": (pa.bool_(), st.booleans()),
    "d": (pa.date32(), st.dates()),
    "ts": (pa.timestamp("us", tz="UTC"), st.datetimes(timezones=st.just(UTC))),
    "dec": (pa.decimal128(18, 2), st.decimals(-10**15, 10**15, places=2)),
    "bl": (pa.binary(), st.binary(max_size=8)),
    "s": (pa.string(), st.text(max_size=8)),
}


def _rows(draw_values: dict[str, list]) -> pa.Table:
    n = len(draw_values["n"])
    columns = {"id": pa.array([f"k{i}" for i in range(n)])}
    columns |= {name: pa.array(values, LAKE_TYPED[name][0]) for name, values in draw_values.items()}
    return pa.table(columns)


@st.composite
def lake_typed_tables(draw) -> pa.Table:
    n = draw(st.integers(1, 12))
    return _rows({name: draw(st.lists(st.none() | values, min_size=n, max_size=n))
                  for name, (_, values) in LAKE_TYPED.items()})


def _re_encoded(monkeypatch, src: Path, out: Path, **kwargs):
    """The snapshot the write makes, for reference (the copy refused)."""
    with monkeypatch.context() as m:
        m.setattr(verbatim, "in_lake_types", lambda *a, **k: False)
        return snapshot.load_snapshot(src, TABLE, out, **kwargs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=lake_typed_tables())
def test_a_lake_typed_parquet_input_is_copied_and_is_what_the_write_would_make(tmp_path: Path, monkeypatch, table):
    src = tmp_path / "in.parquet"
    pq.write_table(table, src, compression="snappy")
    copied = snapshot.load_snapshot(src, TABLE, tmp_path / "copied.parquet", compression="snappy")
    written = _re_encoded(monkeypatch, src, tmp_path / "written.parquet", compression="snappy")
    assert copied.path.read_bytes() == src.read_bytes()  # not re-encoded
    assert pq.read_table(copied.path).equals(pq.read_table(written.path))
    assert pq.read_schema(copied.path).remove_metadata() == pq.read_schema(written.path).remove_metadata()
    assert (copied.columns, copied.rows, copied.quality) == (written.columns, written.rows, written.quality)
    assert diff(written.path, copied.path, "id").total == 0


def _one_row(**columns) -> pa.Table:
    base = {"id": pa.array(["1"]), "n": pa.array([7], pa.int64()),
            "ts": pa.array([dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))}
    return pa.table(base | columns)


@pytest.mark.parametrize("why, table, config", [
    ("an INTEGER column becomes BIGINT", _one_row(n=pa.array([7], pa.int32())), TABLE),
    ("a naive timestamp is UTC", _one_row(ts=pa.array([dt.datetime(2025, 1, 2)], pa.timestamp("us"))), TABLE),
    ("a nanosecond date field is truncated",
     _one_row(ts=pa.array([dt.datetime(2025, 1, 2, tzinfo=UTC)], pa.timestamp("ns", tz="UTC"))), TABLE),
    ("a typed key is text", _one_row(id=pa.array([1], pa.int64())), TABLE),
    ("a DATE date field is a timestamp", _one_row(ts=pa.array([dt.date(2025, 1, 2)], pa.date32())), TABLE),
    ("a renamed column", _one_row(), TableConfig("t", ("id",), date_field="ts", rename={"n": "m"})),
    ("a required column is declared optional",
     _one_row().cast(pa.schema([pa.field("id", pa.string()), pa.field("n", pa.int64(), nullable=False),
                                pa.field("ts", pa.timestamp("us", tz="UTC"))])), TABLE),
])
def test_any_other_parquet_input_is_re_encoded_into_the_lakes_types(tmp_path: Path, why: str, table: pa.Table,
                                                                    config: TableConfig):
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    snap = snapshot.load_snapshot(src, config, tmp_path / "snap.parquet", compression="snappy")
    assert snap.path.read_bytes() != src.read_bytes(), why
    types = dict(zip(pq.read_schema(snap.path).names, pq.read_schema(snap.path).types, strict=True))
    assert types["id"] == pa.string() and types["ts"] == pa.timestamp("us", tz="UTC"), why
    assert all(field.nullable for field in pq.read_schema(snap.path)), why


def test_a_column_whose_type_changed_since_the_previous_snapshot_is_re_encoded_as_text(tmp_path: Path):
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(_one_row(), first)
    pq.write_table(_one_row(n=pa.array([1.5])), second)
    a = snapshot.load_snapshot(first, TABLE, tmp_path / "sa.parquet", compression="snappy")
    b = snapshot.load_snapshot(second, TABLE, tmp_path / "sb.parquet", previous=schema_of(a.path))
    assert a.path.read_bytes() == first.read_bytes()
    assert b.columns["n"] == "VARCHAR" and pq.read_table(b.path).column("n").to_pylist() == ["1.5"]


def test_a_copied_input_still_has_its_keys_checked(tmp_path: Path):
    from cdc_core.errors import InputError

    src = tmp_path / "in.parquet"
    pq.write_table(pa.concat_tables([_one_row(), _one_row()]), src)
    with pytest.raises(InputError, match="appear more than once"):
        snapshot.load_snapshot(src, TABLE, tmp_path / "snap.parquet", compression="snappy")
    assert not (tmp_path / "snap.parquet").exists()


def test_decimal_values_keep_their_scale(tmp_path: Path):
    src = tmp_path / "in.parquet"
    pq.write_table(_one_row(dec=pa.array([decimal.Decimal("1.50")], pa.decimal128(18, 2))), src)
    snap = snapshot.load_snapshot(src, TABLE, tmp_path / "snap.parquet")
    assert snap.columns["dec"] == "DECIMAL(18,2)" and snap.quality["dec"]["min"] == "1.50"


def _written(table: pa.Table, path: Path, **options) -> Path:
    pq.write_table(table, path, **options)
    return path


@pytest.mark.parametrize("why, write", [
    ("dictionary-encoded strings read back as a dictionary",
     lambda p: _written(_one_row(s=pa.array(["a"]).dictionary_encode()), p)),
    ("a large string", lambda p: _written(_one_row(s=pa.array(["a"], pa.large_string())), p)),
    ("milliseconds", lambda p: _written(_one_row(ts=pa.array([dt.datetime(2025, 1, 2, tzinfo=UTC)],
                                                                pa.timestamp("ms", tz="UTC"))), p)),
    ("another time zone", lambda p: _written(_one_row(ts=pa.array([dt.datetime(2025, 1, 2, tzinfo=UTC)],
                                                                    pa.timestamp("us", tz="Europe/Rome"))), p)),
    ("another lake's layouts", lambda p: _written(_one_row().replace_schema_metadata(
        {"cdc_core": '{"formats": {"ts": "%Y-%m-%d %H:%M:%S.%f"}}'}), p)),
    ("pandas' index and dtypes", lambda p: _written(pa.Table.from_pandas(_one_row().to_pandas()), p)),
    ("another codec than the lake's", lambda p: _written(_one_row(), p, compression="zstd")),
])
def test_a_lake_typed_file_is_re_encoded_when_a_reader_would_see_it_otherwise(tmp_path: Path, why: str, write):
    src = write(tmp_path / "in.parquet")
    snap = snapshot.load_snapshot(src, TABLE, tmp_path / "snap.parquet", compression="snappy")
    assert snap.path.read_bytes() != src.read_bytes(), why
    read = pq.read_schema(snap.path)
    assert not set(read.metadata or {}) - {b"cdc_core"}, why
    assert [str(t) for t in read.types][:3] == ["string", "int64", "timestamp[us, tz=UTC]"], why
    if "s" in read.names:
        assert read.field("s").type == pa.string(), why


def test_metadata_keys_that_are_not_text_are_read_past(tmp_path: Path):
    table = _one_row().replace_schema_metadata({b"\xff\xfe": b"x"})
    a, b = _written(table, tmp_path / "a.parquet"), _written(table, tmp_path / "b.parquet")
    assert diff(a, b, "id").counts == {"I": 0, "U": 0, "D": 0}


def test_a_source_file_rewritten_in_place_after_a_capture_leaves_the_lake_as_captured(tmp_path: Path):
    """A copied input is a copy: rewriting the user's file or the fetched one in place never changes the lake."""
    from cdc_core import load_config, run_once, verify

    (tmp_path / "src").mkdir()
    source = tmp_path / "src" / "t.parquet"
    pq.write_table(_one_row(), source, compression="snappy")
    config = load_config(write_config(tmp_path, source={"type": "directory", "path": "src"},
                                      tables=[{"name": "t", "pk": "id", "date_field": "ts"}]))
    assert run_once(config).ok
    full_load = tmp_path / "lake" / "full-load" / "t" / "t.parquet"
    captured = full_load.read_bytes()
    assert captured == source.read_bytes()  # copied as it is, not re-encoded
    fetched = tmp_path / "data" / "fetch" / "current" / "t.parquet"  # the last fetch, kept for --skip-download
    for rewritten in (source, fetched):  # another tool rewrites the file in place (same inode)
        with open(rewritten, "r+b") as f:
            f.write(b"\0" * len(captured))
    assert full_load.read_bytes() == captured
    assert all(check.ok for check in verify(config))


def test_a_copied_double_column_has_its_nan_in_its_quality_numbers(tmp_path: Path):
    """A footer's statistics leave NaN out: the ends of a DOUBLE column come from the data, as a scan sees them."""
    src = tmp_path / "in.parquet"
    ts = pa.array([dt.datetime(2025, 1, 2, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"id": ["1", "2", "3"], "x": [1.5, float("nan"), 2.5], "ts": ts}), src,
                   compression="snappy")
    snap = snapshot.load_snapshot(src, TABLE, tmp_path / "snap.parquet", compression="snappy")
    assert snap.path.read_bytes() == src.read_bytes()  # copied
    assert snap.quality["x"] | {"distinct": None} == {"nulls": 0, "distinct": None, "min": "1.5", "max": "nan"}
