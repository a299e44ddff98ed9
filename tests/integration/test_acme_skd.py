#!/usr/bin/env python3
"""skd keeps its own TLS certificate over ACME ([acme], certs/acme_self.c),
against Debian's pebble (certificates valid 60 s here) resolving through
our skdns, fed by skd's kvpsend:
- the TLS listener first serves a self-signed stand-in, then the
  pebble-issued certificate for api.sk.test (curl with pebble's root);
- with renew_before_ms it renews (the serial changes, seen by openssl
  s_client), and a keep-alive connection opened before the swap keeps
  working on its old session after it;
- /metrics shows skd_acme_state, the next renewal and the counters; the
  state directory holds the account key (0600) and acme.json;
- restarted while its certificate is valid, skd serves that certificate at
  once (same serial) and plans the renewal without ordering (log, /metrics);
- killed (SIGKILL) right after logging that its order was created, then
  restarted, skd resumes that order (same URL) and ends with a certificate;
- skd refuses to start on a bad [acme] section, with a clear message."""

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import skdtest
from skdtest import SKD, ZONE, Pebble, Server, Skdns, free_port, psk_file, render_config, run, wait_for, wait_port

NAME = "api." + ZONE.rstrip(".")
VALIDITY_S = 60
RENEW_BEFORE_MS = 45000  # renewal 15 s into a 60 s certificate


def serial(port):
    """The serial of the certificate skd's TLS listener serves now (openssl s_client)."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", NAME],
                       input=b"", capture_output=True, timeout=20)
    x = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=p.stdout, capture_output=True, timeout=20)
    m = re.search(rb"serial=([0-9A-F]+)", x.stdout)
    return m.group(1).decode() if m else None


class SkdAcme(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cdir = tempfile.mkdtemp(prefix="skdacmeself-")
        try:
            psk = psk_file(cls.cdir, "d1")
            cls.dns = Skdns(cls.cdir, "d1", [(1, psk)])
            cls.pebble = Pebble(cls.cdir, cls.dns.dns_port, config={"certificateValidityPeriod": VALIDITY_S})
            cls.cert, cls.key = os.path.join(cls.cdir, "tls-cert.pem"), os.path.join(cls.cdir, "tls-key.pem")
            cls.state = os.path.join(cls.cdir, "acme")
            cfg = {"store": {"path": os.path.join(cls.cdir, "skd.db")},
                   "installations": {"zone": ZONE, "longpoll_wait_ms": 5000},
                   "kvpsend": {"sender_id": 1, "receiver": "d1 127.0.0.1:%d %s" % (cls.dns.kv_port, psk)},
                   "acme": {"directory": cls.pebble.directory, "names": NAME, "contact": "mailto:ops@example.org",
                            "ca_bundle": cls.pebble.cert, "renew_before_ms": RENEW_BEFORE_MS}}
            cls.srv = Server(SKD, cfg, tls=(cls.cert, cls.key)).__enter__()
        except BaseException:
            shutil.rmtree(cls.cdir, True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.__exit__(None, None, None)
        finally:
            cls.pebble.stop()
            cls.dns.stop()
            shutil.rmtree(cls.cdir, True)

    def curl(self):
        port = self.srv.tls_port
        return skdtest.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", self.pebble.root,
                            "--resolve", "%s:%d:127.0.0.1" % (NAME, port), "https://%s:%d/healthcheck" % (NAME, port))

    def metric(self, name):
        return self.srv.metrics().get(name)

    def keepalive(self):
        """An HTTPS keep-alive connection to NAME (on 127.0.0.1) that trusts pebble's root only."""
        ctx = ssl.create_default_context(cafile=self.pebble.root)
        c = http.client.HTTPSConnection(NAME, self.srv.tls_port, context=ctx, timeout=10)
        c.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.srv.tls_port), 10),
                                 server_hostname=NAME)
        return c

    def get(self, c):
        c.request("GET", "/healthcheck")
        r = c.getresponse()
        r.read()
        return r.status

    def test_issue_renew_and_swap(self):
        # Issued: curl trusts the listener through pebble's root.
        self.assertTrue(wait_for(lambda: self.curl().stdout == b"204", 90),
                        "%r\n%s" % (self.curl(), self.srv.log()[-4000:]))
        m = self.srv.metrics()
        self.assertGreaterEqual(m.get("skd_acme_renewals_total"), 1)
        now = time.time()
        nxt = m.get("skd_acme_next_renewal_seconds")
        self.assertTrue(now - 5 < nxt < now + VALIDITY_S, (now, nxt))
        self.assertEqual(os.stat(os.path.join(self.state, "account-key.pem")).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(self.key).st_mode & 0o777, 0o600)
        with open(os.path.join(self.state, "acme.json")) as f:
            st = json.load(f)
        self.assertEqual(st["names"], [NAME])
        self.assertIn("api", st["installations"])
        self.assertNotIn("order", st)
        self.assertIn("acme: certificate valid until", self.srv.log())

        first = serial(self.srv.tls_port)
        self.assertIsNotNone(first)
        c = self.keepalive()
        self.assertEqual(self.get(c), 204)
        before = c.sock.getpeercert()["serialNumber"]
        self.assertEqual(before.upper(), first)
        renewals = self.metric("skd_acme_renewals_total")

        # Renewed: a new serial on new connections.
        self.assertTrue(wait_for(lambda: self.metric("skd_acme_renewals_total") > renewals, 60),
                        self.srv.log()[-4000:])
        self.assertTrue(wait_for(lambda: serial(self.srv.tls_port) not in (None, first), 10))
        self.assertEqual(self.curl().stdout, b"204")
        self.assertTrue(self.srv.wait_log(r"TLS certificate reloaded from", 5))

        # The connection of before the swap: same socket, same session, still answered.
        self.assertEqual(self.get(c), 204)
        self.assertEqual(c.sock.getpeercert()["serialNumber"], before)
        c.close()

        text = self.srv.request("GET", "/metrics", port=self.srv.admin_port).body.decode()
        self.assertRegex(text, r'skd_acme_state\{state="(valid|ordering)"\} 1')
        self.assertIn('skd_acme_state{state="backoff"} 0', text)
        self.assertIn("skd_acme_failures_total 0", text)


