#!/usr/bin/env python3
"""The worker pool through skd-testserver's /test/sleep: parallelism,
ordering, clients that leave, request timeouts and graceful shutdown."""

import signal
import socket
import struct
import threading
import time
import unittest

import skdtest
from skdtest import SKD_TESTSERVER, Server, assert_json_error, build_request

BASE = {"server": {"worker_threads": 2}}


def stats(srv):
    r = srv.request("GET", "/test/stats")
    assert r.status == 200, r
    return r.json()


def timed_get(srv, path, results, i):
    t0 = time.monotonic()
    try:
        r = srv.request("GET", path)
        results[i] = (r, time.monotonic() - t0)
    except Exception as e:  # reported by the caller
        results[i] = (e, time.monotonic() - t0)


class SleepTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(SKD_TESTSERVER, BASE)
        cls.srv.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def wait_pool_idle(self):
        self.assertTrue(skdtest.wait_for(lambda: self.srv.metrics().get("skd_worker_queue_depth") == 0, 10),
                        "worker jobs still running")

    def test_sleep_200(self):
        t0 = time.monotonic()
        r = self.srv.request("GET", "/test/sleep/200")
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"slept": 200})
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertGreaterEqual(elapsed, 0.19)
        self.assertLess(elapsed, 2)
        assert_json_error(self, self.srv.request("GET", "/test/sleep/abc"), 400)
        assert_json_error(self, self.srv.request("GET", "/test/sleep/20000"), 400)

    def test_parallel_sleeps(self):
        self.wait_pool_idle()
        results = [None] * 4
        threads = [threading.Thread(target=timed_get, args=(self.srv, "/test/sleep/300", results, i))
                   for i in range(4)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        total = time.monotonic() - t0
        for r, _ in results:
            self.assertIsInstance(r, skdtest.Response, r)
            self.assertEqual((r.status, r.json()), (200, {"slept": 300}))
        # Two threads: two rounds of 300 ms, not four, and not all at once.
        self.assertGreaterEqual(total, 0.58)
        self.assertLess(total, 1.1, "4 x 300 ms on 2 worker threads took %.2f s" % total)

    def test_event_loop_not_blocked(self):
        # While both worker threads sleep, the loop still answers at once.
        self.wait_pool_idle()
        results = [None] * 2
        threads = [threading.Thread(target=timed_get, args=(self.srv, "/test/sleep/1000", results, i))
                   for i in range(2)]
        for t in threads:
            t.start()
        self.assertTrue(skdtest.wait_for(lambda: self.srv.metrics().get("skd_worker_queue_depth") == 2, 5))
        t0 = time.monotonic()
        self.assertEqual(self.srv.request("GET", "/healthcheck").status, 204)
        self.assertLess(time.monotonic() - t0, 0.5)
        self.assertEqual(self.srv.metrics().get("skd_worker_queue_depth"), 2)  # both still sleeping
        for t in threads:
            t.join(15)
        self.assertTrue(all(r.status == 200 for r, _ in results), results)

    def test_pipelined_in_order(self):
        with self.srv.connect() as c:
            t0 = time.monotonic()
            c.send(build_request("GET", "/test/sleep/300") + build_request("GET", "/healthcheck") +
                   build_request("GET", "/test/sleep/10") + build_request("GET", "/nope"))
            r1 = c.read_response()
            t1 = time.monotonic() - t0
            r2 = c.read_response()
            r3 = c.read_response()
            r4 = c.read_response()
            self.assertEqual([r1.status, r2.status, r3.status, r4.status], [200, 204, 200, 404])
            self.assertEqual(r1.json(), {"slept": 300})
            self.assertEqual(r3.json(), {"slept": 10})
            self.assertGreaterEqual(t1, 0.29)  # the 204 waited for the sleep before it

    def _disconnect_during_sleep(self, abortive):
        self.wait_pool_idle()
        before = stats(self.srv)
        c = self.srv.connect()
        c.send_request("GET", "/test/sleep/500")
        self.assertTrue(skdtest.wait_for(lambda: self.srv.metrics().get("skd_worker_queue_depth") == 1, 5))
        if abortive:  # RST
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        # The server keeps serving meanwhile.
        self.assertEqual(self.srv.request("GET", "/healthcheck").status, 204)
        after = skdtest.wait_for(lambda: (lambda s: s if s["discarded"] > before["discarded"] or
                                          s["completed"] > before["completed"] else None)(stats(self.srv)), 5)
        self.assertTrue(after, "the sleep job never finished")
        self.assertEqual(after["discarded"], before["discarded"] + 1, after)
        self.assertEqual(after["completed"], before["completed"], after)
        r = self.srv.request("GET", "/test/sleep/1")
        self.assertEqual(r.status, 200)

    def test_client_disconnects_during_sleep(self):
        # close(): the client sent FIN and is gone before the answer exists.
        self._disconnect_during_sleep(abortive=False)

    def test_client_resets_during_sleep(self):
        self._disconnect_during_sleep(abortive=True)


class QueueLimitsTest(unittest.TestCase):
    def test_max_pipelined(self):
        # 4 worker threads but at most 2 requests of a connection in progress.
        cfg = {"server": {"worker_threads": 4}, "limits": {"max_pipelined": 2}}
        with Server(SKD_TESTSERVER, cfg) as srv, srv.connect(srv.admin_port) as admin:
            with srv.connect() as c:
                t0 = time.monotonic()
                c.send(build_request("GET", "/test/sleep/200") * 6)
                depths = []
                while not c.has_data(0.03):
                    depths.append(srv.metrics(admin).get("skd_worker_queue_depth"))
                    self.assertLess(time.monotonic() - t0, 5)
                for _ in range(6):
                    r = c.read_response()
                    self.assertEqual((r.status, r.json()), (200, {"slept": 200}))
                    depths.append(srv.metrics(admin).get("skd_worker_queue_depth"))
                elapsed = time.monotonic() - t0
            self.assertLessEqual(max(depths), 2, depths)
            self.assertEqual(max(depths), 2, depths)
            self.assertGreaterEqual(elapsed, 0.58)  # three rounds of two, not two rounds (4 + 2)

    def test_max_queued_jobs(self):
        cfg = {"server": {"worker_threads": 1, "max_queued_jobs": 2}}
        with Server(SKD_TESTSERVER, cfg) as srv:
            conns = [srv.connect() for _ in range(3)]
            try:
                t0 = time.monotonic()
                for c in conns[:2]:
                    c.send_request("GET", "/test/sleep/600")
                self.assertTrue(skdtest.wait_for(lambda: srv.metrics().get("skd_worker_queue_depth") == 2, 5))
                t1 = time.monotonic()
                conns[2].send_request("GET", "/test/sleep/600")
                r = conns[2].read_response()
                assert_json_error(self, r, 503, "Server busy")
                self.assertLess(time.monotonic() - t1, 0.4)  # at once, not after the others
                # One worker thread: the two accepted jobs run one after the other.
                self.assertEqual(conns[0].read_response().status, 200)
                self.assertEqual(conns[1].read_response().status, 200)
                self.assertGreaterEqual(time.monotonic() - t0, 1.15)
            finally:
                for c in conns:
                    c.close()
            m = srv.metrics()
            self.assertEqual(m.get("skd_worker_jobs_rejected_total"), 1)
            self.assertEqual(m.get("skd_worker_queue_depth"), 0)
            self.assertGreaterEqual(m.get("skd_worker_jobs_total"), 2)
            self.assertEqual(srv.request("GET", "/test/sleep/1").status, 200)

    def test_100_continue_after_earlier_answers(self):
        # The "100 Continue" of a pipelined request goes out after the
        # answers of the requests before it.
        with Server(SKD_TESTSERVER, BASE) as srv, srv.connect() as c:
            c.send(build_request("GET", "/test/sleep/300") +
                   b"POST /test/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.json()), (200, {"slept": 300}))
            r = c.read_response()
            self.assertEqual(r.status, 100)
            c.send(b"hello")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"hello"))


