#!/usr/bin/env bash
# Where the time goes per event: `perf record -g` of hbforward on one of the three workloads of
# issue 15, then the hottest symbols with their share of the process's CPU and the nanoseconds of
# CPU per event that share stands for. bench/README.md keeps the summaries.
#
#   bash bench/profile.sh webhook|file|kafka [BUILD_DIR]   (BUILD_DIR: where hbforward is, default build)
#     webhook: wrk -t1 -c32 (bench/http/post.lua) -> http -> json -> enrich -> file, DURATION=10 s
#     file:    1M-line NDJSON file -> json -> enrich -> file
#     kafka:   the same file -> json -> enrich -> kafka (dev broker, COMPRESSION=none), and kcat -P
#              producing the same file, both profiled
#   env: TOP=25 (symbols shown), KEEP=1 (keep the perf.data files, printed at the end)
# Needs perf (Debian: linux-perf), wrk, kcat. Symbols come from the symbol table (the release build
# has no debug info), so the call graphs are partial; the self time per symbol is exact enough.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
WHAT=${1:?webhook, file or kafka}
BUILD=${2:-build}
TOP=${TOP:-25}
DURATION=${DURATION:-10}
HBF=$(realpath "$BUILD")/hbforward
HZ=$(getconf CLK_TCK)
W=$(mktemp -d /tmp/hbf-profile.XXXXXX)
PIDS=""
trap 'kill $PIDS 2>/dev/null || true; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
DATA=${HBF_BENCH_DATA:-/tmp/hbf-bench-healthbot-1m.ndjson}
N=1000000


make_data() {
  [ -s "$DATA" ] && return
  printf '[inputs.gen]\ntype = "generate"\ncount = %d\nseed = 42\ndevices = 2000\n[outputs.out]\ntype = "file"\ninputs = ["gen"]\npath = "%s"\n' \
    "$N" "$DATA" >"$W/make.toml"
  "$HBF" run -c "$W/make.toml" 2>/dev/null
}

# report DATA EVENTS CPU_S LABEL: the top symbols by self time, as % and ns of CPU per event.
report() {
  local data=$1 events=$2 cpu=$3 label=$4
  echo
  echo "== $label: $events events, $(printf %.2f "$cpu") s CPU, $(awk -v c="$cpu" -v n="$events" 'BEGIN{printf "%.0f", c*1e9/n}') ns CPU/event"
  echo "   (self time; ns/event = share x CPU/event)"
  echo "   by kind of work (bench/perf_summary.py):"
  /usr/bin/python3 bench/perf_summary.py "$data" "$(awk -v c="$cpu" -v n="$events" 'BEGIN{printf "%.0f", c*1e9/n}')"
  echo "   by library:"
  perf report -i "$data" --no-children --sort dso -g none --percent-limit 0.5 --stdio 2>/dev/null |
    awk -v c="$cpu" -v n="$events" '/^ +[0-9.]+%/ {pct = $1; sub("%", "", pct); printf "  %5.1f%%  %6.1f ns  %s\n", pct, pct / 100 * c * 1e9 / n, $2}'
  echo "   by symbol:"
  perf report -i "$data" --no-children --sort dso,sym -g none --percent-limit 0.3 --stdio 2>/dev/null |
    awk -v c="$cpu" -v n="$events" -v top="$TOP" '
      /^ +[0-9.]+%/ && shown < top {
        pct = $1; sub("%", "", pct)
        dso = $2; sym = ""
        for (i = 4; i <= NF; i++) sym = sym (i > 4 ? " " : "") $i
        if (length(sym) > 80) sym = substr(sym, 1, 77) "..."
        printf "  %5.1f%%  %6.1f ns  %-18s %s\n", pct, pct / 100 * c * 1e9 / n, dso, sym
        shown++
      }'
  echo "   by thread (self time):"
  perf report -i "$data" --no-children --sort pid -g none --percent-limit 2 --stdio 2>/dev/null |
    awk -v c="$cpu" -v n="$events" '/^ +[0-9.]+%/ {pct = $1; sub("%", "", pct); printf "  %5.1f%%  %6.1f ns  thread %s\n", pct, pct / 100 * c * 1e9 / n, $2}'
}

