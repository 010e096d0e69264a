"""Checks on a CSV file's lines that no reader makes for us, run before any engine reads a value.

Each closes a way for a file to land as other data than it holds, without an error:
- **one kind of line ending**: a file whose lines end in LF and CRLF alike (outside quoted fields) stops DuckDB
  ("state machine reached an invalid state") and leaves a `\r` at the end of values in Spark;
- **the last line fits**: DuckDB drops a last line longer than its read buffer without a word (1,001 rows read as
  1,000) while it refuses the same line anywhere else; a line longer than `MAX_LINE` is refused wherever it is;
- **escapes escape**: with an escape character other than the quote, `"c\\d"` reads as `cd`: the escape may only
  come before the quote or itself, never guessed away.
Each scan reads the bytes once, in blocks, and only the slow path (a file that has the suspect bytes at all) looks
at quoting.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..config import TableConfig
from ..errors import InputError

MAX_LINE = 2_000_000  # bytes: DuckDB's max_line_size, which it enforces everywhere but on the last line
BLOCK = 1 << 24


def check_lines(path: Path, table: TableConfig, at: str, open_bytes) -> None:
    """Refuse a file with mixed line endings, an over-long last line, or an escape before an ordinary character."""
    esc = table.escape.encode() if table.quote and table.escape and table.escape != table.quote else b""
    cr = lf = crlf = 0  # counts: a file is all LF (no CR) or all CRLF (as many of each), else it is looked at
    lone_lf = escape = False  # an LF in a block without any CR: counted only where a CR is (a `find` elsewhere)
    last = b""
    tail = ended = 0  # bytes since the last line break, and of the last line that ended with one
    with open_bytes(path) as f:
        while block := f.read(BLOCK):
            joined = last == b"\r" and block[:1] == b"\n"  # a CRLF the block boundary cut in two
            if b"\r" in block:
                cr, lf = cr + block.count(b"\r"), lf + block.count(b"\n")
                crlf += block.count(b"\r\n") + joined
            else:
                lf, crlf = lf + joined, crlf + joined
                lone_lf = lone_lf or block.find(b"\n", joined) >= 0
            escape, last = escape or bool(esc and esc in block), block[-1:]
            cut = block.rfind(b"\n")
            if cut < 0:
                tail += len(block)
                continue
            before = block.rfind(b"\n", 0, cut)
            ended, tail = (cut - before - 1 if before >= 0 else tail + cut), len(block) - cut - 1
    if (size := tail or ended) > MAX_LINE:
        raise too_long(at, "the last line", size)
    if (cr and (lone_lf or not cr == lf == crlf)) or escape:
        _scan(path, table, at, open_bytes, esc)


def _scan(path: Path, table: TableConfig, at: str, open_bytes, esc: bytes) -> None:
    """Walk the file's fields (quoted ones whole) to find an ending or an escape that breaks the rules."""
    quote = table.quote.encode() if table.quote else b""
    inside = rb"(?:[^" + re.escape(quote) + re.escape(esc) + rb"]|" + (
        re.escape(esc) + rb"(?s:.)" if esc else re.escape(quote * 2)) + rb")*"
    token = re.compile((re.escape(quote) + inside + re.escape(quote) + rb"|" if quote else b"") +
                       rb"\r\n|\n|\r|[^\r\n" + re.escape(quote) + rb"]+|(?s:.)")
    bad_escape = re.compile(re.escape(esc) + rb"(?s:.)") if esc else None
    first: bytes | None = None
    line, carry = 1, b""
    with open_bytes(path) as f:
        while True:
            block = f.read(BLOCK)
            data = carry + block
            pos = 0
            for m in token.finditer(data):
                piece = m.group()
                if block and (m.end() == len(data) or piece == quote):
                    break  # may go on in the next block (a lone quote: its field ends beyond this one)
                pos = m.end()
                if piece in (b"\r\n", b"\n", b"\r"):
                    first = first or piece
                    if piece != first:
                        raise InputError(f"{at}: line {line} ends with {_name(piece)} but line 1 ends with "
                                         f"{_name(first)} — save the file with one kind of line ending")
                    line += 1
                elif bad_escape is not None and esc in piece:
                    for e in bad_escape.finditer(piece):
                        if e.group()[1:] not in (quote, esc):
                            shown = e.group().decode("utf-8", "replace")
                            at_line = line + piece.count(b"\n", 0, e.start())
                            raise InputError(
                                f"{at}: line {at_line} has {shown}, but the "
                                f"escape character {table.escape!r} may only come before the quote or itself — "
                                f"write {table.escape * 2 + shown[1:]} for the text {shown}, or fix "
                                '"escape" in the config')
                line += piece.count(b"\n") if piece[:1] == quote else 0
            carry = data[pos:]
            if not block:
                return


def _name(ending: bytes) -> str:
    return {b"\r\n": "CRLF", b"\n": "LF", b"\r": "CR"}[ending]


def too_long(at: str, line: str, size: int) -> InputError:
    return InputError(f"{at}: {line} is {size:,} bytes long, more than the {MAX_LINE:,} a row may hold — the file "
                      "is cut or holds a huge value: check the source")


def long_line(path: Path, open_bytes) -> tuple[int, int] | None:
    """(line number, bytes) of the first line longer than `MAX_LINE`, if any (the slow path after a read error)."""
    long = re.compile(rb"[^\n]{%d,}" % (MAX_LINE + 1))
    line, carry = 1, b""
    with open_bytes(path) as f:
        while True:
            block = f.read(BLOCK)
            data = carry + block
            if m := long.search(data):
                end = data.find(b"\n", m.start())
                if end >= 0 or not block:
                    size = (end if end >= 0 else len(data)) - m.start()
                    return line + data.count(b"\n", 0, m.start()), size
            if not block:
                return None
            cut = data.rfind(b"\n") + 1
            line, carry = line + data.count(b"\n", 0, cut), data[cut:]
