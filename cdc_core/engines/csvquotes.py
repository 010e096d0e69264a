"""Quotes that readers take differently: a space between a quote and its separator (`1; "abc"`, `"y" ;2`).

RFC 4180 readers (Python's csv) keep ` "abc"`, DuckDB reads `abc`: no reading is the file's, so such a file is
refused before any engine reads a value (`csvfile.read_header` calls `check_spaced_quotes`).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

import duckdb

from ..config import TableConfig
from ..errors import InputError
from ..sql import literal
from .csvtext import dialect_reader, open_bytes, where


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
            rows = list(dialect_reader(io.StringIO(text, newline=""), table))  # as the header is read
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
