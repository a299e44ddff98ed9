#!/usr/bin/env bash
# HTTP benchmark: skd against nginx (one worker process) on GET /healthcheck
# (204 No Content, keep-alive), with wrk over loopback.
#
# Usage: bench/http.sh BUILD_DIR        (from the repo root; `make bench`)
#
# Environment:
#   BENCH_SECONDS  length of each measured wrk run (default 10)
#   BENCH_WARMUP   length of the warm-up run before each measurement (default 2)
#   BENCH_REPEAT   runs per server and round, interleaved (default 1); with
#                  more than one, the medians are compared
#   BENCH_PIN      1 (default): server on CPU 0, wrk on CPU 1 with taskset;
#                  0: no pinning
#   BENCH_KEEP     1: keep the temporary directory (configs, logs, raw wrk output)
#   BENCH_VERBOSE  1: print every raw wrk output
#
# Two rounds, access logging on for both servers, then off for both. Fails if
# a server does not start, answers anything but 204, or wrk reports socket
# errors or non-2xx/3xx responses.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_build_dir "$@"
SKD=$BUILD_DIR/skd
DURATION=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
REPEAT=${BENCH_REPEAT:-1}
PIN=${BENCH_PIN:-1}
WRK_THREADS=1
WRK_CONNS=64

[ -x "$SKD" ] || die "$SKD not found or not executable (build first: make build)"
for tool in wrk nginx curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/deps.sh installs it)"
done
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive whole number"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a whole number"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive whole number"

# Server on CPU 0, wrk on CPU 1: each side gets a core of its own.
SERVER_PIN=()
CLIENT_PIN=()
if [ "$PIN" = 1 ]; then
    if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
        SERVER_PIN=(taskset -c 0)
        CLIENT_PIN=(taskset -c 1)
    else
        echo "bench: warning: no taskset or fewer than 2 CPUs: not pinning" >&2
    fi
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/skd-bench.XXXXXX")
SERVER_PID=""
WRK_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$WRK_PID" ]; then
        kill -TERM "$WRK_PID" 2>/dev/null || true
        wait "$WRK_PID" 2>/dev/null || true
    fi
    stop_server
    finish "$rc" "$TMP"
}
trap_cleanup

# Waits until http://127.0.0.1:PORT/healthcheck answers 204 (the server is up
# and answers what we benchmark), or fails.
wait_ready() {
    local name=$1 port=$2 log=$3 code=""
    for _ in $(seq 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "bench: $name exited during start-up; its log ($log):" >&2
            tail -n 20 "$log" >&2 || true
            SERVER_PID=""
            exit 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/healthcheck" || true)
        [ "$code" = 204 ] && return 0
        sleep 0.1
    done
    echo "bench: $name did not answer 204 on 127.0.0.1:$port within 10 s (last status: ${code:-none}); its log:" >&2
    tail -n 20 "$log" >&2 || true
    exit 1
}

start_skd() {
    local logging=$1 dir=$TMP/skd-$1
    mkdir -p "$dir"
    local ports
    read -r -a ports <<<"$(free_ports 2)"
    SKD_PORT=${ports[0]}
    cat >"$dir/skd.conf" <<EOF
[server]
shutdown_timeout_ms = 2000
[public]
listen = 127.0.0.1:${ports[0]}
[admin]
listen = 127.0.0.1:${ports[1]}
[log]
level = warn
access_log = $([ "$logging" = on ] && echo true || echo false)
EOF
    # Access lines go to stderr, hence to a file, as in production.
    "${SERVER_PIN[@]}" "$SKD" serve -c "$dir/skd.conf" 2>"$dir/stderr.log" &
    SERVER_PID=$!
    ACCESS_LOG=$dir/stderr.log
    wait_ready skd "$SKD_PORT" "$dir/stderr.log"
}

start_nginx() {
    local logging=$1 dir=$TMP/nginx-$1
    mkdir -p "$dir/logs" "$dir/temp"
    local ports
    read -r -a ports <<<"$(free_ports 1)"
    NGINX_PORT=${ports[0]}
    local access="access_log off;"
    [ "$logging" = on ] && access="access_log $dir/logs/access.log combined buffer=64k;"
    # One process serving everything (no master, no daemon), every path under
    # $dir: nothing of /etc/nginx, /var/log/nginx or port 80 is touched.
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events {
    worker_connections 1024;
}
http {
    $access
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $dir/temp/body;
    proxy_temp_path $dir/temp/proxy;
    fastcgi_temp_path $dir/temp/fastcgi;
    uwsgi_temp_path $dir/temp/uwsgi;
    scgi_temp_path $dir/temp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /healthcheck {
            return 204;
        }
        location / {
            return 404;
        }
    }
}
EOF
    "${SERVER_PIN[@]}" nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
        >"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
    ACCESS_LOG=$dir/logs/access.log
    wait_ready nginx "$NGINX_PORT" "$dir/stdout.log"
}


