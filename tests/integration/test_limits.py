#!/usr/bin/env python3
"""skd's limits: body size, chunked bodies, 100-continue, slow clients,
idle connections, many connections, max_connections and clients that do not
read their answers."""

import errno
import os
import selectors
import socket
import tempfile
import time
import unittest

import skdtest
from skdtest import SKD, SKD_TESTSERVER, Server, assert_json_error, build_request, curl

MiB = 1024 * 1024


class BodyTest(unittest.TestCase):
    """Request bodies on skd-testserver (POST /test/echo), default limits
    except short header and body timeouts."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(SKD_TESTSERVER, {"limits": {"header_timeout_ms": 1000, "body_timeout_ms": 1000}})
        cls.srv.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def test_echo(self):
        body = bytes(range(256)) * 16
        r = self.srv.request("POST", "/test/echo", body=body)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)
        self.assertEqual(r.header("X-Body-Length"), str(len(body)))

    def test_body_limit_boundary(self):
        body = b"x" * 65536  # max_body_bytes
        r = self.srv.request("POST", "/test/echo", body=body)
        self.assertEqual((r.status, r.header("X-Body-Length")), (200, "65536"))
        with self.srv.connect() as c:
            c.send_request("POST", "/test/echo", body=body + b"y")
            assert_json_error(self, c.read_response(), 413, "Request body too large")
            self.assertTrue(c.closed_by_peer(5))

    def test_10mib_refused_after_head(self):
        for srv_path in ("/test/echo", "/healthcheck", "/nope"):
            with self.subTest(srv_path), self.srv.connect() as c:
                t0 = time.monotonic()
                # Only the head: the answer must not wait for the body.
                c.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n" % srv_path.encode())
                r = c.read_response(timeout=5)
                assert_json_error(self, r, 413, "Request body too large")
                self.assertEqual(r.header("Connection"), "close")
                self.assertTrue(c.closed_by_peer(5))
                self.assertLess(time.monotonic() - t0, 3.0)

    def test_10mib_curl(self):
        with tempfile.NamedTemporaryFile(prefix="skdtest-body-") as f:
            f.write(os.urandom(10 * MiB))
            f.flush()
            # curl's own Expect: 100-continue for big bodies, and without it
            # (the whole body is sent; the server answers after the head).
            for extra in ([], ["-H", "Expect:"]):
                with self.subTest(extra=extra):
                    t0 = time.monotonic()
                    p = curl("-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@" + f.name,
                             "-H", "Content-Type: application/octet-stream", *extra, self.srv.url("/test/echo"))
                    self.assertEqual(p.stdout, b"413", p.stderr)
                    self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(self.srv.request("GET", "/healthcheck").status, 204)

    def test_chunked_body(self):
        pieces = [b"hello, ", b"chunked " * 100, b"world" * 1000]
        with self.srv.connect() as c:
            c.send(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for p in pieces:
                time.sleep(0.05)
                c.send(b"%x\r\n%s\r\n" % (len(p), p))
            time.sleep(0.05)
            c.send(b"0\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"".join(pieces))
            self.assertEqual(r.header("X-Body-Length"), str(len(b"".join(pieces))))
            # Chunk extensions and trailers, on the same keep-alive connection.
            c.send(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"abcde"))

    def test_chunked_over_limit(self):
        with self.srv.connect() as c:
            c.send(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"z" * 30000
            answered = False
            for _ in range(4):  # 120000 > 65536
                try:
                    c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:
                    break
                if c.has_data(0.05):
                    answered = True
                    break
            if not answered:
                try:
                    c.send(b"0\r\n\r\n")
                except OSError:
                    pass
            assert_json_error(self, c.read_response(), 413, "Request body too large")
            self.assertTrue(c.closed_by_peer(5))

    def test_expect_100_continue(self):
        body = b'{"hello":"world"}'
        with self.srv.connect() as c:
            c.send(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
                   % len(body))
            r = c.read_response(timeout=5)
            self.assertEqual(r.status, 100)
            self.assertEqual(r.raw_head, b"HTTP/1.1 100 Continue\r\n\r\n")
            self.assertFalse(c.has_data(0.2))
            c.send(body)
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, body))
            # And once more on the same connection, with curl-style casing.
            c.send(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nexpect: 100-Continue\r\nContent-Length: 3\r\n\r\n")
            self.assertEqual(c.read_response().status, 100)
            c.send(b"abc")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"abc"))

    def test_expect_100_continue_too_large(self):
        with self.srv.connect() as c:
            c.send(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10485760\r\n\r\n")
            r = c.read_response(timeout=5)
            assert_json_error(self, r, 413)  # no 100 first
            self.assertTrue(c.closed_by_peer(5))

    def test_slowloris_headers(self):
        with self.srv.connect() as c:
            head = b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
            t0 = time.monotonic()
            i = 0
            while not c.has_data(0.2):
                self.assertLess(time.monotonic() - t0, 5, "no 408 after 5 s of trickling")
                c.send(head[i:i + 1])
                i += 1
            elapsed = time.monotonic() - t0
            r = c.read_response()
            assert_json_error(self, r, 408, "Request header timeout")
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c.closed_by_peer(3))
            # header_timeout_ms = 1000 counts from the first byte, not the last.
            self.assertGreaterEqual(elapsed, 0.9)
            self.assertLess(elapsed, 2.5)
            self.assertGreater(i, 3)

    def test_stalled_body(self):
        with self.srv.connect() as c:
            c.send(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"b" * 10)
            t0 = time.monotonic()
            r = c.read_response(timeout=5)
            elapsed = time.monotonic() - t0
            assert_json_error(self, r, 408, "Request body timeout")
            self.assertTrue(c.closed_by_peer(3))
            self.assertGreaterEqual(elapsed, 0.9)
            self.assertLess(elapsed, 2.5)

    def test_slow_body_within_timeout(self):
        # Pieces 300 ms apart: every pause is below body_timeout_ms (1000)
        # though the whole body takes longer.
        with self.srv.connect() as c:
            c.send(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
            for b in b"12345678":
                time.sleep(0.3)
                self.assertFalse(c.has_data(0))
                c.send(bytes([b]))
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"12345678"))


class IdleTest(unittest.TestCase):
    def test_idle_keepalive_closed(self):
        with Server(SKD, {"limits": {"idle_timeout_ms": 500}}) as srv:
            with srv.connect() as c:
                c.send_request("GET", "/healthcheck")
                self.assertEqual(c.read_response().status, 204)
                t0 = time.monotonic()
                self.assertTrue(c.closed_by_peer(5))  # silently: no bytes
                elapsed = time.monotonic() - t0
                self.assertGreaterEqual(elapsed, 0.4)
                self.assertLess(elapsed, 3)
            # A connection that never sends anything is idle too.
            with srv.connect() as c:
                t0 = time.monotonic()
                self.assertTrue(c.closed_by_peer(5))
                self.assertGreaterEqual(time.monotonic() - t0, 0.4)
            # Activity resets the idle timer.
            with srv.connect() as c:
                for _ in range(4):
                    time.sleep(0.3)
                    c.send_request("GET", "/healthcheck")
                    self.assertEqual(c.read_response().status, 204)


class ConnectionsTest(unittest.TestCase):
    N = 1000

    def test_1000_concurrent_connections(self):
        if skdtest.raise_nofile(self.N + 200) < self.N + 100:
            self.skipTest("cannot raise RLIMIT_NOFILE to %d" % (self.N + 200))
        with Server(SKD) as srv:
            addr = ("127.0.0.1", srv.port)
            sel = selectors.DefaultSelector()
            request = build_request("GET", "/healthcheck")
            socks = []
            state = {}
            done = 0
            try:
                for _ in range(self.N):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    rc = s.connect_ex(addr)
                    self.assertIn(rc, (0, errno.EINPROGRESS))
                    socks.append(s)
                    state[s] = b""
                    sel.register(s, selectors.EVENT_WRITE)
                deadline = time.monotonic() + 60
                while done < self.N:
                    self.assertLess(time.monotonic(), deadline, "only %d of %d answered" % (done, self.N))
                    for key, ev in sel.select(timeout=1):
                        s = key.fileobj
                        if ev & selectors.EVENT_WRITE:
                            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                            self.assertEqual(err, 0, os.strerror(err))
                            self.assertEqual(s.send(request), len(request))
                            sel.modify(s, selectors.EVENT_READ)
                            continue
                        data = s.recv(4096)
                        self.assertTrue(data, "closed before answering")
                        state[s] += data
                        if state[s].endswith(b"\r\n\r\n"):
                            self.assertTrue(state[s].startswith(b"HTTP/1.1 204 "), state[s])
                            sel.unregister(s)
                            done += 1
                # All of them are open at once (plus the scrape's own).
                m = srv.metrics()
                self.assertGreaterEqual(m.get("skd_http_connections_open"), self.N + 1)
                self.assertGreaterEqual(m.get("skd_http_requests_total", route="/healthcheck", status="204"), self.N)
            finally:
                sel.close()
                for s in socks:
                    s.close()
            self.assertTrue(skdtest.wait_for(lambda: srv.metrics().get("skd_http_connections_open") == 1, 20),
                            "connections stay open after the clients left")

    def test_max_connections_backpressure(self):
        with Server(SKD, {"server": {"max_connections": 5}}) as srv:
            held = []
            try:
                for _ in range(5):
                    c = srv.connect()
                    held.append(c)
                    c.send_request("GET", "/healthcheck")
                    self.assertEqual(c.read_response().status, 204)
                # The 6th gets through the kernel's backlog but is not served.
                sixth = srv.connect()
                held.append(sixth)
                sixth.send_request("GET", "/healthcheck")
                self.assertFalse(sixth.has_data(1.0), "served beyond max_connections")
                # Room again: it is accepted and answered.
                held.pop(0).close()
                r = sixth.read_response(timeout=5)
                self.assertEqual(r.status, 204)
                # The others still work.
                for c in held[:-1]:
                    c.send_request("GET", "/healthcheck")
                    self.assertEqual(c.read_response().status, 204)
                held.pop(0).close()  # room for the scrape
                m = skdtest.wait_for(lambda: srv.metrics(), 5)
                self.assertGreaterEqual(m.get("skd_http_accept_paused_total"), 1)
            finally:
                for c in held:
                    c.close()

    def test_client_that_never_reads(self):
        cfg = {"limits": {"write_queue_bytes": 4096, "write_timeout_ms": 1000}, "log": {"level": "debug"}}
        with Server(SKD, cfg) as srv, srv.connect(srv.admin_port) as admin:
            srv.settle(admin)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)  # no autotuning to megabytes
            s.settimeout(5)
            s.connect(("127.0.0.1", srv.admin_port))
            try:
                s.setblocking(False)
                batch = build_request("GET", "/metrics") * 200
                sent = 0
                t0 = time.monotonic()
                # Pipeline until the server stops reading (our sends block) or 4 MB went out.
                blocked = False
                while sent < 4 * MiB and time.monotonic() - t0 < 10:
                    try:
                        sent += s.send(batch)
                    except BlockingIOError:
                        if blocked:
                            break
                        blocked = True  # once more, after the server had a moment
                        time.sleep(0.2)
                stalled = time.monotonic()
                # write_queue_bytes: the server stopped reading long before 4 MB of requests.
                self.assertLess(sent, 4 * MiB, "the server kept reading from a client that does not read")
                print("sent %d bytes of requests before the server stopped reading" % sent)
                # Others are served meanwhile.
                r = srv.request("GET", "/healthcheck")
                self.assertEqual(r.status, 204)
                srv.settle(admin, others=1)  # the /healthcheck connection is gone, ours is not
                # write_timeout_ms later the server gives up on it.
                gone = skdtest.wait_for(lambda: srv.metrics(admin).get("skd_http_connections_open") == 1, 10,
                                        interval=0.1)
                self.assertTrue(gone, "the non-reading client is still connected")
                self.assertLess(time.monotonic() - stalled, 8)
                self.assertTrue(srv.wait_log(r"closing: client does not read its answers", 2))
                # Its socket is dead: reading ends in EOF or a reset at some point.
                s.setblocking(True)
                s.settimeout(5)
                try:
                    while s.recv(1 << 20):
                        pass
                except ConnectionResetError:
                    pass
            finally:
                s.close()
            self.assertEqual(srv.request("GET", "/healthcheck").status, 204)
            srv.settle(admin)

    def test_slow_steady_reader_not_disconnected(self):
        # A client that pipelines many requests and reads its answers
        # steadily (a pause of at most 30 ms between reads, far below
        # write_timeout_ms) gets all of them, however long the whole takes.
        # The whole transfer (about 12 MB at 64 KiB per 30 ms) lasts several
        # times write_timeout_ms; the timeout keeps a margin for a loaded
        # machine descheduling this reader.
        n = 4000
        cfg = {"limits": {"write_timeout_ms": 2500}, "log": {"level": "debug"}}
        with Server(SKD, cfg) as srv:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.settimeout(10)
            s.connect(("127.0.0.1", srv.admin_port))
            try:
                pending = build_request("GET", "/metrics") * n
                s.setblocking(False)
                data = bytearray()
                t0 = time.monotonic()
                closed = None
                while data.count(b"HTTP/1.1 ") < n and time.monotonic() - t0 < 40:
                    if pending:
                        try:
                            pending = pending[s.send(pending):]
                        except BlockingIOError:
                            pass
                    try:
                        chunk = s.recv(65536)
                    except BlockingIOError:
                        chunk = None
                    except ConnectionResetError as e:
                        closed = "reset"
                        break
                    if chunk == b"":
                        closed = "EOF"
                        break
                    if chunk:
                        data += chunk
                    time.sleep(0.03)
                got = data.count(b"HTTP/1.1 200 OK\r\n")
                self.assertIsNone(closed, "disconnected (%s) after %.1f s with %d of %d answers"
                                  % (closed, time.monotonic() - t0, got, n))
                self.assertEqual(got, n)
            finally:
                s.close()
            self.assertNotIn("client does not read", srv.log())


if __name__ == "__main__":
    skdtest.main()
