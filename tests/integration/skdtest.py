"""Shared harness of skd's integration tests (Python 3 standard library only).

A test starts a server with

    with Server(SKD, {"limits": {"header_timeout_ms": 1000}}) as srv:
        c = srv.connect()
        c.send_request("GET", "/healthcheck")
        self.assertEqual(c.read_response().status, 204)

Server picks free loopback ports, writes a temporary configuration, starts
the binary with stderr in a log file and waits until every listener accepts
connections. Leaving the block stops it with SIGTERM (SIGKILL after 15 s) and
checks that it exited 0 and that its log holds no ERROR line and no sanitizer
report. Everything it made is removed.

The key-API tests stand on a KeyStack: a SoftHSM token with skd's keys
(`skd init`), a store and a CLI configuration; stack.server() starts skd on
them and gives it the PIN.

The installation pieces (certs/API.md) are shared by test_installations.py,
test_pipeline.py and bench/pipeline.py: Key (a P-256 key, ES256 signatures
through libcrypto with ctypes), InstallationClient (signed requests, nonces,
raw pre-signed requests for benchmarks), psk_file (kvpsync keys), Skdns (a
skdns process; kill() and restart() keep its ports) and DnsClient /
dns_query (DNS over raw UDP). Server.kill() and restart() crash and restart
skd on the same ports.

Scripts end with skdtest.main(), which runs the unittest cases and prints
"N passed, M failed" as the last line.
"""

import base64
import ctypes
import ctypes.util
import hashlib
import http.client
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SKD = os.environ.get("SKD") or os.path.join(ROOT, "build", "skd")
SKD_TESTSERVER = os.environ.get("SKD_TESTSERVER") or os.path.join(ROOT, "build", "tests", "skd-testserver")

START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0
IO_TIMEOUT = 10.0  # default for one socket read; generous for sanitizer builds

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error",
                     "ThreadSanitizer")


# ---------------------------------------------------------------- ports

def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def have_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def wait_port(host, port, timeout=START_TIMEOUT, proc=None):
    """Waits until (host, port) accepts a TCP connection; False on timeout or
    when proc exited meanwhile."""
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect((host, port))
                return True
        except OSError:
            time.sleep(0.05)
    return False


# ---------------------------------------------------------------- config

def render_config(sections):
    """{"server": {"worker_threads": 2}, "public": {"listen": ["a", "b"]}} -> INI text."""
    lines = []
    for section, options in sections.items():
        lines.append("[%s]" % section)
        for name, value in options.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if isinstance(v, bool):
                    v = "true" if v else "false"
                lines.append("%s = %s" % (name, v))
        lines.append("")
    return "\n".join(lines)


def merge(base, extra):
    out = {k: dict(v) for k, v in base.items()}
    for section, options in (extra or {}).items():
        out.setdefault(section, {}).update(options)
    return out


# ---------------------------------------------------------------- the server

class ServerError(Exception):
    pass


