"""CSV → typed snapshot: keys stay strings, dates become UTC instants, and bad input gets one clear line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cdc_core.config import TableConfig
from cdc_core.engines import csvfile
from cdc_core.engines.duckdb.snapshot import load_snapshot
from cdc_core.errors import InputError

CLIENTES = TableConfig("clientes", ("idCliente",), date_field="DtAtualizacao", sep=";")


def snap(tmp_path: Path, text: str | bytes, table: TableConfig = CLIENTES):
    csv = tmp_path / f"{table.name}.csv"
    csv.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_snapshot(csv, table, tmp_path / "out" / "snapshot.parquet")


def test_keys_stay_strings_and_dates_parse_as_utc_instants(tmp_path: Path):
    result = snap(tmp_path, "idCliente;qtdePontos;DtAtualizacao\n"
                            "001;5;2025-01-01\n1;6;2025-01-01 00:00:00\n0010;7;2025-01-01 00:00:00.000\n")
    table = pq.read_table(result.path).to_pydict()
    assert table["idCliente"] == ["001", "1", "0010"]
    assert len(set(table["DtAtualizacao"])) == 1
    assert str(table["DtAtualizacao"][0]) == "2025-01-01 00:00:00+00:00"
    assert result.rows == 3 and result.columns["qtdePontos"] == "BIGINT"


def test_all_empty_column_is_kept(tmp_path: Path):
    produtos = TableConfig("produtos", ("IdProduto",), sep=";")
    result = snap(tmp_path, "IdProduto;Nome;Desc\n1;a;\n2;b;\n", produtos)
    assert pq.read_table(result.path).column("Desc").null_count == 2


@pytest.mark.parametrize("text, message", [
    ("", 'Table "clientes": clientes.csv is empty (no header line)'),
    ("id;qtdePontos;DtAtualizacao\n1;2;2025-01-01\n",
     ('Table "clientes": clientes.csv: key column "idCliente" is missing (header: id;qtdePontos;DtAtualizacao) '
      '— fix "pk" in the config or the file')),
    ("idCliente,qtdePontos,DtAtualizacao\n1,2,2025-01-01\n",
     "the file looks separated by ',', not ';': set \"sep\" in the config"),
    ("idCliente;qtdePontos\n1;2\n", 'date field "DtAtualizacao" is missing'),
    ("idCliente;a;a;DtAtualizacao\n1;2;3;2025-01-01\n", 'column "a" appears twice in the header'),
    ("idCliente;q;DtAtualizacao\n1;2;2025-01-01\n1;3;2025-01-02\n2;4;2025-01-02\n2;5;2025-01-02\n",
     "2 key value(s) appear more than once (e.g. 1 ×2, 2 ×2) — a key must identify one row"),
    ("idCliente;q;DtAtualizacao\n1;2;2025-01-01\n;3;2025-01-02\n", "1 row(s) have an empty key (idCliente)"),
    ("idCliente;q;DtAtualizacao\n1;2;2025-01-01\n2;3;yesterday\n",
     "date field \"DtAtualizacao\" has values that are not dates (e.g. 'yesterday')"),
    ("idCliente;q;DtAtualizacao\n1;2;2025-01-01\n2;3;2025-01-02;oops\n",
     "clientes.csv: line 3 has 4 fields but the header has 3"),
    (b"idCliente;q;DtAtualizacao\n1;caf\xe9;2025-01-01\n",
     ("clientes.csv is not UTF-8 text: line 2 (byte offset 31) holds b'1;caf\\xe9;2025-0', which reads "
      "'1;café;2025-0' in Windows-1252 — re-save the file as UTF-8")),
])
def test_bad_input_gets_one_line_that_says_what_where_and_how(tmp_path: Path, text, message: str):
    with pytest.raises(InputError) as caught:
        snap(tmp_path, text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out" / "snapshot.parquet").exists()


@pytest.mark.parametrize("gzipped", [False, True])
def test_the_first_byte_that_is_not_utf8_is_found_past_characters_cut_by_the_read_buffer(tmp_path: Path, gzipped):
    header = b"id;nome\n"
    filler = b"x" * ((1 << 20) - len(header) - 3)  # "1;é" puts a two-byte character across the 1 MiB boundary
    data = header + filler + b"\n1;\xc3\xa9\n" + b"".join(b"%d;ol\xc3\xa1\n" % i for i in range(2, 5000)) + b"5000;S\xe3o\n"
    path = tmp_path / ("t.csv.gz" if gzipped else "t.csv")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    message = str(csvfile.not_utf8(path, 'Table "t": t.csv'))
    line, offset = data.count(b"\n", 0, data.index(b"\xe3")) + 1, data.index(b"\xe3")
    assert message.startswith(f'Table "t": t.csv is not UTF-8 text: line {line} (byte offset {offset:,}) holds '
                              "b'5000;S\\xe3o', which reads '5000;São' in Windows-1252")


def test_a_type_guessed_from_the_first_rows_may_change_further_down(tmp_path: Path):
    rows = "".join(f"{i};{i}\n" for i in range(30000)) + "30000;not a number\n"
    result = snap(tmp_path, "IdProduto;v\n" + rows, TableConfig("produtos", ("IdProduto",), sep=";"))
    assert result.rows == 30001 and result.columns["v"] == "VARCHAR"


def test_real_clientes_file_loads(tmp_path: Path):
    real = Path(__file__).parent / "data" / "clientes_20250918.csv"
    result = load_snapshot(real, CLIENTES, tmp_path / "s.parquet")
    assert result.rows == 3837
    assert result.columns["DtAtualizacao"] == "TIMESTAMP WITH TIME ZONE"


@pytest.mark.parametrize("value, typed", [
    ("0999-01-01 00:00:00", True), ("2025-01-01 00:00:00Z", True), ("10000-01-01 00:00:00", False),
    ("-2025-01-01 00:00:00", False), ("2025-02-30 00:00:00", False), ("infinity", False),
])
def test_a_date_field_written_like_its_first_value_takes_the_fast_check_only_in_the_safe_form(tmp_path: Path, value,
                                                                                                typed: bool):
    (tmp_path / "t.csv").write_text(f"id;d\n1;2025-01-01 00:00:00\n2;{value}\n")
    table = TableConfig("t", ("id",), date_field="d", sep=";")
    if typed:
        assert load_snapshot(tmp_path / "t.csv", table, tmp_path / "s.parquet").rows == 2
    else:
        with pytest.raises(InputError, match='date field "d" has values that are not dates'):
            load_snapshot(tmp_path / "t.csv", table, tmp_path / "s.parquet")
