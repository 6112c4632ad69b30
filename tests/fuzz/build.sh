#!/usr/bin/env bash
# Builds the libFuzzer targets listed in tests/fuzz/meson.build with clang-16, AddressSanitizer and
# UndefinedBehaviorSanitizer, in build-fuzz/ (or $FUZZ_BUILD). Extra arguments are more ninja
# targets to build in the same directory (.ci/run adds hbforward and tests/unit_tests).
set -eu
cd "$(dirname "$0")/../.."
dir=${FUZZ_BUILD:-build-fuzz}
# -O1 and line tables only: what OSS-Fuzz uses; compiles far faster than -O2 -g, and reports
# still name file and line.
cc=clang-16 cxx=clang++-16
if command -v ccache >/dev/null; then cc="ccache $cc" cxx="ccache $cxx"; fi
if [ ! -f "$dir/build.ninja" ]; then
  CC=$cc CXX=$cxx meson setup "$dir" -Dfuzz=true -Dbuildtype=plain -Dcpp_args="-O1 -gline-tables-only" \
    -Db_sanitize=address,undefined -Db_lundef=false
fi
targets=$(sed -n "s/^ *'\([a-z0-9_]*\)' *: *'.*/tests\/fuzz\/fuzz_\1/p" tests/fuzz/meson.build)
ninja -C "$dir" -j2 $targets "$@"
