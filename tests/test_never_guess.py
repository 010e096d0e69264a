"""Never guess: every value and column name reaches the lake exactly as the file says.

Each case is a file longer than DuckDB's 20,480-row sample, captured through the real cycle (directory source,
local lake). The CDC rows must equal a plain-text oracle (a row changed only when some field's text changed), the
full load must keep each value's text, and `verify` must pass.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc_core import load_config, run_once, verify
from cdc_core.config import TableConfig
from cdc_core.engines import schema_of
from cdc_core.engines.csvquotes import check_spaced_quotes
from cdc_core.engines.duckdb.connection import connect, literal
from cdc_core.engines.duckdb.diff import diff
from cdc_core.engines.duckdb.law import cast, exact, parse
from cdc_core.engines.duckdb.snapshot import load_snapshot
from cdc_core.errors import InputError
from cdc_core.types import LAYOUTS, TZ

from .conftest import write_config

ROWS = 30_000


def text(value, layout: str | None = None) -> str | None:
    """How a typed lake value reads as text, by Python alone (the oracle does not use cdc_core's rendering)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        py = (layout or "%Y-%m-%d %H:%M:%S").replace("%g", f"{value.microsecond // 1000:03d}")
        return value.strftime(py)
    if isinstance(value, date | Decimal | int):
        return str(value)
    return value


def parse_csv(data: str, key: str) -> tuple[list[str], dict[str, dict[str, str | None]]]:
    rows = list(csv.reader(io.StringIO(data), delimiter=";"))
    header = rows[0]
    return header, {r[header.index(key)]: {h: (v if v != "" else None) for h, v in zip(header, r, strict=True)}
                    for r in rows[1:] if r}


def oracle(old: str, new: str, key: str = "id") -> dict[str, set[str]]:
    """(op → keys) by comparing texts: a row is updated when some field's text changed (a column the old file
    lacks counts as NULL before)."""
    (_, a), (header, b) = parse_csv(old, key), parse_csv(new, key)
    updated = {k for k in a.keys() & b.keys() if any(a[k].get(h) != b[k][h] for h in header)}
    return {"I": set(b) - set(a), "U": updated, "D": set(a) - set(b)}


class Lake:
    """One table captured through the real cycle, one file version per `capture`."""

    def __init__(self, folder: Path, **table):
        (folder / "source").mkdir()
        self.folder = folder
        self.table = {"name": "t", "pk": "id", "sep": ";", **table}
        self.config = load_config(write_config(folder, source={"type": "directory", "path": "source"},
                                               tables=[self.table]))

    def capture(self, data: str):
        (self.folder / "source" / "t.csv").write_text(data, encoding="utf-8")
        report = run_once(self.config)
        return report.tables[0]

    def full_load(self) -> pa.Table:
        return pq.read_table(self.folder / "lake" / "full-load" / "t" / "t.parquet")

    def last_cdc(self) -> pa.Table:
        return pq.read_table(max((self.folder / "lake" / "cdc" / "t").glob("*.parquet")))

    def layouts(self) -> dict[str, str]:
        snapshot = self.folder / "lake" / "full-load" / "t" / "t.parquet"
        return {c.name: c.layout for c in schema_of(snapshot).values() if c.layout}

    def check_verify(self) -> None:
        checks = verify(self.config)
        assert all(c.ok for c in checks), [c.problems for c in checks]


def keeps_text(lake: Lake, data: str) -> None:
    """The full load holds every value of the file with its exact text, under the file's exact column names."""
    header, expected = parse_csv(data, lake.table["pk"])
    table, layouts = lake.full_load(), lake.layouts()
    assert table.column_names == header
    got = {}
    for row in table.to_pylist():
        got[row[lake.table["pk"]]] = {c: text(v, layouts.get(c)) for c, v in row.items()}
    assert got == expected


def cdc_keys(table: pa.Table) -> dict[str, set[str]]:
    ops, keys = table.column("op").to_pylist(), table.column("id").to_pylist()
    return {op: {k for o, k in zip(ops, keys, strict=True) if o == op} for op in "IUD"}


def lines(header: str, make) -> str:
    return header + "\n" + "".join(make(i) + "\n" for i in range(ROWS))


def test_leading_zeros_after_the_sample_keep_the_column_text_and_their_change_is_captured(tmp_path: Path):
    lake = Lake(tmp_path)
    v1 = lines("id;cep", lambda i: f"{i};{'0131' if i > 25_000 else '2131'}{i % 10_000:04d}")
    v2 = v1.replace("\n25001;01315001\n", "\n25001;1315001\n")
    for data in (v1, v2):
        assert lake.capture(data).status in ("full_load", "changes")
        keeps_text(lake, data)
    assert cdc_keys(lake.last_cdc()) == oracle(v1, v2) == {"I": set(), "U": {"25001"}, "D": set()}
    lake.check_verify()


def test_a_23_digit_number_is_text_and_a_change_in_its_last_digit_is_captured(tmp_path: Path):
    lake = Lake(tmp_path)
    v1 = lines("id;nfe", lambda i: f"{i};{10655300029372195000000 + i}")
    v2 = v1.replace("\n7;10655300029372195000007\n", "\n7;10655300029372195000008\n")
    lake.capture(v1)
    assert lake.capture(v2).counts == {"I": 0, "U": 1, "D": 0}
    keeps_text(lake, v2)
    assert lake.full_load().schema.field("nfe").type == pa.string()
    lake.check_verify()


def test_quotes_that_start_late_are_read_as_quotes(tmp_path: Path):
    lake = Lake(tmp_path)
    quoted = lines("id;name", lambda i: f'"k{i}";"v{i}; with a separator"' if i >= 25_000 else f"k{i};v{i}")
    plain = quoted.replace('"', "").replace("; with a separator", "")
    lake.capture(quoted)
    rows = {r["id"]: r["name"] for r in lake.full_load().to_pylist()}
    assert rows["k25000"] == "v25000; with a separator" and rows["k24999"] == "v24999"
    assert lake.capture(plain).counts == {"I": 0, "U": ROWS - 25_000, "D": 0} == \
        {op: len(keys) for op, keys in oracle(quoted, plain).items()}
    lake.check_verify()


def test_day_month_dates_stay_text_and_a_new_one_changes_nothing_else(tmp_path: Path):
    lake = Lake(tmp_path)
    v1 = lines("id;nascimento", lambda i: f"{i};{i % 12 + 1:02d}/{i % 12 + 1:02d}/2025")
    v2 = v1 + "30000;01/13/2025\n"
    lake.capture(v1)
    assert lake.capture(v2).counts == {"I": 1, "U": 0, "D": 0}
    keeps_text(lake, v2)
    lake.check_verify()


def test_one_non_number_widens_the_column_once_and_only_that_row_changes(tmp_path: Path):
    lake = Lake(tmp_path)
    v1 = lines("id;pontos;desconto", lambda i: f"{i};{i % 50};{i % 7}.{i % 10}0")
    v2 = v1.replace("\n123;23;4.30\n", "\n123;n/a;4.30\n")
    v3 = v2.replace("\n123;n/a;4.30\n", "\n123;23;4.30\n")
    lake.capture(v1)
    assert lake.full_load().schema.field("pontos").type == pa.int64()
    assert lake.full_load().schema.field("desconto").type == pa.decimal128(18, 2)
    report = lake.capture(v2)
    assert report.counts == {"I": 0, "U": 1, "D": 0}
    assert report.warnings == [('column "pontos" widened BIGINT → VARCHAR (\'n/a\' is not a BIGINT); it stays '
                                'text from now on')]
    keeps_text(lake, v2)
    assert lake.capture(v3).counts == {"I": 0, "U": 1, "D": 0}  # back to numbers: still text, no flip
    assert lake.full_load().schema.field("pontos").type == pa.string()
    lake.check_verify()


def test_a_timestamp_column_that_widens_keeps_the_text_of_its_old_values(tmp_path: Path):
    lake = Lake(tmp_path)
    v1 = lines("id;visto", lambda i: f"{i};2025-01-{i % 28 + 1:02d} 10:{i % 60:02d}:00.{i % 1000:03d}")
    v2 = v1.replace("\n99;2025-01-16 10:39:00.099\n", "\n99;ontem\n")
    lake.capture(v1)
    assert lake.full_load().schema.field("visto").type == pa.timestamp("us", tz="UTC")
    keeps_text(lake, v1)
    assert lake.capture(v2).counts == {"I": 0, "U": 1, "D": 0}
    keeps_text(lake, v2)
    lake.check_verify()


@pytest.mark.parametrize("odd", ["2025-01-16 10:39:00.+03", "2025-01-16 10:39:00.09Z", "2025-01-16  1:39:00.099"])
def test_a_timestamp_with_a_zone_or_a_gap_where_its_digits_belong_widens_the_column(tmp_path: Path, odd: str):
    # each has the shape of the column's layout, and DuckDB reads it (10:39 at +03, 10:39:00.090, 01:39): typed,
    # it would print back as another text (07:39:00.000, .090, 01:39), so the column keeps the file's text
    lake = Lake(tmp_path)
    v1 = lines("id;visto", lambda i: f"{i};2025-01-{i % 28 + 1:02d} 10:{i % 60:02d}:00.{i % 1000:03d}")
    v2 = v1.replace("\n99;2025-01-16 10:39:00.099\n", f"\n99;{odd}\n")
    lake.capture(v1)
    assert lake.capture(v2).counts == {"I": 0, "U": 1, "D": 0}
    assert lake.full_load().schema.field("visto").type == pa.string()
    keeps_text(lake, v2)
    lake.check_verify()


def test_a_date_field_with_offsets_among_plain_utc_times_reads_every_instant_right(tmp_path: Path):
    lake = Lake(tmp_path, date_field="quando")
    v1 = lines("id;quando", lambda i: f"{i};2025-01-{i % 28 + 1:02d} 10:00:00" if i % 5 else
               f"{i};2025-01-{i % 28 + 1:02d} 10:00:00-03:00")
    lake.capture(v1)
    got = {r["id"]: r["quando"] for r in lake.full_load().to_pylist()}
    assert got["1"] == datetime.fromisoformat("2025-01-02 10:00:00+00:00")
    assert got["5"] == datetime.fromisoformat("2025-01-06 13:00:00+00:00")  # -03:00 honoured
    assert lake.capture(v1).status == "unchanged"
    lake.check_verify()


def test_a_header_whose_case_changed_is_a_column_removed_and_one_added(tmp_path: Path):
    lake = Lake(tmp_path)
    v1 = lines("id;nome", lambda i: f"{i};n{i}")
    v2 = v1.replace("id;nome", "id;Nome", 1)
    lake.capture(v1)
    report = lake.capture(v2)
    assert report.counts == {"I": 0, "U": ROWS, "D": 0}
    assert "column(s) added: Nome" in report.warnings and "column(s) removed: nome" in report.warnings
    cdc = lake.last_cdc()
    assert [c for c in cdc.column_names if c.lower() == "nome"] == ["Nome", "nome"]
    assert cdc.column("Nome").to_pylist()[:2] == ["n0", "n1"] and cdc.column("nome").null_count == ROWS
    keeps_text(lake, v2)
    lake.check_verify()


@pytest.mark.parametrize("versions", [
    ["id;nome\n1;Ana\n2;Bia\n", "id;Nome\n1;\n2;Bia\n", "id;nome\n1;\n2;Bia\n"],  # back under its old name
    ["id;v;x\n1;a;5\n2;b;6\n", "id;v\n1;a\n2;b\n", "id;v;x\n1;a;\n2;b;6\n"],  # gone, back empty on row 1
    ["id;v;x\n1;a;5\n2;b;6\n", "id;v\n1;a\n2;B\n", "id;v\n1;a\n2;B\n", "id;v;x\n1;a;\n2;B;\n"],
])
def test_a_column_that_comes_back_does_not_bring_back_its_old_values(tmp_path: Path, versions: list[str]):
    lake = Lake(tmp_path)
    for data in versions:
        report = lake.capture(data)
        assert report.status != "failed", report.error
    keeps_text(lake, versions[-1])
    lake.check_verify()  # replaying base + changes gives the last file, not the values from before the column left


def test_two_names_that_differ_only_in_case_are_refused_with_one_line(tmp_path: Path):
    lake = Lake(tmp_path)
    result = lake.capture("id;a;A\n1;x;y\n")
    assert result.status == "failed"
    assert result.error == ('Table "t": t.csv: columns "a" and "A" differ only in case (id;a;A) — SQL engines, '
                            "Spark, Delta and Athena take them for one column: rename one of them in the file")


def test_pinned_types_win_and_a_value_that_does_not_fit_is_refused(tmp_path: Path):
    lake = Lake(tmp_path, columns={"cep": "VARCHAR", "nasc": {"type": "DATE", "format": "%d/%m/%Y"}})
    lake.capture("id;cep;nasc\n1;12345678;13/01/2025\n2;22345678;01/02/2025\n")
    table = lake.full_load()
    assert table.schema.field("cep").type == pa.string() and table.schema.field("nasc").type == pa.date32()
    assert table.column("nasc").to_pylist() == [date(2025, 1, 13), date(2025, 2, 1)]
    failed = lake.capture("id;cep;nasc\n1;12345678;2025-01-13\n2;22345678;01/02/2025\n")
    assert failed.status == "failed" and failed.error == (
        'Table "t": t.csv: column "nasc" is pinned to DATE in the format \'%d/%m/%Y\' but has values that are '
        "not (e.g. '2025-01-13') — fix the file or the pin in \"columns\" in the config")


@pytest.mark.parametrize("pin, value", [("BIGINT", "1.5"), ("DECIMAL(18,2)", "1.005"), ("BIGINT", "1e3"),
                                        ("BOOLEAN", "on")])
def test_a_pinned_column_never_rounds_a_value(tmp_path: Path, pin: str, value: str):
    lake = Lake(tmp_path, columns={"n": pin})
    assert lake.capture("id;n\n1;1\n").status == "full_load"
    failed = lake.capture(f"id;n\n1;{value}\n")  # DuckDB alone would read 2, 1.01, 1000, true
    assert failed.status == "failed" and f"is pinned to {pin} but has values that are not (e.g. {value!r})" in failed.error
    assert lake.full_load().column("n").to_pylist() != [None] and lake.capture("id;n\n1;1\n").status == "unchanged"


@pytest.mark.parametrize("line", ['2; "abc"', '2;"abc" ', '2;"abc"  ;x', ' "2";abc'])
def test_a_space_between_a_quote_and_its_separator_is_refused_not_read_one_way(tmp_path: Path, line: str):
    """RFC 4180 reads ` "abc"` as text with quotes; DuckDB read it as `abc`: no reading is the file's own."""
    lake = Lake(tmp_path)
    rows = lines("id;v", lambda i: f'{i + 10};"v{i}"')  # quoted fields are fine, before and after
    failed = lake.capture(rows + line + "\n" + '3;"a; "" b"\n')
    assert failed.status == "failed" and failed.error == (
        f'Table "t": t.csv: line {ROWS + 2} has a space between a quote and its separator, which readers take '
        "differently (RFC 4180 keeps the quotes as text, DuckDB drops them) — remove the space, or quote the whole "
        "field")
    fine = '2;" abc "\n3;"a; "" b"\n4;Tubo 1/2"\n5;"Cano; ""PVC"" 3/4"""\n6;  "x"\n'  # every reader agrees
    assert lake.capture(rows + fine).status == "full_load"
    assert lake.full_load().column("v").to_pylist()[-5:] == [" abc ", 'a; " b', 'Tubo 1/2"', 'Cano; "PVC" 3/4"',
                                                             '  "x"']


@pytest.mark.parametrize("sep, quote, data, refused", [
    (" ", '"', 'id v w\n1 "a b" \n "a b" 2\n', False),  # a space separator: every reader agrees
    (";", "'", "id;v\n1;it's ok\n2;'a;b'\n", False),  # apostrophes in text
    (";", "'", "id;v\n1;it's ok\n2; 'a'\n", True),
    (";", '"', 'id;v\r\n1;"a"\r\n2; "b"\r\n', True),  # CRLF
    (";", '"', 'id;v\n1;"a\n; "\n', False),  # inside a field that spans lines
])
def test_the_quote_check_refuses_only_what_readers_take_differently(tmp_path: Path, sep, quote, data, refused):
    path = tmp_path / "t.csv"
    path.write_bytes(data.encode())
    table = TableConfig("t", ("id",), sep=sep, quote=quote)
    if refused:
        with pytest.raises(InputError, match="has a space between a quote and its separator"):
            check_spaced_quotes(path, table)
    else:
        check_spaced_quotes(path, table)


def test_other_dialects_from_the_config(tmp_path: Path):
    lake = Lake(tmp_path, quote="'")
    lake.capture("id;name\n1;'a;b'\n2;\"quoted\"\n")
    assert lake.full_load().column("name").to_pylist() == ["a;b", '"quoted"']


def test_gzipped_csv_and_parquet_inputs_give_the_same_snapshot(tmp_path: Path):
    import gzip

    table = TableConfig("t", ("id",), sep=";")
    data = "id;n;d\n1;007;2025-01-01\n2;8;2025-01-02\n"
    (tmp_path / "t.csv").write_text(data)
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(data.encode()))
    plain = load_snapshot(tmp_path / "t.csv", table, tmp_path / "a.parquet")
    zipped = load_snapshot(tmp_path / "t.csv.gz", table, tmp_path / "b.parquet")
    typed = load_snapshot(plain.path, table, tmp_path / "c.parquet")
    assert pq.read_table(plain.path).equals(pq.read_table(zipped.path))
    assert pq.read_table(plain.path).to_pydict() == pq.read_table(typed.path).to_pydict()
    assert pq.read_schema(plain.path).types == pq.read_schema(typed.path).types
    assert plain.columns == {"id": "VARCHAR", "n": "VARCHAR", "d": "DATE"}


