"""`diff` of two CSV files compares their text first and types only the rows that changed: it finds the same changes
as typing both files whole (the snapshots a capture writes), and every value it gives prints back to its text."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc_core.config import TableConfig
from cdc_core.engines.duckdb.diff import diff
from cdc_core.engines.duckdb.law import text_of
from cdc_core.engines.duckdb.snapshot import load_snapshot
from cdc_core.engines.rules import schema_of
from cdc_core.errors import InputError

NUMBERS = ["1", "2", "-3", "007", "1.50", "2.25", "x", None]
DATES = ["2025-01-01", "2025-01-01 00:00:00", "2025-01-01T01:00:00+01:00", "2025-01-02 10:00:00.000", None]
WORDS = ["a", "b", "ção", '"q"', "x;y", None]


def write_csv(path: Path, header: list[str], rows: list[list[str | None]]) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    path.write_text(out.getvalue())
    return path


@st.composite
def csv_pairs(draw):
    keys = draw(st.lists(st.integers(0, 30), unique=True, min_size=1, max_size=14))
    row = st.tuples(st.sampled_from(NUMBERS), st.sampled_from(DATES), st.sampled_from(WORDS))
    prev = {k: list(draw(row)) for k in keys if draw(st.booleans()) or k == keys[0]}
    cur = {}
    for k in keys:
        fate = draw(st.sampled_from(["same", "same", "changed", "gone", "new"]))
        if k in prev and fate == "same":
            cur[k] = list(prev[k])
        elif fate in ("changed", "new") or (k not in prev and fate != "gone"):
            cur[k] = list(draw(row))
    extra = draw(st.booleans())  # a column only the current file has
    return prev, cur, extra, draw(st.sampled_from(["content", "date_field"]))


def _texts(con, path: Path, typed: dict[str, str], layouts: dict[str, str]) -> list[tuple]:
    """The change rows of `path` as (op, key, every column as the text it was read from), sorted."""
    named = ", ".join(text_of(f'"{c}"', t, layouts.get(c)) if t != "TIMESTAMP WITH TIME ZONE" else f'"{c}"'
                      for c, t in typed.items())
    return sorted(con.execute(f"SELECT op, {named} FROM read_parquet('{path}')").fetchall(), key=str)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=csv_pairs())
def test_the_same_changes_as_typing_both_files_whole(tmp_path: Path, pair):
    prev_rows, cur_rows, extra, detect = pair
    header = ["id", "n", "d", "t"]
    prev = write_csv(tmp_path / "prev.csv", header, [[f"k{k}", *v] for k, v in prev_rows.items()])
    cur = write_csv(tmp_path / "cur.csv", header + (["e"] if extra else []),
                    [[f"k{k}", *v, *(["e"] if extra else [])] for k, v in cur_rows.items()])
    table = TableConfig("t", ("id",), date_field="d", sep=";", detect=detect)
    text_first = diff(prev, cur, "id", date_field="d", detect=detect, sep=";", output=tmp_path / "text.parquet")
    a = load_snapshot(prev, table, tmp_path / "a.parquet")
    b = load_snapshot(cur, table, tmp_path / "b.parquet", previous=schema_of(a.path))
    whole = diff(a.path, b.path, "id", date_field="d", detect=detect, output=tmp_path / "whole.parquet")

    assert text_first.counts == whole.counts and text_first.column_counts == whole.column_counts
    assert text_first.held_back == whole.held_back
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    mine, theirs = schema_of(text_first.path), schema_of(whole.path)
    # a column the whole file widened to text may be typed here (a value no change row carries broke it there):
    # each value then prints back to the very text the whole-file diff holds
    assert all(theirs[c].type in (mine[c].type, "VARCHAR") for c in mine)
    layouts = {c: col.layout for c, col in mine.items() if col.layout}
    assert _texts(con, text_first.path, {c: m.type for c, m in mine.items()}, layouts) == _texts(
        con, whole.path, {c: m.type for c, m in theirs.items()}, {c: t.layout for c, t in theirs.items() if t.layout})


def test_a_value_no_change_row_carries_is_not_typed(tmp_path: Path):
    # `5.0` is neither the smallest nor the largest text, so the type guessed from the ends is BIGINT
    prev = write_csv(tmp_path / "prev.csv", ["id", "n"], [["1", "1"], ["2", "5.0"], ["3", "9"]])
    cur = write_csv(tmp_path / "cur.csv", ["id", "n"], [["1", "1"], ["2", "5.0"], ["3", "8"]])
    changes = diff(prev, cur, "id", sep=";")
    assert changes.counts == {"I": 0, "U": 1, "D": 0} and changes.warnings == []
    assert changes.rows.column("n").to_pylist() == [8]  # BIGINT: `5.0` is in no change row
    table = TableConfig("t", ("id",), sep=";")  # a snapshot is stored whole: there the column is text
    assert load_snapshot(prev, table, tmp_path / "a.parquet").columns["n"] == "VARCHAR"


def test_a_changed_value_that_does_not_print_back_widens_its_column(tmp_path: Path):
    prev = write_csv(tmp_path / "prev.csv", ["id", "n"], [["1", "4"], ["2", "5"]])
    cur = write_csv(tmp_path / "cur.csv", ["id", "n"], [["1", "4"], ["2", "05"]])
    changes = diff(prev, cur, "id", sep=";")
    assert changes.rows.column("n").to_pylist() == ["05"]
    assert changes.warnings == ["column \"n\" widened BIGINT → VARCHAR ('05' is not a BIGINT)"]


@pytest.mark.parametrize("prev_rows, cur_rows, bad", [
    ([["1", "a"], ["2", "b"]], [["1", "a"], ["2", "b"], ["2", "b"]], "cur.csv"),  # among unchanged rows
    ([["1", "a"], ["1", "a"]], [["1", "a"]], "prev.csv"),
    ([["1", "a"], ["2", "b"]], [["1", "a"], ["2", "c"], ["2", "d"]], "cur.csv"),  # among changed rows
])
def test_a_duplicate_key_anywhere_is_refused_naming_the_file(tmp_path: Path, prev_rows, cur_rows, bad: str):
    prev = write_csv(tmp_path / "prev.csv", ["id", "v"], prev_rows)
    cur = write_csv(tmp_path / "cur.csv", ["id", "v"], cur_rows)
    with pytest.raises(InputError, match=rf"{bad}: 1 key value\(s\) appear more than once"):
        diff(prev, cur, "id", sep=";")


def test_a_bad_date_in_a_changed_row_is_refused(tmp_path: Path):
    prev = write_csv(tmp_path / "prev.csv", ["id", "d"], [["1", "2025-01-01"]])
    cur = write_csv(tmp_path / "cur.csv", ["id", "d"], [["1", "soon"]])
    with pytest.raises(InputError, match='date field "d" has values that are not dates'):
        diff(prev, cur, "id", date_field="d", sep=";")


def test_the_output_file_declares_the_types_the_change_rows_have(tmp_path: Path):
    prev = write_csv(tmp_path / "prev.csv", ["id", "n", "d"], [["1", "1.50", "2025-01-01 10:00:00.000"]])
    cur = write_csv(tmp_path / "cur.csv", ["id", "n", "d"], [["1", "2.25", "2025-01-02 10:00:00.000"]])
    changes = diff(prev, cur, "id", date_field="d", sep=";", output=tmp_path / "out.parquet")
    schema = pq.read_schema(changes.path)
    assert str(schema.field("n").type) == "decimal128(18, 2)" and str(schema.field("d").type) == "timestamp[us, tz=UTC]"


@pytest.mark.parametrize("broken", ["prev", "cur"])
@pytest.mark.parametrize("text, message", [
    ("id;v\n1;a\n2;b;c\n", "line 3 has 3 fields but the header has 2"),
    ('id;v\n1;a\n2;"b\n', "cannot be read as CSV"),
])
def test_a_file_that_is_not_valid_csv_is_one_line_naming_it(tmp_path: Path, broken: str, text: str, message: str):
    files = {name: write_csv(tmp_path / f"{name}.csv", ["id", "v"], [["1", "a"], ["2", "b"]]) for name in ("prev", "cur")}
    files[broken].write_text(text)
    with pytest.raises(InputError, match=rf"{broken}.csv.*{message}"):
        diff(files["prev"], files["cur"], "id", sep=";")


def test_columns_named_like_the_comparisons_own_markers_and_files_with_only_a_header(tmp_path: Path):
    header = ["id", "__p", "__c", "p0", "__cdc_side"]
    prev = write_csv(tmp_path / "prev.csv", header, [["1", "a", "b", "c", "d"], ["2", "a", "b", "c", "d"]])
    cur = write_csv(tmp_path / "cur.csv", header, [["1", "a", "b", "c", "e"], ["3", "a", "b", "c", "d"]])
    changes = diff(prev, cur, "id", sep=";")
    assert changes.counts == {"I": 1, "U": 1, "D": 1}
    assert changes.rows.column("__cdc_side").to_pylist() == ["e", "d", "d"]
    empty = write_csv(tmp_path / "empty.csv", header, [])
    assert diff(empty, empty, "id", sep=";").counts == {"I": 0, "U": 0, "D": 0}
    assert diff(empty, cur, "id", sep=";").counts == {"I": 2, "U": 0, "D": 0}


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_the_diff_command_starts_without_the_pipeline_or_pyarrow(tmp_path: Path, kind: str):
    """`python -m cdc_core diff` imports only what a diff needs: a quick start, and a smaller process."""
    import subprocess
    import sys

    prev = write_csv(tmp_path / "prev.csv", ["id", "v"], [["1", "a"], ["2", "b"]])
    cur = write_csv(tmp_path / "cur.csv", ["id", "v"], [["1", "a"], ["2", "c"]])
    if kind == "parquet":
        table = TableConfig("t", ("id",), sep=";")
        prev, cur = (load_snapshot(p, table, tmp_path / f"{p.stem}.parquet").path for p in (prev, cur))
    script = ("import sys\nfrom cdc_core.cli import main\n"
              f"code = main(['diff', {str(prev)!r}, {str(cur)!r}, '--key', 'id', '--sep', ';', '--output', "
              f"{str(tmp_path / 'out.parquet')!r}])\n"
              "print(code, sorted(m for m in ('pyarrow', 'cdc_core.pipeline', 'cdc_core.monitored') "
              "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
    assert pq.read_table(tmp_path / "out.parquet").column("op").to_pylist() == ["U"]
