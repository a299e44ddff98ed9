#!/bin/sh
# make run: creates ./var/ on first use and runs the demo stack in the
# foreground on the addresses of ../shared/spec/demo-stack.md. Ctrl-C stops it.
set -eu

BUILD=${1:-build}
VAR=${SKD_VAR:-var}
PUBLIC=127.0.0.1:8080
ADMIN=127.0.0.1:8081
DNS=127.0.0.1:5353
KVPSYNC=127.0.0.1:5354
ZONE=sk.test.
TENANT=vpc-0123456789abcdef0
# The demo token's PIN. A real deployment types its PIN into the admin API
# (PUT /hsm-pin); skd never reads it from a file.
DEMO_PIN=1234
SKD="$BUILD/skd"
SKDNS="$BUILD/skdns"

mkdir -p "$VAR"
VAR_ABS=$(cd "$VAR" && pwd)
export SOFTHSM2_CONF="$VAR_ABS/softhsm/softhsm2.conf"

if [ ! -f "$VAR/skd.conf" ]; then
    cat > "$VAR/skd.conf" <<CONF
; Demo configuration written by scripts/run.sh; every option: skd.conf.example.
[public]
listen = $PUBLIC

[admin]
listen = $ADMIN

[hsm]
module = /usr/lib/softhsm/libsofthsm2.so
token_label = skd

[store]
path = $VAR_ABS/skd.db

[log]
level = info
access_log = true

[installations]
zone = $ZONE

[kvpsend]
sender_id = 1
receiver = dns1 $KVPSYNC $VAR_ABS/dns/dns1.psk
CONF
    echo "run: created $VAR/skd.conf"
fi

# The key skd's kvpsend shares with skdns's kvpsync receiver, and skdns's config.
mkdir -p "$VAR/dns"
if [ ! -f "$VAR/dns/dns1.psk" ]; then
    (umask 077 && openssl rand -hex 32 > "$VAR/dns/dns1.psk")
fi
if [ ! -f "$VAR/skdns.conf" ]; then
    cat > "$VAR/skdns.conf" <<CONF
; Demo configuration written by scripts/run.sh; every option: skdns/skdns.conf.example.
[dns]
listen = $DNS
zone = $ZONE
ns = ns1.$ZONE ${DNS%:*}
caa_issue = pebble.test

[kvpsync]
listen = $KVPSYNC
sender = 1 $VAR_ABS/dns/dns1.psk

[log]
level = info
CONF
    echo "run: created $VAR/skdns.conf"
fi

# A SoftHSM token of our own under ./var, with skd's keys made by skd init.
if [ ! -f "$SOFTHSM2_CONF" ]; then
    mkdir -p "$VAR/softhsm/tokens"
    printf 'directories.tokendir = %s/softhsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$VAR_ABS" > "$SOFTHSM2_CONF"
    softhsm2-util --init-token --free --label skd --pin "$DEMO_PIN" --so-pin 87654321 >/dev/null
    echo "$DEMO_PIN" | "$SKD" init -c "$VAR/skd.conf" --public-key "$VAR/api_public_key.pem"
fi

# The demo tenant and its two instances.
if [ ! -f "$VAR/skd.db" ]; then
    "$SKD" tenant add -c "$VAR/skd.conf" --id $TENANT --account 111122223333 --networks 127.0.0.0/8
    "$SKD" instance add -c "$VAR/skd.conf" --tenant $TENANT --id i-0123456789abcdef0 --ip 127.0.0.1
    "$SKD" instance add -c "$VAR/skd.conf" --tenant $TENANT --id i-0fedcba9876543210 --ip 127.0.0.2
fi

# What /etc/sk/ holds on an instance.
mkdir -p "$VAR/sk"
echo "http://$PUBLIC/v1" > "$VAR/sk/api_url"
cp "$VAR/api_public_key.pem" "$VAR/sk/api_public_key.pem"

"$SKDNS" -c "$VAR/skdns.conf" &
SKDNS_PID=$!
"$SKD" serve -c "$VAR/skd.conf" &
SKD_PID=$!
trap 'kill -TERM $SKD_PID $SKDNS_PID 2>/dev/null || true' INT TERM

# Wait until the admin listener answers (or skd has exited), then hand it the PIN.
i=0
until curl -s -o /dev/null "http://$ADMIN/healthcheck"; do
    if ! kill -0 $SKD_PID 2>/dev/null || [ $i -ge 50 ]; then
        wait $SKD_PID || true
        kill -TERM $SKDNS_PID 2>/dev/null || true
        echo "run: skd did not start (see the lines above)" >&2
        exit 1
    fi
    i=$((i + 1))
    sleep 0.1
done
printf '{"pin":"%s"}' "$DEMO_PIN" | curl -s -f -o /dev/null -X PUT --data-binary @- "http://$ADMIN/hsm-pin" ||
    { echo "run: the HSM PIN was refused" >&2; kill -TERM $SKD_PID $SKDNS_PID; wait $SKD_PID || true; exit 1; }

cat <<INFO

skd is running (pid $SKD_PID), state in ./$VAR/
  public API   http://$PUBLIC        key release: /v1/encryption/{InstanceId}/...
  admin API    http://$ADMIN        loopback only: /metrics, /hsm-pin
  HSM          SoftHSM token "skd" in ./$VAR/softhsm (SOFTHSM2_CONF=$SOFTHSM2_CONF)
  tenant       $TENANT (127.0.0.0/8): i-0123456789abcdef0 at 127.0.0.1,
               i-0fedcba9876543210 at 127.0.0.2
  signing key  ./$VAR/api_public_key.pem
  audit        ./$VAR/audit/<tenant>/<seq>.json (check: $BUILD/sk audit verify $VAR/audit --pubkey $VAR/api_public_key.pem)
  skdns        DNS for $ZONE on $DNS (UDP and TCP, pid $SKDNS_PID), fed by skd's kvpsend on $KVPSYNC
  installations  http://$PUBLIC/api/v1/installations (certs/API.md), push state: http://$ADMIN/installations/status

Try:
  curl -i http://$PUBLIC/healthcheck
  curl -s http://$PUBLIC/v1/public-signing-key
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out /tmp/rsa.pem
  curl -s -X POST http://$PUBLIC/v1/encryption/i-0123456789abcdef0/generate-secret \\
    -d "{\\"rsa_wrapping_key\\":\\"\$(openssl pkey -in /tmp/rsa.pem -pubout -outform DER | base64 -w0)\\",
         \\"volume_uuid\\":\\"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\\"}"
  curl -s http://$ADMIN/metrics | head -20
  kdig @${DNS%:*} -p ${DNS#*:} SOA $ZONE
  curl -s http://$ADMIN/installations/status

Ctrl-C stops it.
INFO

status=0
wait $SKD_PID || status=$?
# A signal interrupted wait: let skd finish its graceful shutdown.
if kill -0 $SKD_PID 2>/dev/null; then
    wait $SKD_PID || status=$?
fi
kill -TERM $SKDNS_PID 2>/dev/null || true
wait $SKDNS_PID 2>/dev/null || true
exit $status
