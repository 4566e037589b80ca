#!/usr/bin/env bash
# The project's test command: sets up .venv (see scripts/setup.sh) and runs the whole suite,
# slow-marked checks included. Extra arguments go to pytest (e.g. -m "not slow", -k triplet).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/python -m ruff check contrastkit tests benchmarks
exec .venv/bin/python -m pytest -q "$@"
