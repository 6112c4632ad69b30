#!/usr/bin/env bash
# CI test of the Debian package: build the .deb, install it with apt-get, check its files, the
# hbforward user and the unit, validate the installed config, run the installed binary briefly as
# the hbforward user, reload it, stop it, then purge and check nothing is left.
# Prints PASS/FAIL lines and ends with "N passed, M failed" (.ci/run counts it); exits 1 on any failure.
# Needs root (apt-get); does not need systemd as PID 1.
# `--from-build DIR` packages the binary already built in DIR (see build.sh) instead of compiling
# it again; CI does this with tests/run_all.sh's build.
set -u
cd "$(dirname "$0")/../.."
from=()
if [ "${1:-}" = --from-build ]; then from=(--from-build "$(realpath "$2")"); fi
pass=0 fail=0 skip=0
log=$(mktemp /tmp/hbforward-pkg-test.XXXXXX)
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
# check "what" command...: PASS when the command succeeds, else FAIL with its output.
check() {
    local what=$1; shift
    if "$@" >"$log" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/    /' "$log" | tail -20; fi
}
finish() {
    echo "package tests (tests/package/run.sh):"
    echo "$pass passed, $fail failed$([ "$skip" -gt 0 ] && echo ", $skip skipped")"
    rm -f "$log"
    [ "$fail" -eq 0 ]
    exit
}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else bad "needs root or password-less sudo (apt-get install)"; finish; fi
fi
export DEBIAN_FRONTEND=noninteractive

# A package left by an earlier run would hide what this one installs.
$SUDO apt-get purge -y -qq hbforward >/dev/null 2>&1 || true

debdir=$(mktemp -d /tmp/hbforward-pkg-deb.XXXXXX)
how="dpkg-buildpackage${from[*]:+ (binary from ${from[1]})}"
if bash tests/package/build.sh "${from[@]}" "$debdir" >"$log" 2>&1; then ok "$how built $(basename "$debdir"/hbforward_*.deb)"
else bad "$how"; tail -40 "$log" | sed 's/^/    /'; finish; fi
deb=$(ls "$debdir"/hbforward_*.deb)

check "apt-get install ./$(basename "$deb")" bash -c "cd '$debdir' && $SUDO apt-get install -y -qq ./$(basename "$deb")"
check "Depends names the libraries it links (librdkafka1, libre2-9, libsystemd0)" \
    bash -c "dpkg-query -W -f='\${Depends}' hbforward | grep -q librdkafka1 && dpkg-query -W -f='\${Depends}' hbforward | grep -q libre2-9 && dpkg-query -W -f='\${Depends}' hbforward | grep -q libsystemd0"
for f in /usr/bin/hbforward /etc/hbforward/hbforward.toml /lib/systemd/system/hbforward.service /etc/logrotate.d/hbforward \
         /usr/share/man/man1/hbforward.1.gz; do
    check "installed $f" test -s "$f"
done
check "/etc/hbforward/hbforward.toml is a conffile" bash -c "dpkg-query --control-show hbforward conffiles | grep -qx ' */etc/hbforward/hbforward.toml'"
check "the man page renders and documents the stages" bash -c "zcat /usr/share/man/man1/hbforward.1.gz | groff -man -Tutf8 -ww -z && MANPAGER=cat man -l /usr/share/man/man1/hbforward.1.gz 2>/dev/null | grep -q 'input http'"
check "system user hbforward (no login shell, home /var/lib/hbforward)" \
    bash -c "getent passwd hbforward | awk -F: '\$3 < 1000 && \$6 == \"/var/lib/hbforward\" && \$7 ~ /nologin|false/ {ok=1} END {exit !ok}'"
check "/var/lib/hbforward and /var/log/hbforward belong to hbforward" \
    bash -c "[ \"\$(stat -c %U /var/lib/hbforward)\" = hbforward ] && [ \"\$(stat -c %U /var/log/hbforward)\" = hbforward ]"
check "the installed config says data_dir = /var/lib/hbforward" grep -q '^data_dir = "/var/lib/hbforward"' /etc/hbforward/hbforward.toml
check "logrotate accepts the snippet" bash -c "! command -v logrotate >/dev/null || logrotate -d /etc/logrotate.d/hbforward"

# systemd-analyze verify: only where it works at all in this container (a trivial unit passes).
probe=$(mktemp -d)/probe.service
printf '[Service]\nExecStart=/bin/true\n' >"$probe"
if command -v systemd-analyze >/dev/null && systemd-analyze verify "$probe" >/dev/null 2>&1; then
    check "systemd-analyze verify hbforward.service" bash -c \
        "out=\$(systemd-analyze verify /lib/systemd/system/hbforward.service 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
    check "systemd-analyze security: exposure at most 2.0 (of 10)" bash -c \
        "systemd-analyze security --offline=true /lib/systemd/system/hbforward.service | tail -1; e=\$(systemd-analyze security --offline=true /lib/systemd/system/hbforward.service | sed -n 's/.*Overall exposure level for [^:]*: \\([0-9.]*\\).*/\\1/p'); [ -n \"\$e\" ] && awk -v e=\"\$e\" 'BEGIN {exit !(e <= 2.0)}'"
