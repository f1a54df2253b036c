#!/usr/bin/env bash
# load_compare.sh: two drrserve binaries (e.g. a baseline commit and this
# one) under the same loads from bench/drr_load, interleaved, in one run.
#
#   bench/load_compare.sh [--repeat R] [--python PY] [--plot-python PY] \
#       DRR_LOAD OUT_DIR LABEL_A=DRRSERVE_A LABEL_B=DRRSERVE_B
#
#   e.g. bench/load_compare.sh --repeat 3 build/bench/drr_load /tmp/load \
#            ed92efc=/tmp/bench-bin/drrserve-ed92efc 01bb2ac=build/server/drrserve
#
# The configurations (64x64 images, 100 samples: drr_load's defaults):
#   closed-1, closed-16, closed-64   --clients N --duration 10 --warmup 2
#   latest-16, ordered-16            --streams 16 --stream-fps 60
#                                    --stream-mode latest|ordered --duration 20
# For each repeat and each configuration, server A and then server B are run,
# so that drift of the (shared) machine affects both alike. Every run starts a
# fresh server (--listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --device cpu
# --preload-phantom; drr_load renders the preloaded phantom), scrapes /metrics
# before and after the load, and stops it with SIGTERM.
#
# Writes, under OUT_DIR:
#   rREP/LABEL-CONFIG.json          drr_load --json of each run (label
#                                   "LABEL" for closed loops, "LABEL latest" /
#                                   "LABEL ordered" for streams)
#   rREP/LABEL-CONFIG.metrics.json  the /metrics deltas of the run: mean batch
#                                   size (drr_batch_poses_sum / _count, null
#                                   where the server has no such metric),
#                                   calls dropped by reason, requests by code
#   rREP/LABEL-CONFIG.{server,load}.log
#   median/LABEL-CONFIG.json        per-field medians over the repeats (same
#                                   schema as drr_load's JSON)
#   all.md, median.md, median.png   bench/load_report.py of the runs and of the
#                                   medians (the PNG needs matplotlib in
#                                   --plot-python, default --python)
# --python defaults to .venv/bin/python of the repository.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
repeat=3
python="$root/.venv/bin/python"
plot_python=""

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while [[ $# -gt 0 && "$1" == --* ]]; do
  case "$1" in
    --repeat) repeat="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --plot-python) plot_python="$2"; shift 2 ;;
    --help|-h) usage; exit 0 ;;
    *) echo "load_compare: unknown flag $1" >&2; usage >&2; exit 2 ;;
  esac
