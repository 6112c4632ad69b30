#!/usr/bin/env bash
# Soak: the webhook (http -> json -> enrich -> file) at half its maximum rate for MINUTES, with a
# hot reload every RELOAD_EVERY seconds (the enrich stage's options change, so each reload
# replaces it and the old version drains beside the new one). Prints RSS each minute and, at the
# end, the events lost (answered 200, never written) and duplicated.
# The maximum rate is measured first, in the same run, with wrk (as bench/http/run.sh does);
# the soak load (load.py: one notification per request, each with a unique seq) then runs at half.
# With RELOADS=N it ends after N reloads instead (MINUTES is then only a bound), and
# RELOAD_EVERY may be a fraction of a second: RELOADS=1000 RELOAD_EVERY=0.2 RATE=1000.
# Usage: bench/soak/run.sh [BUILD_DIR]
#   env: MINUTES=10 RELOAD_EVERY=10 RELOADS= RATE=<req/s, default half the measured maximum> KEEP=1 (keep the temp dir)
set -eu
cd "$(dirname "$0")/../.."
. bench/lib.sh
BUILD=${1:-build}
MINUTES=${MINUTES:-10}
RELOAD_EVERY=${RELOAD_EVERY:-10}
RELOADS=${RELOADS:-0}
[ -n "${NO_BUILD:-}" ] || ninja -C "$BUILD" -j2 hbforward >/dev/null
TMP=$(mktemp -d)
PIDS=""
trap 'kill $PIDS 2>/dev/null || true; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$TMP"' EXIT


PORT=$(free_port)
API=$(free_port)
config() {
  cat >"$TMP/soak.toml.new" <<TOML
[service]
log_level = "warn"
api_address = "127.0.0.1:$API"

[inputs.healthbot]
type = "http"
address = "127.0.0.1:$PORT"
paths = ["/healthbot"]

[filters.parse]
type = "json"
inputs = ["healthbot"]

[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = { collector = "soak", generation = $1 }

[outputs.out]
type = "file"
inputs = ["tag"]
path = "$TMP/out-%H%M.ndjson"
TOML
  mv "$TMP/soak.toml.new" "$TMP/soak.toml"
}
config 0
"$BUILD/hbforward" run -c "$TMP/soak.toml" 2>"$TMP/hbf.log" &
HBF=$!; PIDS="$PIDS $HBF"
wait_port "$PORT"
RSS_START=$(rss_mib $HBF)
echo "start: RSS $RSS_START MiB"

if [ -z "${RATE:-}" ]; then
  MAX=$(wrk -t1 -c32 -d5s -s bench/http/post.lua "http://127.0.0.1:$PORT/healthbot" | awk '/^RESULT/ {printf "%.0f", $2 / $3}')
  RATE=$((MAX / 2))
  echo "maximum: $MAX req/s (wrk -t1 -c32, 5 s); soaking at $RATE req/s"
fi
# (the wrk run's events stay in the output: they carry no seq, the count skips them)

SECONDS_TOTAL=$((MINUTES * 60))
/usr/bin/python3 bench/soak/load.py "$PORT" "$RATE" "$SECONDS_TOTAL" "$TMP/acked" >"$TMP/load.json" &
LOAD=$!; PIDS="$PIDS $LOAD"

# Folds finished per-minute output files (older than the previous minute) into the count.
fold_old() {
  local keep1 keep2 f old=()
  keep1="$TMP/out-$(date -u +%H%M).ndjson"
  keep2="$TMP/out-$(date -u -d '1 minute ago' +%H%M).ndjson"
  for f in "$TMP"/out-*.ndjson; do
    [ -e "$f" ] && [ "$f" != "$keep1" ] && [ "$f" != "$keep2" ] && old+=("$f")
  done
  [ ${#old[@]} -eq 0 ] || /usr/bin/python3 bench/soak/count.py "$TMP/count" add "${old[@]}"
}

gen=0
failed=0
RSS_FIRST=""
T0=$SECONDS
next_minute=60
while :; do
  sleep "$RELOAD_EVERY"
  kill -0 "$HBF" 2>/dev/null || { echo "hbforward died:"; tail -20 "$TMP/hbf.log"; exit 1; }
  elapsed=$((SECONDS - T0))
  [ "$elapsed" -lt "$SECONDS_TOTAL" ] || break
  gen=$((gen + 1))
  config "$gen"
  curl -s -X POST "http://127.0.0.1:$API/reload" | grep -q '"reloaded":true' || { echo "reload $gen failed"; failed=$((failed + 1)); }
  if [ "$elapsed" -ge "$next_minute" ]; then
    rss=$(rss_mib $HBF)
    [ -n "$RSS_FIRST" ] || RSS_FIRST=$rss
    echo "minute $((elapsed / 60)): RSS $rss MiB, $gen reloads, $(metric_value "$API" 'hbf_events_out_total{stage="out",type="file"}') events written"
    fold_old
    next_minute=$((next_minute + 60))
  fi
  [ "$RELOADS" -eq 0 ] || [ "$gen" -lt "$RELOADS" ] || break
done
sleep 1
kill -TERM "$LOAD" 2>/dev/null || true  # RELOADS reached before MINUTES: the load ends now
wait "$LOAD"
LOADED=$(cat "$TMP/load.json")
RSS_END=$(rss_mib $HBF)
kill -TERM "$HBF"
wait "$HBF" && RC=0 || RC=$?
/usr/bin/python3 bench/soak/count.py "$TMP/count" add "$TMP"/out-*.ndjson
echo "load: $LOADED"
echo "hbforward exit code $RC; reloads: $gen ($failed failed); RSS at the start $RSS_START MiB, after the first minute ${RSS_FIRST:-?} MiB, at the end $RSS_END MiB"
echo "events: $(/usr/bin/python3 bench/soak/count.py "$TMP/count" report "$TMP/acked")"
grep -E "error|\[warn" "$TMP/hbf.log" | grep -v "reload:" | tail -5 || true
