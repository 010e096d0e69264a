"""Nothing silent at the edges of the data: each input lands exactly or is refused in one line (issue 26).

Through the real cycle: the bad table fails with one line, keeps its last capture, and the other table is
captured; the exit code is 1.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from cdc_core import load_config, run_once
from cdc_core.errors import ConfigError

from .conftest import run_cli, write_config

GOOD = b"id,v\n1,a\n2,b\n"
BIG = b"x" * (33 << 20)

BAD = {
    "a quoted header name with a line break of another kind": (b'id,"note\r\nline2",v\n1,a,b\n', "holds a line break"),
    "a stray quote in the header": (b'id,"b"c,d\n1,2,3\n', "the header (line 1) is not valid CSV"),
    "an unclosed quote in the header": (b'id,"b,c\n1,2,3\n', "the header (line 1) is not valid CSV"),
    "text after a closing quote in the header": (b'id,"c\n" ,v\n1,"c\n" ,2\n', "the header (line 1) is not valid"),
    "a space after a closing quote in a field that spans lines": (b'id,v,w\n1,"c\n" ,2\n',
                                                                   "line 2 has a space between a quote and its"),
    "an escape before an ordinary character": (b'id,v\n1,"c\\d"\n', "may only come before the quote or itself"),
    "blank lines before the header": (b"\n\nid,v\n1,a\n", "line 1 is blank, but the header must be the first line"),
    "LF and CRLF line endings": (b"id,v\n1,a\r\n2,b\n", "line 2 ends with CRLF but line 1 ends with LF"),
    "a huge last row": (b"id,v\n" + b"".join(b"%d,a\n" % i for i in range(1000)) + b"1000," + BIG + b"\n",
                        "the last line is 34,603,013 bytes long, more than the 2,000,000 a row may hold"),
    "a huge last row, gzipped": (gzip.compress(b"id,v\n1,a\n2," + BIG + b"\n", 1),
                                 "the last line is 34,603,010 bytes long, more than the 2,000,000 a row may hold"),
    **{f"a column named {name}": (f"id,v,{name}\n1,a,x\n".encode(), f'column "{name}" has a name the change rows use')
       for name in ("op", "_cdc_run_id", "_cdc_captured_at", "_cdc_op", "_change_type", "OP")},
}


def setup(tmp_path: Path, **table) -> Path:
    (tmp_path / "src").mkdir()
    for name in ("t", "other"):
        (tmp_path / "src" / f"{name}.csv").write_bytes(GOOD)
    tables = [{"name": "t", "pk": "id", **table}, {"name": "other", "pk": "id"}]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"source": {"type": "directory", "path": "src"}, "lake": "lake",
                                  "data_dir": "data", "tables": tables}))
    return config


@pytest.mark.parametrize("case", BAD)
def test_an_edge_case_is_refused_in_one_line_and_the_table_keeps_its_last_capture(tmp_path: Path, case: str):
    data, said = BAD[case]
    config = setup(tmp_path, **({"escape": "\\"} if b"\\" in data else {}))
    assert run_once(load_config(config)).tables[0].status == "full_load"
    state = (tmp_path / "data/state/t.json").read_text()
    (tmp_path / "src/t.csv").write_bytes(data)
    (tmp_path / "src/other.csv").write_bytes(GOOD + b"3,c\n")
    t, other = run_once(load_config(config)).tables
    assert t.status == "failed" and said in t.error and "\n" not in t.error
    assert (tmp_path / "data/state/t.json").read_text() == state
    assert pq.read_table(tmp_path / "lake/full-load/t/t.parquet").num_rows == 2
    assert other.status == "changes" and other.counts["I"] == 1


def test_the_cli_says_one_line_and_exits_1(tmp_path: Path):
    config = setup(tmp_path)
    (tmp_path / "src/t.csv").write_bytes(b"\nid,v\n1,a\n")
    result = run_cli("--once", "--config", str(config))
    assert result.code == 1
    assert 'FAILED: Table "t": t.csv: line 1 is blank' in result.out


@pytest.mark.parametrize("key", ["quote", "escape"])
def test_a_quote_or_escape_equal_to_the_separator_is_a_config_error(tmp_path: Path, key: str):
    config = setup(tmp_path, **{key: ","})
    with pytest.raises(ConfigError, match=rf'"tables\[0\].{key}" is \',\', which is also the separator'):
        load_config(config)


@pytest.mark.parametrize(("column", "value", "said"), [
    ("valid_to timestamp", "infinity", "column \"valid_to\" holds 'infinity', which the lake's dates and timestamps"),
    ("valid_to timestamptz", "-infinity", "column \"valid_to\" holds '-infinity'"),
    ("valid_to date", "infinity", "column \"valid_to\" holds 'infinity'"),
    ("valid_to timestamp", "294270-01-01 00:00:00", "column \"valid_to\" holds a year past 294,247"),
])
def test_postgres_values_the_lake_cannot_hold_are_refused_and_a_varchar_pin_keeps_them(pg, tmp_path: Path,
                                                                                     column: str, value: str,
                                                                                     said: str):
    from cdc_core.config import parse_config

    pg.sql(f"CREATE TABLE scd (id int PRIMARY KEY, {column})", "INSERT INTO scd VALUES (1, '2025-01-01')")

    def config(**table):
        return parse_config({"source": {"type": "postgres", "dsn": pg.dsn}, "lake": "lake", "data_dir": "data",
                             "tables": [{"name": "scd", "pk": "id", **table}]}, base_dir=tmp_path)

    assert run_once(config()).tables[0].status == "full_load"
    pg.sql(f"INSERT INTO scd VALUES (2, '{value}')")
    refused = run_once(config()).tables[0]
    assert refused.status == "failed" and said in refused.error
    assert 'pin it to "VARCHAR" in the table\'s "columns"' in refused.error
    assert pq.read_table(tmp_path / "lake/full-load/scd/scd.parquet").num_rows == 1
    pinned = run_once(config(columns={"valid_to": "VARCHAR"})).tables[0]
    assert pinned.status == "changes", pinned.error
    got = pq.read_table(tmp_path / "lake/full-load/scd/scd.parquet").to_pylist()
    assert {r["id"]: r["valid_to"] for r in got}["2"] == value


@pytest.mark.parametrize("name", ["op", "_cdc_captured_at", "_change_type"])
def test_postgres_columns_named_like_ours_are_refused_and_a_query_renames_them(pg, tmp_path: Path, name: str):
    from cdc_core.config import parse_config

    pg.sql(f'CREATE TABLE t (id int PRIMARY KEY, "{name}" text)', "INSERT INTO t VALUES (1, 'x')")

    def config(**table):
        return parse_config({"source": {"type": "postgres", "dsn": pg.dsn}, "lake": "lake", "data_dir": "data",
                             "tables": [{"name": "t", "pk": "id", **table}]}, base_dir=tmp_path)

    refused = run_once(config()).tables[0]
    assert refused.status == "failed" and f'column "{name}" has a name the change rows use' in refused.error
    assert f'rename it with "rename" in the table\'s config ({{"{name}": "source_{name.strip("_")}"}})' in refused.error
    queried = run_once(config(query=f'SELECT id, "{name}" AS source_{name.strip("_")} FROM t')).tables[0]
    assert queried.status == "full_load", queried.error
    assert pq.read_table(tmp_path / "lake/full-load/t/t.parquet").column_names == ["id", f"source_{name.strip('_')}"]


def test_a_column_named_like_ours_is_captured_under_the_name_rename_gives(tmp_path: Path):
    config = setup(tmp_path, rename={"op": "source_op", "v": "value"})
    (tmp_path / "src/t.csv").write_text("id,v,op\n1,a,I\n2,b,D\n")
    assert run_once(load_config(config)).tables[0].status == "full_load"
    (tmp_path / "src/t.csv").write_text("id,v,op\n1,a,U\n3,c,I\n")
    report = run_once(load_config(config)).tables[0]
    assert report.status == "changes" and report.counts == {"I": 1, "U": 1, "D": 1}
    [cdc] = (tmp_path / "lake/cdc/t").glob("*.parquet")
    rows = sorted(pq.read_table(cdc).select(["op", "id", "value", "source_op"]).to_pylist(), key=lambda r: r["id"])
    assert rows == [{"op": "U", "id": "1", "value": "a", "source_op": "U"},
                    {"op": "D", "id": "2", "value": "b", "source_op": "D"},
                    {"op": "I", "id": "3", "value": "c", "source_op": "I"}]


def test_a_parquet_column_is_renamed_too_and_a_rename_of_a_missing_column_is_refused(tmp_path: Path):
    import pyarrow as pa

    config = setup(tmp_path, rename={"_change_type": "change_type"})
    (tmp_path / "src/t.csv").unlink()
    pq.write_table(pa.table({"id": ["1"], "_change_type": ["insert"]}), tmp_path / "src/t.parquet")
    assert run_once(load_config(config)).tables[0].status == "full_load"
    assert pq.read_table(tmp_path / "lake/full-load/t/t.parquet").column_names == ["id", "change_type"]
    pq.write_table(pa.table({"id": ["1"], "kind": ["insert"]}), tmp_path / "src/t.parquet")
    report = run_once(load_config(config)).tables[0]
    assert report.status == "failed"
    assert "t.parquet has no column '_change_type' that \"rename\" renames (columns: id, kind)" in report.error


@pytest.mark.parametrize(("rename", "said"), [
    ({"a": "op"}, '"tables[0].rename.a" is \'op\', a name the change rows use themselves'),
    ({"a": "x", "b": "X"}, '"tables[0].rename" gives two columns the same name'),
    ({"a": ""}, '"tables[0].rename" must be an object like {"op": "source_op"}'),
    (["a"], '"tables[0].rename" must be an object'),
])
def test_a_bad_rename_is_a_config_error(tmp_path: Path, rename, said: str):
    with pytest.raises(ConfigError, match=re.escape(said)):
        load_config(setup(tmp_path, rename=rename))


LAST_NS = 1767225599999999999  # 2025-12-31 23:59:59.999999999 UTC


def parquet_capture(tmp_path: Path, name: str, table: dict, **columns):
    import pyarrow as pa

    folder = tmp_path / name
    (folder / "src").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["1"], **{c: pa.array([v], pa.timestamp("ns", tz="UTC"))
                                             for c, v in columns.items()}}), folder / "src/t.parquet")
    (folder / "config.json").write_text(json.dumps({"source": {"type": "directory", "path": "src"}, "lake": "lake",
                                                    "data_dir": "data", "tables": [{"name": "t", "pk": "id",
                                                                                    **table}]}))
    report = run_once(load_config(folder / "config.json")).tables[0]
    rows = pq.read_table(folder / "lake/full-load/t/t.parquet").to_pylist() if report.status == "full_load" else []
    return report, rows


def test_a_nanosecond_date_field_is_truncated_as_in_a_csv_never_rounded_into_the_next_year(tmp_path: Path):
    _, [row] = parquet_capture(tmp_path, "parquet", {"date_field": "at"}, at=LAST_NS)
    (tmp_path / "csv/src").mkdir(parents=True)
    (tmp_path / "csv/src/t.csv").write_text("id,at\n1,2025-12-31 23:59:59.999999999\n")
    (tmp_path / "csv/config.json").write_text(json.dumps({
        "source": {"type": "directory", "path": "src"}, "lake": "lake", "data_dir": "data",
        "tables": [{"name": "t", "pk": "id", "date_field": "at"}]}))
    assert run_once(load_config(tmp_path / "csv/config.json")).tables[0].status == "full_load"
    [csv_row] = pq.read_table(tmp_path / "csv/lake/full-load/t/t.parquet").to_pylist()
    assert row["at"].isoformat() == csv_row["at"].isoformat() == "2025-12-31T23:59:59.999999+00:00"


def test_a_nanosecond_column_is_exact_or_refused(tmp_path: Path):
    report, _ = parquet_capture(tmp_path, "finer", {}, seen=LAST_NS)
    assert report.status == "failed"
    assert 'column "seen" holds 2025-12-31 23:59:59.999999999, finer than the microseconds' in report.error
    report, [row] = parquet_capture(tmp_path, "whole", {}, seen=LAST_NS - 999)
    assert report.status == "full_load" and row["seen"].isoformat() == "2025-12-31T23:59:59.999999+00:00"


@pytest.mark.parametrize("zone", [None, "UTC"])
def test_a_nanosecond_date_field_keeps_its_infinities(tmp_path: Path, zone: str | None):
    """Truncating a nanosecond date field to microseconds leaves an infinity as it is: never a NULL in its place."""
    import pyarrow as pa

    (tmp_path / "src").mkdir()
    ends = [LAST_NS, 2**63 - 1, -(2**63 - 1), None]  # DuckDB's infinity and -infinity, and a NULL
    at = pa.array(ends, pa.int64()).cast(pa.timestamp("ns", zone))
    pq.write_table(pa.table({"id": ["1", "2", "3", "4"], "at": at}), tmp_path / "src/t.parquet")
    config = write_config(tmp_path, source={"type": "directory", "path": "src"},
                          tables=[{"name": "t", "pk": "id", "date_field": "at"}])
    assert run_once(load_config(config)).tables[0].status == "full_load"
    full = tmp_path / "lake/full-load/t/t.parquet"
    assert duckdb.sql(f"SELECT id, CAST(\"at\" AS VARCHAR) FROM '{full}' ORDER BY id").fetchall() == [
        ("1", "2025-12-31 23:59:59.999999+00"), ("2", "infinity"), ("3", "-infinity"), ("4", None)]
