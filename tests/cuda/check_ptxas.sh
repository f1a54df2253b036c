#!/usr/bin/env bash
# Compiles the CUDA kernels for sm_90 with ptxas' resource report and fails if
# any kernel uses a local-memory stack frame or spills registers.
#   check_ptxas.sh NVCC "OPTIONS" "SOURCES" INCLUDE_DIR...
# OPTIONS: the kernels' own nvcc options (DRR_CUDA_KERNEL_OPTIONS), so that
# the check compiles what the build does; SOURCES: the kernel files. Both are
# CMake lists (';'-separated).
set -euo pipefail
nvcc=$1
IFS=';' read -r -a options <<<"$2"
IFS=';' read -r -a sources <<<"$3"
shift 3
includes=()
for dir in "$@"; do includes+=("-I$dir"); done
report=""
for source in "${sources[@]}"; do
  report+=$("$nvcc" -std=c++17 -arch=sm_90 -O3 "${options[@]}" "${includes[@]}" -Xptxas -v -c \
    "$source" -o /dev/null 2>&1)$'\n'
done
kernels=$(grep -c "bytes stack frame" <<<"$report" || true)
[ "$kernels" -gt 0 ] || { echo "no ptxas report:"; echo "$report"; exit 1; }
if grep "bytes stack frame" <<<"$report" | grep -v "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"; then
  echo "a kernel uses local memory (above)"; exit 1
fi
grep "Used" <<<"$report" | sort | uniq -c
echo "$kernels kernel instantiations: no stack frames, no spills"