class SkdAcmeRestart(unittest.TestCase):
    """Crash and restart, with hour-long certificates (no renewal due here)."""

    @classmethod
    def setUpClass(cls):
        cls.cdir = tempfile.mkdtemp(prefix="skdacmerestart-")
        try:
            psk = psk_file(cls.cdir, "d1")
            cls.dns = Skdns(cls.cdir, "d1", [(1, psk)])
            cls.pebble = Pebble(cls.cdir, cls.dns.dns_port, config={"certificateValidityPeriod": 3600})
        except BaseException:
            shutil.rmtree(cls.cdir, True)
            raise
        cls.cert, cls.key = os.path.join(cls.cdir, "tls-cert.pem"), os.path.join(cls.cdir, "tls-key.pem")
        cls.cfg = {"store": {"path": os.path.join(cls.cdir, "skd.db")},
                   "installations": {"zone": ZONE, "longpoll_wait_ms": 5000},
                   "kvpsend": {"sender_id": 1, "receiver": "d1 127.0.0.1:%d %s" % (cls.dns.kv_port, psk)},
                   "acme": {"directory": cls.pebble.directory, "names": NAME, "ca_bundle": cls.pebble.cert}}

    @classmethod
    def tearDownClass(cls):
        try:
            cls.pebble.stop()
            cls.dns.stop()
        finally:
            shutil.rmtree(cls.cdir, True)

    def curl(self, srv):
        return skdtest.curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", self.pebble.root,
                            "--resolve", "%s:%d:127.0.0.1" % (NAME, srv.tls_port),
                            "https://%s:%d/healthcheck" % (NAME, srv.tls_port))

    def issued(self, srv, timeout=60):
        self.assertTrue(wait_for(lambda: self.curl(srv).stdout == b"204", timeout),
                        "%r\n%s" % (self.curl(srv), srv.log()[-4000:]))

    def test_1_killed_mid_order_then_resumed(self):
        with Server(SKD, self.cfg, tls=(self.cert, self.key)) as srv:
            self.assertTrue(srv.wait_log(r"acme: order (\S+) created", 30), srv.log()[-4000:])
            srv.kill()  # the line is logged once the order is saved: it must be resumed
            url = re.search(r"acme: order (\S+) created", srv.log()).group(1)
            with open(os.path.join(self.cdir, "acme", "acme.json")) as f:
                self.assertEqual(json.load(f).get("order"), url)
            mark = len(srv.log())
            srv.restart()
            self.issued(srv)
            log = srv.log()
            self.assertIn("acme: resuming order %s" % url, log[mark:])
            # The same order goes on (resumed, ready or valid by now), no new one.
            self.assertRegex(log[mark:], r"acme: order %s (resumed|ready|valid)" % re.escape(url))
            self.assertEqual(len(re.findall(r"acme: order \S+ created", log)), 1, log[-4000:])
            self.assertTrue(wait_for(lambda: srv.metrics().get("skd_acme_renewals_total") == 1, 10))
            with open(os.path.join(self.cdir, "acme", "acme.json")) as f:
                self.assertNotIn("order", json.load(f))

    def test_2_restart_keeps_certificate(self):
        with Server(SKD, self.cfg, tls=(self.cert, self.key)) as srv:
            self.issued(srv)  # (test_1 left one; else it is issued now)
            first = serial(srv.tls_port)
            self.assertIsNotNone(first)
            srv.stop()
            mark = len(srv.log())
            srv.restart()
            # At once: the listener came up on the saved certificate.
            self.assertEqual(serial(srv.tls_port), first)
            self.assertEqual(self.curl(srv).stdout, b"204")
            # The renewal is planned: pebble 2.4 has no renewalInfo, so two thirds of the hour.
            self.assertTrue(srv.wait_log(r"the CA offers no renewal information", 15), srv.log()[mark:])
            log = srv.log()[mark:]
            m = re.search(r"acme: certificate valid until \S+; renewal at \S+ \((\d+)\)", log)
            self.assertIsNotNone(m, log)
            metrics = srv.metrics()
            self.assertEqual(metrics.get("skd_acme_next_renewal_seconds"), int(m.group(1)))
            self.assertTrue(time.time() + 1800 < int(m.group(1)) < time.time() + 3600, m.group(1))
            self.assertEqual(metrics.get("skd_acme_renewals_total"), 0)
            self.assertEqual(metrics.get("skd_acme_failures_total"), 0)
            text = srv.request("GET", "/metrics", port=srv.admin_port).body.decode()
            self.assertIn('skd_acme_state{state="valid"} 1', text)
            time.sleep(1)
            log = srv.log()[mark:]
            self.assertNotRegex(log, r"acme: (renewing the|getting a) certificate|newOrder|order \S+ created")
            self.assertEqual(serial(srv.tls_port), first)


