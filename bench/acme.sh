#!/usr/bin/env bash
# ACME benchmark (issue 6): wall time to issue one certificate for three
# names through the whole pipeline against uacme, with the same pebble binary
# and settings in the same run.
#   sk:    sk cert issue --also --also (three registered installations); the
#          dns-01 values go through skd's REST API, kvpsend, two skdns; pebble
#          resolves through the first skdns.
#   uacme: Debian's uacme with a hook that sets the values in
#          pebble-challtestsrv over its management API (/set-txt,
#          /clear-txt); a second pebble resolves through challtestsrv's DNS.
# Both pebbles: PEBBLE_VA_NOSLEEP=1, -strict, PEBBLE_AUTHZREUSE=0 (every
# order needs fresh validations), PEBBLE_WFE_NONCEREJECT=0 (no injected
# badNonce: less noise). Both clients run with an existing account and an
# EC P-256 certificate key; one untimed warm-up issuance each; then the timed
# issuances alternate.
#
# Usage: bench/acme.sh BUILD_DIR        (from the repo root; `make bench`)
#
# Environment:
#   BENCH_REPEAT  timed issuances per client, interleaved (default 5); the
#                 medians are compared
#   BENCH_KEEP    1: keep the temporary directory (configs, logs, state)
#
# uacme (libcurl with GnuTLS) has no CA bundle option: it runs in a private
# mount namespace (unshare, as root) where /etc/ssl/certs/ca-certificates.crt
# is pebble's listener certificate; nothing outside that namespace changes.
# Fails if a server does not start or an issuance fails. The goal (sk at
# most half of uacme's time) is printed, not enforced.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_build_dir "$@"
SKD=$BUILD_DIR/skd
SKDNS=$BUILD_DIR/skdns
SK=$BUILD_DIR/sk
REPEAT=${BENCH_REPEAT:-5}
SYSTEM_CA=/etc/ssl/certs/ca-certificates.crt

for b in "$SKD" "$SKDNS" "$SK"; do
    [ -x "$b" ] || die "$b not found or not executable (build first: make build)"
done
for tool in pebble pebble-challtestsrv uacme kdig curl openssl python3 unshare od; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/deps.sh installs it)"
done
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive whole number"
[ "$(id -u)" = 0 ] || die "run as root (uacme runs in a private mount namespace to trust pebble)"
[ -f "$SYSTEM_CA" ] || die "$SYSTEM_CA missing (ca-certificates)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/skd-bench-acme.XXXXXX")
SERVER_PID=""
declare -A PIDS=() # name -> pid of what runs in the background
declare -A DNS_PORT=() KV_PORT=() PSK=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local name
    for name in "${!PIDS[@]}"; do
        SERVER_PID=${PIDS[$name]}
        stop_server
    done
    finish "$rc" "$TMP"
}
trap_cleanup

http_up() { curl -s -o /dev/null --max-time 1 "$@"; }

start_skd() {
    local ports
    read -r -a ports <<<"$(free_ports 2)"
    SKD_URL=http://127.0.0.1:${ports[0]}
    cat >"$TMP/skd.conf" <<EOF
[server]
shutdown_timeout_ms = 2000
[public]
listen = 127.0.0.1:${ports[0]}
[admin]
listen = 127.0.0.1:${ports[1]}
[log]
level = info
access_log = true
[store]
path = $TMP/skd.db
[installations]
zone = sk.test.
[kvpsend]
sender_id = 1
receiver = d1 127.0.0.1:${KV_PORT[d1]} ${PSK[d1]}
receiver = d2 127.0.0.1:${KV_PORT[d2]} ${PSK[d2]}
EOF
    "$SKD" serve -c "$TMP/skd.conf" 2>>"$TMP/skd.log" &
    PIDS[skd]=$!
    wait_until skd "$TMP/skd.log" http_up -f "http://127.0.0.1:${ports[1]}/healthcheck"
}

# pebble NAME resolving through DNS (host:port); its directory in DIR_URL[NAME].
declare -A DIR_URL=()
start_pebble() {
    local name=$1 dns=$2 ports
    read -r -a ports <<<"$(free_ports 4)"
    cat >"$TMP/$name.json" <<EOF
{"pebble": {"listenAddress": "127.0.0.1:${ports[0]}", "managementListenAddress": "127.0.0.1:${ports[1]}",
 "certificate": "$TMP/tls-cert.pem", "privateKey": "$TMP/tls-key.pem",
 "httpPort": ${ports[2]}, "tlsPort": ${ports[3]}, "ocspResponderURL": "",
 "externalAccountBindingRequired": false}}
EOF
    PEBBLE_VA_NOSLEEP=1 PEBBLE_AUTHZREUSE=0 PEBBLE_WFE_NONCEREJECT=0 \
        pebble -config "$TMP/$name.json" -dnsserver "$dns" -strict >"$TMP/$name.log" 2>&1 &
    PIDS[$name]=$!
    DIR_URL[$name]=https://127.0.0.1:${ports[0]}/dir
    wait_until "$name" "$TMP/$name.log" http_up --cacert "$TMP/tls-cert.pem" -f "${DIR_URL[$name]}"
}

