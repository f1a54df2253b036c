#!/usr/bin/env bash
# clang-format (.clang-format: Google style) over every C++ and CUDA file of
# the repository, without changing them; exits non-zero when any file would
# change. `clang-format -i FILE` fixes one.
#   scripts/check_format.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
mapfile -t files < <(git ls-files '*.h' '*.cc' '*.cu' '*.cuh')
echo "check_format: ${#files[@]} files"
clang-format --dry-run -Werror "${files[@]}"
