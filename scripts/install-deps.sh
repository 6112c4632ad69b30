#!/usr/bin/env bash
# Debian 12 packages hbforward builds with, and the peers its tests run against.
set -eu
PKGS="g++ meson ninja-build pkg-config librdkafka-dev libsimdjson-dev libconcurrentqueue-dev libtomlplusplus-dev
libspdlog-dev libfmt-dev catch2 libbenchmark-dev libboost1.81-dev libcli11-dev libre2-dev zlib1g-dev libssl-dev
kcat openssl python3-kafka python3-pytest python3-prometheus-client curl wrk tmux libncurses-dev
libisal-dev python3-crc32c
libmsgpuck-dev python3-msgpack python3-fluent-logger
libcurl4-openssl-dev libzstd-dev zstd rsyslog bsdutils
clang-16 libfuzzer-16-dev
libsystemd-dev systemd debhelper dpkg-dev groff-base man-db logrotate
universal-ctags"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi
