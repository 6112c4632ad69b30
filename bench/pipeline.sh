#!/usr/bin/env bash
# End-to-end throughput of the core: 1,000,000 HealthBot notifications through
#   generate -> json -> enrich -> null     and     file -> json -> enrich -> file
# beside `cat FILE > OUT` in the same run as the ceiling. Prints the median of RUNS runs:
# events/s, MB/s, CPU seconds, peak RSS, and the ratio to cat.
# Usage: bench/pipeline.sh [RUNS]   (build first: ninja -C build)
# WORKERS=N puts `workers = N` on the json filter of both pipelines (enrich runs inline below it,
# on the same workers); unset, the config has no `workers` key, so binaries from before it run too.
# The outputs (cat's and hbforward's) go to OUT_DIR, /dev/shm by default: the file output fsyncs
# its file when it closes, as it must before the events count as delivered, and on this machine's
# disk that fsync of 341 MB took 0.6 s of a 1.5 s run, which cat (no fsync) never pays. On tmpfs
# both measure the CPU path. OUT_DIR=/some/disk/dir measures with the disk.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${1:-3}
N=1000000
HBF=${HBF:-$PWD/build/hbforward}  # HBF=/path/to/hbforward measures another binary
WORKERS_LINE=""
[ -n "${WORKERS:-}" ] && WORKERS_LINE="workers = $WORKERS"
W=$(mktemp -d /tmp/hbf-bench.XXXXXX)
OUT_DIR=${OUT_DIR:-/dev/shm}
[ -d "$OUT_DIR" ] && [ -w "$OUT_DIR" ] || OUT_DIR=$W
OUT=$(mktemp "$OUT_DIR/hbf-bench-out.XXXXXX")
trap 'rm -rf "$W" "$OUT"' EXIT
DATA=${HBF_BENCH_DATA:-/tmp/hbf-bench-healthbot-1m.ndjson}

if [ ! -s "$DATA" ]; then
  cat > "$W/make.toml" <<EOT
[inputs.gen]
type = "generate"
count = $N
seed = 42
devices = 2000
[outputs.out]
type = "file"
inputs = ["gen"]
path = "$DATA"
EOT
  "$HBF" run -c "$W/make.toml" 2>/dev/null
fi
BYTES=$(stat -c %s "$DATA")

cat > "$W/gen.toml" <<EOT
[inputs.gen]
type = "generate"
count = $N
seed = 42
devices = 2000
[filters.parse]
type = "json"
inputs = ["gen"]
$WORKERS_LINE
[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = { collector = "edge-01" }
received_at_field = "received_at"
[outputs.out]
type = "null"
inputs = ["tag"]
EOT
cat > "$W/file.toml" <<EOT
[inputs.f]
type = "file"
path = "$DATA"
[filters.parse]
type = "json"
inputs = ["f"]
$WORKERS_LINE
[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = { collector = "edge-01" }
received_at_field = "received_at"
[outputs.out]
type = "file"
inputs = ["tag"]
path = "$OUT"
EOT

# run NAME CMD...: appends "wall user sys maxrss_kb" to $W/NAME
run() {
  local name=$1; shift
  rm -f "$OUT"
  /usr/bin/time -f "%e %U %S %M" -o "$W/t" "$@" >/dev/null 2>"$W/err" || { cat "$W/err"; exit 1; }
  cat "$W/t" >> "$W/$name"
}
for i in $(seq "$RUNS"); do
  run cat sh -c "cat '$DATA' > '$OUT'"
  run file "$HBF" run -c "$W/file.toml"
  run gen "$HBF" run -c "$W/gen.toml"
done

printf "%d events, %.0f MB, median of %d runs, json workers: %s, output in %s\n" "$N" "$(echo "$BYTES/1000000" | bc -l)" "$RUNS" "${WORKERS:-1 (no key)}" "$OUT_DIR"
printf "%-34s %12s %9s %8s %9s %9s\n" pipeline events/s MB/s cpu_s rss_MB vs_cat
cat_wall=$(awk '{print $1}' "$W/cat" | median)
for name in cat file gen; do
  wall=$(awk '{print $1}' "$W/$name" | median)
  cpu=$(awk '{print $2+$3}' "$W/$name" | median)
  rss=$(awk '{print $4}' "$W/$name" | median)
  label=$name
  [ "$name" = cat ] && label="cat FILE > OUT (ceiling)"
  [ "$name" = file ] && label="file -> json -> enrich -> file"
  [ "$name" = gen ] && label="generate -> json -> enrich -> null"
  awk -v l="$label" -v n="$N" -v b="$BYTES" -v w="$wall" -v c="$cpu" -v r="$rss" -v cw="$cat_wall" \
    'BEGIN { printf "%-34s %12.0f %9.0f %8.2f %9.1f %9.2f\n", l, n/w, b/w/1e6, c, r/1024, cw/w }'
done
