#!/usr/bin/env bash
# Syslog input throughput: TOTAL octet-counted RFC 5424 messages (Junos-like, structured data)
# over CONNS=8 TCP connections (build/bench/syslog_blast) into syslog -> file. Reports, per run
# and as medians: events/s from the first byte sent to the last event written (read from the
# file output's hbf_events_out_total), and hbforward's CPU per event (utime+stime from /proc).
#   bash bench/syslog/run.sh [RUNS=3] [TOTAL=2000000] [CONNS=8]
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
RUNS=${1:-3}
TOTAL=${2:-2000000}
CONNS=${3:-8}
HBF=$PWD/build/hbforward
BLAST=$PWD/build/bench/syslog_blast
W=$(mktemp -d /tmp/hbf-bench-syslog.XXXXXX)
CLK=$(getconf CLK_TCK)
PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$W"' EXIT

out_events() { curl -s "http://127.0.0.1:$API/metrics" | awk '/^hbf_events_out_total\{.*stage="out"/ {print $2}' | head -1; }

for r in $(seq "$RUNS"); do
  PORT=$(free_port); API=$(free_port)
  rm -f "$W/out.ndjson"
  cat > "$W/s.toml" <<EOT
[service]
log_level = "warn"
api_address = "127.0.0.1:$API"
[inputs.sl]
type = "syslog"
address = "127.0.0.1:$PORT"
[outputs.out]
type = "file"
inputs = ["sl"]
path = "$W/out.ndjson"
EOT
  "$HBF" run -c "$W/s.toml" 2>"$W/err" &
  PID=$!
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$API/health" >/dev/null 2>&1 && break; sleep 0.05; done
  c0=$(cpu_ticks $PID)
  t0=$(date +%s.%N)
  "$BLAST" 127.0.0.1 "$PORT" "$CONNS" "$TOTAL"
  while [ "$(out_events)" != "$TOTAL" ]; do sleep 0.01; done
  t1=$(date +%s.%N)
  c1=$(cpu_ticks $PID)
  kill $PID; wait $PID 2>/dev/null || true; PID=""
  awk -v n="$TOTAL" -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v k="$CLK" -v r="$r" \
    'BEGIN { printf "run %d: %10.0f events/s  %6.2f us CPU/event  (%.2f s, %.2f CPU s)\n", r, n/(t1-t0), c/k*1e6/n, t1-t0, c/k }' | tee -a "$W/runs"
done
echo "median of $RUNS: $(awk '{print $3}' "$W/runs" | median) events/s, $(awk '{print $5}' "$W/runs" | median) us CPU/event ($TOTAL messages, $CONNS connections, syslog -> file)"
