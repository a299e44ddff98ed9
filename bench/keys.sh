#!/usr/bin/env bash
# Key-release benchmark: skd's decrypt-secret and generate-secret over HTTP
# at rising concurrency, against the token's own ceiling for the same
# PKCS#11 work with the same number of threads (bench/hsm_ceiling, no HTTP).
#
# Usage: bench/keys.sh BUILD_DIR        (from the repo root; `make bench`)
#
# Everything lives in a temporary directory: a SoftHSM token of its own
# (SOFTHSM2_CONF), skd.conf on free loopback ports, `skd init`, a tenant with
# network 127.0.0.0/8, instance i-0123456789abcdef0 at 127.0.0.1, the PIN
# through the admin API (PUT /hsm-pin).
#
# Environment:
#   BENCH_SECONDS  length of each measured run (default 10)
#   BENCH_WARMUP   warm-up before each operation's runs (default 2)
#   BENCH_REPEAT   rounds of each part (default 1); medians are reported.
#                  Part 1: skd started fresh, every operation at every
#                  concurrency (closed loop). Part 2, per operation: skd at
#                  the best concurrency of part 1, then at a fixed rate of
#                  half that, then (skd stopped) the ceiling; every other
#                  round the ceiling goes first. peak/ceiling is the median
#                  of the rounds' ratios.
#   BENCH_WORKERS  skd's [server] worker_threads and the ceiling's threads (default 2)
#   BENCH_CONNS    wrk connections to step through (default "1 2 4 8 16 32")
#   BENCH_OPS      operations (default "decrypt generate")
#   BENCH_AUDIT    1 (default): skd writes its signed audit record per call
#                  (one more hsm_sign, files fsynced before the answer) and the
#                  ceiling does one more hsm_sign per call; 0: skd runs with
#                  SKD_BENCH_NO_AUDIT=1 and the ceiling without that signature
#   BENCH_AUDIT_COST  1 (default): part 3, per operation and round, skd with
#                  audit off and on at part 1's best concurrency and the
#                  ceiling without and with the record's signature; prints
#                  the audit's cost per call against its one extra signature
#                  (goal: at most 1.1 times), skd's records per batch (from
#                  its log), and the floor: bench/audit_files, the record
#                  files alone on the audit directory's filesystem at 1, 4
#                  and 16 per batch, as a share of the signature; 0: skip it
#   BENCH_AUDIT_DIR  where the audit records go (default: the temporary
#                  directory, under TMPDIR or /tmp); e.g. /dev/shm to take the
#                  disk out of the measurement. A new directory per skd start,
#                  all removed at the end.
#   BENCH_LOG      1 (default): access log on, level info, stderr to a file,
#                  as deployed; 0: access log off, level warn
#   BENCH_PKCS11_MODULE  the PKCS#11 module (default SoftHSM's; the token is
#                  made with softhsm2-util, so only SoftHSM works as is)
#   BENCH_KEEP     1: keep the temporary directory (token, configs, logs, raw output)
#   BENCH_VERBOSE  1: print every raw wrk and hsm_ceiling output
#
# Fails if the stack cannot be set up, if any answer is not 200 with a
# wrapped_secret, or if wrk reports socket errors or timeouts. The goals
# (peak >= 0.85 of the ceiling, p99 < 10 ms at half the peak rate) are
# printed, not enforced: this VM is shared and noisy.
# The result arrays are read through namerefs (per_round), which shellcheck
# does not follow:
# shellcheck disable=SC2034
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_build_dir "$@"
SKD=$BUILD_DIR/skd
CEILING=$BUILD_DIR/bench/hsm_ceiling
AUDIT_FILES=$BUILD_DIR/bench/audit_files
HERE=$(cd "$(dirname "$0")" && pwd)
LUA=$HERE/keys.lua
DURATION=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
REPEAT=${BENCH_REPEAT:-1}
WORKERS=${BENCH_WORKERS:-2}
CONNS=${BENCH_CONNS:-1 2 4 8 16 32}
OPS=${BENCH_OPS:-decrypt generate}
LOGGING=${BENCH_LOG:-1}
AUDIT=${BENCH_AUDIT:-1}
AUDIT_COST=${BENCH_AUDIT_COST:-1}
MODULE=${BENCH_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
TOKEN_LABEL=skd-bench
PIN=1234
TENANT=vpc-0123456789abcdef0
INSTANCE=i-0123456789abcdef0
VOLUME=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0

[ -x "$SKD" ] || die "$SKD not found or not executable (build first: make build)"
[ -x "$CEILING" ] || die "$CEILING not found or not executable (build first: make build)"
[ -x "$AUDIT_FILES" ] || die "$AUDIT_FILES not found or not executable (build first: make build)"
[ -f "$LUA" ] || die "$LUA not found"
[ -f "$MODULE" ] || die "PKCS#11 module $MODULE not found (scripts/deps.sh installs softhsm2)"
for tool in wrk curl jq openssl softhsm2-util python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/deps.sh installs it)"
done
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive whole number"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a whole number"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive whole number"
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "BENCH_WORKERS must be a positive whole number"
[[ $AUDIT =~ ^[01]$ ]] || die "BENCH_AUDIT must be 0 or 1"
[[ $AUDIT_COST =~ ^[01]$ ]] || die "BENCH_AUDIT_COST must be 0 or 1"
read -r -a CONNS <<<"$CONNS"
read -r -a OPS <<<"$OPS"
[ ${#CONNS[@]} -gt 0 ] || die "BENCH_CONNS is empty"
for c in "${CONNS[@]}"; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNS: $c is not a positive whole number"
done
MAX_CONNS=$(printf '%s\n' "${CONNS[@]}" | sort -n | tail -n 1)
for op in "${OPS[@]}"; do
    case $op in decrypt | generate) ;; *) die "BENCH_OPS: $op is not decrypt or generate" ;; esac
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/skd-bench-keys.XXXXXX")
if [ -n "${BENCH_AUDIT_DIR:-}" ]; then
    AUDIT_ROOT=$(mktemp -d "$BENCH_AUDIT_DIR/skd-bench-audit.XXXXXX") || {
        rm -rf "$TMP"
        die "cannot make a directory under BENCH_AUDIT_DIR=$BENCH_AUDIT_DIR"
    }
