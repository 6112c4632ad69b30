#!/usr/bin/env bash
# Load test of the http input: wrk (1 thread, 32 keep-alive connections, ~450-byte HealthBot
# notifications) against, in the same run, a bare HTTP responder (the ceiling of wrk on this
# machine), hbforward running http -> json -> enrich -> file, and hbforward running
# http -> json -> enrich -> kafka into a `hbforward dev-broker` started here.
# Prints per run and median: requests/s, p50/p99 latency, the server's CPU time per request, peak
# RSS, the ratio file/bare and the ratio kafka/file (the aim: kafka within 10% of file).
# Usage: bench/http/run.sh [BUILD_DIR]
#   env: RUNS=3 DURATION=10 CONNS=32 THREADS=1 (hbforward I/O threads) ACK=accepted|delivered
#        PIPELINE=N: each connection pipelines N requests at a time (bench/http/pipeline.lua)
#        LINGER=250us: hbforward's [service] linger (unset: its default)
set -eu
cd "$(dirname "$0")/../.."
. bench/lib.sh
BUILD=${1:-build}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
ACK=${ACK:-accepted}
PIPELINE=${PIPELINE:-1}
LUA=bench/http/post.lua
LUA_ARGS=""
if [ "$PIPELINE" -gt 1 ]; then LUA=bench/http/pipeline.lua; LUA_ARGS="-- $PIPELINE"; fi
HZ=$(getconf CLK_TCK)
# A directory that is not a build tree (a saved "before" binary and bench/http_bare_responder) is used as it is.
if [ -f "$BUILD/build.ninja" ]; then ninja -C "$BUILD" -j2 hbforward bench/http_bare_responder >/dev/null; fi
TMP=$(mktemp -d)
PIDS=""
trap 'kill $PIDS 2>/dev/null || true; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$TMP"' EXIT


BARE_PORT=$(free_port)
"$BUILD/bench/http_bare_responder" "$BARE_PORT" &
BARE_PID=$!; PIDS="$PIDS $BARE_PID"

"$BUILD/hbforward" dev-broker --port 0 >"$TMP/broker.out" 2>"$TMP/broker.log" &
BROKER_PID=$!; PIDS="$PIDS $BROKER_PID"
for _ in $(seq 100); do grep -q '^bootstrap' "$TMP/broker.out" 2>/dev/null && break; sleep 0.05; done
BOOTSTRAP=$(awk '/^bootstrap/ {print $2}' "$TMP/broker.out")
[ -n "$BOOTSTRAP" ] || { echo "dev-broker did not start: $(cat "$TMP/broker.log")" >&2; exit 1; }

