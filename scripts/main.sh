#!/usr/bin/env bash
# The main job: set up .venv (see scripts/setup.sh), train SimCLR on the built-in mnist5k digits on this
# machine (at most 5 minutes of training), then print held-out linear-probe and kNN accuracy for raw
# pixels, a random-init encoder and the trained encoder; writes runs/demo/{metrics.json,*.png}.
# Extra arguments go to `contrastkit demo` (e.g. --out DIR, --device cuda, --max-minutes 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/contrastkit demo "$@"
