#!/usr/bin/env bash
# Helpers shared by the benchmark scripts; sourced, not run. stop_server stops
# the process in $SERVER_PID.

# The one argument of every benchmark: the build directory (sets BUILD_DIR).
bench_build_dir() {
    if [ $# -ne 1 ]; then
        echo "usage: $0 BUILD_DIR" >&2
        exit 2
    fi
    BUILD_DIR=$1
}

die() {
    echo "bench: $*" >&2
    exit 1
}

# Stops the server started last: SIGTERM, then SIGKILL after 5 s.
stop_server() {
    local pid=$SERVER_PID
    [ -n "$pid" ] || return 0
    SERVER_PID=""
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "bench: warning: pid $pid ignored SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

# Free loopback TCP ports (the kernel picks them; all held until all are known).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# User + system clock ticks used so far by process PID.
proc_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# "347us", "4.54ms": a latency in µs for people.
human_us() {
    awk -v v="$1" 'BEGIN { if (v >= 1000) printf "%.2fms", v / 1000; else printf "%dus", v }'
}

# "BUSY TOTAL" jiffies so far of CPU N, or of all CPUs without an argument
# (busy: everything but idle and iowait).
cpu_ticks() {
    awk -v cpu="cpu${1:-}" '$1 == cpu { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

CLK_TCK=$(getconf CLK_TCK)

# Percentage that was busy between two cpu_ticks samples.
busy_pct() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
        d = y[2] - x[2]; printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }'
}

# Median of the numbers given as arguments (the lower middle for an even count).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
