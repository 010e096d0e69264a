"""The README's "Alerts and monitoring" section: its config blocks load, and its metric table is what the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from cdc_core.config import parse_config

from .conftest import ROOT, run_cli, write_config

SECTION = (ROOT / "README.md").read_text().split("## Alerts and monitoring", 1)[1].split("\n## ", 1)[0]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", SECTION, re.DOTALL)


def test_the_notify_and_metrics_examples_load_with_the_env_file_shown(tmp_path: Path, monkeypatch):
    notify_block, metrics_block = (json.loads(b) for b in blocks("json"))
    env = dict(line.split("=", 1) for line in blocks("bash")[0].splitlines() if "=" in line)
    for name, value in {**env, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE0FAKE0KEY",
                        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}.items():
        monkeypatch.setenv(name, value)
    raw = json.loads(write_config(tmp_path, **notify_block, **metrics_block).read_text())
    config = parse_config(raw, base_dir=tmp_path)
    assert [t.on for t in config.notify] == [("failure", "held", "recovered"), ("failure", "held"),
                                             ("failure", "held", "recovered", "changes")]
    assert (config.metrics.port, config.metrics.host, config.metrics.textfile) == (9108, "127.0.0.1", True)


def test_the_metric_table_lists_exactly_the_exported_metrics(tmp_path: Path):
    config = write_config(tmp_path)
    assert run_cli("--once", "--config", str(config), "-q").code == 0
    text = (tmp_path / "data" / "metrics" / "cdc_core.prom").read_text()
    exported = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    table = SECTION.split("| metric | labels | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = {name for row in table.splitlines() if row.startswith("| `")
                  for name in re.findall(r"`(cdc_\w+)`", row.split("|")[1])}
    assert documented == exported
