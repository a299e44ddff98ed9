#!/usr/bin/env python3
"""Who is calling (../shared/spec/keys-api.md, "Who is calling"): the caller's
address and tenant come from the transport only, the instance from the
tenant's verifier.

One skd with a SoftHSM token of its own, a load balancer at 127.0.0.9
(proxy_protocol_from) and a trusted proxy at 127.0.0.8 (trusted_proxies),
[identity] signer_certs from certificates made here with openssl req -x509;
tenant A (registry verifier, VPC endpoint vpce-0123456789abcdef0, instances
at 127.0.0.1 and 127.0.0.2) and tenant B (identity-document verifier, its
only address 127.0.0.20). Cases:

  1. PROXY protocol v2 from the balancer: the header's client address is
     the caller (the blob is bound to that instance); the AWS VPC endpoint
     TLV selects among tenants; LOCAL means the balancer itself.
  2. From the balancer the header is required: none, a v1 text header, a
     truncated one (closed after header_timeout_ms); split across sends it
     works.
  3. A PROXY header from a peer not in proxy_protocol_from is garbage (400)
     and skd keeps serving.
  4. X-Forwarded-For (last address) and x-amzn-vpc-id count from the
     trusted proxy only.
  5. Instance identity documents signed by a configured signer, naming the
     instance, the address and the account; every mismatch refused.
  6. An identity-document tenant on an skd without [identity]: refused.
  7. Refusals before authentication leave rate-limited `security:` lines.

PROXY headers are built here with struct and sent on raw sockets bound to
127.0.0.x; other calls go through curl --interface; signatures, RSA keys and
identity documents are made and checked with the openssl command."""

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import skdtest
from skdtest import SKD, Closed, KeyStack, assert_json_error, curl, run

PIN = "1234"
TENANT_A = "vpc-0123456789abcdef0"
ACCOUNT_A = "111122223333"
VPCE_A = "vpce-0123456789abcdef0"
VPCE_UNKNOWN = "vpce-0fedcba9876543210"
I1, IP1 = "i-0123456789abcdef0", "127.0.0.1"
I2, IP2 = "i-0fedcba9876543210", "127.0.0.2"
TENANT_B = "vpc-00000000"
ACCOUNT_B = "444455556666"
IB, IPB = "i-0b1b2b3b4b5b6b7b8", "127.0.0.20"
IB_OTHER = "i-0c0c0c0c0c0c0c0c0"
OUTSIDE = "127.0.0.3"  # in no tenant's networks
BALANCER = "127.0.0.9"
PROXY = "127.0.0.8"
VOL = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
HEADER_TIMEOUT_MS = 1000

BAD_BLOB = "Wrapped secret and/or context are incorrect"
OAEP_DIGEST = {"RSA-OAEP-SHA1": "sha1", "RSA-OAEP-SHA256": "sha256"}
GENERATE_FIELDS = {"encrypted_secret", "encrypted_secret_signature", "wrapped_secret", "wrapped_secret_signature",
                   "wrapped_secret_algorithm"}
DECRYPT_FIELDS = {"wrapped_secret", "wrapped_secret_signature", "wrapped_secret_algorithm"}

SECURITY = re.compile(r"^\S+ WARN security: (.*)$", re.M)
DROPPED = re.compile(r"\((\d+) earlier security lines dropped\)$")

# ---------------------------------------------------------------- PROXY protocol v2 (haproxy proxy-protocol.txt)

PP2_SIGNATURE = bytes.fromhex("0D0A0D0A000D0A515549540A")


def proxy_v2(src, dst, sport, dport, tlvs=b""):
    """A PROXY v2 header: version 2, command PROXY, TCP over IPv4."""
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport) + tlvs
    return PP2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def proxy_v2_local():
    """A LOCAL header (the balancer's own health check): no address."""
    return PP2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)


def tlv(kind, value):
    return struct.pack("!BH", kind, len(value)) + value


def vpce_tlv(vpce):
    """AWS NLB: type 0xEA, subtype 0x01 PP2_SUBTYPE_AWS_VPCE_ID, then the id."""
    return tlv(0xEA, b"\x01" + vpce.encode())


# ---------------------------------------------------------------- fixtures shared by the classes

FIX = {}


def b64(data):
    return base64.b64encode(data).decode()


def openssl(*args, input=None):
    p = run(["openssl"] + list(args), input=input)
    if p.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p.stdout