run_wrk() {
    local secs=$1 port=$2 out=$3
    # In the background and waited for, so that Ctrl-C runs the trap at once.
    "${CLIENT_PIN[@]}" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${secs}s" --latency \
        "http://127.0.0.1:$port/healthcheck" >"$out" 2>&1 &
    WRK_PID=$!
    local rc=0
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    if [ "$rc" != 0 ]; then
        cat "$out" >&2
        die "wrk failed (exit status $rc)"
    fi
}

# Checks wrk's output; fails on socket errors or non-2xx/3xx answers.
check_wrk() {
    local name=$1 out=$2
    if grep -q 'Socket errors' "$out" || grep -q 'Non-2xx or 3xx responses' "$out"; then
        cat "$out" >&2
        die "$name: wrk reported errors (above)"
    fi
    grep -q '^Requests/sec:' "$out" || {
        cat "$out" >&2
        die "$name: no Requests/sec in wrk output"
    }
}

# Field from wrk output: rps (whole req/s), p50 and p99 (µs), requests.
wrk_field() {
    local what=$1 out=$2
    case $what in
    rps) awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out" ;;
    p50 | p99)
        awk -v q="${what#p}%" '$1 == q {
            v = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
            if (u == "ms") v *= 1000; else if (u == "s") v *= 1000000; else if (u == "m") v *= 60000000
            printf "%.0f", v }' "$out"
        ;;
    requests) awk '/requests in/ { print $1 }' "$out" ;;
    esac
}

# Benchmarks one server: start, warm up, measure, stop. Appends to the arrays
# RPS_<name>, P50_<name>, P99_<name>, CPU_<name>, US_<name>.
bench_one() {
    local name=$1 logging=$2 run=$3 port out
    "start_$name" "$logging"
    port=$([ "$name" = skd ] && echo "$SKD_PORT" || echo "$NGINX_PORT")
    if [ "$WARMUP" -gt 0 ]; then
        run_wrk "$WARMUP" "$port" "$TMP/wrk-$name-$logging-$run-warmup.txt"
        check_wrk "$name (warm-up)" "$TMP/wrk-$name-$logging-$run-warmup.txt"
    fi
    out=$TMP/wrk-$name-$logging-$run.txt
    local cpu0 cpu1 proc0 proc1
    cpu0=$(cpu_ticks 0)
    cpu1=$(cpu_ticks 1)
    proc0=$(proc_ticks "$SERVER_PID")
    run_wrk "$DURATION" "$port" "$out"
    proc1=$(proc_ticks "$SERVER_PID")
    # With pinning: how busy the server's core and wrk's core were. A server
    # core well below 100% means wrk (or other load), not the server, set the pace.
    local busy
    busy="$(busy_pct "$cpu0" "$(cpu_ticks 0)")%/$(busy_pct "$cpu1" "$(cpu_ticks 1)")%"
    check_wrk "$name" "$out"
    stop_server
    # The round must measure what it says: with logging on, lines were written.
    if [ "$logging" = on ]; then
        local lines
        lines=$(grep -c 'healthcheck' "$ACCESS_LOG" 2>/dev/null || true)
        [ "${lines:-0}" -gt 0 ] || die "$name: logging on, but no access lines in $ACCESS_LOG"
    fi
    local -n rps=RPS_$name p50=P50_$name p99=P99_$name cpu=CPU_$name
    rps+=("$(wrk_field rps "$out")")
    p50+=("$(wrk_field p50 "$out")")
    p99+=("$(wrk_field p99 "$out")")
    cpu+=("$busy")
    # Server CPU time (user + system, without softirq) per request: less
    # sensitive than req/s to other load stealing the server's core.
    local -n us=US_$name
    us+=("$(awk -v a="$proc0" -v b="$proc1" -v hz="$CLK_TCK" -v n="$(wrk_field requests "$out")" \
        'BEGIN { printf "%.2f", (n > 0 ? (b - a) / hz / n * 1e6 : 0) }')")
    if [ "${BENCH_VERBOSE:-0}" = 1 ]; then
        echo "--- $name, logging $logging, run $run (busy cpu0/cpu1 $busy) ---"
        cat "$out"
    fi
}