class Server:
    """A running skd (or skd-testserver) on free loopback ports.

    config: extra options by section, merged over the defaults (public listen
    and admin listen on fresh ports, log level info). A value "{port}",
    "{admin_port}", "{tls_port}" or "{ipv6_port}" is replaced. tls=(cert, key)
    adds a TLS listener; ipv6=True a public listener on [::1].
    check_log: verify on exit that the log has no ERROR line.
    expect_exit: the exit status __exit__ insists on (None: don't check).
    extra_text: appended to the configuration file as it is.
    """

    def __init__(self, binary, config=None, tls=None, ipv6=False, check_log=True, expect_exit=0,
                 env=None, extra_text=""):
        self.binary = binary
        self.extra_text = extra_text
        self.extra = config or {}
        self.tls = tls
        self.ipv6 = ipv6
        self.check_log = check_log
        self.expect_exit = expect_exit
        self.env = env
        self.dir = None
        self.proc = None
        self.returncode = None
        self.log_path = None
        self.final_log = None
        self.config_path = None
        self.port = self.admin_port = self.tls_port = self.ipv6_port = None
        self.started = False  # between a successful __enter__ and __exit__

    # -- life cycle

    def __enter__(self):
        if self.started:  # started already (KeyStack.server): a with block just takes it over
            return self
        self.dir = tempfile.mkdtemp(prefix="skdtest-")
        try:
            # Another test may grab a port between our probe and the bind:
            # retry with fresh ports when the bind fails.
            for attempt in range(5):
                if self._start():
                    self.started = True
                    return self
                if attempt < 4 and "address already in use" in self.log().lower():
                    continue
                raise ServerError("server did not start; log:\n" + self.log())
            raise ServerError("no free ports after 5 attempts; log:\n" + self.log())
        except BaseException:
            self._kill()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _start(self):
        self.port = free_port()
        self.admin_port = free_port()
        self.tls_port = free_port() if self.tls else None
        self.ipv6_port = free_port(socket.AF_INET6, "::1") if self.ipv6 else None
        public = {"listen": ["127.0.0.1:%d" % self.port]}
        if self.ipv6:
            public["listen"].append("[::1]:%d" % self.ipv6_port)
        if self.tls:
            public["tls_listen"] = "127.0.0.1:%d" % self.tls_port
            public["tls_cert"], public["tls_key"] = self.tls
        sections = {
            "server": {},
            "limits": {},
            "public": public,
            "admin": {"listen": "127.0.0.1:%d" % self.admin_port},
            "log": {"level": "info", "access_log": True},
        }
        sections = merge(sections, self.extra)
        ports = dict(port=self.port, admin_port=self.admin_port, tls_port=self.tls_port, ipv6_port=self.ipv6_port)
        for opts in sections.values():
            for k, v in opts.items():
                if isinstance(v, str):
                    opts[k] = v.format(**ports)
                elif isinstance(v, (list, tuple)):
                    opts[k] = [x.format(**ports) if isinstance(x, str) else x for x in v]
        self.config_path = os.path.join(self.dir, "skd.conf")
        with open(self.config_path, "w") as f:
            f.write(render_config(sections) + self.extra_text)
        self.log_path = os.path.join(self.dir, "skd.log")
        return self._launch("wb")

    def _launch(self, log_mode):
        """Starts the process on the written configuration; True once every
        listener accepts connections."""
        args = [self.binary, "serve", "-c", self.config_path]
        if os.path.basename(self.binary).startswith("skd-testserver"):
            args = [self.binary, "-c", self.config_path]
        env = dict(os.environ)
        # Sanitizer builds: report to stderr (our log) and fail loudly.
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if self.env:
            env.update(self.env)
        with open(self.log_path, log_mode) as logf:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env)
        self.returncode = None
        targets = [("127.0.0.1", self.port), ("127.0.0.1", self.admin_port)]
        if self.tls:
            targets.append(("127.0.0.1", self.tls_port))
        if self.ipv6:
            targets.append(("::1", self.ipv6_port))
        deadline = time.monotonic() + START_TIMEOUT
        for host, port in targets:
            if not wait_port(host, port, max(0.1, deadline - time.monotonic()), self.proc):
                self._kill()
                return False
        return True

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.returncode = self.proc.returncode

    def kill(self):
        """SIGKILL, as a crash: nothing is cleaned up. restart() starts it again."""
        self._kill()

    def restart(self):
        """Starts the process again with the same configuration and ports
        (after kill() or stop()); its log goes on in the same file."""
        if self.proc.poll() is None:
            raise ServerError("restart of a running server")
        if not self._launch("ab"):
            raise ServerError("server did not restart; log:\n" + self.log()[-6000:])

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for the process to exit; returns its status or None."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL after timeout; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.returncode = self.proc.returncode
                raise AssertionError("server did not exit within %.0f s of SIGTERM; log:\n%s"
                                     % (timeout, self.log()[-4000:]))
        self.returncode = self.proc.returncode
        return self.returncode

    def __exit__(self, exc_type, exc, tb):
        try:
            failure = None
            try:
                self.stop()
            except AssertionError as e:
                failure = str(e)
            if failure is None:
                failure = self.problems()
            if failure and exc_type is None:
                raise AssertionError(failure)
            if failure:
                sys.stderr.write("(also: %s)\n" % failure)
        finally:
            self.started = False
            self.final_log = self.log()  # still readable after the files are gone
            if exc_type is not None:
                sys.stderr.write("---- server log (%s) ----\n%s\n----\n" % (self.binary, self.log()[-6000:]))
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def problems(self):
        """What is wrong with the exit: status, ERROR lines, sanitizer reports."""
        text = self.log()
        out = []
        if self.expect_exit is not None and self.returncode != self.expect_exit:
            out.append("exit status %r, want %r" % (self.returncode, self.expect_exit))
        if self.check_log:
            errors = [line for line in text.splitlines() if re.search(r"\bERROR\b", line)]
            if errors:
                out.append("ERROR lines in the log: %r" % errors[:5])
        reports = [m for m in SANITIZER_MARKERS if m in text]
        if reports:
            out.append("sanitizer report in the log (%s)" % ", ".join(reports))
        if out:
            return "; ".join(out) + "\n---- log ----\n" + text[-6000:]
        return None

    # -- observing

    def log(self):
        if self.final_log is not None:
            return self.final_log
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=5.0):
        """Waits until the log matches the regex pattern; returns the match or None."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log(), re.M)
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    def access_lines(self):
        return [line for line in self.log().splitlines() if " ACCESS " in line]

    def alive(self):
        return self.proc.poll() is None

    # -- talking to it

    def connect(self, port=None, host="127.0.0.1", timeout=IO_TIMEOUT, source=None):
        """A raw client connection; source: the local address to bind first (e.g. "127.0.0.9")."""
        return Conn(host, port or self.port, timeout, source=source)

    def request(self, method, path, port=None, **kw):
        """One request on a fresh connection; returns the Response."""
        with self.connect(port) as c:
            c.send_request(method, path, **kw)
            return c.read_response(head=(method == "HEAD"))

    def metrics(self, conn=None):
        """Scrapes GET /metrics on a fresh admin connection, or on conn (kept open)."""
        if conn is None:
            r = self.request("GET", "/metrics", port=self.admin_port)
        else:
            conn.send_request("GET", "/metrics")
            r = conn.read_response()
        if r.status != 200:
            raise AssertionError("GET /metrics: %d %r" % (r.status, r.body))
        return Metrics(r.body.decode())

    def settle(self, conn, others=0, timeout=5.0):
        """Waits until only conn (an admin connection used for scraping) and
        others more connections are open, e.g. after the start-up probes;
        returns the last Metrics."""
        last = [None]

        def check():
            last[0] = self.metrics(conn)
            return last[0].get("skd_http_connections_open") == 1 + others
        if not wait_for(check, timeout):
            raise AssertionError("connections_open stays at %s, want %d"
                                 % (last[0].get("skd_http_connections_open"), 1 + others))
        return last[0]

    def url(self, path="", tls=False):
        if tls:
            return "https://127.0.0.1:%d%s" % (self.tls_port, path)
        return "http://127.0.0.1:%d%s" % (self.port, path)


# ---------------------------------------------------------------- HTTP over raw sockets

class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        import json
        return json.loads(self.body.decode())

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


class Closed(Exception):
    """The server closed the connection before a whole response arrived."""


class Conn:
    """A client connection with a read buffer, for hand-made requests."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, sock=None, source=None):
        if sock is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                if source is not None:  # another loopback source address, e.g. 127.0.0.9
                    sock.bind((source, 0))
                sock.settimeout(timeout)
                sock.connect((host, port))
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def send_request(self, method, path, headers=None, body=None, version="HTTP/1.1", host=True):
        self.send(build_request(method, path, headers, body, version, host))

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise Closed("connection closed; unparsed: %r" % self.buf[:200])
        self.buf += data

    def read_until(self, marker, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no %r within %.1f s; have %r" % (marker, timeout, self.buf[:200]))
            self._fill(left)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("want %d bytes, have %d" % (n, len(self.buf)))
            self._fill(left)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head=False, timeout=None):
        """Reads one response; head=True: the request was HEAD (no body)."""
        raw = self.read_until(b"\r\n\r\n", timeout)
        lines = raw[:-4].decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)$", lines[0])
        if not m:
            raise AssertionError("bad status line %r" % lines[0])
        status = int(m.group(1))
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        resp = Response(status, m.group(2), headers, b"", raw)
        length = resp.header("Content-Length")
        if head or status < 200 or status in (204, 304):
            return resp
        if length is not None:
            resp.body = self.read_exact(int(length), timeout)
        else:
            resp.body = self.read_all(timeout)
        return resp

    def read_all(self, timeout=None):
        """Reads until the server closes; returns what came."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("connection still open after %.1f s" % timeout)
            try:
                self._fill(left)
            except Closed:
                out, self.buf = self.buf, b""
                return out

    def closed_by_peer(self, timeout=None):
        """True when the server closes (EOF or reset) within timeout with
        nothing more to read; False when still open. Unread data fails."""
        timeout = self.timeout if timeout is None else timeout
        if self.buf:
            raise AssertionError("unexpected data from the server: %r" % self.buf[:200])
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not data:
                return True
            raise AssertionError("unexpected data from the server: %r" % data[:200])

    def has_data(self, timeout):
        """Whether anything (data or EOF) is readable within timeout."""
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)


def build_request(method, path, headers=None, body=None, version="HTTP/1.1", host=True):
    if isinstance(body, str):
        body = body.encode()
    lines = ["%s %s %s" % (method, path, version)]
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if host and "host" not in names:
        lines.append("Host: 127.0.0.1")
    for k, v in hdrs:
        lines.append("%s: %s" % (k, v))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


def parse_responses(data, head_flags=None):
    """Splits a byte string into Responses (head_flags[i]: i-th was HEAD)."""
    c = Conn(None, None, sock=_NullSock())
    c.buf = data
    out = []
    i = 0
    while c.buf:
        out.append(c.read_response(head=bool(head_flags and head_flags[i]), timeout=0.01))
        i += 1
    return out


class _NullSock:
    def setsockopt(self, *a):
        pass

    def settimeout(self, t):
        pass

    def recv(self, n):
        return b""

    def close(self):
        pass


def assert_json_error(test, resp, status, message=None):
    """resp is status with a JSON {"message": ...} body and a right Content-Length."""
    test.assertEqual(resp.status, status, resp)
    test.assertEqual(resp.header("Content-Type"), "application/json", resp.raw_head)
    test.assertEqual(resp.header("Content-Length"), str(len(resp.body)), resp.raw_head)
    obj = resp.json()
    test.assertIsInstance(obj.get("message"), str, obj)
    if message is not None:
        test.assertEqual(obj["message"], message)
    return obj


# ---------------------------------------------------------------- metrics

class Metrics:
    """Prometheus text: value(name, **labels) sums the matching samples."""

    LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')

    def __init__(self, text):
        self.text = text
        self.samples = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = self.LINE.match(line)
            if not m:
                raise AssertionError("bad metrics line %r" % line)
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            self.samples.append((m.group(1), labels, float(m.group(3))))

    def value(self, name, **labels):
        total = None
        for n, l, v in self.samples:
            if n == name and all(l.get(k) == str(x) for k, x in labels.items()):
                total = (total or 0) + v
        return total

    def get(self, name, **labels):
        v = self.value(name, **labels)
        return 0 if v is None else v


# ---------------------------------------------------------------- tools

def run(args, timeout=60, input=None, check=False, env=None):
    """subprocess.run with the output captured (bytes)."""
    return subprocess.run(args, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          check=check, env=env)


def curl(*args, timeout=30):
    """Runs curl -sS with args; returns the CompletedProcess (bytes)."""
    return run(["curl", "-sS", "--max-time", str(timeout)] + list(args), timeout=timeout + 10)


def raise_nofile(want):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def wait_for(predicate, timeout, interval=0.05):
    """Polls predicate until it returns something true; returns it or the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------- HSM (SoftHSM)

