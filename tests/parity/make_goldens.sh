#!/usr/bin/env bash
# Regenerates the nanodrr parity goldens: installs nanodrr 0.1.6 (and torch)
# from PyPI into .venv-parity, then writes tests/parity/goldens.npz and
# tests/parity/gradient_goldens.npz from the cases in this folder.
#   tests/parity/make_goldens.sh [DATA_DIR]   (default ../shared/data)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
data=${1:-$root/../shared/data}
if [ ! -x "$root/.venv-parity/bin/python" ]; then
  python3 -m venv "$root/.venv-parity"
fi
"$root/.venv-parity/bin/pip" install -q nanodrr==0.1.6 nibabel
"$root/.venv-parity/bin/python" "$root/tests/parity/make_goldens.py" "$data"
"$root/.venv-parity/bin/python" "$root/tests/parity/make_gradient_goldens.py" "$data"
