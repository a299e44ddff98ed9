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
