#!/usr/bin/env bash
# The one prepared run on a lent GPU machine (docs/gpu.md), in two halves:
#
#   scripts/gpu_session.sh prepare [BASE]  # here: fills .gpu/ (ignored by git,
#                                    # about 40 MB) with what the device machine
#                                    # lacks, and the tree of commit BASE
#   scripts/gpu_session.sh run       # there, from the repository root, with .gpu
#                                    # carried: three files come back in $OUT
#   scripts/gpu_session.sh prepare-nanodrr   # here: .gpu-nanodrr/, nanodrr's wheels
#   scripts/gpu_session.sh run-nanodrr       # there, right after `run`, with
#                                            # .gpu-nanodrr carried
#   scripts/gpu_session.sh run-scaling       # there, after `run`, .gpu carried:
#                                            # the scaling curves on the GPU
#   scripts/gpu_session.sh prepare-variants PATCH...  # here, after prepare
#   scripts/gpu_session.sh run-variants      # there, .gpu carried: the head
#                                            # and each patched copy, timed
#
# `run` builds the kernels alone for sm_90 (H100, H200), runs the CUDA tests and
# compute-sanitizer first (the CUDA executor's first real test), then
# render_bench on the reference case in every storage type and both samplings
# and the per-pixel Jacobians,
# then bench/compare_gpu.py: the CUDA executor's trilinear, and nanodrr's Triton
# kernel beside it where nanodrr imports, and Nsight Compute's profile of the
# forward kernel; with a BASE, that commit's render_bench and this one's in
# alternating rounds. nanodrr's wheels and the chest do not
# fit in one call's carry (docs/gpu.md), so `run-nanodrr` installs the wheels
# and runs the comparison again, on the volume and build `run` left there. Each
# step has its own time limit, 9 minutes 40 seconds in all for `run` with a BASE (the
# device tool allows 10 per command); a step that fails or runs out of time is
# reported and the next one still runs.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
carry=$root/.gpu

prepare() (
  set -e
  local base=${1:-} shared=$root/../shared/data
  rm -rf "$carry" && mkdir -p "$carry/py"
  cp -r /usr/src/googletest "$carry/googletest"
  cp "$shared/lidc-idri-0001.nii.gz" "$carry/"
  # nibabel (pure Python) for bench/export_volume.py; the device has numpy.
  "$root/.venv/bin/python" -m pip install --quiet --no-deps --target "$carry/py" nibabel
  rm -rf "$carry/py/nibabel/tests" "$carry/py/nibabel/"*/tests "$carry/py/bin"
  # The tree that travels has no .git: the commit, and how many files differ from it.
  echo "commit $(git -C "$root" rev-parse HEAD)," \
    "$(git -C "$root" status --porcelain | wc -l) files changed or new" > "$carry/commit.txt"
  if [[ -n "$base" ]]; then
    mkdir -p "$carry/base"
    git -C "$root" archive "$base" | tar -x -C "$carry/base"
    echo "base $(git -C "$root" rev-parse "$base")" >> "$carry/commit.txt"
  fi
  du -sh "$carry"
)

# nanodrr 0.1.6 and what it needs that the device's Python 3.12 lacks (the
# device tool's KINDS.md lists what it has), as wheels for that Python: about
# 54 MB, SimpleITK's 53 of them.
prepare_nanodrr() (
  set -e
  rm -rf "$root/.gpu-nanodrr"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$root/.gpu-nanodrr" simpleitk==2.5.7 torchio==1.2.1 nanodrr==0.1.6 roma platformdirs \
    nibabel deprecated
  du -sh "$root/.gpu-nanodrr"
)

# step NAME SECONDS COMMAND...: runs COMMAND under a time limit, its output to
# $logs/NAME.log and then into $out/steps.log, and appends one summary line
# (exit status, seconds, GoogleTest's counts of passed, failed and skipped
# tests) to $out/summary.txt at once, so a killed run keeps the lines of
# the steps before.
step() {
  local name=$1 seconds=$2 start=$SECONDS
  shift 2
  echo "== $name (limit ${seconds}s)"
  timeout -k 10 "$seconds" "$@" > "$logs/$name.log" 2>&1
  local rc=$?
  tail -n 15 "$logs/$name.log"
  { echo "== $name"; cat "$logs/$name.log"; } >> "$out/steps.log"
  local verdict
  verdict=$(grep -E '^\[  (PASSED|FAILED|SKIPPED) +\] [0-9]+ tests?' "$logs/$name.log" | tr '\n' ' ')
  echo "$name: exit $rc after $((SECONDS - start))s ${verdict}" | tee -a "$out/summary.txt"
}

# Where step() writes: $out (the device tool's $OUT) and $logs.
open_logs() {
  out=${OUT:-$root/gpu-out}
  logs=$root/.gpu-logs
  mkdir -p "$out" "$logs"
}

