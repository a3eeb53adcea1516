#!/usr/bin/env bash
# The main job on embedded defaults, no servers needed: install cc-monitor into .venv if needed,
# simulate a day of a multi-channel contact centre and replay it through the KPI engine.
# Extra arguments go to `cc-monitor demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/cc-monitor ]; then
    "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e .
fi
exec .venv/bin/cc-monitor demo "$@"
