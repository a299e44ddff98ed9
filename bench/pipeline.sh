#!/usr/bin/env bash
# Pipeline benchmark (issue 5): one skd pushing its installations' records
# over kvpsync to two skdns.
#   a. latency from a challenge PUT to its long-poll's 200 ready (served by
#      both skdns): p50 and p99, one at a time and BENCH_CONC at a time;
#   b. skdns queries per second against Knot (one UDP worker) serving the
#      same records, with dnsperf, same query file, same pinned CPU;
#   c. BENCH_LONGPOLLS pending long-polls held by skd while both skdns are
#      stopped (SIGSTOP): skd's memory per pending request, then the time
#      until all are answered once the skdns run again (SIGCONT).
#
# Usage: bench/pipeline.sh BUILD_DIR        (from the repo root; `make bench`)
#
# Environment:
#   BENCH_SETS       challenge PUTs per latency run (default 1000)
#   BENCH_CONC       requests at a time in the second latency run (default 16)
#   BENCH_SECONDS    length of each measured dnsperf run (default 10)
#   BENCH_WARMUP     dnsperf warm-up before each run (default 2)
#   BENCH_REPEAT     dnsperf runs per server, interleaved (default 3); the
#                    medians are compared
#   BENCH_DNSPERF    dnsperf's load options (default "-c 4 -T 1 -q 200")
#   BENCH_LONGPOLLS  pending long-polls in part c (default 10000)
#   BENCH_PIN        1 (default): in part b the DNS server measured on CPU 0,
#                    dnsperf (and skd and the other skdns) on CPU 1; 0: no pinning
#   BENCH_LOG        1 (default): skd's access log on, level info, stderr to a
#                    file, as deployed; 0: access log off, level warn
#   BENCH_PARTS      the parts to run (default "latency dns longpolls")
#   BENCH_KEEP       1: keep the temporary directory (configs, logs, raw output)
#   BENCH_VERBOSE    1: print every raw dnsperf output
#
# Every request of part a and c is signed (and its nonce fetched) before the
# clock starts: bench/pipeline.py signs through libcrypto (ctypes), with the
# keys and the client of tests/integration/skdtest.py. Fails if a server
# does not start, if any challenge PUT is not answered 200 ready, if skdns
# and Knot answer a sample of the queries differently, or if dnsperf sees
# SERVFAIL. The goals are printed, not enforced: this VM is shared and noisy.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_build_dir "$@"
SKD=$BUILD_DIR/skd
SKDNS=$BUILD_DIR/skdns
HELPER=$(dirname "$0")/pipeline.py
SETS=${BENCH_SETS:-1000}
CONC=${BENCH_CONC:-16}
DURATION=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
REPEAT=${BENCH_REPEAT:-3}
DNSPERF_ARGS=${BENCH_DNSPERF:-"-c 4 -T 1 -q 200"}
LONGPOLLS=${BENCH_LONGPOLLS:-10000}
PIN=${BENCH_PIN:-1}
LOG=${BENCH_LOG:-1}
PARTS=${BENCH_PARTS:-"latency dns longpolls"}

[ -x "$SKD" ] || die "$SKD not found or not executable (build first: make build)"
[ -x "$SKDNS" ] || die "$SKDNS not found or not executable (build first: make build)"
for tool in knotd dnsperf kdig curl python3 taskset od; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/deps.sh installs it)"
done
for n in "$SETS" "$CONC" "$DURATION" "$REPEAT" "$LONGPOLLS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_SETS, BENCH_CONC, BENCH_SECONDS, BENCH_REPEAT and BENCH_LONGPOLLS must be positive whole numbers"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a whole number"
for part in $PARTS; do
    case $part in latency | dns | longpolls) ;; *) die "BENCH_PARTS: unknown part $part" ;; esac
done