else
    echo "SKIP: systemd-analyze verify does not work in this environment"; skip=$((skip + 1))
fi
rm -rf "$(dirname "$probe")"
check "unit: Type=notify, ExecReload sends SIGHUP, StateDirectory, hardening" bash -c \
    "u=/lib/systemd/system/hbforward.service; grep -qx 'Type=notify' \$u && grep -qx 'ExecReload=/bin/kill -HUP \$MAINPID' \$u && grep -qx 'StateDirectory=hbforward' \$u && grep -qx 'ProtectSystem=strict' \$u && grep -qx 'NoNewPrivileges=yes' \$u && grep -qx 'CapabilityBoundingSet=' \$u && grep -qx 'User=hbforward' \$u"

check "hbforward validate on the installed config, as hbforward" runuser -u hbforward -- /usr/bin/hbforward validate -c /etc/hbforward/hbforward.toml

# Run the installed config as the hbforward user, its two ports moved to free ones.
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
web=$(freeport); api=$(freeport)
cfg=$(mktemp /tmp/hbforward-pkg-conf.XXXXXX.toml)
sed -e "s/127.0.0.1:8080/127.0.0.1:$web/" -e "s/127.0.0.1:2020/127.0.0.1:$api/" /etc/hbforward/hbforward.toml >"$cfg"
chmod 644 "$cfg"
runlog=$(mktemp /tmp/hbforward-pkg-run.XXXXXX)
( cd /var/lib/hbforward && exec runuser -u hbforward -- /usr/bin/hbforward run -c "$cfg" ) >"$runlog" 2>&1 &
pid=$!
up=0
for _ in $(seq 100); do
    if curl -fsS "http://127.0.0.1:$api/health" >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
done
if [ "$up" = 1 ]; then ok "the installed binary runs the installed config as hbforward (/health answers 200)"
else bad "the installed binary did not come up"; sed 's/^/    /' "$runlog" | tail -20; fi
hpid=$(pgrep -P "$pid" -x hbforward || echo "$pid")
check "it runs as user hbforward" bash -c "[ \"\$(ps -o user= -p $hpid)\" = hbforward ]"
check "a webhook POST lands in /var/log/hbforward/healthbot.ndjson" bash -c \
    "curl -fsS -d '{\"device-id\":\"pkg-test-mx1\",\"severity\":\"major\"}' http://127.0.0.1:$web/healthbot && for i in \$(seq 50); do grep -q pkg-test-mx1 /var/log/hbforward/healthbot.ndjson 2>/dev/null && exit 0; sleep 0.1; done; exit 1"
if command -v logrotate >/dev/null; then
    # logrotate with the packaged snippet while it runs: the next event lands in the fresh file.
    check "logrotate -f rotates healthbot.ndjson and the next event lands in the new file" bash -c \
        "logrotate -f -s /tmp/hbforward-pkg-logrotate.state /etc/logrotate.d/hbforward && grep -q pkg-test-mx1 /var/log/hbforward/healthbot.ndjson.1 && curl -fsS -d '{\"device-id\":\"pkg-test-mx2\"}' http://127.0.0.1:$web/healthbot && for i in \$(seq 50); do grep -q pkg-test-mx2 /var/log/hbforward/healthbot.ndjson && ! grep -q pkg-test-mx2 /var/log/hbforward/healthbot.ndjson.1 && ! grep -q pkg-test-mx1 /var/log/hbforward/healthbot.ndjson && exit 0; sleep 0.1; done; ls -la /var/log/hbforward; exit 1"
    rm -f /tmp/hbforward-pkg-logrotate.state
else
    echo "SKIP: logrotate is not installed"; skip=$((skip + 1))
fi
kill -HUP "$hpid" 2>/dev/null
check "SIGHUP reloads" bash -c "for i in \$(seq 50); do grep -q 'reloaded' '$runlog' && exit 0; sleep 0.1; done; cat '$runlog'; exit 1"
kill -TERM "$hpid" 2>/dev/null
rc=0
for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then kill -KILL "$hpid" 2>/dev/null; bad "SIGTERM did not stop it within 15 s"; else
    wait "$pid"; rc=$?
    if [ "$rc" = 0 ]; then ok "SIGTERM drains and exits 0"; else bad "SIGTERM: exit code $rc"; sed 's/^/    /' "$runlog" | tail -20; fi
fi
rm -f "$cfg" "$runlog"

check "apt-get purge hbforward" $SUDO apt-get purge -y -qq hbforward
check "purge left nothing behind (binary, /etc/hbforward, /var/lib/hbforward, /var/log/hbforward, user)" bash -c \
    "! dpkg -s hbforward >/dev/null 2>&1 && [ ! -e /usr/bin/hbforward ] && [ ! -e /etc/hbforward ] && [ ! -e /var/lib/hbforward ] && [ ! -e /var/log/hbforward ] && [ ! -e /lib/systemd/system/hbforward.service ] && ! getent passwd hbforward >/dev/null"
rm -rf "$debdir"
finish
