#!/usr/bin/env bash
# Builds the libFuzzer targets listed in tests/fuzz/meson.build with clang-16, AddressSanitizer and
# UndefinedBehaviorSanitizer, in build-fuzz/ (or $FUZZ_BUILD). Extra arguments are more ninja
# targets to build in the same directory (.ci/run adds hbforward and tests/unit_tests).
set -eu
cd "$(dirname "$0")/../.."
dir=${FUZZ_BUILD:-build-fuzz}
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang-16 CXX=clang++-16 meson setup "$dir" -Dfuzz=true -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false
fi
targets=$(sed -n "s/^ *'\([a-z0-9_]*\)' *: *'.*/tests\/fuzz\/fuzz_\1/p" tests/fuzz/meson.build)
ninja -C "$dir" -j2 $targets "$@"
