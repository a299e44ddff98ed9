#!/usr/bin/env python3
"""skd's TLS listener: curl and openssl clients, protocol versions, ALPN,
non-TLS clients, and certificate reload on SIGHUP."""

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import tempfile
import time
import unittest

import skdtest
from skdtest import SKD, SKD_TESTSERVER, Server, assert_json_error, curl, run


class Pki:
    """A CA and server certificates made with the openssl command line."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="skdtest-pki-")
        self.ca = self.path("ca.pem")
        self.ca_key = self.path("ca.key")
        self._openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", self.ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=skd test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, *args):
        p = run(["openssl"] + list(args), timeout=60)
        if p.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (" ".join(args[:2]), p.stderr.decode()))
        return p

    def server_cert(self, name, serial, cn="localhost"):
        """Writes name.pem and name.key (signed by the CA, for 127.0.0.1 and localhost)."""
        cert, key, csr, ext = (self.path(name + s) for s in (".pem", ".key", ".csr", ".ext"))
        self._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-set_serial", str(serial),
                      "-days", "2", "-out", cert, "-extfile", ext)
        return cert, key

    def fingerprint(self, cert_path):
        with open(cert_path) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        return hashlib.sha256(der).hexdigest()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


PKI = None


def setUpModule():
    global PKI
    PKI = Pki()
    PKI.server_cert("a", 1001, "localhost")
    PKI.server_cert("b", 2002, "skd-reloaded")


def tearDownModule():
    if PKI:
        PKI.cleanup()


def tls_connect(port, cafile=None, **ctx_opts):
    """A skdtest.Conn over TLS (Python's ssl), verified against cafile."""
    ctx = ssl.create_default_context(cafile=cafile or PKI.ca)
    for k, v in ctx_opts.items():
        setattr(ctx, k, v)
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    return skdtest.Conn(None, None, sock=s)


def peer_fingerprint(conn):
    return hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()


def s_client(port, *args, stdin=b""):
    return run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", PKI.ca] + list(args),
               input=stdin, timeout=30)


