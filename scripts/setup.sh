#!/usr/bin/env bash
# Set up .venv with the project and its pinned dependencies.
#
#   bash scripts/setup.sh          # runtime: torch (CPU), Ray 2.60 RLlib/Tune, gymnasium, ...
#   bash scripts/setup.sh --dev    # plus the test and lint tools
#
# Safe to run again: an up-to-date environment is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
extras=""
if [ "${1:-}" = "--dev" ]; then
  extras="[dev]"
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "error: Python 3.10 or newer is needed (found $("$PYTHON" --version))" >&2; exit 2; }
  "$PYTHON" -m venv .venv
fi

# torch first and pinned: without it a dependency could pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
# requirements.lock pins every transitive version (what Ray pins included).
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -c requirements.lock -e ".${extras}"
