#!/usr/bin/env bash
# ./cdc ARGS…  =  python -m cdc_core ARGS…, after setting up .venv on first use.
#   ./cdc --once         capture once (config.json: the built-in demo dataset into ./lake)
#   ./cdc --help         every option
set -euo pipefail
cd "$(dirname "$0")"
. scripts/bootstrap.sh
cdc_ensure_venv all
exec "$CDC_VENV/bin/python" -m cdc_core "$@"