# Part c holds one socket per long-poll on each side (the bench runs as root:
# the hard limit is ours to take).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -gt $((LONGPOLLS + 1000)) ] || die "ulimit -n is $(ulimit -n): too few for $LONGPOLLS long-polls"

NCPU=$(nproc)
ALL_CPUS=0-$((NCPU - 1))
SERVER_PIN=()
CLIENT_PIN=()
if [ "$PIN" = 1 ]; then
    if [ "$NCPU" -ge 2 ]; then
        SERVER_PIN=(taskset -c 0)
        CLIENT_PIN=(taskset -c 1)
    else
        echo "bench: warning: fewer than 2 CPUs: not pinning" >&2
    fi
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/skd-bench-pipeline.XXXXXX")
SERVER_PID=""
DNSPERF_PID=""
declare -A PIDS=()   # name -> pid of what runs in the background
declare -A DNS_PORT=() KV_PORT=() PSK=() LAST=()
RESULTS=$TMP/results
: >"$RESULTS"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$DNSPERF_PID" ]; then
        kill -TERM "$DNSPERF_PID" 2>/dev/null || true
        wait "$DNSPERF_PID" 2>/dev/null || true
    fi
    local name
    for name in "${!PIDS[@]}"; do
        kill -CONT "${PIDS[$name]}" 2>/dev/null || true # part c may have stopped it
        SERVER_PID=${PIDS[$name]}
        stop_server
    done
    finish "$rc" "$TMP"
}
trap_cleanup

# skd sending to d1 and d2; SKD_PORT, SKD_ADMIN. Waits for its admin listener.
start_skd() {
    local ports code=""
    read -r -a ports <<<"$(free_ports 2)"
    SKD_PORT=${ports[0]}
    SKD_ADMIN=${ports[1]}
    cat >"$TMP/skd.conf" <<EOF
[server]
max_connections = $((LONGPOLLS + 2000))
shutdown_timeout_ms = 2000
[limits]
request_timeout_ms = 600000
[public]
listen = 127.0.0.1:$SKD_PORT
[admin]
listen = 127.0.0.1:$SKD_ADMIN
[log]
level = $([ "$LOG" = 1 ] && echo info || echo warn)
access_log = $([ "$LOG" = 1 ] && echo true || echo false)
[store]
path = $TMP/skd.db
[installations]
zone = sk.test.
; part c holds its long-polls while it opens them all
longpoll_wait_ms = 300000
[kvpsend]
sender_id = 1
receiver = d1 127.0.0.1:${KV_PORT[d1]} ${PSK[d1]}
receiver = d2 127.0.0.1:${KV_PORT[d2]} ${PSK[d2]}
EOF
    "$SKD" serve -c "$TMP/skd.conf" 2>>"$TMP/skd.log" &
    PIDS[skd]=$!
    for _ in $(seq 100); do
        kill -0 "${PIDS[skd]}" 2>/dev/null || {
            tail -n 20 "$TMP/skd.log" >&2
            unset "PIDS[skd]"
            die "skd exited during start-up; its log is above"
        }
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$SKD_ADMIN/healthcheck" || true)
        [ "$code" = 204 ] && return 0
        sleep 0.1
    done
    tail -n 20 "$TMP/skd.log" >&2
    die "skd did not answer 204 on its admin listener within 10 s (last status: ${code:-none})"
}

stop_named() {
    SERVER_PID=${PIDS[$1]}
    unset "PIDS[$1]"
    stop_server
}

start_knot() {
    local ports
    read -r -a ports <<<"$(free_ports 1)"
    KNOT_PORT=${ports[0]}
    mkdir -p "$TMP/knot"
    cp "$TMP/sk.test.zone" "$TMP/knot/sk.test.zone"
    # One UDP worker, one TCP worker, one background worker; nothing written
    # back (no journal, no zone file sync); every path under $TMP/knot.
    cat >"$TMP/knot/knot.conf" <<EOF
server:
    rundir: "$TMP/knot"
    listen: 127.0.0.1@$KNOT_PORT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "$TMP/knot"
template:
  - id: default
    storage: "$TMP/knot"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: sk.test.
EOF
    "${SERVER_PIN[@]}" knotd -c "$TMP/knot/knot.conf" 2>"$TMP/knot.log" &
    PIDS[knot]=$!
    wait_until knot "$TMP/knot.log" dns_up "$KNOT_PORT"
}

