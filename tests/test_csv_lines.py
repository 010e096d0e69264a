"""The line-ending check reads a file in blocks and counts only where a CR is: it must decide as a count of the
whole file would, wherever the blocks cut it (a CRLF split in two, a block of only LFs, a file without CR)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cdc_core.config import TableConfig
from cdc_core.engines import csvlines
from cdc_core.engines.csvtext import open_bytes


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=40).map(lambda b: bytes(b"a\r\n;"[x % 4] for x in b)), block=st.integers(1, 9))
def test_the_file_is_looked_at_exactly_when_its_line_endings_are_not_all_lf_or_all_crlf(tmp_path_factory, data,
                                                                                        block):
    path = tmp_path_factory.mktemp("lines") / "t.csv"
    path.write_bytes(data)
    cr, lf, crlf = data.count(b"\r"), data.count(b"\n"), data.count(b"\r\n")
    looked = []
    original = (csvlines.BLOCK, csvlines._scan)
    csvlines.BLOCK, csvlines._scan = block, lambda *a: looked.append(True)
    try:
        csvlines.check_lines(Path(path), TableConfig("t", ("id",), sep=";"), "t.csv", open_bytes)
    finally:
        csvlines.BLOCK, csvlines._scan = original
    assert bool(looked) == bool(cr and not cr == lf == crlf)
