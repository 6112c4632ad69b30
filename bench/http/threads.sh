#!/usr/bin/env bash
# What each thread and each system call costs per webhook request, beside the bare responder in the
# same run: the figures behind bench/README.md's tenth and eleventh rounds.
#   1. wrk -t1 -c32 against each server for DURATION s; per thread, from /proc/PID/task/*: CPU time
#      (user + system) and voluntary / involuntary context switches per request.
#   2. the same load under `perf stat -e syscalls:sys_enter_*`: system calls per request.
# The pipeline is bench/http/run.sh's: http -> json -> enrich -> file, ack = "accepted".
# Usage: bench/http/threads.sh [BUILD_DIR]   (a directory holding hbforward and
#        bench/http_bare_responder, e.g. a saved "before" binary, is used as it is)
#   env: DURATION=5, SERVICE='linger = "250us"' (extra [service] lines), SYSCALLS=0 skips part 2.
# Needs wrk and, for part 2, perf (Debian: linux-perf) with tracepoints readable (run as root).
set -eu
cd "$(dirname "$0")/../.."
. bench/lib.sh
BUILD=${1:-build}
DURATION=${DURATION:-5}
if [ -f "$BUILD/build.ninja" ]; then ninja -C "$BUILD" -j2 hbforward bench/http_bare_responder >/dev/null; fi
TMP=$(mktemp -d)
PIDS=""
trap 'kill $PIDS 2>/dev/null || true; wait 2>/dev/null; rm -rf "$TMP"' EXIT

BARE_PORT=$(free_port)
HBF_PORT=$(free_port)
"$BUILD/bench/http_bare_responder" "$BARE_PORT" &
BARE_PID=$!; PIDS="$PIDS $BARE_PID"
webhook_toml "$HBF_PORT" "$TMP/out.ndjson" "${SERVICE:-}" >"$TMP/hbf.toml"
"$BUILD/hbforward" run -c "$TMP/hbf.toml" 2>"$TMP/hbf.log" &
HBF_PID=$!; PIDS="$PIDS $HBF_PID"
wait_port "$BARE_PORT"
wait_port "$HBF_PORT"

# One line per thread: name, voluntary and involuntary switches, CPU ticks.
threads() {
  for t in /proc/"$1"/task/*; do
    printf '%s %s %s\n' "$(tr ' ' '_' <"$t/comm")" \
      "$(awk '/^voluntary_ctxt/ {v = $2} /^nonvoluntary_ctxt/ {n = $2} END {print v, n}' "$t/status")" \
      "$(awk '{print $14 + $15}' "$t/stat")"
  done
}
load() { wrk -t1 -c32 -d"${DURATION}s" -s bench/http/post.lua "http://127.0.0.1:$1/healthbot" | awk '/^RESULT/ {print $2}'; }

HZ=$(getconf CLK_TCK)
echo "per thread, per request (wrk -t1 -c32 -d${DURATION}s):"
for who in "bare $BARE_PORT $BARE_PID" "hbforward $HBF_PORT $HBF_PID"; do
  set -- $who
  threads "$3" >"$TMP/a"
  n=$(load "$2")
  threads "$3" >"$TMP/b"
  echo "  $1: $n requests"
  # Threads are matched by line: none start or stop during the load.
  paste "$TMP/a" "$TMP/b" | awk -v n="$n" -v hz="$HZ" '{
      cpu = ($8 - $4) * 1e6 / hz / n; total += cpu
      if ($6 - $2 + $7 - $3 > 0 || cpu > 0)
        printf "    %-16s %6.2f us CPU  %.4f voluntary  %.4f involuntary switches\n", $1, cpu, ($6 - $2) / n, ($7 - $3) / n
    } END { printf "    %-16s %6.2f us CPU\n", "total", total }'
done

[ "${SYSCALLS:-1}" = 0 ] && exit 0
EVENTS=""
for s in read write recvfrom sendto epoll_wait epoll_ctl futex clock_nanosleep writev; do EVENTS="$EVENTS,syscalls:sys_enter_$s"; done
echo "system calls per request (perf stat, wrk -t1 -c32 -d${DURATION}s):"
for who in "bare $BARE_PORT $BARE_PID" "hbforward $HBF_PORT $HBF_PID"; do
  set -- $who
  if ! perf stat -x, -e "${EVENTS#,}" -p "$3" -o "$TMP/stat" -- \
      wrk -t1 -c32 -d"${DURATION}s" -s bench/http/post.lua "http://127.0.0.1:$2/healthbot" >"$TMP/wrk" 2>"$TMP/perf.err"; then
    echo "  perf stat failed: $(head -1 "$TMP/perf.err")"
    exit 0
  fi
  n=$(awk '/^RESULT/ {print $2}' "$TMP/wrk")
  echo "  $1: $n requests"
  awk -F, -v n="$n" '$1 ~ /^[0-9]+$/ && $1 > 0 {sub("syscalls:sys_enter_", "", $3); printf "    %-16s %.3f\n", $3, $1 / n}' "$TMP/stat"
done
