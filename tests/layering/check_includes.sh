#!/usr/bin/env bash
# Fails when a header or source below the engine (defaults/, numeric/,
# geometry/, kernels/) includes Abseil, gRPC, protobuf or the drr.v1 stubs,
# or when any C++ file of the repository includes a path with "..".
#   check_includes.sh REPOSITORY_ROOT
set -euo pipefail
cd "$1"
status=0
if git ls-files 'defaults/*' 'numeric/*' 'geometry/*' 'kernels/*' |
    grep -E '\.(h|cc|cu)$' |
    xargs grep -nE '#include [<"](absl/|grpc|google/protobuf|drr/v1/)'; then
  echo "check_includes: the foundation and the kernels build without Abseil, gRPC and protobuf"
  status=1
fi
if git ls-files '*.h' '*.cc' '*.cu' | xargs grep -nE '#include "[^"]*\.\./'; then
  echo "check_includes: include by the library's root, not by a relative path"
  status=1
fi
[ "$status" = 0 ] && echo "check_includes: ok"
exit "$status"
