#!/usr/bin/env bash
# ./cdc ARGS…  =  python -m cdc_core ARGS…, after setting up .venv (next to this script) on first use with the
# core, the terminal app and the notebooks (`.[tui,notebooks]`; ./test installs every extra).
#   ./cdc --once         capture once (config.json: the built-in demo dataset into ./lake)
#   ./cdc --help         every option
# It runs in the folder you call it from, as `python -m cdc_core` does: relative paths (--config, diff's files,
# --output) are yours, not this checkout's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${CDC_VENV:-.venv}"
case "$venv" in /*) ;; *) venv="$here/$venv" ;; esac
(cd "$here" && CDC_VENV="$venv" && . scripts/bootstrap.sh && cdc_ensure_venv tui,notebooks)
exec "$venv/bin/python" -m cdc_core "$@"
