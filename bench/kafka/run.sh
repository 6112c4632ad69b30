#!/usr/bin/env bash
# Kafka output throughput: 1,000,000 HealthBot notifications (~450 MB NDJSON) through
# file -> json -> enrich -> kafka into the dev broker, against `kcat -P -l FILE` producing the
# same file to the same broker in the same run. Prints each run, the medians and the ratio.
#
#   bash bench/kafka/run.sh [RUNS=3] [EVENTS=1000000]
# Both clients produce the same way into the same standalone `hbforward dev-broker`: the same
# compression codec, COMPRESSION=lz4 by default (hbforward's default), or COMPRESSION=none.
# Needs a built ./build/hbforward and /usr/bin/kcat. Extra librdkafka settings for hbforward can
# be tried with HBF_KAFKA_EXTRA='"linger.ms" = "20"' (lines for [outputs.k.librdkafka]).
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
RUNS=${1:-3}
COMPRESSION=${COMPRESSION:-lz4}
EVENTS=${2:-1000000}
HBF=${HBF:-$PWD/build/hbforward}  # HBF=/path/to/hbforward measures another binary
WORK=$PWD/build/bench-kafka
DATA=$WORK/notifications-$EVENTS.ndjson
mkdir -p "$WORK"
cd "$WORK"

if [ ! -s "$DATA" ]; then
  echo "generating $EVENTS notifications into $DATA ..."
  cat > gen.toml <<EOT
[inputs.gen]
type = "generate"
count = $EVENTS
seed = 7
[outputs.f]
type = "file"
inputs = ["gen"]
path = "$DATA"
EOT
  "$HBF" run -c gen.toml --log-level warn
fi
BYTES=$(stat -c %s "$DATA")
LINES=$(wc -l < "$DATA")
echo "input: $LINES events, $BYTES bytes; compression $COMPRESSION for both"

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$HBF" dev-broker --port "$PORT" > broker.out 2> broker.log &
BROKER_PID=$!
trap 'kill $BROKER_PID 2>/dev/null; wait $BROKER_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^bootstrap' broker.out 2>/dev/null && break; sleep 0.1; done
B=127.0.0.1:$PORT

# Sum of the topic's end offsets: what the broker accepted (the mock keeps only recent data).
count() {
  local t=$1 n=0
  for p in 0 1 2 3; do
    o=$(kcat -b "$B" -Q -t "$t:$p:-1" 2>/dev/null | awk '{print $NF}')
    n=$((n + ${o:-0}))
  done
  echo $n
}
now() { date +%s.%N; }

declare -a KCAT_T HBF_T
for r in $(seq "$RUNS"); do
  t=kcat-$r
  s=$(now); kcat -b "$B" -P -t "$t" -X compression.codec="$COMPRESSION" -l "$DATA"; e=$(now)
  n=$(count "$t")
  KCAT_T+=("$(echo "$e - $s" | bc)")
  printf 'run %d kcat:      %8.3f s  %8.0f events/s  %7.1f MB/s  (%d on the topic)\n' "$r" "${KCAT_T[-1]}" \
    "$(echo "$LINES / ${KCAT_T[-1]}" | bc -l)" "$(echo "$BYTES / ${KCAT_T[-1]} / 1000000" | bc -l)" "$n"

  t=hbf-$r
  cat > pipe.toml <<EOT
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
brokers = "$B"
topic = "$t"
compression = "$COMPRESSION"
[outputs.k.librdkafka]
${HBF_KAFKA_EXTRA:-}
EOT
  s=$(now); "$HBF" run -c pipe.toml; e=$(now)
  n=$(count "$t")
  HBF_T+=("$(echo "$e - $s" | bc)")
  printf 'run %d hbforward: %8.3f s  %8.0f events/s  %7.1f MB/s  (%d on the topic)\n' "$r" "${HBF_T[-1]}" \
    "$(echo "$LINES / ${HBF_T[-1]}" | bc -l)" "$(echo "$BYTES / ${HBF_T[-1]} / 1000000" | bc -l)" "$n"
done

KM=$(printf '%s\n' "${KCAT_T[@]}" | median)
HM=$(printf '%s\n' "${HBF_T[@]}" | median)
printf 'median kcat -P:    %.3f s  %.0f events/s  %.1f MB/s\n' "$KM" "$(echo "$LINES / $KM" | bc -l)" "$(echo "$BYTES / $KM / 1000000" | bc -l)"
printf 'median hbforward:  %.3f s  %.0f events/s  %.1f MB/s\n' "$HM" "$(echo "$LINES / $HM" | bc -l)" "$(echo "$BYTES / $HM / 1000000" | bc -l)"
printf 'ratio hbforward/kcat: %.2f\n' "$(echo "$KM / $HM" | bc -l)"