else
    AUDIT_ROOT=$TMP/audit
    mkdir "$AUDIT_ROOT"
fi
SERVER_PID=""
WRK_PID=""
CEIL_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "$WRK_PID" "$CEIL_PID"; do
        if [ -n "$pid" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    stop_server
    if [ "$AUDIT_ROOT" = "$TMP/audit" ]; then
        finish "$rc" "$TMP"
    fi
    finish "$rc" "$TMP" "$AUDIT_ROOT"
}
trap_cleanup

# ---- the stack ----

# skd.conf, with audit records under $1.
write_conf() {
    local level=info access=true
    [ "$LOGGING" = 1 ] || { level=warn access=false; }
    cat >"$TMP/skd.conf" <<EOF
[server]
worker_threads = $WORKERS
shutdown_timeout_ms = 2000
[public]
listen = 127.0.0.1:$PUBLIC_PORT
[admin]
listen = 127.0.0.1:$ADMIN_PORT
[hsm]
module = $MODULE
token_label = $TOKEN_LABEL
[store]
path = $TMP/skd.db
[log]
level = $level
access_log = $access
[audit]
dir = $1
EOF
}

# The token, skd.conf, skd's keys, the tenant and its instance.
setup_stack() {
    mkdir -p "$TMP/softhsm/tokens"
    export SOFTHSM2_CONF=$TMP/softhsm/softhsm2.conf
    printf 'directories.tokendir = %s/softhsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$TMP" >"$SOFTHSM2_CONF"
    softhsm2-util --init-token --free --label "$TOKEN_LABEL" --pin "$PIN" --so-pin 87654321 \
        >"$TMP/softhsm-init.log" 2>&1 || {
        cat "$TMP/softhsm-init.log" >&2
        die "softhsm2-util could not make the token"
    }
    local ports
    read -r -a ports <<<"$(free_ports 2)"
    PUBLIC_PORT=${ports[0]}
    ADMIN_PORT=${ports[1]}
    write_conf "$AUDIT_ROOT/init"
    echo "$PIN" | "$SKD" init -c "$TMP/skd.conf" --public-key "$TMP/api_public_key.pem" >"$TMP/init.log" 2>&1 || {
        cat "$TMP/init.log" >&2
        die "skd init failed"
    }
    "$SKD" tenant add -c "$TMP/skd.conf" --id "$TENANT" --account 111122223333 --networks 127.0.0.0/8 \
        >>"$TMP/init.log" 2>&1 || {
        cat "$TMP/init.log" >&2
        die "skd tenant add failed"
    }
    "$SKD" instance add -c "$TMP/skd.conf" --tenant "$TENANT" --id "$INSTANCE" --ip 127.0.0.1 \
        >>"$TMP/init.log" 2>&1 || {
        cat "$TMP/init.log" >&2
        die "skd instance add failed"
    }
    # The caller's RSA-4096 key, as the agent makes one.
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$TMP/rsa.pem" 2>/dev/null ||
        die "openssl could not make an RSA-4096 key"
    openssl pkey -in "$TMP/rsa.pem" -pubout -outform DER -out "$TMP/rsa.der" || die "openssl pkey failed"
}

