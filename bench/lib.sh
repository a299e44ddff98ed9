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

# The helpers below use the caller's TMP, SKDNS and associative arrays PIDS
# (name -> pid), DNS_PORT, KV_PORT and PSK.

# Waits until NAME (PIDS[NAME], log LOG) passes the check "$@", or fails.
wait_until() {
    local name=$1 log=$2
    shift 2
    for _ in $(seq 150); do
        kill -0 "${PIDS[$name]}" 2>/dev/null || {
            tail -n 20 "$log" >&2
            unset "PIDS[$name]"
            die "$name exited during start-up; its log ($log) is above"
        }
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -n 20 "$log" >&2
    die "$name did not come up within 15 s; its log ($log) is above"
}

# Whether the DNS server on loopback port $1 answers the zone's SOA.
dns_up() { kdig @127.0.0.1 -p "$1" +norec +timeout=1 +retry=0 SOA sk.test. | grep -q 'status: NOERROR'; }

# A fresh kvpsync key file TMP/NAME.psk (mode 0600); prints its path.
make_psk() {
    local f=$TMP/$1.psk
    (
        umask 077
        od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$f"
        echo >>"$f"
    )
    echo "$f"
}

# skdns NAME: DNS on a free port (DNS_PORT[NAME]), kvpsync on another
# (KV_PORT[NAME]), sender 1 with key file PSK[NAME].
start_skdns() {
    local name=$1 ports psk
    read -r -a ports <<<"$(free_ports 2)"
    psk=$(make_psk "$name")
    DNS_PORT[$name]=${ports[0]}
    KV_PORT[$name]=${ports[1]}
    PSK[$name]=$psk
    cat >"$TMP/$name.conf" <<EOF
[dns]
listen = 127.0.0.1:${ports[0]}
zone = sk.test.
ns = ns1.sk.test. 127.0.0.1
caa_issue = pebble.test
rate_limit = 0
[kvpsync]
listen = 127.0.0.1:${ports[1]}
sender = 1 $psk
[log]
level = warn
EOF
    "$SKDNS" -c "$TMP/$name.conf" 2>"$TMP/$name.log" &
    PIDS[$name]=$!
    wait_until "$name" "$TMP/$name.log" dns_up "${ports[0]}"
}

# The end of every script's cleanup: removes the given temporary directories
# (kept with BENCH_KEEP=1), then exits with status RC. finish RC DIR...
finish() {
    local rc=$1 dir
    shift
    for dir in "$@"; do
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            echo "bench: kept $dir" >&2
        else
            rm -rf "$dir"
        fi
    done
    exit "$rc"
}

# Runs the script's cleanup function on exit, also after Ctrl-C (130) or TERM (143).
trap_cleanup() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
