"""cdc-tui: pick tables, preview the diff, confirm the upload and run the timed loop in the terminal.

Every step calls `cdc_core` (the same `run_once` / `run_forever` the CLI uses); this package only renders.
"""

from __future__ import annotations

import sys

from cdc_core.errors import ConfigError
from cdc_core.extras import require


def main() -> int:
    """The `cdc-tui` command: the terminal app, or exit 2 with the extra to install when textual is missing."""
    try:
        require("cdc-tui")
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    from .app import main as app_main

    return app_main()