# HTTP status of a request: http_code METHOD URL [BODY_FILE] [OUT_FILE].
http_code() {
    local method=$1 url=$2 body=${3:-} out=${4:-/dev/null}
    local args=(-s -o "$out" -w '%{http_code}' --max-time 10 -X "$method")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "@$body")
    curl "${args[@]}" "$url" || true
}

# Starts skd, hands it the PIN, waits until /healthcheck answers 204. Every
# start writes its audit records into a new directory, so that runs do not
# differ by the size of the directory they write into. Nothing is deleted
# until the end: on ext4 without a journal (this VM's disk), creating files
# right after many were deleted is much slower (the inode allocator skips
# recently deleted inodes).
SESSION=0
start_skd() {
    local log=$TMP/skd.log
    SESSION=$((SESSION + 1))
    AUDIT_DIR=$AUDIT_ROOT/s$SESSION
    write_conf "$AUDIT_DIR"
    echo "--- skd serve started $(date -u +%H:%M:%S), audit records under $AUDIT_DIR" >>"$log"
    SESSION_OK=0
    if [ "$AUDIT" = 1 ]; then
        "$SKD" serve -c "$TMP/skd.conf" 2>>"$log" &
    else
        SKD_BENCH_NO_AUDIT=1 "$SKD" serve -c "$TMP/skd.conf" 2>>"$log" &
    fi
    SERVER_PID=$!
    local code=000
    for _ in $(seq 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            SERVER_PID=""
            tail -n 20 "$log" >&2 || true
            die "skd exited during start-up (its log above)"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$ADMIN_PORT/healthcheck" || true)
        [ "$code" != 000 ] && break
        sleep 0.1
    done
    [ "$code" != 000 ] || die "skd's admin listener did not answer within 10 s"
    printf '{"pin":"%s"}' "$PIN" >"$TMP/pin.json"
    code=$(http_code PUT "http://127.0.0.1:$ADMIN_PORT/hsm-pin" "$TMP/pin.json")
    rm -f "$TMP/pin.json"
    [ "$code" = 204 ] || die "PUT /hsm-pin answered $code, not 204"
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$PUBLIC_PORT/healthcheck" || true)
        [ "$code" = 204 ] && return 0
        sleep 0.1
    done
    die "skd's /healthcheck did not answer 204 after the PIN (last: $code)"
}

url_of() {
    echo "http://127.0.0.1:$PUBLIC_PORT/v1/encryption/$INSTANCE/$1-secret"
}

# Decodes the base64 field NAME of JSON file IN into OUT.
b64_field() {
    jq -j --arg f "$2" '.[$f]' "$1" | base64 -d >"$3" || die "field $2 of $1 is not base64"
}

# The request bodies, made once: generate-secret with the fresh RSA key, then
# decrypt-secret with its encrypted_secret, the same key and volume. Checks
# the answers as a client would: signatures under skd's public key, and both
# wrapped_secrets open to the same 32-byte secret with the RSA private key.
prepare_bodies() {
    local spki
    spki=$(base64 -w0 "$TMP/rsa.der")
    jq -n --arg k "$spki" --arg v "$VOLUME" '{rsa_wrapping_key: $k, volume_uuid: $v}' >"$TMP/body-generate.json"
    local code
    code=$(http_code POST "$(url_of generate)" "$TMP/body-generate.json" "$TMP/answer-generate.json")
    [ "$code" = 200 ] || die "generate-secret answered $code: $(head -c 300 "$TMP/answer-generate.json")"
    jq -n --arg k "$spki" --arg v "$VOLUME" --arg e "$(jq -r .encrypted_secret "$TMP/answer-generate.json")" \
        '{encrypted_secret: $e, rsa_wrapping_key: $k, volume_uuid: $v}' >"$TMP/body-decrypt.json"
    code=$(http_code POST "$(url_of decrypt)" "$TMP/body-decrypt.json" "$TMP/answer-decrypt.json")
    [ "$code" = 200 ] || die "decrypt-secret answered $code: $(head -c 300 "$TMP/answer-decrypt.json")"

    local md
    case $(jq -r .wrapped_secret_algorithm "$TMP/answer-decrypt.json") in
    RSA-OAEP-SHA256) md=sha256 ;;
    RSA-OAEP-SHA1) md=sha1 ;;
    *) die "unknown wrapped_secret_algorithm in $(cat "$TMP/answer-decrypt.json")" ;;
    esac
    local op blob
    for op in generate decrypt; do
        for blob in wrapped_secret encrypted_secret; do
            [ "$op/$blob" = decrypt/encrypted_secret ] && continue
            b64_field "$TMP/answer-$op.json" "$blob" "$TMP/$op.$blob.bin"
            b64_field "$TMP/answer-$op.json" "${blob}_signature" "$TMP/$op.$blob.sig"
            openssl dgst -sha256 -verify "$TMP/api_public_key.pem" -signature "$TMP/$op.$blob.sig" \
                "$TMP/$op.$blob.bin" >/dev/null || die "$op-secret: the signature of $blob does not verify"
        done
        openssl pkeyutl -decrypt -inkey "$TMP/rsa.pem" -in "$TMP/$op.wrapped_secret.bin" -out "$TMP/$op.secret" \
            -pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$md" -pkeyopt "rsa_mgf1_md:$md" ||
            die "$op-secret: wrapped_secret does not open with the RSA key"
    done
    [ "$(stat -c %s "$TMP/generate.secret")" = 32 ] || die "the released secret is not 32 bytes"
    cmp -s "$TMP/generate.secret" "$TMP/decrypt.secret" ||
        die "decrypt-secret released another secret than generate-secret"
    rm -f "$TMP/generate.secret" "$TMP/decrypt.secret"
    WRAP_ALG=$(jq -r .wrapped_secret_algorithm "$TMP/answer-decrypt.json")
}

