#!/usr/bin/env bash
# Forward protocol throughput beside the file pipeline, in the same run, 1,000,000 HealthBot
# notifications (the data file of bench/pipeline.sh):
#   base: file -> json -> enrich -> file
#   in:   Forward in -> file, fed PackedForward frames of 1000 entries pre-packed by python3-msgpack
#         over one connection (bench/forward/blast.py); timed until the last frame's ack
#   out:  file -> Forward out (require_ack) -> a second hbforward (Forward in -> null); timed until
#         the sender exits, i.e. every frame acknowledged
# Prints the median of RUNS runs: events/s, CPU seconds of each hbforward, the ratio to base.
# Usage: bench/forward/run.sh [RUNS]   (build first: ninja -C build)
set -eu
cd "$(dirname "$0")/../.."
. bench/lib.sh
RUNS=${1:-3}
N=1000000
HBF=$PWD/build/hbforward
W=$(mktemp -d /tmp/hbf-fwd-bench.XXXXXX)
RX_PID=""
trap '[ -n "$RX_PID" ] && kill $RX_PID 2>/dev/null; rm -rf "$W"' EXIT
DATA=${HBF_BENCH_DATA:-/tmp/hbf-bench-healthbot-1m.ndjson}
FRAMES=${DATA%.ndjson}.forward

if [ ! -s "$DATA" ]; then
  printf '[inputs.gen]\ntype = "generate"\ncount = %d\nseed = 42\ndevices = 2000\n[outputs.out]\ntype = "file"\ninputs = ["gen"]\npath = "%s"\n' \
    "$N" "$DATA" > "$W/make.toml"
  "$HBF" run -c "$W/make.toml" 2>/dev/null
fi
[ -s "$FRAMES" ] || /usr/bin/python3 bench/forward/blast.py --pack "$DATA" "$FRAMES"
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cat > "$W/base.toml" <<EOT
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
EOT
cat > "$W/in.toml" <<EOT
[inputs.fwd]
type = "forward"
address = "127.0.0.1:$PORT"
[outputs.out]
type = "file"
inputs = ["fwd"]
path = "$W/out.ndjson"
EOT
cat > "$W/rx.toml" <<EOT
[inputs.fwd]
type = "forward"
address = "127.0.0.1:$PORT"
[outputs.out]
type = "null"
inputs = ["fwd"]
EOT
cat > "$W/out.toml" <<EOT
[inputs.f]
type = "file"
path = "$DATA"
[filters.parse]
type = "json"
inputs = ["f"]
[outputs.fwd]
type = "forward"
inputs = ["parse"]
servers = ["127.0.0.1:$PORT"]
tag = "healthbot.{severity}"
require_ack = true
EOT

cpu_of() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }   # utime + stime, in s (USER_HZ 100)
start_rx() {
  "$HBF" run -c "$1" 2>"$W/rx.err" & RX_PID=$!
  for _ in $(seq 100); do /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT))" 2>/dev/null && return; sleep 0.05; done
  cat "$W/rx.err"; exit 1
}
stop_rx() { kill $RX_PID; wait $RX_PID || true; RX_PID=""; }

for i in $(seq "$RUNS"); do
  rm -f "$W/out.ndjson" "$W"/*.json
  /usr/bin/time -f "%e %U %S" -o "$W/t" "$HBF" run -c "$W/base.toml" 2>/dev/null
  awk '{print $1, $2 + $3, 0}' "$W/t" >> "$W/base"

  rm -f "$W/out.ndjson"
  start_rx "$W/in.toml"
  c0=$(cpu_of $RX_PID)
  wall=$(/usr/bin/python3 bench/forward/blast.py "$PORT" "$FRAMES")
  c1=$(cpu_of $RX_PID)
  stop_rx
  [ "$(wc -l < "$W/out.ndjson")" -eq "$N" ] || { echo "forward in: expected $N events"; exit 1; }
  echo "$wall $(echo "$c1 - $c0" | bc -l) 0" >> "$W/in"

  start_rx "$W/rx.toml"
  c0=$(cpu_of $RX_PID)
  /usr/bin/time -f "%e %U %S" -o "$W/t" "$HBF" run -c "$W/out.toml" 2>/dev/null
  c1=$(cpu_of $RX_PID)
  stop_rx
  awk -v rx="$(echo "$c1 - $c0" | bc -l)" '{print $1, $2 + $3, rx}' "$W/t" >> "$W/out"
done

printf "%d events, median of %d runs\n" "$N" "$RUNS"
printf "%-46s %12s %10s %12s %8s\n" pipeline events/s cpu_s rx_cpu_s vs_base
base_wall=$(awk '{print $1}' "$W/base" | median)
for name in base in out; do
  wall=$(awk '{print $1}' "$W/$name" | median)
  cpu=$(awk '{print $2}' "$W/$name" | median)
  rx=$(awk '{print $3}' "$W/$name" | median)
  case $name in
    base) label="file -> json -> enrich -> file";;
    in) label="Forward in -> file (python3 sender)";;
    out) label="file -> json -> Forward out -> hbforward";;
  esac
  awk -v l="$label" -v n="$N" -v w="$wall" -v c="$cpu" -v r="$rx" -v bw="$base_wall" \
    'BEGIN { printf "%-46s %12.0f %10.2f %12.2f %8.2f\n", l, n/w, c, r, bw/w }'
done
