#!/usr/bin/env bash
# Runs each libFuzzer target of tests/fuzz/meson.build (or those named) for $FUZZ_SECONDS (30)
# from its seed corpus tests/fuzz/corpus/<name>/ plus seeds made from the repository's fixtures
# (tests/data/*.jsonl, conf/*.toml) by tests/fuzz/seeds.py. New inputs go to a scratch directory, not the
# repository; a crash, a leak, a timeout or a sanitizer report is saved to $FUZZ_OUT (build-fuzz/
# fuzz-out) and fails the run. Prints "PASS fuzz <name>" or "FAIL fuzz <name>" per target.
# FUZZ_JOBS=2 runs two targets at a time (default 1).
set -u
cd "$(dirname "$0")/../.."
dir=${FUZZ_BUILD:-build-fuzz}
secs=${FUZZ_SECONDS:-30}
out=${FUZZ_OUT:-$dir/fuzz-out}
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(sed -n "s/^ *'\([a-z0-9_]*\)' *: *'.*/\1/p" tests/fuzz/meson.build))
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
failed=0
rm -rf "$out/seeds"
/usr/bin/python3 tests/fuzz/seeds.py "$out/seeds" || { echo "FAIL fuzz seeds (tests/fuzz/seeds.py)"; failed=1; }
# One target: its report lines on stdout, "PASS fuzz <name>" or "FAIL fuzz <name>" last.
fuzz_one() {
  local n=$1 bin=$dir/tests/fuzz/fuzz_$1 start=$SECONDS dict=()
  mkdir -p "$out/$n/new" "$out/seeds/$n" tests/fuzz/corpus/"$n"
  if [ ! -x "$bin" ]; then echo "fuzz $n: $bin is not built (tests/fuzz/build.sh)"; echo "FAIL fuzz $n"; return; fi
  [ -f tests/fuzz/$n.dict ] && dict=(-dict=tests/fuzz/$n.dict)
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
       "${dict[@]}" -artifact_prefix="$out/$n/" "$out/$n/new" tests/fuzz/corpus/"$n" "$out/seeds/$n" >"$out/$n/log" 2>&1; then
    echo "fuzz $n: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$n/log" | grep -o '[0-9]*$') runs in $((SECONDS - start)) s, no crash"
    echo "PASS fuzz $n"
  else
    echo "fuzz $n: FAILED after $((SECONDS - start)) s; the input is in $out/$n/ (crash-*, leak-*, timeout-*):"
    grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==|#[0-9]+ ' "$out/$n/log" | head -30
    echo "FAIL fuzz $n"
  fi
}
# FUZZ_JOBS targets at a time (each is one process on one core): CI runs two on its two cores.
jobs=${FUZZ_JOBS:-1}
running=0
for n in "${names[@]}"; do
  mkdir -p "$out/$n"
  fuzz_one "$n" >"$out/$n/result" 2>&1 &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait
for n in "${names[@]}"; do
  cat "$out/$n/result"
  tail -1 "$out/$n/result" | grep -q '^PASS fuzz ' || failed=$((failed + 1))
done
exit $((failed > 0))