# ---- measuring ----


# run_wrk OP CONNS SECONDS RATE OUT: one wrk run (RATE 0: closed loop).
run_wrk() {
    local op=$1 conns=$2 secs=$3 rate=$4 out=$5
    # In the background and waited for, so that Ctrl-C runs the trap at once.
    KEYS_BODY=$TMP/body-$op.json KEYS_RATE=$rate KEYS_WRK_THREADS=1 \
        wrk -t1 -c"$conns" -d"${secs}s" --timeout 10s -s "$LUA" "$(url_of "$op")" >"$out" 2>&1 &
    WRK_PID=$!
    local rc=0
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    if [ "$rc" != 0 ]; then
        cat "$out" >&2
        die "wrk failed (exit status $rc)"
    fi
    if [ "${BENCH_VERBOSE:-0}" = 1 ]; then
        echo "--- wrk $op-secret -c$conns -d${secs}s rate=$rate ---"
        cat "$out"
    fi
}

# Field NAME=VALUE of the summary line that starts with PREFIX in FILE.
kv() {
    awk -v p="$1" -v k="$2" '$1 == p { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == k) print a[2] } }' "$3"
}

# Every answer 200 with a wrapped_secret, no socket errors or timeouts.
check_wrk() {
    local what=$1 out=$2
    grep -q '^keys-lua: requests=' "$out" || {
        cat "$out" >&2
        die "$what: no summary from bench/keys.lua"
    }
    local bad errs ok
    bad=$(kv keys-lua: bad "$out")
    ok=$(kv keys-lua: ok "$out")
    errs=$(($(kv keys-lua: connect "$out") + $(kv keys-lua: read "$out") + $(kv keys-lua: write "$out") +
        $(kv keys-lua: status "$out") + $(kv keys-lua: timeout "$out")))
    if [ "$bad" != 0 ] || [ "$errs" != 0 ] || [ "$ok" = 0 ]; then
        cat "$out" >&2
        die "$what: $bad answers other than 200, $errs socket errors or timeouts, $ok good answers"
    fi
    SESSION_OK=$((SESSION_OK + ok))
}

# With audit on: at least one record on disk per good answer of this skd
# session (calls still in flight when wrk stopped have records, no answer).
check_audit() {
    [ "$AUDIT" = 1 ] || return 0
    local n
    n=$(find "$AUDIT_DIR" -type f -name '*.json' 2>/dev/null | wc -l)
    [ "$n" -ge "$SESSION_OK" ] || die "only $n audit records for $SESSION_OK answers"
}

# ops/s from a wrk summary: good answers over the run's duration.
wrk_rate() {
    awk -v n="$(kv keys-lua: ok "$1")" -v d="$(kv keys-lua: duration_us "$1")" \
        'BEGIN { printf "%.0f", (d > 0 ? n / (d / 1e6) : 0) }'
}

