"""The diff on files a user points at: CSV and Parquet inputs, dates as instants, bad keys, and `cdc_core diff`."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdc_core.engines.duckdb.diff import diff
from cdc_core.errors import InputError

from .conftest import run_cli

DATA = Path(__file__).parent / "data"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_dates_in_any_precision_or_offset_are_one_instant(tmp_path: Path):
    a = write(tmp_path, "a.csv", "id;d\n1;2025-01-01\n2;2025-01-01 00:00:00\n3;2025-01-01 01:00:00\n")
    b = write(tmp_path, "b.csv", "id;d\n1;2025-01-01 00:00:00.000\n2;2025-01-01\n3;2025-01-01T02:00:00+01:00\n")
    assert diff(a, b, "id", date_field="d", sep=";").total == 0


def test_dates_compare_as_instants_not_strings(tmp_path: Path):
    a = write(tmp_path, "a.csv", "id;d\n1;2025-01-09 00:00:00\n")
    b = write(tmp_path, "b.csv", "id;d\n1;2025-01-10\n")  # as strings "2025-01-10" < "2025-01-09 00:00:00"
    cs = diff(a, b, "id", date_field="d", detect="date_field", sep=";")
    assert cs.counts["U"] == 1 and cs.warnings == []


def test_date_field_as_text_in_arrow_inputs_is_parsed_too():
    prev = pa.table({"id": ["1"], "d": ["2025-01-01"]})
    cur = pa.table({"id": ["1"], "d": ["2025-01-01 00:00:00.000"]})
    assert diff(prev, cur, "id", date_field="d").total == 0


def test_csv_and_parquet_inputs_give_the_same_change_set(tmp_path: Path):
    from_csv = diff(DATA / "clientes_20250918.csv", DATA / "clientes_20250922.csv", "idCliente",
                    date_field="DtAtualizacao", sep=";")
    pq.write_table(from_csv.rows, tmp_path / "x.parquet")
    prev_parquet, cur_parquet = tmp_path / "p.parquet", tmp_path / "c.parquet"
    from cdc_core.config import TableConfig
    from cdc_core.engines.duckdb.snapshot import load_snapshot

    table = TableConfig("clientes", ("idCliente",), "DtAtualizacao", ";")
    load_snapshot(DATA / "clientes_20250918.csv", table, prev_parquet)
    load_snapshot(DATA / "clientes_20250922.csv", table, cur_parquet)
    from_parquet = diff(prev_parquet, cur_parquet, "idCliente", date_field="DtAtualizacao")
    assert from_csv.counts == from_parquet.counts == {"I": 27, "U": 138, "D": 0}
    assert from_csv.rows.equals(from_parquet.rows)


def test_real_produtos_with_text_ids_only_adds_products():
    cs = diff(DATA / "produtos_41.csv", DATA / "produtos_118.csv", "IdProduto", sep=";")
    assert cs.counts == {"I": 77, "U": 0, "D": 0}
    assert "001 - Espada Longa" in cs.rows.column("IdProduto").to_pylist()


@pytest.mark.parametrize("prev, cur, message", [
    ("id;v\n1;a\n1;b\n2;c\n", "id;v\n1;a\n2;c\n", "previous.csv: 1 key value(s) appear more than once (e.g. 1 ×2)"),
    ("id;v\n1;a\n2;c\n", "id;v\n1;a\n2;c\n2;c\n", "current.csv: 1 key value(s) appear more than once (e.g. 2 ×2)"),
    ("id;v\n1;a\n", "id;v\n1;a\n9;x\n9;y\n", "current.csv: 1 key value(s) appear more than once (e.g. 9 ×2)"),
    ("id;v\n1;a\n3;x\n3;x\n", "id;v\n1;a\n", "previous.csv: 1 key value(s) appear more than once (e.g. 3 ×2)"),
    ("id;v\n1;a\n;b\n", "id;v\n1;a\n", "previous.csv: 1 row(s) have an empty key (id)"),
    ("id;v\n1;a\n", "id;v\n1;a\n;b\n;c\n", "current.csv: 2 row(s) have an empty key (id)"),
])
def test_duplicate_or_null_keys_name_the_file_a_count_and_examples(tmp_path: Path, prev, cur, message):
    with pytest.raises(InputError) as caught:
        diff(write(tmp_path, "previous.csv", prev), write(tmp_path, "current.csv", cur), "id", sep=";")
    assert message in str(caught.value)


def test_at_most_five_duplicate_examples(tmp_path: Path):
    rows = "".join(f"{i};a\n{i};b\n" for i in range(7))
    with pytest.raises(InputError, match=r"7 key value\(s\) appear more than once") as caught:
        diff(write(tmp_path, "p.csv", "id;v\n" + rows), write(tmp_path, "c.csv", "id;v\n0;a\n"), "id", sep=";")
    assert str(caught.value).count("×2") == 5


def test_duplicates_in_arrow_inputs_are_refused():
    prev = pa.table({"a": ["1", "1"], "b": ["x", "x"], "v": [1, 2]})
    cur = pa.table({"a": ["1"], "b": ["x"], "v": [1]})
    with pytest.raises(InputError, match=r"The previous table: 1 key value\(s\) appear more than once \(e.g. 1/x ×2\)"):
        diff(prev, cur, ["a", "b"])


def test_a_missing_key_column_or_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(InputError, match='has no key column "nope"'):
        diff(pa.table({"id": ["1"]}), pa.table({"id": ["1"]}), "nope")
    with pytest.raises(InputError, match="does not exist — check the path"):
        diff(tmp_path / "missing.parquet", pa.table({"id": ["1"]}), "id")


def test_cli_diff_prints_counts_and_writes_the_change_rows(tmp_path: Path):
    out = tmp_path / "changes.parquet"
    result = run_cli("diff", str(DATA / "clientes_20250918.csv"), str(DATA / "clientes_20250922.csv"),
                     "--key", "idCliente", "--sep", ";", "--date-field", "DtAtualizacao", "--output", str(out))
    assert result.code == 0, result.err
    assert result.out.startswith(f"I 27  U 138  D 0  → {out}")
    ops = pq.read_table(out).column("op").to_pylist()
    assert (ops.count("I"), ops.count("U"), ops.count("D")) == (27, 138, 0)


def test_cli_diff_of_csv_files_says_which_value_widened_a_column_as_a_capture_does(tmp_path: Path):
    old = write(tmp_path, "old.csv", "id;n\n1;1\n2;2\n")
    new = write(tmp_path, "new.csv", "id;n\n1;1\n2;n/a\n")
    result = run_cli("diff", str(old), str(new), "--key", "id", "--sep", ";", "--output", str(tmp_path / "o.parquet"))
    assert result.code == 0, result.err
    assert "warning: column \"n\" widened BIGINT → VARCHAR ('n/a' is not a BIGINT)" in result.out + result.err
    assert "changed type" not in result.out + result.err


def test_cli_diff_errors_speak_in_options(tmp_path: Path):
    result = run_cli("diff", str(DATA / "produtos_41.csv"), str(DATA / "produtos_41.csv"), "--key", "IdProduto",
                     "--output", str(tmp_path / "o.parquet"))
    assert result.code == 1
    assert result.err.strip() == ('Error: produtos_41.csv: key column "IdProduto" is missing (header: '
                                  "IdProduto;DescNomeProduto;DescDescricaoProduto;DescCategoriaProduto) — the file "
                                  "looks separated by ';', not ',': set --sep")
    result = run_cli("diff", "a.csv", "b.csv", "--output", "o.parquet")
    assert result.code == 2 and "--key" in result.err


def test_csv_values_the_sampled_types_do_not_fit_are_read_whole(tmp_path: Path):
    rows = "".join(f"{i};{i}\n" for i in range(30000))
    a = write(tmp_path, "a.csv", "id;v\n" + rows + "30000;1\n")
    b = write(tmp_path, "b.csv", "id;v\n" + rows + "30000;one\n")  # `v` looks numeric for 30,000 rows
    cs = diff(a, b, "id", sep=";")
    assert cs.counts == {"I": 0, "U": 1, "D": 0} and cs.type_changes == {"v": ("BIGINT", "VARCHAR")}


def test_a_bad_date_deep_in_a_csv_is_named(tmp_path: Path):
    rows = "".join(f"{i};2025-01-01 00:00:00\n" for i in range(30000))
    a = write(tmp_path, "a.csv", "id;d\n" + rows)
    b = write(tmp_path, "b.csv", "id;d\n" + rows + "30000;2025-13-45\n")
    with pytest.raises(InputError, match=r"b.csv: date field \"d\" has values that are not dates \(e.g. '2025-13-45'\)"):
        diff(a, b, "id", date_field="d", sep=";")


def test_line_breaks_inside_quoted_fields_are_not_mistaken_for_duplicates(tmp_path: Path):
    a = write(tmp_path, "a.csv", 'id;note\n1;"two\nlines"\n2;x\n')
    b = write(tmp_path, "b.csv", 'id;note\n1;"two\nlines"\n2;y\n')
    cs = diff(a, b, "id", sep=";")
    assert cs.counts == {"I": 0, "U": 1, "D": 0}