SOFTHSM_MODULE = os.environ.get("SOFTHSM_MODULE") or "/usr/lib/softhsm/libsofthsm2.so"


class SoftHsm:
    """A SoftHSM token of its own under directory: its softhsm2.conf (file
    object store, errors-only log) and token directory. env is what every
    process using the token needs (SOFTHSM2_CONF); hsm_section() the [hsm]
    options of a skd configuration."""

    def __init__(self, directory, label="skd-test", pin="1234", so_pin="87654321"):
        self.dir = os.path.join(directory, "softhsm")
        self.tokendir = os.path.join(self.dir, "tokens")
        self.conf = os.path.join(self.dir, "softhsm2.conf")
        self.label = label
        self.pin = pin
        os.makedirs(self.tokendir)
        with open(self.conf, "w") as f:
            f.write("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n" % self.tokendir)
        self.env = {"SOFTHSM2_CONF": self.conf}
        p = run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
                env=dict(os.environ, **self.env))
        if p.returncode != 0:
            raise ServerError("softhsm2-util --init-token failed: %s" % (p.stdout + p.stderr).decode())

    def hsm_section(self):
        return {"module": SOFTHSM_MODULE, "token_label": self.label}

    def object_files(self):
        """The token's object files (token.object included), sorted."""
        out = []
        for sub in os.listdir(self.tokendir):
            d = os.path.join(self.tokendir, sub)
            if os.path.isdir(d):
                out += [os.path.join(sub, n) for n in os.listdir(d) if n.endswith(".object")]
        return sorted(out)