def install(srv_dir, name):
    """Copies the certificate and key called name over cert.pem and key.pem (atomically)."""
    for src, dst in ((name + ".pem", "cert.pem"), (name + ".key", "key.pem")):
        tmp = os.path.join(srv_dir, dst + ".tmp")
        shutil.copyfile(PKI.path(src), tmp)
        os.replace(tmp, os.path.join(srv_dir, dst))


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(SKD, {"limits": {"header_timeout_ms": 2000}}, tls=(PKI.path("a.pem"), PKI.path("a.key")))
        cls.srv.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.__exit__(None, None, None)

    def curl_code(self, *args, path="/healthcheck"):
        p = curl("--cacert", PKI.ca, "-o", "/dev/null", "-w", "%{http_code}", "-v", *args,
                 self.srv.url(path, tls=True))
        return p

    def test_curl_cacert(self):
        p = self.curl_code()
        self.assertEqual((p.returncode, p.stdout), (0, b"204"), p.stderr)
        self.assertIn("ALPN: server accepted http/1.1", p.stderr.decode())
        p = self.curl_code(path="/nope")
        self.assertEqual(p.stdout, b"404")
        # By name, through the localhost SAN.
        p = curl("--cacert", PKI.ca, "-o", "/dev/null", "-w", "%{http_code}", "--resolve",
                 "localhost:%d:127.0.0.1" % self.srv.tls_port, "https://localhost:%d/healthcheck" % self.srv.tls_port)
        self.assertEqual((p.returncode, p.stdout), (0, b"204"), p.stderr)
        # Without the CA, curl refuses the certificate.
        p = curl("-o", "/dev/null", self.srv.url("/healthcheck", tls=True))
        self.assertEqual(p.returncode, 60, p.stderr)

    def test_curl_tls12_and_tls13(self):
        p = self.curl_code("--tlsv1.2", "--tls-max", "1.2")
        self.assertEqual((p.returncode, p.stdout), (0, b"204"), p.stderr)
        self.assertRegex(p.stderr.decode(), r"SSL connection using TLSv1\.2 ")
        p = self.curl_code("--tlsv1.3")
        self.assertEqual((p.returncode, p.stdout), (0, b"204"), p.stderr)
        self.assertRegex(p.stderr.decode(), r"SSL connection using TLSv1\.3 ")

    def test_curl_keepalive_over_tls(self):
        url = self.srv.url("/healthcheck", tls=True)
        p = curl("--cacert", PKI.ca, "-v", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code}\\n", url, url)
        self.assertEqual(p.stdout.decode().split(), ["204", "204"], p.stderr)
        self.assertIn("Re-using existing connection", p.stderr.decode())

    def test_s_client_alpn_and_versions(self):
        p = s_client(self.srv.tls_port, "-alpn", "http/1.1")
        out = p.stdout.decode()
        self.assertIn("ALPN protocol: http/1.1", out)
        self.assertIn("Verify return code: 0 (ok)", out)
        # A client preferring h2 still gets http/1.1.
        p = s_client(self.srv.tls_port, "-alpn", "h2,http/1.1")
        self.assertIn("ALPN protocol: http/1.1", p.stdout.decode())
        for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            p = s_client(self.srv.tls_port, flag, "-alpn", "http/1.1")
            out = p.stdout.decode()
            self.assertRegex(out, r"New, %s, Cipher is " % re.escape(version), out[-2000:])
            self.assertIn("ALPN protocol: http/1.1", out)
            self.assertIn("Verify return code: 0 (ok)", out)

    def test_s_client_request(self):
        req = b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        p = s_client(self.srv.tls_port, "-quiet", stdin=req)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("HTTP/1.1 204 No Content", out)
        self.assertIn('HTTP/1.1 404 Not Found', out)
        self.assertTrue(out.endswith('{"message":"Unimplemented"}'), out)

    def test_old_protocols_refused(self):
        # The client allows TLS 1.1; the server must say no (protocol_version alert).
        p = s_client(self.srv.tls_port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn("New, TLSv1.1", p.stdout.decode())
        self.assertIn("alert protocol version", p.stderr.decode())

    def test_alpn_h2_only_refused(self):
        p = s_client(self.srv.tls_port, "-alpn", "h2")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no application protocol", p.stderr.decode())
        self.assertEqual(self.curl_code().stdout, b"204")

    def test_python_ssl_pipelined(self):
        with tls_connect(self.srv.tls_port) as c:
            self.assertEqual(c.sock.selected_alpn_protocol(), "http/1.1")
            paths = ["/healthcheck", "/nope"] * 50
            c.send(b"".join(skdtest.build_request("GET", p) for p in paths))
            got = [c.read_response().status for _ in paths]
            self.assertEqual(got, [204, 404] * 50)
            c.send_request("GET", "/healthcheck", headers={"Connection": "close"})
            self.assertEqual(c.read_response().status, 204)
            self.assertTrue(c.closed_by_peer(5))

    def test_malformed_over_tls(self):
        with tls_connect(self.srv.tls_port) as c:
            c.send(b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n")
            assert_json_error(self, c.read_response(), 400)
            self.assertTrue(c.closed_by_peer(5))

    def test_plain_http_to_tls_port(self):
        before = self.srv.metrics().get("skd_tls_handshake_failures_total")
        with self.srv.connect(self.srv.tls_port) as c:
            c.send_request("GET", "/healthcheck")
            data = c.read_all(timeout=5)  # an alert or nothing, then close
            self.assertFalse(data.startswith(b"HTTP/"), data)
        p = curl("-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:%d/healthcheck" % self.srv.tls_port)
        self.assertNotEqual(p.stdout, b"204")
        self.assertTrue(self.srv.alive())
        self.assertEqual(self.curl_code().stdout, b"204")
        self.assertEqual(self.srv.request("GET", "/healthcheck").status, 204)
        after = self.srv.metrics().get("skd_tls_handshake_failures_total")
        self.assertGreaterEqual(after - before, 2)

    def test_silent_client_dropped(self):
        # No ClientHello: dropped after header_timeout_ms (2000).
        with self.srv.connect(self.srv.tls_port) as c:
            t0 = time.monotonic()
            self.assertTrue(c.closed_by_peer(8))
            elapsed = time.monotonic() - t0
            self.assertGreaterEqual(elapsed, 1.8)
            self.assertLess(elapsed, 5)


class TlsTestserverTest(unittest.TestCase):
    """Bodies and worker jobs over TLS (skd-testserver)."""

    def test_echo_and_sleep_over_tls(self):
        with Server(SKD_TESTSERVER, {"server": {"worker_threads": 2}},
                    tls=(PKI.path("a.pem"), PKI.path("a.key"))) as srv:
            with tls_connect(srv.tls_port) as c:
                body = os.urandom(60000)  # several TLS records each way
                c.send_request("POST", "/test/echo", body=body)
                r = c.read_response()
                self.assertEqual((r.status, r.header("X-Body-Length")), (200, "60000"))
                self.assertEqual(r.body, body)
                # Pipelined bodies.
                bodies = [os.urandom(20000) for _ in range(3)]
                c.send(b"".join(skdtest.build_request("POST", "/test/echo", body=b) for b in bodies))
                for b in bodies:
                    self.assertEqual(c.read_response().body, b)
                # An answer produced by a worker thread.
                t0 = time.monotonic()
                c.send_request("GET", "/test/sleep/200")
                r = c.read_response()
                self.assertEqual((r.status, r.json()), (200, {"slept": 200}))
                self.assertGreaterEqual(time.monotonic() - t0, 0.19)
            with tempfile.NamedTemporaryFile(prefix="skdtest-body-") as f:
                f.write(os.urandom(50000))
                f.flush()
                p = curl("--cacert", PKI.ca, "--data-binary", "@" + f.name, "-o", "-",
                         srv.url("/test/echo", tls=True))
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(f.name, "rb") as g:
                    self.assertEqual(p.stdout, g.read())


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="skdtest-certs-")
        install(self.dir, "a")
        self.tls = (os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem"))
        self.fp_a = PKI.fingerprint(PKI.path("a.pem"))
        self.fp_b = PKI.fingerprint(PKI.path("b.pem"))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def request_ok(self, c):
        c.send_request("GET", "/healthcheck")
        self.assertEqual(c.read_response().status, 204)

    def test_sighup_reload(self):
        with Server(SKD, tls=self.tls) as srv:
            with tls_connect(srv.tls_port) as old:
                self.request_ok(old)
                self.assertEqual(peer_fingerprint(old), self.fp_a)
                self.assertEqual(old.sock.getpeercert()["serialNumber"], "03E9")  # 1001
                install(self.dir, "b")
                srv.signal(signal.SIGHUP)
                self.assertTrue(srv.wait_log(r"INFO TLS certificate reloaded from ", 5), srv.log())
                time.sleep(0.5)
                with tls_connect(srv.tls_port) as new:
                    self.request_ok(new)
                    self.assertEqual(peer_fingerprint(new), self.fp_b)
                    cert = new.sock.getpeercert()
                    self.assertEqual(cert["serialNumber"], "07D2")  # 2002
                    self.assertIn((("commonName", "skd-reloaded"),), cert["subject"])
                # The old connection keeps working (with the old certificate).
                self.request_ok(old)
                self.request_ok(old)
                self.assertEqual(peer_fingerprint(old), self.fp_a)
            # openssl sees the new certificate too.
            p = s_client(srv.tls_port, "-alpn", "http/1.1")
            self.assertIn("CN = skd-reloaded", p.stdout.decode())
            self.assertIn("Verify return code: 0 (ok)", p.stdout.decode())

    def test_sighup_broken_files_keep_old_certificate(self):
        srv = Server(SKD, tls=self.tls, check_log=False)
        with srv:
            with tls_connect(srv.tls_port) as old:
                self.request_ok(old)
                # 1: a certificate file that is not PEM.
                with open(self.tls[0], "w") as f:
                    f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
                srv.signal(signal.SIGHUP)
                self.assertTrue(srv.wait_log(r"ERROR TLS reload failed, keeping the current certificate: "
                                             r"cannot load certificate ", 5), srv.log())
                with tls_connect(srv.tls_port) as new:
                    self.request_ok(new)
                    self.assertEqual(peer_fingerprint(new), self.fp_a)
                self.request_ok(old)
                # 2: certificate b with key a: they do not match.
                shutil.copyfile(PKI.path("b.pem"), self.tls[0])
                shutil.copyfile(PKI.path("a.key"), self.tls[1])
                srv.signal(signal.SIGHUP)
                self.assertTrue(srv.wait_log(r"ERROR TLS reload failed.*(key values mismatch|does not match)", 5), srv.log())
                with tls_connect(srv.tls_port) as new:
                    self.request_ok(new)
                    self.assertEqual(peer_fingerprint(new), self.fp_a)
                # 3: a missing key file.
                os.unlink(self.tls[1])
                srv.signal(signal.SIGHUP)
                self.assertTrue(srv.wait_log(r"ERROR TLS reload failed.*cannot load private key.*No such file", 5),
                                srv.log())
                with tls_connect(srv.tls_port) as new:
                    self.assertEqual(peer_fingerprint(new), self.fp_a)
                # Fixed files: the next SIGHUP takes them.
                install(self.dir, "b")
                srv.signal(signal.SIGHUP)
                self.assertTrue(srv.wait_log(r"INFO TLS certificate reloaded", 5), srv.log())
                with tls_connect(srv.tls_port) as new:
                    self.request_ok(new)
                    self.assertEqual(peer_fingerprint(new), self.fp_b)
                self.request_ok(old)
        errors = [l for l in srv.log().splitlines() if re.search(r"\bERROR\b", l)]
        self.assertEqual(len(errors), 3, errors)
        self.assertTrue(all("TLS reload failed" in l for l in errors), errors)

    def test_many_sighups(self):
        # Signals faster than reloads finish: still one consistent certificate, no crash.
        with Server(SKD, tls=self.tls) as srv:
            install(self.dir, "b")
            for _ in range(20):
                srv.signal(signal.SIGHUP)
                time.sleep(0.01)
            time.sleep(0.5)
            srv.signal(signal.SIGHUP)
            self.assertTrue(skdtest.wait_for(lambda: srv.log().count("TLS certificate reloaded") >= 1, 5))
            time.sleep(0.3)
            with tls_connect(srv.tls_port) as c:
                self.request_ok(c)
                self.assertEqual(peer_fingerprint(c), self.fp_b)

    def test_sighup_without_tls(self):
        with Server(SKD) as srv:
            srv.signal(signal.SIGHUP)
            self.assertTrue(srv.wait_log(r"SIGHUP", 5))
            time.sleep(0.2)
            self.assertTrue(srv.alive())
            self.assertEqual(srv.request("GET", "/healthcheck").status, 204)


if __name__ == "__main__":
    skdtest.main()
