"""A held capture never goes stale, a waiting one is said everywhere, and the guards look over a window of runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdc_core import load_config, run_once
from cdc_core.config import ConfigError
from cdc_core.lake import LocalLake, read_manifests
from cdc_core.metrics import textfile_path
from cdc_core.report import TableReport

from .conftest import run_cli


def rows(n: int, start: int = 0) -> str:
    return "id,v\n" + "".join(f"{i},v{i}\n" for i in range(start, start + n))


def setup(tmp_path: Path, first: str, **guards) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/t.csv").write_text(first)
    table = {"name": "t", "pk": "id", **({"guards": guards} if guards else {})}
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"source": {"type": "directory", "path": "src"}, "lake": "lake",
                                  "data_dir": "data", "tables": [table]}))
    assert run_once(load_config(config)).tables[0].status == "full_load"
    return config


def capture(tmp_path: Path, config: Path, text: str, *accept: str):
    (tmp_path / "src/t.csv").write_text(text)
    return run_once(load_config(config), accept_held=accept).tables[0]


def deletes(tmp_path: Path) -> list[int]:
    return [m["counts"]["D"] for m in read_manifests(LocalLake(tmp_path / "lake"), "t")]


def test_a_held_capture_is_dropped_when_the_source_recovers(tmp_path: Path):
    config = setup(tmp_path, rows(100))
    assert capture(tmp_path, config, rows(10)).status == "held"
    recovered = capture(tmp_path, config, rows(100))
    assert recovered.status == "unchanged" and recovered.held_waiting is None
    accepted = capture(tmp_path, config, rows(100), "t")  # what the held message suggested: nothing is held now
    assert accepted.status == "unchanged"
    assert deletes(tmp_path) == [0]  # no false delete (and re-insert) in the history


def test_a_later_capture_that_differs_replaces_the_held_one(tmp_path: Path):
    config = setup(tmp_path, rows(100))
    assert capture(tmp_path, config, rows(10)).status == "held"
    assert capture(tmp_path, config, rows(20)).status == "held"  # held again: the newer one waits
    accepted = capture(tmp_path, config, rows(20), "t")
    assert accepted.status == "changes" and accepted.counts["D"] == 80
    assert capture(tmp_path, config, rows(10)).status == "changes"  # a window starts at an accepted capture


def test_a_capture_that_meets_the_guards_drops_the_held_one(tmp_path: Path):
    config = setup(tmp_path, rows(100))
    assert capture(tmp_path, config, rows(10)).status == "held"
    assert capture(tmp_path, config, rows(101)).status == "changes"
    assert not list((tmp_path / "data/outbox/t").glob(".preview-*"))  # nothing says "held" any more
    assert capture(tmp_path, config, rows(101), "t").status == "unchanged"
    assert deletes(tmp_path) == [0, 0]


def test_a_held_capture_still_waiting_is_said_by_the_summary_and_the_metrics(tmp_path: Path):
    config = setup(tmp_path, rows(100))
    assert capture(tmp_path, config, rows(10)).status == "held"
    (tmp_path / "src/t.csv").write_text("id,v\n1,a,b\n")  # the source breaks meanwhile
    result = run_cli("--once", "--config", str(config))
    assert result.code == 1
    line = next(x for x in result.out.splitlines() if "FAILED" in x)
    assert "line 2 has 3 fields" in line and "(a held capture, run " in line and "--accept-held t)" in line
    assert 'cdc_table_held{table="t"} 1.0' in textfile_path(load_config(config)).read_text()


def test_a_deletion_spread_over_runs_is_held_within_the_window(tmp_path: Path):
    config = setup(tmp_path, rows(1000))
    assert capture(tmp_path, config, rows(501)).status == "changes"  # 49.9 % in one run: within the guard
    held = capture(tmp_path, config, rows(251))  # 49.9 % again, 74.9 % of the window's most
    assert held.status == "held"
    assert ("251 rows left of the 1,000 the table had within its last 2 captures (75% gone), more than "
            "max_delete_ratio 0.5 (window 10)") in held.error


def test_the_window_can_be_narrowed_or_turned_off(tmp_path: Path):
    config = setup(tmp_path, rows(1000), window=1)
    for n in (501, 251, 126, 63):
        assert capture(tmp_path, config, rows(n)).status == "changes"


@pytest.mark.parametrize("value", [0, 1.5, "ten", True])
def test_a_bad_window_is_a_config_error(tmp_path: Path, value):
    (tmp_path / "config.json").write_text(json.dumps({"source": {"type": "demo"}, "lake": "lake",
                                                      "guards": {"window": value},
                                                      "tables": [{"name": "t", "pk": "id"}]}))
    with pytest.raises(ConfigError, match=r'"guards.window" is .* — use a number of captures \(1 or more\)'):
        load_config(tmp_path / "config.json")


def test_the_tui_says_a_held_capture_waits():
    from cdc_tui.render import report_line

    line = report_line(TableReport("t", status="failed", error='Table "t": broken', held_waiting="20260101_000000"))
    assert "FAILED: Table \"t\": broken  (held run 20260101_000000 waits to be accepted)" in line.plain
    assert "held run" not in report_line(TableReport("t", status="unchanged", rows=3)).plain
