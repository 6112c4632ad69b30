#!/usr/bin/env bash
# Builds the Debian package from this tree: `bash tests/package/build.sh [OUTDIR]` leaves
# hbforward_<version>_<arch>.deb in OUTDIR (default build/deb). dpkg-buildpackage runs in a copy of
# the tree (tracked and untracked files, not build directories), so nothing lands beside the
# repository. Needs the Build-Depends of debian/control (scripts/install-deps.sh installs them).
#
# `--from-build DIR` (what CI does, to avoid a second full compile): package the binary already
# built in the meson build directory DIR instead of compiling it again. Everything else is what
# debian/ ships: dpkg-buildpackage -b checks the Build-Depends, then debian/rules binary runs the
# whole dh install sequence (dh_auto_install = ninja install from DIR, the systemd unit, logrotate,
# the maintainer scripts, shlibs Depends, conffiles, dh_builddeb). Only the compile differs: DIR's
# flags (for tests/run_all.sh: -O2 -march=haswell, tests on) instead of debian/rules' (dpkg-buildflags
# hardening, -Dcpu_baseline=, -Dtests=false). DIR's install paths are set to Debian's (/usr, /etc,
# /var), which recompiles nothing.
set -eu
cd "$(dirname "$0")/../.."
from=""
if [ "${1:-}" = --from-build ]; then
    from=$(realpath "$2"); shift 2
    [ -f "$from/build.ninja" ] || { echo "--from-build: $from is not a meson build directory" >&2; exit 1; }
fi
out=$(realpath -m "${1:-build/deb}")
version=$(dpkg-parsechangelog -S Version)
work=$(mktemp -d /tmp/hbforward-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src="$work/hbforward-$version"
mkdir -p "$src" "$out"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | grep -zv '^build' | xargs -0 cp --parents -t "$src"
else  # a copy of the tree without .git (CI)
    tar --exclude='./build*' --exclude='./obj-*' --exclude='./debian/.debhelper' -cf - . | tar -xf - -C "$src"
fi
pre=()
if [ -n "$from" ]; then
    # The options dh_auto_configure passes (Debian::Debhelper::Buildsystem::meson), then dh's
    # build directory pointing at DIR, and the build marked done (debian/debhelper-build-stamp):
    # dh skips dh_auto_configure, dh_auto_build and dh_auto_test. -nc: no clean, which would wipe DIR.
    meson configure "$from" -Dprefix=/usr -Dsysconfdir=/etc -Dlocalstatedir=/var \
        -Dlibdir="lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)" >/dev/null
    ln -s "$from" "$src/obj-$(dpkg-architecture -qDEB_HOST_GNU_TYPE)"
    echo hbforward >"$src/debian/debhelper-build-stamp"
    pre=(-nc)
fi
( cd "$src" && DEB_BUILD_OPTIONS="parallel=2 ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b "${pre[@]}" )
rm -f "$out"/hbforward_*.deb
cp "$work"/hbforward_*.deb "$out"/
ls "$out"/hbforward_*.deb