def test_a_parquet_input_whose_type_changed_widens_to_text(tmp_path: Path):
    table = TableConfig("t", ("id",))
    pq.write_table(pa.table({"id": [1, 2], "n": [5, 6]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"id": [1, 2], "n": ["5", "x"]}), tmp_path / "b.parquet")
    a = load_snapshot(tmp_path / "a.parquet", table, tmp_path / "sa.parquet")
    b = load_snapshot(tmp_path / "b.parquet", table, tmp_path / "sb.parquet", previous=schema_of(a.path))
    assert a.columns == {"id": "VARCHAR", "n": "BIGINT"} and b.columns == {"id": "VARCHAR", "n": "VARCHAR"}
    assert diff(a.path, b.path, "id").counts == {"I": 0, "U": 1, "D": 0}


@pytest.mark.parametrize("data, message", [
    ("id;a;\n1;2;3\n", 'column 3 of the header has no name (id;a;) — name it in the file'),
    ("ID;a\n1;2\n", 'key column "id" is missing (header: ID;a) — the header has "ID" (names are case-sensitive)'),
])
def test_header_problems_are_one_line(tmp_path: Path, data: str, message: str):
    (tmp_path / "t.csv").write_text(data)
    with pytest.raises(InputError) as caught:
        load_snapshot(tmp_path / "t.csv", TableConfig("t", ("id",), sep=";"), tmp_path / "s.parquet")
    assert message in str(caught.value)


