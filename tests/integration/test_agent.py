#!/usr/bin/env python3
"""The instance agent (sk prep-dev, check, mount, umount, takeown, automount,
chk-pubkey) against a real skd (skdtest.KeyStack: SoftHSM, skd init, a store
with two tenants) and real libcryptsetup on sparse 32 MiB file images.

Independent checks use the stock tools: `cryptsetup luksDump
--dump-json-metadata` for the header and the token, `openssl dgst` for the
blob's signature, and the test's own decrypt-secret call (curl from the
instance's address, an openssl RSA key) for the secret, which must open the
keyslot with `cryptsetup open --test-passphrase --key-file=-`. Every refusal
must leave the image byte for byte as it was (SHA-256 before and after).

Where device-mapper works (root and /dev/mapper/control), one test mounts a
volume and writes a file; elsewhere it is skipped with the reason."""

import base64
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import skdtest
from skdtest import KeyStack, curl, run

SK = os.environ.get("SK") or os.path.join(skdtest.ROOT, "build", "sk")

TENANT, ACCOUNT = "vpc-0123456789abcdef0", "111122223333"
I1, IP1 = "i-0123456789abcdef0", "127.0.0.1"
I2, IP2 = "i-0fedcba9876543210", "127.0.0.2"
OTHER_TENANT, OTHER_I, OTHER_IP = "vpc-66666666666666666", "i-06666666666666666", "127.0.0.6"
MIB = 1 << 20
IMAGE_SIZE = 32 * MIB
# Quicker one-time RSA keys and a tiny argon2 memory cost: tests only.
AGENT_ENV = {"SK_RSA_BITS": "3072", "SK_PBKDF_MEMORY_KIB": "32"}
BAD_BLOB = "Wrapped secret and/or context are incorrect"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def openssl(*args, input=None):
    p = run(["openssl"] + list(args), input=input)
    if p.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p.stdout


