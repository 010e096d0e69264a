"""The Grafana dashboard asks only for metrics (and labels) the code exports, read from a real metrics file."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ROOT, run_cli, write_config

DASHBOARD = ROOT / "deploy" / "grafana" / "cdc_core.json"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, set[str]]:
    """{metric name: its label names} of the file two real `--once` runs wrote."""
    folder = tmp_path_factory.mktemp("grafana")
    config = write_config(folder)
    for _ in range(2):
        assert run_cli("--once", "--config", str(config), "-q").code == 0
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families((folder / "data" / "metrics" / "cdc_core.prom").read_text()):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords, labels, ranges or strings)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if match.group() not in KEYWORDS and not expr[match.end():].lstrip().startswith("("):
            names.add(match.group())
    return names


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (op) (increase(cdc_changes_total{table=~"$table"}[$__range]))', {"cdc_changes_total"}),
    ("time() - cdc_cycle_timestamp_seconds", {"cdc_cycle_timestamp_seconds"}),
    ('a{x="y"} + 2 * b offset 1d and on (table) c', {"a", "b", "c"}),
])
def test_the_query_reader_finds_metric_names(expr: str, names: set[str]):
    assert metric_names(expr) == names


def test_every_panel_queries_only_exported_metrics_and_labels(exported: dict[str, set[str]]):
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert panels and len({p["id"] for p in panels}) == len(panels)
    used: set[str] = set()
    for panel in panels:
        assert panel["datasource"] == DATASOURCE and panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names and names <= exported.keys(), (panel["title"], names - exported.keys())
            used |= names
            labels = set().union(*(exported[n] for n in names))
            legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            assert legend <= labels, (panel["title"], legend - labels)
            assert target["datasource"] == DATASOURCE
    # what the issue asks to see: changes by op, rows, time since last success, failed/held, outbox, duration
    assert {"cdc_last_run_changes", "cdc_changes_total", "cdc_table_rows", "cdc_last_success_timestamp_seconds",
            "cdc_table_failed", "cdc_table_held", "cdc_outbox_pending", "cdc_cycle_duration_seconds"} <= used


def test_the_datasource_and_table_variables(exported: dict[str, set[str]]):
    variables = {v["name"]: v for v in json.loads(DASHBOARD.read_text())["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    metric, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variables["table"]["query"]["query"]).groups()
    assert label in exported[metric]


def test_panels_fit_the_grid_without_overlapping():
    cells: set[tuple[int, int]] = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, panel["title"]
        cells |= mine
