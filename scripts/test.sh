#!/usr/bin/env bash
# Set up everything the tests need, then run the whole suite (slow and browser tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff check src tests experiments benchmarks
exec .venv/bin/python -m pytest "$@"
