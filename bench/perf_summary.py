#!/usr/bin/env python3
"""Sums a `perf record` profile's self time into what it is spent on, as a markdown table of
share and nanoseconds of CPU per event: perf_summary.py PERF_DATA CPU_NS_PER_EVENT.
Used by bench/profile.sh; the categories are regular expressions on "dso [k|.] symbol", first match wins."""
import collections
import re
import subprocess
import sys

data, cpu_ns = sys.argv[1], float(sys.argv[2])
out = subprocess.run(["perf","report","-i",data,"--no-children","--sort","dso,sym","-g","none","--stdio","--percent-limit","0"],capture_output=True,text=True).stdout
rules = [
 ("simdjson validation (stage1, strings, walk)", r"simdjson|walk|check_object|check_one"),
 ("compaction (append_compact + its memchr)", r"append_compact|memchr"),
 ("enrich (splice, memmem)", r"Enrich|memmem|MemberSplice|rfc3339"),
 ("HTTP parse (beast)", r"beast|RequestParser|basic_parser"),
 ("copies (memmove/memcpy)", r"memmove|memcpy"),
 ("malloc/free", r"malloc|_int_free|cfree|unlink_chunk|operator new|operator delete|tcache"),
 ("queue wait/spin (moodycamel, futex)", r"moodycamel|Semaphore|futex"),
 ("clock reads", r"clock_gettime|gettimeofday|read_tsc"),
 ("librdkafka", r"librdkafka|rd_kafka"),
 ("kernel: copy to/from user space", r"\[k\].*(_copy_to_iter|_copy_from_iter|copy_user|copy_folio_from_iter|_copy_from_user)"),
 ("kernel: network (tcp, loopback, sockets, epoll)", r"\[k\].*(tcp|inet|sock|skb|net_|dev_|ip_|__dev|loopback|epoll|bbr|raw_spin|recv|send|ep_|_copy_to_iter|_copy_from_iter|copy_user|fdget|__sys|do_syscall|syscall|entry_SYSCALL|poll)"),
 ("kernel: file I/O (page cache)", r"\[k\].*(folio|filemap|ext4|mpage|page|_copy_to_iter|iov|generic_perform|vfs|slab)"),
 ("kernel: scheduler, other", r"\[k\]"),
 ("fmt (reply formatting)", r"fmt::"),
 ("other user code (asio event loop, libc syscall wrappers, ...)", r"."),
]
tot = collections.OrderedDict((n,0.0) for n,_ in rules)
for line in out.splitlines():
    m = re.match(r"\s+([0-9.]+)%\s+(\S+)\s+(\[.\])\s+(.*)", line)
    if not m: continue
    pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4)
    s = f"{dso} {kind} {sym}"
    for n, r in rules:
        if re.search(r, s): tot[n] += pct; break
print("| where | share | ns/event |")
print("|---|---:|---:|")
for n, p in sorted(tot.items(), key=lambda x:-x[1]):
    if p >= 0.5: print(f"| {n} | {p:.0f}% | {p/100*cpu_ns:.0f} |")
