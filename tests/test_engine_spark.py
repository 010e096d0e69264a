"""The Spark engine gives the DuckDB engine's results: types, change rows, counts, warnings, errors and files.

Every test runs the same step on both engines (`spark_parity.capture`) and compares all of it; the Spark side runs
on one local[2] session shared by the whole module. Where Spark cannot match DuckDB, the boundary is a test too.
"""

from __future__ import annotations

import gzip
import shutil
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc_core.config import EngineConfig, TableConfig
from cdc_core.engines.duckdb import DuckDBEngine
from cdc_core.types import Column

from .spark_parity import assert_same, capture

pytest.importorskip("pyspark")
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def spark_engine():
    from cdc_core.engines.spark import SparkEngine

    engine = SparkEngine(settings=EngineConfig(type="spark", master="local[2]",
                                               conf={"spark.sql.shuffle.partitions": "2"}))
    yield engine
    engine.close()


def both(spark_engine, folder: Path, previous: str | Path, current: str | Path, table: TableConfig, **options):
    """Write the two versions (text, or files as they are), capture them on both engines, compare everything."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, data in (("previous", previous), ("current", current)):
        if isinstance(data, Path):
            files.append(data)
        else:
            files.append(folder / f"{name}.csv")
            files[-1].write_text(data, encoding="utf-8")
    duck = capture(DuckDBEngine(), folder / "duckdb", *files, table, **options)
    spark = capture(spark_engine, folder / "spark", *files, table, **options)
    assert_same(duck, spark)
    return duck


T = TableConfig("t", ("id",), sep=";")


@pytest.mark.parametrize("previous, current, counts", [
    ("id;v\n1;\n2;\n", "id;v\n1;\n2;x\n", {"I": 0, "U": 1, "D": 0}),  # NULL↔NULL unchanged, NULL→value
    ("id;v\n1;x\n2;y\n", "id;v\n1;\n2;y\n", {"I": 0, "U": 1, "D": 0}),  # value→NULL
    ("id;v;w\n1;a;\n", "id;v\n1;a\n2;b\n", {"I": 1, "U": 0, "D": 0}),  # a removed column changes no row
    ("id;v\n1;a\n", "id;v;w\n1;a;\n3;c;z\n", {"I": 1, "U": 0, "D": 0}),  # an added all-NULL value: no update
    ("id;nome\n1;a\n", "id;Nome\n1;a\n", {"I": 0, "U": 1, "D": 0}),  # case changed: one removed, one added
    ("id;n\n1;5\n2;6\n", "id;n\n1;5\n2;n/a\n", {"I": 0, "U": 1, "D": 0}),  # widening: only the real change
    ("id;n\n1;007\n2;8\n", "id;n\n1;007\n2;9\n", {"I": 0, "U": 1, "D": 0}),  # leading zero: text
    ("id;n\n1;10655300029372195000007\n", "id;n\n1;10655300029372195000008\n", {"I": 0, "U": 1, "D": 0}),
    ("id;p\n1;20.50\n2;1.25\n", "id;p\n1;20.50\n2;1.5\n", {"I": 0, "U": 1, "D": 0}),  # decimals widen to text
    ("id;b\n1;true\n2;false\n", "id;b\n1;true\n2;true\n", {"I": 0, "U": 1, "D": 0}),
    ("id;d\n1;2025-01-02\n", "id;d\n1;2025-01-03\n2;02/01/2025\n", {"I": 1, "U": 1, "D": 0}),
    ('id;s\n1;"a;b"\n2;"x""y"\n', 'id;s\n1;"a;b"\n2;"line\nbreak"\n', {"I": 0, "U": 1, "D": 0}),  # quotes
    ("id;s\r\n1;a\r\n2;b\r\n", 'id;s\r\n1;a\r\n2;"b\r\nc"\r\n', {"I": 0, "U": 1, "D": 0}),  # CRLF
    ("id;s\n1;a\nid;s\n", "id;s\n1;a\nid;t\n", {"I": 0, "U": 1, "D": 0}),  # a row that repeats the header
    ("\ufeffid;s\n1;a\n", "id;s\n1;a\n2;\n", {"I": 1, "U": 0, "D": 0}),  # a byte order mark
    ("id;s\n", "id;s\n1;a\n", {"I": 1, "U": 0, "D": 0}),  # no rows at first
])
def test_edge_cases_match(spark_engine, tmp_path: Path, previous, current, counts):
    assert both(spark_engine, tmp_path, previous, current, T).changes.counts == counts


@pytest.mark.parametrize("value", [  # each part of the ISO layouts at least once
    "2025-01-02 10:00:00", "2025-01-02T10:00:00.123", "2025-01-02 10:00:00.123456Z", "2025-01-02T10:00Z",
])
def test_each_timestamp_flavour_keeps_its_layout_and_widens_on_its_text(spark_engine, tmp_path: Path, value):
    later = value.replace("10:00", "11:00")
    duck = both(spark_engine, tmp_path, f"id;ts\n1;{value}\n2;{value}\n", f"id;ts\n1;{later}\n2;{value}\n3;soon\n",
                T)
    assert duck.first.columns["ts"] == "TIMESTAMP WITH TIME ZONE" and duck.first.layouts["ts"]
    assert duck.changes.counts == {"I": 1, "U": 1, "D": 0}  # widened to text: only row 1 changed its text


@pytest.mark.parametrize("value, later", [
    ("2025-01-02", "2025-01-03"), ("2025-01-02 10:00:00+03:00", "2025-01-02 08:00:00Z"),
    ("2025-1-2T1:2:3.5", "2025-01-02 01:02:04.500"),
])
@pytest.mark.parametrize("detect", ["content", "date_field"])
def test_the_date_field_is_an_instant_and_date_field_mode_holds_back(spark_engine, tmp_path: Path, value, later,
                                                                      detect):
    table = TableConfig("t", ("id",), date_field="d", sep=";", detect=detect)
    duck = both(spark_engine, tmp_path, f"id;d;v\n1;{value};a\n2;{value};b\n",
                f"id;d;v\n1;{later};a\n2;{value};c\n", table)
    if detect == "date_field":
        assert duck.changes.held_back == 1  # row 2 changed without a later date


def test_composite_keys_and_before_images(spark_engine, tmp_path: Path):
    table = TableConfig("t", ("a", "b"), sep=";")
    both(spark_engine, tmp_path, "a;b;v\n1;x;1\n1;y;2\n2;x;3\n", "a;b;v\n1;x;9\n1;z;2\n2;x;3\n", table,
         before_image=True)


@pytest.mark.parametrize("previous, current, error", [
    ("id;v\n1;a\n1;b\n", "id;v\n1;a\n", "1 key value(s) appear more than once (e.g. 1 ×2)"),
    ("id;v\n1;a\n;b\n", "id;v\n1;a\n", "1 row(s) have an empty key (id)"),
    ("id;v\n1;a\n2;b;c\n", "id;v\n1;a\n", "line 3 has 3 fields but the header has 2"),
    ("id;v;V\n1;a;b\n", "id;v\n1;a\n", 'columns "v" and "V" differ only in case'),
    ("id;v\n1;a\n", "id;v\n1;a\n2;b\n2;c\n", "key value(s) appear more than once"),
    ("id;v\n1; \"a\"\n", "id;v\n1;a\n", "line 2 has a space between a quote and its separator"),
    ("id;op\n1;a\n", "id;v\n1;a\n", 'column "op" has a name the change rows use themselves'),
    ("\nid;v\n1;a\n", "id;v\n1;a\n", "line 1 is blank, but the header must be the first line"),
    ("id;v\n1;a\r\n2;b\n", "id;v\n1;a\n", "line 2 ends with CRLF but line 1 ends with LF"),
])
def test_bad_input_gets_the_same_one_line_error(spark_engine, tmp_path: Path, previous, current, error):
    duck = capture(DuckDBEngine(), tmp_path / "d", *_files(tmp_path, previous, current), T)
    spark = capture(spark_engine, tmp_path / "s", *_files(tmp_path, previous, current), T)
    assert error in duck.error and spark.error == duck.error


def test_rename_captures_a_column_named_like_ours_alike_from_csv_and_parquet(spark_engine, tmp_path: Path):
    table = TableConfig("t", ("id",), sep=";", rename=(("op", "source_op"),))
    duck = both(spark_engine, tmp_path / "csv", "id;op\n1;I\n2;I\n", "id;op\n1;U\n3;I\n", table)
    assert duck.changes.counts == {"I": 1, "U": 1, "D": 1}
    typed = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": ["1", "3"], "op": ["U", "I"]}), typed)
    assert both(spark_engine, tmp_path / "parquet", "id;op\n1;I\n2;I\n", typed, table).changes.counts == {
        "I": 1, "U": 1, "D": 1}


def test_a_file_that_is_not_utf8_is_refused_and_a_real_replacement_character_is_kept(spark_engine, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes("id;v\n1;ação\n".encode("latin-1"))
    assert "is not UTF-8 text" in capture(spark_engine, tmp_path / "s", bad, bad, T).error
    both(spark_engine, tmp_path, "id;v\n1;a\ufffdb\n", "id;v\n1;a\ufffdc\n", T)


def test_pins_and_date_formats(spark_engine, tmp_path: Path):
    table = TableConfig("t", ("id",), sep=";", columns=(Column("cep", "VARCHAR"), Column("n", "DECIMAL(12,2)"),
                                                         Column("nasc", "DATE", "%d/%m/%Y"),
                                                         Column("at", "TIMESTAMP WITH TIME ZONE", "%d/%m/%Y %H:%M:%S.%g")))
    both(spark_engine, tmp_path, "id;cep;n;nasc;at\n1;0131;20.5;1/2/2025;01/02/2025 10:00:00.5\n",
         "id;cep;n;nasc;at\n1;131;20.50;01/02/2025;01/02/2025 10:00:00.500\n2;;;13/12/1999;\n", table)
    bad = both(spark_engine, tmp_path / "bad", "id;cep;n;nasc;at\n1;1;1;31/02/2025;\n", "id;cep;n;nasc;at\n", table)
    assert "is pinned to DATE in the format '%d/%m/%Y' but has values that are not (e.g. '31/02/2025')" in bad.error
    typo = both(spark_engine, tmp_path / "typo", "id;cep;n;nasc;at\n1;1;1;;\n", "id;cep;n;nasc;at\n",
                TableConfig("t", ("id",), sep=";", columns=(Column("cpe", "VARCHAR"),)))
    assert 'has no column "cpe" that "columns" pins (columns: id, cep, n, nasc, at) — fix the name' in typo.error


def test_gzip_and_parquet_inputs(spark_engine, tmp_path: Path):
    gz = tmp_path / "t.csv"  # gzipped, without the .gz name Spark would need
    gz.write_bytes(gzip.compress(b"id;n\n1;5\n2;6\n"))
    typed = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": pa.array([1, 3], pa.int32()), "n": pa.array([5, 7], pa.int16()),
                             "when": pa.array([0, 10**12], pa.timestamp("us")),
                             "p": pa.array([1, None], pa.decimal128(9, 3)), "x": [1.5, None]}), typed)
    duck = both(spark_engine, tmp_path, gz, typed, T)
    assert duck.changes.counts == {"I": 1, "U": 1, "D": 1}  # row 1 gains values in the added columns


def test_the_spark_diff_command_reads_a_parquet_input_and_refuses_nanoseconds_in_one_line(
        spark_engine, tmp_path: Path, capsys):
    """As the capture refuses such a file (README, Spark engine): one line, exit 1, never a traceback."""
    from cdc_core.cli import main
    from cdc_core.errors import InputError

    _ = spark_engine.spark  # the command joins this session instead of starting its own
    previous = tmp_path / "a.csv"
    previous.write_text("id;v;at\n1;a;2025-01-02 10:00:00\n2;b;2025-01-02 10:00:00\n", encoding="utf-8")
    stamps = [datetime(2025, 1, 2, 10), datetime(1970, 1, 1)]
    for unit in ("us", "ns"):  # ns: what pyarrow writes from pandas data by default
        pq.write_table(pa.table({"id": ["1", "3"], "v": ["x", "c"], "at": pa.array(stamps, pa.timestamp(unit))}),
                       tmp_path / f"{unit}.parquet")
    out = {engine: tmp_path / f"{engine}.parquet" for engine in ("duckdb", "spark")}
    for engine, path in out.items():
        assert main(["diff", str(previous), str(tmp_path / "us.parquet"), "--key", "id", "--sep", ";",
                     "--output", str(path), "--engine", engine]) == 0
    counts = [line for line in capsys.readouterr().out.splitlines() if line.startswith("I ")]
    assert [line.split("  →")[0] for line in counts] == ["I 1  U 1  D 1"] * 2
    assert pq.read_table(out["spark"]).sort_by("id").to_pylist() == \
        pq.read_table(out["duckdb"]).sort_by("id").to_pylist()

    nanos = tmp_path / "ns.parquet"
    assert main(["diff", str(previous), str(nanos), "--key", "id", "--sep", ";", "--output",
                 str(tmp_path / "o.parquet"), "--engine", "spark"]) == 1
    err = capsys.readouterr().err
    with pytest.raises(InputError) as captured:  # what a capture says of the same file
        spark_engine.load_snapshot(nanos, T, tmp_path / "snapshot.parquet")
    assert err == "Error: " + str(captured.value).replace('Table "t": ns.parquet', str(nanos)) + "\n"
    assert err.startswith(f"Error: {nanos} cannot be read as Parquet ([PARQUET_TYPE_ILLEGAL] Illegal Parquet type: "
                          "INT64 (TIMESTAMP(NANOS,false))") and err.endswith(") — fix the file\n")
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("previous, current, table", [
    (DATA / "clientes_20250918.csv", DATA / "clientes_20250922.csv",
     TableConfig("clientes", ("idCliente",), date_field="DtAtualizacao", sep=";", detect="content")),
    (DATA / "clientes_20250918.csv", DATA / "clientes_20250922.csv",
     TableConfig("clientes", ("idCliente",), date_field="DtAtualizacao", sep=";", detect="date_field")),
    (DATA / "produtos_41.csv", DATA / "produtos_118.csv", TableConfig("produtos", ("IdProduto",), sep=";")),
], ids=["clientes-content", "clientes-date_field", "produtos-content"])
def test_the_real_files(spark_engine, tmp_path: Path, previous, current, table):
    duck = both(spark_engine, tmp_path, previous, current, table, before_image=True)
    assert duck.changes.total


# --- boundaries: a pinned value only one engine would read (or would round) is refused by both, in one line ------

@pytest.mark.parametrize("pin, value", [
    ("BIGINT", "5.9"), ("BIGINT", " 5"), ("BIGINT", "1e3"), ("BOOLEAN", "on"), ("DECIMAL(18,2)", "1.005"),
])
def test_a_pinned_value_that_would_be_rounded_or_read_differently_is_refused_by_both(spark_engine, tmp_path: Path,
                                                                                    pin, value):
    table = TableConfig("t", ("id",), sep=";", columns=(Column("n", pin),))
    files = _files(tmp_path, f"id;n\n1;{value}\n", f"id;n\n1;{value}\n")
    duck = capture(DuckDBEngine(), tmp_path / "d", *files, table)
    spark = capture(spark_engine, tmp_path / "s", *files, table)
    assert f"is pinned to {pin} but has values that are not (e.g. {value!r})" in duck.error
    assert spark.error == duck.error


def test_a_double_drifting_to_text_compares_on_javas_rendering(spark_engine, tmp_path: Path):
    """DuckDB prints 1e+20, Spark 1.0E20: the one drift where the engines differ (README, Spark engine)."""
    first = tmp_path / "first.parquet"
    pq.write_table(pa.table({"id": ["1", "2"], "x": [1e20, 0.5]}), first)
    second = tmp_path / "second.parquet"
    pq.write_table(pa.table({"id": ["1", "2"], "x": ["1e+20", "0.5"]}), second)
    duck = DuckDBEngine().diff(first, second, T, output=tmp_path / "d.parquet", stamp={})
    spark = spark_engine.diff(first, second, T, output=tmp_path / "s.parquet", stamp={})
    assert duck.counts["U"] == 0 and spark.counts["U"] == 1


# --- the law, on random pairs ------------------------------------------------------------------------------------

VALUES = {
    "n": st.sampled_from(["", "0", "7", "-12", "007", "x"]),
    "p": st.sampled_from(["", "1.50", "20.00", "-0.25", "3.5"]),
    "ts": st.sampled_from(["", "2025-01-02 10:00:00", "2025-01-02 10:00:00.000", "2025-13-01 00:00:00",
                           "2025-01-02T23:59:59"]),
    "d": st.sampled_from(["", "2025-01-02", "2025-02-30", "1999-12-31"]),
    "s": st.sampled_from(["", "a", "ção", '"q"', "a;b"]),
}


@st.composite
def csv_pairs(draw):
    keys = draw(st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 3)), unique=True, max_size=6))

    def version():
        cols = draw(st.lists(st.sampled_from(sorted(VALUES)), unique=True, min_size=1, max_size=3))
        ks = draw(st.lists(st.sampled_from(keys), unique=True)) if keys else []
        lines = ["k1;k2;" + ";".join(cols)]
        for k in ks:
            cells = [draw(VALUES[c]) for c in cols]
            lines.append(f"{k[0]};{k[1]};" + ";".join(f'"{v.replace(chr(34), chr(34) * 2)}"' if v else ""
                                                        for v in cells))
        return "\n".join(lines) + "\n"

    return version(), version()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(pair=csv_pairs())
def test_law_both_engines_give_the_same_lake_on_random_pairs(spark_engine, tmp_path_factory, pair):
    folder = tmp_path_factory.mktemp("law")
    both(spark_engine, folder, *pair, TableConfig("t", ("k1", "k2"), sep=";"), before_image=True)


def _files(folder: Path, previous: str, current: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, data in (("previous", previous), ("current", current)):
        out.append(folder / f"{name}.csv")
        out[-1].write_text(data, encoding="utf-8")
    return tuple(out)


def test_footer_metadata_is_replaced_in_place(tmp_path: Path):
    from cdc_core.engines.spark.parquet import set_key_value_metadata

    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"a": list(range(1000)), "b": ["x"] * 1000}), path, metadata_collector=None)
    before = path.stat().st_size
    set_key_value_metadata(path, {b"cdc_core": b'{"formats": {"a": "%Y"}}'})
    assert pq.read_metadata(path).metadata == {b"cdc_core": b'{"formats": {"a": "%Y"}}'}
    assert pq.read_table(path)["a"].to_pylist() == list(range(1000)) and path.stat().st_size < before + 200
    set_key_value_metadata(path, {})
    assert not pq.read_metadata(path).metadata
    import duckdb

    assert duckdb.sql(f"SELECT sum(a) FROM '{path}'").fetchall() == [(499500,)]
    shutil.copy(path, tmp_path / "g.parquet")


# --- typing, on random values: every column gets the same type (or widening) and every value the same text ------

def _near_iso(draw) -> str:
    """A timestamp-looking text, often valid, sometimes broken in one field or in its shape."""
    y, mo, d = draw(st.integers(1, 2999)), draw(st.integers(0, 13)), draw(st.integers(0, 32))
    h, mi, s = draw(st.integers(0, 24)), draw(st.integers(0, 60)), draw(st.integers(0, 60))
    sep, frac, zone = draw(st.sampled_from([" ", "T"])), draw(st.sampled_from(["", ".123", ".5", ".123456"])), \
        draw(st.sampled_from(["", "Z"]))
    return f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{zone}"


CELLS = st.one_of(
    st.integers(-10**20, 10**20).map(str), st.sampled_from(["007", "-0", "+5", "1e3", "5.", " 5", "true", "false",
                                                            "TRUE", "", "n/a", "2025-02-29", "2024-02-29"]),
    st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False).map(str),
    st.builds(lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}", st.integers(1, 2999), st.integers(0, 13),
              st.integers(0, 32)),
    st.composite(lambda draw: _near_iso(draw))(),
)


@st.composite
def typed_columns(draw):
    """Columns that mostly hold one kind of value, so that types are inferred and sometimes broken."""
    columns = []
    for _ in range(4):
        kind = draw(CELLS)
        same = st.sampled_from([kind, ""])
        columns.append([draw(st.one_of(same, same, CELLS)) for _ in range(6)])
    return columns


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(first=typed_columns(), second=typed_columns())
def test_law_both_engines_type_random_values_alike(spark_engine, tmp_path_factory, first, second):
    def text(columns):
        rows = ["id;a;b;c;d"] + [f"{i};" + ";".join(col[i] for col in columns) for i in range(6)]
        return "\n".join(rows) + "\n"

    both(spark_engine, tmp_path_factory.mktemp("types"), text(first), text(second), T)


def test_spark_connect_without_its_client_libraries_names_the_extra(monkeypatch):
    import importlib.util

    from cdc_core.engines.spark.session import open_session
    from cdc_core.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else real(name, *a))
    with pytest.raises(ConfigError, match=r"^the Spark Connect engine needs grpc: pip install 'cdc-core\[spark-connect\]'$"):
        open_session(EngineConfig(type="spark", remote="sc://127.0.0.1:1"))