class TimersAndSlowAnswersTest(unittest.TestCase):
    """Read timeouts (idle, body) against answers that take a while."""

    def test_idle_timeout_starts_after_the_answer(self):
        # The connection is idle once the answer is out, not while the
        # server works on it: a keep-alive answer after 600 ms must leave the
        # connection usable for idle_timeout_ms (300).
        cfg = skdtest.merge(BASE, {"limits": {"idle_timeout_ms": 300}})
        with Server(SKD_TESTSERVER, cfg) as srv, srv.connect() as c:
            c.send_request("GET", "/test/sleep/600")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertIsNone(r.header("Connection"))  # keep-alive: no close announced
            try:
                c.send_request("GET", "/healthcheck")
                r = c.read_response()
            except (skdtest.Closed, OSError) as e:
                self.fail("the keep-alive connection closed right after a slow answer: %r" % e)
            self.assertEqual(r.status, 204)
            # Then, idle, it does close after idle_timeout_ms.
            t0 = time.monotonic()
            self.assertTrue(c.closed_by_peer(5))
            self.assertGreaterEqual(time.monotonic() - t0, 0.25)

    def test_body_timeout_waits_for_100_continue(self):
        # A client that sent "Expect: 100-continue" waits for the 100 before
        # the body; while an earlier pipelined answer holds the 100 back, the
        # body timeout must not run out.
        cfg = skdtest.merge(BASE, {"limits": {"body_timeout_ms": 500}})
        with Server(SKD_TESTSERVER, cfg) as srv, srv.connect() as c:
            c.send(build_request("GET", "/test/sleep/1000") +
                   b"POST /test/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.json()), (200, {"slept": 1000}))
            r = c.read_response()
            self.assertEqual(r.status, 100, r)
            c.send(b"hello")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"hello"))


