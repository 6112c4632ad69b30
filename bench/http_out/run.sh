#!/usr/bin/env bash
# http output throughput: EVENTS HealthBot notifications through
#   file -> http output -> a second hbforward's http input -> null
# for ndjson with compression none, gzip level 1 (the default) and gzip level 6 (zlib's default),
# beside
#   file -> json -> enrich -> file
# in the same run. The sender exits when the receiver answered 2xx for every request, so its
# wall time is end to end. Prints each run, then medians and the ratio to the file pipeline.
#   bash bench/http_out/run.sh [RUNS=3] [EVENTS=500000]
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
RUNS=${1:-3}
EVENTS=${2:-500000}
HBF=$PWD/build/hbforward
W=$(mktemp -d /tmp/hbf-bench-httpout.XXXXXX)
DATA=$W/in.ndjson
RPID=""
trap '[ -n "$RPID" ] && kill $RPID 2>/dev/null; rm -rf "$W"' EXIT

cat > "$W/gen.toml" <<EOT
[inputs.gen]
type = "generate"
count = $EVENTS
seed = 7
[outputs.f]
type = "file"
inputs = ["gen"]
path = "$DATA"
EOT
"$HBF" run -c "$W/gen.toml" 2>/dev/null
BYTES=$(stat -c %s "$DATA")

PORT=$(free_port)
cat > "$W/recv.toml" <<EOT
[service]
log_level = "warn"
api_address = ""
[inputs.in]
type = "http"
address = "127.0.0.1:$PORT"
paths = ["/ingest"]
max_body = "8MiB"
[outputs.out]
type = "null"
inputs = ["in"]
EOT
"$HBF" run -c "$W/recv.toml" 2>"$W/recv.err" &
RPID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done

cat > "$W/file.toml" <<EOT
[service]
api_address = ""
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
sender() {  # NAME COMPRESSION LEVEL
  cat > "$W/$1.toml" <<EOT
[service]
api_address = ""
[inputs.f]
type = "file"
path = "$DATA"
[outputs.post]
type = "http"
inputs = ["f"]
url = "http://127.0.0.1:$PORT/ingest"
compression = "$2"
compression_level = $3
batch = { max_events = 2000, max_bytes = "4MiB", max_wait = "50ms" }
max_inflight = 4
EOT
}
# (no zstd: hbforward's http input reads gzip only; the unit tests check the zstd bodies)
sender none none 0
sender gzip1 gzip 1
sender gzip6 gzip 6

run() {  # NAME: appends "wall cpu" of `hbforward run` to $W/NAME.t
  rm -f "$W/out.ndjson" "$W"/.hbforward -r 2>/dev/null || true
  (cd "$W" && /usr/bin/time -f "%e %U %S" -o "$W/t" "$HBF" run -c "$W/$1.toml" >/dev/null 2>"$W/err") || { cat "$W/err"; exit 1; }
  awk '{print $1, $2+$3}' "$W/t" >> "$W/$1.t"
}
NAMES="file none gzip1 gzip6"
for r in $(seq "$RUNS"); do
  for n in $NAMES; do run "$n"; done
  echo "run $r: $(for n in $NAMES; do awk -v n="$n" -v e="$EVENTS" 'END {printf "%s %.0f/s  ", n, e/$1}' "$W/$n.t"; done)"
done
file_wall=$(awk '{print $1}' "$W/file.t" | median)
printf "%d events, %.0f MB; medians of %d runs (sender CPU only; the receiver runs beside it)\n" "$EVENTS" "$(echo "$BYTES/1000000" | bc -l)" "$RUNS"
printf "%-46s %12s %8s %10s\n" pipeline events/s cpu_s vs_file
for n in $NAMES; do
  wall=$(awk '{print $1}' "$W/$n.t" | median)
  cpu=$(awk '{print $2}' "$W/$n.t" | median)
  label="file -> http ($n) -> hbforward http -> null"
  [ "$n" = file ] && label="file -> json -> enrich -> file"
  [ "$n" = gzip1 ] && label="file -> http (gzip 1) -> hbforward http -> null"
  [ "$n" = gzip6 ] && label="file -> http (gzip 6) -> hbforward http -> null"
  awk -v l="$label" -v e="$EVENTS" -v w="$wall" -v c="$cpu" -v fw="$file_wall" \
    'BEGIN { printf "%-46s %12.0f %8.2f %10.2f\n", l, e/w, c, fw/w }'
done
grep -i "error\|fail" "$W/recv.err" | head -5 || true
