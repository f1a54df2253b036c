#!/usr/bin/env bash
# Installs a build into a temporary prefix under the build tree and checks
# what a user gets: drrctl links no CUDA (no `cuda` symbol in nm -C), a
# program outside the tree builds against the installed C++ client package
# and runs, and the installed Python package imports.
#   check_install.sh BUILD_DIR PYTHON
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$1 python=${2:-}
work=$(mktemp -d "$build/test-tmp/install-XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
ls "$prefix/bin/drrserve" "$prefix/bin/drrctl" >/dev/null

cuda_symbols=$(nm -C "$prefix/bin/drrctl" | grep -ci cuda || true)
echo "check_install: cuda symbols in the installed drrctl: $cuda_symbols"
[ "$cuda_symbols" -eq 0 ] || { nm -C "$prefix/bin/drrctl" | grep -i cuda | head; exit 1; }

cmake -S "$here/consumer" -B "$work/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
output=$("$work/consumer/consumer")
echo "check_install: consumer printed: $(echo "$output" | tr '\n' ' ')"
[ "$(echo "$output" | sed -n 1p | wc -c)" -eq 65 ]      # a 64-digit content id
[ "$(echo "$output" | sed -n 2p)" = "UNAVAILABLE" ]       # no server there

if [ -n "$python" ]; then
  site=$(ls -d "$prefix"/lib/python3/site-packages)
  "$python" -I -c "
import sys; sys.path.insert(0, '$site')
import drrclient, drr.v1.renderer_pb2
assert drrclient.__file__.startswith('$site'), drrclient.__file__
print('check_install: python package from', drrclient.__file__)"
fi
