"""Reading a table's CSV file with an explicit dialect: nothing is sniffed, so nothing changes between versions.

The separator comes from the table's config, quoting is RFC 4180 (`"` quotes, `""` escapes; `quote`/`escape`
in the config for other dialects), the first line is the header, every field is read as text (an empty field is
NULL) and typed afterwards by the rules (`rules`), whichever engine reads it. Column names are exact and
case-sensitive. Plain and gzip-compressed files are read alike (`csvtext`).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..config import TableConfig
from ..errors import InputError
from ..names import check_names, lake_names
from .csvlines import check_lines, long_line, too_long
from .csvquotes import check_spaced_quotes
from .csvtext import dialect_reader, is_gzip, not_utf8, open_bytes, open_text, where

__all__ = ["dialect_reader", "explain", "is_gzip", "not_utf8", "open_bytes", "open_text", "read_header", "where"]


def read_header(path: Path, table: TableConfig) -> list[str]:
    """The header's exact column names; checks they are unique (also ignoring case) and hold the key and date, and
    that no quote is ambiguous (`check_spaced_quotes`)."""
    at = where(path, table)
    try:
        with open_text(path) as f:
            header = next(dialect_reader(f, table, strict=True), None)  # read as strictly as DuckDB reads the rows
    except UnicodeDecodeError:
        raise not_utf8(path, at) from None
    except csv.Error as exc:
        raise InputError(f"{at}: the header (line 1) is not valid CSV ({exc}) — fix the header line in the file, "
                         'or "quote"/"escape" in the config') from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{at} cannot be read ({exc}) — the source delivered a broken file; check it") from None
    if header is None:
        raise InputError(f"{at} is empty (no header line) — the source delivered an empty file; check it")
    if not "".join(header).strip():
        raise InputError(f"{at}: line 1 is blank, but the header must be the first line — remove the blank "
                         "line(s) before the header")
    shown = table.sep.join(header)
    if len(shown) > 120:
        shown = shown[:117] + "…"
    for i, name in enumerate(header, start=1):
        if not name:
            raise InputError(f"{at}: column {i} of the header has no name ({shown}) — name it in the file")
    header = lake_names(header, table.rename, at)
    check_names(header, at, shown)
    for col in table.pk:
        if col not in header:
            fix = _sep_hint(header, table) or _case_hint(col, header) or 'fix "pk" in the config or the file'
            raise InputError(f'{at}: key column "{col}" is missing (header: {shown}) — {fix}')
    if table.date_field and table.date_field not in header:
        fix = (_sep_hint(header, table) or _case_hint(table.date_field, header)
               or 'fix "date_field" in the config or the file')
        raise InputError(f'{at}: date field "{table.date_field}" is missing (header: {shown}) — {fix}')
    check_spaced_quotes(path, table)  # before any engine reads a value
    check_lines(path, table, at, open_bytes)
    return header


def _sep_hint(header: list[str], table: TableConfig) -> str:
    if len(header) == 1:
        for sep in (";", ",", "\t", "|"):
            if sep != table.sep and sep in header[0]:
                return f'the file looks separated by {sep!r}, not {table.sep!r}: set "sep" in the config'
    return ""


def _case_hint(name: str, header: list[str]) -> str:
    same = [h for h in header if h.lower() == name.lower()]
    return f'the header has "{same[0]}" (names are case-sensitive): fix the config or the file' if same else ""


def explain(exc: BaseException, path: Path, table: TableConfig, header: list[str]) -> InputError:
    """Turn an engine's read error into one line that says what, where and how to fix."""
    at, text = where(path, table), str(exc)
    if "not utf-8" in text.lower() or "unicode" in text.lower():
        return not_utf8(path, at)
    if long := long_line(path, open_bytes):
        return too_long(at, f"line {long[0]:,}", long[1])
    line = _ragged_line(path, table, len(header))
    if line:
        return InputError(f"{at}: line {line[0]} has {line[1]} fields but the header has {len(header)} "
                          f'(separator {table.sep!r}) — fix that line or "sep" in the config')
    match = re.search(r"CSV Error on Line: (\d+)", text)
    first = text.splitlines()[0] if text else type(exc).__name__
    line_no = f" at line {match.group(1)}" if match else ""
    return InputError(f"{at} cannot be read as CSV with separator {table.sep!r}{line_no} ({first}) — fix the file "
                      'or "quote"/"escape" in the config')


def _ragged_line(path: Path, table: TableConfig, width: int) -> tuple[int, int] | None:
    """The first record whose field count differs from the header's (slow path, only after a read error)."""
    try:
        with open_text(path, errors="replace") as f:
            reader = dialect_reader(f, table)
            for row in reader:
                if row and len(row) != width:
                    return reader.line_num, len(row)
    except (OSError, EOFError, csv.Error):
        return None
    return None
