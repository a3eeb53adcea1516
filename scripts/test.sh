#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine (Python 3.11, root), then run the
# whole suite: lint, types, unit and property tests. Safe to re-run; installs are incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real components for the integration tests (Debian packages), installed when missing.
packages=()
command -v prometheus-alertmanager >/dev/null || packages+=(prometheus-alertmanager)
command -v chromium >/dev/null || packages+=(chromium)
# Korean glyphs (the KS S 1006 clause numbers) in the HTML report's headless screenshots
[ -d /usr/share/fonts/truetype/nanum ] || packages+=(fonts-nanum)
command -v prometheus >/dev/null || packages+=(prometheus)
command -v redis-server >/dev/null || packages+=(redis-server)
if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
    else
        echo "note: not root, cannot install ${packages[*]}: their integration tests are skipped" >&2
    fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev,demo]'

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
# In parallel, a module per process (its fixtures, the real services on free ports, stay its
# own): one per core; more made the timing of the live-worker tests flaky on 2 cores.
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
