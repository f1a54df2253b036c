#!/usr/bin/env bash
# Style and type checks of the Python code, with the project venv (scripts/setup.sh):
#   ruff check   client/python, tests, bench, fuzz and docs
#   mypy         the drrclient package, its example, setup.py and gen_stubs.py (strict)
# Both read their settings from client/python/pyproject.toml. Exits non-zero on any finding.
#   scripts/lint_python.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/.venv/bin
for tool in python ruff mypy; do
  if [ ! -x "$bin/$tool" ]; then
    echo "lint_python: $bin/$tool is missing; run scripts/setup.sh" >&2
    exit 2
  fi
done

# mypy checks the client against the .pyi types of its generated drrclient._proto, made here
# from proto/ with the venv's grpcio-tools, so no build is needed.
"$bin/python" "$root/client/python/gen_stubs.py"
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT

# From the directory of the settings: ruff resolves their relative paths (src) from the
# working directory when given --config, and mypy's `files` are relative to it.
cd "$root/client/python"
status=0
echo "lint_python: ruff check client/python tests bench fuzz docs"
"$bin/ruff" check --no-cache --config pyproject.toml . ../../tests ../../bench ../../fuzz \
  ../../docs ||
  status=1
echo "lint_python: mypy client/python (drrclient, examples, setup.py, gen_stubs.py)"
"$bin/mypy" --config-file pyproject.toml --cache-dir "$cache" || status=1
exit "$status"