# hbforward with http -> json -> enrich -> $3 (an output table); sets HBF_PID.
start_hbf() {
  local name=$1 port=$2 output=$3
  cat >"$TMP/$name.toml" <<TOML
[service]
log_level = "warn"
${LINGER:+linger = \"$LINGER\"}

[inputs.healthbot]
type = "http"
address = "127.0.0.1:$port"
paths = ["/healthbot"]
threads = $THREADS
ack = "$ACK"

[filters.parse]
type = "json"
inputs = ["healthbot"]

[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = { collector = "bench" }
received_at_field = "received_at"

$output
TOML
  "$BUILD/hbforward" run -c "$TMP/$name.toml" 2>"$TMP/$name.log" &
  HBF_PID=$!
  PIDS="$PIDS $HBF_PID"
}
FILE_PORT=$(free_port)
start_hbf file "$FILE_PORT" "[outputs.out]
type = \"file\"
inputs = [\"tag\"]
path = \"$TMP/out.ndjson\""
FILE_PID=$HBF_PID
KAFKA_PORT=$(free_port)
start_hbf kafka "$KAFKA_PORT" "[outputs.kafka]
type = \"kafka\"
inputs = [\"tag\"]
brokers = \"$BOOTSTRAP\"
topic = \"healthbot.{severity|unknown}\"
key = \"{device-id}\""
KAFKA_PID=$HBF_PID
for p in "$BARE_PORT" "$FILE_PORT" "$KAFKA_PORT"; do wait_port "$p"; done

# One wrk run against $1 (url) measuring process $2: prints "rps p50_us p99_us cpu_us_per_req errors".
one_run() {
  local url=$1 pid=$2 c0 c1 line
  c0=$(cpu_ticks "$pid")
  # shellcheck disable=SC2086
  line=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$LUA" "$url" $LUA_ARGS | grep '^RESULT')
  c1=$(cpu_ticks "$pid")
  # RESULT requests seconds p50 p99 errors
  echo "$line" | awk -v dc=$((c1 - c0)) -v hz="$HZ" '{printf "%.0f %d %d %.1f %d\n", $2/$3, $4, $5, dc/hz*1e6/$2, $6}'
}


: >"$TMP/bare"; : >"$TMP/file"; : >"$TMP/kafka"; : >"$TMP/broker_cpu"
for r in $(seq "$RUNS"); do
  b=$(one_run "http://127.0.0.1:$BARE_PORT/healthbot" "$BARE_PID"); echo "$b" >>"$TMP/bare"
  f=$(one_run "http://127.0.0.1:$FILE_PORT/healthbot" "$FILE_PID"); echo "$f" >>"$TMP/file"
  k0=$(cpu_ticks "$BROKER_PID")
  k=$(one_run "http://127.0.0.1:$KAFKA_PORT/healthbot" "$KAFKA_PID"); echo "$k" >>"$TMP/kafka"
  k1=$(cpu_ticks "$BROKER_PID")
  echo "$k" | awk -v dc=$((k1 - k0)) -v hz="$HZ" -v d="$DURATION" '{printf "%.1f\n", dc/hz*1e6/($1*d)}' >>"$TMP/broker_cpu"
  for x in "bare $b" "file $f" "kafka $k"; do
    echo "run $r: $x" | awk '{printf "%s %s %-6s %7d req/s  p50 %5d us  p99 %5d us  cpu %5.1f us/req  errors %d\n", $1, $2, $3, $4, $5, $6, $7, $8}'
  done
  echo "$f $k" | awk -v r="$r" '{printf "run %d: ratio kafka / file %.2f\n", r, $6/$1}'
done

col() { awk -v c="$2" '{print $c}' "$TMP/$1" | median; }
B_RPS=$(col bare 1); F_RPS=$(col file 1); K_RPS=$(col kafka 1)
echo
echo "medians of $RUNS runs (wrk -t1 -c$CONNS -d${DURATION}s, pipelining $PIPELINE, hbforward threads=$THREADS, ack=$ACK):"
row() {
  printf "  %-22s: %7.0f req/s  p50 %5s us  p99 %5s us  cpu %5s us/req  peak RSS %6s KiB\n" \
    "$1" "$(col "$2" 1)" "$(col "$2" 2)" "$(col "$2" 3)" "$(col "$2" 4)" "$(hwm_kb "$3")"
}
row "bare responder" bare "$BARE_PID"
row "hbforward -> file" file "$FILE_PID"
row "hbforward -> kafka" kafka "$KAFKA_PID"
echo "  (dev-broker CPU during the kafka runs: $(median <"$TMP/broker_cpu") us/req, not counted above)"
awk -v f="$F_RPS" -v b="$B_RPS" -v k="$K_RPS" 'BEGIN {
  printf "  ratio file / bare:  %.2f\n  ratio kafka / file: %.2f\n", f/b, k/f }'

kill "$FILE_PID" "$KAFKA_PID"; wait "$FILE_PID" "$KAFKA_PID" 2>/dev/null || true
on_topics=0
for t in $(kcat -b "$BOOTSTRAP" -L -J | /usr/bin/python3 -c '
import json, sys
for t in json.load(sys.stdin)["topics"]:
    if t["topic"].startswith("healthbot."):
        print(t["topic"] + ":" + str(len(t["partitions"])))'); do
  for p in $(seq 0 $((${t#*:} - 1))); do
    o=$(kcat -b "$BOOTSTRAP" -Q -t "${t%:*}:$p:-1" 2>/dev/null | awk '{print $NF}')
    on_topics=$((on_topics + ${o:-0}))
  done
done
echo "  events written: file $(wc -l <"$TMP/out.ndjson"), kafka $on_topics (end offsets)"
