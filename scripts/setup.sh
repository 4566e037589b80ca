#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install contrastkit into it.
# - keeps a torch that is already importable (yours, or one installed earlier);
# - otherwise installs torch==2.13.0 (the CPU build on this machine's disk) before anything
#   else, so no other requirement can pull a multi-GB GPU build.
# Usage: bash scripts/setup.sh [--test]      (--test adds the test-only dependencies)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv --system-site-packages .venv 2>/dev/null || "$PY" -m venv .venv
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    echo "[setup] no torch found: installing torch==2.13.0 (CPU build)"
    "$VPY" -m pip install -q "torch==2.13.0"
else
    echo "[setup] keeping torch $("$VPY" -c 'import torch; print(torch.__version__)')"
fi
extra=""
[ "${1:-}" = "--test" ] && extra="[test]"
if ! "$VPY" -c "import contrastkit" >/dev/null 2>&1 || [ -n "$extra" ]; then
    "$VPY" -m pip install -q -e ".${extra}"
fi
