#!/usr/bin/env python3
"""The key-release API (../shared/spec/keys-api.md) against a real SoftHSM
token: generate-secret, decrypt-secret and convert-secret with their
signatures checked by openssl, every refusal with its exact status and
message, authentication from the transport only, the HSM PIN life cycle,
canonical signatures over 2,000 calls, one CMK under 50 concurrent first
calls, and fail-closed start-up.

Clients are curl (other source addresses with --interface 127.0.0.x) and,
for the bulk cases, http.client on one keep-alive connection; every crypto
check is done by the openssl command."""

import base64
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import unittest

import skdtest
from skdtest import SKD, KeyStack, Server, SoftHsm, assert_json_error, curl, run, run_skd

PIN = "1234"
TENANT = "vpc-0123456789abcdef0"
ACCOUNT = "111122223333"
I1, IP1 = "i-0123456789abcdef0", "127.0.0.1"
I2, IP2 = "i-0fedcba9876543210", "127.0.0.2"
OUTSIDE = "127.0.0.3"  # in no tenant's networks
# Tenants added while skd runs (the store is read per call), one per case.
NOKEY_TENANT, NOKEY_INSTANCE, NOKEY_IP = "vpc-22222222222222222", "i-04444444444444444", "127.0.0.4"
RACE_TENANT, RACE_INSTANCE, RACE_IP = "vpc-33333333333333333", "i-05555555555555555", "127.0.0.5"
OTHER_TENANT, OTHER_INSTANCE, OTHER_IP = "vpc-66666666666666666", "i-06666666666666666", "127.0.0.6"
VOL = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
VOL2 = "11111111-2222-4333-8444-555555555555"

BAD_BLOB = "Wrapped secret and/or context are incorrect"
BAD_RSA = "Invalid RSA pub key"
BAD_PARAMS = "Bad parameters"
NO_KEY = "There is no encryption key for this VPC"

OAEP_DIGEST = {"RSA-OAEP-SHA1": "sha1", "RSA-OAEP-SHA256": "sha256"}
GENERATE_FIELDS = {"encrypted_secret", "encrypted_secret_signature", "wrapped_secret", "wrapped_secret_signature",
                   "wrapped_secret_algorithm"}
DECRYPT_FIELDS = {"wrapped_secret", "wrapped_secret_signature", "wrapped_secret_algorithm"}
CONVERT_FIELDS = {"encrypted_secret", "encrypted_secret_signature"}
B64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def b64(data):
    return base64.b64encode(data).decode()


def unb64(text):
    return base64.b64decode(text, validate=True)


def openssl(*args, input=None):
    p = run(["openssl"] + list(args), input=input)
    if p.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p.stdout


