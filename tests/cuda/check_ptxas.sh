#!/usr/bin/env bash
# Compiles the CUDA kernels for sm_90 with ptxas' resource report and fails if
# any kernel uses a local-memory stack frame or spills registers.
#   check_ptxas.sh NVCC "OPTIONS" SOURCE INCLUDE_DIR...
# OPTIONS: the kernels' own nvcc options (DRR_CUDA_KERNEL_OPTIONS, a CMake
# list: ';'-separated), so that the check compiles what the build does.
set -euo pipefail
nvcc=$1 source=$3
IFS=';' read -r -a options <<<"$2"
shift 3
includes=()
for dir in "$@"; do includes+=("-I$dir"); done
report=$("$nvcc" -std=c++17 -arch=sm_90 -O3 "${options[@]}" "${includes[@]}" -Xptxas -v -c \
  "$source" -o /dev/null 2>&1)
kernels=$(grep -c "bytes stack frame" <<<"$report" || true)
[ "$kernels" -gt 0 ] || { echo "no ptxas report:"; echo "$report"; exit 1; }
if grep "bytes stack frame" <<<"$report" | grep -v "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"; then
  echo "a kernel uses local memory (above)"; exit 1
fi
grep "Used" <<<"$report" | sort | uniq -c
echo "$kernels kernel instantiations: no stack frames, no spills"
