#!/usr/bin/env python3
"""sk cert against a real ACME CA (issue 6): Debian's pebble on loopback
with a certificate made here, its dns-01 lookups sent to our own skdns,
which skd feeds through kvpsend (two skdns, as in production):
- sk cert register / challenge set|delete (kdig sees the value while set);
- sk cert issue for one name writes a chain that openssl verify accepts
  against pebble's root (/roots/0 on its management port), key.pem 0600;
  sk cert renew then says it is not due;
- one order for three names (three installations: --also);
- with PEBBLE_WFE_NONCEREJECT=50 issuance still succeeds;
- sk cert issue SIGKILLed in the middle of an order, run again, resumes
  that very order;
- sk cert renew --daemon with 9 s certificates renews once, keeps running
  and stops cleanly on SIGTERM;
- a failed issue deletes the dns-01 values it had set;
- sk cert revoke (then alreadyRevoked), sk cert rollover (then an issue
  with the new key), external account binding (required by pebble)."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import skdtest
from skdtest import SKD, ZONE, Pebble, Server, Skdns, free_port, psk_file, run, wait_for

SK = os.environ.get("SK") or os.path.join(os.path.dirname(SKD), "sk")
class Stack:
    """skd (installations + kvpsend) and two skdns, all in directory."""

    def __init__(self, directory):
        self.dir = directory
        psk1, psk2 = psk_file(directory, "d1"), psk_file(directory, "d2")
        self.d1 = Skdns(directory, "d1", [(1, psk1)])
        self.d2 = Skdns(directory, "d2", [(1, psk2)])
        cfg = {"store": {"path": os.path.join(directory, "skd.db")},
               "installations": {"zone": ZONE, "longpoll_wait_ms": 5000},
               "kvpsend": {"sender_id": 1, "receiver": ["d1 127.0.0.1:%d %s" % (self.d1.kv_port, psk1),
                                                        "d2 127.0.0.1:%d %s" % (self.d2.kv_port, psk2)]}}
        self.srv = Server(SKD, cfg).__enter__()

    def close(self):
        self.srv.__exit__(None, None, None)
        self.d1.stop()
        self.d2.stop()


def sk(*args, timeout=120):
    """Runs sk; a sanitizer report on its stderr fails at once."""
    p = run([SK] + list(args), timeout=timeout, env=skdtest.sanitizer_env())
    text = p.stderr.decode("utf-8", "replace")
    if any(m in text for m in skdtest.SANITIZER_MARKERS):
        raise AssertionError("sanitizer report from sk %s:\n%s" % (" ".join(args), text[-6000:]))
    return p


class Base(unittest.TestCase):
    pebble_env = {}
    pebble_config = {}
    pebble_dns = None  # the port pebble resolves through; None: the first skdns

    @classmethod
    def setUpClass(cls):
        cls.cdir = tempfile.mkdtemp(prefix="skdacme-")
        try:
            cls.stack = Stack(cls.cdir)
            cls.pebble = Pebble(cls.cdir, cls.pebble_dns or cls.stack.d1.dns_port, cls.pebble_env,
                                cls.pebble_config)
        except BaseException:
            shutil.rmtree(cls.cdir, True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.pebble.stop()
        cls.stack.close()
        shutil.rmtree(cls.cdir, True)

    def state(self, name):
        d = os.path.join(self.cdir, name)
        p = sk("cert", "register", "--server", self.stack.srv.url(), "--state", d)
        self.assertEqual(p.returncode, 0, p.stderr)
        name = p.stdout.decode().strip()
        self.assertRegex(name, r"^[a-z2-7]{16}\." + re.escape(ZONE) + "$")
        return d, name

    def issue(self, d, *extra):
        # kvpsend starts with the first snapshot: a first challenge may get 503.
        return sk("cert", "issue", "--acme", self.pebble.directory, "--ca-bundle", self.pebble.cert,
                  "--state", d, *extra)

    def check_chain(self, d, names):
        cert = os.path.join(d, "cert.pem")
        # cert.pem and key.pem: links into the live generation (switched by one rename).
        self.assertEqual(os.readlink(cert), "live/cert.pem")
        self.assertEqual(os.readlink(os.path.join(d, "key.pem")), "live/key.pem")
        self.assertEqual([n for n in os.listdir(d) if n.startswith("gen.")], [os.readlink(os.path.join(d, "live"))])
        p = run(["openssl", "verify", "-CAfile", self.pebble.root, "-untrusted", cert, cert])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(os.stat(os.path.join(d, "key.pem")).st_mode & 0o777, 0o600)
        text = run(["openssl", "x509", "-in", cert, "-noout", "-ext", "subjectAltName"]).stdout.decode()
        self.assertEqual(sorted(re.findall(r"DNS:([^,\s]+)", text)), sorted(n.rstrip(".") for n in names))
        # The key is the certificate's.
        pub_c = run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"]).stdout
        pub_k = run(["openssl", "pkey", "-in", os.path.join(d, "key.pem"), "-pubout"]).stdout
        self.assertEqual(pub_c, pub_k)


class Issue(Base):
    def test_challenge_set_and_delete(self):
        d, name = self.state("chal")
        label = name.split(".")[0]
        value = skdtest.acme_value("cli")
        p = sk("cert", "challenge", "set", value, "--state", d)
        if p.returncode != 0 and b"503" in p.stderr:  # kvpsend not started yet
            time.sleep(1)
            p = sk("cert", "challenge", "set", value, "--state", d)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.stack.d1.txt(label), [value])
        self.assertEqual(self.stack.d2.txt(label), [value])
        p = sk("cert", "challenge", "delete", value, "--state", d)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(wait_for(lambda: self.stack.d1.txt(label) == [], 5))
        # Usage and state errors: one line, non-zero.
        p = sk("cert", "challenge", "set", value, "--state", os.path.join(self.cdir, "nothing"))
        self.assertEqual(p.returncode, 1)
        self.assertEqual(len(p.stderr.decode().strip().splitlines()), 1, p.stderr)
        self.assertEqual(sk("cert", "issue", "--state", d).returncode, 2)

    def test_one_name(self):
        d, name = self.state("one")
        p = self.issue(d)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        out = p.stdout.decode()
        self.assertIn("order ", out)
        self.assertIn("dns-01 values served", out)
        self.check_chain(d, [name])
        p = sk("cert", "renew", "--state", d)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("not due until", p.stdout.decode())

    def test_three_names_one_order(self):
        (a, na), (b, nb), (c, nc) = self.state("a3"), self.state("b3"), self.state("c3")
        p = self.issue(a, "--also", b, "--also", c)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.decode().count("setting 3 dns-01 values"), 1, p.stdout)
        self.check_chain(a, [na, nb, nc])

    def test_killed_then_resumed(self):
        d, name = self.state("resume")
        proc = subprocess.Popen([SK, "cert", "issue", "--acme", self.pebble.directory, "--ca-bundle",
                                 self.pebble.cert, "--state", d], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=skdtest.sanitizer_env())
        order = None
        for line in proc.stdout:
            m = re.match(rb"order (\S+) created", line)
            if m:
                order = m.group(1).decode()
                proc.kill()  # in the middle of the order: values not yet set
                break
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        self.assertIsNotNone(order)
        with open(os.path.join(d, "acme.json")) as f:
            self.assertEqual(json.load(f)["order"], order)
        p = self.issue(d)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        out = p.stdout.decode()
        self.assertIn("resuming order %s" % order, out)
        self.assertNotIn("created", out)
        self.check_chain(d, [name])
        with open(os.path.join(d, "acme.json")) as f:
            self.assertNotIn("order", json.load(f))
        self.assertFalse(os.path.exists(os.path.join(d, "order-key.pem")))


class AccountOps(Base):
    def test_revoke(self):
        d, name = self.state("revoke")
        self.assertEqual(self.issue(d).returncode, 0)
        p = sk("cert", "revoke", "--state", d, "--reason", "4")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("certificate revoked", p.stdout.decode())
        p = sk("cert", "revoke", "--state", d)  # once only
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("alreadyRevoked", p.stderr.decode())
        self.assertEqual(sk("cert", "revoke", "--state", d, "--reason", "x").returncode, 2)

    def test_rollover(self):
        d, name = self.state("rollover")
        self.assertEqual(self.issue(d).returncode, 0)
        key = os.path.join(d, "account-key.pem")
        before = run(["openssl", "pkey", "-in", key, "-pubout"]).stdout
        p = sk("cert", "rollover", "--state", d)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("account key changed", p.stdout.decode())
        self.assertFalse(os.path.exists(os.path.join(d, "account-key.new.pem")))
        self.assertNotEqual(run(["openssl", "pkey", "-in", key, "-pubout"]).stdout, before)
        # The account goes on with the new key.
        p = self.issue(d)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("account https", p.stdout.decode())
        self.check_chain(d, [name])


class ExternalAccountBinding(Base):
    pebble_config = {"externalAccountBindingRequired": True,
                     "externalAccountMACKeys": {"kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"}}

    def test_eab(self):
        d, name = self.state("eab")
        p = self.issue(d)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("external account binding", p.stderr.decode())
        p = self.issue(d, "--eab-kid", "kid-1", "--eab-hmac-key", "AAAA")  # the wrong key
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        p = self.issue(d, "--eab-kid", "kid-1", "--eab-hmac-key",
                       "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.check_chain(d, [name])


def serial(d):
    return run(["openssl", "x509", "-in", os.path.join(d, "cert.pem"), "-noout", "-serial"]).stdout.decode().strip()


class RenewDaemon(Base):
    # 9 s certificates: due after 6 s.
    pebble_config = {"certificateValidityPeriod": 9}

    def test_renews_once_keeps_running_stops_on_sigterm(self):
        d, name = self.state("daemon")
        p = self.issue(d)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        first = serial(d)
        out = tempfile.TemporaryFile()
        proc = subprocess.Popen([SK, "cert", "renew", "--state", d, "--daemon"], stdout=out,
                                stderr=subprocess.STDOUT, env=skdtest.sanitizer_env())

        def text():
            out.seek(0)
            return out.read().decode("utf-8", "replace")
        try:
            # Not due, then renewed once, then not due again (and still running).
            self.assertTrue(wait_for(lambda: text().count("not due until") >= 2, 30), text())
            self.assertIsNone(proc.poll(), text())
            self.assertEqual(text().count("certificate written"), 1, text())
            self.assertNotEqual(serial(d), first)
            self.check_chain(d, [name])
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(10), 0, text())
            self.assertTrue(text().rstrip().endswith("stopped"), text())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()


class FailureCleanup(Base):
    # pebble asks a port where nothing answers: every validation fails.
    pebble_dns = free_port()

    def test_values_deleted_when_issue_fails(self):
        d, name = self.state("fails")
        label = name.split(".")[0]
        p = self.issue(d, "--timeout", "60")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("dns-01 values served", p.stdout.decode())
        self.assertIn("dns-01 values deleted", p.stdout.decode())
        self.assertEqual(len(p.stderr.decode().strip().splitlines()), 1, p.stderr)
        self.assertTrue(wait_for(lambda: self.stack.d1.txt(label) == [] and self.stack.d2.txt(label) == [], 5))
        self.assertFalse(os.path.exists(os.path.join(d, "cert.pem")))


class NonceReject(Base):
    pebble_env = {"PEBBLE_WFE_NONCEREJECT": "50"}

    def test_issue_with_half_the_nonces_refused(self):
        d, name = self.state("nonces")
        p = self.issue(d)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.check_chain(d, [name])


if __name__ == "__main__":
    skdtest.main()