class FakeImds:
    """A metadata service that speaks IMDSv2 only: PUT /latest/api/token with
    the TTL header gives a token; every GET needs it (else 401)."""

    TOKEN = "AQAEAFake-imds-token=="

    def __init__(self, instance_id, vpc_id=None, v2=True):
        self.requests = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status, body=b""):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                owner.requests.append(("PUT", self.path, dict(self.headers)))
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                if not v2:
                    self.answer(405)
                elif self.path != "/latest/api/token" or not ttl or not ttl.isdigit():
                    self.answer(400)
                else:
                    self.answer(200, owner.TOKEN.encode())

            def do_GET(self):
                owner.requests.append(("GET", self.path, dict(self.headers)))
                if self.headers.get("X-aws-ec2-metadata-token") != owner.TOKEN:
                    return self.answer(401)
                mac = "0e:11:22:33:44:55"
                values = {"/latest/meta-data/instance-id": instance_id, "/latest/meta-data/mac": mac}
                if vpc_id:
                    values["/latest/meta-data/network/interfaces/macs/%s/vpc-id" % mac] = vpc_id
                if self.path in values:
                    self.answer(200, values[self.path].encode())
                else:
                    self.answer(404)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class AgentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        tmp = tempfile.mkdtemp(prefix="skagent-rsa-")
        try:  # the test's own RSA key (for its decrypt-secret calls), made while the token is set up
            rsa = subprocess.Popen(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072",
                                    "-out", os.path.join(tmp, "rsa.pem")], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
            cls.stack = KeyStack(skdtest.SKD, prefix="skagent-")
            cls.addClassCleanup(cls.stack.close)
            cls.stack.add_tenant(TENANT, ACCOUNT, "%s/32,%s/32" % (IP1, IP2), [(I1, IP1), (I2, IP2)])
            cls.stack.add_tenant(OTHER_TENANT, ACCOUNT, OTHER_IP + "/32", [(OTHER_I, OTHER_IP)])
            _, err = rsa.communicate(timeout=120)
            if rsa.returncode != 0:
                raise AssertionError("openssl genpkey: %r" % err)
            cls.rsa_pem = os.path.join(cls.stack.dir, "rsa.pem")
            shutil.move(os.path.join(tmp, "rsa.pem"), cls.rsa_pem)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        cls.rsa_b64 = base64.b64encode(openssl("pkey", "-in", cls.rsa_pem, "-pubout", "-outform", "DER")).decode()
        cls.make_tls()
        cls.srv = cls.stack.server(tls=(cls.tls_cert, cls.tls_key))
        cls.addClassCleanup(cls.srv.__exit__, None, None, None)
        cls.api_url = "http://127.0.0.1:%d/v1" % cls.srv.port
        cls.conf = cls.config("conf", tenant=TENANT)
        cls.conf_other = cls.config("conf-other", tenant=OTHER_TENANT)
        cls.conf_notenant = cls.config("conf-notenant")
        wrong = os.path.join(cls.stack.dir, "wrong.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", wrong)
        cls.conf_wrong = cls.config("conf-wrong", tenant=TENANT, pub=openssl("pkey", "-in", wrong, "-pubout"))
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            down = s.getsockname()[1]
        cls.conf_down = cls.config("conf-down", tenant=TENANT, url="http://127.0.0.1:%d/v1" % down)
        cls.dm = cls.dm_works()

    @classmethod
    def make_tls(cls):
        """A CA (tls_ca) and a certificate for 127.0.0.1 signed by it, for skd's TLS listener."""
        d = os.path.join(cls.stack.dir, "tls")
        os.mkdir(d)
        cls.tls_ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
        cls.tls_cert, cls.tls_key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        csr, ext = os.path.join(d, "cert.csr"), os.path.join(d, "ext.cnf")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", "-new", *ec, "-keyout", ca_key, "-out", cls.tls_ca, "-subj", "/CN=sk agent test CA",
                "-days", "2")
        openssl("req", "-new", *ec, "-keyout", cls.tls_key, "-out", csr, "-subj", "/CN=127.0.0.1")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        openssl("x509", "-req", "-in", csr, "-CA", cls.tls_ca, "-CAkey", ca_key, "-set_serial", "1", "-days", "2",
                "-extfile", ext, "-out", cls.tls_cert)

    @staticmethod
    def dm_works():
        """Root and a device-mapper driver behind /dev/mapper/control (the node
        may exist without one: libdevmapper makes it, opening fails then)."""
        if os.geteuid() != 0:
            return False
        try:
            os.close(os.open("/dev/mapper/control", os.O_RDWR))
            return True
        except OSError:
            return False

    @classmethod
    def config(cls, name, tenant=None, url=None, pub=None, **files):
        """A configuration directory as /etc/sk: api_url, api_public_key.pem (skd's key unless pub), tenant."""
        d = os.path.join(cls.stack.dir, name)
        os.makedirs(d)
        with open(os.path.join(d, "api_url"), "w") as f:
            f.write((url or cls.api_url) + "\n")
        if pub is None:
            with open(cls.stack.pub_pem, "rb") as f:
                pub = f.read()
        with open(os.path.join(d, "api_public_key.pem"), "wb") as f:
            f.write(pub)
        if tenant:
            files["tenant"] = tenant + "\n"
        for k, v in files.items():
            with open(os.path.join(d, k), "w") as f:
                f.write(v)
        return d

    # -- running sk

    def sk(self, *args, conf=None, instance=I1, bind=None, env=None, want=None, argv0=None, timeout=120):
        """sk ARGS --config-dir conf [--instance-id] [--bind-address]; checks
        the exit status (want) and that no sanitizer spoke."""
        cmd = list(args) + ["--config-dir", conf or self.conf]
        if instance:
            cmd += ["--instance-id", instance]
        if bind:
            cmd += ["--bind-address", bind]
        return self.run_sk(cmd, env=env, want=want, argv0=argv0, timeout=timeout)

    def run_sk(self, cmd, env=None, want=None, argv0=None, prefix=(), timeout=120):
        full_env = skdtest.sanitizer_env(dict(AGENT_ENV, **(env or {})))
        p = subprocess.run(list(prefix) + [argv0 or SK] + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=full_env, timeout=timeout)
        p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        reports = [m for m in skdtest.SANITIZER_MARKERS if m in p.err]
        self.assertEqual(reports, [], "sanitizer report from sk %s:\n%s" % (" ".join(cmd), p.err[-4000:]))
        if want is not None:
            self.assertEqual(p.returncode, want, "sk %s -> %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(cmd), p.returncode, p.out, p.err))
        return p

    def image(self, name="vol.img", size=IMAGE_SIZE):
        path = self.stack.tmp(name)
        with open(path, "wb") as f:
            f.truncate(size)
        return path

    def prepared(self, conf=None, instance=I1, bind=None):
        """A fresh image made an sk volume by instance (from its address bind)."""
        img = self.image()
        self.sk("prep-dev", "-f", "ext4", img, conf=conf, instance=instance, bind=bind, want=0)
        return img

    def copy(self, path):
        out = self.stack.tmp("copy.img")
        subprocess.run(["cp", "--sparse=always", path, out], check=True)
        return out

    # -- looking at a volume with the stock tools

    def dump(self, img):
        p = run(["cryptsetup", "luksDump", "--dump-json-metadata", img])
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def token(self, img):
        tokens = [(k, t) for k, t in self.dump(img)["tokens"].items() if t["type"] == "sk"]
        self.assertEqual(len(tokens), 1, tokens)
        return tokens[0]

    def luks_uuid(self, img):
        p = run(["cryptsetup", "luksUUID", img])
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode().strip()

    def set_token(self, img, token_id, token):
        """Replaces token token_id with the JSON object token (cryptsetup token import)."""
        p = run(["cryptsetup", "token", "remove", "--token-id", str(token_id), img])
        self.assertEqual(p.returncode, 0, p.stderr)
        p = run(["cryptsetup", "token", "import", "--token-id", str(token_id), "--json-file", "-", img],
                input=json.dumps(token).encode())
        self.assertEqual(p.returncode, 0, p.stderr)

    def released_secret(self, blob_b64, uuid, instance=I1, iface=IP1):
        """The test's own decrypt-secret call as instance: (HTTP status, the 32 bytes or None)."""
        body = self.stack.write("body.json", json.dumps({"encrypted_secret": blob_b64, "rsa_wrapping_key":
                                                         self.rsa_b64, "volume_uuid": uuid}).encode())
        p = curl("-s", "-w", "\n%{http_code}", "--interface", iface, "-H", "Content-Type: application/json",
                 "--data-binary", "@" + body, "%s/encryption/%s/decrypt-secret" % (self.api_url, instance))
        text, _, status = p.stdout.decode().rpartition("\n")
        if status != "200":
            return int(status), json.loads(text).get("message")
        obj = json.loads(text)
        md = {"RSA-OAEP-SHA1": "sha1", "RSA-OAEP-SHA256": "sha256"}[obj["wrapped_secret_algorithm"]]
        secret = openssl("pkeyutl", "-decrypt", "-inkey", self.rsa_pem, "-in",
                         self.stack.write("wrapped", base64.b64decode(obj["wrapped_secret"])), "-pkeyopt",
                         "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:" + md, "-pkeyopt", "rsa_mgf1_md:" + md)
        self.assertEqual(len(secret), 32)
        return 200, secret

    def opens(self, img, secret):
        """Whether secret opens a keyslot of img (cryptsetup reads it from a pipe)."""
        p = run(["cryptsetup", "open", "--test-passphrase", "--key-file=-", img], input=secret)
        return p.returncode == 0

    def assert_steps(self, p):
        """Progress lines end in OK, the last one says Success; no NOK."""
        lines = p.out.splitlines()
        self.assertTrue(lines and lines[-1].startswith("Success"), p.out)
        self.assertNotIn("NOK", p.out)
        self.assertTrue(any(l.endswith("OK") for l in lines), p.out)

    def assert_refused(self, p, code, *words):
        """A failure with exit code, one error line on stderr holding words."""
        self.assertEqual(p.returncode, code, "stdout:\n%s\nstderr:\n%s" % (p.out, p.err))
        lines = [l for l in p.err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, p.err)
        self.assertTrue(lines[0].startswith("sk "), lines)
        for w in words:
            self.assertIn(w, lines[0])

    # -- prep-dev and check

    def test_prep_dev_writes_luks2_and_token(self):
        img = self.image()
        p = self.sk("prep-dev", "-f", "ext4", img, want=0)
        self.assert_steps(p)
        for step in ("Asking the key API for a new secret", "Verifying the signature of the encrypted secret",
                     "Verifying the signature of the wrapped secret", "Unwrapping the secret (RSA-OAEP-SHA",
                     "Creating the LUKS2 container", "Checking that the secret opens the volume's keyslot"):
            self.assertIn(step, p.out)
        if not self.dm:
            self.assertIn("No device-mapper here", p.out)
        meta = self.dump(img)
        uuid = self.luks_uuid(img)
        # Pinned parameters: aes-xts-plain64 with a 512-bit key, argon2id, one keyslot.
        self.assertEqual(list(meta["keyslots"]), ["0"])
        slot = meta["keyslots"]["0"]
        self.assertEqual((slot["type"], slot["key_size"], slot["kdf"]["type"]), ("luks2", 64, "argon2id"))
        self.assertEqual(meta["segments"]["0"]["encryption"], "aes-xts-plain64")
        self.assertEqual(run(["blkid", "-o", "value", "-s", "LABEL", img]).stdout.strip(), b"sk")
        # The token: the stock tool sees it, with every field.
        _, tok = self.token(img)
        self.assertEqual(tok["keyslots"], ["0"])
        self.assertEqual(tok["volume_uuid"], uuid)
        self.assertEqual(tok["instance_id"], I1)
        self.assertEqual(tok["tenant"], TENANT)
        self.assertEqual(tok["history"], [])
        self.assertEqual(tok["sk_version"], 1)
        der = openssl("pkey", "-pubin", "-in", self.stack.pub_pem, "-outform", "DER")
        self.assertEqual(tok["api_key_fingerprint"], hashlib.sha256(der).hexdigest())
        blob = base64.b64decode(tok["encrypted_secret"])
        p = run(["openssl", "dgst", "-sha256", "-verify", self.stack.pub_pem, "-signature",
                 self.stack.write("sig", base64.b64decode(tok["encrypted_secret_signature"])),
                 self.stack.write("blob", blob)])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # The released secret opens the keyslot (cryptsetup, key from a pipe); another does not.
        status, secret = self.released_secret(tok["encrypted_secret"], uuid)
        self.assertEqual(status, 200, secret)
        self.assertTrue(self.opens(img, secret))
        self.assertFalse(self.opens(img, os.urandom(32)))
        # sk check: the agent's own way, without mounting; the image is not written.
        before = sha256_file(img)
        p = self.sk("check", img, want=0)
        self.assert_steps(p)
        self.assertIn("Asking the key API to decrypt the secret", p.out)
        self.assertEqual(sha256_file(img), before)

    def test_prep_dev_refuses_data(self):
        cases = []
        img = self.image()  # a byte in the first MiB
        with open(img, "r+b") as f:
            f.seek(4096)
            f.write(b"precious")
        cases.append((img, "first or last MiB"))
        img = self.image()  # a byte in the last MiB
        with open(img, "r+b") as f:
            f.seek(IMAGE_SIZE - 10)
            f.write(b"x")
        cases.append((img, "first or last MiB"))
        img = self.image()  # a filesystem
        subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True, stdout=subprocess.DEVNULL)
        cases.append((img, "holds ext4"))
        cases.append((self.prepared(), "holds crypto_LUKS"))
        for img, why in cases:
            with self.subTest(why=why):
                before = sha256_file(img)
                p = self.sk("prep-dev", "-f", "ext4", img)
                self.assert_refused(p, 4, "is not empty", why, "--delete-all-existing-data")
                self.assertEqual(sha256_file(img), before)
        # Told to erase: a new volume (a new UUID) replaces the old one.
        img = cases[-1][0]
        old = self.luks_uuid(img)
        p = self.sk("prep-dev", "-f", "ext4", "--delete-all-existing-data", img, want=0)
        self.assertIn("Erasing the existing data signatures", p.out)
        self.assertNotEqual(self.luks_uuid(img), old)
        self.sk("check", img, want=0)
        img = cases[2][0]  # the ext4 one
        self.sk("prep-dev", "-f", "ext4", "--delete-all-existing-data", img, want=0)
        self.assertEqual(run(["blkid", "-o", "value", "-s", "TYPE", img]).stdout.strip(), b"crypto_LUKS")
        # Too small for a LUKS2 header and data.
        img = self.image(size=8 * MIB)
        p = self.sk("prep-dev", img)
        self.assert_refused(p, 4, "too small")

    def test_not_an_sk_volume(self):
        img = self.image()
        before = sha256_file(img)
        for cmd in (["check", img], ["takeown", "-i", I2, img]):
            with self.subTest(cmd=cmd[0]):
                self.assert_refused(self.sk(*cmd), 4, "not an sk volume")
        # LUKS2 without our token (made with the cryptsetup CLI).
        plain = self.image()
        p = run(["cryptsetup", "luksFormat", "-q", "--type", "luks2", "--pbkdf-memory", "32", "--key-file=-", plain],
                input=b"passphrase")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_refused(self.sk("check", plain), 4, "without an sk token")
        self.assertEqual(sha256_file(img), before)

    # -- takeown

    def test_takeown_from_second_instance(self):
        img = self.prepared()
        uuid = self.luks_uuid(img)
        tid, old = self.token(img)
        # The second instance cannot unlock a volume that is not its own.
        p = self.sk("check", img, instance=I2, bind=IP2)
        self.assert_refused(p, 1, "belongs to instance %s" % I1, "sk takeown -i %s" % I1)
        # Naming the wrong source changes nothing.
        before = sha256_file(img)
        self.assert_refused(self.sk("takeown", "-i", "i-0aaaaaaaaaaaaaaaa", img, instance=I2, bind=IP2), 1,
                            "belongs to instance %s" % I1)
        self.assertEqual(sha256_file(img), before)
        p = self.sk("takeown", "-i", I1, img, instance=I2, bind=IP2, want=0)
        self.assert_steps(p)
        for step in ("Asking the key API to convert the secret", "Verifying the signature of the new encrypted secret",
                     "Checking that the secret opens the volume's keyslot", "Storing the new encrypted secret"):
            self.assertIn(step, p.out)
        tid2, new = self.token(img)
        self.assertEqual(tid2, tid)
        self.assertEqual(new["instance_id"], I2)
        self.assertNotEqual(new["encrypted_secret"], old["encrypted_secret"])
        self.assertEqual(len(new["history"]), 1)
        h = new["history"][0]
        self.assertEqual((h["encrypted_secret"], h["encrypted_secret_signature"], h["instance_id"]),
                         (old["encrypted_secret"], old["encrypted_secret_signature"], I1))
        self.assertRegex(h["replaced_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(self.luks_uuid(img), uuid)
        # The second instance now unlocks; the first is told who owns it.
        self.sk("check", img, instance=I2, bind=IP2, want=0)
        self.assert_refused(self.sk("check", img), 1, "belongs to instance %s" % I2)
        # On the server: the new blob is the second instance's only; the old one
        # (in the history) still opens for the first, as in the original.
        status, secret = self.released_secret(new["encrypted_secret"], uuid, instance=I2, iface=IP2)
        self.assertEqual(status, 200)
        self.assertTrue(self.opens(img, secret))
        self.assertEqual(self.released_secret(new["encrypted_secret"], uuid), (400, BAD_BLOB))
        status, old_secret = self.released_secret(h["encrypted_secret"], uuid)
        self.assertEqual((status, old_secret), (200, secret))
        # Again: nothing to do. And back to the first instance: two history entries.
        p = self.sk("takeown", "-i", I1, img, instance=I2, bind=IP2, want=0)
        self.assertIn("nothing to do", p.out)
        self.sk("takeown", "-i", I2, img, want=0)
        _, back = self.token(img)
        self.assertEqual([e["instance_id"] for e in back["history"]], [I1, I2])
        self.sk("check", img, want=0)

    # -- refusals that leave the volume untouched

    def test_wrong_pinned_key(self):
        img = self.image()
        before = sha256_file(img)
        p = self.sk("prep-dev", "-f", "ext4", img, conf=self.conf_wrong)
        self.assert_refused(p, 1, "CRITICAL", "not signed by the pinned API key")
        self.assertIn("Asking the key API for a new secret", p.out)
        self.assertNotIn("Creating the LUKS2 container", p.out)
        self.assertEqual(sha256_file(img), before)
        good = self.prepared()
        before = sha256_file(good)
        for cmd in (["check", good], ["takeown", "-i", I1, good]):
            with self.subTest(cmd=cmd[0]):
                inst = I2 if cmd[0] == "takeown" else I1
                p = self.sk(*cmd, conf=self.conf_wrong, instance=inst, bind=IP2 if inst == I2 else None)
                self.assert_refused(p, 1, "CRITICAL", "another API signing key")
                self.assertEqual(sha256_file(good), before)
        # A token that claims the wrong key's fingerprint is refused by the signature.
        tid, tok = self.token(good)
        bad = self.copy(good)
        wrong_der = openssl("pkey", "-pubin", "-in", os.path.join(self.conf_wrong, "api_public_key.pem"),
                            "-outform", "DER")
        self.set_token(bad, tid, dict(tok, api_key_fingerprint=hashlib.sha256(wrong_der).hexdigest()))
        before = sha256_file(bad)
        self.assert_refused(self.sk("check", bad, conf=self.conf_wrong), 1, "CRITICAL", "not signed")
        self.assertEqual(sha256_file(bad), before)

    def test_chk_pubkey(self):
        p = self.sk("chk-pubkey", instance=None, want=0)
        self.assertIn("Keys are identical", p.out)
        der = openssl("pkey", "-pubin", "-in", self.stack.pub_pem, "-outform", "DER")
        self.assertIn(hashlib.sha256(der).hexdigest(), p.out)
        p = self.sk("chk-pubkey", instance=None, conf=self.conf_wrong)
        self.assert_refused(p, 1, "CRITICAL", "differ", hashlib.sha256(der).hexdigest())
        p = self.sk("chk-pubkey", instance=None, conf=self.conf_down)
        self.assert_refused(p, 1, "cannot reach the key API")
        # From the second instance's address too (any caller may read the key).
        self.sk("chk-pubkey", instance=None, bind=IP2, want=0)

    def test_https_with_ca_bundle(self):
        url = "https://127.0.0.1:%d/v1" % self.srv.tls_port
        with open(self.tls_ca) as f:
            conf = self.config("conf-tls", tenant=TENANT, url=url, **{"ca.pem": f.read()})
        self.assertIn("Keys are identical", self.sk("chk-pubkey", conf=conf, instance=None, want=0).out)
        img = self.prepared(conf=conf)
        self.sk("check", img, conf=conf, want=0)
        self.sk("takeown", "-i", I1, img, conf=conf, instance=I2, bind=IP2, want=0)
        # Without the CA bundle the certificate is not trusted: refused at once (not a network error).
        untrusted = self.config("conf-tls-untrusted", tenant=TENANT, url=url)
        p = self.sk("chk-pubkey", conf=untrusted, instance=None)
        self.assert_refused(p, 1, "cannot reach the key API", "after 1 try")
        self.assertRegex(p.err, "(?i)certificate")
        before = sha256_file(img)
        self.assert_refused(self.sk("check", img, conf=untrusted, instance=I2, bind=IP2), 1, "certificate")
        self.assertEqual(sha256_file(img), before)

    def test_tampered_token(self):
        good = self.prepared()
        other = self.prepared()  # another volume of the same instance: validly signed, wrong binding
        tid, tok = self.token(good)
        _, tok_other = self.token(other)

        def flip(b64, i):
            raw = bytearray(base64.b64decode(b64))
            raw[i % len(raw)] ^= 0x01
            return base64.b64encode(bytes(raw)).decode()

        cases = [
            ("blob byte", dict(tok, encrypted_secret=flip(tok["encrypted_secret"], 20)), 1, ["CRITICAL", "not signed"]),
            ("signature byte", dict(tok, encrypted_secret_signature=flip(tok["encrypted_secret_signature"], 30)), 1,
             ["CRITICAL", "not signed"]),
            ("volume_uuid", dict(tok, volume_uuid=tok_other["volume_uuid"]), 1, ["names volume"]),
            ("another volume's blob", dict(tok, encrypted_secret=tok_other["encrypted_secret"],
                                           encrypted_secret_signature=tok_other["encrypted_secret_signature"]),
             1, ["the key API refused: HTTP 400", BAD_BLOB]),
            ("history not a list", dict(tok, history={}), 1, ["damaged", "history"]),
            ("bad base64", dict(tok, encrypted_secret="!!!"), 1, ["damaged", "encrypted_secret"]),
            ("unknown version", dict(tok, sk_version=9), 1, ["damaged", "sk_version"]),
        ]
        for name, token, code, words in cases:
            with self.subTest(case=name):
                img = self.copy(good)
                self.set_token(img, tid, token)
                before = sha256_file(img)
                self.assert_refused(self.sk("check", img), code, *words)
                self.assertEqual(sha256_file(img), before)
                if code == 1 and "CRITICAL" in words:  # takeown refuses it as well, writing nothing
                    self.assert_refused(self.sk("takeown", "-i", I1, img, instance=I2, bind=IP2), 1, "CRITICAL")
                    self.assertEqual(sha256_file(img), before)
        self.sk("check", good, want=0)  # the original is fine

    def test_server_down(self):
        good = self.prepared()
        for cmd, img, inst in ((["prep-dev", "-f", "ext4"], self.image(), I1), (["check"], good, I1),
                               (["takeown", "-i", I1], good, I2)):
            with self.subTest(cmd=cmd[0]):
                before = sha256_file(img)
                start = time.monotonic()
                p = self.sk(*cmd, img, conf=self.conf_down, instance=inst)
                took = time.monotonic() - start
                self.assert_refused(p, 1, "cannot reach the key API", "after 4 tries")
                self.assertGreater(took, 3.0)  # backoff 0.5 + 1 + 2 s between the tries
                self.assertEqual(sha256_file(img), before)

    def test_other_tenants_volume(self):
        img = self.prepared(conf=self.conf_other, instance=OTHER_I, bind=OTHER_IP)
        tid, tok = self.token(img)
        self.assertEqual(tok["tenant"], OTHER_TENANT)
        self.sk("check", img, conf=self.conf_other, instance=OTHER_I, bind=OTHER_IP, want=0)
        before = sha256_file(img)
        self.assert_refused(self.sk("check", img), 1, "belongs to tenant %s" % OTHER_TENANT, TENANT)
        self.assert_refused(self.sk("takeown", "-i", OTHER_I, img), 1, "belongs to tenant")
        # The hints are unsigned: rewritten to ours, the key service refuses all the same
        # (once our tenant has a key: before, it says it has none).
        self.prepared()
        self.set_token(img, tid, dict(tok, tenant=TENANT, instance_id=I1))
        before = sha256_file(img)
        self.assert_refused(self.sk("check", img), 1, "the key API refused: HTTP 400", BAD_BLOB)
        self.set_token(img, tid, dict(tok, tenant=TENANT))
        before = sha256_file(img)
        self.assert_refused(self.sk("takeown", "-i", OTHER_I, img), 1, "the key API refused: HTTP 400")
        self.assertEqual(sha256_file(img), before)
        # Without a tenant of its own, the instance check still stops it.
        self.set_token(img, tid, tok)
        self.assert_refused(self.sk("check", img, conf=self.conf_notenant), 1, "belongs to instance %s" % OTHER_I)

    # -- the metadata service

    def test_imds_v2(self):
        img = self.prepared()
        imds = FakeImds(I1, vpc_id=TENANT)
        self.addCleanup(imds.close)
        p = self.sk("check", img, instance=None, env={"SK_IMDS_URL": imds.url}, want=0)
        self.assertIn("Asking the metadata service", p.out)
        methods = [(m, path) for m, path, _ in imds.requests]
        self.assertEqual(methods[0], ("PUT", "/latest/api/token"))
        self.assertIn(("GET", "/latest/meta-data/instance-id"), methods)
        for m, path, headers in imds.requests:
            if m == "GET":
                self.assertEqual(headers.get("X-aws-ec2-metadata-token"), FakeImds.TOKEN, path)
        # imds_url in the configuration; the tenant learnt from the metadata service.
        conf = self.config("conf-imds", imds_url=imds.url + "\n")
        img2 = self.image()
        self.sk("prep-dev", "-f", "ext4", img2, conf=conf, instance=None, want=0)
        _, tok = self.token(img2)
        self.assertEqual((tok["instance_id"], tok["tenant"]), (I1, TENANT))
        # IMDSv1 only (no token): refused, with the way out.
        v1 = FakeImds(I1, v2=False)
        self.addCleanup(v1.close)
        p = self.sk("check", img, instance=None, env={"SK_IMDS_URL": v1.url})
        self.assert_refused(p, 1, "metadata service", "no session token", "--instance-id")
        self.assertFalse([r for r in v1.requests if r[0] == "GET"])
        # Nothing listening: a clear error after a few quick tries.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        p = self.sk("check", img, instance=None, env={"SK_IMDS_URL": "http://127.0.0.1:%d" % port})
        self.assert_refused(p, 1, "metadata service", "after 3 tries")

    # -- automount, umount, mount

    def test_automount(self):
        conf = self.config("conf-auto", tenant=TENANT)
        self.assertIn("No volumes", self.sk("automount", "--check", conf=conf, want=0).out)
        img = self.image()
        mnt = os.path.join(self.stack.dir, "mnt-auto")
        p = self.sk("prep-dev", "-f", "ext4", "-a", mnt, img, conf=conf, want=0)
        self.assertIn("Adding %s to the automount list" % img, p.out)
        with open(os.path.join(conf, "automount.conf")) as f:
            self.assertEqual(f.read(), "%s:%s\n" % (img, mnt))
        p = self.sk("automount", "--check", conf=conf, want=0)
        self.assertIn("Invoking: sk check %s" % img, p.out)
        self.assertIn("Success: 1 volume checked", p.out)
        # A second volume that is not this instance's: reported, the others still done.
        foreign = self.prepared(instance=I2, bind=IP2)
        with open(os.path.join(conf, "automount.conf"), "a") as f:
            f.write("# a comment\n%s:/mnt/foreign\n" % foreign)
        p = self.sk("automount", "--check", conf=conf)
        self.assertEqual(p.returncode, 1, p.out + p.err)
        self.assertEqual(p.out.count("Invoking: sk check"), 2)
        self.assertIn("belongs to instance %s" % I2, p.err)
        self.assertIn("1 of 2 volumes failed", p.err)
        # Re-registering a device replaces its line.
        self.sk("prep-dev", "-f", "ext4", "-a", mnt + "2", "--delete-all-existing-data", img, conf=conf, want=0)
        with open(os.path.join(conf, "automount.conf")) as f:
            self.assertEqual(f.read(), "# a comment\n%s:/mnt/foreign\n%s:%s2\n" % (foreign, img, mnt))
        with open(os.path.join(conf, "automount.conf"), "w") as f:
            f.write("not a line\n")
        self.assert_refused(self.sk("automount", "--check", conf=conf), 1, "automount.conf", "line 1")
        if not self.dm:
            with open(os.path.join(conf, "automount.conf"), "w") as f:
                f.write("%s:%s\n" % (img, mnt))
            self.assert_refused(self.sk("automount", conf=conf), 1, "device-mapper is not available")
            self.assert_refused(self.sk("mount", img, mnt), 1, "device-mapper is not available", "sk check")

    def test_mount_and_write(self):
        if not self.dm:
            reason = ("device-mapper is not available here (%s)" %
                      ("not root" if os.geteuid() != 0 else "/dev/mapper/control missing or without a driver"))
            print("\nskipped: %s" % reason)
            self.skipTest(reason)
        img = self.image(size=64 * MIB)
        mnt = os.path.join(self.stack.dir, "mnt")
        p = self.sk("prep-dev", "-f", "ext4", "-a", mnt, img, want=0)
        self.assertIn("Mounting the encrypted volume", p.out)
        self.addCleanup(lambda: run([SK, "umount", mnt]))
        with open(os.path.join(mnt, "secret.txt"), "w") as f:
            f.write("a super critically important piece of information\n")
        self.sk("umount", mnt, instance=None, want=0)
        self.assertFalse(os.path.exists(os.path.join(mnt, "secret.txt")))
        self.assert_refused(self.sk("umount", mnt, instance=None), 4, "nothing is mounted")
        self.sk("mount", img, mnt, want=0)
        with open(os.path.join(mnt, "secret.txt")) as f:
            self.assertIn("critically important", f.read())
        self.assert_refused(self.sk("mount", img, mnt + "-again"), 4, "already unlocked")
        p = self.sk("automount", want=0)
        self.assertIn("already mounted", p.out)
        self.sk("umount", mnt, instance=None, want=0)
        with open(img, "rb") as f:  # encrypted at rest
            self.assertNotIn(b"critically important", f.read())

    # -- command line

    def test_usage_and_exit_codes(self):
        img = self.image()
        for args in (["prep-dev"], ["prep-dev", img, img], ["prep-dev", "-f", "btrfs", img], ["prep-dev", "--bogus", img],
                     ["prep-dev", "-a", "relative", img], ["mount", img], ["check"], ["umount"], ["takeown", img],
                     ["takeown", "-i", "i-XYZ", img], ["automount", "extra"], ["chk-pubkey", "extra"],
                     ["prep-dev", "-f"], ["check", os.path.join(self.stack.dir, "missing.img")],
                     ["check", self.stack.dir]):
            with self.subTest(args=args):
                p = self.run_sk(args)
                self.assert_refused(p, 2)
        p = self.sk("check", img, instance="i-BAD")
        self.assert_refused(p, 2, "--instance-id")
        for cmd in ("prep-dev", "mount", "check", "umount", "takeown", "automount", "chk-pubkey"):
            with self.subTest(help=cmd):
                p = self.run_sk([cmd, "--help"], want=0)
                self.assertIn("Usage: sk %s" % cmd, p.out)
                self.assertIn("Exit status", p.out)
        p = self.run_sk(["--help"], want=0)
        for cmd in ("prep-dev", "mount", "umount", "takeown", "automount", "chk-pubkey"):
            self.assertIn("sk %s" % cmd, p.out)
        # umount of what is not an sk volume
        self.assert_refused(self.run_sk(["umount", self.stack.dir]), 4, "nothing is mounted")
        self.assert_refused(self.run_sk(["umount", "/"]), 4, "not an sk volume")

    def test_compat_links(self):
        d = self.stack.tmp("bin")
        os.mkdir(d)
        for name in ("sk-chk-pubkey", "sk-prep-dev", "sk-bogus"):
            os.symlink(os.path.abspath(SK), os.path.join(d, name))
        p = self.run_sk(["--config-dir", self.conf], argv0=os.path.join(d, "sk-chk-pubkey"), want=0)
        self.assertIn("Keys are identical", p.out)
        p = self.run_sk(["--help"], argv0=os.path.join(d, "sk-prep-dev"), want=0)
        self.assertIn("Usage: sk prep-dev", p.out)
        self.assertEqual(self.run_sk(["--help"], argv0=os.path.join(d, "sk-bogus")).returncode, 2)

    def test_not_root(self):
        if os.geteuid() != 0:
            self.skipTest("not root: the exit status 5 checks need root to drop to another user")
        setpriv = shutil.which("setpriv")
        if not setpriv:
            print("\nskipped: no setpriv to run sk as another user")
            self.skipTest("no setpriv")
        probe = run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", SK, "--help"])
        if probe.returncode != 0:
            reason = "sk cannot run as uid 65534 here: %s" % probe.stderr.decode(errors="replace").strip()
            print("\nskipped: " + reason)
            self.skipTest(reason)
        img = self.image()
        os.chmod(img, 0o666)
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
        for args in (["prep-dev", img], ["mount", img, "/mnt"], ["check", img], ["umount", "/mnt"],
                     ["takeown", "-i", I1, img], ["automount"]):
            with self.subTest(args=args[0]):
                p = self.run_sk(args + ["--instance-id", I1], prefix=prefix)
                self.assert_refused(p, 5, "must be run as root")


if __name__ == "__main__":
    skdtest.main()
