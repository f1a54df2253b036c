#!/usr/bin/env bash
# Compiles the CUDA kernels for sm_90 with ptxas' resource report and fails if
# any kernel uses a local-memory stack frame or spills registers, or if a
# source reports no kernel.
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
  if ! out=$("$nvcc" -std=c++17 -arch=sm_90 -O3 "${options[@]}" "${includes[@]}" -Xptxas -v \
      -c "$source" -o /dev/null 2>&1); then
    echo "nvcc failed on $source:"; echo "$out"; exit 1
  fi
  grep -q "bytes stack frame" <<<"$out" || { echo "no ptxas report for $source:"; echo "$out"; exit 1; }
  report+=$out$'\n'
done
# Each kernel's report line follows the line that names it.
if grep -B1 "bytes stack frame" <<<"$report" | grep -v -e "^--$" |
    grep -B1 -v -e "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" \
      -e "Function properties for"; then
  echo "a kernel uses local memory (above)"; exit 1
fi
grep "Used" <<<"$report" | sort | uniq -c
echo "$(grep -c "bytes stack frame" <<<"$report") kernel instantiations: no stack frames, no spills"
