#!/usr/bin/env python3
"""HTTP/1.1 behaviour of skd: keep-alive, pipelining, HEAD, closing, malformed
requests, header limits, IPv6, and the admin listener's metrics."""

import socket
import unittest

import skdtest
from skdtest import SKD, Server, assert_json_error, curl


def non_loopback_ipv4():
    """A local IPv4 address that is not on loopback, or None."""
    candidates = []
    for dest in ("198.51.100.1", "10.255.255.1"):  # a UDP connect sends no packet
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((dest, 9))
                candidates.append(s.getsockname()[0])
        except OSError:
            pass
    try:
        candidates += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    candidates = [a for a in candidates if not a.startswith("127.") and a != "0.0.0.0"]
    if not candidates:
        return None
    addr = candidates[0]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
    except OSError:
        return None
    return addr


class HttpTest(unittest.TestCase):
    # One server for the cases that need no special configuration; each case
    # still checks what it did on its own connections.
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(SKD)
        cls.srv.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def test_healthcheck_and_not_found(self):
        r = self.srv.request("GET", "/healthcheck")
        self.assertEqual(r.status, 204)
        self.assertIsNone(r.header("Content-Length"))
        self.assertIsNone(r.header("Content-Type"))
        self.assertIsNotNone(r.header("Date"))
        r = self.srv.request("GET", "/nope")
        assert_json_error(self, r, 404, "Unimplemented")
        self.assertEqual(self.srv.request("GET", "/healthcheck?probe=1").status, 204)
        assert_json_error(self, self.srv.request("GET", "/healthcheck/"), 404)
        assert_json_error(self, self.srv.request("GET", "//healthcheck"), 404)
        r = self.srv.request("DELETE", "/healthcheck")
        assert_json_error(self, r, 405)
        self.assertEqual(r.header("Allow"), "GET, HEAD")

    def test_keepalive_reuse_curl(self):
        with self.srv.connect(self.srv.admin_port) as admin:
            before = self.srv.metrics(admin).get("skd_http_connections_total")
            p = curl("-v", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code}\\n",
                     self.srv.url("/healthcheck"), self.srv.url("/nope"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.decode().split(), ["204", "404"])
            self.assertIn("Re-using existing connection", p.stderr.decode())
            after = self.srv.metrics(admin).get("skd_http_connections_total")
            # The admin connection is reused too: only curl's one connection is new.
            self.assertEqual(after - before, 1)

    def test_keepalive_raw(self):
        with self.srv.connect() as c:
            for _ in range(5):
                c.send_request("GET", "/healthcheck")
                r = c.read_response()
                self.assertEqual(r.status, 204)
                self.assertIsNone(r.header("Connection"))
            self.assertFalse(c.has_data(0.2))

    def test_pipelined_100_in_order(self):
        kinds = [("GET", "/healthcheck", 204), ("GET", "/nope", 404), ("POST", "/healthcheck", 405),
                 ("HEAD", "/nope", 404), ("GET", "/nope?x=1", 404)]
        pattern = [kinds[(i * 7 + i // 3) % len(kinds)] for i in range(100)]
        data = b"".join(skdtest.build_request(m, p, body=b"" if m == "POST" else None) for m, p, _ in pattern)
        with self.srv.connect() as c:
            c.send(data)  # one send
            got = []
            for m, p, _ in pattern:
                r = c.read_response(head=(m == "HEAD"))
                got.append(r.status)
                if r.status == 404:
                    self.assertEqual(r.header("Content-Length"), "27")
                    self.assertEqual(r.body, b"" if m == "HEAD" else b'{"message":"Unimplemented"}')
                if r.status == 405:
                    self.assertEqual(r.header("Allow"), "GET, HEAD")
            self.assertEqual(got, [s for _, _, s in pattern])
            # Nothing more, and the connection is still usable.
            self.assertFalse(c.has_data(0.2))
            c.send_request("GET", "/healthcheck")
            self.assertEqual(c.read_response().status, 204)

    def test_head(self):
        with self.srv.connect() as c:
            c.send_request("HEAD", "/nope")
            r = c.read_response(head=True)
            self.assertEqual(r.status, 404)
            self.assertEqual(r.header("Content-Length"), "27")
            self.assertEqual(r.header("Content-Type"), "application/json")
            # No body may follow: the next answer starts right after the head.
            c.send_request("HEAD", "/healthcheck")
            r = c.read_response(head=True)
            self.assertEqual(r.status, 204)
            c.send_request("GET", "/nope")
            r = c.read_response()
            self.assertEqual(r.status, 404)
            self.assertEqual(r.body, b'{"message":"Unimplemented"}')
            self.assertFalse(c.has_data(0.2))
        p = curl("-I", self.srv.url("/nope"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout.decode(), r"(?i)content-length: 27")

    def test_connection_close(self):
        with self.srv.connect() as c:
            c.send_request("GET", "/healthcheck", headers={"Connection": "close"})
            r = c.read_response()
            self.assertEqual(r.status, 204)
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c.closed_by_peer(5))

    def test_connection_close_after_pipelined(self):
        # The close applies after the request that asked for it; later ones are not answered.
        with self.srv.connect() as c:
            c.send(skdtest.build_request("GET", "/healthcheck") +
                   skdtest.build_request("GET", "/nope", headers={"Connection": "close"}) +
                   skdtest.build_request("GET", "/healthcheck"))
            self.assertEqual(c.read_response().status, 204)
            r = c.read_response()
            self.assertEqual(r.status, 404)
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c.closed_by_peer(5))

    def test_http10(self):
        with self.srv.connect() as c:
            c.send_request("GET", "/healthcheck", version="HTTP/1.0", host=False)
            r = c.read_response()
            self.assertEqual(r.status, 204)
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c.closed_by_peer(5))
        # HTTP/1.0 asking for keep-alive keeps the connection.
        with self.srv.connect() as c:
            for _ in range(2):
                c.send_request("GET", "/nope", version="HTTP/1.0", headers={"Connection": "keep-alive"})
                r = c.read_response()
                self.assertEqual(r.status, 404)
                self.assertEqual(r.header("Connection"), "keep-alive")
            self.assertFalse(c.closed_by_peer(0.3))

    MALFORMED = [
        ("garbage line", b"hello world\r\n\r\n"),
        ("binary garbage", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"),
        ("bad method", b"FOO /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("lower-case method", b"get /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bad version", b"GET /healthcheck HTTP/9.9\r\nHost: x\r\n\r\n"),
        ("version garbage", b"GET /healthcheck HTTP/1.1x\r\nHost: x\r\n\r\n"),
        ("space in target", b"GET /health check HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("control char in target", b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("header without colon", b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nFoo\r\n\r\n"),
        ("space before colon", b"GET /healthcheck HTTP/1.1\r\nHost : x\r\n\r\n"),
        ("invalid char in header name", b"GET /healthcheck HTTP/1.1\r\nFo\x01o: bar\r\n\r\n"),
        ("invalid char in header value", b"GET /healthcheck HTTP/1.1\r\nFoo: b\x01ar\r\n\r\n"),
        ("bare LF", b"GET /healthcheck HTTP/1.1\nHost: x\n\n"),
        ("bad chunk size", b"POST /healthcheck HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
        ("chunk without CRLF", b"POST /healthcheck HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"),
        ("Content-Length with Transfer-Encoding",
         b"POST /healthcheck HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ("conflicting Content-Length",
         b"POST /healthcheck HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        ("negative Content-Length", b"POST /healthcheck HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
        ("non-numeric Content-Length", b"POST /healthcheck HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"),
        ("unknown Transfer-Encoding", b"POST /healthcheck HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ("absolute-form target", b"GET http://127.0.0.1/healthcheck HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("asterisk target", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("authority target", b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("relative target", b"GET healthcheck HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]

    def test_malformed_400(self):
        for name, data in self.MALFORMED:
            with self.subTest(name), self.srv.connect() as c:
                c.send(data)
                r = c.read_response()
                assert_json_error(self, r, 400)
                self.assertEqual(r.header("Connection"), "close")
                self.assertTrue(c.closed_by_peer(5), name)
        # The server is still fine.
        self.assertEqual(self.srv.request("GET", "/healthcheck").status, 204)

    def test_host_header_rules(self):
        # RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1
        # request without Host, or with more than one Host line.
        for name, data in (("HTTP/1.1 without Host", b"GET /healthcheck HTTP/1.1\r\n\r\n"),
                           ("two Host lines", b"GET /healthcheck HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")):
            with self.subTest(name), self.srv.connect() as c:
                c.send(data)
                assert_json_error(self, c.read_response(), 400)
                self.assertTrue(c.closed_by_peer(5))
        # HTTP/1.0 needs no Host.
        r = self.srv.request("GET", "/healthcheck", version="HTTP/1.0", host=False)
        self.assertEqual(r.status, 204)

    def test_malformed_after_good_requests(self):
        # Earlier pipelined requests are answered, then the 400, then close.
        with self.srv.connect() as c:
            c.send(skdtest.build_request("GET", "/healthcheck") + skdtest.build_request("GET", "/nope") +
                   b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n" + skdtest.build_request("GET", "/healthcheck"))
            self.assertEqual(c.read_response().status, 204)
            self.assertEqual(c.read_response().status, 404)
            assert_json_error(self, c.read_response(), 400)
            self.assertTrue(c.closed_by_peer(5))

    def test_expectation_failed_417(self):
        with self.srv.connect() as c:
            c.send_request("GET", "/healthcheck", headers={"Expect": "something-else"})
            r = c.read_response()
            assert_json_error(self, r, 417, "Unsupported expectation")
            self.assertEqual(r.reason, "Expectation Failed")
            self.assertTrue(c.closed_by_peer(5))

    def test_431_too_many_headers(self):
        headers = [("X-H%d" % i, "v") for i in range(70)]  # max_headers = 64
        with self.srv.connect() as c:
            c.send_request("GET", "/healthcheck", headers=headers)
            r = c.read_response()
            assert_json_error(self, r, 431, "Too many request headers")
            self.assertTrue(c.closed_by_peer(5))
        # 63 (+ Host) is fine.
        r = self.srv.request("GET", "/healthcheck", headers=headers[:63])
        self.assertEqual(r.status, 204)

    def test_431_headers_too_large(self):
        with self.srv.connect() as c:
            c.send_request("GET", "/healthcheck", headers={"X-Big": "a" * 20000})  # max 16384
            r = c.read_response()
            assert_json_error(self, r, 431, "Request headers too large")
            self.assertTrue(c.closed_by_peer(5))
        with self.srv.connect() as c:  # many medium headers adding up
            c.send_request("GET", "/healthcheck", headers=[("X-M%d" % i, "b" * 500) for i in range(40)])
            assert_json_error(self, c.read_response(), 431, "Request headers too large")
        r = self.srv.request("GET", "/healthcheck", headers={"X-Big": "a" * 12000})
        self.assertEqual(r.status, 204)

    def test_414_huge_target(self):
        with self.srv.connect() as c:
            c.send_request("GET", "/" + "a" * 20000)
            r = c.read_response()
            assert_json_error(self, r, 414, "Request target too long")
            self.assertTrue(c.closed_by_peer(5))
        r = self.srv.request("GET", "/" + "a" * 8000)
        assert_json_error(self, r, 404)

    def test_target_with_query_within_limit(self):
        # 9 KB of request target is within max_header_bytes (16384) with or
        # without a query string.
        for target in ("/" + "a" * 9000, "/" + "a" * 9000 + "?x=1", "/x?" + "b" * 9000):
            with self.subTest(len=len(target), query="?" in target):
                assert_json_error(self, self.srv.request("GET", target), 404, "Unimplemented")

    def test_access_log(self):
        with self.srv.connect() as c:
            c.send_request("GET", "/nope?secret=1")
            self.assertEqual(c.read_response().status, 404)
            port = c.sock.getsockname()[1]
        m = self.srv.wait_log(r"ACCESS 127\.0\.0\.1:%d GET /nope 404 27 \d+us$" % port)
        self.assertTrue(m, self.srv.log()[-2000:])

    def test_metrics_by_route_and_status(self):
        def counts(m):
            return (m.get("skd_http_requests_total", route="/healthcheck", status="204"),
                    m.get("skd_http_requests_total", route="unmatched", status="404"),
                    m.get("skd_http_requests_total", route="unmatched", status="405"),
                    m.get("skd_http_requests_total", route="unmatched", status="400"),
                    m.get("skd_http_request_duration_seconds_count"))
        with self.srv.connect(self.srv.admin_port) as admin:
            m0 = self.srv.metrics(admin)
            for _ in range(3):
                self.srv.request("GET", "/healthcheck")
            for _ in range(2):
                self.srv.request("GET", "/nope")
            self.srv.request("POST", "/healthcheck", body=b"")
            with self.srv.connect() as c:
                c.send(b"BAD\r\n\r\n")
                c.read_response()
            m1 = self.srv.metrics(admin)
        d = [b - a for a, b in zip(counts(m0), counts(m1))]
        # The first scrape itself is counted as route /metrics and in the histogram.
        self.assertEqual(d, [3, 2, 1, 1, 3 + 2 + 1 + 1 + 1])
        self.assertGreaterEqual(m1.get("skd_http_requests_total", route="/metrics", status="200"), 1)
        for name in ("skd_http_connections_open", "skd_http_connections_total", "skd_worker_queue_depth",
                     "skd_http_request_duration_seconds_sum", "skd_tls_handshake_failures_total"):
            self.assertIsNotNone(m1.value(name), name)
        # Histogram: cumulative buckets, +Inf equals the count.
        buckets = [(l["le"], v) for n, l, v in m1.samples if n == "skd_http_request_duration_seconds_bucket"]
        self.assertEqual(buckets[-1][0], "+Inf")
        self.assertEqual(buckets[-1][1], m1.get("skd_http_request_duration_seconds_count"))
        values = [v for _, v in buckets]
        self.assertEqual(values, sorted(values))
        self.assertIn("# TYPE skd_http_requests_total counter", m1.text)
        self.assertIn("# TYPE skd_http_request_duration_seconds histogram", m1.text)
        # The admin connection is open while it scrapes.
        self.assertGreaterEqual(m1.get("skd_http_connections_open"), 1)

    def test_admin_routes_from_loopback(self):
        r = self.srv.request("GET", "/healthcheck", port=self.srv.admin_port)
        self.assertEqual(r.status, 204)
        r = self.srv.request("GET", "/metrics", port=self.srv.admin_port)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"))
        # Another loopback source address (127.0.0.0/8) is loopback too.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.2", 0))
        except OSError:
            s.close()
            s = None
        if s is not None:
            s.settimeout(10)
            s.connect(("127.0.0.1", self.srv.admin_port))
            with skdtest.Conn(None, None, sock=s) as c:
                c.send_request("GET", "/metrics")
                self.assertEqual(c.read_response().status, 200)
        # The public API is not on the admin listener and vice versa.
        assert_json_error(self, self.srv.request("GET", "/metrics"), 404)
        p = curl("-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:%d/metrics" % self.srv.admin_port)
        self.assertEqual(p.stdout, b"200")


class SeparateServerTest(unittest.TestCase):
    def test_ipv6_listener(self):
        if not skdtest.have_ipv6_loopback():
            self.skipTest("no IPv6 loopback on this host")
        with Server(SKD, ipv6=True) as srv:
            with srv.connect(srv.ipv6_port, host="::1") as c:
                c.send_request("GET", "/healthcheck", headers={"Host": "[::1]"})
                self.assertEqual(c.read_response().status, 204)
                c.send_request("GET", "/nope", headers={"Host": "[::1]"})
                assert_json_error(self, c.read_response(), 404)
                port = c.sock.getsockname()[1]
            p = curl("-g", "-o", "/dev/null", "-w", "%{http_code}", "http://[::1]:%d/healthcheck" % srv.ipv6_port)
            self.assertEqual((p.returncode, p.stdout), (0, b"204"), p.stderr)
            self.assertTrue(srv.wait_log(r"ACCESS \[::1\]:%d GET /healthcheck 204" % port))
            # IPv4 listener still works alongside.
            self.assertEqual(srv.request("GET", "/healthcheck").status, 204)

    def test_ipv6_admin_listener(self):
        if not skdtest.have_ipv6_loopback():
            self.skipTest("no IPv6 loopback on this host")
        port6 = skdtest.free_port(socket.AF_INET6, "::1")
        with Server(SKD, {"admin": {"listen": ["127.0.0.1:{admin_port}", "[::1]:%d" % port6]}}) as srv:
            self.assertTrue(skdtest.wait_port("::1", port6))
            with srv.connect(port6, host="::1") as c:
                c.send_request("GET", "/metrics")
                self.assertEqual(c.read_response().status, 200)

    def test_admin_403_for_non_loopback(self):
        addr = non_loopback_ipv4()
        if addr is None:
            self.skipTest("no non-loopback IPv4 address")
        with Server(SKD, {"admin": {"listen": "0.0.0.0:{admin_port}"}}) as srv:
            self.assertTrue(srv.wait_log(r"WARN .*admin listener 0\.0\.0\.0:%d is not on loopback" % srv.admin_port))
            with srv.connect(srv.admin_port, host=addr) as c:
                for path in ("/metrics", "/healthcheck"):
                    c.send_request("GET", path)
                    assert_json_error(self, c.read_response(), 403)
            # Loopback clients of the same listener are served.
            self.assertEqual(srv.request("GET", "/metrics", port=srv.admin_port).status, 200)
            self.assertEqual(srv.request("GET", "/healthcheck", port=srv.admin_port).status, 204)


if __name__ == "__main__":
    skdtest.main()
