"""The demo source: real shapes, deterministic from (seed, version), and changes that match its own schedule."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from cdc_core.config import TableConfig
from cdc_core.sources.demo import TABLES, DemoSource

KEYS = {"clientes": "idCliente", "produtos": "IdProduto", "transacoes": "IdTransacao",
        "transacao_produto": "idTransacaoProduto"}
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, na_values=[""])


def fetch(source: DemoSource, folder: Path, last_version: str | None) -> dict[str, Path]:
    folder.mkdir(parents=True)
    tables = [TableConfig(name, (KEYS[name],), sep=";") for name in TABLES]
    result = source.fetch(tables, folder, last_version=last_version)
    assert not result.errors
    return result.files


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path):
    a = fetch(DemoSource(seed=1, scale=0.2), tmp_path / "a", None)
    b = fetch(DemoSource(seed=1, scale=0.2), tmp_path / "b", None)
    c = fetch(DemoSource(seed=2, scale=0.2), tmp_path / "c", None)
    for name in TABLES:
        assert a[name].read_bytes() == b[name].read_bytes()
    assert a["clientes"].read_bytes() != c["clientes"].read_bytes()


def test_each_fetch_is_the_next_version(tmp_path: Path):
    source = DemoSource(seed=3, scale=0.2)
    folder = tmp_path / "v"
    folder.mkdir()
    tables = [TableConfig("clientes", ("idCliente",), sep=";")]
    assert source.fetch(tables, folder, last_version=None).version == "1"
    assert source.fetch(tables, folder, last_version="1").version == "2"
    other = source.fetch([TableConfig("ventas", ("id",), sep=";")], folder, last_version="2")
    assert "not in the demo dataset" in str(other.errors["ventas"])


def test_files_have_the_real_datasets_shape(tmp_path: Path):
    files = fetch(DemoSource(seed=5, scale=0.2), tmp_path / "v1", None)
    header = {name: files[name].read_text(encoding="utf-8").splitlines()[0] for name in TABLES}
    assert header["clientes"] == ("idCliente;flEmail;flTwitch;flYouTube;flBlueSky;flInstagram;qtdePontos;"
                                  "DtCriacao;DtAtualizacao")
    assert header["produtos"] == "IdProduto;DescNomeProduto;DescDescricaoProduto;DescCategoriaProduto"
    assert header["transacoes"] == "IdTransacao;IdCliente;DtCriacao;QtdePontos;DescSistemaOrigem"
    assert header["transacao_produto"] == "idTransacaoProduto;IdTransacao;IdProduto;QtdeProduto;vlProduto"
    clientes, produtos, transacoes = read(files["clientes"]), read(files["produtos"]), read(files["transacoes"])
    assert 900 <= len(clientes) <= 1100  # scale 0.2 of ≈ 5k
    assert clientes.idCliente.str.match(UUID).all() and clientes.idCliente.is_unique
    assert clientes.DtAtualizacao.str.match(STAMP).all() and clientes.DtCriacao.str.match(STAMP).all()
    assert set(clientes.flEmail) <= {"0", "1"}
    assert len(produtos) == 41 and produtos.DescDescricaoProduto.isna().all()
    assert produtos.IdProduto.str.isdigit().all()
    assert transacoes.QtdePontos.astype(int).between(-1000, 1000).all()
    assert set(transacoes.DescSistemaOrigem) == {"twitch", "cursos"}
    assert '"' not in files["clientes"].read_text()


def _compare(old: pd.DataFrame, new: pd.DataFrame, key: str) -> dict[str, int]:
    """Inserts/updates/deletes by plain set logic on the CSV text, independent of the core's diff."""
    old, new = old.set_index(key), new.set_index(key)
    both = old.index.intersection(new.index)
    changed = (old.loc[both].fillna("") != new.loc[both].fillna("")).any(axis=1)
    return {"I": len(new.index.difference(old.index)), "U": int(changed.sum()),
            "D": len(old.index.difference(new.index))}


@pytest.mark.parametrize("version", [2, 6, 12, 13])
def test_versions_differ_exactly_as_the_schedule_says(tmp_path: Path, version: int):
    source = DemoSource(seed=11, scale=0.2)
    old = fetch(source, tmp_path / "old", str(version - 2) if version > 2 else None)
    new = fetch(source, tmp_path / "new", str(version - 1))
    expected = source.expected_changes(version)
    for name in TABLES:
        assert _compare(read(old[name]), read(new[name]), KEYS[name]) == expected[name], name
    assert expected["clientes"]["I"] > 0 and expected["clientes"]["U"] > 0
    assert expected["transacoes"]["I"] == expected["transacao_produto"]["I"] > 0


def test_clientes_updates_bump_dtatualizacao_and_transactions_only_grow(tmp_path: Path):
    source = DemoSource(seed=11, scale=0.2)
    old = fetch(source, tmp_path / "old", "3")
    new = fetch(source, tmp_path / "new", "4")
    a, b = read(old["clientes"]).set_index("idCliente"), read(new["clientes"]).set_index("idCliente")
    both = a.index.intersection(b.index)
    changed = (a.loc[both] != b.loc[both]).any(axis=1)
    assert changed.sum() > 0
    assert (b.loc[both][changed].DtAtualizacao > a.loc[both][changed].DtAtualizacao).all()
    assert (b.loc[both][~changed].DtAtualizacao == a.loc[both][~changed].DtAtualizacao).all()
    assert set(read(old["transacoes"]).IdTransacao) < set(read(new["transacoes"]).IdTransacao)
    assert read(old["produtos"]).equals(read(new["produtos"]))


def test_scale_option_grows_the_tables():
    small, big = DemoSource(seed=1, scale=0.2), DemoSource(seed=1, scale=1)
    assert small.table("clientes", 1).num_rows * 5 == big.table("clientes", 1).num_rows == 5000
    assert big.table("transacoes", 1).num_rows == 25000


def test_a_demo_capture_does_not_import_pandas(demo_config: Path):
    """The default job runs without pandas, even where the notebooks extra installed it: pyarrow would import it
    (0.2 s, a fifth of a demo capture) just to ask whether the demo's columns are pandas objects."""
    import subprocess
    import sys

    script = ("import sys\nfrom cdc_core.cli import main\n"
              f"code = main(['--once', '-q', '--config', {str(demo_config)!r}])\n"
              "print(code, 'pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.strip().splitlines()[-1] == "0 False", done.stdout + done.stderr
    assert (demo_config.parent / "lake" / "full-load" / "clientes" / "clientes.parquet").is_file()
