#!/usr/bin/env bash
# The project's test command: sets up .venv (see scripts/setup.sh), runs ruff, then the suite without the
# slow-marked checks (training to target accuracy, multi-process and crash runs: several minutes more). Extra
# arguments go to pytest and come last, so `bash scripts/test.sh -m slow` runs the slow checks alone and
# `bash scripts/test.sh -m ""` runs everything (CI runs both parts: .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/python -m ruff check contrastkit tests benchmarks
exec .venv/bin/python -m pytest -q -m "not slow" "$@"