# What every run on the device starts with: the environment, $out/env.txt
# (the device, the commit), render_bench's inputs in $data, and the CMake
# options of a kernels-only build for sm_90 in $options (nvcc named, so that
# CUDA cannot drop out silently).
start_device_run() {
  open_logs
  data=$root/.gpu-data
  export PATH=$PATH:/usr/local/cuda/bin PYTHONUNBUFFERED=1
  export PYTHONPATH=$carry/py${PYTHONPATH:+:$PYTHONPATH}
  { nvidia-smi; cat "$carry/commit.txt"; } > "$out/env.txt" 2>&1
  step export 30 python3 "$root/bench/export_volume.py" "$carry/lidc-idri-0001.nii.gz" "$data"
  options=(-DCMAKE_BUILD_TYPE=Release -DDRR_KERNELS_ONLY=ON -DDRR_WITH_CUDA=ON
    -DCMAKE_CUDA_ARCHITECTURES=90 -DDRR_WERROR=OFF -DDRR_GTEST_SOURCE_DIR="$carry/googletest"
    -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo nvcc-not-found)")
  if command -v ninja > /dev/null; then options+=(-G Ninja); fi
}

# Everything comes back as three files (the device tool returns 8 at most):
# $out/env.txt, $out/steps.log, $out/summary.txt.
run() {
  start_device_run
  local build=$root/build-gpu
  step configure 30 cmake -S "$root" -B "$build" "${options[@]}"
  step build 75 cmake --build "$build" -j "$(nproc)" --target kernels_test render_bench
  step tests 40 "$build/tests/kernels/kernels_test"
  step sanitizer 50 compute-sanitizer --error-exitcode 1 "$build/tests/kernels/kernels_test" \
    --gtest_filter='Cuda*:*/cuda'
  local bench=("$build/bench/render_bench" "$data/mu.f32" "$data/mu.txt" --repeats 20
    --executors cuda --batches "1,8,64,256")
  # The exact sampler's trilinear render and gradient beside the same read
  # from quads, and the texture units' render where the storage type has one
  # (not bfloat16).
  local every=trilinear-gradient,trilinear,siddon,siddon-gradient
  every+=,trilinear-quads,trilinear-quads-gradient
  for storage in float32 float16 bfloat16; do
    step "bench-$storage" 15 "${bench[@]}" --storage "$storage" --renderers \
      "$every$([[ $storage == bfloat16 ]] || echo ,trilinear-texture)"
  done
  step bench-clipped 15 "${bench[@]}" --sampling clipped
  step bench-jacobian 20 "${bench[@]}" --renderers \
    trilinear-jacobian,trilinear-quads-jacobian,siddon-jacobian
  step compare-nanodrr 30 python3 "$root/bench/compare_gpu.py" "$data" \
    --bench "$build/bench/render_bench"
  # Nsight Compute on the forward kernel, one pose and 64 (its first launch),
  # read from the voxels and from quads: how near the roofline it runs
  # (throughput against peak, occupancy, registers).
  local trilinear
  for trilinear in trilinear trilinear-quads; do
    step "ncu-$trilinear" 30 ncu --clock-control none -k regex:RenderKernel -s 1 -c 2 \
      --section SpeedOfLight --section Occupancy --section LaunchStats \
      --section MemoryWorkloadAnalysis "${bench[@]:0:3}" --repeats 1 --executors cuda \
      --renderers "$trilinear" --batches 1,64
  done
  if [[ -d "$carry/base" ]]; then
    step configure-base 20 cmake -S "$carry/base" -B "$build-base" "${options[@]}"
    step build-base 50 cmake --build "$build-base" -j "$(nproc)" --target render_bench
    local versus=(alternate 5 "base=$build-base/bench/render_bench"
      "head=$build/bench/render_bench" -- "$data/mu.f32" "$data/mu.txt" --executors cuda)
    step versus-base 80 "$root/scripts/gpu_session.sh" "${versus[@]}" --repeats 20 \
      --batches "1,8,64,256" --renderers trilinear,siddon,trilinear-gradient,siddon-gradient
    # The Jacobians' results are 48 bytes a pixel: fewer repeats and poses.
    step versus-base-jacobian 35 "$root/scripts/gpu_session.sh" "${versus[@]}" --repeats 5 \
      --batches "1,8,64" --renderers trilinear-jacobian,siddon-jacobian
  fi
}

