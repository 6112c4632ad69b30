#!/usr/bin/env bash
# Builds the Debian package from this tree: `bash tests/package/build.sh [OUTDIR]` leaves
# hbforward_<version>_<arch>.deb in OUTDIR (default build/deb). dpkg-buildpackage runs in a copy of
# the tree (tracked and untracked files, not build directories), so nothing lands beside the
# repository. Needs the Build-Depends of debian/control (scripts/install-deps.sh installs them).
set -eu
cd "$(dirname "$0")/../.."
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
( cd "$src" && DEB_BUILD_OPTIONS="parallel=2 ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b )
rm -f "$out"/hbforward_*.deb
cp "$work"/hbforward_*.deb "$out"/
ls "$out"/hbforward_*.deb
