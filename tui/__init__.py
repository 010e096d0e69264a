"""cdc-tui: pick tables, preview the diff, confirm the upload and run the timed loop in the terminal.

Every step calls `cdc_core` (the same `run_once` / `run_forever` the CLI uses); this package only renders.
"""