start_challtestsrv() {
    local ports
    read -r -a ports <<<"$(free_ports 2)"
    CTS_DNS=127.0.0.1:${ports[0]}
    CTS_MGMT=http://127.0.0.1:${ports[1]}
    pebble-challtestsrv -dns01 "$CTS_DNS" -management "127.0.0.1:${ports[1]}" -http01 "" -https01 "" \
        -tlsalpn01 "" >"$TMP/challtestsrv.log" 2>&1 &
    PIDS[challtestsrv]=$!
    wait_until challtestsrv "$TMP/challtestsrv.log" http_up "$CTS_MGMT/"
}

now_ns() { date +%s%N; }
ms() { awk -v v="$1" 'BEGIN { printf "%.0f", v / 1e6 }'; }
# ------------------------------------------------------------ set-up
echo "bench: starting two skdns, skd, pebble-challtestsrv and two pebbles" >&2
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/tls-key.pem" \
    -out "$TMP/tls-cert.pem" -days 2 -subj "/CN=pebble bench" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null || die "openssl req failed"
start_skdns d1
start_skdns d2
start_skd
start_challtestsrv
start_pebble pebble-sk "127.0.0.1:${DNS_PORT[d1]}"
start_pebble pebble-uacme "$CTS_DNS"

# sk: three installations; --state is the first.
SK_DIRS=()
for i in 1 2 3; do
    d=$TMP/sk-$i
    "$SK" cert register --server "$SKD_URL" --state "$d" >"$TMP/register-$i.out" 2>&1 ||
        die "sk cert register failed: $(cat "$TMP/register-$i.out")"
    SK_DIRS+=("$d")
done
sk_issue() {
    "$SK" cert issue --acme "${DIR_URL[pebble-sk]}" --ca-bundle "$TMP/tls-cert.pem" --state "${SK_DIRS[0]}" \
        --also "${SK_DIRS[1]}" --also "${SK_DIRS[2]}" >"$TMP/sk-issue.out" 2>&1
}

# uacme: its hook sets and clears TXT records in challtestsrv.
cat >"$TMP/uacme-hook.sh" <<EOF
#!/bin/sh
# uacme hook: METHOD TYPE IDENT TOKEN AUTH; dns-01 only.
[ "\$2" = dns-01 ] || exit 1
case "\$1" in
begin) exec curl -sf -o /dev/null -d "{\"host\":\"_acme-challenge.\$3.\",\"value\":\"\$5\"}" "$CTS_MGMT/set-txt" ;;
done | failed) exec curl -sf -o /dev/null -d "{\"host\":\"_acme-challenge.\$3.\"}" "$CTS_MGMT/clear-txt" ;;
esac
exit 1
EOF
chmod 755 "$TMP/uacme-hook.sh"
UACME_NAMES=(u1.sk.test u2.sk.test u3.sk.test)
# In a mount namespace of its own where the system's CA bundle is pebble's certificate.
uacme_run() {
    unshare --mount --propagation private sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh \
        "$TMP/tls-cert.pem" "$SYSTEM_CA" uacme -c "$TMP/uacme" -a "${DIR_URL[pebble-uacme]}" -t EC -y -o "$@"
}
uacme_issue() {
    uacme_run -f -h "$TMP/uacme-hook.sh" issue "${UACME_NAMES[@]}" >"$TMP/uacme-issue.out" 2>&1
}
uacme_run new >"$TMP/uacme-new.out" 2>&1 || die "uacme new failed: $(cat "$TMP/uacme-new.out")"

# Untimed warm-up: sk makes its account here; kvpsend's first snapshot may
# still be on its way (a first challenge PUT may be answered 503): retried.
sk_issue || { sleep 1 && sk_issue; } || die "sk cert issue (warm-up) failed: $(tail -n 5 "$TMP/sk-issue.out")"
uacme_issue || die "uacme issue (warm-up) failed: $(tail -n 5 "$TMP/uacme-issue.out")"

# ------------------------------------------------------------ measured
T_sk=()
T_uacme=()
for r in $(seq "$REPEAT"); do
    for client in sk uacme; do
        # uacme keeps the last certificate as cert-<unix time>.pem: two runs in one second collide.
        rm -f "$TMP/uacme/${UACME_NAMES[0]}"/cert-*.pem
        t0=$(now_ns)
        "${client}_issue" || die "$client issue (run $r) failed: $(tail -n 5 "$TMP/$client-issue.out")"
        t1=$(now_ns)
        eval "T_$client+=($((t1 - t0)))"
    done
done
openssl verify -CAfile <(curl -sf --cacert "$TMP/tls-cert.pem" \
    "https://$(sed -n 's/.*"managementListenAddress": "\([^"]*\)".*/\1/p' "$TMP/pebble-sk.json")/roots/0") \
    -untrusted "${SK_DIRS[0]}/cert.pem" "${SK_DIRS[0]}/cert.pem" >/dev/null || die "sk's chain does not verify"

med_sk=$(median "${T_sk[@]}")
med_uacme=$(median "${T_uacme[@]}")
list() { for v in "$@"; do printf ' %s' "$(ms "$v")"; done; }
echo "bench: three names per order, $REPEAT issuances per client, interleaved; medians (single runs in brackets), ms"
printf 'sk cert issue   %6s  [%s ]\n' "$(ms "$med_sk")" "$(list "${T_sk[@]}")"
printf 'uacme issue     %6s  [%s ]\n' "$(ms "$med_uacme")" "$(list "${T_uacme[@]}")"
awk -v a="$med_sk" -v b="$med_uacme" 'BEGIN { printf "sk / uacme      %.2f   (goal: <= 0.50)\n", a / b }'