def sanitizer_env(extra=None):
    """os.environ with the sanitizer defaults of Server, plus extra."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.update(extra or {})
    return env


def run_skd(binary, args, env=None, input=None, timeout=60):
    """Runs a skd command (init, tenant add, ...) with env added; returns the
    CompletedProcess. A sanitizer report on stderr fails at once."""
    p = run([binary] + list(args), env=sanitizer_env(env), input=input, timeout=timeout)
    text = p.stderr.decode("utf-8", "replace")
    reports = [m for m in SANITIZER_MARKERS if m in text]
    if reports:
        raise AssertionError("sanitizer report from %s %s:\n%s" % (binary, " ".join(args), text[-4000:]))
    return p


# ---------------------------------------------------------------- a token with skd's keys

class KeyStack:
    """What the key-API tests stand on, in a directory of its own (dir): a
    SoftHSM token (hsm) with skd's keys made by `skd init` (the public
    signing key written to pub_pem), a store (db) and a configuration for the
    CLI (cli_conf). objects_before_init and objects_after_init: the token's
    object files before and after `skd init`. close() removes the directory;
    when making the stack fails, it is removed at once.

        stack = KeyStack(SKD, pin="1234", prefix="skdkeys-")
        stack.add_tenant(TENANT, ACCOUNT, "127.0.0.1/32", [(INSTANCE, "127.0.0.1")])
        with stack.server() as srv:  # started, the PIN given
            ...
        stack.close()
    """

    def __init__(self, binary=None, pin="1234", prefix="skdstack-"):
        self.binary = binary or SKD
        self.pin = pin
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self._names = itertools.count()
        self._names_lock = threading.Lock()
        try:
            self.hsm = SoftHsm(self.dir, pin=pin)
            self.objects_before_init = self.hsm.object_files()
            self.db = os.path.join(self.dir, "skd.db")
            self.cli_conf = os.path.join(self.dir, "cli.conf")
            with open(self.cli_conf, "w") as f:
                # The CLI never listens; the configuration just has to be valid.
                f.write(render_config({"public": {"listen": "127.0.0.1:1"}, "hsm": self.hsm.hsm_section(),
                                       "store": {"path": self.db}}))
            self.pub_pem = os.path.join(self.dir, "pub.pem")
            self.cli("init", "--public-key", self.pub_pem, input=(pin + "\n").encode())
            self.objects_after_init = self.hsm.object_files()
        except BaseException:
            self.close()
            raise

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args, input=None):
        """skd COMMAND -c cli_conf ARGS on the token ("init", "--public-key",
        path or "tenant", "add", ...); fails unless it exits 0. Returns the
        CompletedProcess."""
        n = 1 if args[0] == "init" else 2  # the command's words
        p = run_skd(self.binary, list(args[:n]) + ["-c", self.cli_conf] + list(args[n:]), env=self.hsm.env,
                    input=input)
        if p.returncode != 0:
            raise AssertionError("skd %s: %r %r" % (" ".join(args), p.stdout, p.stderr))
        return p

    def add_tenant(self, tenant, account, networks, instances=(), **options):
        """skd tenant add, then skd instance add for each (id, ip) of
        instances. options: more flags of tenant add, e.g.
        verifier="identity-document", audit_dir=path (--audit-dir)."""
        args = ["tenant", "add", "--id", tenant, "--account", account, "--networks", networks]
        for name, value in options.items():
            args += ["--" + name.replace("_", "-"), value]
        self.cli(*args)
        for iid, ip in instances:
            self.cli("instance", "add", "--tenant", tenant, "--id", iid, "--ip", ip)

    def server(self, extra=None, pin=True, **kw):
        """A started skd on the token and the store (extra: more configuration
        by section; kw: Server's options), the PIN given through PUT /hsm-pin
        unless pin=False. Stop it with __exit__, or take it into a with block."""
        config = merge({"hsm": self.hsm.hsm_section(), "store": {"path": self.db}}, extra)
        srv = Server(self.binary, config, env=self.hsm.env, **kw).__enter__()
        if pin:
            p = curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary", '{"pin":"%s"}' % self.pin,
                     "http://127.0.0.1:%d/hsm-pin" % srv.admin_port)
            if p.stdout != b"204":
                err = AssertionError("PUT /hsm-pin: %r %r" % (p.stdout, p.stderr))
                srv.__exit__(AssertionError, err, None)  # stops it and prints its log
                raise err
        return srv

    def tmp(self, name):
        """A fresh path in dir ("N-name"), from any thread."""
        with self._names_lock:
            return os.path.join(self.dir, "%d-%s" % (next(self._names), name))

    def write(self, name, data):
        """A fresh file tmp(name) holding data (bytes); returns its path."""
        path = self.tmp(name)
        with open(path, "wb") as f:
            f.write(data)
        return path


# ---------------------------------------------------------------- installations (certs/API.md)

ZONE = "sk.test."


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def acme_value(seed):
    """A dns-01 value: base64url(SHA-256(seed)), 43 characters."""
    return b64u(hashlib.sha256(seed.encode()).digest())


def _der_len(data, i):
    n = data[i]
    if n < 0x80:
        return n, i + 1
    k = n & 0x7F
    return int.from_bytes(data[i + 1:i + 1 + k], "big"), i + 1 + k


def der_to_raw(sig):
    """DER ECDSA-Sig-Value -> r || s (32 bytes each), as JWS ES256 wants."""
    assert sig[0] == 0x30
    _, i = _der_len(sig, 1)
    out = b""
    for _ in range(2):
        assert sig[i] == 0x02
        n, i = _der_len(sig, i + 1)
        out += int.from_bytes(sig[i:i + n], "big").to_bytes(32, "big")
        i += n
    return out


class _Libcrypto:
    """OpenSSL 3's libcrypto through ctypes: P-256 keys and ES256 signatures
    in-process (the openssl command costs a process, ~10 ms, per call; this
    costs ~0.1 ms and releases the GIL)."""

    _lib = None
    _lock = threading.Lock()

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._lib is None:
                lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
                P, I, S = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
                for name, restype, argtypes in (
                        ("EVP_PKEY_CTX_new_from_name", P, [P, ctypes.c_char_p, ctypes.c_char_p]),
                        ("EVP_PKEY_keygen_init", I, [P]),
                        ("EVP_PKEY_CTX_set_group_name", I, [P, ctypes.c_char_p]),
                        ("EVP_PKEY_generate", I, [P, ctypes.POINTER(P)]),
                        ("EVP_PKEY_CTX_free", None, [P]),
                        ("EVP_PKEY_free", None, [P]),
                        ("EVP_PKEY_get_octet_string_param", I, [P, ctypes.c_char_p, P, S, ctypes.POINTER(S)]),
                        ("EVP_MD_CTX_new", P, []),
                        ("EVP_MD_CTX_free", None, [P]),
                        ("EVP_sha256", P, []),
                        ("EVP_DigestSignInit", I, [P, P, P, P, P]),
                        ("EVP_DigestSign", I, [P, P, ctypes.POINTER(S), P, S])):
                    f = getattr(lib, name)
                    f.restype, f.argtypes = restype, argtypes
                cls._lib = lib
            return cls._lib


class Key:
    """A P-256 key made and used through libcrypto (_Libcrypto): jwk (the
    public JWK), thumbprint (RFC 7638), sign(data) -> raw r || s."""

    def __init__(self):
        lib = _Libcrypto.get()
        self._pkey = None
        ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"EC", None)
        pkey = ctypes.c_void_p()
        try:
            if not (ctx and lib.EVP_PKEY_keygen_init(ctx) == 1 and lib.EVP_PKEY_CTX_set_group_name(ctx, b"P-256") == 1
                    and lib.EVP_PKEY_generate(ctx, ctypes.byref(pkey)) == 1):
                raise AssertionError("libcrypto: P-256 key generation failed")
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
        self._pkey = pkey.value
        point = ctypes.create_string_buffer(65)
        n = ctypes.c_size_t()
        if lib.EVP_PKEY_get_octet_string_param(self._pkey, b"encoded-pub-key", point, 65, ctypes.byref(n)) != 1 \
                or n.value != 65 or point.raw[0] != 4:
            raise AssertionError("libcrypto: cannot read the public point")
        self.jwk = {"kty": "EC", "crv": "P-256", "x": b64u(point.raw[1:33]), "y": b64u(point.raw[33:])}
        canon = json.dumps({k: self.jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
        self.thumbprint = b64u(hashlib.sha256(canon.encode()).digest())

    def sign(self, data):
        """ES256 over data: the raw 64-byte r || s."""
        lib = _Libcrypto.get()
        ctx = lib.EVP_MD_CTX_new()
        sig = ctypes.create_string_buffer(80)
        n = ctypes.c_size_t(len(sig))
        try:
            if not (ctx and lib.EVP_DigestSignInit(ctx, None, lib.EVP_sha256(), None, self._pkey) == 1
                    and lib.EVP_DigestSign(ctx, sig, ctypes.byref(n), data, len(data)) == 1):
                raise AssertionError("libcrypto: signing failed")
        finally:
            lib.EVP_MD_CTX_free(ctx)
        return der_to_raw(sig.raw[:n.value])

    def __del__(self):
        if getattr(self, "_pkey", None):
            _Libcrypto.get().EVP_PKEY_free(self._pkey)
            self._pkey = None


class InstallationClient:
    """An installation talking to one skd (port; use() switches to another
    node): signs with key, keeps the last Replay-Nonce (nonces are per skd
    process). Every request is on a fresh connection."""

    def __init__(self, port, key, host="127.0.0.1", token=None):
        self.port = port
        self.key = key
        self.host = host
        self.token = token
        self.nonce = None
        self.id = None
        self.label = None

    def use(self, port):
        """Talk to the skd on port from now on (its nonces, not this one's)."""
        if port != self.port:
            self.port = port
            self.nonce = None

    def url(self, path):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def request(self, method, path, body=None, headers=None, timeout=30):
        """One request; the http.client response with .body read."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            r.body = r.read()
            nonce = r.getheader("Replay-Nonce")
            if nonce:
                self.nonce = nonce
            return r
        finally:
            conn.close()

    def fresh_nonce(self):
        r = self.request("HEAD", "/api/v1/nonce")
        assert r.status == 200, r.status
        return self.nonce

    def jws(self, url, payload, nonce=None, kid=None, jwk=False, alg="ES256", key=None, header=None):
        """The flattened JWS of payload (None: empty; bytes/str: as is;
        otherwise JSON) for url, signed with key (default: ours)."""
        protected = {"alg": alg, "nonce": nonce if nonce is not None else (self.nonce or self.fresh_nonce()),
                     "url": url}
        if jwk:
            protected["jwk"] = self.key.jwk
        else:
            protected["kid"] = kid if kid is not None else self.id
        protected.update(header or {})
        p = b64u_json(protected)
        pl = "" if payload is None else b64u_json(payload) if not isinstance(payload, (bytes, str)) else \
            b64u(payload if isinstance(payload, bytes) else payload.encode())
        sig = (key or self.key).sign(("%s.%s" % (p, pl)).encode())
        return json.dumps({"protected": p, "payload": pl, "signature": b64u(sig)}).encode()

    def signed(self, method, path, payload, content_type="application/jose+json", extra_headers=None, **kw):
        """Signs and sends; returns (response, body sent)."""
        timeout = kw.pop("timeout", 30)
        body = self.jws(self.url(path), payload, **kw)
        self.nonce = None  # used up: the answer brings the next
        headers = {"Content-Type": content_type}
        headers.update(extra_headers or {})
        return self.request(method, path, body, headers, timeout=timeout), body

    def raw_request(self, method, path, payload, nonce, **kw):
        """A whole signed HTTP/1.1 request (keep-alive) as bytes, to send
        later: the signature is made now (benchmarks sign before timing).
        kw: jws()'s options (jwk=True for a registration)."""
        body = self.jws(self.url(path), payload, nonce=nonce, **kw)
        return build_request(method, path, {"Host": "%s:%d" % (self.host, self.port),
                                            "Content-Type": "application/jose+json"}, body)

    def challenge_path(self):
        return "/api/v1/installations/%s/challenge" % self.id

    def register(self, label=None, metadata=None, **kw):
        payload = {}
        if label is not None:
            payload["label"] = label
        if metadata is not None:
            payload["metadata"] = metadata
        headers = {"Authorization": "Bearer " + self.token} if self.token else {}
        r, _ = self.signed("POST", "/api/v1/installations", payload, jwk=True, extra_headers=headers, **kw)
        if r.status in (200, 201):
            obj = json.loads(r.body)
            self.id, self.label = obj["id"], obj["label"]
        return r

    def address(self, address, **kw):
        return self.signed("PUT", "/api/v1/installations/%s/address" % self.id, {"address": address}, **kw)[0]

    def challenge_set(self, value, **kw):
        return self.signed("PUT", self.challenge_path(), {"value": value}, **kw)[0]

    def challenge_delete(self, value=None, **kw):
        payload = {"value": value} if value else None
        return self.signed("DELETE", self.challenge_path(), payload, **kw)[0]

    def delete(self, **kw):
        return self.signed("DELETE", "/api/v1/installations/%s" % self.id, None, **kw)[0]


def error_type(r):
    """The "type" of an http.client response's JSON error body, or None."""
    try:
        return json.loads(r.body).get("type")
    except (ValueError, AttributeError):
        return None


def installations_status(srv):
    """GET /installations/status on srv's admin listener, as JSON."""
    r = srv.request("GET", "/installations/status", port=srv.admin_port)
    assert r.status == 200, r
    return r.json()


def psk_file(directory, name, hexkey=None):
    """A kvpsync key file directory/name.psk (64 hex digits, mode 0600)."""
    path = os.path.join(directory, name + ".psk")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write((hexkey or os.urandom(32).hex()) + "\n")
    return path


# ---------------------------------------------------------------- DNS over raw UDP

DNS_A, DNS_NS, DNS_SOA, DNS_TXT, DNS_AAAA, DNS_CAA = 1, 2, 6, 16, 28, 257
RCODE_NOERROR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_REFUSED = 0, 2, 3, 5


def _skip_name(data, off):
    while True:
        n = data[off]
        if n >= 0xC0:  # a compression pointer ends the name
            return off + 2
        off += 1 + n
        if n == 0:
            return off


class DnsReply:
    """A DNS response: id, rcode, aa, tc, answers [(type, rdata)]."""

    def __init__(self, data):
        self.id, flags, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
        self.rcode = flags & 0xF
        self.aa = bool(flags & 0x400)
        self.tc = bool(flags & 0x200)
        off = 12
        for _ in range(qd):
            off = _skip_name(data, off) + 4
        self.answers = []
        for _ in range(an):
            off = _skip_name(data, off)
            rtype, _, _, rdlen = struct.unpack("!HHIH", data[off:off + 10])
            off += 10
            self.answers.append((rtype, data[off:off + rdlen]))
            off += rdlen

    def txt(self):
        """The TXT records' texts (each record's strings joined)."""
        out = []
        for rtype, rdata in self.answers:
            if rtype == DNS_TXT:
                i, text = 0, b""
                while i < len(rdata):
                    text += rdata[i + 1:i + 1 + rdata[i]]
                    i += 1 + rdata[i]
                out.append(text.decode("ascii", "replace"))
        return out

    def a(self):
        return [socket.inet_ntoa(rdata) for rtype, rdata in self.answers if rtype == DNS_A]

    def __repr__(self):
        return "<DnsReply rcode %d, %d answers>" % (self.rcode, len(self.answers))


def dns_wire_query(name, qtype, qid=0):
    q = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0)  # RD off: we ask the authority
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", qtype, 1)


class DnsClient:
    """Queries over one connected UDP socket (cheaper than a socket each)."""

    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((host, port))

    def query(self, name, qtype, timeout=1.0):
        """The DnsReply, or None without an answer in time (or nothing
        listening: the ICMP error of a closed port)."""
        qid = int.from_bytes(os.urandom(2), "big")
        deadline = time.monotonic() + timeout
        try:
            self.sock.send(dns_wire_query(name, qtype, qid))
            while True:  # a late answer to an earlier query is skipped
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
                data = self.sock.recv(65535)
                if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid:
                    return DnsReply(data)
        except (socket.timeout, ConnectionRefusedError):
            return None

    def close(self):
        self.sock.close()


def dns_query(port, name, qtype, timeout=1.0, host="127.0.0.1"):
    """One query over UDP; the DnsReply, or None without an answer in time."""
    c = DnsClient(port, host)
    try:
        return c.query(name, qtype, timeout)
    finally:
        c.close()


# ---------------------------------------------------------------- skdns

SKDNS = os.environ.get("SKDNS") or os.path.join(os.path.dirname(SKD), "skdns")


def free_dns_port():
    """A port that was free for both TCP and UDP a moment ago."""
    while True:
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


def skdns_config(dns_port, kv_port, senders, dns=None, level="info"):
    """skdns's configuration (skdns/skdns.conf.example is the reference):
    ZONE with NS ns1 (glue 127.0.0.1), CAA pebble.test, no rate limit;
    senders: [(id, psk file)]; dns: more [dns] options."""
    d = {"listen": "127.0.0.1:%d" % dns_port, "zone": ZONE, "ns": "ns1.%s 127.0.0.1" % ZONE,
         "caa_issue": "pebble.test", "rate_limit": 0}
    d.update(dns or {})
    return render_config({"dns": d, "kvpsync": {"listen": "127.0.0.1:%d" % kv_port,
                                                "sender": ["%d %s" % s for s in senders]},
                          "log": {"level": level}})


class Skdns:
    """A skdns process serving ZONE on free loopback ports (dns_port, UDP
    and TCP; kv_port, kvpsync), fed by senders [(id, psk file)]; started at
    once, answering. kill() (SIGKILL) and restart() keep the ports and the
    log file (directory/name.log). wrap: a command prefix (e.g. taskset)."""

    def __init__(self, directory, name, senders, dns=None, level="info", wrap=(), binary=None):
        self.name = name
        self.binary = binary or SKDNS
        self.wrap = list(wrap)
        self.conf = os.path.join(directory, name + ".conf")
        self.log_path = os.path.join(directory, name + ".log")
        self.proc = None
        self.started_at = None
        for attempt in range(5):  # a port may be taken between the probe and the bind
            self.dns_port, self.kv_port = free_dns_port(), free_dns_port()
            with open(self.conf, "w") as f:
                f.write(skdns_config(self.dns_port, self.kv_port, senders, dns, level))
            if self._launch("wb"):
                return
            if attempt == 4 or "address already in use" not in self.text().lower():
                raise ServerError("skdns did not start (exit status %r, ports %d/%d):\n%s" %
                                  (self.proc.returncode, self.dns_port, self.kv_port, self.text()[-6000:]))

    def _launch(self, log_mode, wait=True):
        self.started_at = time.monotonic()
        with open(self.log_path, log_mode) as logf:
            self.proc = subprocess.Popen(self.wrap + [self.binary, "-c", self.conf], stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf, env=sanitizer_env())
        if not wait:
            return True
        def state():
            if not self.alive():
                return "exited"
            return "answers" if self.answers() else None

        # One verdict: asking again could see a lost datagram and kill a good skdns.
        if wait_for(state, START_TIMEOUT) == "answers":
            return True
        self.kill()
        return False

    def answers(self):
        """Whether it answers a query for the apex SOA now."""
        r = dns_query(self.dns_port, ZONE, DNS_SOA, timeout=0.2)
        return r is not None and r.rcode == RCODE_NOERROR

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.kill()
        if self.proc:
            self.proc.wait()

    def restart(self, wait=True):
        """Starts it again after kill() or stop(); started_at is the moment
        of the spawn. wait: until it answers."""
        if self.alive():
            raise ServerError("restart of a running skdns")
        if not self._launch("ab", wait):
            raise ServerError("skdns did not restart:\n" + self.text()[-6000:])

    def stop(self, timeout=10):
        """SIGTERM (SIGKILL after timeout); returns the exit status."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def problems(self):
        """After stop(): what is wrong (exit status, ERROR lines, sanitizer
        reports), or None."""
        text = self.text()
        out = []
        if self.proc.returncode != 0:
            out.append("exit status %r" % self.proc.returncode)
        errors = [line for line in text.splitlines() if re.search(r"\bERROR\b", line)]
        if errors:
            out.append("ERROR lines: %r" % errors[:5])
        reports = [m for m in SANITIZER_MARKERS if m in text]
        if reports:
            out.append("sanitizer report (%s)" % ", ".join(reports))
        return "skdns %s: %s\n---- log ----\n%s" % (self.name, "; ".join(out), text[-6000:]) if out else None

    def text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def query(self, name, qtype, timeout=1.0):
        return dns_query(self.dns_port, name, qtype, timeout)

    def dig(self, rtype, name, short=True):
        """kdig's output (bytes)."""
        args = ["kdig", "@127.0.0.1", "-p", str(self.dns_port), "+timeout=1", "+retry=1"]
        return run(args + (["+short"] if short else []) + [rtype, name]).stdout

    def txt(self, label):
        """The TXT values of _acme-challenge.<label>, sorted, by kdig."""
        out = self.dig("TXT", "_acme-challenge.%s.%s" % (label, ZONE)).decode()
        return sorted(line.strip().strip('"') for line in out.splitlines() if line.strip())

    def a(self, label):
        return self.dig("A", "%s.%s" % (label, ZONE)).decode().split()


# ---------------------------------------------------------------- running

def main():
    """Runs the calling module's tests; prints "N passed, M failed" last; exits 0 only if none failed."""
    sys.stdout.reconfigure(line_buffering=True)
    module = sys.modules["__main__"]
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    if len(sys.argv) > 1:  # run only the named tests: test_x.py TestClass.test_name ...
        suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:], module)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2)
    start = time.monotonic()
    result = runner.run(suite)
    # A test with failing subtests counts once.
    bad = [getattr(t, "test_case", t) for t, _ in result.failures + result.errors]
    bad += list(result.unexpectedSuccesses)
    failed = len({t.id() if hasattr(t, "id") else str(t) for t in bad})
    skipped = len(result.skipped)
    passed = max(0, result.testsRun - failed - skipped)
    print("%d skipped; %.1f s" % (skipped, time.monotonic() - start))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(0 if failed == 0 else 1)