# Results, keyed "op,conns,round" (closed-loop sweep) and "op,round" (peak
# against ceiling, half the peak).
declare -A RPS P50 P99 CPUOP BUSY PEAK_C RATIO AC_BATCH FILES_US
declare -A PEAK PEAK_CPU HALF_RATE HALF_RPS HALF_P50 HALF_P99 HALF_BUSY
declare -A CEIL_RPS CEIL_CPU CEIL_P50 CEIL_P99
declare -A AC_RPS AC_CPU AC_RATIO AC_CPU_RATIO

# measure OP CONNS RATE OUT: one measured wrk run against the running skd.
# Sets M_RPS, M_P50, M_P99, M_BUSY (% of both CPUs) and M_CPUOP (skd's CPU
# time, loop and workers, user + system, per answered call, in µs).
measure() {
    local op=$1 conns=$2 rate=$3 out=$4 t0 t1 p0 p1
    t0=$(cpu_ticks)
    p0=$(proc_ticks "$SERVER_PID")
    run_wrk "$op" "$conns" "$DURATION" "$rate" "$out"
    p1=$(proc_ticks "$SERVER_PID")
    t1=$(cpu_ticks)
    check_wrk "$op-secret -c$conns$([ "$rate" = 0 ] || echo " at $rate req/s")" "$out"
    M_RPS=$(wrk_rate "$out")
    M_P50=$(kv keys-lua: p50_us "$out")
    M_P99=$(kv keys-lua: p99_us "$out")
    M_BUSY=$(busy_pct "$t0" "$t1")
    M_CPUOP=$(awk -v a="$p0" -v b="$p1" -v hz="$CLK_TCK" -v n="$(kv keys-lua: ok "$out")" \
        'BEGIN { printf "%.0f", (n > 0 ? (b - a) / hz / n * 1e6 : 0) }')
}

warm_up() {
    local op=$1 conns=$2 out=$TMP/wrk-$1-warmup.txt
    [ "$WARMUP" -gt 0 ] || return 0
    run_wrk "$op" "$conns" "$WARMUP" 0 "$out"
    check_wrk "$op-secret (warm-up)" "$out"
}

# Part 1, one round: skd started fresh, every operation at every concurrency
# (closed loop: each connection sends its next request when the answer is in).
sweep() {
    local round=$1 op c
    start_skd
    for op in "${OPS[@]}"; do
        warm_up "$op" "$MAX_CONNS"
        for c in "${CONNS[@]}"; do
            measure "$op" "$c" 0 "$TMP/wrk-$op-c$c-$round.txt"
            RPS[$op,$c,$round]=$M_RPS
            P50[$op,$c,$round]=$M_P50
            P99[$op,$c,$round]=$M_P99
            BUSY[$op,$c,$round]=$M_BUSY
            CPUOP[$op,$c,$round]=$M_CPUOP
        done
    done
    stop_server
    check_audit
}

# Part 2, skd's side of one pair: its peak at the sweep's best concurrency,
# then a fixed rate of half of that peak (open loop, MAX_CONNS connections so
# that a request never waits for a free connection).
skd_peak() {
    local op=$1 round=$2 c=${PEAK_C[$1]}
    start_skd
    warm_up "$op" "$c"
    measure "$op" "$c" 0 "$TMP/wrk-$op-peak-$round.txt"
    PEAK[$op,$round]=$M_RPS
    PEAK_CPU[$op,$round]=$M_CPUOP
    local rate=$((M_RPS / 2))
    [ "$rate" -gt 0 ] || rate=1
    measure "$op" "$MAX_CONNS" "$rate" "$TMP/wrk-$op-half-$round.txt"
    HALF_RATE[$op,$round]=$rate
    HALF_RPS[$op,$round]=$M_RPS
    HALF_P50[$op,$round]=$M_P50
    HALF_P99[$op,$round]=$M_P99
    HALF_BUSY[$op,$round]=$M_BUSY
    stop_server
    check_audit
}

