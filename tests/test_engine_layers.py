"""The engines' one rulebook: what both engines decide is defined once, in `engines/rules.py`.

Which modules an engine may import is import-linter's contract (pyproject.toml, tests/test_architecture.py): the
engines sit above the config and the base modules only, and DuckDB and Spark never import each other.
"""

from __future__ import annotations

from pathlib import Path

CORE = Path(__file__).parent.parent / "cdc_core"


def test_one_definition_of_what_is_parquet():
    defining = [p for p in CORE.rglob("*.py") if "def is_parquet" in p.read_text(encoding="utf-8")
                or "def _is_parquet" in p.read_text(encoding="utf-8")]
    assert defining == [CORE / "engines" / "rules.py"]
