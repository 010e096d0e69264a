"""Reading a table's CSV file with an explicit dialect: nothing is sniffed, so nothing changes between versions.

The separator comes from the table's config, quoting is RFC 4180 (`"` quotes, `""` escapes; `quote`/`escape`
in the config for other dialects), the first line is the header, every field is read as text (an empty field is
NULL) and typed afterwards by `snapshot`. Column names are exact and case-sensitive. Plain and gzip-compressed
files are read alike.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import duckdb

from ...config import TableConfig
from ...errors import InputError
from ...names import check_names, lake_names
from ...sql import literal
from ..csvlines import MAX_LINE, check_lines, long_line, too_long


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def open_text(path: Path, errors: str = "strict") -> IO[str]:
    """The file as text (UTF-8, a BOM skipped), gunzipped on the fly when compressed."""
    if is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8-sig", errors=errors, newline="")
    return open(path, encoding="utf-8-sig", errors=errors, newline="")


def open_bytes(path: Path) -> IO[bytes]:
    """A CSV or gzipped CSV file's bytes (uncompressed)."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def not_utf8(path: Path, at: str) -> InputError:
    """The one line for a file that is not UTF-8: where its first bad byte is, and what it reads as in Windows-1252
    (the usual culprit: a spreadsheet's "CSV" export)."""
    found = _first_bad_byte(path)
    if found is None:
        return InputError(f"{at} is not UTF-8 text — re-save it as UTF-8")
    line, offset, around = found
    return InputError(f"{at} is not UTF-8 text: line {line} (byte offset {offset:,}) holds {around!r}, which reads "
                      f"{around.decode('cp1252', errors='replace')!r} in Windows-1252 — re-save the file as UTF-8")


def _first_bad_byte(path: Path) -> tuple[int, int, bytes] | None:
    """(line, byte offset, the bytes around it) of the first byte that is not UTF-8, reading 1 MiB at a time."""
    done, lines, carry, before = 0, 1, b"", b""  # `before`: the end of the last line read (for context)
    try:
        with open_bytes(path) as f:
            while True:
                chunk = f.read(1 << 20)
                data = carry + chunk
                try:
                    data.decode("utf-8")
                    good, carry = len(data), b""
                except UnicodeDecodeError as exc:
                    if chunk and exc.reason == "unexpected end of data":  # a character cut by the chunk's end
                        good, carry = exc.start, data[exc.start:]
                    else:
                        line = (before + data[:exc.start]).rsplit(b"\n", 1)[-1][-24:]
                        rest = data[exc.start:exc.start + 8].split(b"\n", 1)[0]
                        return lines + data.count(b"\n", 0, exc.start), done + exc.start, line + rest
                lines += data.count(b"\n", 0, good)
                done, before = done + good, data[max(0, good - 24):good]
                if not chunk:
                    return None
    except (OSError, EOFError):
        return None


def _reader(f: Iterable[str], table: TableConfig, strict: bool = False):
    """Python's csv reader in the table's dialect; `strict`: a stray quote or an unclosed one is an error."""
    if not table.quote:
        return csv.reader(f, delimiter=table.sep, quoting=csv.QUOTE_NONE)
    if table.escape == table.quote:
        return csv.reader(f, delimiter=table.sep, quotechar=table.quote, doublequote=True, strict=strict)
    return csv.reader(f, delimiter=table.sep, quotechar=table.quote, doublequote=False, escapechar=table.escape,
                      strict=strict)


def check_spaced_quotes(path: Path, table: TableConfig) -> None:
    """Refuse a file with a line where a space between a quote and its separator (`1; "abc"`, `"y" ;2`) makes two
    readers disagree: RFC 4180 readers (Python's csv) keep ` "abc"`, DuckDB reads `abc`; no reading is the file's.

    One pass over the bytes, with only `find` where the quote character appears; the record of each line with such
    a space is read by both readers on its own — with RFC 4180 quoting the whole record, also when a quoted field
    spans lines (`1;"c⏎" ;2`); with another escape only a line that is a whole record (others are left to the
    real read).
    """
    if not table.quote:
        return
    quote, sep = table.quote.encode(), table.sep.encode()
    rfc, inside = (table.escape or table.quote) == table.quote, 0  # quotes so far, when their parity tells
    for offset, chunk in _quoted_chunks(path, quote):
        starts = _spaced_lines(chunk, quote, sep)
        spans = _records(chunk, starts, quote, inside) if rfc else [(s, _line_end(chunk, s)) for s in starts]
        inside = (inside + chunk.count(quote)) % 2
        bad = _disagreeing(chunk, spans, table) if spans else None
        if bad is not None:
            with open_bytes(path) as f:
                line = f.read(offset + bad).count(b"\n") + 1
            raise InputError(f"{where(path, table)}: line {line} has a space between a quote and its separator, "
                             "which readers take differently (RFC 4180 keeps the quotes as text, DuckDB drops them) "
                             "— remove the space, or quote the whole field")


def _quoted_chunks(path: Path, quote: bytes, size: int = 1 << 24):
    """(offset, bytes) of the file in chunks of whole lines, only those where `quote` appears."""
    tail, offset = b"", 0  # the partial line carried over, and where it starts in the file
    with open_bytes(path) as f:
        while block := f.read(size):
            if quote not in block and quote not in tail:  # nothing to look at: no copy of the block either
                cut = block.rfind(b"\n") + 1
                offset, tail = (offset + len(tail) + cut, block[cut:]) if cut else (offset, tail + block)
                continue
            data = tail + block
            cut = data.rfind(b"\n") + 1
            if cut:
                yield offset, data[:cut]
            offset, tail = offset + cut, data[cut:]
    if quote in tail:
        yield offset, tail


