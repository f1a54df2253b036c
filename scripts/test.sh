#!/usr/bin/env bash
# Builds drrserve (installing what it needs) and runs every test: C++ unit and
# server tests, the Python client and end-to-end tests, the promtool scrape;
# then the C++ suite and the Python end-to-end tests again against an
# AddressSanitizer + UndefinedBehaviorSanitizer build (build-sanitize/, CPU
# executor; float-to-int overflow included; the first report fails the test);
# then each libFuzzer target for DRR_FUZZ_SECONDS (default 30; scripts/fuzz.sh).
# DRR_SKIP_SANITIZERS=1 skips the second pass (it adds ~13 minutes on 2 cores),
# DRR_SKIP_FUZZ=1 the fuzzing (~7 minutes).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
ctest --test-dir "$root/build" --output-on-failure --timeout 900 "$@"

# The C++ suite and the Python end-to-end tests against sanitized binaries.
sanitizer_pass() {
  cmake -S "$root" -B "$root/build-sanitize" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDRR_SANITIZE=address,undefined -DDRR_WITH_CUDA=OFF >/dev/null
  cmake --build "$root/build-sanitize"
  # The lint tests read sources, not binaries; install_check builds a consumer
  # without the sanitizer runtime, which cannot link against these libraries;
  # image_check checks the libraries an image needs, which are not those.
  # Third-party leaks are suppressed by name (scripts/lsan-suppressions.txt).
  LSAN_OPTIONS="suppressions=$root/scripts/lsan-suppressions.txt${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
    ctest --test-dir "$root/build-sanitize" --output-on-failure --timeout 1800 \
    -LE lint -E "install_check|image_check" "$@"
}

if [ "${DRR_SKIP_SANITIZERS:-0}" = 1 ]; then
  echo "test: sanitizer pass skipped (DRR_SKIP_SANITIZERS=1)"
else
  sanitizer_pass "$@"
fi
if [ "${DRR_SKIP_FUZZ:-0}" = 1 ]; then
  echo "test: fuzzing skipped (DRR_SKIP_FUZZ=1)"
else
  "$root/scripts/fuzz.sh"
fi
