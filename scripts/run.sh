#!/usr/bin/env bash
# Builds drrserve (installing what it needs) and starts it with the bundled
# chest CT preloaded, or the built-in thorax phantom where ../shared/data is
# absent. gRPC on :50051, metrics on :9464; uploaded volumes and targets are
# kept in data/ under the repository (git-ignored) unless the arguments name
# another --data-dir; extra arguments go to drrserve.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
chest="$root/../shared/data/lidc-idri-0001.nii.gz"
if [ -f "$chest" ]; then preload=(--preload "$chest"); else preload=(--preload-phantom); fi
data=(--data-dir "$root/data")
for arg in "$@"; do
  case "$arg" in --data-dir|--data-dir=*) data=() ;; esac
done
exec "$root/build/server/drrserve" "${preload[@]}" "${data[@]}" "$@"
