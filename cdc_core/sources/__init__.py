"""Sources deliver the current CSV file of each configured table into a fresh folder.

A `Source` has one method, `fetch(tables, dest, last_version=...)`, returning a `Fetch`: the source's version,
the file of each table it delivered, and an error for each table it could not deliver (the others go on).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..config import SourceConfig, TableConfig
from ..errors import CdcError


@dataclass
class Fetch:
    """What one fetch delivered."""

    version: str | None
    files: dict[str, Path] = field(default_factory=dict)
    errors: dict[str, CdcError] = field(default_factory=dict)
    unchanged: bool = False


class Source(Protocol):
    """Anything that can deliver `{table}.csv` files."""

    description: str

    def fetch(self, tables: Sequence[TableConfig], dest: Path, *, last_version: str | None) -> Fetch: ...


def make_source(config: SourceConfig) -> Source:
    """The source a config names."""
    if config.type == "demo":
        from .demo import DemoSource

        return DemoSource(seed=config.seed, scale=config.scale)
    if config.type == "directory":
        from .directory import DirectorySource

        return DirectorySource(config.path)
    from .kaggle import KaggleSource

    return KaggleSource(config.dataset)
