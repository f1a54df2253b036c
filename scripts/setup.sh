#!/usr/bin/env bash
# Installs everything drrserve needs on Debian 12 and builds it. Safe to run
# again: it installs only what is missing and rebuilds only what changed.
#   apt:    the C++ toolchain and libraries (gRPC, Protobuf, Abseil, prometheus-cpp, GoogleTest,
#           CLI11, libpng, OpenSSL and its command for the TLS tests, ITK for volume files),
#           clang-format and clang-tidy, plastimatch, clang-16 with libFuzzer for the fuzzers,
#           HAProxy and nginx for the cluster tests
#   .tools: promtool, extracted from Debian's prometheus package
#   .venv:  Python packages from PyPI (requirements-dev.txt: grpcio, numpy, pytest, ruff, mypy, ...)
#   build/: the CMake build (Release), CUDA included when nvcc is found
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

apt_packages=(cmake ninja-build g++ pkg-config ca-certificates curl git clang-format clang-tidy
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev libabsl-dev
  libcivetweb-dev civetweb prometheus-cpp-dev libgtest-dev libgmock-dev
  zlib1g-dev libpng-dev libssl-dev openssl libcli11-dev libinsighttoolkit5-dev libhwy-dev python3-venv plastimatch
  clang-16 libfuzzer-16-dev libclang-rt-16-dev haproxy nginx)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# promtool only (the prometheus package is 330 MB, promtool alone is one binary).
if [ ! -x .tools/bin/promtool ]; then
  echo "setup: fetching promtool"
  tmp=$(mktemp -d) && chmod 755 "$tmp"  # readable by apt's _apt user
  # (apt's package lists may be absent when every apt package was already there)
  (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 ||
                  { as_root apt-get update -qq && apt-get download prometheus >/dev/null; }; } &&
   dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool)
  mkdir -p .tools/bin && mv "$tmp/usr/bin/promtool" .tools/bin/promtool && rm -rf "$tmp"
fi

# Python venv from PyPI; rebuilt when requirements-dev.txt changes.
python=python3
"$python" -c 'import venv, ensurepip' 2>/dev/null || python=/usr/bin/python3
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.requirements 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv with $python"
  rm -rf .venv
  "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  echo "$want" > .venv/.requirements
fi
# Make the generated stubs and the client package importable from the venv.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n%s\n' "$root/build/python" "$root/client/python" > "$site/drrserve.pth"
# drrclient's generated protobuf and gRPC code (drrclient._proto, not in git).
.venv/bin/python client/python/gen_stubs.py

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDRR_PYTHON="$root/.venv/bin/python" >/dev/null
cmake --build build -j"$(nproc)"
