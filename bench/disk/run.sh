#!/usr/bin/env bash
# Disk buffer cost, measured beside the memory buffer in the same run:
#  1. the webhook (wrk, 1 thread, 32 keep-alive connections, HealthBot notifications,
#     ack = "accepted") into http -> json -> enrich -> kafka (a `hbforward dev-broker` started
#     here), with the output's buffer memory, disk sync = "batch" and disk sync = "none";
#  2. file -> json -> enrich -> file over 1,000,000 notifications, memory vs disk (sync = batch).
# Prints per run and medians: requests/s (events/s), ratios to memory, peak RSS, fdatasync calls.
# Usage: bench/disk/run.sh [BUILD_DIR]   env: RUNS=3 DURATION=5 CONNS=32
set -eu
cd "$(dirname "$0")/../.."
. bench/lib.sh
BUILD=${1:-build}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}
LUA=bench/http/post.lua
ninja -C "$BUILD" -j2 hbforward >/dev/null
TMP=$(mktemp -d /tmp/hbf-diskbench.XXXXXX)
PIDS=""
trap 'kill $PIDS 2>/dev/null || true; wait 2>/dev/null; rm -rf "$TMP"' EXIT


"$BUILD/hbforward" dev-broker --port 0 >"$TMP/broker.out" 2>"$TMP/broker.log" &
PIDS="$PIDS $!"
for _ in $(seq 100); do grep -q '^bootstrap' "$TMP/broker.out" 2>/dev/null && break; sleep 0.05; done
BOOTSTRAP=$(awk '/^bootstrap/ {print $2}' "$TMP/broker.out")
[ -n "$BOOTSTRAP" ] || { echo "dev-broker did not start" >&2; exit 1; }

# start_hbf NAME BUFFER_TOML: http -> json -> enrich -> kafka; sets PORT_<NAME>, API_<NAME>, PID_<NAME>.
start_hbf() {
  local name=$1 buffer=$2 port api
  port=$(free_port); api=$(free_port)
  cat >"$TMP/$name.toml" <<TOML
[service]
log_level = "warn"
data_dir = "$TMP/data-$name"
api_address = "127.0.0.1:$api"
[inputs.healthbot]
type = "http"
address = "127.0.0.1:$port"
paths = ["/healthbot"]
ack = "accepted"
[filters.parse]
type = "json"
inputs = ["healthbot"]
[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = { collector = "bench" }
[outputs.kafka]
type = "kafka"
inputs = ["tag"]
brokers = "$BOOTSTRAP"
topic = "healthbot.{severity|unknown}"
key = "{device-id}"
buffer = $buffer
TOML
  "$BUILD/hbforward" run -c "$TMP/$name.toml" 2>"$TMP/$name.log" &
  PIDS="$PIDS $!"
  eval "PORT_$name=$port API_$name=$api PID_$name=$!"
  wait_port "$port"
}
start_hbf memory '{ type = "memory" }'
start_hbf batch '{ type = "disk", max_size = "4GiB", sync = "batch" }'
start_hbf none '{ type = "disk", max_size = "4GiB", sync = "none" }'

rps() { wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$LUA" "http://127.0.0.1:$1/healthbot" | awk '/^RESULT/ {printf "%.0f\n", $2/$3}'; }
for n in memory batch none; do : >"$TMP/rps_$n"; done
for r in $(seq "$RUNS"); do
  for n in memory batch none; do
    port_var=PORT_$n
    v=$(rps "${!port_var}"); echo "$v" >>"$TMP/rps_$n"
    echo "run $r: webhook -> kafka, buffer $n: $v req/s"
  done
done
M=$(median <"$TMP/rps_memory"); B=$(median <"$TMP/rps_batch"); N=$(median <"$TMP/rps_none")
REQS_B=$(metric_sum "$API_batch" hbf_buffer_written_events_total)
SYNCS_B=$(metric_sum "$API_batch" hbf_buffer_syncs_total)
echo
echo "webhook -> kafka, medians of $RUNS runs (wrk -t1 -c$CONNS -d${DURATION}s, ack = accepted):"
printf "  memory buffer           : %7.0f req/s  peak RSS %6s KiB\n" "$M" "$(hwm_kb "$PID_memory")"
printf "  disk, sync = batch      : %7.0f req/s  peak RSS %6s KiB  ratio %.2f  fdatasync %d (%.1f events each)\n" "$B" "$(hwm_kb "$PID_batch")" \
  "$(echo "$B $M" | awk '{print $1/$2}')" "$SYNCS_B" "$(echo "$REQS_B $SYNCS_B" | awk '{print $2 ? $1/$2 : 0}')"
printf "  disk, sync = none       : %7.0f req/s  peak RSS %6s KiB  ratio %.2f  fdatasync %d\n" "$N" "$(hwm_kb "$PID_none")" \
  "$(echo "$N $M" | awk '{print $1/$2}')" "$(metric_sum "$API_none" hbf_buffer_syncs_total)"

# 2. file -> json -> enrich -> file, 1M events, memory vs disk.
DATA=${HBF_BENCH_DATA:-/tmp/hbf-bench-healthbot-1m.ndjson}
if [ ! -s "$DATA" ]; then
  printf '[inputs.gen]\ntype = "generate"\ncount = 1000000\nseed = 42\ndevices = 2000\n[outputs.out]\ntype = "file"\ninputs = ["gen"]\npath = "%s"\n' "$DATA" >"$TMP/make.toml"
  "$BUILD/hbforward" run -c "$TMP/make.toml" 2>/dev/null
fi
file_run() {  # NAME BUFFER_TOML -> "events/s rss_kib"
  local name=$1 buffer=$2
  rm -rf "$TMP/fdata-$name" "$TMP/fout-$name.ndjson"
  cat >"$TMP/f-$name.toml" <<TOML
[service]
log_level = "warn"
data_dir = "$TMP/fdata-$name"
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
[outputs.out]
type = "file"
inputs = ["tag"]
path = "$TMP/fout-$name.ndjson"
buffer = $buffer
TOML
  /usr/bin/time -f "%e %M" -o "$TMP/time" "$BUILD/hbforward" run -c "$TMP/f-$name.toml" 2>"$TMP/f-$name.log" >/dev/null
  local lines; lines=$(wc -l <"$TMP/fout-$name.ndjson")
  awk -v l="$lines" '{printf "%.0f %d\n", l/$1, $2}' "$TMP/time"
}
: >"$TMP/fm"; : >"$TMP/fd"
for r in $(seq "$RUNS"); do
  a=$(file_run mem '{ type = "memory" }'); echo "$a" >>"$TMP/fm"
  b=$(file_run disk '{ type = "disk", max_size = "4GiB", sync = "batch" }'); echo "$b" >>"$TMP/fd"
  echo "run $r: file -> json -> enrich -> file: memory $a, disk $b (events/s, peak RSS KiB)"
done
FM=$(awk '{print $1}' "$TMP/fm" | median); FD=$(awk '{print $1}' "$TMP/fd" | median)
echo
echo "file -> json -> enrich -> file, 1M events, medians of $RUNS runs:"
printf "  memory buffer           : %8.0f events/s  peak RSS %s KiB\n" "$FM" "$(awk '{print $2}' "$TMP/fm" | median)"
printf "  disk, sync = batch      : %8.0f events/s  peak RSS %s KiB  ratio %.2f\n" "$FD" "$(awk '{print $2}' "$TMP/fd" | median)" \
  "$(echo "$FD $FM" | awk '{print $1/$2}')"
