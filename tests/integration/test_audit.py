"""Audit trail end to end: records verified with stock tools (jq, openssl),
answers matched to their records, crash safety under repeated SIGKILL,
and an unwritable or full audit directory failing calls without losing
numbers. Needs root for chattr and tmpfs (as CI runs)."""
import base64
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import unittest

import skdtest
from skdtest import KeyStack, run

SKD = os.environ.get("SKD") or os.path.join(os.path.dirname(__file__), "../../build/skd")
SK = os.environ.get("SK") or os.path.join(os.path.dirname(SKD), "sk")
TENANT = "vpc-0123456789abcdef0"
INSTANCE = "i-0123456789abcdef0"
VOL = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
PIN = "1234"
IS_ROOT = os.geteuid() == 0


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


class AuditTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        keygen = subprocess.Popen(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        cls.stack = KeyStack(SKD, pin=PIN, prefix="skdaudit-")
        cls.addClassCleanup(cls.stack.close)
        cls.audit = os.path.join(cls.stack.dir, "audit")
        cls.tenant_audit = os.path.join(cls.stack.dir, "tenant-audit")
        cls.stack.add_tenant(TENANT, "111122223333", "127.0.0.1/32", [(INSTANCE, "127.0.0.1")],
                             audit_dir=cls.tenant_audit)
        pem, _ = keygen.communicate(timeout=120)
        der = run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem).stdout
        cls.rsa_b64 = base64.b64encode(der).decode()

    def server(self, audit_dir=None, **kw):
        return self.stack.server({"audit": {"dir": audit_dir or self.audit}, "server": {"worker_threads": 2}}, **kw)

    def call(self, conn, op, body):
        conn.request("POST", "/v1/encryption/%s/%s" % (INSTANCE, op), json.dumps(body),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())

    def generate_body(self):
        return {"rsa_wrapping_key": self.rsa_b64, "volume_uuid": VOL}

    def records(self, root=None):
        d = os.path.join(root or self.audit, TENANT)
        names = sorted(n for n in os.listdir(d) if n.endswith(".json")) if os.path.isdir(d) else []
        return [os.path.join(d, n) for n in names]

    def assert_contiguous(self, root=None):
        files = self.records(root)
        self.assertEqual([os.path.basename(f) for f in files],
                         ["%09d.json" % i for i in range(1, len(files) + 1)])
        return files

    def assert_sk_verify(self, root=None):
        if not os.path.exists(SK):
            self.skipTest("no sk binary at %s" % SK)
        p = run([SK, "audit", "verify", root or self.audit, "--pubkey", self.stack.pub_pem])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    # -- cases

    def test_1_stock_tools_and_answers(self):
        srv = self.server()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
            st, gen = self.call(conn, "generate-secret", self.generate_body())
            self.assertEqual(st, 200, gen)
            st, dec = self.call(conn, "decrypt-secret", dict(self.generate_body(),
                                                             encrypted_secret=gen["encrypted_secret"]))
            self.assertEqual(st, 200, dec)
            st, bad = self.call(conn, "decrypt-secret", {"volume_uuid": VOL})
            self.assertEqual(st, 400, bad)
            self.assertEqual(bad["message"], "Bad parameters")
            conn.close()
            m = srv.metrics()
            self.assertEqual(m.get("skd_audit_records_total"), 3)  # the failed call has its record too
            self.assertGreaterEqual(m.get("skd_audit_batches_total"), 1)
            self.assertEqual(m.get("skd_audit_failures_total"), 0)
        finally:
            srv.__exit__(None, None, None)
        files = self.assert_contiguous()
        self.assertGreaterEqual(len(files), 3)
        by_seq = {}
        prev = "0" * 64
        for f in files:
            # the README's recipe: jq and openssl only
            ser = run(["jq", "-cjS", "del(.signature)", f]).stdout
            sig = base64.b64decode(run(["jq", "-r", ".signature", f]).stdout)
            with open(f + ".ser", "wb") as o:
                o.write(ser)
            with open(f + ".sig", "wb") as o:
                o.write(sig)
            p = run(["openssl", "dgst", "-sha256", "-verify", self.stack.pub_pem, "-signature", f + ".sig",
                     f + ".ser"])
            os.unlink(f + ".ser")
            os.unlink(f + ".sig")
            self.assertEqual(p.stdout.strip(), b"Verified OK", f)
            rec = json.loads(open(f).read())
            self.assertEqual(rec["prev_hash"], prev, f)
            prev = sha256_hex(run(["jq", "-cjS", ".", f]).stdout)
            # the file is the canonical form itself
            self.assertEqual(open(f, "rb").read(), run(["jq", "-cjS", ".", f]).stdout + b"\n")
            by_seq[rec["vpc_op_seq_num"]] = rec
        g, d, b = by_seq[gen["audit_seq"]], by_seq[dec["audit_seq"]], by_seq[bad["audit_seq"]]
        self.assertEqual(g["call"]["name"], "generate-secret")
        self.assertEqual(g["returned"]["encrypted_secret_sha256"],
                         sha256_hex(base64.b64decode(gen["encrypted_secret"])))
        self.assertEqual(g["returned"]["wrapped_secret_sha256"], sha256_hex(base64.b64decode(gen["wrapped_secret"])))
        self.assertEqual(g["call"]["parameters"]["rsa_key_sha256"], sha256_hex(base64.b64decode(self.rsa_b64)))
        self.assertEqual(d["returned"]["wrapped_secret_sha256"], sha256_hex(base64.b64decode(dec["wrapped_secret"])))
        self.assertEqual((b["result"], b["failure_reason"]), ("Failed", "Bad parameters"))
        for r in (g, d, b):
            self.assertEqual(r["caller"], {"type": "instance", "id": INSTANCE, "ip": "127.0.0.1",
                                           "aws_account_id": "111122223333"})
            self.assertEqual(r["event_version"], 2)
        # the tenant's own directory holds the same records
        mine = self.assert_contiguous(self.tenant_audit)
        self.assertEqual([open(f, "rb").read() for f in mine], [open(f, "rb").read() for f in files])
        self.assert_sk_verify()

    def test_2_crash_safety(self):
        total, clients, kills = 2000, 4, 20
        state = {"port": None, "done": 0, "stop": False}
        lock = threading.Lock()
        answers = []  # (audit_seq, {field: sha256})
        errors = []
        # one blob to decrypt, made first
        srv = self.server()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        st, gen = self.call(conn, "generate-secret", self.generate_body())
        conn.close()
        self.assertEqual(st, 200)
        state["port"] = srv.port
        decrypt_body = dict(self.generate_body(), encrypted_secret=gen["encrypted_secret"])

        def client():
            conn = None
            while True:
                with lock:
                    if state["done"] >= total or state["stop"]:
                        return
                    port = state["port"]
                try:
                    if conn is None or conn.port != port:
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    op, body = (("generate-secret", self.generate_body()) if random.random() < 0.2
                                else ("decrypt-secret", decrypt_body))
                    st, obj = self.call(conn, op, body)
                except (OSError, http.client.HTTPException, ValueError):
                    conn = None
                    time.sleep(0.02)
                    continue
                if st == 200:
                    hashes = {k + "_sha256": sha256_hex(base64.b64decode(obj[k]))
                              for k in ("encrypted_secret", "wrapped_secret") if k in obj}
                    with lock:
                        answers.append((obj["audit_seq"], hashes))
                        state["done"] += 1
                elif st not in (500, 503):
                    with lock:
                        errors.append((st, obj))

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        try:
            for i in range(kills):
                time.sleep(random.uniform(0.05, 0.4))
                srv.signal(signal.SIGKILL)
                srv.expect_exit = None
                srv.check_log = False
                srv.__exit__(None, None, None)
                srv = self.server()
                with lock:
                    state["port"] = srv.port
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                with lock:
                    if state["done"] >= total:
                        break
                time.sleep(0.1)
        finally:
            with lock:
                state["stop"] = True
            for t in threads:
                t.join(timeout=30)
            srv.__exit__(None, None, None)
        self.assertEqual(errors, [])
        self.assertGreaterEqual(len(answers), total)
        files = self.assert_contiguous()
        records = {}
        for f in files:
            rec = json.loads(open(f).read())
            records[rec["vpc_op_seq_num"]] = rec
        for seq, hashes in answers:
            self.assertIn(seq, records, "an answered call has no record")
            for k, v in hashes.items():
                self.assertEqual(records[seq]["returned"][k], v, "record %d" % seq)
        self.assert_sk_verify()

    @unittest.skipUnless(IS_ROOT and shutil.which("chattr"), "needs root and chattr")
    def test_3_unwritable_directory(self):
        srv = self.server(check_log=False)
        d = os.path.join(self.audit, TENANT)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
            st, before = self.call(conn, "generate-secret", self.generate_body())
            self.assertEqual(st, 200)
            run(["chattr", "+i", d], check=True)
            try:
                st, obj = self.call(conn, "generate-secret", self.generate_body())
                self.assertEqual(st, 500, obj)
                self.assertEqual(set(obj), {"message"})  # nothing returned
            finally:
                run(["chattr", "-i", d], check=True)
            st, after = self.call(conn, "generate-secret", self.generate_body())
            self.assertEqual(st, 200, after)
            self.assertEqual(after["audit_seq"], before["audit_seq"] + 1)  # no gap, no reuse of a written one
            conn.close()
            m = srv.metrics()
            self.assertEqual((m.get("skd_audit_records_total"), m.get("skd_audit_failures_total")), (2, 1))
        finally:
            srv.__exit__(None, None, None)
        self.assertIn("cannot write records", srv.log())
        self.assert_contiguous()

    @unittest.skipUnless(IS_ROOT, "needs root to mount a tmpfs")
    def test_4_disk_full(self):
        small = os.path.join(self.stack.dir, "small")
        os.makedirs(small)
        if run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", small]).returncode != 0:
            self.skipTest("cannot mount a tmpfs here")
        try:
            srv = self.server(audit_dir=small, check_log=False)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
                st, before = self.call(conn, "generate-secret", self.generate_body())
                self.assertEqual(st, 200)
                filler = os.path.join(small, "filler")
                run(["dd", "if=/dev/zero", "of=" + filler, "bs=4k"])  # until the disk is full
                st, obj = self.call(conn, "generate-secret", self.generate_body())
                self.assertEqual(st, 500, obj)
                self.assertEqual(set(obj), {"message"})
                os.unlink(filler)
                st, after = self.call(conn, "generate-secret", self.generate_body())
                self.assertEqual(st, 200, after)
                self.assertEqual(after["audit_seq"], before["audit_seq"] + 1)
                conn.close()
            finally:
                srv.__exit__(None, None, None)
            self.assert_contiguous(small)
            self.assertEqual([n for n in os.listdir(os.path.join(small, TENANT)) if n.endswith(".tmp")], [])
        finally:
            run(["umount", small])

    def test_5_leftovers_of_a_crash(self):
        # What a crash can leave besides the records: the temporary name of a
        # record already renamed (the crash came before the directory sync)
        # and unfinished temporary files after the head.
        files = self.records()
        if not files:
            srv = self.server()
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
            self.assertEqual(self.call(conn, "generate-secret", self.generate_body())[0], 200)
            conn.close()
            srv.__exit__(None, None, None)
            files = self.records()
        head = files[-1]
        head_seq = int(os.path.basename(head)[:9])
        d = os.path.dirname(head)
        shutil.copyfile(head, head + ".tmp")
        with open(os.path.join(d, "%09d.json.tmp" % (head_seq + 1)), "wb") as f:
            f.write(open(head, "rb").read()[:100])  # cut short
        with open(os.path.join(d, "%09d.json.tmp" % (head_seq + 3)), "wb") as f:
            f.write(b"")
        srv = self.server()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
            st, obj = self.call(conn, "generate-secret", self.generate_body())
            self.assertEqual(st, 200, obj)
            self.assertEqual(obj["audit_seq"], head_seq + 1)
            conn.close()
        finally:
            srv.__exit__(None, None, None)
        self.assertEqual([n for n in os.listdir(d) if not n.endswith(".json")], [])
        self.assert_contiguous()
        self.assert_sk_verify()


if __name__ == "__main__":
    skdtest.main()
