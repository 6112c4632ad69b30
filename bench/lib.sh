# Helpers the benchmark scripts share. Source it: . "$(dirname "$0")/lib.sh" (bench/*.sh) or
# . "$(dirname "$0")/../lib.sh" (bench/*/run.sh).

# A free TCP port on 127.0.0.1.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 10 s for a listener on 127.0.0.1:PORT; exits the script when none comes.
wait_port() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "port $1 never opened" >&2
  exit 1
}

# Process PID's peak RSS in KiB, its RSS now in MiB, and its CPU time (user + system) in clock ticks.
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The median of the numbers on stdin, one a line (of an even count, the mean of the middle two).
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# From hbforward's API on 127.0.0.1:PORT: the sum of every sample of metric NAME (all its
# labels), and the value of one sample written out whole (NAME{labels}).
metric_sum() { curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 ~ "^"n"\\{" {s += $2} END {printf "%d\n", s}'; }
metric_value() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

# The webhook pipeline of issue 15 as TOML: http on 127.0.0.1:PORT -> json -> enrich -> file OUT,
# with extra [service] lines (optional third argument).
webhook_toml() {
  cat <<TOML
[service]
log_level = "warn"
${3:-}
[inputs.healthbot]
type = "http"
address = "127.0.0.1:$1"
paths = ["/healthbot"]
[filters.parse]
type = "json"
inputs = ["healthbot"]
[filters.tag]
type = "enrich"
inputs = ["parse"]
fields = { collector = "bench" }
received_at_field = "received_at"
[outputs.out]
type = "file"
inputs = ["tag"]
path = "$2"
TOML
}
