#!/usr/bin/env python3
"""The installations REST API (certs/, ../shared/spec/cert-pipeline.md) over
real HTTP: registration (open and with enrolment tokens), nonces and replay,
every signed route's happy path and refusals, the challenge long-poll (202
with Retry-After when no DNS server answers, 200 ready with real skdns
processes, the values then visible with kdig), deletes, and start-up
refusals of bad [installations]/[kvpsend] sections.

Keys, JWS signing, the installation client and the skdns wrapper are
skdtest's (Key, InstallationClient, Skdns); test_pipeline.py uses them too."""

import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import unittest

import skdtest
from skdtest import SKD, ZONE, Key, Server, Skdns, acme_value, free_port, psk_file, wait_for
from skdtest import InstallationClient as Client
from skdtest import installations_status as status

ID_RE = re.compile(r"^[0-9a-f]{32}$")
LABEL_RE = re.compile(r"^[a-z2-7]{16}$")


def error(test, r, status, type_=None):
    test.assertEqual(r.status, status, r.body)
    test.assertEqual(r.getheader("Content-Type"), "application/json")
    obj = json.loads(r.body)
    test.assertIsInstance(obj.get("message"), str)
    if type_:
        test.assertEqual(obj.get("type"), type_, obj)
    test.assertIsNotNone(r.getheader("Replay-Nonce"))
    return obj


def installations_config(directory, extra=None, kvpsend=None):
    cfg = {"store": {"path": os.path.join(directory, "skd.db")},
           "installations": {"zone": ZONE, "longpoll_wait_ms": 800}}
    if kvpsend:
        cfg["kvpsend"] = kvpsend
    for section, options in (extra or {}).items():
        cfg.setdefault(section, {}).update(options)
    return cfg


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="skdinst-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def key(self):
        return Key()