def setUpModule():
    d = FIX["dir"] = tempfile.mkdtemp(prefix="skdcallers-")
    try:
        procs = {"rsa": subprocess.Popen(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072",
                                          "-out", os.path.join(d, "rsa.pem")],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)}
        # The identity signer, a decoy also in signer_certs, and a stranger's certificate.
        for name in ("signer", "decoy", "stranger"):
            procs[name] = subprocess.Popen(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                 "/CN=skd test identity %s" % name, "-keyout", os.path.join(d, name + ".key"),
                 "-out", os.path.join(d, name + ".pem")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for name, p in procs.items():
            _, err = p.communicate(timeout=120)
            if p.returncode != 0:
                raise AssertionError("openssl for %s: %r" % (name, err))
        der = openssl("pkey", "-in", os.path.join(d, "rsa.pem"), "-pubout", "-outform", "DER")
        FIX["rsa_pem"] = os.path.join(d, "rsa.pem")
        FIX["rsa_b64"] = b64(der)
        # signer_certs holds two certificates: every one of them is loaded.
        FIX["signer_certs"] = os.path.join(d, "signers.pem")
        with open(FIX["signer_certs"], "wb") as out:
            for name in ("decoy", "signer"):
                with open(os.path.join(d, name + ".pem"), "rb") as f:
                    out.write(f.read())
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise


def tearDownModule():
    shutil.rmtree(FIX.get("dir", ""), ignore_errors=True)


class Stack:
    """cls.stack, a skdtest.KeyStack (a SoftHSM token with skd's keys, a
    store, a CLI configuration, in a temp dir), cls.srv started on it (both
    undone by class cleanups), curl/openssl helpers, identity documents."""

    @classmethod
    def make_stack(cls):
        cls.stack = KeyStack(SKD, pin=PIN, prefix="skdcallers-")
        cls.addClassCleanup(cls.stack.close)

    @classmethod
    def add_tenants(cls, a=True, b=True):
        if a:
            cls.stack.add_tenant(TENANT_A, ACCOUNT_A, "%s/32,%s/32" % (IP1, IP2), [(I1, IP1), (I2, IP2)],
                                 endpoints=VPCE_A)
        if b:
            cls.stack.add_tenant(TENANT_B, ACCOUNT_B, IPB + "/32", verifier="identity-document")

    @classmethod
    def start_server(cls, extra=None):
        cls.srv = cls.stack.server(extra)
        # Raises on a bad exit, an ERROR line, a sanitizer report.
        cls.addClassCleanup(cls.srv.__exit__, None, None, None)

    # -- bodies and answers

    @staticmethod
    def generate_body():
        return json.dumps({"rsa_wrapping_key": FIX["rsa_b64"], "volume_uuid": VOL}).encode()

    @staticmethod
    def decrypt_body(blob):
        return json.dumps({"encrypted_secret": b64(blob), "rsa_wrapping_key": FIX["rsa_b64"],
                           "volume_uuid": VOL}).encode()

    def fields(self, r, names):
        self.assertEqual(r.status, 200, r)
        obj = r.json()
        obj.pop("audit_seq", None)  # the audit record's number, when the audit issue has landed
        self.assertEqual(set(obj), names, obj)
        return {k: (v if k == "wrapped_secret_algorithm" else base64.b64decode(v, validate=True))
                for k, v in obj.items()}

    def unwrap(self, f):
        """The 32-byte secret of a wrapped_secret, decrypted with our RSA key by openssl."""
        md = OAEP_DIGEST[f["wrapped_secret_algorithm"]]
        secret = openssl("pkeyutl", "-decrypt", "-inkey", FIX["rsa_pem"], "-in",
                         self.stack.write("w", f["wrapped_secret"]), "-pkeyopt", "rsa_padding_mode:oaep",
                         "-pkeyopt", "rsa_oaep_md:" + md, "-pkeyopt", "rsa_mgf1_md:" + md)
        self.assertEqual(len(secret), 32)
        return secret

    def generated(self, r):
        """A generate-secret answer: (encrypted_secret, secret); its signatures verified."""
        f = self.fields(r, GENERATE_FIELDS)
        for k in ("encrypted_secret", "wrapped_secret"):
            p = run(["openssl", "dgst", "-sha256", "-verify", self.stack.pub_pem, "-signature",
                     self.stack.write("sig", f[k + "_signature"]), self.stack.write("blob", f[k])])
            self.assertEqual(p.returncode, 0, p.stderr)
        return f["encrypted_secret"], self.unwrap(f)

    # -- calls

    def curl_call(self, op, instance, body, iface, headers=()):
        """POST /v1/encryption/{instance}/{op} with curl from source address iface."""
        url = "http://127.0.0.1:%d/v1/encryption/%s/%s" % (self.srv.port, instance, op)
        args = ["-i", "-X", "POST", "--interface", iface, "-H", "Content-Type: application/json",
                "--data-binary", "@" + self.stack.write("body", body)]
        for h in headers:
            args += ["-H", h]
        p = curl(*(args + [url]))
        self.assertEqual(p.returncode, 0, p.stderr)
        responses = skdtest.parse_responses(p.stdout)
        self.assertTrue(responses)
        return responses[-1]

    def generate(self, instance, iface, headers=()):
        return self.curl_call("generate-secret", instance, self.generate_body(), iface, headers)

    def decrypt(self, blob, instance, iface, headers=()):
        return self.curl_call("decrypt-secret", instance, self.decrypt_body(blob), iface, headers)

    def decrypt_secret(self, blob, instance, iface, headers=()):
        f = self.fields(self.decrypt(blob, instance, iface, headers), DECRYPT_FIELDS)
        return self.unwrap(f)

    @staticmethod
    def request_bytes(op, instance, body, headers=None):
        hdrs = [("Content-Type", "application/json")] + list(headers or [])
        return skdtest.build_request("POST", "/v1/encryption/%s/%s" % (instance, op), hdrs, body)

    def via_balancer(self, preamble, request, source=BALANCER, pieces=None, pause=0.05):
        """One connection from source: preamble (a PROXY header, or anything)
        and the request, in one send; returns the Response. pieces: sizes to
        send the bytes in first, with pause seconds after each send."""
        with self.srv.connect(source=source) as c:
            data = preamble + request
            if pieces:
                off = 0
                for n in pieces:
                    c.send(data[off:off + n])
                    off += n
                    time.sleep(pause)
                data = data[off:]
            c.send(data)
            return c.read_response()

    def via_balancer_apart(self, preamble, request):
        """As via_balancer, the request sent a moment after the header: for
        requests too long to share a first segment with it (see test_15)."""
        return self.via_balancer(preamble, request, pieces=[len(preamble)])

    def client_header(self, client, sport=40000, tlvs=b""):
        return proxy_v2(client, "127.0.0.1", sport, self.srv.port, tlvs)

    # -- identity documents

    @staticmethod
    def document(instance=IB, ip=IPB, account=ACCOUNT_B, **extra):
        """An AWS-style instance identity document (pretty-printed like IMDS's)."""
        doc = {"accountId": account, "architecture": "x86_64", "availabilityZone": "eu-west-1a",
               "billingProducts": None, "devpayProductCodes": None, "marketplaceProductCodes": None,
               "imageId": "ami-0123456789abcdef0", "instanceId": instance, "instanceType": "t3.micro",
               "kernelId": None, "pendingTime": "2026-11-22T10:00:00Z", "privateIp": ip, "ramdiskId": None,
               "region": "eu-west-1", "version": "2017-09-30"}
        doc.update(extra)
        return json.dumps(doc, indent=2).encode()

    def sign(self, doc, signer="signer", certs=True):
        """The detached PKCS#7 signature (DER) of doc, made by openssl smime."""
        args = ["smime", "-sign", "-binary", "-noattr", "-outform", "DER", "-signer",
                os.path.join(FIX["dir"], signer + ".pem"), "-inkey", os.path.join(FIX["dir"], signer + ".key"),
                "-in", self.stack.write("doc.json", doc)]
        if not certs:
            args.append("-nocerts")
        return openssl(*args)

    @staticmethod
    def identity_headers(doc_b64, sig_b64):
        return ["X-Instance-Identity-Document: " + doc_b64, "X-Instance-Identity-Signature: " + sig_b64]

    def signed_headers(self, doc=None, **kw):
        doc = doc or self.document()
        return self.identity_headers(b64(doc), b64(self.sign(doc, **kw)))

    # -- the log

    def log_mark(self):
        """Where the log ends now, before a refusal whose security line is
        checked. Security lines are limited to 20 a second, all callers
        together: when this second has used half of that, wait for the next."""
        now = time.time()
        second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        used = sum(1 for line in self.srv.log().splitlines()
                   if line.startswith(second) and " WARN security: " in line)
        if used >= 10:
            time.sleep(1.02 - now % 1)
        return len(self.srv.log())

    def security_since(self, mark):
        return SECURITY.findall(self.srv.log()[mark:])

    def assert_security_line(self, mark, pattern, timeout=1.0):
        """A `security:` WARN line matching pattern was logged after mark."""
        found = skdtest.wait_for(lambda: [l for l in self.security_since(mark) if re.search(pattern, l)], timeout)
        self.assertTrue(found, "no security line matching %r; got %r" % (pattern, self.security_since(mark)))
        return found


class CallersTest(Stack, unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.make_stack()
        cls.add_tenants()
        cls.start_server({"limits": {"header_timeout_ms": HEADER_TIMEOUT_MS},
                          "public": {"proxy_protocol_from": BALANCER + "/32", "trusted_proxies": PROXY + "/32"},
                          "identity": {"signer_certs": FIX["signer_certs"]}})

    # ---- 1. PROXY protocol v2 from the load balancer

    def test_11_balancer_client_is_the_caller(self):
        mark = self.log_mark()
        r = self.via_balancer(self.client_header(IP2), self.request_bytes("generate-secret", I2,
                                                                          self.generate_body()))
        blob, secret = self.generated(r)
        # Bound to instance 2: it opens for instance 2 at its own address...
        self.assertEqual(self.decrypt_secret(blob, I2, IP2), secret)
        # ...and through the balancer for the same client...
        r = self.via_balancer(self.client_header(IP2), self.request_bytes("decrypt-secret", I2,
                                                                          self.decrypt_body(blob)))
        self.assertEqual(self.unwrap(self.fields(r, DECRYPT_FIELDS)), secret)
        # ...not for instance 1.
        assert_json_error(self, self.decrypt(blob, I1, IP1), 400, BAD_BLOB)
        # The client named by the header is not instance 1's address: refused.
        r = self.via_balancer(self.client_header(IP2), self.request_bytes("generate-secret", I1,
                                                                          self.generate_body()))
        assert_json_error(self, r, 403)
        self.assert_security_line(mark, r"from 127\.0\.0\.2 for instance %s refused" % I1)
        # A client outside every network, through the balancer: refused.
        r = self.via_balancer(self.client_header(OUTSIDE), self.request_bytes("generate-secret", I2,
                                                                              self.generate_body()))
        assert_json_error(self, r, 403)
        self.assert_security_line(mark, r"from 127\.0\.0\.3 for instance %s refused" % I2)

    def test_12_balancer_keep_alive(self):
        """Every request of the connection is the header's client's."""
        with self.srv.connect(source=BALANCER) as c:
            c.send(self.client_header(IP1, sport=41000))
            for instance, status in ((I1, 200), (I2, 403), (I1, 200)):
                c.send(self.request_bytes("generate-secret", instance, self.generate_body()))
                r = c.read_response()
                self.assertEqual(r.status, status, (instance, r))
        # A pipelined pair after the header.
        with self.srv.connect(source=BALANCER) as c:
            req = self.request_bytes("generate-secret", I2, self.generate_body())
            c.send(self.client_header(IP2))
            time.sleep(0.05)
            c.send(req + req)
            self.assertEqual([c.read_response().status for _ in range(2)], [200, 200])

    def test_13_balancer_vpc_endpoint(self):
        gen = self.request_bytes("generate-secret", I2, self.generate_body())
        # The tenant's endpoint: accepted.
        r = self.via_balancer(self.client_header(IP2, tlvs=vpce_tlv(VPCE_A)), gen)
        blob, secret = self.generated(r)
        self.assertEqual(self.decrypt_secret(blob, I2, IP2), secret)
        # Other TLVs (NOOP, ALPN, AWS with another subtype) around it are skipped.
        tlvs = tlv(0x04, b"\x00" * 5) + tlv(0x01, b"h2") + tlv(0xEA, b"\x02xyz") + vpce_tlv(VPCE_A)
        self.generated(self.via_balancer(self.client_header(IP2, tlvs=tlvs), gen))
        # An endpoint no tenant of that network lists: refused (the address alone would do).
        mark = self.log_mark()
        r = self.via_balancer(self.client_header(IP2, tlvs=vpce_tlv(VPCE_UNKNOWN)), gen)
        assert_json_error(self, r, 403)
        self.assert_security_line(mark, r"generate-secret from 127\.0\.0\.2 for instance %s refused" % I2)
        # Tenant A's endpoint does not carry a caller into tenant B.
        req = self.request_bytes("generate-secret", IB, self.generate_body(),
                                 [tuple(h.split(": ", 1)) for h in self.signed_headers()])
        r = self.via_balancer_apart(self.client_header(IPB, tlvs=vpce_tlv(VPCE_A)), req)
        assert_json_error(self, r, 403)

    def test_14_balancer_local_command(self):
        """LOCAL: the balancer speaks for itself; 127.0.0.9 is in no tenant."""
        mark = self.log_mark()
        r = self.via_balancer(proxy_v2_local(), self.request_bytes("generate-secret", I2, self.generate_body()))
        assert_json_error(self, r, 403)
        self.assert_security_line(mark, r"generate-secret from 127\.0\.0\.9 for instance %s refused" % I2)
        # What LOCAL is for: the balancer's health check.
        r = self.via_balancer(proxy_v2_local(), skdtest.build_request("GET", "/healthcheck"))
        self.assertEqual(r.status, 204, r)

    def test_15_balancer_long_first_segment(self):
        """A balancer sends the header and the client's first bytes together
        (one segment, one read): a request of a few KB after the header
        (identity headers, a long header, a pipelined pair) is the client's,
        not part of the PROXY header (at most PROXY_V2_MAX = 1024 bytes)."""
        cases = {
            "identity headers": (IPB, self.request_bytes("generate-secret", IB, self.generate_body(),
                                                         [tuple(h.split(": ", 1)) for h in self.signed_headers()])),
            "a long header": (IP2, self.request_bytes("generate-secret", I2, self.generate_body(),
                                                      [("X-Padding", "p" * 3000)])),
        }
        for name, (client, req) in cases.items():
            with self.subTest(name):
                data = self.client_header(client) + req
                self.assertGreater(len(data), 1024)
                try:
                    r = self.via_balancer(self.client_header(client), req)
                except (Closed, ConnectionError) as e:
                    self.fail("%d bytes after a valid PROXY header in one segment: connection closed (%r); "
                              "log: %r" % (len(req), e, self.srv.log().splitlines()[-2:]))
                self.generated(r)
        with self.subTest("pipelined pair"):
            req = self.request_bytes("generate-secret", I2, self.generate_body())
            with self.srv.connect(source=BALANCER) as c:
                c.send(self.client_header(IP2) + req + req)
                try:
                    self.assertEqual([c.read_response().status for _ in range(2)], [200, 200])
                except Closed as e:
                    self.fail("header + %d bytes in one segment: closed (%r)" % (2 * len(req), e))

    # ---- 2. from the balancer the header is required

    def assert_closed_silently(self, c, timeout=5.0):
        self.assertTrue(c.closed_by_peer(timeout), "connection still open")

    def test_21_balancer_without_header(self):
        mark = self.log_mark()
        for name, preamble in [("no header", b""),
                               ("PROXY v1", b"PROXY TCP4 127.0.0.2 127.0.0.1 40000 %d\r\n" % self.srv.port)]:
            with self.subTest(name):
                with self.srv.connect(source=BALANCER) as c:
                    c.send(preamble + self.request_bytes("generate-secret", I2, self.generate_body()))
                    self.assert_closed_silently(c)
        lines = self.assert_security_line(mark, r"^127\.0\.0\.9:\d+: no valid PROXY v2 header")
        self.assertGreaterEqual(len(lines), 2, lines)
        # A header with a bad version, an unknown command, UDP, a TLV overrunning the header,
        # an empty or unprintable endpoint id: closed as well.
        good = self.client_header(IP2)
        bad = {"version 1": good[:12] + b"\x11" + good[13:],
               "command 2": good[:12] + b"\x22" + good[13:],
               "UDP over IPv4": good[:13] + b"\x12" + good[14:],
               "TLV overrun": self.client_header(IP2, tlvs=b"\xea\x00\x10\x01vpce"),
               "empty endpoint": self.client_header(IP2, tlvs=tlv(0xEA, b"\x01")),
               "endpoint with a space": self.client_header(IP2, tlvs=vpce_tlv("vpce-0123 456789abcdef0")),
               "addresses cut short": PP2_SIGNATURE + b"\x21\x11\x00\x04\x7f\x00\x00\x02"}
        for name, header in bad.items():
            with self.subTest(name):
                with self.srv.connect(source=BALANCER) as c:
                    c.send(header + self.request_bytes("generate-secret", I2, self.generate_body()))
                    self.assert_closed_silently(c)
        self.assertEqual(self.srv.request("GET", "/healthcheck").status, 204)

    def test_22_truncated_header_then_silence(self):
        """Closed after header_timeout_ms, nothing answered; two at once."""
        full = self.client_header(IP2, tlvs=vpce_tlv(VPCE_A))
        conns = [self.srv.connect(source=BALANCER) for _ in range(3)]
        try:
            start = time.monotonic()
            conns[0].send(full[:7])                # inside the signature
            conns[1].send(full[:20])               # inside the addresses
            conns[2].send(b"")                     # nothing at all
            for c in conns:
                self.assertTrue(c.closed_by_peer(HEADER_TIMEOUT_MS / 1000 + 5), "still open")
                elapsed = time.monotonic() - start
                self.assertGreaterEqual(elapsed, HEADER_TIMEOUT_MS / 1000 * 0.9, "closed too early")
        finally:
            for c in conns:
                c.close()
        # A connection that finishes its header in time is fine.
        with self.srv.connect(source=BALANCER) as c:
            c.send(full[:20])
            time.sleep(HEADER_TIMEOUT_MS / 1000 / 3)
            c.send(full[20:] + self.request_bytes("generate-secret", I2, self.generate_body()))
            self.assertEqual(c.read_response().status, 200)

    def test_23_header_split_across_sends(self):
        header = self.client_header(IP2, tlvs=vpce_tlv(VPCE_A))
        req = self.request_bytes("generate-secret", I2, self.generate_body())
        # (The whole header must arrive within header_timeout_ms.)
        for name, pieces, pause in [("bytes", [1] * (len(header) + 3), 0.005),
                                    ("signature, then the rest", [12, 4, len(header) - 16], 0.05),
                                    ("through the TLV", [5, 11, 14, 6], 0.05),
                                    ("header and request start together", [3, len(header) + 10], 0.05)]:
            with self.subTest(name):
                r = self.via_balancer(header, req, pieces=pieces, pause=pause)
                blob, secret = self.generated(r)
        self.assertEqual(self.decrypt_secret(blob, I2, IP2), secret)

    # ---- 3. a PROXY header from a peer not in proxy_protocol_from

    def test_31_header_from_other_peer_is_garbage(self):
        for source in (IP1, PROXY):
            with self.subTest(source=source):
                with self.srv.connect(source=source) as c:
                    c.send(self.client_header(IP2) + self.request_bytes("generate-secret", I2,
                                                                        self.generate_body()))
                    try:
                        r = c.read_response()
                    except Closed:
                        self.fail("closed without an answer; want 400")
                    assert_json_error(self, r, 400)
                    self.assertNotIn(b"secret", r.body)
        # Still serving, from there and from the balancer.
        self.generated(self.generate(I1, IP1))
        self.generated(self.via_balancer(self.client_header(IP2), self.request_bytes(
            "generate-secret", I2, self.generate_body())))
        self.assertTrue(self.srv.alive())

    # ---- 4. the trusted proxy's forwarding headers

    def test_41_trusted_proxy_forwarded_for(self):
        xff = "X-Forwarded-For: 10.9.9.9, 127.0.0.2"
        blob, secret = self.generated(self.generate(I2, PROXY, [xff]))
        # Bound to instance 2.
        self.assertEqual(self.decrypt_secret(blob, I2, IP2), secret)
        self.assertEqual(self.decrypt_secret(blob, I2, PROXY, [xff]), secret)
        assert_json_error(self, self.decrypt(blob, I1, IP1), 400, BAD_BLOB)
        # One address only; no space after the comma.
        self.generated(self.generate(I2, PROXY, ["X-Forwarded-For: 127.0.0.2"]))
        self.generated(self.generate(I2, PROXY, ["X-Forwarded-For: 10.9.9.9,127.0.0.2"]))
        # The last address counts, not the first.
        assert_json_error(self, self.generate(I2, PROXY, ["X-Forwarded-For: 127.0.0.2, 127.0.0.1"]), 403)
        # The proxy without the header is itself the caller: in no network.
        assert_json_error(self, self.generate(I2, PROXY), 403)

    def test_42_trusted_proxy_vpc_id(self):
        xff = "X-Forwarded-For: 10.9.9.9, 127.0.0.2"
        self.generated(self.generate(I2, PROXY, [xff, "x-amzn-vpc-id: " + TENANT_A]))
        mark = self.log_mark()
        # Another tenant that exists, and one that does not: refused.
        for vpc in (TENANT_B, "vpc-11111111"):
            with self.subTest(vpc=vpc):
                assert_json_error(self, self.generate(I2, PROXY, [xff, "x-amzn-vpc-id: " + vpc]), 403)
        self.assert_security_line(mark, r"from 127\.0\.0\.2 for instance %s refused" % I2)
        # Tenant B's id does carry a caller at tenant B's address into tenant B.
        doc_headers = self.signed_headers()
        self.generated(self.generate(IB, PROXY, ["X-Forwarded-For: " + IPB, "x-amzn-vpc-id: " + TENANT_B]
                                     + doc_headers))
        assert_json_error(self, self.generate(IB, PROXY, ["X-Forwarded-For: " + IPB, "x-amzn-vpc-id: " + TENANT_A]
                                              + doc_headers), 403)

    def test_43_trusted_proxy_malformed(self):
        for header in ["X-Forwarded-For: not-an-address", "X-Forwarded-For: 10.9.9.9, ",
                       "X-Forwarded-For: 10.9.9.9, 127.0.0.2:443", "X-Forwarded-For: 127.0.0.2 127.0.0.1",
                       "X-Forwarded-For: 127.0.0.256", "X-Forwarded-For: 10.9.9.9, 127.0.0.2x",
                       "x-amzn-vpc-id: vpc-XYZ", "x-amzn-vpc-id: " + TENANT_A + "0",
                       "x-amzn-vpc-id: " + TENANT_A.upper()]:
            with self.subTest(header=header):
                hdrs = [header] if header.startswith("X-Forwarded-For") else [header, "X-Forwarded-For: 127.0.0.2"]
                r = self.generate(I2, PROXY, hdrs)
                assert_json_error(self, r, 403)

    def test_44_untrusted_peer_headers_ignored(self):
        claims = ["X-Forwarded-For: 10.9.9.9, 127.0.0.2", "x-amzn-vpc-id: " + TENANT_B]
        # From 127.0.0.1 for instance 2: judged as 127.0.0.1, refused.
        assert_json_error(self, self.generate(I2, IP1, claims), 403)
        # For instance 1: judged as 127.0.0.1 of tenant A, accepted; bound to instance 1.
        blob, secret = self.generated(self.generate(I1, IP1, claims))
        self.assertEqual(self.decrypt_secret(blob, I1, IP1), secret)
        assert_json_error(self, self.decrypt(blob, I2, IP2), 400, BAD_BLOB)
        # Malformed ones are ignored too.
        self.generated(self.generate(I1, IP1, ["X-Forwarded-For: not-an-address", "x-amzn-vpc-id: vpc-XYZ"]))
        # From outside every network, naming an inside address: refused.
        assert_json_error(self, self.generate(I2, OUTSIDE, claims[:1]), 403)
        # The balancer is not a trusted proxy: its client 127.0.0.1 stays the caller.
        hdrs = [("X-Forwarded-For", "127.0.0.2")]
        r = self.via_balancer(self.client_header(IP1), self.request_bytes("generate-secret", I2,
                                                                          self.generate_body(), hdrs))
        assert_json_error(self, r, 403)
        r = self.via_balancer(self.client_header(IP1), self.request_bytes("generate-secret", I1,
                                                                          self.generate_body(), hdrs))
        self.generated(r)

    # ---- 5. identity documents

    def test_51_identity_document(self):
        blob, secret = self.generated(self.generate(IB, IPB, self.signed_headers()))
        # decrypt-secret with a fresh signature of the same document.
        self.assertEqual(self.decrypt_secret(blob, IB, IPB, self.signed_headers()), secret)
        # A signature without the certificate inside verifies against the configured one.
        self.assertEqual(self.decrypt_secret(blob, IB, IPB, self.signed_headers(certs=False)), secret)
        # Compact JSON, other field order: only the signed bytes matter.
        doc = json.dumps({"privateIp": IPB, "instanceId": IB, "accountId": ACCOUNT_B}).encode()
        self.assertEqual(self.decrypt_secret(blob, IB, IPB, self.signed_headers(doc)), secret)
        # Through the balancer naming 127.0.0.20.
        hdrs = [tuple(h.split(": ", 1)) for h in self.signed_headers()]
        r = self.via_balancer_apart(self.client_header(IPB), self.request_bytes("decrypt-secret", IB,
                                                                          self.decrypt_body(blob), hdrs))
        self.assertEqual(self.unwrap(self.fields(r, DECRYPT_FIELDS)), secret)
        # Not another instance's blob.
        other = self.signed_headers(self.document(instance=IB_OTHER))
        assert_json_error(self, self.decrypt(blob, IB_OTHER, IPB, other), 400, BAD_BLOB)

    def test_52_identity_document_refused(self):
        doc = self.document()
        sig = self.sign(doc)
        tampered = doc.replace(b'"t3.micro"', b'"t3.large"')
        self.assertNotEqual(tampered, doc)
        cases = [
            ("no headers", [], r"no identity document"),
            ("document only", ["X-Instance-Identity-Document: " + b64(doc)], r"no identity document"),
            ("signature only", ["X-Instance-Identity-Signature: " + b64(sig)], r"no identity document"),
            ("another instance", self.signed_headers(self.document(instance=IB_OTHER)), r"another instance"),
            ("another privateIp", self.signed_headers(self.document(ip="127.0.0.21")), r"another address"),
            ("another account", self.signed_headers(self.document(account="999988887777")), r"another account"),
            ("no account", self.signed_headers(self.document(account=None)), r"another account"),
            ("signed by a stranger", self.signed_headers(signer="stranger"), r"does not verify"),
            ("stranger, no certs inside", self.signed_headers(signer="stranger", certs=False), r"does not verify"),
            ("tampered document", self.identity_headers(b64(tampered), b64(sig)), r"does not verify"),
            ("signature of another document", self.identity_headers(b64(doc), b64(self.sign(tampered))),
             r"does not verify"),
            ("garbage base64 document", self.identity_headers("!!not*base64!!", b64(sig)), r"not base64"),
            ("garbage base64 signature", self.identity_headers(b64(doc), "%%%%"), r"not base64"),
            ("signature not PKCS#7", self.identity_headers(b64(doc), b64(b"\x30\x03\x02\x01\x01")),
             r"does not verify"),
            ("document not JSON", self.identity_headers(b64(b"not json"), b64(self.sign(b"not json"))),
             r"unreadable"),
        ]
        for name, headers, reason in cases:
            with self.subTest(name):
                mark = self.log_mark()
                r = self.generate(IB, IPB, headers)
                assert_json_error(self, r, 403)
                self.assertNotIn(b"secret", r.body)
                self.assert_security_line(mark, r"generate-secret from 127\.0\.0\.20 for instance %s refused: .*%s"
                                          % (IB, reason))
        # The good document from another address (tenant A's network): refused there.
        assert_json_error(self, self.generate(IB, IP1, self.signed_headers()), 403)

    # ---- 7. security lines

    def test_71_security_lines(self):
        """Each refusal before authentication leaves a WARN `security:` line
        naming the caller; a refusal after it (a bad blob) does not."""
        blob, _ = self.generated(self.generate(I1, IP1))
        cases = [
            ("no tenant", lambda: self.generate(I1, OUTSIDE), r"from 127\.0\.0\.3 for instance %s refused" % I1),
            ("not registered there", lambda: self.decrypt(blob, I2, IP1),
             r"decrypt-secret from 127\.0\.0\.1 for instance %s refused" % I2),
            ("unknown instance", lambda: self.generate("i-0aaaaaaaaaaaaaaaa", IP1),
             r"from 127\.0\.0\.1 for instance i-0aaaaaaaaaaaaaaaa refused"),
            ("malformed X-Forwarded-For from the trusted proxy",
             lambda: self.generate(I2, PROXY, ["X-Forwarded-For: 10.9.9.9, bogus"]), r"for instance %s refused" % I2),
            ("malformed x-amzn-vpc-id from the trusted proxy",
             lambda: self.generate(I2, PROXY, ["X-Forwarded-For: 127.0.0.2", "x-amzn-vpc-id: vpc-XYZ"]),
             r"for instance %s refused" % I2),
        ]
        for name, call, pattern in cases:
            with self.subTest(name):
                mark = self.log_mark()
                assert_json_error(self, call(), 403)
                self.assert_security_line(mark, pattern)
        # After authentication: an audit event, no security line.
        mark = self.log_mark()
        other = bytearray(blob)
        other[-1] ^= 1
        assert_json_error(self, self.decrypt(bytes(other), I1, IP1), 400, BAD_BLOB)
        time.sleep(0.2)
        self.assertEqual(self.security_since(mark), [])

    def test_72_security_lines_rate_limited(self):
        """200 refused calls within a second: at most LOG_SECURITY_PER_SECOND
        (20) lines a second; the next line reports how many were dropped."""
        # Flush what an earlier case may have left pending.
        time.sleep(1.05 - time.time() % 1)
        assert_json_error(self, self.generate(I1, OUTSIDE), 403)
        mark = self.log_mark()
        time.sleep(1.02 - time.time() % 1)  # start at the beginning of a second
        n, nconns = 200, 8
        req = self.request_bytes("generate-secret", I1, self.generate_body())
        conns = [self.srv.connect(source=OUTSIDE) for _ in range(nconns)]
        try:
            start = time.time()
            for c in conns:
                c.send(req * (n // nconns))
            statuses = [c.read_response().status for c in conns for _ in range(n // nconns)]
            end = time.time()
        finally:
            for c in conns:
                c.close()
        self.assertEqual(statuses, [403] * n)
        seconds = int(end) - int(start) + 1
        # The next refusal, a second later, carries the number dropped.
        time.sleep(1.05 - time.time() % 1)
        assert_json_error(self, self.generate(I1, OUTSIDE), 403)
        self.assert_security_line(mark, r"from 127\.0\.0\.3 .*\(\d+ earlier security lines dropped\)$")
        text = self.srv.log()[mark:]
        lines = [l for l in text.splitlines() if " WARN security: " in l]
        flood = lines[:-1]
        dropped = [int(m.group(1)) for m in (DROPPED.search(l) for l in lines) if m]
        # Every refusal is either a line or counted in a note.
        self.assertEqual(len(lines) + sum(dropped), n + 1, lines)
        self.assertLessEqual(len(flood), 20 * seconds + 1, "%d lines in %d s" % (len(flood), seconds))
        per_second = {}
        for l in flood:
            per_second[l[:19]] = per_second.get(l[:19], 0) + 1  # 2026-11-22T14:33:16
        self.assertLessEqual(max(per_second.values()), 21, per_second)
        if seconds == 1:
            self.assertEqual(len(flood), 20, lines)
            self.assertEqual(dropped, [n - 20], lines)
        print("    (flood: %.3f s in %d second(s), %d lines, dropped notes %r)" % (end - start, seconds, len(flood),
                                                                             dropped))


class NoIdentityTest(Stack, unittest.TestCase):
    """6. A tenant wanting identity documents on an skd without [identity]."""

    @classmethod
    def setUpClass(cls):
        cls.make_stack()
        cls.add_tenants()
        cls.start_server()

    def test_61_refused_without_signer_certs(self):
        mark = self.log_mark()
        r = self.generate(IB, IPB, self.signed_headers())
        assert_json_error(self, r, 403)
        self.assertNotIn(b"secret", r.body)
        self.assert_security_line(mark, r"from 127\.0\.0\.20 for instance %s refused: .*no \[identity\] signer_certs"
                                  % IB)
        # The registry tenant next to it is served.
        self.generated(self.generate(I1, IP1))


if __name__ == "__main__":
    skdtest.main()
