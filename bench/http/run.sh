#!/usr/bin/env bash
# Load test of the http input: wrk (1 thread, 32 keep-alive connections, ~450-byte HealthBot
# notifications) against, in the same run, a bare HTTP responder (the ceiling of wrk on this
# machine) and hbforward running http -> json -> enrich -> file.
# Prints per run and median: requests/s, ratio to the ceiling, p50/p99 latency, the server's CPU
# time per request and its peak RSS.
# Usage: bench/http/run.sh [BUILD_DIR]   env: RUNS=3 DURATION=10 CONNS=32 THREADS=1 (hbforward I/O threads)
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
LUA=bench/http/post.lua
HZ=$(getconf CLK_TCK)
ninja -C "$BUILD" -j2 hbforward bench/http_bare_responder >/dev/null
TMP=$(mktemp -d)
trap 'kill $BARE_PID $HBF_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

BARE_PORT=$(free_port)
"$BUILD/bench/http_bare_responder" "$BARE_PORT" &
BARE_PID=$!
HBF_PORT=$(free_port)
cat >"$TMP/bench.toml" <<TOML
[service]
log_level = "warn"

[inputs.healthbot]
type = "http"
address = "127.0.0.1:$HBF_PORT"
paths = ["/healthbot"]
threads = $THREADS

[filters.parse]
type = "json"
inputs = ["healthbot"]

[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = { collector = "bench" }
received_at_field = "received_at"

[outputs.out]
type = "file"
inputs = ["tag"]
path = "$TMP/out.ndjson"
TOML
"$BUILD/hbforward" run -c "$TMP/bench.toml" &
HBF_PID=$!
wait_port "$BARE_PORT"
wait_port "$HBF_PORT"

# One wrk run against $1 (url) measuring process $2: prints "rps p50_us p99_us cpu_us_per_req errors".
one_run() {
  local url=$1 pid=$2 c0 c1 line
  c0=$(cpu_ticks "$pid")
  line=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$LUA" "$url" | grep '^RESULT')
  c1=$(cpu_ticks "$pid")
  # RESULT requests seconds p50 p99 errors
  echo "$line" | awk -v dc=$((c1 - c0)) -v hz="$HZ" '{printf "%.0f %d %d %.1f %d\n", $2/$3, $4, $5, dc/hz*1e6/$2, $6}'
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: >"$TMP/bare" ; : >"$TMP/hbf"
for r in $(seq "$RUNS"); do
  b=$(one_run "http://127.0.0.1:$BARE_PORT/healthbot" "$BARE_PID"); echo "$b" >>"$TMP/bare"
  h=$(one_run "http://127.0.0.1:$HBF_PORT/healthbot" "$HBF_PID"); echo "$h" >>"$TMP/hbf"
  for x in "bare $b" "hbfwd $h"; do
    echo "run $r: $x" | awk '{printf "%s %s %-6s %7d req/s  p50 %5d us  p99 %5d us  cpu %5.1f us/req  errors %d\n", $1, $2, $3, $4, $5, $6, $7, $8}'
  done
done

col() { awk -v c="$2" '{print $c}' "$TMP/$1" | median; }
B_RPS=$(col bare 1); H_RPS=$(col hbf 1)
echo
echo "medians of $RUNS runs (wrk -t1 -c$CONNS -d${DURATION}s, hbforward threads=$THREADS):"
printf "  bare responder : %7.0f req/s  p50 %5s us  p99 %5s us  cpu %5s us/req  peak RSS %6s KiB\n" \
  "$B_RPS" "$(col bare 2)" "$(col bare 3)" "$(col bare 4)" "$(hwm_kb $BARE_PID)"
printf "  hbforward      : %7.0f req/s  p50 %5s us  p99 %5s us  cpu %5s us/req  peak RSS %6s KiB\n" \
  "$H_RPS" "$(col hbf 2)" "$(col hbf 3)" "$(col hbf 4)" "$(hwm_kb $HBF_PID)"
awk -v h="$H_RPS" -v b="$B_RPS" 'BEGIN {printf "  ratio hbforward / bare: %.2f\n", h/b}'
kill "$HBF_PID"; wait "$HBF_PID" 2>/dev/null || true
echo "  events written: $(wc -l <"$TMP/out.ndjson")"
