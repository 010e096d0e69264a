"""CSV conformance: csv-spectrum and PapaParse's test cases (tests/data/conformance, sources and licences there).

Every case is read exactly — the rows a parser that follows RFC 4180 gives, with an empty field as NULL (our
documented difference) and a blank line as no row — or refused with one line; a file is never read with fewer
rows than it holds. Each PapaParse input is read twice: as it is (its first row is the header), and below a
header of plain names, so that its first row is read as data too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc_core.config import TableConfig
from cdc_core.engines.duckdb.snapshot import load_snapshot
from cdc_core.errors import InputError

DATA = Path(__file__).parent / "data" / "conformance"
PAPA = json.loads((DATA / "papaparse_test_cases.json").read_text(encoding="utf-8"))["cases"]
SPECTRUM = sorted(p.stem for p in (DATA / "csv-spectrum").glob("*.csv"))
# the suite's JSON for this file has another phone number than its CSV (2095257564): the CSV is what is read
SPECTRUM_FIXED = {"location_coordinates": {"Contact Phone Number": "2095257564"}}

# What we refuse of PapaParse's cases (read as they are, or below a header of plain names), and in which words.
# PapaParse reads every input somehow; a malformed quote, a ragged row or mixed line endings are refused here.
NAMES = "holds a line break"  # a header name with a line break (PapaParse puts most quoted fields in row 1)
BAD_HEADER = "the header (line 1) is not valid CSV"
SPACED = "has a space between a quote and its separator"
RAGGED = "fields but the header has"
NO_NAME = "of the header has no name"
BLANK = "line 1 is blank"
EMPTY = "is empty (no header line)"
MIXED = "save the file with one kind of line ending"
ESCAPE = "may only come before the quote or itself"
UNREAD = "cannot be read as CSV"  # DuckDB's own error, on the line it stopped at
REFUSED = {
    ('Quoted field with line break', False): NAMES,
    ('Quoted fields with line breaks', False): NAMES,
    ('Quoted fields at end of row with delimiter and line break', False): NAMES,
    ('Quoted field with whitespace around quotes', False): SPACED,
    ('Quoted field with whitespace around quotes', True): SPACED,
    ('Quoted field has no closing quote', False): BAD_HEADER,
    ('Quoted field has no closing quote', True): UNREAD,
    ('Quoted field has invalid trailing quote after delimiter with a valid closer', False): BAD_HEADER,
    ('Quoted field has invalid trailing quote after delimiter with a valid closer', True): RAGGED,
    ('Quoted field has invalid trailing quote after delimiter', False): BAD_HEADER,
    ('Quoted field has invalid trailing quote after delimiter', True): RAGGED,
    ('Quoted field has invalid trailing quote before delimiter', False): BAD_HEADER,
    ('Quoted field has invalid trailing quote before delimiter', True): RAGGED,
    ('Quoted field has invalid trailing quote after new line', False): BAD_HEADER,
    ('Quoted field has invalid trailing quote after new line', True): RAGGED,
    ('Quoted field contains delimiters and \\n with valid trailing quote', False): NAMES,
    ('Line starts with unquoted empty field', False): NO_NAME,
    ('Empty quoted field at EOF is empty', False): NO_NAME,
    ('Multiple consecutive empty fields', False): NO_NAME,
    ('Empty input string', False): EMPTY,
    ('Input is just the delimiter (2 empty fields)', False): BLANK,
    ('Input is just empty fields', False): BLANK,
    ('Input is just empty fields', True): RAGGED,
    ('Quoted field with \\r\\n', False): NAMES,
    ('Quoted field with \\r', False): NAMES,
    ('Quoted field with \\n', False): NAMES,
    ('Quoted fields with spaces between closing quote and next delimiter', False): BAD_HEADER,
    ('Quoted fields with spaces between closing quote and next delimiter', True): SPACED,
    ('Quoted fields with spaces between closing quote and next new line', False): BAD_HEADER,
    ('Quoted fields with spaces between closing quote and next new line', True): SPACED,
    ('Quoted fields with spaces after closing quote', False): BAD_HEADER,
    ('Quoted fields with spaces after closing quote', True): SPACED,
    ('Mixed slash n and slash r should choose first as precident', False): MIXED,
    ('Mixed slash n and slash r should choose first as precident', True): MIXED,
    ('Blank line in middle with whitespace', False): RAGGED,
    ('Blank line in middle with whitespace', True): RAGGED,
    ('Last field of a line is empty', False): NO_NAME,
    ('Other fields are empty', False): NO_NAME,
    ('Empty lines', False): BLANK,
    ('Custom escape character not used for escaping', False): ESCAPE,
    ('Custom escape character not used for escaping', True): ESCAPE,
    ('Carriage return in header inside quotes, with line feed endings', False): NAMES,
    ('Line feed in header inside quotes, with carriage return + line feed endings', False): NAMES,
    ('Using \\r\\n endings with \\r\\n in header field uses \\r\\n linebreak', False): NAMES,
    ('Using \\r\\n endings with \\n in header field uses \\r\\n linebreak', False): NAMES,
    ('Using \\n endings with \\r\\n in header field uses \\n linebreak', False): NAMES,
    ('Using reserved regex character . as quote character', False): NAMES,
    ('Using reserved regex character | as quote character', False): NAMES,
    ('Quoted fields with spaces between closing quote and next delimiter and contains delimiter', False): BAD_HEADER,
    ('Quoted fields with spaces between closing quote and next delimiter and contains delimiter', True): SPACED,
    ('Quoted fields with spaces between closing quote and newline and contains newline', False): BAD_HEADER,
    ('Quoted fields with spaces between closing quote and newline and contains newline', True): SPACED,
}


def capture(tmp_path: Path, data: bytes, **dialect) -> list[list[str | None]]:
    """The header and rows a snapshot holds, every value as its text."""
    src = tmp_path / "t.csv"
    src.write_bytes(data)
    snap = load_snapshot(src, TableConfig(name="t", pk=(), **dialect), tmp_path / "out.parquet", check=False)
    rows = pq.read_table(snap.path)
    return [rows.column_names, *([None if v is None else str(v) for v in row.values()] for row in rows.to_pylist())]


def below_a_header(case: dict, sep: str) -> tuple[str, list[list[str]]]:
    """The case's input under a header c0,c1,… (ended like the input's first line), and the rows it holds."""
    text, quote = case["input"].lstrip("\ufeff"), case["config"].get("quoteChar", '"')  # a BOM only starts a file
    bare = re.sub(f"{re.escape(quote)}[^{re.escape(quote)}]*{re.escape(quote)}", "", text)  # line breaks of rows
    end = "\r\n" if "\r\n" in bare else "\n" if "\n" in bare or "\r" not in bare else "\r"
    width = max((len(row) for row in case["data"]), default=1)
    return sep.join(f"c{i}" for i in range(width)) + end + text, [[f"c{i}" for i in range(width)], *case["data"]]


@pytest.mark.parametrize("as_data", [False, True], ids=["as it is", "below a header"])
@pytest.mark.parametrize("case", PAPA, ids=[c["description"] for c in PAPA])
def test_papaparse_cases_are_exact_or_refused_in_one_line(tmp_path: Path, case: dict, as_data: bool):
    dialect = {"sep": case["config"].get("delimiter", ","), "quote": case["config"].get("quoteChar", '"')}
    dialect["escape"] = case["config"].get("escapeChar", dialect["quote"])
    text, rows = below_a_header(case, dialect["sep"]) if as_data else (case["input"], case["data"])
    refused = REFUSED.get((case["description"], as_data))
    try:
        got = capture(tmp_path, text.encode(), **dialect)
    except InputError as exc:
        assert "\n" not in str(exc)
        assert refused is not None, f"refused: {exc}"
        assert refused in str(exc)
        return
    assert refused is None, f"read as {got}"
    if text.endswith(("\n", "\r")) and rows[-1] == [""]:  # RFC 4180: the last line break ends a row, none follows
        rows = rows[:-1]
    blank = [""] if len(rows[0]) > 1 else None  # a blank line holds no row, but one empty field of a 1-column file
    assert got == [rows[0], *([v if v != "" else None for v in row] for row in rows[1:] if row != blank)]


@pytest.mark.parametrize("name", SPECTRUM)
def test_csv_spectrum_is_read_exactly(tmp_path: Path, name: str):
    data = (DATA / "csv-spectrum" / f"{name}.csv").read_bytes()
    rows = json.loads((DATA / "csv-spectrum" / f"{name}.json").read_text(encoding="utf-8"))
    rows = [{**row, **SPECTRUM_FIXED.get(name, {})} for row in (rows if isinstance(rows, list) else [rows])]
    got = capture(tmp_path, data)
    assert got[0] == list(rows[0])
    assert got[1:] == [[v if v != "" else None for v in row.values()] for row in rows]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.text(alphabet='ab ,;"\r\n\\é', max_size=6),
                               st.text(alphabet='ab ,"\r\n\\', max_size=6)), min_size=1, max_size=8),
       ending=st.sampled_from(["\n", "\r\n"]), sep=st.sampled_from([",", ";"]))
def test_what_an_rfc_4180_writer_writes_is_read_back_exactly(tmp_path: Path, rows, ending: str, sep: str):
    """The law: an RFC 4180 writer (a field with the separator, a quote or a line break quoted, quotes doubled; one
    line ending) → the snapshot holds exactly its rows. (Python's csv writer leaves a lone CR unquoted under an LF
    line ending: such a file has mixed line endings, and is refused.)"""

    def field(value: str) -> str:
        return f'"{value.replace(chr(34), 2 * chr(34))}"' if any(c in value for c in f'{sep}"\r\n') else value

    lines = [["id", "a", "b"], *([str(i), *row] for i, row in enumerate(rows))]
    text = "".join(sep.join(field(v) for v in line) + ending for line in lines)
    got = capture(tmp_path, text.encode(), sep=sep)
    assert got == [["id", "a", "b"], *([str(i), *(v or None for v in row)] for i, row in enumerate(rows))]
