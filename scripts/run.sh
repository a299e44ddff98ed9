#!/bin/sh
# make run: creates ./var/ on first use and runs the demo stack in the
# foreground on the addresses of ../shared/spec/demo-stack.md. Ctrl-C stops it.
set -eu

BUILD=${1:-build}
VAR=${SKD_VAR:-var}
PUBLIC=127.0.0.1:8080
ADMIN=127.0.0.1:8081

mkdir -p "$VAR"
if [ ! -f "$VAR/skd.conf" ]; then
    cat > "$VAR/skd.conf" <<CONF
; Demo configuration written by scripts/run.sh; every option: skd.conf.example.
[public]
listen = $PUBLIC

[admin]
listen = $ADMIN

[log]
level = info
access_log = true
CONF
    echo "run: created $VAR/skd.conf"
fi

"$BUILD/skd" serve -c "$VAR/skd.conf" &
SKD_PID=$!
trap 'kill -TERM $SKD_PID 2>/dev/null || true' INT TERM

# Wait until the public listener answers (or skd has exited).
i=0
until curl -s -o /dev/null "http://$PUBLIC/healthcheck"; do
    if ! kill -0 $SKD_PID 2>/dev/null || [ $i -ge 50 ]; then
        wait $SKD_PID || true
        echo "run: skd did not start (see the lines above)" >&2
        exit 1
    fi
    i=$((i + 1))
    sleep 0.1
done

cat <<INFO

skd is running (pid $SKD_PID), state in ./$VAR/
  public API   http://$PUBLIC
  admin API    http://$ADMIN   (loopback only)

Try:
  curl -i http://$PUBLIC/healthcheck
  curl -s http://$ADMIN/metrics | head -20
  curl -i http://$PUBLIC/v1/nope

Ctrl-C stops it.
INFO

status=0
wait $SKD_PID || status=$?
# A signal interrupted wait: let skd finish its graceful shutdown.
if kill -0 $SKD_PID 2>/dev/null; then
    wait $SKD_PID || status=$?
fi
exit $status
