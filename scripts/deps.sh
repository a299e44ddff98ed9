#!/bin/sh
# Installs every Debian package that skd, its tests and benchmarks need.
# Idempotent: only missing packages are installed; nothing else is downloaded.
set -eu

PACKAGES="
build-essential cmake pkg-config clang libclang-rt-14-dev
libuv1-dev node-llhttp libssl-dev openssl
libp11-kit-dev p11-kit softhsm2
libjansson-dev libinih-dev libsqlite3-dev libcurl4-openssl-dev libcmocka-dev
curl jq procps python3
wrk nginx-light
knot-dnsutils knot dnsperf pebble uacme
cryptsetup-bin libcryptsetup-dev
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi

echo "deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# An apt index older than a day may not know current package versions.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]; then
    apt-get update -q
fi
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