# --- the law, on random files: the change rows are what a plain-text comparison says ---------------------------
VALUES = ["", "0", "7", "007", "-3", "20", "20.0", "20.50", "3.25", "1e3", "n/a", "NULL", "true", "True",
          "2025-01-02", "2025-01-02 10:00:00.000", "02/01/2025", " 5", "a;b", 'say "hi"', "12345678901234567890123"]


def render(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ';"\n') else value


@st.composite
def versions(draw):
    columns = draw(st.lists(st.sampled_from(["a", "b", "c", "B"]), unique_by=str.lower, min_size=1, max_size=3))
    keys = [str(k) for k in range(draw(st.integers(1, 12)))]

    def version(cols):
        present = draw(st.lists(st.sampled_from(keys), unique=True, min_size=1))
        body = "".join(";".join([k] + [render(draw(st.sampled_from(VALUES))) for _ in cols]) + "\n" for k in present)
        return "id;" + ";".join(cols) + "\n" + body

    return [version(columns), version(columns), version(draw(st.permutations(columns)))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(versions())
def test_change_rows_follow_the_text_of_the_files(tmp_path_factory, files):
    folder = tmp_path_factory.mktemp("law")
    table, previous = TableConfig("t", ("id",), sep=";"), None
    for i, data in enumerate(files):
        (folder / f"v{i}.csv").write_text(data)
        snap = load_snapshot(folder / f"v{i}.csv", table, folder / f"v{i}.parquet", previous=previous)
        if i:
            changes = diff(folder / f"v{i - 1}.parquet", snap.path, "id")
            got = cdc_keys(changes.rows)
            assert got == oracle(files[i - 1], data)
        previous = schema_of(snap.path)


# --- the fast timestamp reading is DuckDB's own reading, and its check is the law --------------------------------
PIECES = ["2025", "-", "01", "1", "02", " ", "T", "10", ":", "00", "59", ".", "123", "5", "+03", "-03:00", "Z",
          " UTC", "+", "  ", "a", "24", "infinity", " BC", "99999", "0"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14).map("".join), st.sampled_from(LAYOUTS))