done
if [[ $# -ne 4 ]]; then usage >&2; exit 2; fi
load="$1"; out="$2"
labels=("${3%%=*}" "${4%%=*}")
servers=("${3#*=}" "${4#*=}")
plot_python="${plot_python:-$python}"
for f in "$load" "${servers[@]}"; do
  [[ -x "$f" ]] || { echo "load_compare: $f is not an executable" >&2; exit 2; }
done
mkdir -p "$out"

# Configurations: name and drr_load arguments.
configs=(closed-1 closed-16 closed-64 latest-16 ordered-16)
declare -A config_args=(
  [closed-1]="--clients 1 --duration 10 --warmup 2"
  [closed-16]="--clients 16 --duration 10 --warmup 2"
  [closed-64]="--clients 64 --duration 10 --warmup 2"
  [latest-16]="--streams 16 --stream-fps 60 --stream-mode latest --duration 20 --warmup 2"
  [ordered-16]="--streams 16 --stream-fps 60 --stream-mode ordered --duration 20 --warmup 2"
)

server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    for _ in $(seq 400); do  # up to 40 s (HEAD drains for at most 30 s)
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "load_compare: server $server_pid ignored SIGTERM for 40 s; killing it" >&2
      kill -KILL "$server_pid"
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

# Starts server binary $1 with its output in $2; sets port, metrics_port and
# volume_id.
start_server() {
  "$1" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --device cpu \
       --preload-phantom > "$2" 2>&1 &
  server_pid=$!
  port=""
  for _ in $(seq 600); do  # up to 60 s
    if [[ "$(cat "$2")" =~ listening\ on\ port\ ([0-9]+),\ metrics\ on\ port\ ([0-9]+) ]]; then
      port="${BASH_REMATCH[1]}"; metrics_port="${BASH_REMATCH[2]}"
      break
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$port" ]]; then
    echo "load_compare: $1 did not start:" >&2; cat "$2" >&2; exit 1
  fi
  if [[ "$(cat "$2")" =~ preloaded\ .*\ as\ volume\ ([^[:space:]]+) ]]; then
    volume_id="${BASH_REMATCH[1]}"
  else
    echo "load_compare: no preloaded volume in $2" >&2; exit 1
  fi
}

# The server's /metrics, or nothing.
scrape() { curl -sf --max-time 10 "http://127.0.0.1:$metrics_port/metrics" || true; }

# Writes the metrics of a run (deltas between scrapes $1 and $2) to $3.
metrics_json() {
  "$python" - "$1" "$2" "$3" <<'EOF'
import json, re, sys

def parse(path):
    samples = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            samples[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return samples

before, after, out = parse(sys.argv[1]), parse(sys.argv[2]), sys.argv[3]

def delta(name, labels=""):
    if (name, labels) not in after:
        return None
    return after[(name, labels)] - before.get((name, labels), 0.0)

def by_label(name, key):
    result = {}
    for (n, labels), _ in after.items():
        m = re.search(key + r'="([^"]*)"', labels)
        if n == name and m:
            result[m.group(1)] = result.get(m.group(1), 0.0) + delta(n, labels)
    return result

def mean(name):
    s, c = delta(name + "_sum"), delta(name + "_count")
    return s / c if s is not None and c else None

json.dump({
    "mean_batch_poses": mean("drr_batch_poses"),
    "batch_poses_sum": delta("drr_batch_poses_sum"),
    "batch_poses_count": delta("drr_batch_poses_count"),
    "mean_batch_calls": mean("drr_batch_calls"),
    "calls_dropped": by_label("drr_calls_dropped_total", "reason"),
    "requests_by_code": by_label("drr_requests_total", "code"),
    "poses_rendered": delta("drr_poses_rendered_total"),
}, open(out, "w"), indent=2)
EOF
}

for rep in $(seq "$repeat"); do
  dir="$out/r$rep"
  mkdir -p "$dir"
  for config in "${configs[@]}"; do
    for i in 0 1; do
      label="${labels[$i]}"
      run="$dir/$label-$config"
      case "$config" in
        latest-*) run_label="$label latest" ;;
        ordered-*) run_label="$label ordered" ;;
        *) run_label="$label" ;;
      esac
      echo "== repeat $rep/$repeat, $config, $label ($(date +%T))"
      start_server "${servers[$i]}" "$run.server.log"
      scrape > "$run.before.prom"
      # shellcheck disable=SC2086  # the configuration's arguments split on purpose
      "$load" --target "127.0.0.1:$port" --volume-id "$volume_id" \
        ${config_args[$config]} --label "$run_label" --json "$run.json" \
        > "$run.load.log" 2>&1 || { echo "load_compare: drr_load failed:" >&2; cat "$run.load.log" >&2; exit 1; }
      scrape > "$run.after.prom"
      stop_server
      metrics_json "$run.before.prom" "$run.after.prom" "$run.metrics.json"
      sed -n '2,5p' "$run.load.log"
    done
  done
done

# Per-field medians over the repeats, in drr_load's JSON schema.
mkdir -p "$out/median"
"$python" - "$out" "$repeat" <<'EOF'
import glob, json, os, statistics, sys

out, repeat = sys.argv[1], int(sys.argv[2])
groups = {}
for path in sorted(glob.glob(os.path.join(out, "r*", "*.json"))):
    if path.endswith(".metrics.json"):
        continue
    groups.setdefault(os.path.basename(path), []).append(path)
for name, paths in groups.items():
    runs = [json.load(open(p)) for p in paths]
    med = dict(runs[0])
    for key in ("sent", "requests", "renders", "requests_per_s", "renders_per_s",
                "fairness_min_over_mean"):
        med[key] = statistics.median(r[key] for r in runs)
    med["latency_ms"] = {k: statistics.median(r["latency_ms"][k] for r in runs)
                         for k in runs[0]["latency_ms"]}
    med["per_client"] = []
    codes = sorted({c for r in runs for c in r["errors"]})
    med["errors"] = {c: statistics.median(r["errors"].get(c, 0) for r in runs) for c in codes}
    med["repeats"] = len(runs)
    json.dump(med, open(os.path.join(out, "median", name), "w"), indent=2)
EOF

# (*[^s].json: the runs' JSON, not the .metrics.json beside them)
"$python" "$here/load_report.py" "$out"/r*/*[^s].json -o "$out/all.md"
"$plot_python" "$here/load_report.py" "$out"/median/*.json -o "$out/median.md" \
  --png "$out/median.png"
echo "load_compare: wrote $out/all.md, $out/median.md and $out/median.png"