# Pins every thread of PID to CPUS (no-op without pinning).
pin() {
    [ ${#SERVER_PIN[@]} -gt 0 ] || return 0
    taskset -a -p -c "$2" "$1" >/dev/null
}

result() {
    awk -v k="$1" '$1 == k { print $2 }' "$RESULTS" | tail -n 1
}

# Runs bench/pipeline.py with the arguments, its output as it comes but for
# its RESULT lines, which go to $RESULTS; fails when it fails.
helper() {
    local rc
    set +e
    python3 -u "$HELPER" "$@" | tee "$TMP/helper.out" | grep --line-buffered -v '^RESULT '
    rc=${PIPESTATUS[0]}
    set -e
    sed -n 's/^RESULT //p' "$TMP/helper.out" >>"$RESULTS"
    [ "$rc" = 0 ] || die "pipeline.py $1 failed (exit status $rc)"
}

# One dnsperf run against PORT for SECS seconds into OUT; fails on errors.
run_dnsperf() {
    local name=$1 port=$2 secs=$3 out=$4 rc=0
    # shellcheck disable=SC2086 # DNSPERF_ARGS is a list of options
    "${CLIENT_PIN[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$TMP/queries.txt" -l "$secs" $DNSPERF_ARGS \
        >"$out" 2>&1 &
    DNSPERF_PID=$!
    wait "$DNSPERF_PID" || rc=$?
    DNSPERF_PID=""
    if [ "$rc" != 0 ] || ! grep -q 'Queries per second:' "$out"; then
        cat "$out" >&2
        die "$name: dnsperf failed (exit status $rc)"
    fi
    if grep -q 'Response codes:.*\(SERVFAIL\|REFUSED\|FORMERR\)' "$out"; then
        cat "$out" >&2
        die "$name: answers other than NOERROR and NXDOMAIN (above)"
    fi
    [ "${BENCH_VERBOSE:-0}" = 1 ] && { echo "--- $name ---"; cat "$out"; }
    return 0
}

dnsperf_field() {
    case $1 in
    qps) awk '/Queries per second:/ { printf "%.0f", $4 }' "$2" ;;
    completed) awk '/Queries completed:/ { print $3 }' "$2" ;;
    lost) awk '/Queries lost:/ { gsub(/[()]/, "", $4); print $4 }' "$2" ;;
    codes) sed -n 's/^ *Response codes: *//p' "$2" ;;
    sizes) sed -n 's/^ *Average packet size: *//p' "$2" ;;
    esac
}

# Part b, one server (PID): warm up, measure; appends to QPS_<name>,
# US_<name> (the server's CPU time per answered query, user + system, in µs)
# and BUSY_<name>.
bench_dns() {
    local name=$1 port=$2 pid=$3 run=$4 out before0 before1 proc0 proc1
    [ "$WARMUP" -gt 0 ] && run_dnsperf "$name" "$port" "$WARMUP" "$TMP/dnsperf-$name-$run-warmup.txt"
    out=$TMP/dnsperf-$name-$run.txt
    before0=$(cpu_ticks 0)
    before1=$(cpu_ticks 1)
    proc0=$(proc_ticks "$pid")
    run_dnsperf "$name" "$port" "$DURATION" "$out"
    proc1=$(proc_ticks "$pid")
    local -n qps=QPS_$name busy=BUSY_$name us=US_$name
    qps+=("$(dnsperf_field qps "$out")")
    us+=("$(awk -v a="$proc0" -v b="$proc1" -v hz="$CLK_TCK" -v n="$(dnsperf_field completed "$out")" \
        'BEGIN { printf "%.2f", (n > 0 ? (b - a) / hz / n * 1e6 : 0) }')")
    busy+=("$(busy_pct "$before0" "$(cpu_ticks 0)")%/$(busy_pct "$before1" "$(cpu_ticks 1)")%")
    LAST[$name]=$out
}

