#!/usr/bin/env bash
# Set up everything the tests need, then run the whole suite (slow and browser tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff check src tests experiments benchmarks
# Two pytest processes, each running whole test files (--dist loadfile: a module's fixtures are built
# once, and its tests run in their order); arguments after can override, e.g. `-n 0` for one process.
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
