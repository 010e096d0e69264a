"""Quoting names and strings for DuckDB SQL: every identifier and literal the core builds goes through here; and
a database source's query made into one statement."""

import re


def quote(name: str) -> str:
    """A column name as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A string as a DuckDB literal."""
    return "'" + text.replace("'", "''") + "'"


def statement(query: str) -> str:
    """A database query as one statement to wrap in `SELECT … FROM (query)`: trailing `;`, blanks and comments
    (`-- …`, `/* … */`) removed. Quotes ('…', "…", $tag$…$tag$) are respected; ValueError when something follows
    a `;` (more than one statement)."""
    end = pos = 0  # end: just after the last character that is part of the statement
    while pos < len(query):
        char, two = query[pos], query[pos:pos + 2]
        if two == "--":
            pos = _after(query, "\n", pos + 2)
        elif two == "/*":
            pos = _after(query, "*/", pos + 2)
        elif char.isspace():
            pos += 1
        elif char == ";":
            if query[pos + 1:].strip() and statement(query[pos + 1:]):
                raise ValueError("more than one statement")
            break
        else:
            dollar = re.match(r"\$[A-Za-z_]*\$", query[pos:]) if char == "$" else None
            close = dollar[0] if dollar else char if char in "'\"" else ""
            pos = _after(query, close, pos + len(close)) if close else pos + 1
            end = pos
    return query[:end]


def _after(text: str, close: str, start: int) -> int:
    """The position just after the next `close` from `start` (the end of `text` when there is none)."""
    found = text.find(close, start)
    return len(text) if found < 0 else found + len(close)