echo "bench: $(nproc) CPUs ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)), $(nginx -v 2>&1 | sed 's/.*: //'), $("$SKD" --version)"
echo "bench: wrk -t$WRK_THREADS -c$WRK_CONNS -d${DURATION}s --latency (after ${WARMUP}s warm-up), GET /healthcheck -> 204, keep-alive"
if [ ${#SERVER_PIN[@]} -gt 0 ]; then
    echo "bench: server pinned to CPU 0, wrk to CPU 1"
fi
if [ "$REPEAT" -gt 1 ]; then
    echo "bench: $REPEAT runs per server and round, interleaved; medians shown, single runs in brackets"
fi

# Anything else running skews the numbers (the machine has two cores, both in
# use here): look for a busy core during one second before starting.
idle0=$(cpu_ticks 0)
idle1=$(cpu_ticks 1)
sleep 1
for cpu in 0 1; do
    before=$([ $cpu = 0 ] && echo "$idle0" || echo "$idle1")
    pct=$(busy_pct "$before" "$(cpu_ticks $cpu)")
    if [ "$pct" -gt 15 ]; then
        echo "bench: warning: CPU $cpu was $pct% busy before the benchmark; other load makes the numbers noisy" >&2
    fi
done

for logging in on off; do
    RPS_skd=() P50_skd=() P99_skd=() CPU_skd=() US_skd=()
    RPS_nginx=() P50_nginx=() P99_nginx=() CPU_nginx=() US_nginx=()
    for run in $(seq "$REPEAT"); do
        # Alternate who goes first, so that drift of the machine hits both.
        if [ $((run % 2)) = 1 ]; then
            bench_one skd "$logging" "$run"
            bench_one nginx "$logging" "$run"
        else
            bench_one nginx "$logging" "$run"
            bench_one skd "$logging" "$run"
        fi
    done
    rps_skd=$(median "${RPS_skd[@]}")
    rps_nginx=$(median "${RPS_nginx[@]}")
    ratio=$(awk -v a="$rps_skd" -v b="$rps_nginx" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    printf 'logging %-4s skd %7s req/s  nginx %7s req/s  ratio %s\n' "$logging:" "$rps_skd" "$rps_nginx" "$ratio"
    if [ "$REPEAT" -gt 1 ]; then
        printf '             runs: skd [%s]  nginx [%s]\n' "${RPS_skd[*]}" "${RPS_nginx[*]}"
    fi
    printf '             latency p50/p99: skd %s/%s  nginx %s/%s\n' \
        "$(human_us "$(median "${P50_skd[@]}")")" "$(human_us "$(median "${P99_skd[@]}")")" \
        "$(human_us "$(median "${P50_nginx[@]}")")" "$(human_us "$(median "${P99_nginx[@]}")")"
    printf '             server cpu/request (user+sys): skd %sus  nginx %sus\n' \
        "$(median "${US_skd[@]}")" "$(median "${US_nginx[@]}")"
    if [ ${#SERVER_PIN[@]} -gt 0 ]; then
        printf '             busy cpu0 (server)/cpu1 (wrk): skd %s  nginx %s\n' "${CPU_skd[*]}" "${CPU_nginx[*]}"
    fi
done
