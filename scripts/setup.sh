#!/usr/bin/env bash
# Set up (or update) the project's virtualenv in .venv with Python 3.12.
#   scripts/setup.sh          the package and what a run needs
#   scripts/setup.sh --test   also everything the test suite needs (extras, Chromium, dashboard assets)
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

find_python() {
  local cand
  for cand in python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  # pyenv installs it but its shim refuses unless the version is selected
  for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do
    if [ -x "$cand" ]; then echo "$cand"; return 0; fi
  done
  return 1
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
  py=$(find_python) || { echo "setup: error: Python 3.12 not found (Mesa 3.5 needs it)" >&2; exit 1; }
  rm -rf .venv
  "$py" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
fi

extras="dask,sensitivity,dashboard,discovery"
[ $want_test = 1 ] && extras="$extras,test"
stamp=".venv/.cloudwar-installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-$extras"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q -e ".[$extras]" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import cloudwar, mesa' && touch "$stamp"
fi

if [ $want_test = 1 ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the browser tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium >/dev/null
  fi
  if [ -x scripts/dashboard-assets.sh ]; then
    scripts/dashboard-assets.sh
  fi
fi
