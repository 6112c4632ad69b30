#!/usr/bin/env bash
# The drain of a disk buffer backlog, beside the memory pipeline in the same run.
#  1. SIZE_MIB (1024) of generated HealthBot notifications as NDJSON (made once, kept in /tmp);
#  2. fill: stdin -> an output whose peer is down (http to a port where nothing listens), with
#     buffer = { type = "disk", sync = "none" }: every event lands in the buffer and stays there;
#     once all are written (hbf_buffer_written_events_total) the process is killed (kill -9);
#  3. drain: the same output name, now `null`, started with an empty stdin: the process reads the
#     whole backlog from the buffer (startup scan included), hands it to the output and exits;
#  4. memory: stdin -> null with the memory buffer over the same file.
# Prints per run and medians: events/s of the drain and of the memory pipeline, their ratio, peak
# RSS. Bench only (never in tests); bounded: each process is killed after LIMIT seconds, and the
# disk used is about 2 x SIZE_MIB under /tmp, removed at exit (the data file is kept for reruns).
# Usage: bench/disk/drain.sh [BUILD_DIR]   env: RUNS=3 SIZE_MIB=1024 LIMIT=300
set -eu
cd "$(dirname "$0")/../.."
. bench/lib.sh
BUILD=${1:-build}
RUNS=${RUNS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
LIMIT=${LIMIT:-300}
ninja -C "$BUILD" -j2 hbforward >/dev/null
TMP=$(mktemp -d /tmp/hbf-drainbench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

DATA=${HBF_BENCH_DRAIN_DATA:-/tmp/hbf-bench-drain-${SIZE_MIB}m.ndjson}
if [ ! -s "$DATA" ]; then
  COUNT=$(( SIZE_MIB * 1048576 / 341 ))  # the generator's documents average 341 bytes
  printf '[inputs.gen]\ntype = "generate"\ncount = %d\nseed = 7\ndevices = 2000\n[outputs.out]\ntype = "file"\ninputs = ["gen"]\npath = "%s"\n' \
    "$COUNT" "$DATA" >"$TMP/make.toml"
  timeout "$LIMIT" "$BUILD/hbforward" run -c "$TMP/make.toml" 2>/dev/null
fi
EVENTS=$(wc -l <"$DATA")
echo "backlog: $EVENTS events, $(du -m "$DATA" | cut -f1) MiB of NDJSON"

conf() {  # NAME OUTPUT_TOML BUFFER_TOML
  cat >"$TMP/$1.toml" <<TOML
[service]
log_level = "warn"
data_dir = "$TMP/data"
shutdown_timeout = "2s"
[inputs.in]
type = "stdin"
[outputs.out]
inputs = ["in"]
$2
buffer = $3
TOML
}
DISK='{ type = "disk", max_size = "'$(( SIZE_MIB * 2 ))'MiB", sync = "none" }'
conf fill 'type = "http"
url = "http://127.0.0.1:9/down"' "$DISK"
API=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -i "s/^shutdown_timeout = .*/&\napi_address = \"127.0.0.1:$API\"/" "$TMP/fill.toml"
conf drain 'type = "null"' "$DISK"
sed -i 's/^log_level = "warn"/log_level = "info"/' "$TMP/drain.toml"  # for its "N events ... to send" line
conf memory 'type = "null"' '{ type = "memory" }'
sed -i "s/^shutdown_timeout = .*/shutdown_timeout = \"${LIMIT}s\"/" "$TMP/drain.toml" "$TMP/memory.toml"  # the drain at EOF is bounded by it

timed() {  # NAME STDIN -> "seconds rss_kib"
  /usr/bin/time -f "%e %M" -o "$TMP/time" timeout "$LIMIT" "$BUILD/hbforward" run -c "$TMP/$1.toml" <"$2" 2>"$TMP/$1.log" >/dev/null || true
  cat "$TMP/time" | tail -1
}
: >"$TMP/d"; : >"$TMP/m"
for r in $(seq "$RUNS"); do
  rm -rf "$TMP/data"
  "$BUILD/hbforward" run -c "$TMP/fill.toml" <"$DATA" 2>"$TMP/fill.log" >/dev/null &
  FILL=$!
  written=0
  for _ in $(seq $(( LIMIT * 10 ))); do
    written=$(curl -s "http://127.0.0.1:$API/metrics" | awk '$1 ~ /^hbf_buffer_written_events_total\{/ {s += $2} END {printf "%d", s}')
    [ "$written" = "$EVENTS" ] && break
    sleep 0.1
  done
  kill -9 "$FILL"; wait "$FILL" 2>/dev/null || true
  [ "$written" = "$EVENTS" ] || { echo "fill wrote $written of $EVENTS events; log:" >&2; tail -5 "$TMP/fill.log" >&2; exit 1; }
  bytes=$(du -sm "$TMP/data/buffer/out" | cut -f1)
  read -r ds drss < <(timed drain /dev/null)
  grep -q "disk buffer .*: $EVENTS events (.*) from before the restart to send" "$TMP/drain.log" ||
    { echo "the drain did not find the $EVENTS events; log:" >&2; tail -5 "$TMP/drain.log" >&2; exit 1; }
  left=$(find "$TMP/data/buffer/out" -name '*.seg' -size +0 | wc -l)
  [ "$left" = 0 ] || { echo "the drain left $left segments; log:" >&2; tail -5 "$TMP/drain.log" >&2; exit 1; }
  read -r ms mrss < <(timed memory "$DATA")
  d=$(awk -v e="$EVENTS" -v s="$ds" 'BEGIN {printf "%.0f", e/s}')
  m=$(awk -v e="$EVENTS" -v s="$ms" 'BEGIN {printf "%.0f", e/s}')
  echo "$d" >>"$TMP/d"; echo "$m" >>"$TMP/m"
  echo "run $r: drain of $bytes MiB on disk: $d events/s (${ds}s, peak RSS $drss KiB); memory stdin -> null: $m events/s (${ms}s, peak RSS $mrss KiB)"
done
D=$(median <"$TMP/d"); M=$(median <"$TMP/m")
echo
echo "drain of a ${SIZE_MIB} MiB backlog, medians of $RUNS runs:"
printf "  disk buffer -> null (drain) : %9.0f events/s  ratio %.2f\n" "$D" "$(echo "$D $M" | awk '{print $1/$2}')"
printf "  stdin -> null (memory)      : %9.0f events/s\n" "$M"