echo "bench: $NCPU CPUs ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)), $("$SKD" --version), $(knotd --version 2>&1 | head -n 1), dnsperf $(dnsperf -h 2>&1 | sed -n 's/^Version *//p' | head -n 1)"
idle0=$(cpu_ticks 0)
idle1=$(cpu_ticks 1)
sleep 1
for cpu in 0 1; do
    [ "$cpu" -lt "$NCPU" ] || continue
    before=$([ $cpu = 0 ] && echo "$idle0" || echo "$idle1")
    pct=$(busy_pct "$before" "$(cpu_ticks $cpu)")
    if [ "$pct" -gt 15 ]; then
        echo "bench: warning: CPU $cpu was $pct% busy before the benchmark; other load makes the numbers noisy" >&2
    fi
done

start_skdns d1
start_skdns d2
start_skd

# ---------------------------------------------------------------- a. latency
# (part b serves the records that part a made)
if [[ " $PARTS " == *" latency "* ]] || [[ " $PARTS " == *" dns "* ]]; then
    echo "== a. challenge PUT -> 200 ready through kvpsend to 2 skdns; $SETS sets per run, signed beforehand"
    for c in 1 "$CONC"; do
        helper latency --port "$SKD_PORT" --admin "$SKD_ADMIN" --sets "$SETS" --concurrency "$c" \
            --state "$TMP/state.jsonl"
    done
fi