# Part 2, the token's side of one pair, skd stopped: the same PKCS#11 work per
# operation in WORKERS threads (bench/hsm_ceiling); results under KEY
# (default "OP,ROUND").
ceiling() {
    local op=$1 round=$2 key=${3:-$1,$2} out=$TMP/ceiling-${3:-$1,$2}.txt
    echo "$PIN" | "$CEILING" --module "$MODULE" --token "$TOKEN_LABEL" --rsa-spki "$TMP/rsa.der" \
        --tenant "$TENANT" --instance "$INSTANCE" --volume "$VOLUME" --op "$op" --threads "$WORKERS" \
        --audit-signs "$AUDIT" --seconds "$DURATION" --warmup "$WARMUP" >"$out" 2>&1 &
    CEIL_PID=$!
    local rc=0
    wait "$CEIL_PID" || rc=$?
    CEIL_PID=""
    if [ "$rc" != 0 ]; then
        cat "$out" >&2
        die "hsm_ceiling failed (exit status $rc)"
    fi
    if [ "${BENCH_VERBOSE:-0}" = 1 ]; then
        cat "$out"
    fi
    CEIL_RPS[$key]=$(kv hsm_ceiling: ops_per_s "$out" | awk '{ printf "%.0f", $1 }')
    CEIL_CPU[$key]=$(kv hsm_ceiling: cpu_us_per_op "$out")
    CEIL_P50[$key]=$(kv hsm_ceiling: p50_us "$out")
    CEIL_P99[$key]=$(kv hsm_ceiling: p99_us "$out")
}

# Part 3, one round of one operation: what the audit costs. skd with audit
# off and on at the same concurrency, and the ceiling without and with the
# record's signature, in the same round (the order flips every round).
# The audit's cost per call (capacity time: 1e6 / ops/s, both cores) is
# compared with the cost of its one extra signature in the ceiling.
audit_cost() {
    local op=$1 round=$2 c=${PEAK_C[$1]} saved=$AUDIT a
    local order=(0 1)
    [ $((round % 2)) = 1 ] || order=(1 0)
    for a in "${order[@]}"; do
        AUDIT=$a
        start_skd
        warm_up "$op" "$c"
        measure "$op" "$c" 0 "$TMP/wrk-$op-audit$a-$round.txt"
        stop_server
        check_audit
        if [ "$a" = 1 ]; then
            # skd logs at shutdown: "audit: N records written in M batches (X per batch)"
            AC_BATCH[$op,$round]=$(sed -n 's/.*records written in [0-9]* batches (\([0-9.]*\) per batch).*/\1/p' \
                "$TMP/skd.log" | tail -n 1)
        fi
        AC_RPS[$op,$a,$round]=$M_RPS
        AC_CPU[$op,$a,$round]=$M_CPUOP
        ceiling "$op" "$round" "$op,a$a,$round"
    done
    AUDIT=$saved
    AC_RATIO[$op,$round]=$(awk -v on="${AC_RPS[$op,1,$round]}" -v off="${AC_RPS[$op,0,$round]}" \
        -v c1="${CEIL_RPS[$op,a1,$round]}" -v c0="${CEIL_RPS[$op,a0,$round]}" \
        'BEGIN { s = 1e6 / c1 - 1e6 / c0; printf "%.2f", (on > 0 && off > 0 && s > 0 ? (1e6 / on - 1e6 / off) / s : 99) }')
    AC_CPU_RATIO[$op,$round]=$(awk -v on="${AC_CPU[$op,1,$round]}" -v off="${AC_CPU[$op,0,$round]}" \
        -v c1="${CEIL_CPU[$op,a1,$round]}" -v c0="${CEIL_CPU[$op,a0,$round]}" \
        'BEGIN { s = c1 - c0; printf "%.2f", (s > 0 ? (on - off) / s : 99) }')
}

# Values of array NAME for keys PREFIX,1 .. PREFIX,REPEAT.
per_round() {
    local -n arr=$1
    local r
    for r in $(seq "$REPEAT"); do
        printf '%s ' "${arr[$2,$r]}"
    done
}

# Median over the rounds of array NAME at PREFIX.
med() {
    local vals
    read -r -a vals <<<"$(per_round "$1" "$2")"
    median "${vals[@]}"
}

# "[a b c]" of the rounds' values when there is more than one round.
runs() {
    if [ "$REPEAT" -gt 1 ]; then
        printf '  [%s]' "$(per_round "$1" "$2" | sed 's/ $//')"
    fi
}

# ---- main ----

echo "bench: $(nproc) CPUs ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)), $("$SKD" --version), $(softhsm2-util --version 2>/dev/null | sed 's/^/SoftHSM /')"

# Anything else running skews the numbers: look at the CPUs for one second.
idle=$(cpu_ticks)
sleep 1
pct=$(busy_pct "$idle" "$(cpu_ticks)")
if [ "$pct" -gt 15 ]; then
    echo "bench: warning: the CPUs were $pct% busy before the benchmark; other load makes the numbers noisy" >&2