class RequestTimeoutTest(unittest.TestCase):
    def test_request_timeout(self):
        cfg = skdtest.merge(BASE, {"limits": {"request_timeout_ms": 300}})
        with Server(SKD_TESTSERVER, cfg) as srv:
            before = stats(srv)
            with srv.connect() as c:
                t0 = time.monotonic()
                c.send_request("GET", "/test/sleep/1000")
                r = c.read_response(timeout=5)
                elapsed = time.monotonic() - t0
                assert_json_error(self, r, 503, "Request timed out")
                self.assertGreaterEqual(elapsed, 0.28)
                self.assertLess(elapsed, 0.9)
                # The connection stays usable.
                c.send_request("GET", "/healthcheck")
                self.assertEqual(c.read_response().status, 204)
                # Later the job ends and is counted as discarded, not answered twice.
                after = skdtest.wait_for(lambda: (lambda s: s if s["discarded"] > before["discarded"] else None)(
                    stats(srv)), 5)
                self.assertTrue(after, "the timed-out job was never counted as discarded")
                self.assertEqual(after["completed"], before["completed"])
                self.assertFalse(c.has_data(0.1))
                c.send_request("GET", "/test/sleep/10")
                self.assertEqual(c.read_response().json(), {"slept": 10})
            self.assertTrue(srv.wait_log(r"ACCESS \S+ GET /test/sleep/1000 503 "))


