"""The engines' layers, as docs/engines.md draws them: the neutral rules once, each engine apart from the others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).parent.parent / "cdc_core"
ENGINES = CORE / "engines"
ALLOWED = {"config", "errors", "logs", "names", "sql", "types", "precision", "engines"}  # what engines may import
BASE = ("types.py", "sql.py", "precision.py", "names.py")


def core_imports(path: Path) -> set[str]:
    """The `cdc_core` modules a file imports (relative imports resolved), as dotted names below `cdc_core`."""
    package = path.relative_to(CORE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n.removeprefix("cdc_core.") for n in names if n.startswith("cdc_core.")}
    return found


@pytest.mark.parametrize("path", sorted(ENGINES.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_engines_import_only_the_base_modules_and_each_other(path: Path):
    assert {m for m in core_imports(path) if m.split(".")[0] not in ALLOWED} == set()


@pytest.mark.parametrize("engine, other", [("duckdb", "spark"), ("spark", "duckdb")])
def test_an_engine_never_imports_another(engine: str, other: str):
    for path in (ENGINES / engine).rglob("*.py"):
        assert not any(m.startswith(f"engines.{other}") for m in core_imports(path)), path


@pytest.mark.parametrize("name", BASE)
def test_base_modules_import_neither_engines_nor_config(name: str):
    assert {m for m in core_imports(CORE / name) if m.split(".")[0] in ("engines", "config")} == set()


def test_one_definition_of_what_is_parquet():
    defining = [p for p in CORE.rglob("*.py") if "def is_parquet" in p.read_text(encoding="utf-8")
                or "def _is_parquet" in p.read_text(encoding="utf-8")]
    assert defining == [ENGINES / "rules.py"]
