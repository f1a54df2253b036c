#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang-16, AddressSanitizer and
# UndefinedBehaviorSanitizer in build-fuzz/, and runs each for
# DRR_FUZZ_SECONDS (default 30) from its seed corpus (fuzz/corpus/<target>/).
# What a run discovers goes to a temporary corpus, removed afterwards: the
# committed seeds change only by hand. A crash fails the run and leaves its
# input in build-fuzz/crashes/<target>/ (replay it with
# build/fuzz/<target>_replay FILE; once fixed, commit it to
# fuzz/regressions/<target>/, which every build's tests replay).
#   scripts/fuzz.sh                  every target
#   scripts/fuzz.sh npy_fuzz ...     these targets
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${DRR_FUZZ_SECONDS:-30}
build="$root/build-fuzz"
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=(archive_fuzz loss_fuzz npy_fuzz render_request_fuzz upload_fuzz)
fi

CC=clang-16 CXX=clang++-16 cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDRR_FUZZ=ON -DDRR_SANITIZE=address,undefined \
  -DDRR_WITH_CUDA=OFF >/dev/null
cmake --build "$build" --target "${targets[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
  mkdir -p "$work/$target/corpus" "$work/$target/tmp" "$build/crashes/$target"
  log="$build/crashes/$target.log"
  # stderr closed for the target (its expected complaints about corrupt
  # files); libFuzzer and the sanitizers report on a copy of it.
  if TMPDIR="$work/$target/tmp" "$build/fuzz/$target" -max_total_time="$seconds" \
       -timeout=10 -rss_limit_mb=2048 -close_fd_mask=2 -print_final_stats=1 \
       -artifact_prefix="$build/crashes/$target/" \
       "$work/$target/corpus" "$root/fuzz/corpus/$target" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz: $target: $runs executions in ${seconds} s, no crash"
  else
    echo "fuzz: $target FAILED (log: $log)"
    tail -n 40 "$log"
    failed+=("$target")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: crashes in ${failed[*]}"; exit 1; }
