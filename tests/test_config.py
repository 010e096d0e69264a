"""config.json: the seed's keys load unchanged; every bad config names the key and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdc_core.config import load_config
from cdc_core.errors import ConfigError

from .conftest import DEMO_TABLES, ROOT, run_cli, write_config

SEED_CONFIG = {
    "dataset_name": "teocalvo/teomewhy-loyalty-system",
    "aws": {"bucket": "my-lake", "prefix": "loyalty/", "region": "us-east-1"},
    "timer": {"unit": "hours", "value": 6},
    "tables": [{"name": "clientes", "pk": "idCliente", "date_field": "DtAtualizacao", "sep": ";"},
               {"name": "produtos", "pk": "IdProduto", "date_field": "", "sep": ";"}],
}


def test_seed_config_means_kaggle_source_and_s3_lake(tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(SEED_CONFIG))
    config = load_config(path)
    assert config.source.type == "kaggle"
    assert config.source.dataset == "teocalvo/teomewhy-loyalty-system"
    assert config.lake.url == "s3://my-lake/loyalty" and config.lake.region == "us-east-1"
    assert config.timer.seconds == 6 * 3600
    assert config.table("clientes").pk == ("idCliente",)
    assert config.table("produtos").date_field is None


def test_repository_config_runs_the_demo_into_a_local_lake():
    config = load_config(ROOT / "config.json")
    assert config.source.type == "demo"
    assert config.lake.path == ROOT / "lake" and config.data_dir == ROOT / "data"
    assert [(t.name, t.pk, t.date_field) for t in config.tables] == [
        ("clientes", ("idCliente",), "DtAtualizacao"), ("produtos", ("IdProduto",), None),
        ("transacoes", ("IdTransacao",), "DtCriacao"), ("transacao_produto", ("idTransacaoProduto",), None)]
    assert config.timer.seconds == 6 * 3600 and config.compression == "snappy"


def test_relative_paths_resolve_next_to_the_config_file(tmp_path: Path):
    config = load_config(write_config(tmp_path))
    assert config.lake.path == tmp_path / "lake" and config.data_dir == tmp_path / "data"


def test_composite_key_and_timer_units(tmp_path: Path):
    tables = [{"name": "t", "pk": ["a", "b"]}]
    config = load_config(write_config(tmp_path, tables=tables, timer={"unit": "minute", "value": 1.5}))
    assert config.tables[0].pk == ("a", "b") and config.timer.seconds == 90


def _table(**fields):
    return [{**DEMO_TABLES[0], **fields}]


@pytest.mark.parametrize("overrides, message", [
    ({"tables": []}, 'Config key "tables" is missing or empty'),
    ({"tables": [{"name": "clientes"}]}, 'Config key "tables[0].pk" is missing or invalid'),
    ({"tables": _table(primary_key="x")}, 'Unknown config key "tables[0].primary_key"'),
    ({"tables": _table(dat_field="x")}, 'did you mean "date_field"?'),
    ({"tables": _table(name="../etc")}, 'Config key "tables[0].name" is \'../etc\' — use only letters'),
    ({"tables": _table(name="a/b")}, 'Config key "tables[0].name" is \'a/b\''),
    ({"tables": _table(sep=";;")}, 'Config key "tables[0].sep" is \';;\' — use one character'),
    ({"tables": _table(detect="hash")}, 'Config key "tables[0].detect" is \'hash\' — use one of: content'),
    ({"tables": _table(quote="''")}, 'Config key "tables[0].quote" is "\'\'" — use one character'),
    ({"tables": _table(columns={"cep": "NUMBER"})}, 'Config key "tables[0].columns.cep" is \'NUMBER\' — use VARCHAR'),
    ({"tables": _table(columns={"d": {"type": "BIGINT", "format": "%d"}})},
     'Config key "tables[0].columns.d.format" is \'%d\' — a format (like "%d/%m/%Y") only goes with DATE'),
    ({"tables": _table(columns={"d": {"type": "DATE", "fmt": "%d"}})}, 'did you mean "format"?'),
    ({"tables": _table(columns={"idCliente": "BIGINT"})}, "pins a key column to BIGINT — key columns are always text"),
    ({"tables": DEMO_TABLES + DEMO_TABLES[:1]}, 'table "clientes" is listed twice'),
    ({"timer": {"unit": "fortnights", "value": 1}}, 'Config key "timer.unit" is \'fortnights\' — use seconds'),
    ({"timer": {"unit": "hours", "value": 0}}, 'Config key "timer.value" is 0 — use a positive number'),
    ({"timer": {"unit": "hours", "value": 1, "every": 2}}, 'Unknown config key "timer.every"'),
    ({"source": {"type": "ftp"}}, 'Config key "source.type" is \'ftp\''),
    ({"source": {"type": "demo", "scale": -1}}, 'Config key "source.scale" is -1'),
    ({"lake": "s3://"}, "name the bucket"),
    ({"compression": "brotli"}, 'Config key "compression" is \'brotli\''),
    ({"engine": {"memory_limit": "lots"}}, 'Config key "engine.memory_limit" is \'lots\''),
    ({"tabels": []}, 'Unknown config key "tabels" — remove it or fix its name (did you mean "tables"?)'),
])
def test_bad_config_names_the_key_and_the_fix(tmp_path: Path, overrides: dict, message: str):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, **overrides))
    assert message in str(caught.value)
    assert " — " in str(caught.value), "every config error says how to fix it"


def test_config_without_source_or_lake(tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"tables": DEMO_TABLES, "lake": "lake"}))
    with pytest.raises(ConfigError, match='add "source": {"type": "demo"}'):
        load_config(path)
    path.write_text(json.dumps({"tables": DEMO_TABLES, "source": {"type": "demo"}}))
    with pytest.raises(ConfigError, match="Config has no lake"):
        load_config(path)


def test_invalid_json_says_where(tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text('{"tables": [\n  {"name": "x",}\n]}')
    with pytest.raises(ConfigError, match=r"is not valid JSON \(line 2, column"):
        load_config(path)


def test_dotenv_next_to_the_config_is_loaded_without_overriding(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CDC_TEST_KEEP", "from-environment")
    monkeypatch.delenv("CDC_TEST_NEW", raising=False)
    (tmp_path / ".env").write_text("CDC_TEST_KEEP=from-dotenv\nCDC_TEST_NEW=from-dotenv\n")
    load_config(write_config(tmp_path))
    import os

    assert os.environ["CDC_TEST_KEEP"] == "from-environment"
    assert os.environ["CDC_TEST_NEW"] == "from-dotenv"


def test_cli_config_error_exits_2_with_one_line(tmp_path: Path):
    path = write_config(tmp_path, timer={"unit": "weeks", "value": 1})
    result = run_cli("--once", "--config", str(path))
    assert result.code == 2
    assert result.err.strip().splitlines()[-1].startswith('Error: Config key "timer.unit" is \'weeks\'')
    assert not (tmp_path / "lake").exists()


def test_cli_seed_config_without_kaggle_credentials_says_how_to_set_them(tmp_path: Path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(SEED_CONFIG))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kaggle/kaggle.json of this machine
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / ".kaggle"))
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    result = run_cli("--once", "--config", str(path))
    assert result.code == 1
    assert result.out.count("FAILED: No Kaggle credentials found — set KAGGLE_API_TOKEN") == 1  # said once
    assert result.out.count("FAILED: the same error as clientes") == 1
    assert "Traceback" not in result.err and "kaggle.json" not in result.out.split("FAILED")[0]


def test_cli_unknown_table_and_missing_config(tmp_path: Path, demo_config: Path):
    result = run_cli("--once", "--config", str(demo_config), "--tables", "clientes,nope")
    assert result.code == 2 and 'Table "nope" is not in the config' in result.err
    result = run_cli("--once", "--config", str(tmp_path / "missing.json"))
    assert result.code == 2 and "does not exist — pass --config PATH" in result.err


def test_cli_help_and_usage_errors():
    result = run_cli("--help")
    assert result.code == 0 and "--skip-download" in result.out and "--once" in result.out
    result = run_cli("--bogus")
    assert result.code == 2 and "unrecognized arguments: --bogus" in result.err


# --- table formats (issue 15) ---------------------------------------------------------------------------------

def test_table_format_is_off_unless_named(tmp_path: Path):
    assert load_config(write_config(tmp_path)).table_format is None
    config = load_config(write_config(tmp_path, table_format="delta"))
    assert config.table_format.name == "delta"


def test_iceberg_block_namespace_and_catalog_properties(tmp_path: Path):
    catalog = {"type": "glue", "glue.region": "eu-west-1", "glue.max-retries": 3, "py-io-impl-flag": True}
    config = load_config(write_config(tmp_path, lake="s3://my-lake/x", table_format="iceberg",
                                      iceberg={"namespace": "loyalty", "catalog": catalog}))
    assert config.table_format.namespace == "loyalty"
    assert config.table_format.catalog == {"type": "glue", "glue.region": "eu-west-1", "glue.max-retries": "3",
                                           "py-io-impl-flag": "true"}
    local = load_config(write_config(tmp_path, table_format="iceberg")).table_format
    assert local.namespace == "cdc" and local.catalog == {}  # SQLite in the lake, made by the format


@pytest.mark.parametrize("overrides,message", [
    ({"table_format": "hudi"}, 'Config key "table_format" is \'hudi\' — use one of: delta, iceberg'),
    ({"table_format": "iceberg", "iceberg": {"namspace": "x"}}, 'Unknown config key "iceberg.namspace"'),
    ({"table_format": "iceberg", "iceberg": {"namespace": "a.b"}}, 'Config key "iceberg.namespace" is \'a.b\''),
    ({"table_format": "iceberg", "iceberg": {"catalog": "glue"}}, 'Config key "iceberg.catalog" must be an object'),
    ({"table_format": "iceberg", "lake": "s3://my-lake/p"}, "an S3 lake needs an explicit Iceberg catalog"),
    ({"table_format": "iceberg", "lake": None, "aws": {"bucket": "my-lake"}},
     "an S3 lake needs an explicit Iceberg catalog"),
])
def test_table_format_errors_name_the_key(tmp_path: Path, overrides: dict, message: str):
    raw = json.loads(write_config(tmp_path).read_text())
    raw.update(overrides)
    raw = {k: v for k, v in raw.items() if v is not None}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_config(tmp_path / "config.json")