fi

setup_stack
start_skd
prepare_bodies
stop_server
echo "bench: SoftHSM token in $TMP, skd worker_threads = $WORKERS, $([ "$LOGGING" = 1 ] && echo "access log on" || echo "access log off"), secrets wrapped $WRAP_ALG to an RSA-4096 key"
if [ "$AUDIT" = 1 ]; then
    echo "bench: audit on: skd signs and fsyncs one record per call (records under $AUDIT_ROOT, $(df -PT "$AUDIT_ROOT" | awk 'NR == 2 { print $2 }')); the ceiling does one more hsm_sign per call"
else
    echo "bench: audit off: skd with SKD_BENCH_NO_AUDIT=1, the ceiling without the record's signature"
fi
echo "bench: part 1, per operation and concurrency N: wrk -t1 -cN -d${DURATION}s, closed loop (after ${WARMUP}s warm-up per operation)"
echo "bench: part 2, per operation: skd at the best N of part 1, then at half that rate with $MAX_CONNS connections, and bench/hsm_ceiling --threads $WORKERS -s $DURATION with skd stopped"
if [ "$REPEAT" -gt 1 ]; then
    echo "bench: $REPEAT rounds of each part; medians shown, single rounds in brackets"
fi

# Part 1: the closed-loop sweep.
for round in $(seq "$REPEAT"); do
    sweep "$round"
done
for op in "${OPS[@]}"; do
    best=0
    for c in "${CONNS[@]}"; do
        rate_c=$(med RPS "$op,$c")
        if [ "$rate_c" -gt "$best" ]; then
            best=$rate_c
            PEAK_C[$op]=$c
        fi
    done
done

