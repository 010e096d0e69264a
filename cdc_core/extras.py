"""The installed distribution: its version, and the optional features with the extra that installs each one.

`pip install cdc-core` holds the core (the demo, directory and SQLite sources, a local lake, diff, replay,
verify). Every other feature imports its library only when it is used; `require(feature)` checks, without
importing anything, that the library is installed and otherwise raises a one-line `ConfigError` that names the
extra: `the S3 lake needs boto3: pip install 'cdc-core[s3]'` (exit 2), never an ImportError traceback.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata

from .errors import ConfigError

DISTRIBUTION = "cdc-core"

# feature (the subject of the message) -> (the extra that installs it, the modules it imports)
FEATURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "the S3 lake": ("s3", ("boto3",)),
    "the s3 source": ("s3", ("boto3",)),
    "the kaggle source": ("kaggle", ("kaggle", "six", "requests", "tenacity")),
    "the http source": ("http", ("requests", "tenacity")),
    "the postgres source": ("postgres", ("adbc_driver_postgresql",)),
    "sending notifications": ("notify", ("apprise",)),
    "exporting Prometheus metrics": ("metrics", ("prometheus_client",)),
    "cdc-tui": ("tui", ("textual", "textual_fastdatatable")),
    "cdc_core.explore": ("notebooks", ("pandas", "altair")),  # the notebooks' helpers
}


def missing(feature: str, module: str) -> ConfigError:
    """The one-line error for a feature whose library `module` is not installed (or cannot be imported)."""
    return ConfigError(f"{feature} needs {module}: pip install '{DISTRIBUTION}[{FEATURES[feature][0]}]'")


def require(feature: str) -> None:
    """Raise `ConfigError` naming the extra unless every library `feature` needs is installed (none is imported)."""
    for module in FEATURES[feature][1]:
        if importlib.util.find_spec(module) is None:
            raise missing(feature, module)


def version() -> str:
    """The installed distribution's version (from its metadata), or "unknown" when run from a source tree."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"