def start_fails(directory, sections):
    """skd serve on sections; its exit status and stderr."""
    path = os.path.join(directory, "bad.conf")
    base = {"public": {"listen": "127.0.0.1:%d" % free_port()}}
    base.update(sections)
    with open(path, "w") as f:
        f.write(render_config(base))
    p = subprocess.run([SKD, "serve", "-c", path], capture_output=True, timeout=20, env=skdtest.sanitizer_env())
    return p.returncode, p.stderr.decode()


class Config(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="skdacmecfg-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.psk = psk_file(self.dir, "d")

    def sections(self, acme, kvpsend=True):
        s = {"store": {"path": os.path.join(self.dir, "skd.db")}, "installations": {"zone": ZONE}}
        if kvpsend:
            s["kvpsend"] = {"sender_id": 1, "receiver": "d 127.0.0.1:5354 %s" % self.psk}
        s["acme"] = acme
        return s

    def test_refusals(self):
        good = {"directory": "https://127.0.0.1:14000/dir", "names": NAME}
        cases = [
            (self.sections(good, kvpsend=False), r"\[acme\] needs \[installations\] zone and \[kvpsend\]"),
            ({"public": {"listen": "127.0.0.1:%d" % free_port()}, "acme": good},
             r"\[acme\] needs \[installations\] zone and \[kvpsend\]"),
            (self.sections({"names": NAME}), r"\[acme\] needs directory and names"),
            (self.sections(dict(good, directory="http://ca.example/dir")), r"directory: want the CA's https://"),
            (self.sections(dict(good, contact="ops@example.org")), r"contact: want a mailto: address"),
            (self.sections(dict(good, names="api.other.test")), r'names: "api.other.test" is not <label>\.sk'),
            (self.sections(dict(good, names="ns1." + ZONE.rstrip("."))), r"not ns<digits>"),
            (self.sections(dict(good, names="a.b." + ZONE.rstrip("."))), r"is not <label>"),
            (self.sections(dict(good, names=NAME + ", " + NAME)), r"given twice"),
            (self.sections(dict(good, renew_before_ms="0")), r"renew_before_ms: want a whole number"),
            (self.sections(dict(good, colour="blue")), r'unknown option "colour" in section \[acme\]'),
        ]
        for sections, pattern in cases:
            with self.subTest(pattern=pattern):
                rc, err = start_fails(self.dir, sections)
                self.assertEqual(rc, 1, err)
                self.assertRegex(err, pattern)
                self.assertEqual(len(err.strip().splitlines()), 1, err)

    def test_defaults_accepted(self):
        """A good section with a TLS listener but no tls_cert/tls_key: they default
        to state_dir (next to the store); skd starts on a stand-in certificate."""
        acme = {"directory": "https://127.0.0.1:%d/dir" % free_port(), "names": NAME}
        cfg = self.sections(acme)
        cfg["kvpsend"]["receiver"] = "d 127.0.0.1:%d %s" % (free_port(), self.psk)
        tls_port = free_port()
        cfg["public"] = {"tls_listen": "127.0.0.1:%d" % tls_port}
        # Nothing answers at the directory: the attempt fails and is retried (ERROR lines expected).
        with Server(SKD, cfg, check_log=False) as srv:
            self.assertTrue(wait_port("127.0.0.1", tls_port, 10))
            self.assertTrue(srv.wait_log(r"no certificate in %s yet" % re.escape(os.path.join(self.dir, "acme",
                                                                                          "cert.pem")), 10))
            self.assertTrue(srv.wait_log(r"acme: .*trying again in \d+ s", 20), srv.log()[-3000:])
            text = srv.request("GET", "/metrics", port=srv.admin_port).body.decode()
            self.assertIn('skd_acme_state{state="backoff"} 1', text)
            self.assertIn("skd_acme_failures_total 1", text)
            self.assertTrue(os.path.exists(os.path.join(self.dir, "acme", "account-key.pem")))


if __name__ == "__main__":
    skdtest.main()
