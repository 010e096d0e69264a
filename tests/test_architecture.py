"""The house's structure, checked on every run: the layers contract, no import cycle, small modules, a true map.

A new upward import, a cycle, a module past ~300 lines or a graph in docs/architecture.md that the code no longer
has each fail here, so CI (`.ci/run`, the GitHub workflow: both run ./test) refuses them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 300
sys.path.insert(0, str(ROOT / "scripts"))
import architecture  # scripts/architecture.py, the page's generator


def test_the_import_contracts_hold_and_list_no_exception():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert {c["type"] for c in contracts} >= {"layers", "forbidden", "acyclic_siblings"}
    assert not [c["name"] for c in contracts if c.get("ignore_imports")], "a contract lists exceptions"
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in done.stdout


def test_no_module_is_in_an_import_cycle():
    """Not even a registry with its implementations (a package importing a child that imports the package): no
    direct import A → B has a chain back from B to A."""
    graph = grimp.build_graph("cdc_core", "cdc_tui", cache_dir=None)
    in_cycles = sorted((importer, imported) for importer in graph.modules
                       for imported in graph.find_modules_directly_imported_by(importer)
                       if graph.chain_exists(importer=imported, imported=importer))
    assert in_cycles == []


def test_every_module_stays_under_about_300_lines():
    sources = [*ROOT.glob("cdc_core/**/*.py"), *ROOT.glob("tui/*.py"), *ROOT.glob("notebooks/*.py")]
    long = {str(p.relative_to(ROOT)): n for p in sources if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_architecture_page_shows_the_graph_the_code_has():
    page = architecture.PAGE.read_text()
    block = page[page.index(architecture.BEGIN):page.index(architecture.END) + len(architecture.END)]
    assert block == architecture.generated(), "run `python scripts/architecture.py --write`"


def test_the_pipeline_runs_without_monitoring_and_tells_its_observers(tmp_path):
    """Monitoring is an observer the faces attach: the bare pipeline records no outcome; `cdc_core.run_once` does."""
    from cdc_core import load_config, pipeline, run_once

    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"source": {"type": "demo"}, "lake": str(tmp_path / "lake"),
                                       "data_dir": str(tmp_path / "d"),
                                       "tables": [{"name": "clientes", "pk": "idCliente", "sep": ";"}]}))
    config = load_config(config_file)
    seen = []
    report = pipeline.run_once(config, observers=[lambda r, quiet: seen.append((r.run_id, quiet))])
    assert seen == [(report.run_id, False)]
    assert not (tmp_path / "d" / "outcome.json").exists()
    run_once(config)
    assert (tmp_path / "d" / "outcome.json").exists()