class ShutdownTest(unittest.TestCase):
    def test_sigterm_finishes_in_flight(self):
        with Server(SKD_TESTSERVER, BASE) as srv:
            with srv.connect() as idle, srv.connect() as c:
                idle.send_request("GET", "/healthcheck")
                self.assertEqual(idle.read_response().status, 204)
                c.send_request("GET", "/test/sleep/1000")
                self.assertTrue(skdtest.wait_for(lambda: srv.metrics().get("skd_worker_queue_depth") == 1, 5))
                t0 = time.monotonic()
                srv.signal(signal.SIGTERM)
                self.assertTrue(srv.wait_log(r"INFO shutting down", 5))
                # No new connections.
                with self.assertRaises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
                with self.assertRaises(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", srv.admin_port), timeout=2).close()
                # The idle keep-alive connection is closed.
                self.assertTrue(idle.closed_by_peer(5))
                # The request in flight is answered, then its connection closes.
                r = c.read_response(timeout=5)
                self.assertEqual((r.status, r.json()), (200, {"slept": 1000}))
                self.assertEqual(r.header("Connection"), "close")
                self.assertGreaterEqual(time.monotonic() - t0, 0.5)
                self.assertTrue(c.closed_by_peer(5))
            self.assertEqual(srv.wait(10), 0)
            self.assertTrue(srv.wait_log(r"INFO stopped", 1))

    def test_sigint_graceful(self):
        with Server(SKD_TESTSERVER, BASE) as srv:
            with srv.connect() as c:
                c.send_request("GET", "/test/sleep/300")
                self.assertTrue(skdtest.wait_for(lambda: srv.metrics().get("skd_worker_queue_depth") == 1, 5))
                srv.signal(signal.SIGINT)
                r = c.read_response(timeout=5)
                self.assertEqual(r.status, 200)
            self.assertEqual(srv.wait(10), 0)

    def test_sigterm_pipelined_after_in_flight(self):
        # Requests already received are answered; the connection then closes.
        with Server(SKD_TESTSERVER, BASE) as srv:
            with srv.connect() as c:
                c.send(build_request("GET", "/test/sleep/300") + build_request("GET", "/healthcheck"))
                self.assertTrue(skdtest.wait_for(lambda: srv.metrics().get("skd_worker_queue_depth") == 1, 5))
                srv.signal(signal.SIGTERM)
                self.assertEqual(c.read_response(timeout=5).status, 200)
                r = c.read_response(timeout=5)
                self.assertEqual(r.status, 204)
                self.assertEqual(r.header("Connection"), "close")
                self.assertTrue(c.closed_by_peer(5))
            self.assertEqual(srv.wait(10), 0)

    def test_sigterm_with_partial_requests(self):
        with Server(SKD_TESTSERVER, BASE) as srv:
            with srv.connect() as head, srv.connect() as body:
                head.send(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nX-Half")
                body.send(b"POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
                time.sleep(0.2)
                srv.signal(signal.SIGTERM)
                # Half a head: told to retry elsewhere.
                r = head.read_response(timeout=5)
                assert_json_error(self, r, 503, "Server shutting down")
                self.assertTrue(head.closed_by_peer(5))
                # A head without its whole body: the body may still come.
                time.sleep(0.2)
                body.send(b"56789")
                r = body.read_response(timeout=5)
                self.assertEqual((r.status, r.body), (200, b"0123456789"))
                self.assertEqual(r.header("Connection"), "close")
                self.assertTrue(body.closed_by_peer(5))
            self.assertEqual(srv.wait(10), 0)

    def test_sigterm_shutdown_timeout(self):
        cfg = skdtest.merge(BASE, {"server": {"shutdown_timeout_ms": 500}})
        with Server(SKD_TESTSERVER, cfg) as srv:
            with srv.connect() as c:
                c.send_request("GET", "/test/sleep/5000")
                self.assertTrue(skdtest.wait_for(lambda: srv.metrics().get("skd_worker_queue_depth") == 1, 5))
                t0 = time.monotonic()
                srv.signal(signal.SIGTERM)
                # The client is cut off at the deadline.
                self.assertTrue(c.closed_by_peer(3))
                self.assertLess(time.monotonic() - t0, 2.5)
                status = srv.wait(10)
                elapsed = time.monotonic() - t0
                self.assertEqual(status, 0)
                self.assertGreaterEqual(elapsed, 0.4)
                self.assertLess(elapsed, 2.5, "exited %.1f s after SIGTERM with shutdown_timeout_ms = 500" % elapsed)
            self.assertTrue(srv.wait_log(r"WARN shutdown deadline reached", 1))


if __name__ == "__main__":
    skdtest.main()
