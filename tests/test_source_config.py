"""Config of the database and remote sources: what loads, and every mistake named with its fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cdc_core.config import load_config, parse_config
from cdc_core.errors import ConfigError
from cdc_core.sources import make_source

from .conftest import ROOT, write_config

TABLE = [{"name": "clientes", "pk": "idCliente"}]


def test_each_source_loads_and_names_itself_without_secrets(tmp_path: Path):
    cases = [
        ({"type": "postgres", "dsn": "postgresql://app:S3cret@db.example.com:6543/shop"},
         "postgres app@db.example.com:6543/shop"),
        ({"type": "postgres", "dsn": "host=db user=app password='S3cret x' dbname=shop"}, "postgres app@db:5432/shop"),
        ({"type": "sqlite", "path": "data/shop.db"}, f"sqlite {tmp_path / 'data' / 'shop.db'}"),
        ({"type": "http", "url": "https://u:S3cret@files.example.com/exp/{table}.csv"},
         "http https://u:***@files.example.com/exp/{table}.csv"),
        ({"type": "s3", "url": "s3://partner-drop/loyalty/daily/"}, "s3 s3://partner-drop/loyalty/daily/"),
    ]
    for source, description in cases:
        config = load_config(write_config(tmp_path, source=source, tables=TABLE))
        assert make_source(config.source).description == description
        assert "S3cret" not in description


def test_the_s3_drop_folder_takes_the_lakes_aws_options_unless_it_names_its_own(tmp_path: Path):
    aws = {"bucket": "my-lake", "region": "sa-east-1", "endpoint_url": "http://minio:9000", "max_attempts": 3}
    config = load_config(write_config(tmp_path, source={"type": "s3", "url": "s3://drop"}, aws=aws, lake=None))
    assert (config.source.s3.bucket, config.source.s3.prefix) == ("drop", "")
    assert (config.source.s3.region, config.source.s3.endpoint_url, config.source.s3.max_attempts) == (
        "sa-east-1", "http://minio:9000", 3)
    own = load_config(write_config(tmp_path, source={"type": "s3", "url": "s3://drop/x", "region": "us-east-1"},
                                   aws=aws, lake=None))
    assert own.source.s3.region == "us-east-1" and own.source.s3.endpoint_url == "http://minio:9000"


def test_a_postgres_dsn_may_be_left_to_the_pg_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in {"PGHOST": "10.0.0.5", "PGUSER": "etl", "PGDATABASE": "erp", "PGPORT": "5433"}.items():
        monkeypatch.setenv(name, value)
    config = load_config(write_config(tmp_path, source={"type": "postgres"}, tables=TABLE))
    assert config.source.dsn is None
    assert make_source(config.source).description == "postgres etl@10.0.0.5:5433/erp"


def test_schema_and_query_belong_to_database_tables(tmp_path: Path):
    tables = [{"name": "orders", "pk": "id", "schema": "shop"},
              {"name": "totals", "pk": "client", "query": "SELECT client, sum(x) FROM t GROUP BY 1"}]
    config = load_config(write_config(tmp_path, source={"type": "postgres", "dsn": "postgresql://x@h/d"},
                                      tables=tables))
    assert config.table("orders").schema == "shop" and config.table("totals").query.startswith("SELECT")
    assert config.table("orders").query is None and config.table("totals").schema is None


@pytest.mark.parametrize(("source", "tables", "message"), [
    ({"type": "http", "url": "https://example.com/clientes.csv"}, TABLE,
     'Config key "source.url" is \'https://example.com/clientes.csv\' — use an http(s) URL with {table}'),
    ({"type": "http", "url": "ftp://u:pw@example.com/{table}.csv"}, TABLE, "ftp://u:***@example.com/{table}.csv"),
    ({"type": "http", "url": "https://example.com/x.csv?token=S3cret"}, TABLE, "'https://example.com/x.csv?token=***'"),
    ({"type": "s3", "url": "s3://"}, TABLE, 'Config key "source.url" is \'s3://\' — use "s3://bucket/folder/"'),
    ({"type": "s3", "url": "https://bucket/x"}, TABLE, "a valid bucket name"),
    ({"type": "s3", "url": "s3://b-1/x", "region": 5}, TABLE, 'Config key "source.region" is 5 — use a string'),
    ({"type": "s3", "url": "s3://b-1/x", "dsn": "x"}, TABLE, 'Unknown config key "source.dsn"'),
    ({"type": "postgres", "dsn": ""}, TABLE, 'Config key "source.dsn" must be a connection string'),
    ({"type": "postgres", "path": "x"}, TABLE, 'Unknown config key "source.path"'),
    ({"type": "sqlite"}, TABLE, 'Config key "source.path" is None — give the SQLite database file'),
    ({"type": "sqlite", "path": "x.db"}, [{"name": "t", "pk": "id", "schema": "main"}],
     'Config key "tables[0].schema" only works with the postgres source — remove it'),
    ({"type": "http", "url": "http://h/{table}"}, [{"name": "t", "pk": "id", "query": "SELECT 1"}],
     'Config key "tables[0].query" only works with a database source (postgres, sqlite), not http'),
    ({"type": "postgres"}, [{"name": "t", "pk": "id", "query": " "}], 'Config key "tables[0].query" is \' \''),
    ({"type": "postgres"}, [{"name": "t", "pk": "id", "query": "SELECT 1", "schema": "s"}],
     'Config key "tables[0].schema" goes with a table\'s name, not with "tables[0].query"'),
])
def test_bad_source_config_names_the_key_and_the_fix(tmp_path: Path, source: dict, tables: list, message: str):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, source=source, tables=tables))
    assert message in str(caught.value)
    assert " — " in str(caught.value)
    assert "pw@" not in str(caught.value)


def test_the_readmes_source_examples_are_valid_configs(tmp_path: Path):
    section = (ROOT / "README.md").read_text().split("## Databases, web servers and S3 drop folders", 1)[1]
    blocks = re.findall(r"```json\n(.*?)```", section.split("\n## ", 1)[0], re.DOTALL)
    kinds = set()
    for block in blocks:
        raw = json.loads("{" + block + "}")
        raw.setdefault("tables", [{"name": "clientes", "pk": "idCliente"}])
        config = parse_config({**raw, "lake": "lake"}, base_dir=tmp_path)
        kinds.add(make_source(config.source).description.split()[0])
    assert kinds == {"postgres", "sqlite", "http", "s3"}