def _spaced_lines(chunk: bytes, quote: bytes, sep: bytes) -> list[int]:
    """Start offsets of the lines of `chunk` where only spaces stand between a quote and a separator (or the
    line's edge)."""
    found = set()
    i = chunk.find(b" " + quote)
    while i >= 0:  # spaces before a quote: what comes before them?
        j = i
        while j >= 0 and chunk[j:j + 1] == b" ":
            j -= 1
        if j < 0 or chunk[j:j + 1] in (b"\n", b"\r") or chunk[max(0, j + 1 - len(sep)):j + 1] == sep:
            found.add(chunk.rfind(b"\n", 0, i) + 1)
        i = chunk.find(b" " + quote, i + 1)
    i = chunk.find(quote + b" ")
    while i >= 0:  # spaces after a quote: what comes after them?
        k = i + 1
        while chunk[k:k + 1] == b" ":
            k += 1
        if k == len(chunk) or chunk[k:k + 1] in (b"\n", b"\r") or chunk[k:k + len(sep)] == sep:
            found.add(chunk.rfind(b"\n", 0, i) + 1)
        i = chunk.find(quote + b" ", i + 1)
    return sorted(found)


def _line_end(chunk: bytes, start: int) -> int:
    end = chunk.find(b"\n", start)
    return len(chunk) if end < 0 else end + 1


def _records(chunk: bytes, starts: list[int], quote: bytes, inside: int) -> list[tuple[int, int]]:
    """(start, end) of the whole records these lines belong to, with RFC 4180 quoting: a record starts and ends
    where an even number of quotes came before (`inside`: the parity before the chunk). A record that begins
    before the chunk is left to the real read."""
    spans, at, parity = set(), 0, inside
    for line in starts:
        parity, at = (parity + chunk.count(quote, at, line)) % 2, line  # before this line, counted once
        begin, odd = line, parity
        while odd and begin:  # back to the line the record starts on
            before = chunk.rfind(b"\n", 0, begin - 1) + 1
            odd, begin = (odd + chunk.count(quote, before, begin)) % 2, before
        if odd:
            continue
        end, odd = line, parity
        while True:  # on to the line it ends on
            after = _line_end(chunk, end)
            odd, end = (odd + chunk.count(quote, end, after)) % 2, after
            if not odd or end == len(chunk):
                break
        spans.add((begin, end))
    return sorted(spans)


def _disagreeing(chunk: bytes, spans: list[tuple[int, int]], table: TableConfig) -> int | None:
    """Offset of the first of these records that Python's csv and DuckDB read differently, if any."""
    escape = table.escape or table.quote
    lines = {}
    for start, end in spans:
        text = chunk[start:end].decode("utf-8", "replace")
        if escape == table.quote and text.count(table.quote) % 2:
            continue  # not a whole record (one that goes on past the chunk, a stray quote): left to the read
        try:
            rows = list(_reader(io.StringIO(text, newline=""), table))  # the table's dialect, as the header is read
        except csv.Error:
            continue
        if len(rows) == 1:
            lines.setdefault(len(rows[0]), []).append((start, text, [v or None for v in rows[0]]))
    con = duckdb.connect()
    try:
        for width, group in lines.items():
            with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, encoding="utf-8") as f:
                f.write("".join(text if text.endswith("\n") else text + "\n" for _, text, _ in group))
            columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width)) + "}"
            try:
                read = con.execute(
                    f"SELECT * FROM read_csv({literal(f.name)}, delim={literal(table.sep)}, "
                    f"quote={literal(table.quote)}, escape={literal(escape)}, header=false, auto_detect=false, "
                    f"columns={columns}, strict_mode=true, null_padding=false)").fetchall()
            except duckdb.Error:
                continue  # a line DuckDB refuses: the real read refuses it too, in its own words
            finally:
                os.unlink(f.name)
            for (start, _, python), duck in zip(group, read, strict=False):
                if list(duck) != python:
                    return start
    finally:
        con.close()
    return None


def where(path: Path, table: TableConfig) -> str:
    return f'Table "{table.name}": {path.name}'


def read_header(path: Path, table: TableConfig) -> list[str]:
    """The header's exact column names; checks they are unique (also ignoring case) and hold the key and date, and
    that no quote is ambiguous (`check_spaced_quotes`)."""
    at = where(path, table)
    try:
        with open_text(path) as f:
            header = next(_reader(f, table, strict=True), None)  # read as strictly as DuckDB reads the rows
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


def relation(path: Path, table: TableConfig, header: list[str]) -> str:
    """SQL reading the file with the table's dialect, every column as text under its exact name."""
    columns = "{" + ", ".join(f"{literal(name)}: 'VARCHAR'" for name in header) + "}"
    return (f"read_csv({literal(str(path))}, delim={literal(table.sep)}, quote={literal(table.quote)}, "
            f"escape={literal(table.escape or table.quote)}, header=true, auto_detect=false, columns={columns}, "
            f"strict_mode=true, null_padding=false, max_line_size={MAX_LINE}, encoding='utf-8', "
            f"compression={literal('gzip' if is_gzip(path) else 'none')})")


def explain(exc: duckdb.Error, path: Path, table: TableConfig, header: list[str]) -> InputError:
    """Turn a DuckDB read error into one line that says what, where and how to fix."""
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
            reader = _reader(f, table)
            for row in reader:
                if row and len(row) != width:
                    return reader.line_num, len(row)
    except (OSError, EOFError, csv.Error):
        return None
    return None
