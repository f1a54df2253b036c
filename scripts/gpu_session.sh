#!/usr/bin/env bash
# The one prepared run on a lent GPU machine (docs/gpu.md), in two halves:
#
#   scripts/gpu_session.sh prepare   # here: fills .gpu/ (ignored by git) with what
#                                    # the device machine lacks, about 45 MB
#   scripts/gpu_session.sh run       # there, from the repository root, with .gpu
#                                    # carried: every step's log goes to $OUT
#
# `run` builds the kernels alone for sm_90 (H100, H200), runs the CUDA
# tests and compute-sanitizer first (the CUDA executor's first real test), then
# render_bench on the reference case in every storage type and both samplings,
# then bench/compare_gpu.py: nanodrr's Triton kernel beside the CUDA executor in
# one run, where nanodrr imports there. Each step has its own time limit, 9
# minutes 20 seconds in all (the device tool allows 10 per command); a step
# that fails or runs out of time is reported and the next one still runs. The
# last lines printed are one summary line per step.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
carry=$root/.gpu

prepare() {
  local shared=$root/../shared/data
  rm -rf "$carry" && mkdir -p "$carry/py"
  cp -r /usr/src/googletest "$carry/googletest"
  cp "$shared/lidc-idri-0001.nii.gz" "$carry/"
  # Pure-Python packages: nibabel for bench/export_volume.py, and nanodrr 0.1.6
  # with the dependencies of its own that are pure Python. torch, Triton, numpy,
  # torchio, SimpleITK and scipy must be on the device machine already.
  "$root/.venv/bin/python" -m pip install --quiet --no-deps --target "$carry/py" \
    nibabel nanodrr==0.1.6 jaxtyping wadler-lindig roma platformdirs
  rm -rf "$carry/py/nibabel/tests" "$carry/py/nibabel/"*/tests "$carry/py/bin"
  du -sh "$carry"
}

# step NAME SECONDS COMMAND...: runs COMMAND under a time limit, its output to
# $out/NAME.log, and records one summary line.
step() {
  local name=$1 seconds=$2 start=$SECONDS
  shift 2
  echo "== $name (limit ${seconds}s)"
  timeout "$seconds" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  tail -n 15 "$out/$name.log"
  summary+=("$name: exit $rc after $((SECONDS - start))s")
}

run() {
  out=${OUT:-$root/gpu-out}
  mkdir -p "$out"
  summary=()
  local build=$root/build-gpu data=$root/.gpu-data
  export PYTHONPATH=$carry/py${PYTHONPATH:+:$PYTHONPATH}
  nvidia-smi > "$out/device.txt" 2>&1
  (cd "$root" && git rev-parse HEAD 2> /dev/null || echo "no git here") > "$out/commit.txt"
  step export 40 python3 "$root/bench/export_volume.py" "$carry/lidc-idri-0001.nii.gz" "$data"
  local generator=()
  command -v ninja > /dev/null && generator=(-G Ninja)
  step configure 40 cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DDRR_KERNELS_ONLY=ON -DDRR_GTEST_SOURCE_DIR="$carry/googletest" \
    -DDRR_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DDRR_WERROR=OFF
  step build 180 cmake --build "$build" -j "$(nproc)" --target kernels_test render_bench
  step tests 60 "$build/tests/kernels/kernels_test"
  step sanitizer 100 compute-sanitizer --error-exitcode 1 "$build/tests/kernels/kernels_test" \
    --gtest_filter='Cuda*:*/cuda'
  local bench=("$build/bench/render_bench" "$data/mu.f32" "$data/mu.txt" --repeats 20
    --executors cuda --batches "1,8,64,256")
  for storage in float32 float16 bfloat16; do
    step "bench-$storage" 20 "${bench[@]}" --storage "$storage"
  done
  step bench-clipped 20 "${bench[@]}" --sampling clipped
  step compare-nanodrr 60 python3 "$root/bench/compare_gpu.py" "$data" \
    "$carry/lidc-idri-0001.nii.gz" --bench "$build/bench/render_bench"
  printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *)
    echo "usage: scripts/gpu_session.sh prepare|run" >&2
    exit 2
    ;;
esac
