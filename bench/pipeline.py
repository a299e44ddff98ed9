#!/usr/bin/env python3
"""The client side of bench/pipeline.sh (run by it; Python 3 standard
library). Keys, JWS signing (libcrypto through ctypes), the installation
client and DNS queries are tests/integration/skdtest.py's.

  pipeline.py latency   --port P --admin A --sets N --concurrency C --state FILE
      registers N/8 installations (an A record each), then times N challenge
      PUTs from the send to the 200 ready, C at a time; every request is
      signed (and its nonce fetched) before the clock starts. Appends the
      installations and their values to the state file (JSON lines).
  pipeline.py zone      --state FILE --zone OUT --queries OUT [--count N]
      the same records as a zone file for Knot, and a dnsperf query file:
      A and TXT of existing names and some NXDOMAIN, shuffled.
  pipeline.py compare   --port P --port Q --queries FILE [--sample N]
      kdig asks both servers a sample of the queries; fails unless their
      answers match (rcode, flags, every section).
  pipeline.py longpolls --port P --admin A --count N --pid SKD --stop PID,PID
      N pending challenge PUTs on one skd while the DNS servers (PIDs) are
      stopped (SIGSTOP): skd's memory before and after, then SIGCONT and the
      time until every long-poll answered 200 ready.

Every line starting with "RESULT " is a "name value" for the script's summary."""

import argparse
import http.client
import json
import os
import random
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import skdtest  # noqa: E402  (the path above first)
from skdtest import ZONE, InstallationClient, Key, acme_value  # noqa: E402

MAX_VALUES = 8       # challenge values per installation at once (certs/API.md)
PIPELINED = 32       # [limits] max_pipelined: nonce requests sent at once


def result(name, value):
    print("RESULT %s %s" % (name, value), flush=True)


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


# ---------------------------------------------------------------- HTTP

def status(admin):
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
    try:
        c.request("GET", "/installations/status")
        r = c.getresponse()
        return json.loads(r.read())
    finally:
        c.close()