# ---------------------------------------------------------------- pebble (ACME test server)

PEBBLE = "/usr/bin/pebble"


def make_tls_cert(directory):
    """A self-signed certificate for 127.0.0.1 and localhost (pebble's listener; also the CA bundle)."""
    cert, key = os.path.join(directory, "pebble-cert.pem"), os.path.join(directory, "pebble-key.pem")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=pebble test",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True)
    return cert, key


class Pebble:
    """pebble on free loopback ports, resolving through dns_port."""

    def __init__(self, directory, dns_port, env=None, config=None):
        self.dir = directory
        self.cert, self.key = make_tls_cert(directory)
        self.port, self.mgmt = free_port(), free_port()
        conf = os.path.join(directory, "pebble-%d.json" % self.port)
        settings = {"listenAddress": "127.0.0.1:%d" % self.port,
                    "managementListenAddress": "127.0.0.1:%d" % self.mgmt,
                    "certificate": self.cert, "privateKey": self.key,
                    "httpPort": free_port(), "tlsPort": free_port(),
                    "ocspResponderURL": "", "externalAccountBindingRequired": False}
        settings.update(config or {})
        with open(conf, "w") as f:
            json.dump({"pebble": settings}, f)
        e = dict(os.environ, PEBBLE_VA_NOSLEEP="1")
        e.update(env or {})
        self.log_path = os.path.join(directory, "pebble-%d.log" % self.port)
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen([PEBBLE, "-config", conf, "-dnsserver", "127.0.0.1:%d" % dns_port,
                                          "-strict"], stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, env=e)
        if not wait_port("127.0.0.1", self.port, 15, self.proc) or not wait_port("127.0.0.1", self.mgmt, 15,
                                                                                 self.proc):
            self.stop()
            raise AssertionError("pebble did not start:\n" + self.log())
        self.directory = "https://127.0.0.1:%d/dir" % self.port
        self.root = os.path.join(directory, "pebble-root-%d.pem" % self.port)
        p = curl("-sf", "--cacert", self.cert, "-o", self.root, "https://127.0.0.1:%d/roots/0" % self.mgmt)
        if p.returncode != 0:
            raise AssertionError("no pebble root: %r" % p)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
