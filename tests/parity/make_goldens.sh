#!/usr/bin/env bash
# Regenerates the nanodrr parity goldens: installs nanodrr 0.1.6 (and torch)
# and DiffDRR 0.6.1 from PyPI into .venv-parity, then writes
# tests/parity/goldens.npz and tests/parity/gradient_goldens.npz from the
# cases in this folder; then the same under nanodrr 0.1.7 (installed beside
# it) into the *_nanodrr_0_1_7 files, from the cases of the same names.
#   tests/parity/make_goldens.sh [DATA_DIR]   (default ../shared/data)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
data=${1:-$root/../shared/data}
if [ ! -x "$root/.venv-parity/bin/python" ]; then
  python3 -m venv "$root/.venv-parity"
fi
# grpcio, protobuf and pytest: for tests/python/test_nanodrr_dropin.py in this venv.
"$root/.venv-parity/bin/pip" install -q nanodrr==0.1.6 nibabel "grpcio>=1.76.0" \
  "protobuf>=6.31.1,<7" pytest
# DiffDRR 0.6.1, for tests/python/test_diffdrr_dropin.py: --no-deps, since it declares
# pyvista[all], timm, torchvision and kornia, which the modules the test uses (diffdrr.drr,
# .pose, .data, .detector, .renderers) never import; these are what they do import
# beyond torch, numpy and nibabel.
"$root/.venv-parity/bin/pip" install -q fastcore torchio einops scipy pandas
"$root/.venv-parity/bin/pip" install -q --no-deps diffdrr==0.6.1
"$root/.venv-parity/bin/python" "$root/tests/parity/make_goldens.py" "$data"
"$root/.venv-parity/bin/python" "$root/tests/parity/make_gradient_goldens.py" "$data"
# nanodrr 0.1.7 (clipped rays, soft labels) beside it, on the same torch.
v017=$root/.venv-parity/nanodrr-0.1.7
"$root/.venv-parity/bin/pip" install -q --no-deps --upgrade --target "$v017" nanodrr==0.1.7
PYTHONPATH=$v017 "$root/.venv-parity/bin/python" "$root/tests/parity/make_goldens.py" "$data" \
  cases_nanodrr_0_1_7.json goldens_nanodrr_0_1_7.npz
PYTHONPATH=$v017 "$root/.venv-parity/bin/python" "$root/tests/parity/make_gradient_goldens.py" \
  "$data" gradient_cases_nanodrr_0_1_7.json gradient_goldens_nanodrr_0_1_7.npz
