#!/usr/bin/env bash
# Builds hbforward and runs every test: the Catch2 unit tests, then the end-to-end suite
# (pytest, running the real binary against real peers on loopback). Ends with "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
export PATH="/usr/bin:$PATH"   # Debian's python3 (python3-kafka, pytest), not another on PATH
if [ ! -f build/build.ninja ]; then
  meson setup build -Dwerror=true || { echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C build -j2 || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
mkdir -p build/test-results
rm -f build/test-results/*.xml
unit_rc=0
./build/tests/unit_tests -r junit -o build/test-results/unit.xml || unit_rc=$?
./build/tests/unit_tests -r compact 2>&1 | tail -3 || true
e2e_rc=0
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e --junitxml=build/test-results/e2e.xml "$@" || e2e_rc=$?
/usr/bin/python3 - <<'PY'
import glob, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for f in glob.glob("build/test-results/*.xml"):
    for tc in ET.parse(f).getroot().iter("testcase"):
        kinds = {c.tag for c in tc}
        if kinds & {"failure", "error"}:
            failed += 1
            print("FAILED:", f.split("/")[-1], tc.get("classname"), tc.get("name"))
        elif "skipped" in kinds:
            skipped += 1
        else:
            passed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
if [ "$unit_rc" -ne 0 ] || [ "$e2e_rc" -ne 0 ]; then exit 1; fi
