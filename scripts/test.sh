#!/usr/bin/env bash
# Builds drrserve (installing what it needs) and runs every test: C++ unit and
# server tests, the Python client and end-to-end tests, the promtool scrape.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
ctest --test-dir "$root/build" --output-on-failure --timeout 900 "$@"
