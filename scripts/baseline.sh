#!/usr/bin/env bash
# Set up, then run the baseline scenario and write its table and figure to out/baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/cloudwar run --scenario baseline --out out/baseline "$@"