def test_timestamps_read_fast_as_duckdb_reads_them_and_print_back_only_when_exact(typed_text, layout):
    con = connect()
    for value in (typed_text, datetime(2025, 1, 2, 3, 4, 5, 678000).strftime(layout.replace("%g", "678"))):
        fast, check, slow, law = con.execute(
            f"SELECT {parse('$1', TZ, hint=layout)}, {exact('$1', parse('$1', TZ, layout), TZ, layout)}, "
            f"TRY_CAST($1 AS {TZ}), isfinite(TRY_CAST($1 AS {TZ})) "  # `infinity` stays text (few readers take it)
            f"AND strftime(TRY_CAST($1 AS {TZ}), {literal(layout)}) = $1", [value]).fetchall()[0]
        assert fast == slow, value
        assert bool(check) == bool(law), value


# --- a zone-less Parquet date or timestamp becomes the instant CAST gives, without the time-zone library ------------
FIRST_US, LAST_US = -9_223_372_022_400_000_000, 9_223_372_036_854_775_806  # DuckDB's first and last timestamp


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(FIRST_US, LAST_US), st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999),
                 st.sampled_from([FIRST_US, LAST_US, -1, 0, 1])),
       st.sampled_from(["TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE"]))
def test_a_zoneless_value_becomes_the_instant_cast_gives(micros, kind):
    con = connect()
    value = f"CAST(make_timestamp({micros}::BIGINT) AS {kind})"
    try:
        con.execute(f"SELECT {value}").fetchall()
    except duckdb.Error:  # out of this kind's range (nanoseconds reach only 1677-2262)
        return
    for typed in (value, f"CAST('infinity' AS {kind})", f"CAST('-infinity' AS {kind})", f"CAST(NULL AS {kind})"):
        fast, slow = con.execute(f"SELECT {cast(typed, kind, TZ)}, CAST({typed} AS {TZ})").fetchall()[0]
        assert fast == slow, (micros, kind, typed)
