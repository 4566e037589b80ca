#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install contrastkit into it.
# - keeps a torch that is already importable (yours, or one installed earlier);
# - otherwise installs torch==2.13.0 (the CPU build on this machine's disk) before anything
#   else, so no other requirement can pull a multi-GB GPU build;
# - (re)installs the package when it is not installed in .venv (checked from outside the source tree,
#   so the checkout's own folder does not count), when its console script is missing, when
#   pyproject.toml changed since the last install, or when --test asks for extras not yet installed.
# Usage: bash scripts/setup.sh [--test]      (--test adds the test-only dependencies)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv --system-site-packages .venv 2>/dev/null || "$PY" -m venv .venv
fi
VPY=$ROOT/.venv/bin/python
if ! (cd / && "$VPY" -c "import torch") >/dev/null 2>&1; then
    echo "[setup] no torch found: installing torch==2.13.0 (CPU build)"
    "$VPY" -m pip install -q "torch==2.13.0"
else
    echo "[setup] keeping torch $(cd / && "$VPY" -c 'import torch; print(torch.__version__)')"
fi
extras=base
[ "${1:-}" = "--test" ] && extras=test
STAMP=.venv/.contrastkit-install
want="$(sha256sum pyproject.toml | cut -c1-16)"
have_hash=""; have_extras=""
[ -f "$STAMP" ] && read -r have_hash have_extras < "$STAMP" || true
installed_here() {  # the package in .venv must be this checkout, imported from outside the source tree
    [ -x .venv/bin/contrastkit ] || return 1
    local where
    where=$(cd / && "$VPY" -c "import contrastkit, os; print(os.path.dirname(os.path.dirname(contrastkit.__file__)))" \
            2>/dev/null) || return 1
    [ "$where" = "$ROOT" ]
}
if ! installed_here || [ "$have_hash" != "$want" ] || { [ "$extras" = test ] && [ "$have_extras" != test ]; }; then
    spec="."
    [ "$extras" = test ] && spec=".[test]"
    [ "$have_extras" = test ] && [ "$have_hash" = "$want" ] && spec=".[test]"
    echo "[setup] installing contrastkit (${spec}) into .venv"
    "$VPY" -m pip install -q -e "$spec"
    [ "$spec" = ".[test]" ] && extras=test
    echo "$want $extras" > "$STAMP"
fi