# Part 2: skd at its peak concurrency and the ceiling, right after each other
# (every other round the ceiling first), so that the ratio of each pair sees
# the same state of the machine; then the median of those ratios.
for round in $(seq "$REPEAT"); do
    for op in "${OPS[@]}"; do
        if [ $((round % 2)) = 1 ]; then
            skd_peak "$op" "$round"
            ceiling "$op" "$round"
        else
            ceiling "$op" "$round"
            skd_peak "$op" "$round"
        fi
        RATIO[$op,$round]=$(awk -v a="${PEAK[$op,$round]}" -v b="${CEIL_RPS[$op,$round]}" \
            'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    done
done

# Part 3: the audit's cost against its one extra signature, and the floor of
# that cost on this filesystem: the record files alone (bench/audit_files,
# the writer's own code), per record at 1, 4 and 16 records per batch.
if [ "$AUDIT_COST" = 1 ]; then
    "$AUDIT_FILES" "$AUDIT_ROOT/files" 2000 1 4 16 >"$TMP/audit-files.txt" || die "bench/audit_files failed"
    for b in 1 4 16; do
        FILES_US[$b]=$(awk -v b="$b" '$2 == "batch=" b { split($5, a, "="); print a[2] }' "$TMP/audit-files.txt")
    done
    for round in $(seq "$REPEAT"); do
        for op in "${OPS[@]}"; do
            audit_cost "$op" "$round"
        done
    done
fi

for op in "${OPS[@]}"; do
    echo
    echo "$op-secret, skd worker_threads = $WORKERS, closed loop:"
    printf '  %6s %9s %9s %9s %12s %6s\n' conns "ops/s" p50 p99 "skd cpu/op" busy
    for c in "${CONNS[@]}"; do
        printf '  %6s %9s %9s %9s %12s %5s%%%s\n' "$c" "$(med RPS "$op,$c")" "$(human_us "$(med P50 "$op,$c")")" \
            "$(human_us "$(med P99 "$op,$c")")" "$(med CPUOP "$op,$c")us" "$(med BUSY "$op,$c")" "$(runs RPS "$op,$c")"
    done
    c=${PEAK_C[$op]}
    printf '  skd peak        %6s ops/s at c=%s%s\n' "$(med PEAK "$op")" "$c" "$(runs PEAK "$op")"
    printf '  hsm ceiling     %6s ops/s (%s threads, no HTTP; latency p50/p99 %s/%s)%s\n' "$(med CEIL_RPS "$op")" \
        "$WORKERS" "$(human_us "$(med CEIL_P50 "$op")")" "$(human_us "$(med CEIL_P99 "$op")")" "$(runs CEIL_RPS "$op")"
    ratio=$(med RATIO "$op")
    verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.85 ? "goal >= 0.85 met" : "below the 0.85 goal") }')
    printf '  peak/ceiling    %6s (%s)%s\n' "$ratio" "$verdict" "$(runs RATIO "$op")"
    # CPU time per call, skd at its peak against the token alone: what the
    # ratio would be with the client on another machine and nothing else
    # running (less sensitive to other load than ops/s).
    skd_cpu=$(med PEAK_CPU "$op")
    ceil_cpu=$(med CEIL_CPU "$op")
    printf '  cpu/op          skd %sus, ceiling %sus: ceiling/skd %s\n' "$skd_cpu" "$ceil_cpu" \
        "$(awk -v a="$ceil_cpu" -v b="$skd_cpu" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
    hp99=$(med HALF_P99 "$op")
    verdict=$(awk -v v="$hp99" 'BEGIN { print (v < 10000 ? "goal < 10ms met" : "above the 10ms goal") }')
    printf '  half the peak   %6s req/s fixed rate: %s ops/s, p50 %s, p99 %s, CPUs %s%% busy (%s)' \
        "$(med HALF_RATE "$op")" "$(med HALF_RPS "$op")" "$(human_us "$(med HALF_P50 "$op")")" \
        "$(human_us "$hp99")" "$(med HALF_BUSY "$op")" "$verdict"
    if [ "$REPEAT" -gt 1 ]; then
        printf '  [p99 %s]' "$(for v in $(per_round HALF_P99 "$op"); do printf '%s ' "$(human_us "$v")"; done | sed 's/ $//')"
    fi
    echo
    # The closed-loop concurrency whose rate is closest to half the peak.
    half=$(awk -v p="$(med PEAK "$op")" 'BEGIN { print p / 2 }')
    best_c="" best_d=""
    for c in "${CONNS[@]}"; do
        d=$(awk -v a="$(med RPS "$op,$c")" -v h="$half" 'BEGIN { d = a - h; print (d < 0 ? -d : d) }')
        if [ -z "$best_d" ] || awk -v a="$d" -v b="$best_d" 'BEGIN { exit !(a < b) }'; then
            best_c=$c best_d=$d
        fi
    done
    printf '  closed loop nearest half the peak: c=%s, %s ops/s, p99 %s\n' "$best_c" "$(med RPS "$op,$best_c")" \
        "$(human_us "$(med P99 "$op,$best_c")")"
    if [ "$AUDIT_COST" = 1 ]; then
        c=${PEAK_C[$op]}
        off=$(med AC_RPS "$op,0") on=$(med AC_RPS "$op,1") c0=$(med CEIL_RPS "$op,a0") c1=$(med CEIL_RPS "$op,a1")
        printf '  audit cost      at c=%s: skd %s ops/s audit off, %s on; ceiling %s without the record signature, %s with%s\n' \
            "$c" "$off" "$on" "$c0" "$c1" "$(runs AC_RATIO "$op")"
        ratio=$(med AC_RATIO "$op")
        verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.1 ? "goal <= 1.1 met" : "above the 1.1 goal") }')
        printf '  audit/signature %6s (time per call the audit adds to skd over the time one signature adds to the ceiling; %s)\n' \
            "$ratio" "$verdict"
        printf '  same in CPU     %6s (skd cpu/op %sus off, %sus on; ceiling %sus, %sus)%s\n' "$(med AC_CPU_RATIO "$op")" \
            "$(med AC_CPU "$op,0")" "$(med AC_CPU "$op,1")" "$(med CEIL_CPU "$op,a0")" "$(med CEIL_CPU "$op,a1")" \
            "$(runs AC_CPU_RATIO "$op")"
        sig=$(awk -v a="$(med CEIL_CPU "$op,a1")" -v b="$(med CEIL_CPU "$op,a0")" 'BEGIN { print a - b }')
        printf '  records/batch   %6s (skd at c=%s, audit on)%s\n' "$(med AC_BATCH "$op")" "$c" "$(runs AC_BATCH "$op")"
        printf '  files alone     %s/%s/%sus of machine time per record at 1/4/16 per batch = %s of the signature (%sus); the goal leaves 0.10 for everything but the signature\n' \
            "${FILES_US[1]}" "${FILES_US[4]}" "${FILES_US[16]}" \
            "$(awk -v s="$sig" -v a="${FILES_US[1]}" -v b="${FILES_US[4]}" -v c="${FILES_US[16]}" \
                'BEGIN { if (s > 0) printf "%.2f/%.2f/%.2f", a / s, b / s, c / s; else print "?" }')" "$sig"
    fi
done
