#!/usr/bin/env bash
# Put the dashboard's front-end assets where Solara's server looks for them, so `cloudwar serve`
# works without internet.
#
# Solara's page loads its JavaScript, CSS and fonts through the server's CDN proxy
# (/_solara/cdn/<package>@<version>/<file>); the server answers from <venv>/share/solara/cdn/ and
# only goes to cdn.jsdelivr.net for what is missing there. This script fetches the npm packages the
# page asks for (the list is CDN_PACKAGES in src/cloudwar/dashboard/serve.py) with `npm pack` from the npm
# registry and unpacks each into <cache>/<package>@<version>/.
#
# Safe to run again: a package already unpacked (its folder holds package.json) is skipped, so a run
# with nothing to do takes well under a second. A package folder appears whole, by a rename.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || { echo "dashboard-assets: error: no .venv; run scripts/setup.sh first" >&2; exit 1; }

# The cache folder and the packages not in it yet, from the same code `cloudwar serve` uses (run as
# a plain file: importing the cloudwar package would load the whole model and take seconds).
mapfile -t lines < <("$python" -c '
import runpy
serve = runpy.run_path("src/cloudwar/dashboard/serve.py")
print(serve["asset_cache_dir"]())
print(*serve["missing_assets"](), sep="\n")
')
cache=${lines[0]}
missing=()
for spec in "${lines[@]:1}"; do [ -n "$spec" ] && missing+=("$spec"); done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "dashboard-assets: installing npm (Debian's) to fetch the dashboard's front-end packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq npm >/dev/null
  else
    echo "dashboard-assets: error: npm not found; install Node.js and npm (e.g. apt-get install npm)" >&2
    exit 1
  fi
fi

mkdir -p "$cache"
# Unpack beside the cache, on the same file system, so each package folder appears whole by a rename.
work=$(mktemp -d "$(dirname "$cache")/.dashboard-assets-XXXXXX")
trap 'rm -rf "$work"' EXIT
for spec in "${missing[@]}"; do
  echo "dashboard-assets: fetching $spec" >&2
  tarball=$(cd "$work" && npm pack --silent "$spec" 2>"$work/npm.log" | tail -n 1) || true
  if [ -z "$tarball" ] || [ ! -f "$work/$tarball" ]; then
    echo "dashboard-assets: error: npm pack $spec failed:" >&2
    cat "$work/npm.log" >&2
    exit 1
  fi
  unpacked="$work/unpacked-${tarball%.tgz}"
  mkdir -p "$unpacked"
  # npm tarballs hold one top folder (usually package/); its contents go to <cache>/<spec>/.
  tar -xzf "$work/$tarball" -C "$unpacked" --strip-components=1 --no-same-owner
  [ -f "$unpacked/package.json" ] || { echo "dashboard-assets: error: $spec has no package.json" >&2; exit 1; }
  target="$cache/$spec"
  mkdir -p "$(dirname "$target")"
  rm -rf "$target"
  mv "$unpacked" "$target"
done
echo "dashboard-assets: ${#missing[@]} package(s) in $cache" >&2