def der_integers(sig):
    """The two INTEGER contents of a DER ECDSA-Sig-Value (bytes parsing only)."""
    def tlv(data, i):
        tag, n = data[i], data[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            if k != 1 or data[i] < 0x80:  # DER: long form only from 128 on
                raise ValueError("non-minimal length")
            n = data[i]
            i += 1
        return tag, data[i:i + n], i + n
    tag, body, end = tlv(sig, 0)
    if tag != 0x30 or end != len(sig):
        raise ValueError("not one SEQUENCE")
    ints, i = [], 0
    while i < len(body):
        tag, val, i = tlv(body, i)
        if tag != 0x02:
            raise ValueError("not an INTEGER")
        ints.append(val)
    if len(ints) != 2:
        raise ValueError("want 2 INTEGERs")
    return ints


def minimal_positive(val):
    if not val or val[0] & 0x80:
        return False
    return not (len(val) > 1 and val[0] == 0 and val[1] < 0x80)


class Stack:
    """What every class here shares: cls.stack, a skdtest.KeyStack (a SoftHSM
    token with skd's keys, a store, a CLI configuration, in a temp dir
    removed by a class cleanup), helpers around curl and openssl."""

    @classmethod
    def make_stack(cls, pin=PIN):
        cls.stack = KeyStack(SKD, pin=pin, prefix="skdkeys-")
        cls.addClassCleanup(cls.stack.close)

    # -- HTTP through curl

    def curl_call(self, method, path, body=None, iface=IP1, headers=(), port=None, srv=None, ok_codes=(0,)):
        """One request with curl from source address iface; returns the last Response."""
        srv = srv or self.srv
        url = "http://127.0.0.1:%d%s" % (port or srv.port, path)
        args = ["-i", "-X", method, "--interface", iface]
        for h in headers:
            args += ["-H", h]
        if body is not None:
            args += ["-H", "Content-Type: application/json", "--data-binary", "@" + self.stack.write("body", body)]
        p = curl(*(args + [url]))
        self.assertIn(p.returncode, ok_codes, p.stderr)
        responses = skdtest.parse_responses(p.stdout)
        self.assertTrue(responses, "no response from %s %s" % (method, path))
        return responses[-1]

    def put_pin(self, srv, pin, iface="127.0.0.1", host="127.0.0.1"):
        url = "http://%s:%d/hsm-pin" % (host, srv.admin_port)
        p = curl("-i", "-X", "PUT", "--interface", iface, "--data-binary", "@" + self.stack.write("pin", json.dumps(
            {"pin": pin}).encode()), url)
        self.assertEqual(p.returncode, 0, p.stderr)
        return skdtest.parse_responses(p.stdout)[-1]

    # -- crypto through openssl

    def verify(self, blob, sig):
        """The signature verifies with openssl dgst against pub.pem from skd init."""
        p = run(["openssl", "dgst", "-sha256", "-verify", self.stack.pub_pem, "-signature",
                 self.stack.write("sig", sig), self.stack.write("blob", blob)])
        self.assertEqual(p.returncode, 0, "signature does not verify: %r %r" % (p.stdout, p.stderr))
        self.assertIn(b"Verified OK", p.stdout)

    def unwrap(self, key, wrapped, algorithm):
        """wrapped_secret decrypted with key's private part, OAEP with the named hash."""
        self.assertIn(algorithm, OAEP_DIGEST)
        md = OAEP_DIGEST[algorithm]
        return openssl("pkeyutl", "-decrypt", "-inkey", self.keys[key]["pem"], "-in",
                       self.stack.write("wrapped", wrapped), "-pkeyopt", "rsa_padding_mode:oaep",
                       "-pkeyopt", "rsa_oaep_md:" + md, "-pkeyopt", "rsa_mgf1_md:" + md)


class KeysTest(Stack, unittest.TestCase):
    """One skd with a logged-in token for the API cases (setUpClass), its
    exit checked in a class cleanup (status 0 on SIGTERM, no ERROR line, no
    sanitizer report)."""

    @classmethod
    def setUpClass(cls):
        tmpkeys = tempfile.mkdtemp(prefix="skdkeys-rsa-")
        try:
            # The RSA keys take a second or two each: made while the token is set up.
            specs = {"a": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
                     "b": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
                     "small": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                     "ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]}
            procs = {k: subprocess.Popen(["openssl", "genpkey"] + a + ["-out", os.path.join(tmpkeys, k + ".pem")],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                     for k, a in specs.items()}
            cls.make_stack()
            cls.stack.add_tenant(TENANT, ACCOUNT, "%s/32,%s/32" % (IP1, IP2), [(I1, IP1), (I2, IP2)])
            cls.keys = {}
            for k, p in procs.items():
                _, err = p.communicate(timeout=120)
                if p.returncode != 0:
                    raise AssertionError("openssl genpkey %s: %r" % (k, err))
                pem = os.path.join(cls.stack.dir, k + ".pem")
                shutil.move(os.path.join(tmpkeys, k + ".pem"), pem)
                der = openssl("pkey", "-in", pem, "-pubout", "-outform", "DER")
                cls.keys[k] = {"pem": pem, "der": der, "b64": b64(der)}
        finally:
            shutil.rmtree(tmpkeys, ignore_errors=True)
        cls.srv = cls.stack.server()
        cls.addClassCleanup(cls.srv.__exit__, None, None, None)  # raises if the exit or the log is wrong

    # -- calls

    def post(self, op, instance, body, iface=IP1, headers=(), raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        return self.curl_call("POST", "/v1/encryption/%s/%s" % (instance, op), data, iface=iface, headers=headers)

    def fields(self, r, names):
        """A 200 answer with exactly these fields, binary ones canonical base64; decoded."""
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json", r.raw_head)
        self.assertEqual(r.header("Content-Length"), str(len(r.body)))
        obj = r.json()
        # Every answer after authentication names its audit record.
        seq = obj.pop("audit_seq", None)
        self.assertIsInstance(seq, int, obj)
        self.assertGreater(seq, 0)
        self.assertEqual(set(obj), names, obj)
        out = {}
        for k, v in obj.items():
            if k == "wrapped_secret_algorithm":
                self.assertIn(v, OAEP_DIGEST)
                out[k] = v
            else:
                self.assertRegex(v, B64, k)
                out[k] = unb64(v)
        return out

    def generate(self, instance=I1, iface=IP1, volume=VOL, key="a"):
        """generate-secret; both signatures verified; returns (fields, secret)."""
        r = self.post("generate-secret", instance, {"rsa_wrapping_key": self.keys[key]["b64"], "volume_uuid": volume},
                      iface=iface)
        f = self.fields(r, GENERATE_FIELDS)
        self.verify(f["encrypted_secret"], f["encrypted_secret_signature"])
        self.verify(f["wrapped_secret"], f["wrapped_secret_signature"])
        secret = self.unwrap(key, f["wrapped_secret"], f["wrapped_secret_algorithm"])
        self.assertEqual(len(secret), 32)
        return f, secret

    def decrypt(self, blob, instance=I1, iface=IP1, volume=VOL, key="b"):
        """decrypt-secret; the raw Response."""
        return self.post("decrypt-secret", instance, {"encrypted_secret": b64(blob), "rsa_wrapping_key":
                                                      self.keys[key]["b64"], "volume_uuid": volume}, iface=iface)

    def decrypt_ok(self, blob, **kw):
        key = kw.get("key", "b")
        f = self.fields(self.decrypt(blob, **kw), DECRYPT_FIELDS)
        self.verify(f["wrapped_secret"], f["wrapped_secret_signature"])
        return self.unwrap(key, f["wrapped_secret"], f["wrapped_secret_algorithm"])

    def convert(self, blob, source, instance=I2, iface=IP2, volume=VOL):
        return self.post("convert-secret", instance, {"encrypted_secret": b64(blob), "source_instance_id": source,
                                                      "volume_uuid": volume}, iface=iface)

    def bodies(self, blob=b"\x01" * 74):
        """A valid body for each route (the blob need not be real)."""
        return {"generate-secret": {"rsa_wrapping_key": self.keys["a"]["b64"], "volume_uuid": VOL},
                "decrypt-secret": {"encrypted_secret": b64(blob), "rsa_wrapping_key": self.keys["a"]["b64"],
                                   "volume_uuid": VOL},
                "convert-secret": {"encrypted_secret": b64(blob), "source_instance_id": I1, "volume_uuid": VOL}}

    def assert_no_secret(self, r):
        for k in ("encrypted_secret", "wrapped_secret"):
            self.assertNotIn(k.encode(), r.body)

    # -- the happy paths

    def test_public_signing_key(self):
        r = self.curl_call("GET", "/v1/public-signing-key")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json")
        obj = r.json()
        self.assertEqual(set(obj), {"public_key"})
        self.assertRegex(obj["public_key"], B64)
        der = unb64(obj["public_key"])
        self.assertEqual(len(der), 120)
        pem = openssl("pkey", "-pubin", "-inform", "DER", "-in", self.stack.write("spki.der", der))
        with open(self.stack.pub_pem, "rb") as f:
            self.assertEqual(pem, f.read())
        text = openssl("pkey", "-pubin", "-inform", "DER", "-in", self.stack.write("spki.der", der),
                       "-text_pub", "-noout").decode()
        self.assertRegex(text, r"secp384r1|P-384")

    def test_generate_secret(self):
        f, secret = self.generate()
        self.assertEqual(len(f["wrapped_secret"]), 512)  # RSA-4096
        # Another call: another secret, another blob.
        f2, secret2 = self.generate()
        self.assertNotEqual(secret, secret2)
        self.assertNotEqual(f["encrypted_secret"], f2["encrypted_secret"])

    def test_decrypt_secret_new_key(self):
        f, secret = self.generate(volume=VOL)
        # Another RSA key, the volume in upper case: the same 32 bytes.
        self.assertEqual(self.decrypt_ok(f["encrypted_secret"], volume=VOL.upper(), key="b"), secret)
        self.assertEqual(self.decrypt_ok(f["encrypted_secret"], volume=VOL, key="a"), secret)
        # And the other way round: made with a mixed-case volume, opened with lower case.
        mixed = VOL2[:9].upper() + VOL2[9:]
        f, secret = self.generate(volume=mixed)
        self.assertEqual(self.decrypt_ok(f["encrypted_secret"], volume=VOL2.lower()), secret)

    def test_convert_secret(self):
        f, secret = self.generate(instance=I1, iface=IP1)
        old = f["encrypted_secret"]
        r = self.convert(old, source=I1, instance=I2, iface=IP2)
        c = self.fields(r, CONVERT_FIELDS)
        self.verify(c["encrypted_secret"], c["encrypted_secret_signature"])
        new = c["encrypted_secret"]
        self.assertNotEqual(new, old)
        # The second instance opens the converted blob...
        self.assertEqual(self.decrypt_ok(new, instance=I2, iface=IP2), secret)
        # ...the first still opens the old one (as in the original)...
        self.assertEqual(self.decrypt_ok(old, instance=I1, iface=IP1), secret)
        # ...but not the converted one.
        r = self.decrypt(new, instance=I1, iface=IP1)
        assert_json_error(self, r, 400, BAD_BLOB)
        self.assert_no_secret(r)
        # A conversion naming the wrong source, or the wrong volume, is refused.
        assert_json_error(self, self.convert(old, source=I2, instance=I2, iface=IP2), 400, BAD_BLOB)
        assert_json_error(self, self.convert(old, source=I1, instance=I2, iface=IP2, volume=VOL2), 400, BAD_BLOB)
        # Converting back to the first instance works too (volume case ignored).
        r = self.convert(new, source=I2, instance=I1, iface=IP1, volume=VOL.upper())
        back = self.fields(r, CONVERT_FIELDS)["encrypted_secret"]
        self.assertEqual(self.decrypt_ok(back, instance=I1, iface=IP1), secret)

    # -- refusals: the blob and its context

    def test_refuse_other_instances_blob(self):
        f, _ = self.generate(instance=I1, iface=IP1)
        r = self.decrypt(f["encrypted_secret"], instance=I2, iface=IP2)
        assert_json_error(self, r, 400, BAD_BLOB)
        self.assert_no_secret(r)

    def test_refuse_wrong_volume(self):
        f, _ = self.generate(volume=VOL)
        r = self.decrypt(f["encrypted_secret"], volume=VOL2)
        assert_json_error(self, r, 400, BAD_BLOB)
        self.assert_no_secret(r)

    def test_refuse_flipped_byte(self):
        f, secret = self.generate()
        blob = f["encrypted_secret"]
        mid = bytearray(blob)
        mid[len(mid) // 2] ^= 0x01
        r = self.decrypt(bytes(mid))
        assert_json_error(self, r, 400, BAD_BLOB)
        self.assert_no_secret(r)
        # Every byte, low and high bit, over one keep-alive connection; also
        # one byte short and one byte more.
        variants = []
        for i in range(len(blob)):
            for bit in (0x01, 0x80):
                b = bytearray(blob)
                b[i] ^= bit
                variants.append(("byte %d ^ 0x%02x" % (i, bit), bytes(b)))
        variants += [("truncated", blob[:-1]), ("extended", blob + b"\x00")]
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60, source_address=(IP1, 0))
        try:
            got = []
            for name, b in variants:
                body = json.dumps({"encrypted_secret": b64(b), "rsa_wrapping_key": self.keys["b"]["b64"],
                                   "volume_uuid": VOL})
                conn.request("POST", "/v1/encryption/%s/decrypt-secret" % I1, body,
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 400 or json.loads(data).get("message") != BAD_BLOB:
                    got.append((name, resp.status, data[:120]))
        finally:
            conn.close()
        self.assertEqual(got, [], "tampered blobs not refused with 400 %r" % BAD_BLOB)
        # The untouched blob still opens.
        self.assertEqual(self.decrypt_ok(blob), secret)

    # -- refusals: the RSA key and the base64

    def test_refuse_small_rsa_key(self):
        f, _ = self.generate()
        for key in ("small", "ec"):
            with self.subTest(key=key):
                r = self.post("generate-secret", I1, {"rsa_wrapping_key": self.keys[key]["b64"], "volume_uuid": VOL})
                assert_json_error(self, r, 400, BAD_RSA)
                r = self.decrypt(f["encrypted_secret"], key=key)
                assert_json_error(self, r, 400, BAD_RSA)
                self.assert_no_secret(r)

    def test_refuse_garbage_rsa_key(self):
        f, _ = self.generate()
        for garbage in ("!!!not base64!!!", "AAAA", b64(b"\x30\x03\x02\x01\x01"), self.keys["a"]["b64"][:-8]):
            with self.subTest(garbage=garbage[:20]):
                r = self.post("generate-secret", I1, {"rsa_wrapping_key": garbage, "volume_uuid": VOL})
                assert_json_error(self, r, 400, BAD_RSA)
                r = self.post("decrypt-secret", I1, {"encrypted_secret": b64(f["encrypted_secret"]),
                                                     "rsa_wrapping_key": garbage, "volume_uuid": VOL})
                assert_json_error(self, r, 400, BAD_RSA)
                self.assert_no_secret(r)

    def test_refuse_garbage_encrypted_secret(self):
        for garbage in ("!!!not base64!!!", "AQF5 80mF", "AQF580mF="):
            with self.subTest(garbage=garbage):
                r = self.post("decrypt-secret", I1, {"encrypted_secret": garbage, "rsa_wrapping_key":
                                                     self.keys["a"]["b64"], "volume_uuid": VOL})
                assert_json_error(self, r, 400, BAD_PARAMS)
                r = self.post("convert-secret", I2, {"encrypted_secret": garbage, "source_instance_id": I1,
                                                     "volume_uuid": VOL}, iface=IP2)
                assert_json_error(self, r, 400, BAD_PARAMS)

    # -- identity comes from the transport only

    def test_identity_fields_in_body_and_headers_ignored(self):
        self.stack.add_tenant(OTHER_TENANT, ACCOUNT, OTHER_IP + "/32", [(OTHER_INSTANCE, OTHER_IP)])
        spoof_body = {"vpc_id": OTHER_TENANT, "ip": IP2, "instance_id": I2, "source_ip": IP2,
                      "account_id": "999999999999"}
        spoof_headers = ["X-Forwarded-For: %s" % IP2, "x-amzn-vpc-id: %s" % OTHER_TENANT, "X-Real-IP: %s" % IP2]
        # 1. The real caller (instance 1 at 127.0.0.1) with the spoofing extras: it succeeds as
        #    itself; the blob is bound to tenant 1 and instance 1.
        body = dict(spoof_body, rsa_wrapping_key=self.keys["a"]["b64"], volume_uuid=VOL)
        r = self.post("generate-secret", I1, body, headers=spoof_headers)
        f = self.fields(r, GENERATE_FIELDS)
        secret = self.unwrap("a", f["wrapped_secret"], f["wrapped_secret_algorithm"])
        self.assertEqual(self.decrypt_ok(f["encrypted_secret"], instance=I1, iface=IP1), secret)
        assert_json_error(self, self.decrypt(f["encrypted_secret"], instance=I2, iface=IP2), 400, BAD_BLOB)
        # decrypt with the extras: the same answer as without them.
        body = dict(spoof_body, encrypted_secret=b64(f["encrypted_secret"]), rsa_wrapping_key=self.keys["b"]["b64"],
                    volume_uuid=VOL)
        d = self.fields(self.post("decrypt-secret", I1, body, headers=spoof_headers), DECRYPT_FIELDS)
        self.assertEqual(self.unwrap("b", d["wrapped_secret"], d["wrapped_secret_algorithm"]), secret)
        # The tenant named in the body got no key from any of this.
        r = self.decrypt(f["encrypted_secret"], instance=OTHER_INSTANCE, iface=OTHER_IP)
        assert_json_error(self, r, 400, NO_KEY)
        # 2. From 127.0.0.1 for instance 2 (registered at 127.0.0.2), claiming 127.0.0.2: refused
        #    exactly as without the claims.
        for op, b in self.bodies(f["encrypted_secret"]).items():
            with self.subTest(op=op):
                plain = self.post(op, I2, b)
                spoofed = self.post(op, I2, dict(b, **spoof_body), headers=spoof_headers)
                assert_json_error(self, plain, 403)
                self.assertEqual((spoofed.status, spoofed.body), (plain.status, plain.body))
        # 3. From outside every network, claiming instance 1's address and tenant: refused.
        for op, b in self.bodies(f["encrypted_secret"]).items():
            with self.subTest(op=op, outside=True):
                plain = self.post(op, I1, b, iface=OUTSIDE)
                spoofed = self.post(op, I1, dict(b, vpc_id=TENANT, ip=IP1), iface=OUTSIDE,
                                    headers=["X-Forwarded-For: %s" % IP1, "x-amzn-vpc-id: %s" % TENANT])
                assert_json_error(self, plain, 403)
                self.assertEqual((spoofed.status, spoofed.body), (plain.status, plain.body))

    def assert_forbidden_everywhere(self, instance, iface, blob):
        for op, b in self.bodies(blob).items():
            with self.subTest(op=op, instance=instance, iface=iface):
                r = self.post(op, instance, b, iface=iface)
                assert_json_error(self, r, 403)
                self.assert_no_secret(r)

    def test_refuse_unregistered_instance(self):
        f, _ = self.generate()
        self.assert_forbidden_everywhere("i-0aaaaaaaaaaaaaaaa", IP1, f["encrypted_secret"])
        self.assert_forbidden_everywhere("i-0123abcd", IP1, f["encrypted_secret"])

    def test_refuse_instance_from_wrong_address(self):
        f, _ = self.generate()
        self.assert_forbidden_everywhere(I1, IP2, f["encrypted_secret"])

    def test_refuse_peer_outside_tenant_networks(self):
        f, _ = self.generate()
        self.assert_forbidden_everywhere(I1, OUTSIDE, f["encrypted_secret"])
        self.assert_forbidden_everywhere(I2, OUTSIDE, f["encrypted_secret"])

    # -- refusals: the request itself

    def test_bad_parameters(self):
        f, _ = self.generate()
        blob = b64(f["encrypted_secret"])
        cases = []
        for op, good in self.bodies(f["encrypted_secret"]).items():
            iface, inst = (IP2, I2) if op == "convert-secret" else (IP1, I1)
            for name, raw in [("empty body", b""), ("not JSON", b"not json"), ("truncated JSON", b'{"volume_uuid": '),
                              ("array", b"[]"), ("string", b'"x"'), ("null", b"null"),
                              ("trailing garbage", json.dumps(good).encode() + b"}")]:
                cases.append((op, inst, iface, name, raw))
            for field in good:
                body = {k: v for k, v in good.items() if k != field}
                cases.append((op, inst, iface, "missing " + field, json.dumps(body).encode()))
            for vol in ["0f1e2d3c4b5a69788796a5b4c3d2e1f0", VOL[:-1], VOL[:-1] + "g", "{%s}" % VOL, VOL + " ",
                        "", 123, None]:
                cases.append((op, inst, iface, "volume %r" % (vol,), json.dumps(dict(good, volume_uuid=vol)).encode()))
        for src in ["I-0123456789ABCDEF0", "i-0123456789abcdef", "0123456789abcdef0", "", 7]:
            body = {"encrypted_secret": blob, "source_instance_id": src, "volume_uuid": VOL}
            cases.append(("convert-secret", I2, IP2, "source %r" % (src,), json.dumps(body).encode()))
        for bad in ["i-0123456789ABCDEF0", "i-0123", "i-0123456789abcdef01", "x-0123456789abcdef0",
                    "i-0123456789abcdeg0", "i-"]:
            for op, good in self.bodies(f["encrypted_secret"]).items():
                cases.append((op, bad, IP1, "path %s" % bad, json.dumps(good).encode()))
        for op, inst, iface, name, raw in cases:
            with self.subTest(op=op, case=name):
                r = self.post(op, inst, None, iface=iface, raw=raw)
                assert_json_error(self, r, 400, BAD_PARAMS)

    def test_oversized_body(self):
        big = json.dumps({"rsa_wrapping_key": "A" * 70000, "volume_uuid": VOL}).encode()
        for headers in ([], ["Transfer-Encoding: chunked"]):
            with self.subTest(headers=headers):
                # skd may answer before reading the body and close: curl may then
                # report a send error after the answer.
                r = self.curl_call("POST", "/v1/encryption/%s/generate-secret" % I1, big, headers=headers,
                                   ok_codes=(0, 55, 56))
                assert_json_error(self, r, 413)
        # Just under the limit: read, parsed, refused for what it is.
        fits = json.dumps({"rsa_wrapping_key": "A" * 60000, "volume_uuid": VOL}).encode()
        assert_json_error(self, self.post("generate-secret", I1, None, raw=fits), 400, BAD_RSA)

    def test_no_key_for_tenant(self):
        self.stack.add_tenant(NOKEY_TENANT, ACCOUNT, NOKEY_IP + "/32", [(NOKEY_INSTANCE, NOKEY_IP)])
        f, secret = self.generate()  # a real blob, of tenant 1
        blob = f["encrypted_secret"]
        r = self.decrypt(blob, instance=NOKEY_INSTANCE, iface=NOKEY_IP)
        assert_json_error(self, r, 400, NO_KEY)
        r = self.convert(blob, source=I1, instance=NOKEY_INSTANCE, iface=NOKEY_IP)
        assert_json_error(self, r, 400, NO_KEY)
        # Refusals made no key: still none.
        assert_json_error(self, self.decrypt(blob, instance=NOKEY_INSTANCE, iface=NOKEY_IP), 400, NO_KEY)
        # A first generate-secret makes the tenant's key; tenant 1's blob still does not open there.
        g, own = self.generate(instance=NOKEY_INSTANCE, iface=NOKEY_IP)
        self.assertEqual(self.decrypt_ok(g["encrypted_secret"], instance=NOKEY_INSTANCE, iface=NOKEY_IP), own)
        assert_json_error(self, self.decrypt(blob, instance=NOKEY_INSTANCE, iface=NOKEY_IP), 400, BAD_BLOB)
        assert_json_error(self, self.convert(blob, source=I1, instance=NOKEY_INSTANCE, iface=NOKEY_IP), 400,
                          BAD_BLOB)
        # Nor does the new tenant's blob open for tenant 1.
        assert_json_error(self, self.decrypt(g["encrypted_secret"]), 400, BAD_BLOB)
        self.assertEqual(self.decrypt_ok(blob), secret)

    def test_unknown_route(self):
        for method, path in [("GET", "/v1/nope"), ("POST", "/v1/encryption/%s/rotate-secret" % I1),
                             ("POST", "/v1/encryption/%s" % I1), ("GET", "/v1/public-signing-key/x"),
                             ("POST", "/v1/encryption/%s/generate-secret/x" % I1), ("GET", "/v1")]:
            with self.subTest(method=method, path=path):
                body = b"{}" if method == "POST" else None
                assert_json_error(self, self.curl_call(method, path, body), 404, "Unimplemented")

    # -- 2,000 signatures, canonical DER

    def test_signatures_2000_canonical(self):
        n = 1000
        sigdir = self.stack.tmp("sigs")
        os.mkdir(sigdir)
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60, source_address=(IP1, 0))
        names = []
        sigs = {}
        try:
            sock = None
            for i in range(n):
                body = json.dumps({"rsa_wrapping_key": self.keys["a"]["b64"],
                                   "volume_uuid": "%08x-0000-4000-8000-%012x" % (i, i)})
                conn.request("POST", "/v1/encryption/%s/generate-secret" % I1, body,
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                self.assertEqual(resp.status, 200, data[:200])
                if sock is None:
                    sock = conn.sock
                self.assertIs(conn.sock, sock, "the keep-alive connection was closed at call %d" % i)
                obj = json.loads(data)
                for kind in ("encrypted_secret", "wrapped_secret"):
                    name = "%d%s" % (i, kind[0])
                    blob, sig = unb64(obj[kind]), unb64(obj[kind + "_signature"])
                    with open(os.path.join(sigdir, name + ".bin"), "wb") as fh:
                        fh.write(blob)
                    with open(os.path.join(sigdir, name + ".sig"), "wb") as fh:
                        fh.write(sig)
                    names.append(name)
                    sigs[name] = sig
        finally:
            conn.close()
        self.assertEqual(len(names), 2 * n)
        # Every one verifies with openssl dgst (two processes at a time).
        with open(os.path.join(sigdir, "list"), "w") as fh:
            fh.write("\n".join(names) + "\n")
        script = ('for i do if openssl dgst -sha256 -verify "$0" -signature "$i.sig" "$i.bin" >/dev/null 2>&1; '
                  'then echo "OK $i"; else echo "BAD $i"; fi; done')
        with open(os.path.join(sigdir, "list")) as fh:
            p = subprocess.run(["xargs", "-P2", "-n", "100", "sh", "-c", script, self.stack.pub_pem], stdin=fh,
                               cwd=sigdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        lines = p.stdout.decode().split("\n")
        ok = sorted(l[3:] for l in lines if l.startswith("OK "))
        refused = sorted(l[4:] for l in lines if l.startswith("BAD "))
        # Structure, in bytes: DER SEQUENCE of two minimal positive INTEGERs.
        noncanonical = []
        for name, sig in sigs.items():
            try:
                ints = der_integers(sig)
                if not all(minimal_positive(v) and len(v) <= 49 for v in ints):
                    noncanonical.append((name, sig.hex()))
            except (ValueError, IndexError) as e:
                noncanonical.append((name, "%s: %s" % (e, sig.hex())))
        self.assertEqual((len(refused), len(noncanonical)), (0, 0),
                         "of %d signatures openssl refuses %d (e.g. %s), %d are not canonical DER (e.g. %s)"
                         % (len(names), len(refused), refused[:3], len(noncanonical), noncanonical[:2]))
        self.assertEqual(ok, sorted(names), p.stderr)
        # openssl asn1parse on a sample: both short ones (a leading zero byte
        # of the value dropped) and ones with the high bit set (0x00 pad).
        short = [k for k, s in sigs.items() if any(len(v) < 48 for v in der_integers(s))]
        padded = [k for k, s in sigs.items() if any(len(v) == 49 for v in der_integers(s))]
        self.assertTrue(padded, "no INTEGER with the high bit set in 2,000 signatures?")
        sample = short[:8] + padded[:6] + names[:4]
        integers = 0
        for name in sample:
            out = openssl("asn1parse", "-inform", "DER", "-in", os.path.join(sigdir, name + ".sig")).decode()
            found = re.findall(r"hl=(\d+) l=\s*(\d+) prim: INTEGER\s*:([0-9A-F]+)", out)
            self.assertEqual(len(found), 2, out)
            self.assertNotIn("BAD INTEGER", out)
            for _hl, length, value in found:
                want = len(value) // 2 + (1 if int(value[:2], 16) >= 0x80 else 0)
                self.assertEqual(int(length), want, "%s: INTEGER not minimal:\n%s" % (name, out))
                self.assertFalse(value.startswith("00"), out)
                integers += 1
        self.assertEqual(integers, 2 * len(sample))

    # -- one CMK under concurrent first calls

    def test_concurrent_first_calls_one_cmk(self):
        self.stack.add_tenant(RACE_TENANT, ACCOUNT, RACE_IP + "/32", [(RACE_INSTANCE, RACE_IP)])
        n = 50
        barrier = threading.Barrier(n)
        results = [None] * n

        def vol(i):
            return "00000000-0000-4000-8000-%012x" % (1000 + i)

        def call(i):
            conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=120, source_address=(RACE_IP, 0))
            try:
                conn.connect()
                body = json.dumps({"rsa_wrapping_key": self.keys["a"]["b64"], "volume_uuid": vol(i)})
                barrier.wait(30)
                conn.request("POST", "/v1/encryption/%s/generate-secret" % RACE_INSTANCE, body,
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                results[i] = (resp.status, resp.read())
            except Exception as e:  # reported below
                results[i] = (None, repr(e).encode())
            finally:
                conn.close()
        threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        results = [r or (None, b"no answer") for r in results]
        self.assertEqual([r[0] for r in results], [200] * n, [r for r in results if r[0] != 200][:3])
        gen = [json.loads(body) for _, body in results]
        # Each blob, decrypt-secret'ed, gives what its own wrapped_secret holds.
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=60, source_address=(RACE_IP, 0))
        dec = []
        try:
            for i, g in enumerate(gen):
                body = json.dumps({"encrypted_secret": g["encrypted_secret"], "rsa_wrapping_key": self.keys["a"]["b64"],
                                   "volume_uuid": vol(i)})
                conn.request("POST", "/v1/encryption/%s/decrypt-secret" % RACE_INSTANCE, body,
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                dec.append((resp.status, data))
        finally:
            conn.close()
        self.assertEqual([d[0] for d in dec], [200] * n, [d for d in dec if d[0] != 200][:3])
        jobs = [(g["wrapped_secret"], g["wrapped_secret_algorithm"]) for g in gen]
        jobs += [(json.loads(d)["wrapped_secret"], json.loads(d)["wrapped_secret_algorithm"]) for _, d in dec]
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            secrets = list(ex.map(lambda j: self.unwrap("a", unb64(j[0]), j[1]), jobs))
        first, again = secrets[:n], secrets[n:]
        self.assertTrue(all(len(s) == 32 for s in secrets))
        self.assertEqual(first, again)
        self.assertEqual(len(set(first)), n, "secrets repeat")
        self.verify(unb64(gen[0]["encrypted_secret"]), unb64(gen[0]["encrypted_secret_signature"]))

    # -- last: the token holds what skd init made, nothing more

    def test_zz_no_hsm_objects_left_behind(self):
        self.assertEqual(len(self.stack.objects_after_init) - len(self.stack.objects_before_init), 4,
                         (self.stack.objects_before_init, self.stack.objects_after_init))
        # Make sure every kind of call ran at least once in this class.
        f, secret = self.generate()
        self.assertEqual(self.decrypt_ok(f["encrypted_secret"]), secret)
        self.fields(self.convert(f["encrypted_secret"], source=I1), CONVERT_FIELDS)
        assert_json_error(self, self.decrypt(f["encrypted_secret"], volume=VOL2), 400, BAD_BLOB)
        self.assertEqual(self.stack.hsm.object_files(), self.stack.objects_after_init)


class PinTest(Stack, unittest.TestCase):
    """A token with skd's keys; each case starts its own skd (no PIN given)."""

    PIN = "pin-7Qx2-Zr9K"
    WRONG = "wrong-4Hq8-Vm3T"

    @classmethod
    def setUpClass(cls):
        cls.make_stack(pin=cls.PIN)

    def assert_unhealthy(self, srv):
        self.assertEqual(self.curl_call("GET", "/healthcheck", srv=srv).status, 500)
        self.assertEqual(self.curl_call("GET", "/healthcheck", srv=srv, port=srv.admin_port).status, 500)
        assert_json_error(self, self.curl_call("GET", "/v1/public-signing-key", srv=srv), 500)
        body = json.dumps({"rsa_wrapping_key": "AAAA", "encrypted_secret": "AAAA", "source_instance_id": I2,
                           "volume_uuid": VOL}).encode()
        for op in ("generate-secret", "decrypt-secret", "convert-secret"):
            r = self.curl_call("POST", "/v1/encryption/%s/%s" % (I1, op), body, srv=srv)
            assert_json_error(self, r, 500, "Unhealthy")

    def test_pin_life_cycle(self):
        with self.stack.server(pin=False) as srv:
            self.assert_unhealthy(srv)
            assert_json_error(self, self.put_pin(srv, self.WRONG), 400, "PIN was not accepted")
            self.assert_unhealthy(srv)
            r = self.put_pin(srv, self.PIN)
            self.assertEqual(r.status, 204, r)
            self.assertEqual(self.curl_call("GET", "/healthcheck", srv=srv).status, 204)
            self.assertEqual(self.curl_call("GET", "/healthcheck", srv=srv, port=srv.admin_port).status, 204)
            r = self.curl_call("GET", "/v1/public-signing-key", srv=srv)
            self.assertEqual(r.status, 200, r)
            pem = openssl("pkey", "-pubin", "-inform", "DER", "-in",
                          self.stack.write("spki", unb64(r.json()["public_key"])))
            with open(self.stack.pub_pem, "rb") as f:
                self.assertEqual(pem, f.read())
            # Past the health gate: no tenant is registered here, so 403.
            body = json.dumps({"rsa_wrapping_key": "AAAA", "volume_uuid": VOL}).encode()
            assert_json_error(self, self.curl_call("POST", "/v1/encryption/%s/generate-secret" % I1, body, srv=srv),
                              403)
            assert_json_error(self, self.put_pin(srv, self.PIN), 400, "PIN already present")
            assert_json_error(self, self.put_pin(srv, self.WRONG), 400, "PIN already present")
            self.assertEqual(self.curl_call("GET", "/healthcheck", srv=srv).status, 204)
        for pin in (self.PIN, self.WRONG):
            self.assertNotIn(pin, srv.final_log)

    def test_init_twice(self):
        before = self.stack.hsm.object_files()
        pem2 = self.stack.tmp("pub2.pem")
        p = run_skd(SKD, ["init", "-c", self.stack.cli_conf, "--public-key", pem2], env=self.stack.hsm.env,
                    input=(self.PIN + "\n").encode())
        self.assertEqual(p.returncode, 1, (p.stdout, p.stderr))
        lines = p.stderr.decode().strip().split("\n")
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("skd init: "), lines)
        self.assertNotIn(self.PIN, p.stderr.decode())
        self.assertEqual(p.stdout, b"")
        self.assertFalse(os.path.exists(pem2))
        self.assertEqual(self.stack.hsm.object_files(), before)

    def test_serve_without_keys_fails_closed(self):
        fresh_dir = self.stack.tmp("fresh")
        os.mkdir(fresh_dir)
        fresh = SoftHsm(fresh_dir, pin=self.PIN)
        empty = fresh.object_files()
        srv = Server(SKD, {"hsm": fresh.hsm_section(), "store": {"path": os.path.join(fresh_dir, "skd.db")}},
                     env=fresh.env, expect_exit=1, check_log=False)
        with srv:
            r = self.put_pin(srv, self.PIN)
            self.assertNotEqual(r.status, 204, r)
            assert_json_error(self, r, 500)
            self.assertEqual(srv.wait(15), 1, srv.log())
        errors = [l for l in srv.final_log.splitlines() if re.search(r"\bERROR\b", l)]
        self.assertTrue(errors, srv.final_log)
        self.assertTrue(any(re.search(r"skd-domain-key|domain key", l) for l in errors), errors)
        self.assertNotIn(self.PIN, srv.final_log)
        # Nothing was created on the token by serving.
        self.assertEqual(fresh.object_files(), empty)

    def test_admin_pin_from_non_loopback_refused(self):
        from test_http import non_loopback_ipv4
        addr = non_loopback_ipv4()
        if addr is None:
            self.skipTest("no non-loopback IPv4 address")
        with self.stack.server({"admin": {"listen": "0.0.0.0:{admin_port}"}}, pin=False) as srv:
            r = self.put_pin(srv, self.PIN, iface=addr, host=addr)
            assert_json_error(self, r, 403)
            self.assertEqual(self.curl_call("GET", "/healthcheck", srv=srv).status, 500)
            # From loopback, the same listener takes it.
            self.assertEqual(self.put_pin(srv, self.PIN).status, 204)
            self.assertEqual(self.curl_call("GET", "/healthcheck", srv=srv).status, 204)


if __name__ == "__main__":
    skdtest.main()
