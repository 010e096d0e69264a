"""Configs a year of unattended runs meets: each is refused in one line naming the key, exit 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdc_core.config import load_config

from .conftest import DEMO_TABLES, run_cli, write_config


def refused(path: Path) -> str:
    """The one line the CLI prints for a config it refuses (exit 2, no traceback)."""
    result = run_cli("--once", "--config", str(path))
    assert result.code == 2, result.out + result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    return result.err.strip()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"timer": {"unit": "hours", "value": float("nan")}}, 'Config key "timer.value" is nan — use a positive number'),
    ({"timer": {"unit": "hours", "value": float("inf")}}, 'Config key "timer.value" is inf — use a positive number'),
    ({"timer": {"unit": "days", "value": 1e308}}, ('Config key "timer.value" is 1e+308 — use a positive number, at '
                                                  "most a year (366 days)")),
    ({"lake_claim_timeout": float("nan")}, 'Config key "lake_claim_timeout" is nan — use a number of seconds'),
    ({"engine": {"memory_limit": "0GB"}}, 'Config key "engine.memory_limit" is \'0GB\' — use a size of at least'),
    ({"engine": {"threads": 100000}}, 'Config key "engine.threads" is 100000 but this machine has'),
    ({"tables": [{"name": "t" * 240, "pk": "id"}]}, ('Config key "tables[0].name" is 240 characters long — use at '
                                                    "most 128")),
    ({"tables": [{"name": "t", "pk": "id", "schema": "pub\nlic"}], "source": {"type": "postgres"}},
     'Config key "tables[0].schema" is \'pub\\nlic\' — use a schema name'),
    ({"tables": [{"name": "t", "pk": "id", "query": "SELECT 1; DROP TABLE t"}], "source": {"type": "postgres"}},
     'Config key "tables[0].query" holds more than one statement'),
    ({"lake": "s3://my-lake/" + "p" * 960}, 'Config key "lake" is too long for table "transacao_produto"'),
] + [({"lake": url}, (f'Config key "lake" is \'{url}\', but {url.split(":")[0]}:// is not a lake this tool writes — '
                     'use "s3://bucket/prefix"'))
     for url in ("gs://bucket/lake", "abfss://c@acct.dfs.core.windows.net/x", "s3a://bucket/lake",
                 "file:///tmp/lake", "S3://bucket/lake")],
    ids=["timer-nan", "timer-infinity", "timer-huge", "claim-timeout-nan", "memory-0GB", "threads", "long-name",
         "schema-newline", "two-statements", "long-s3-prefix", "gs", "abfss", "s3a", "file", "S3-uppercase"])
def test_a_config_that_cannot_run_for_a_year_is_one_line(tmp_path: Path, overrides: dict, message: str):
    line = refused(write_config(tmp_path, **overrides))
    assert line.startswith(f"Error: {message}"), line
    assert not (tmp_path / "gs:").exists() and not (tmp_path / "lake").exists()


def test_a_key_written_twice_is_refused(tmp_path: Path):
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('"data_dir": "data",', '"data_dir": "data", "data_dir": "other",'))
    assert refused(path) == ('Error: Config key "data_dir" is written twice in the same object — keep one of them '
                             "(JSON would silently use the last)")


@pytest.mark.parametrize("which", ["config.json", ".env"])
def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path, which: str):
    path = write_config(tmp_path)
    target = tmp_path / which
    target.write_bytes((target.read_bytes() if target.exists() else b"A=1\n") + b"\n# caf\xe9\n"[:-1])
    if which == "config.json":
        target.write_bytes(b'{"data_dir": "caf\xe9"}')
    line = refused(path)
    label = "Config file" if which == "config.json" else "The .env file"
    assert line.startswith(f"Error: {label} {target} is not UTF-8 text (byte ") and "save it as UTF-8" in line


def test_a_config_path_that_is_a_folder_is_one_line(tmp_path: Path):
    assert refused(tmp_path) == (f"Error: Config file {tmp_path} is a folder — pass --config with the path of the "
                                 f"config file itself (like {tmp_path / 'config.json'})")


def test_comments_in_the_config_are_accepted(tmp_path: Path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"_comment": ["a starter config", "demo source"], "source": {
        "type": "demo", "_comment": "switch to kaggle: …"}, "lake": "lake", "tables": DEMO_TABLES}))
    assert load_config(path).source.type == "demo"
