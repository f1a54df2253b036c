#!/usr/bin/env bash
# Style and type checks of the Python code, with the project venv (scripts/setup.sh):
#   ruff check   client/python, tests, bench and fuzz
#   mypy         the drrclient package, its example and setup.py (strict)
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

# mypy checks the client against the drr.v1 messages' .pyi stubs, generated here from proto/
# with the venv's grpcio-tools (the generator of build/python), so no build is needed.
stubs=$(mktemp -d)
trap 'rm -rf "$stubs"' EXIT
"$bin/python" -m grpc_tools.protoc --proto_path="$root/proto" --python_out="$stubs" \
  --pyi_out="$stubs" --grpc_python_out="$stubs" "$root"/proto/drr/v1/*.proto
touch "$stubs/drr/__init__.py" "$stubs/drr/v1/__init__.py"

# From the directory of the settings: ruff resolves their relative paths (src) from the
# working directory when given --config, and mypy's `files` are relative to it.
cd "$root/client/python"
status=0
echo "lint_python: ruff check client/python tests bench fuzz"
"$bin/ruff" check --no-cache --config pyproject.toml . ../../tests ../../bench ../../fuzz ||
  status=1
echo "lint_python: mypy client/python (drrclient, examples, setup.py)"
MYPYPATH=$stubs "$bin/mypy" --config-file pyproject.toml --cache-dir "$stubs/.mypy_cache" || status=1
exit "$status"
