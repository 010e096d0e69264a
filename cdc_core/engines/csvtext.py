"""A table's CSV file as text: opened plain or gzipped, refused in one line when it is not UTF-8, split into
records by Python's csv reader in the table's dialect. `csvfile` and `csvquotes` both read through it."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from ..config import TableConfig
from ..errors import InputError


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


def dialect_reader(f: Iterable[str], table: TableConfig, strict: bool = False):
    """Python's csv reader in the table's dialect; `strict`: a stray quote or an unclosed one is an error."""
    if not table.quote:
        return csv.reader(f, delimiter=table.sep, quoting=csv.QUOTE_NONE)
    if table.escape == table.quote:
        return csv.reader(f, delimiter=table.sep, quotechar=table.quote, doublequote=True, strict=strict)
    return csv.reader(f, delimiter=table.sep, quotechar=table.quote, doublequote=False, escapechar=table.escape,
                      strict=strict)


def where(path: Path, table: TableConfig) -> str:
    return f'Table "{table.name}": {path.name}'