class Registration(Base):
    """One skd without [kvpsend]: every route but the challenge PUT."""

    @classmethod
    def setUpClass(cls):
        cls.cdir = tempfile.mkdtemp(prefix="skdinst-")
        cls.srv = Server(SKD, installations_config(cls.cdir)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)
        shutil.rmtree(cls.cdir, True)

    def client(self, key=None):
        return Client(self.srv.port, key or self.key())

    def test_nonce_and_whoami(self):
        c = self.client()
        r = c.request("GET", "/api/v1/nonce")
        self.assertEqual(r.status, 204)
        n1 = r.getheader("Replay-Nonce")
        self.assertRegex(n1, r"^[A-Za-z0-9_-]{43}$")
        self.assertEqual(r.getheader("Cache-Control"), "no-store")
        r = c.request("HEAD", "/api/v1/nonce")
        self.assertEqual(r.status, 200)
        self.assertNotEqual(r.getheader("Replay-Nonce"), n1)
        r = c.request("GET", "/api/v1/whoami")
        self.assertEqual((r.status, json.loads(r.body)), (200, {"address": "127.0.0.1"}))
        p = skdtest.curl("--interface", "127.0.0.2", self.srv.url("/api/v1/whoami"))
        self.assertEqual(json.loads(p.stdout), {"address": "127.0.0.2"})

    def test_register(self):
        c = self.client()
        r = c.register(metadata={"instance_type": "t3.micro", "region": "eu-west-1", "hostname": "h1"})
        self.assertEqual(r.status, 201, r.body)
        obj = json.loads(r.body)
        self.assertRegex(obj["id"], ID_RE)
        self.assertRegex(obj["label"], LABEL_RE)
        self.assertEqual(obj["name"], obj["label"] + "." + ZONE)
        self.assertEqual(r.getheader("Location"), c.url("/api/v1/installations/" + obj["id"]))
        # The same key again: the same installation (a lost answer can be retried).
        r = c.register(label="anything")
        self.assertEqual((r.status, json.loads(r.body)), (200, obj))
        # A label asked for, then taken for another key.
        c2 = self.client()
        r = c2.register(label="my-host-1")
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(json.loads(r.body)["name"], "my-host-1.sk.test.")
        error(self, self.client().register(label="my-host-1"), 409, "conflict")
        for bad in ("ns1", "ns", "-a", "a-", "A", "a.b", "x" * 64, 7, ""):
            error(self, self.client().register(label=bad), 400, "malformed")

    def test_register_refusals(self):
        c = self.client()
        for md in ({"k": 1}, {"k" * 65: "v"}, {"k": "v" * 257}, {"k%d" % i: "v" for i in range(17)}, ["a"],
                   {"a b": "v"}):
            error(self, c.register(metadata=md), 400, "malformed")
        r, _ = c.signed("POST", "/api/v1/installations", {"surprise": 1}, jwk=True)
        error(self, r, 400, "malformed")
        # The payload's jwk, if sent, must be the header's.
        other = self.key()
        r, _ = c.signed("POST", "/api/v1/installations", {"jwk": other.jwk}, jwk=True)
        error(self, r, 400, "malformed")
        r, _ = c.signed("POST", "/api/v1/installations", {"jwk": c.key.jwk}, jwk=True)
        self.assertEqual(r.status, 201, r.body)
        # kid instead of jwk; a signature by another key than the jwk's.
        r, _ = self.client().signed("POST", "/api/v1/installations", {}, kid="0" * 32)
        error(self, r, 400, "malformed")
        c3 = self.client()
        r, _ = c3.signed("POST", "/api/v1/installations", {}, jwk=True, key=other)
        error(self, r, 401, "unauthorized")
        # A private key in the jwk; a kid that is not a string.
        r, _ = c3.signed("POST", "/api/v1/installations", {}, jwk=True, header={"jwk": dict(c3.key.jwk, d="AAAA")})
        error(self, r, 400, "badPublicKey")
        r, _ = c3.signed("POST", "/api/v1/installations", {}, header={"kid": None})
        error(self, r, 400, "malformed")
        r = c3.request("POST", "/api/v1/installations", body=b'{"protected":"e30","payload":"","signature":"AA"}',
                       headers={"Content-Type": "application/jose+json"})
        error(self, r, 400, "malformed")

    def test_request_checks(self):
        c = self.client()
        self.assertEqual(c.register().status, 201)
        path = "/api/v1/installations/%s/address" % c.id
        # Content-Type and size.
        r, _ = c.signed("PUT", path, {"address": "192.0.2.1"}, content_type="application/x-www-form-urlencoded")
        error(self, r, 415)
        r = c.request("PUT", path, b"{" + b" " * 9000 + b"}", {"Content-Type": "application/jose+json"})
        error(self, r, 413, "tooLarge")
        # Not JSON, duplicate members, a wrong algorithm.
        r = c.request("PUT", path, b"{nope", {"Content-Type": "application/jose+json"})
        error(self, r, 400, "malformed")
        body = c.jws(c.url(path), {"address": "192.0.2.1"})
        dup = body[:-1] + b',"payload":""}'
        error(self, c.request("PUT", path, dup, {"Content-Type": "application/jose+json"}), 400, "malformed")
        r, _ = c.signed("PUT", path, {"address": "192.0.2.1"}, alg="RS256")
        error(self, r, 400, "badSignatureAlgorithm")
        # The signed URL must be this one: another path, host or scheme.
        for url in (c.url("/api/v1/installations/%s/challenge" % c.id), "http://localhost:%d%s" % (c.port, path),
                    "https://127.0.0.1:%d%s" % (c.port, path)):
            body = c.jws(url, {"address": "192.0.2.1"})
            r = c.request("PUT", path, body, {"Content-Type": "application/jose+json"})
            error(self, r, 400, "malformed")
        # A bad signature, another installation's kid, unknown installations.
        other = self.client()
        self.assertEqual(other.register().status, 201)
        r, _ = c.signed("PUT", path, {"address": "192.0.2.1"}, key=other.key)
        error(self, r, 401, "unauthorized")
        r, _ = c.signed("PUT", path, {"address": "192.0.2.1"}, kid=other.id)
        error(self, r, 403, "unauthorized")
        ghost = "f" * 32
        r, _ = c.signed("PUT", "/api/v1/installations/%s/address" % ghost, {"address": "192.0.2.1"}, kid=ghost)
        error(self, r, 404, "notFound")
        r, _ = c.signed("PUT", "/api/v1/installations/nope/address", {"address": "192.0.2.1"}, kid="nope")
        error(self, r, 404, "notFound")
        # kid as the installation's URL works too.
        r, _ = c.signed("PUT", path, {"address": "192.0.2.1"}, kid=c.url("/api/v1/installations/" + c.id))
        self.assertEqual(r.status, 200, r.body)

    def test_replay_and_bad_nonces(self):
        c = self.client()
        self.assertEqual(c.register().status, 201)
        path = "/api/v1/installations/%s/address" % c.id
        r, body = c.signed("PUT", path, {"address": "192.0.2.9"})
        self.assertEqual(r.status, 200, r.body)
        # The same request again: refused, with a fresh nonce that works.
        r = c.request("PUT", path, body, {"Content-Type": "application/jose+json"})
        error(self, r, 400, "badNonce")
        fresh = r.getheader("Replay-Nonce")
        r, _ = c.signed("PUT", path, {"address": "192.0.2.10"}, nonce=fresh)
        self.assertEqual(r.status, 200, r.body)
        for bad in ("", "x", "A" * 43, fresh):
            r, _ = c.signed("PUT", path, {"address": "192.0.2.11"}, nonce=bad)
            error(self, r, 400, "malformed" if bad == "" else "badNonce")

    def test_address(self):
        c = self.client()
        self.assertEqual(c.register().status, 201)
        for given, want in (("192.0.2.7", "192.0.2.7"), ("2001:DB8::7", "2001:db8::7"), ("auto", "127.0.0.1"),
                            ("::ffff:192.0.2.8", "192.0.2.8")):
            r = c.address(given)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(json.loads(r.body), {"name": c.label + "." + ZONE, "address": want})
        for bad in ("192.0.2.300", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255", "example.com", 7):
            error(self, c.address(bad), 400, "malformed")
        r, _ = c.signed("PUT", "/api/v1/installations/%s/address" % c.id, {"address": "auto", "x": 1})
        error(self, r, 400, "malformed")
        r, _ = c.signed("PUT", "/api/v1/installations/%s/address" % c.id, None)
        error(self, r, 400, "malformed")

    def test_challenge_without_kvpsend(self):
        c = self.client()
        self.assertEqual(c.register().status, 201)
        obj = error(self, c.challenge_set(acme_value("a")), 503)
        self.assertIn("[kvpsend]", obj["message"])
        r = c.challenge_delete()
        self.assertEqual((r.status, json.loads(r.body)), (200, {"deleted": 0}))

    def test_delete(self):
        c = self.client()
        self.assertEqual(c.register(label="gone-soon").status, 201)
        self.assertEqual(c.address("192.0.2.1").status, 200)
        r = c.delete()
        self.assertEqual(r.status, 204, r.body)
        error(self, c.delete(), 404, "notFound")
        error(self, c.address("192.0.2.1"), 404, "notFound")
        # The label is free again, for another key.
        self.assertEqual(self.client().register(label="gone-soon").status, 201)


class Enrolment(Base):
    def test_tokens(self):
        tokens = os.path.join(self.dir, "tokens")
        with open(os.open(tokens, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("# operator tokens\n\nfirst-token-0123456789\n  second-token-0123456789  \n")
        cfg = installations_config(self.dir, {"installations": {"enrolment_tokens": tokens}})
        with Server(SKD, cfg) as srv:
            c = Client(srv.port, self.key())
            error(self, c.register(), 401, "unauthorized")
            c.token = "first-token-012345678"  # a prefix
            error(self, c.register(), 403, "unauthorized")
            c.token = "first-token-0123456789x"
            error(self, c.register(), 403, "unauthorized")
            c.token = "second-token-0123456789"
            self.assertEqual(c.register().status, 201)
            # Only registration needs it.
            c.token = None
            self.assertEqual(c.address("192.0.2.1").status, 200)

    def test_refused_token_files(self):
        tokens = os.path.join(self.dir, "tokens")
        for mode, text in ((0o644, "a-long-enough-token-1\n"), (0o600, "# none\n"), (0o600, "short\n")):
            with open(tokens, "w") as f:
                f.write(text)
            os.chmod(tokens, mode)
            cfg = installations_config(self.dir, {"installations": {"enrolment_tokens": tokens}})
            srv = Server(SKD, cfg, expect_exit=None, check_log=False)
            with self.assertRaises(skdtest.ServerError):
                srv.__enter__()


class TrustedProxy(Base):
    def test_forwarded_headers(self):
        """From a trusted proxy, X-Forwarded-For gives the caller's address and
        X-Forwarded-Proto the scheme of the signed url; from others, nothing."""
        cfg = installations_config(self.dir, {"public": {"trusted_proxies": "127.0.0.2/32"}})
        with Server(SKD, cfg) as srv:
            fwd = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9", "X-Forwarded-Proto": "https"}
            p = skdtest.curl("--interface", "127.0.0.2", "-H", "X-Forwarded-For: " + fwd["X-Forwarded-For"],
                             srv.url("/api/v1/whoami"))
            self.assertEqual(json.loads(p.stdout), {"address": "203.0.113.9"})
            c = Client(srv.port, self.key())
            r = c.request("GET", "/api/v1/whoami", headers=fwd)
            self.assertEqual(json.loads(r.body), {"address": "127.0.0.1"})  # not a trusted proxy
            self.assertEqual(c.register().status, 201)
            # Through the proxy (a connection from 127.0.0.2) the client signed https://.
            path = "/api/v1/installations/%s/address" % c.id
            proxied = Client(srv.port, c.key, host="127.0.0.1")
            body = c.jws("https://127.0.0.1:%d%s" % (srv.port, path), {"address": "auto"})
            s = socket.create_connection(("127.0.0.1", srv.port), source_address=("127.0.0.2", 0))
            s.sendall(b"PUT %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/jose+json\r\n"
                      b"X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (path.encode(), srv.port, len(body)) + body)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            self.assertIn(b" 200 ", data.split(b"\r\n")[0])
            self.assertIn(b'"address":"203.0.113.9"', data)
            # The same https url from a direct client: refused.
            c.nonce = proxied.fresh_nonce()
            body = c.jws("https://127.0.0.1:%d%s" % (srv.port, path), {"address": "auto"})
            r = c.request("PUT", path, body, {"Content-Type": "application/jose+json", "X-Forwarded-Proto": "https"})
            error(self, r, 400, "malformed")


class ConfigRefusals(Base):
    def start(self, text):
        path = os.path.join(self.dir, "bad.conf")
        with open(path, "w") as f:
            f.write("[public]\nlisten = 127.0.0.1:%d\n" % free_port() + text)
        return skdtest.run_skd(SKD, ["serve", "-c", path], timeout=20)

    def test_refusals(self):
        db = os.path.join(self.dir, "skd.db")
        psk = psk_file(self.dir, "r1")
        cases = [
            ("[installations]\nzone = sk.test.\n", "needs [store] path"),
            ("[store]\npath = %s\n[installations]\nzone = Sk.test.\n" % db, "zone"),
            ("[store]\npath = %s\n[installations]\nzone = sk..test\n" % db, "zone"),
            ("[store]\npath = %s\n[installations]\nenrolment_tokens = /x\n" % db, "needs [installations] zone"),
            ("[store]\npath = %s\n[installations]\nzone = sk.test\nlongpoll_wait_ms = 30000\n" % db,
             "must be below [limits] request_timeout_ms"),
            ("[store]\npath = %s\n[installations]\nzone = sk.test\n[kvpsend]\nsender_id = 1\n" % db,
             "needs sender_id and at least one receiver"),
            ("[store]\npath = %s\n[installations]\nzone = sk.test\n[kvpsend]\nsender_id = 1\n"
             "receiver = a 127.0.0.1 %s\n" % (db, psk), "bad address"),
            ("[store]\npath = %s\n[installations]\nzone = sk.test\n[kvpsend]\nsender_id = 1\n"
             "receiver = a 127.0.0.1:1 %s\nreceiver = a 127.0.0.1:2 %s\n" % (db, psk, psk), "used twice"),
            ("[store]\npath = %s\n[installations]\nzone = sk.test\n[kvpsend]\nsender_id = 1\n"
             "receiver = a 127.0.0.1:1 %s\n" % (db, os.path.join(self.dir, "missing.psk")), "receiver a"),
            ("[store]\npath = %s\n[kvpsend]\nsender_id = 1\nreceiver = a 127.0.0.1:1 %s\n" % (db, psk),
             "[kvpsend] needs [installations] zone"),
        ]
        for text, want in cases:
            with self.subTest(config=text):
                p = self.start(text)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(want, p.stderr.decode())


class LongPoll(Base):
    def test_pending_when_no_dns_server_answers(self):
        dead = free_port()  # nothing listens there (UDP)
        psk = psk_file(self.dir, "dead")
        cfg = installations_config(self.dir, kvpsend={"sender_id": 7,
                                                      "receiver": "dead 127.0.0.1:%d %s" % (dead, psk)})
        with Server(SKD, cfg) as srv:
            c = Client(srv.port, self.key())
            self.assertEqual(c.register().status, 201)
            v = acme_value("pending")
            wait_for(lambda: c.challenge_set(v).status != 503, 5)  # kvpsend starts with the first snapshot
            start = time.monotonic()
            r = c.challenge_set(v)
            took = time.monotonic() - start
            self.assertEqual(r.status, 202, r.body)
            self.assertEqual(json.loads(r.body), {"status": "pending"})
            self.assertEqual(r.getheader("Retry-After"), "1")
            self.assertGreaterEqual(took, 0.7)
            # The receiver counts as healthy at first (kvpsend assumes so until
            # its lease runs out), then not: no healthy receiver, still 202.
            self.assertTrue(wait_for(lambda: not status(srv)["receivers"][0]["healthy"], 10))
            self.assertEqual((status(srv)["kvpsend"], status(srv)["receivers"][0]["name"]), (True, "dead"))
            self.assertEqual(c.challenge_set(v).status, 202)
            # Several at once, each on its own connection; one client leaves early.
            results = []

            def put(value):
                cc = Client(srv.port, c.key)
                cc.id = c.id
                results.append(cc.challenge_set(value).status)
            threads = [threading.Thread(target=put, args=(acme_value("p%d" % i),)) for i in range(5)]
            for t in threads:
                t.start()
            s = socket.create_connection(("127.0.0.1", srv.port))
            body = c.jws(c.url("/api/v1/installations/%s/challenge" % c.id), {"value": v})
            c.nonce = None  # used by this request
            s.sendall(b"PUT /api/v1/installations/%s/challenge HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      b"Content-Type: application/jose+json\r\nContent-Length: %d\r\n\r\n"
                      % (c.id.encode(), srv.port, len(body)) + body)
            time.sleep(0.2)
            s.close()
            for t in threads:
                t.join()
            self.assertEqual(results, [202] * 5)
            # The 9th value is refused (8 at once at most).
            for i in range(2):
                self.assertEqual(c.challenge_set(acme_value("extra%d" % i)).status, 202)
            error(self, c.challenge_set(acme_value("ninth")), 409, "conflict")
            # Pending long-polls end at once when skd stops.
            holder = []
            t = threading.Thread(target=lambda: holder.append(c.challenge_set(v)))
            t.start()
            time.sleep(0.3)
            start = time.monotonic()
            srv.stop()
            t.join()
            self.assertLess(time.monotonic() - start, 5)
            self.assertEqual(holder[0].status, 202)


class WithSkdns(Base):
    """skd and two real skdns processes: values are served before 200 ready."""

    def test_ready_and_served(self):
        psk1, psk2 = psk_file(self.dir, "d1"), psk_file(self.dir, "d2")
        d1 = Skdns(self.dir, "d1", [(1, psk1)])
        self.addCleanup(d1.stop)
        d2 = Skdns(self.dir, "d2", [(1, psk2)])
        self.addCleanup(d2.stop)
        cfg = installations_config(self.dir, kvpsend={"sender_id": 1, "receiver": [
            "d1 127.0.0.1:%d %s" % (d1.kv_port, psk1), "d2 127.0.0.1:%d %s" % (d2.kv_port, psk2)]})
        with Server(SKD, cfg) as srv:
            c = Client(srv.port, self.key())
            self.assertEqual(c.register().status, 201)
            self.assertEqual(c.address("192.0.2.7").status, 200)
            v1, v2 = acme_value("one"), acme_value("two")
            r = c.challenge_set(v1)
            if r.status == 503:  # kvpsend not started yet
                time.sleep(1)
                r = c.challenge_set(v1)
            self.assertEqual((r.status, json.loads(r.body)), (200, {"status": "ready"}))
            # Ready means served, by both.
            self.assertEqual(d1.txt(c.label), [v1])
            self.assertEqual(d2.txt(c.label), [v1])
            st = status(srv)
            self.assertEqual([x["healthy"] for x in st["receivers"]], [True, True])
            self.assertEqual(st["keys"], 3)  # n/, a/ and t/
            r = c.challenge_set(v2)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(d1.txt(c.label), sorted([v1, v2]))
            # The same PUT again is answered at once.
            start = time.monotonic()
            self.assertEqual(c.challenge_set(v2).status, 200)
            self.assertLess(time.monotonic() - start, 0.5)
            self.assertTrue(wait_for(lambda: d2.a(c.label) == ["192.0.2.7"], 5))
            # Delete one value, then all, then the installation.
            r = c.challenge_delete(v1)
            self.assertEqual(json.loads(r.body), {"deleted": 1})
            self.assertTrue(wait_for(lambda: d1.txt(c.label) == [v2], 5))
            self.assertEqual(json.loads(c.challenge_delete().body), {"deleted": 1})
            self.assertTrue(wait_for(lambda: d1.txt(c.label) == [] and d2.txt(c.label) == [], 5))
            self.assertEqual(c.delete().status, 204)
            self.assertTrue(wait_for(lambda: d1.a(c.label) == [], 5))

    def test_two_nodes_share_the_store(self):
        """Two skd nodes (senders 1 and 2) on one store and one skdns: each
        learns the other's changes through the reconcile; a third node
        without [kvpsend] writes the store only."""
        psk_a, psk_b = psk_file(self.dir, "a"), psk_file(self.dir, "b")
        d = Skdns(self.dir, "d", [(1, psk_a), (2, psk_b)])
        self.addCleanup(d.stop)
        db = {"store": {"path": os.path.join(self.dir, "shared.db")}}

        def node(sender, psk):
            return Server(SKD, installations_config(self.dir, db, kvpsend={
                "sender_id": sender, "receiver": "d 127.0.0.1:%d %s" % (d.kv_port, psk),
                "reconcile_interval_ms": 200}))
        with node(1, psk_a) as a, node(2, psk_b) as b, Server(SKD, installations_config(self.dir, db)) as c:
            # Written through the node without [kvpsend]: served through the others.
            via_c = Client(c.port, self.key())
            self.assertEqual(via_c.register().status, 201)
            self.assertEqual(via_c.address("192.0.2.33").status, 200)
            self.assertTrue(wait_for(lambda: d.a(via_c.label) == ["192.0.2.33"], 10), d.text())
            # A value set through b, ready, then deleted through a.
            via_b = Client(b.port, via_c.key)
            via_b.id, via_b.label = via_c.id, via_c.label
            v = acme_value("shared")
            r = via_b.challenge_set(v)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(d.txt(via_c.label), [v])
            via_a = Client(a.port, via_c.key)
            via_a.id = via_c.id
            self.assertEqual(json.loads(via_a.challenge_delete(v).body), {"deleted": 1})
            # b still pushes it until its reconcile reads the store again.
            self.assertTrue(wait_for(lambda: d.txt(via_c.label) == [], 10), d.text())
            self.assertEqual(via_c.delete().status, 204)
            self.assertTrue(wait_for(lambda: d.a(via_c.label) == [], 10))


if __name__ == "__main__":
    skdtest.main()