# ---------------------------------------------------------------- b. DNS
if [[ " $PARTS " == *" dns "* ]]; then
    echo "== b. skdns (fed by skd through kvpsend) against Knot $(knotd --version 2>&1 | awk '{ print $NF }'), same records, same queries"
    helper zone --state "$TMP/state.jsonl" --zone "$TMP/sk.test.zone" --queries "$TMP/queries.txt"
    start_knot
    helper compare --port "${DNS_PORT[d1]}" --port "$KNOT_PORT" --queries "$TMP/queries.txt"
    # The server measured and Knot on CPU 0; dnsperf, skd and d2 on CPU 1.
    pin "${PIDS[d1]}" 0
    pin "${PIDS[skd]}" 1
    pin "${PIDS[d2]}" 1
    echo "bench: dnsperf $DNSPERF_ARGS -l $DURATION (after ${WARMUP}s warm-up), ${REPEAT} runs each, interleaved; rate_limit = 0, one UDP worker each$([ ${#SERVER_PIN[@]} -gt 0 ] && echo "; servers on CPU 0, dnsperf on CPU 1")"
    QPS_skdns=() US_skdns=() BUSY_skdns=() QPS_knot=() US_knot=() BUSY_knot=()
    for run in $(seq "$REPEAT"); do
        if [ $((run % 2)) = 1 ]; then
            bench_dns skdns "${DNS_PORT[d1]}" "${PIDS[d1]}" "$run"
            bench_dns knot "$KNOT_PORT" "${PIDS[knot]}" "$run"
        else
            bench_dns knot "$KNOT_PORT" "${PIDS[knot]}" "$run"
            bench_dns skdns "${DNS_PORT[d1]}" "${PIDS[d1]}" "$run"
        fi
    done
    q_skdns=$(median "${QPS_skdns[@]}")
    q_knot=$(median "${QPS_knot[@]}")
    us_skdns=$(median "${US_skdns[@]}")
    us_knot=$(median "${US_knot[@]}")
    ratio=$(awk -v a="$q_skdns" -v b="$q_knot" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    cpu_ratio=$(awk -v a="$us_skdns" -v b="$us_knot" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')
    printf 'dns: skdns %s qps  knot %s qps  ratio %s   (runs: skdns [%s]  knot [%s])\n' "$q_skdns" "$q_knot" "$ratio" \
        "${QPS_skdns[*]}" "${QPS_knot[*]}"
    printf '     server cpu/query (user+sys): skdns %sus  knot %sus: knot/skdns %s   (runs: skdns [%s]  knot [%s])\n' \
        "$us_skdns" "$us_knot" "$cpu_ratio" "${US_skdns[*]}" "${US_knot[*]}"
    printf '     busy cpu0 (server)/cpu1 (dnsperf): skdns [%s]  knot [%s]\n' "${BUSY_skdns[*]}" "${BUSY_knot[*]}"
    echo "     (cpu1 near 100% and cpu0 below: dnsperf sets the pace, and cpu/query compares the servers better than qps)"
    printf '     answers: skdns %s; knot %s\n' "$(dnsperf_field codes "${LAST[skdns]}")" "$(dnsperf_field codes "${LAST[knot]}")"
    printf '     packet sizes: skdns %s; knot %s; lost: skdns %s, knot %s\n' \
        "$(dnsperf_field sizes "${LAST[skdns]}")" "$(dnsperf_field sizes "${LAST[knot]}")" \
        "$(dnsperf_field lost "${LAST[skdns]}")" "$(dnsperf_field lost "${LAST[knot]}")"
    printf 'dns_ratio %s\ndns_skdns_qps %s\ndns_knot_qps %s\ndns_cpu_ratio %s\n' "$ratio" "$q_skdns" "$q_knot" \
        "$cpu_ratio" >>"$RESULTS"
    stop_named knot
    pin "${PIDS[d1]}" "$ALL_CPUS"
    pin "${PIDS[skd]}" "$ALL_CPUS"
    pin "${PIDS[d2]}" "$ALL_CPUS"
fi

# ---------------------------------------------------------------- c. pending long-polls
if [[ " $PARTS " == *" longpolls "* ]]; then
    echo "== c. $LONGPOLLS pending long-polls on a freshly started skd, both skdns stopped (SIGSTOP), then SIGCONT"
    # A fresh process: memory that earlier parts freed does not hide the cost.
    stop_named skd
    start_skd
    helper longpolls --port "$SKD_PORT" --admin "$SKD_ADMIN" --count "$LONGPOLLS" --pid "${PIDS[skd]}" \
        --stop "${PIDS[d1]},${PIDS[d2]}"
fi

echo "== summary (goals in brackets)"
if [ -n "$(result latency_c1_p99_ms)" ]; then
    printf 'latency set -> ready: one at a time p50 %s ms p99 %s ms; %s at a time p50 %s ms p99 %s ms (%s sets/s)  [p99 < 20 ms]\n' \
        "$(result latency_c1_p50_ms)" "$(result latency_c1_p99_ms)" "$CONC" "$(result "latency_c${CONC}_p50_ms")" \
        "$(result "latency_c${CONC}_p99_ms")" "$(result "latency_c${CONC}_rate")"
fi
if [ -n "$(result dns_ratio)" ]; then
    printf 'dns: skdns/knot %s (%s / %s qps)  [>= 1.0]; per query, knot/skdns server cpu %s\n' "$(result dns_ratio)" \
        "$(result dns_skdns_qps)" "$(result dns_knot_qps)" "$(result dns_cpu_ratio)"
fi
if [ -n "$(result longpoll_rss_bytes)" ]; then
    printf 'long-polls: %s B (RSS) / %s B (Pss) per pending request  [< 4096]; all %s answered %s ms after SIGCONT  [< 1000], values all acknowledged at %s ms\n' \
        "$(result longpoll_rss_bytes)" "$(result longpoll_pss_bytes)" "$LONGPOLLS" "$(result longpoll_release_ms)" \
        "$(result longpoll_acked_ms)"
fi