case "$WHAT" in
webhook)
  PORT=$(free_port)
  webhook_toml "$PORT" "$W/out.ndjson" >"$W/hook.toml"
  "$HBF" run -c "$W/hook.toml" 2>"$W/hbf.log" &
  HBF_PID=$!; PIDS="$PIDS $HBF_PID"
  wait_port "$PORT"
  wrk -t1 -c32 -d2s -s bench/http/post.lua "http://127.0.0.1:$PORT/healthbot" >/dev/null  # warm up
  c0=$(awk '{print $14 + $15}' "/proc/$HBF_PID/stat")
  perf record -g -o "$W/hook.data" -p "$HBF_PID" -- sleep "$DURATION" 2>/dev/null &
  PERF_PID=$!
  line=$(wrk -t1 -c32 -d"${DURATION}s" --latency -s bench/http/post.lua "http://127.0.0.1:$PORT/healthbot" | grep '^RESULT')
  wait "$PERF_PID" || true
  c1=$(awk '{print $14 + $15}' "/proc/$HBF_PID/stat")
  reqs=$(echo "$line" | awk '{print $2}')
  echo "wrk: $(echo "$line" | awk '{printf "%d requests, %.0f req/s", $2, $2/$3}')"
  report "$W/hook.data" "$reqs" "$(echo "($c1 - $c0) / $HZ" | bc -l)" "webhook -> json -> enrich -> file"
  ;;
file)
  make_data
  cat >"$W/file.toml" <<TOML
[service]
log_level = "warn"
[inputs.f]
type = "file"
path = "$DATA"
[filters.parse]
type = "json"
inputs = ["f"]
[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = { collector = "edge-01" }
received_at_field = "received_at"
[outputs.out]
type = "file"
inputs = ["tag"]
path = "$W/out.ndjson"
TOML
  /usr/bin/time -f "%e %U %S" -o "$W/t" perf record -g -o "$W/file.data" -- "$HBF" run -c "$W/file.toml" 2>/dev/null
  echo "wall $(awk '{print $1}' "$W/t") s (under perf)"
  report "$W/file.data" "$N" "$(awk '{print $2 + $3}' "$W/t")" "file -> json -> enrich -> file"
  ;;
kafka)
  make_data
  PORT=$(free_port)
  "$HBF" dev-broker --port "$PORT" >"$W/broker.out" 2>"$W/broker.log" &
  PIDS="$PIDS $!"
  for _ in $(seq 50); do grep -q '^bootstrap' "$W/broker.out" 2>/dev/null && break; sleep 0.1; done
  cat >"$W/kafka.toml" <<TOML
[service]
log_level = "warn"
[inputs.in]
type = "file"
path = "$DATA"
[filters.parse]
type = "json"
inputs = ["in"]
[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = { collector = "bench" }
[outputs.k]
type = "kafka"
inputs = ["tag"]
brokers = "127.0.0.1:$PORT"
topic = "hbf"
compression = "none"
TOML
  /usr/bin/time -f "%e %U %S" -o "$W/tk" perf record -g -o "$W/kcat.data" -- \
    kcat -b "127.0.0.1:$PORT" -P -t kcat -X compression.codec=none -l "$DATA" 2>/dev/null
  echo "kcat wall $(awk '{print $1}' "$W/tk") s (under perf)"
  /usr/bin/time -f "%e %U %S" -o "$W/th" perf record -g -o "$W/hbf.data" -- "$HBF" run -c "$W/kafka.toml" 2>/dev/null
  echo "hbforward wall $(awk '{print $1}' "$W/th") s (under perf)"
  report "$W/kcat.data" "$N" "$(awk '{print $2 + $3}' "$W/tk")" "kcat -P -l FILE (uncompressed)"
  report "$W/hbf.data" "$N" "$(awk '{print $2 + $3}' "$W/th")" "file -> json -> enrich -> kafka (uncompressed)"
  ;;
*) echo "usage: $0 webhook|file|kafka [BUILD_DIR]" >&2; exit 2 ;;
esac
[ -z "${KEEP:-}" ] || echo "perf data kept in $W"
