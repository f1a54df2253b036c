#!/usr/bin/env bash
# Checks what can be checked of the Dockerfile's images without Docker: the runtime stage's
# packages (deploy/runtime-packages.txt) exist on Debian 12 and, with their dependencies and
# Debian's required packages, provide every shared library that the installed drrserve and drrctl
# load; and the tree `cmake --install --component runtime` makes (what the image copies) runs:
# drrserve starts with the phantom, drrctl lists it.
#   check_image.sh BUILD_DIR
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "$1" && pwd)
work=$(mktemp -d "$build/test-tmp/image-XXXXXX")
server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT

mapfile -t packages < <(grep -v '^#' "$root/deploy/runtime-packages.txt" | grep .)
for p in "${packages[@]}"; do
  apt-cache show "$p" >/dev/null 2>&1 || { echo "check_image: no package $p in Debian"; exit 1; }
done
# The runtime stage's packages with everything they depend on.
provided=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${packages[@]}" | grep -v '^ ' | sed 's/:.*//' | sort -u)

prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" --component runtime >/dev/null
for binary in "$prefix/bin/drrserve" "$prefix/bin/drrctl"; do
  for lib in $(ldd "$binary" | awk '/=>/ {print $3}'); do
    real=$(readlink -f "$lib")
    owner=$( (dpkg -S "$real" 2>/dev/null || dpkg -S "/usr$real" 2>/dev/null ||
              dpkg -S "${real#/usr}" 2>/dev/null) | head -1 | cut -d: -f1)
    [ -n "$owner" ] || { echo "check_image: $real (of $binary) belongs to no package"; exit 1; }
    priority=$(dpkg-query -W -f='${Priority}' "$owner")
    if ! grep -qx "$owner" <<<"$provided" && [ "$priority" != required ] &&
       [ "$priority" != important ]; then
      echo "check_image: $(basename "$binary") loads $real of $owner, which the image lacks"
      exit 1
    fi
  done
done
echo "check_image: ${#packages[@]} runtime packages cover the libraries of drrserve and drrctl"

# The installed tree runs: a server with the phantom, and drrctl lists it.
"$prefix/bin/drrserve" --listen 127.0.0.1:0 --metrics-listen "" --device cpu \
  --preload-phantom >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$work/server.log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/server.log"; exit 1; }
listed=$("$prefix/bin/drrctl" --server "127.0.0.1:$port" list)
echo "check_image: the installed drrctl lists: $listed"
[ "$(echo "$listed" | grep -c .)" -ge 1 ]
kill "$server_pid"
wait "$server_pid" || true
server_pid=