def wait_in_sync(admin, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        st = status(admin)
        if st.get("kvpsend") and all(r["healthy"] and r["in_sync"] for r in st["receivers"]):
            return
        if time.monotonic() > deadline:
            sys.exit("pipeline.py: the DNS servers are not in sync after %d s: %r" % (timeout, st))
        time.sleep(0.05)


def nonces(port, n):
    """n fresh nonces of the skd on port (HEAD /api/v1/nonce, pipelined)."""
    out = []
    with skdtest.Conn("127.0.0.1", port) as c:
        while len(out) < n:
            batch = min(PIPELINED, n - len(out))
            c.send(skdtest.build_request("HEAD", "/api/v1/nonce") * batch)
            for _ in range(batch):
                r = c.read_response(head=True)
                if r.status != 200 or not r.header("Replay-Nonce"):
                    sys.exit("pipeline.py: HEAD /api/v1/nonce: %d" % r.status)
                out.append(r.header("Replay-Nonce"))
    return out


def parse_response(buf):
    """(status, body, rest) once buf holds a whole response, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1")
    m = re.search(r"\r\ncontent-length:\s*(\d+)", head, re.I)
    length = int(m.group(1)) if m else 0
    if len(buf) < end + 4 + length:
        return None
    return int(head[9:12]), buf[end + 4:end + 4 + length], buf[end + 4 + length:]


class _Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.index = None
        self.start = None


def drive(port, requests, concurrency, timeout=120):
    """Sends requests (each a whole HTTP/1.1 request) over `concurrency`
    keep-alive connections, each sending its next request once the answer
    to the previous one is in. Returns [(status, body, seconds)] in request
    order; seconds from the send to the whole answer."""
    sel = selectors.DefaultSelector()
    todo = iter(enumerate(requests))
    results = [None] * len(requests)

    def send_next(conn):
        nxt = next(todo, None)
        if nxt is None:
            sel.unregister(conn.sock)
            conn.sock.close()
            return
        conn.index, req = nxt
        conn.start = time.perf_counter()
        conn.sock.sendall(req)

    for _ in range(min(concurrency, len(requests))):
        conn = _Conn(port)
        sel.register(conn.sock, selectors.EVENT_READ, conn)
        send_next(conn)
    deadline = time.monotonic() + timeout
    while sel.get_map():
        if time.monotonic() > deadline:
            sys.exit("pipeline.py: answers still missing after %d s" % timeout)
        for key, _ in sel.select(1.0):
            conn = key.data
            data = conn.sock.recv(65536)
            if not data:
                sys.exit("pipeline.py: skd closed a connection (request %d)" % conn.index)
            conn.buf += data
            parsed = parse_response(conn.buf)
            if parsed:
                code, body, conn.buf = parsed
                results[conn.index] = (code, body, time.perf_counter() - conn.start)
                send_next(conn)
    sel.close()
    return results


def register(port, count, first_address):
    """count installations with an A record each; their clients."""
    clients = [InstallationClient(port, Key()) for _ in range(count)]
    reqs = [c.raw_request("POST", "/api/v1/installations", {}, n, jwk=True)
            for c, n in zip(clients, nonces(port, count))]
    for c, (code, body, _) in zip(clients, drive(port, reqs, 8)):
        if code != 201:
            sys.exit("pipeline.py: registration: %d %r" % (code, body))
        obj = json.loads(body)
        c.id, c.label = obj["id"], obj["label"]
    for i, c in enumerate(clients):  # in 198.18.0.0/15, the benchmarking range
        c.address = socket.inet_ntoa(struct.pack("!I", 0xC6120001 + first_address + i))
        c.values = []
    reqs = [c.raw_request("PUT", "/api/v1/installations/%s/address" % c.id, {"address": c.address}, n)
            for c, n in zip(clients, nonces(port, count))]
    for code, body, _ in drive(port, reqs, 8):
        if code != 200:
            sys.exit("pipeline.py: address: %d %r" % (code, body))
    return clients


def challenge_requests(port, clients, n, tag):
    """n signed challenge PUTs, MAX_VALUES per installation, values fresh."""
    reqs = []
    for i, nonce in enumerate(nonces(port, n)):
        c = clients[i // MAX_VALUES]
        v = acme_value("%s-%d-%s" % (tag, i, os.urandom(8).hex()))
        c.values.append(v)
        reqs.append(c.raw_request("PUT", c.challenge_path(), {"value": v}, nonce))
    return reqs


def check_ready(results):
    bad = [(code, body) for code, body, _ in results if code != 200 or json.loads(body) != {"status": "ready"}]
    if bad:
        sys.exit("pipeline.py: %d of %d challenge PUTs not 200 ready, e.g. %r" % (len(bad), len(results), bad[:3]))


def save_state(path, clients):
    with open(path, "a") as f:
        for c in clients:
            f.write(json.dumps({"label": c.label, "address": c.address, "values": c.values}) + "\n")


# ---------------------------------------------------------------- a. latency

def cmd_latency(a):
    wait_in_sync(a.admin)
    used = sum(1 for _ in open(a.state)) if os.path.exists(a.state) else 0
    warm_n = 4 * MAX_VALUES
    clients = register(a.port, (a.sets + warm_n + MAX_VALUES - 1) // MAX_VALUES, used)
    warm = challenge_requests(a.port, clients[:warm_n // MAX_VALUES], warm_n, "warm")
    check_ready(drive(a.port, warm, a.concurrency))
    reqs = challenge_requests(a.port, clients[warm_n // MAX_VALUES:], a.sets, "bench")
    start = time.perf_counter()
    results = drive(a.port, reqs, a.concurrency)
    took = time.perf_counter() - start
    check_ready(results)
    save_state(a.state, clients)
    lat = sorted(s for _, _, s in results)
    name = "latency_c%d" % a.concurrency
    print("latency, %d at a time: %d sets in %.2f s (%.0f/s): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms"
          % (a.concurrency, a.sets, took, a.sets / took, 1000 * percentile(lat, 50), 1000 * percentile(lat, 90),
             1000 * percentile(lat, 99), 1000 * lat[-1]))
    result(name + "_p50_ms", "%.2f" % (1000 * percentile(lat, 50)))
    result(name + "_p99_ms", "%.2f" % (1000 * percentile(lat, 99)))
    result(name + "_rate", "%.0f" % (a.sets / took))


# ---------------------------------------------------------------- b. DNS: the same zone for Knot

def cmd_zone(a):
    names = [json.loads(line) for line in open(a.state)]
    lines = ["$ORIGIN %s" % ZONE,
             # skdns's defaults (skdns/skdns.conf.example) and skdtest.skdns_config's records
             "@ 3600 IN SOA ns1.%s hostmaster.%s 1 3600 600 604800 1" % (ZONE, ZONE),
             "@ 3600 IN NS ns1.%s" % ZONE,
             '@ 3600 IN CAA 0 issue "pebble.test"',
             "ns1 3600 IN A 127.0.0.1"]
    for n in names:
        lines.append("%s 1 IN A %s" % (n["label"], n["address"]))
        lines += ['_acme-challenge.%s 1 IN TXT "%s"' % (n["label"], v) for v in n["values"]]
    with open(a.zone, "w") as f:
        f.write("\n".join(lines) + "\n")
    rnd = random.Random(1)
    queries = []
    for i in range(a.count):
        n = rnd.choice(names)
        kind = rnd.random()
        if kind < 0.45:
            queries.append("%s.%s A" % (n["label"], ZONE))
        elif kind < 0.90:
            queries.append("_acme-challenge.%s.%s TXT" % (n["label"], ZONE))
        elif kind < 0.95:
            queries.append("nx%d.%s A" % (i, ZONE))
        else:
            queries.append("_acme-challenge.nx%d.%s TXT" % (i, ZONE))
    with open(a.queries, "w") as f:
        f.write("\n".join(queries) + "\n")
    print("zone: %d names, %d TXT values; %d queries (45%% A, 45%% TXT, 10%% NXDOMAIN)"
          % (len(names), sum(len(n["values"]) for n in names), len(queries)))


def kdig(port, name, rtype):
    out = subprocess.run(["kdig", "@127.0.0.1", "-p", str(port), "+norec", "+noedns", "+timeout=2", name, rtype],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10).stdout.decode()
    st = re.search(r"status: (\w+)", out)
    flags = re.search(r";; Flags: ([a-z ]*);", out)
    size = re.search(r"Received (\d+) B", out)
    rrs = sorted(" ".join(line.split()) for line in out.splitlines() if line.strip() and not line.startswith(";"))
    return (st and st.group(1), flags and flags.group(1), rrs), int(size.group(1)) if size else 0


def cmd_compare(a):
    queries = [line.split() for line in open(a.queries) if line.strip()]
    sample = random.Random(2).sample(queries, min(a.sample, len(queries)))
    sizes = [0, 0]
    for name, rtype in sample:
        (x, sx), (y, sy) = kdig(a.port[0], name, rtype), kdig(a.port[1], name, rtype)
        if x != y:
            sys.exit("pipeline.py: the servers answer %s %s differently:\n%r\n%r" % (name, rtype, x, y))
        sizes[0] += sx
        sizes[1] += sy
    print("compare: %d queries answered alike (bytes answered: %d and %d)" % (len(sample), sizes[0], sizes[1]))


# ---------------------------------------------------------------- c. pending long-polls

def memory(pid):
    """(VmRSS, Pss) of pid in KiB."""
    with open("/proc/%d/status" % pid) as f:
        rss = int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))
    with open("/proc/%d/smaps_rollup" % pid) as f:
        pss = int(re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M).group(1))
    return rss, pss


def connections_open(admin):
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    return int(float(re.search(r"^skd_http_connections_open(?:\{[^}]*\})? (\S+)$", text, re.M).group(1)))


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            sys.exit("pipeline.py: no %s after %d s" % (what, timeout))
        time.sleep(0.05)


def cmd_longpolls(a):
    stopped = [int(p) for p in a.stop.split(",")]
    skdtest.raise_nofile(a.count + 1024)
    wait_in_sync(a.admin)
    t = time.monotonic()
    clients = register(a.port, (a.count + MAX_VALUES - 1) // MAX_VALUES, 65536)
    reqs = challenge_requests(a.port, clients, a.count, "held")
    print("longpolls: %d installations registered and %d PUTs signed in %.1f s"
          % (len(clients), a.count, time.monotonic() - t))
    socks = []
    try:
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        # kvpsend counts a silent receiver as healthy until its lease ends.
        deadline = time.monotonic() + 15
        while any(r["healthy"] for r in status(a.admin)["receivers"]):
            if time.monotonic() > deadline:
                sys.exit("pipeline.py: receivers still healthy 15 s after SIGSTOP")
            time.sleep(0.1)
        time.sleep(0.5)
        before = memory(a.pid)
        t = time.monotonic()
        # The connections first, idle: what a connection costs alone.
        for _ in range(a.count):
            socks.append(socket.create_connection(("127.0.0.1", a.port)))
        wait_until(lambda: connections_open(a.admin) >= a.count + 1, 60, "connections open")
        time.sleep(0.5)
        idle = memory(a.pid)
        # The requests in batches, each let in before the next (well below
        # [server] max_queued_jobs).
        for i in range(0, a.count, 1000):
            for s, req in zip(socks[i:i + 1000], reqs[i:i + 1000]):
                s.sendall(req)
            wait_until(lambda: status(a.admin)["pending_longpolls"] >= min(a.count, i + 1000), 120,
                       "long-polls pending")
        opened = time.monotonic() - t
        time.sleep(1)
        after = memory(a.pid)
        st = status(a.admin)
        if st["pending_longpolls"] != a.count:
            sys.exit("pipeline.py: %d long-polls pending, want %d" % (st["pending_longpolls"], a.count))

        def per(x, y, i):
            return (y[i] - x[i]) * 1024 / a.count
        print("longpolls: %d pending after %.1f s; skd VmRSS %d -> %d (connections open, idle) -> %d KiB, "
              "Pss %d -> %d -> %d KiB" % (a.count, opened, before[0], idle[0], after[0], before[1], idle[1], after[1]))
        print("longpolls: per pending request %.0f B (RSS) / %.0f B (Pss): the idle connection %.0f / %.0f B, "
              "the request on it %.0f / %.0f B" % (per(before, after, 0), per(before, after, 1), per(before, idle, 0),
                                                 per(before, idle, 1), per(idle, after, 0), per(idle, after, 1)))
        result("longpoll_rss_bytes", "%.0f" % per(before, after, 0))
        result("longpoll_pss_bytes", "%.0f" % per(before, after, 1))
        for s in socks:
            s.setblocking(False)
        # Release: the DNS servers run again; every answer must be 200 ready.
        sel = selectors.DefaultSelector()
        bufs = {}
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
            bufs[s] = b""
        done = []
        # skd's view meanwhile: when kvpsend had every value acknowledged.
        samples, sampling = [], threading.Event()

        def sample():
            while not sampling.wait(0.01):
                samples.append((time.monotonic() - t0, status(a.admin)["ready_below"]))
        sampler = threading.Thread(target=sample)
        t0 = time.monotonic()
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        stopped = []
        sampler.start()
        while len(done) < len(socks):
            if time.monotonic() - t0 > 60:
                sys.exit("pipeline.py: %d of %d long-polls answered 60 s after SIGCONT" % (len(done), len(socks)))
            for key, _ in sel.select(1.0):
                s = key.fileobj
                data = s.recv(65536)
                bufs[s] += data
                parsed = parse_response(bufs[s])
                if parsed or not data:
                    sel.unregister(s)
                    done.append((time.monotonic() - t0, parsed))
        sampling.set()
        sampler.join()
        bad = [p for _, p in done if not p or p[0] != 200 or json.loads(p[1]) != {"status": "ready"}]
        if bad:
            sys.exit("pipeline.py: %d long-polls not 200 ready, e.g. %r" % (len(bad), bad[:3]))
        times = sorted(x for x, _ in done)
        final = status(a.admin)["ready_below"]
        acked = min([t for t, rb in samples if rb >= final] or [times[-1]])
        print("longpolls: after SIGCONT of the DNS servers: first answer %.0f ms, half %.0f ms, all %d %.0f ms; "
              "kvpsend had every value acknowledged at %.0f ms (+-10), %.0f ms before the last answer"
              % (1000 * times[0], 1000 * percentile(times, 50), len(times), 1000 * times[-1], 1000 * acked,
                 1000 * (times[-1] - acked)))
        result("longpoll_release_ms", "%.0f" % (1000 * times[-1]))
        result("longpoll_acked_ms", "%.0f" % (1000 * acked))
        released = memory(a.pid)
        print("longpolls: skd VmRSS %d KiB, Pss %d KiB after the release" % released)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        for s in socks:
            s.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    x = sub.add_parser("latency")
    x.add_argument("--port", type=int, required=True)
    x.add_argument("--admin", type=int, required=True)
    x.add_argument("--sets", type=int, default=1000)
    x.add_argument("--concurrency", type=int, default=1)
    x.add_argument("--state", required=True)
    x = sub.add_parser("zone")
    x.add_argument("--state", required=True)
    x.add_argument("--zone", required=True)
    x.add_argument("--queries", required=True)
    x.add_argument("--count", type=int, default=100000)
    x = sub.add_parser("compare")
    x.add_argument("--port", type=int, action="append", required=True)
    x.add_argument("--queries", required=True)
    x.add_argument("--sample", type=int, default=60)
    x = sub.add_parser("longpolls")
    x.add_argument("--port", type=int, required=True)
    x.add_argument("--admin", type=int, required=True)
    x.add_argument("--count", type=int, default=10000)
    x.add_argument("--pid", type=int, required=True)
    x.add_argument("--stop", required=True)
    a = p.parse_args()
    {"latency": cmd_latency, "zone": cmd_zone, "compare": cmd_compare, "longpolls": cmd_longpolls}[a.cmd](a)


if __name__ == "__main__":
    main()
