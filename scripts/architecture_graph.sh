#!/usr/bin/env bash
# Draws the target graph of the build and checks the layering on it
# (docs/architecture.md). Configures the project into a temporary directory
# with `cmake --graphviz` and fails when a rule is broken ("depends on" is
# transitive, through external libraries too):
#   drr_numeric, drr_geometry, drr_defaults (the foundation): on no other project library
#   drr_kernels:         on the foundation only (and no Abseil, gRPC, protobuf)
#   drr_engine:          on nothing of the frontend (drr_frontend, drr_wire, drr_proto, gRPC, protobuf)
#   drr_client, drrctl:  on no drr_kernels, drr_engine, drr_frontend, nothing CUDA
#   and no target depends on itself (no cycles).
# Then renders docs/images/architecture.png with graphviz `dot`: the project's
# libraries and executables and the external libraries that show the layers.
# Needs the apt packages of scripts/setup.sh; installs graphviz if `dot` is missing.
#   scripts/architecture_graph.sh                   # check, and redraw the picture
#   scripts/architecture_graph.sh --check FILE.dot  # only check a `cmake --graphviz` file
#   scripts/architecture_graph.sh --check-build     # only configure and check (no graphviz; ctest)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

check() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"subgraph clusterLegend \{.*?\n\}", "", text, flags=re.S)
name = dict(re.findall(r'"(node\d+)" \[ label = "([^"]+)"', text))
deps = {n: [] for n in name.values()}
for a, b in re.findall(r'"(node\d+)" -> "(node\d+)"', text):
    deps.setdefault(name.get(a, a), []).append(name.get(b, b))

def paths(t, stop):  # a path from t to each target it depends on, not past `stop`
    found, todo = {}, [[t]]
    while todo:
        path = todo.pop(0)
        for d in deps.get(path[-1], ()):
            if d not in found:
                found[d] = path + [d]
                if d != t and not re.fullmatch(stop, d):
                    todo.append(found[d])
    return found

foundation = r"drr_(numeric|geometry|defaults)"  # drr_defaults: while it exists
rules = [  # (targets, what they must not depend on, why)
    (foundation, rf"(?!{foundation}$)drr_\w+",
     "the foundation depends on no other project library"),
    ("drr_kernels", rf"(?!{foundation}$)drr_\w+|absl::.*|gRPC::.*|protobuf::.*",
     "the kernels depend on the foundation only"),
    ("drr_engine", r"drr_frontend|drr_wire|drr_proto|gRPC::.*|protobuf::.*",
     "the engine knows nothing of the frontend"),
    ("drr_client|drrctl", r"drr_kernels|drr_engine|drr_frontend|CUDA::.*",
     "the clients use no kernels, engine, frontend or CUDA"),
]
errors = [f"{t} is not in the graph" for t in
          ("drr_numeric", "drr_geometry", "drr_kernels", "drr_engine", "drr_client", "drrctl")
          if t not in deps]
for targets, forbidden, why in rules:
    for t in sorted(t for t in deps if re.fullmatch(targets, t)):
        errors += [f"{' -> '.join(p)}: {why}" for d, p in paths(t, forbidden).items()
                   if d != t and re.fullmatch(forbidden, d)]
errors += [f"{' -> '.join(paths(t, '')[t])}: a cycle" for t in sorted(deps) if t in paths(t, "")]
for e in errors:
    print(f"architecture_graph: layering broken: {e}", file=sys.stderr)
if errors:
    sys.exit(1)
print(f"architecture_graph: layering ok ({len(deps)} targets and libraries)")
PY
}

if [ "${1:-}" = --check ]; then
  check "$2"
  exit
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# graph OUT.dot [IGNORE...]: configure into $tmp and write the target graph,
# less the tests, the layering test cases (object libraries) and the IGNORE
# regexes. CMake reads CMakeGraphVizOptions.cmake from the build directory.
graph() {
  local out=$1 ignore
  shift
  ignore=$(printf ' "%s"' '_test$' '^drr_test_support$' '^GTest::' "$@")
  cat > "$tmp/CMakeGraphVizOptions.cmake" <<CMAKE
set(GRAPHVIZ_GRAPH_NAME "drrserve targets")
set(GRAPHVIZ_GRAPH_HEADER "ranksep = 0.6; nodesep = 0.3;
node [ fontname = \"Helvetica\", fontsize = 14 ]; edge [ arrowsize = 0.7 ];")
set(GRAPHVIZ_GENERATE_PER_TARGET FALSE)
set(GRAPHVIZ_GENERATE_DEPENDERS FALSE)
set(GRAPHVIZ_CUSTOM_TARGETS FALSE)
set(GRAPHVIZ_OBJECT_LIBS FALSE)
set(GRAPHVIZ_IGNORE_TARGETS$ignore)
CMAKE
  cmake -S "$root" -B "$tmp" -G Ninja --graphviz="$out" >"$tmp/configure.log" 2>&1 ||
    { cat "$tmp/configure.log" >&2; exit 1; }
}

# The check sees every external library; the picture only those that show the
# layers (Abseil, used by every layer above the kernels, is left out; ITK is
# drawn as its ImageIO base, the rest of it is ITK's own layering).
graph "$tmp/full/drrserve.dot"
check "$tmp/full/drrserve.dot"
[ "${1:-}" = --check-build ] && exit

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v dot >/dev/null; then
  echo "architecture_graph: installing graphviz"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz
fi

graph "$tmp/picture/drrserve.dot" '^absl::' '^Threads::' '^OpenSSL::' '^PNG::' '^ZLIB::' \
  '^c-ares::' '^re2::' '^gRPC::(grpc|gpr|upb|address_sorting|grpc_cpp_plugin|grpc[+][+]_reflection)$' \
  '^prometheus-cpp::core$' '^protobuf::protoc$' '^CUDA::cudart_static_deps$' '^-' '^/' '^(dl|m|rt)$' \
  '^itk' '^ITK(Common|VNLInstantiation|MetaIO|IONRRD|IOGDCM|IOMeta|IONIFTI)$' '^ITKInternalEigen3::'

# No legend (docs/architecture.md explains the shapes); the layers filled.
paint=(-e '/^subgraph clusterLegend \{/,/^\}/d')
fill() { for t in "${@:2}"; do paint+=(-e "s/(label = \"$t\", shape = [a-z]+)/\\1, style = filled, fillcolor = \"$1\"/"); done; }
fill "#cfe2f3" drr_numeric drr_geometry drr_defaults                        # foundation
fill "#d9ead3" drr_kernels render_bench 'CUDA::[a-z_]+'                     # kernels
fill "#fff2cc" drr_engine                                                   # engine
fill "#fce5cd" drr_frontend drrserve                                        # frontend
fill "#ead1dc" drr_client drrctl                                            # clients
fill "#eeeeee" 'gRPC::[a-z+_]+' 'protobuf::[a-z]+' 'prometheus-cpp::[a-z]+' \
  ITKIOImageBase 'hwy::hwy'                                                 # external
sed -E "${paint[@]}" "$tmp/picture/drrserve.dot" |
  dot -Tpng -Gdpi=96 -o "$root/docs/images/architecture.png"
echo "architecture_graph: wrote docs/images/architecture.png"