# Variants of the kernels (prepare-variants): the head and a copy of it per
# patch, built side by side, each one's CUDA tests, then four alternating
# rounds of their render_bench. Comes back as env.txt, steps.log and
# summary.txt. Its limits add up to 370 s and 40 s per patch: five patches
# at most in one call.
run_variants() {
  start_device_run
  local names=(head) patch name builds=()
  for patch in "$carry"/variants/*.patch; do
    [[ -f $patch ]] && names+=("$(basename "$patch" .patch)")
  done
  step build-variants 150 "$root/scripts/gpu_session.sh" build-variants "${options[@]}" -- \
    "${names[@]}"
  for name in "${names[@]}"; do
    step "tests-$name" 40 "/tmp/variants/$name/build/tests/kernels/kernels_test" \
      --gtest_filter='Cuda*:*/cuda'
    builds+=("$name=/tmp/variants/$name/build/bench/render_bench")
  done
  step rounds 150 "$root/scripts/gpu_session.sh" alternate 4 "${builds[@]}" -- \
    "$data/mu.f32" "$data/mu.txt" --repeats 20 --executors cuda --batches "1,8,64,256" \
    --renderers trilinear,siddon,trilinear-gradient,siddon-gradient
}

# build-variants OPTIONS... -- NAMES...: in /tmp/variants/NAME, a copy of the
# tree (with .gpu/variants/NAME.patch applied, but for `head`) and its
# kernels_test and render_bench, all at once; fails if any build does.
build_variants() {
  local options=() name pid pids=() failed=0
  while [[ $1 != -- ]]; do options+=("$1"); shift; done
  shift
  local cores=$(($(nproc) / $# > 1 ? $(nproc) / $# : 1))
  for name in "$@"; do
    (
      set -e
      local dir=/tmp/variants/$name
      rm -rf "$dir" && mkdir -p "$dir/src"
      tar -C "$root" --exclude=./.gpu --exclude=./.gpu-data --exclude=./.gpu-logs \
        --exclude='./build*' -cf - . | tar -C "$dir/src" -xf -
      if [[ $name != head ]]; then patch -d "$dir/src" -p1 < "$carry/variants/$name.patch"; fi
      cmake -S "$dir/src" -B "$dir/build" "${options[@]}"
      cmake --build "$dir/build" -j "$cores" --target kernels_test render_bench
    ) > "/tmp/variants-$name.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
  done
  for name in "$@"; do echo "== $name"; tail -n 3 "/tmp/variants-$name.log"; done
  return "$failed"
}

# alternate ROUNDS NAME=BENCH... -- ARGS...: each render_bench in turn with
# ARGS, ROUNDS times over, each row prefixed with its round and NAME.
alternate() {
  local rounds=$1 builds=() build
  shift
  while [[ $1 != -- ]]; do builds+=("$1"); shift; done
  shift
  for ((round = 1; round <= rounds; round++)); do
    for build in "${builds[@]}"; do
      "${build#*=}" "$@" | sed -n "s/^cuda/$round\t${build%%=*}\tcuda/p"
    done
  done
}

# Copies the patches PATCH... into .gpu/variants/ (after prepare), one
# variant each, named by the patch's file name (letters, digits, - and _).
prepare_variants() (
  set -e
  rm -rf "$carry/variants" && mkdir -p "$carry/variants"
  cp "$@" "$carry/variants/"
  ls "$carry/variants"
)

# bench/scaling_curves.py on the CUDA executor with the build `run` left:
# $out/scaling-cuda.tsv comes back (and its PNG where matplotlib is there;
# else plot it here with --replot).
run_scaling() {
  open_logs
  if [[ ! -x $root/build-gpu/bench/render_bench ]]; then
    echo "run-scaling: no build-gpu/bench/render_bench here; call \`run\` first on this machine" \
      | tee -a "$out/summary.txt" >&2
    return 1
  fi
  export PATH=$PATH:/usr/local/cuda/bin PYTHONUNBUFFERED=1
  export PYTHONPATH=$carry/py${PYTHONPATH:+:$PYTHONPATH}
  step scaling 540 python3 "$root/bench/scaling_curves.py" \
    --chest "$carry/lidc-idri-0001.nii.gz" --executors cuda --out "$out" \
    --bench "$root/build-gpu/bench/render_bench"
}

# The comparison again, with nanodrr installed from the carried wheels.
run_nanodrr() {
  open_logs
  export PYTHONUNBUFFERED=1
  step install 60 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site "$root/.gpu-nanodrr/"*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  step compare-nanodrr 240 python3 "$root/bench/compare_gpu.py" "$root/.gpu-data" \
    --bench "$root/build-gpu/bench/render_bench"
}

case "${1:-}" in
  prepare) prepare "${2:-}" ;;
  run) run ;;
  prepare-nanodrr) prepare_nanodrr ;;
  run-nanodrr) run_nanodrr ;;
  run-scaling) run_scaling ;;
  prepare-variants) prepare_variants "${@:2}" ;;
  run-variants) run_variants ;;
  build-variants) build_variants "${@:2}" ;;
  alternate) alternate "${@:2}" ;;
  *)
    echo "usage: scripts/gpu_session.sh prepare [BASE]|run|prepare-nanodrr|run-nanodrr|run-scaling" \
      "|prepare-variants PATCH...|run-variants|build-variants OPTIONS... -- NAMES..." \
      "|alternate ROUNDS NAME=BENCH... -- ARGS..." >&2
    exit 2
    ;;
esac
