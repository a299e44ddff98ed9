#!/usr/bin/env python3
"""sk audit verify (audit/FORMAT.md) on records made with stock tools only:
every record's signed bytes come from `jq -cjS 'del(.signature)'`, its file
from `jq -cjS .`, its signature from `openssl dgst -sha256 -sign` with a
P-384 key made by `openssl ecparam`. So a passing chain also shows that sk's
canonical form (jansson) is byte for byte jq's, for the restricted values
FORMAT.md allows (checked on purpose-made tricky records and random ones).

Two tenants with 50 records each; then each kind of damage fails with its
exact one-line reason: a changed value, a deleted record, two swapped
records, a record moved to another tenant, a bad signature, a broken
prev_hash, a float, an extra file, and more. Also the stock-tools recipe of
FORMAT.md, the command line (help, usage errors, exit codes)."""

import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import unittest

import skdtest
from skdtest import ROOT, run

SK = os.environ.get("SK") or os.path.join(ROOT, "build", "sk")
TA = "vpc-0123456789abcdef0"
TB = "vpc-0fedcba9876543210"
TC = "vpc-0cccccccccccccccc"
ZERO = "0" * 64
N = 50


def jq_canonical(obj, program="."):
    """jq -cjS PROGRAM of obj (given to jq in any JSON form)."""
    r = run(["jq", "-cjS", program], input=json.dumps(obj, indent=1).encode())
    assert r.returncode == 0, r.stderr
    return r.stdout


def record(tenant, seq, prev, **extra):
    rec = {
        "event_version": 2,
        "vpc_id": tenant,
        "vpc_op_seq_num": seq,
        "op_start": "2026-11-22T15:33:%02d.123456Z" % (seq % 60),
        "op_end": "2026-11-22T15:33:%02d.124900Z" % (seq % 60),
        "caller": {"type": "instance", "id": "i-0123456789abcdef0", "ip": "127.0.0.1",
                   "aws_account_id": "111122223333"},
        "call": {"name": ["generate-secret", "decrypt-secret", "convert-secret"][seq % 3],
                 "parameters": {"volume_uuid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                                "rsa_key_sha256": hashlib.sha256(b"k%d" % seq).hexdigest(),
                                "source_instance_id": None}},
        "result": "Succeed" if seq % 7 else "Failed",
        "failure_reason": None if seq % 7 else "Forbidden \"quoted\" \\ reason",
        "returned": {"encrypted_secret_sha256": None,
                     "wrapped_secret_sha256": hashlib.sha256(b"w%d" % seq).hexdigest()},
        "node": "node-1",
        "prev_hash": prev,
    }
    rec.update(extra)
    return rec


def write_signed(path, rec, key):
    """Signs rec with key the FORMAT.md way, writes its file; returns its hash (the next prev_hash)."""
    rec = dict(rec)
    rec.pop("signature", None)
    ser = jq_canonical(rec, "del(.signature)")
    r = run(["openssl", "dgst", "-sha256", "-sign", key], input=ser)
    assert r.returncode == 0, r.stderr
    rec["signature"] = base64.b64encode(r.stdout).decode()
    full = jq_canonical(rec)
    with open(path, "wb") as f:
        f.write(full + b"\n")
    return hashlib.sha256(full).hexdigest()


def rpath(root, tenant, seq):
    return os.path.join(root, tenant, "%09d.json" % seq)


def write_chain(root, tenant, records, key, prev=ZERO):
    """Writes the records (dicts without prev_hash, numbered from 1) of tenant; returns the last hash."""
    os.makedirs(os.path.join(root, tenant), exist_ok=True)
    for rec in records:
        rec = dict(rec, prev_hash=prev)
        prev = write_signed(rpath(root, tenant, rec["vpc_op_seq_num"]), rec, key)
    return prev


def random_value(rng, depth):
    kind = rng.randrange(5 if depth < 6 else 3)
    if kind == 0:
        return "".join(chr(rng.randrange(0x20, 0x7f)) for _ in range(rng.randrange(0, 12)))
    if kind == 1:
        return rng.choice([0, 1, -1, 2 ** 53 - 1, -(2 ** 53 - 1), 10 ** 15, rng.randrange(-2 ** 53 + 1, 2 ** 53)])
    if kind == 2:
        return None
    return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def random_key(rng):
    return "".join(chr(rng.randrange(0x20, 0x7f)) for _ in range(rng.randrange(0, 6)))


def tricky_values():
    """Values at the edges of FORMAT.md's restrictions."""
    printable = "".join(chr(c) for c in range(0x20, 0x7f))
    return [
        {"all": printable, "escapes": "\"\\/\"\\", "empty": "", "html": "<a href='x'>&amp;</a>"},
        {printable: 1, "": "empty key", " ": "space", "~": "tilde", "A": 1, "a": 2, "_": 3, "10": 4, "9": 5,
         "aa": 6, "a\"": 7, "a\\": 8, "a/": 9},
        {"ints": {"zero": 0, "one": 1, "minus": -1, "max": 2 ** 53 - 1, "min": -(2 ** 53 - 1), "e15": 10 ** 15,
                  "e15m": -(10 ** 15), "big": 999999999999999, "odd": 4503599627370497}},
        {"nested": {"a": {"b": {"c": {"d": {"e": {}}}}}, "empty": {}, "nulls": {"x": None, "y": None}}},
        {"deep": json.loads("{\"k\":" * 30 + "null" + "}" * 30)},
    ]


def sk(*args, timeout=120):
    r = run([SK] + list(args), timeout=timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


class AuditVerify(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="skd-audit-")
        cls.key = os.path.join(cls.tmp, "key.pem")
        cls.pub = os.path.join(cls.tmp, "pub.pem")
        cls.other = os.path.join(cls.tmp, "other.pem")
        for k in (cls.key, cls.other):
            run(["openssl", "ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", k], check=True)
        run(["openssl", "ec", "-in", cls.key, "-pubout", "-out", cls.pub], check=True)
        cls.base = os.path.join(cls.tmp, "base")
        cls.last = {}
        for t in (TA, TB):
            cls.last[t] = write_chain(cls.base, t, [record(t, s, None) for s in range(1, N + 1)], cls.key)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def copy(self):
        """A fresh copy of the two valid chains."""
        type(self).n += 1
        root = os.path.join(self.tmp, "audit%d" % self.n)
        shutil.copytree(self.base, root)
        return root

    def verify(self, root, *extra, pub=None):
        return sk("audit", "verify", root, "--pubkey", pub or self.pub, *extra)

    def assertFails(self, root, where, reason):
        rc, out, err = self.verify(root)
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertEqual(err, "sk audit verify: FAILED: %s: %s\n" % (where, reason))

    # -------------------------------------------------------------- valid

    def test_valid_chains(self):
        root = self.copy()
        os.makedirs(os.path.join(root, "vpc-00000000000000000"))  # a tenant without records
        with open(rpath(root, TA, N + 1) + ".tmp", "w") as f:  # a crash leftover
            f.write("{\"half")
        rc, out, err = self.verify(root)
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out.splitlines(), [
            "vpc-00000000000000000: 0 records",
            "%s: 50 records, 1..50, chain and signatures OK" % TA,
            "%s: 50 records, 1..50, chain and signatures OK" % TB,
            "total: 3 tenants, 100 records, all verified",
        ])
        for jobs in ("1", "3"):
            self.assertEqual(self.verify(root, "--jobs", jobs)[0], 0)

    def test_empty_dir(self):
        root = os.path.join(self.tmp, "empty")
        os.makedirs(root)
        self.assertEqual(self.verify(root), (0, "total: 0 tenants, 0 records, all verified\n", ""))

    def test_one_record(self):
        root = os.path.join(self.tmp, "one")
        write_chain(root, TC, [record(TC, 1, None)], self.key)
        self.assertEqual(self.verify(root)[1].splitlines()[0], "%s: 1 record, 1..1, chain and signatures OK" % TC)

    # -------------------------------------------------------------- canonical form: sk (jansson) == jq

    def test_canonical_form_is_jq(self):
        """Records whose bytes come from jq verify: sk's canonical form
        (with and without the signature) equals jq -cjS for every allowed
        kind of value."""
        rng = random.Random(20261122)
        recs = [record(TC, i + 1, None, extra=v) for i, v in enumerate(tricky_values())]
        for i in range(len(recs), 150):
            extra = {random_key(rng): random_value(rng, 0) for _ in range(rng.randrange(1, 6))}
            recs.append(record(TC, i + 1, None, extra=extra))
        root = os.path.join(self.tmp, "canonical")
        write_chain(root, TC, recs, self.key)
        rc, out, err = self.verify(root)
        self.assertEqual((rc, err), (0, ""), out)
        self.assertIn("150 records", out)
        # and jq agrees the files are canonical
        for seq in (1, 2, 3, 4, 5, 100):
            with open(rpath(root, TC, seq), "rb") as f:
                data = f.read()
            self.assertEqual(run(["jq", "-cjS", ".", rpath(root, TC, seq)]).stdout + b"\n", data)

    def test_values_jq_and_jansson_disagree_on_are_refused(self):
        """Where jq 1.6 prints numbers differently (beyond 2^53, 1e+17) or
        takes no stand (floats), sk refuses the record as not canonical."""
        cases = [
            ({"n": 2 ** 53}, "not canonical: an integer beyond 2^53-1 at .extra.n"),
            ({"n": 10 ** 17}, "not canonical: a float at .extra.n"),  # jq prints 1e+17
            ({"n": 1.5}, "not canonical: a float at .extra.n"),
            ({"n": [1]}, "not canonical: an array at .extra.n"),
            ({"n": True}, "not canonical: a boolean at .extra.n"),
            ({"n": "caf\u00e9"}, "not canonical: a string with a byte outside printable ASCII at .extra.n"),
            ({"n": "tab\t"}, "not canonical: a string with a byte outside printable ASCII at .extra.n"),
        ]
        for extra, reason in cases:
            with self.subTest(extra=extra):
                root = tempfile.mkdtemp(dir=self.tmp)
                write_chain(root, TC, [record(TC, 1, None, extra=extra)], self.key)
                self.assertFails(root, "%s/000000001.json" % TC, reason)

    # -------------------------------------------------------------- damage

    def test_changed_value(self):
        root = self.copy()
        p = rpath(root, TA, 7)
        with open(p, "rb") as f:
            data = f.read()
        self.assertIn(b'"ip":"127.0.0.1"', data)
        with open(p, "wb") as f:
            f.write(data.replace(b'"ip":"127.0.0.1"', b'"ip":"127.0.0.2"'))
        self.assertFails(root, "%s/000000007.json" % TA, "bad signature")

    def test_deleted_record(self):
        root = self.copy()
        os.unlink(rpath(root, TA, 3))
        self.assertFails(root, "%s/000000004.json" % TA, "gap: 4 follows 2")

    def test_deleted_first_and_last(self):
        root = self.copy()
        os.unlink(rpath(root, TA, N))  # the last one: nothing to see
        self.assertEqual(self.verify(root)[0], 0)
        os.unlink(rpath(root, TA, 1))
        self.assertFails(root, "%s/000000002.json" % TA, "gap: 2 is the first record (numbering starts at 1)")

    def test_swapped_records(self):
        root = self.copy()
        a, b = rpath(root, TA, 5), rpath(root, TA, 6)
        os.rename(a, a + ".x")
        os.rename(b, a)
        os.rename(a + ".x", b)
        self.assertFails(root, "%s/000000005.json" % TA, "misnumbered: vpc_op_seq_num 6 in file 000000005.json")

    def test_duplicated_record(self):
        root = self.copy()
        shutil.copy(rpath(root, TA, 7), rpath(root, TA, 8))
        self.assertFails(root, "%s/000000008.json" % TA,
                         "duplicate: vpc_op_seq_num 7 in file 000000008.json repeats record 7")

    def test_record_moved_to_other_tenant(self):
        root = self.copy()
        os.rename(rpath(root, TA, N), rpath(root, TB, N + 1))
        self.assertFails(root, "%s/000000051.json" % TB,
                         'wrong tenant: vpc_id is "%s" in the directory of %s' % (TA, TB))
        root = self.copy()
        shutil.copy(rpath(root, TB, 10), rpath(root, TA, 10))
        self.assertFails(root, "%s/000000010.json" % TA,
                         'wrong tenant: vpc_id is "%s" in the directory of %s' % (TB, TA))

    def test_bad_signature(self):
        root = self.copy()
        write_signed(rpath(root, TA, N + 1), record(TA, N + 1, self.last[TA]), self.other)
        self.assertFails(root, "%s/000000051.json" % TA, "bad signature")
        # another record's signature
        root = self.copy()
        with open(rpath(root, TA, 4)) as f:
            sig4 = json.load(f)["signature"]
        with open(rpath(root, TA, 5)) as f:
            r5 = json.load(f)
        r5["signature"] = sig4
        with open(rpath(root, TA, 5), "wb") as f:
            f.write(jq_canonical(r5) + b"\n")
        self.assertFails(root, "%s/000000005.json" % TA, "bad signature")
        # the right records, the wrong key
        rc, out, err = self.verify(self.base, pub=self.write_pub(self.other))
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(err, "sk audit verify: FAILED: %s/000000001.json: bad signature\n" % TA)

    def write_pub(self, key):
        out = key + ".pub"
        run(["openssl", "ec", "-in", key, "-pubout", "-out", out], check=True)
        return out

    def test_broken_prev_hash(self):
        # signed by the right key, but not linked to record 19
        root = self.copy()
        write_signed(rpath(root, TA, 20), record(TA, 20, "1" * 64), self.key)
        self.assertFails(root, "%s/000000020.json" % TA, "chain break (prev_hash does not match record 19)")
        root = self.copy()
        write_signed(rpath(root, TB, 1), record(TB, 1, "1" * 64), self.key)
        self.assertFails(root, "%s/000000001.json" % TB, "chain break (prev_hash of record 1 is not 64 zeros)")
        # changed after signing: the signature says so first
        root = self.copy()
        with open(rpath(root, TA, 20)) as f:
            r = json.load(f)
        r["prev_hash"] = "1" * 64
        with open(rpath(root, TA, 20), "wb") as f:
            f.write(jq_canonical(r) + b"\n")
        self.assertFails(root, "%s/000000020.json" % TA, "bad signature")
        # a fork by the key holder: record 10 re-signed to follow record 8
        root = self.copy()
        with open(rpath(root, TA, 8), "rb") as f:
            h8 = hashlib.sha256(f.read()[:-1]).hexdigest()
        write_signed(rpath(root, TA, 10), record(TA, 10, h8), self.key)
        self.assertFails(root, "%s/000000010.json" % TA, "chain break (prev_hash does not match record 9)")

    def test_float(self):
        root = self.copy()
        rec = record(TA, N + 1, self.last[TA])
        rec["call"]["parameters"]["x"] = 1.5
        write_signed(rpath(root, TA, N + 1), rec, self.key)
        self.assertFails(root, "%s/000000051.json" % TA, "not canonical: a float at .call.parameters.x")
        # an integer written as a float by hand
        root = self.copy()
        p = rpath(root, TB, 3)
        with open(p, "rb") as f:
            data = f.read()
        with open(p, "wb") as f:
            f.write(data.replace(b'"event_version":2', b'"event_version":2.0'))
        self.assertFails(root, "%s/000000003.json" % TB, "not canonical: a float at .event_version")

    def test_extra_file(self):
        root = self.copy()
        with open(os.path.join(root, TA, "notes.txt"), "w") as f:
            f.write("hello\n")
        self.assertFails(root, "%s/notes.txt" % TA, "unexpected file")
        root = self.copy()
        with open(os.path.join(root, "README"), "w") as f:
            f.write("hello\n")
        self.assertFails(root, "README", "unexpected file (not a tenant directory)")

    def test_not_canonical_or_unparsable(self):
        root = self.copy()
        p = rpath(root, TA, 2)
        with open(p) as f:
            r = json.load(f)
        with open(p, "w") as f:
            json.dump(r, f, indent=2)  # same record, pretty-printed
        self.assertFails(root, "%s/000000002.json" % TA,
                         "not canonical: the file is not the record's canonical form (jq -cjS .) and one newline")
        with open(p, "w") as f:
            f.write('{"a":1,"a":2}\n')
        self.assertFails(root, "%s/000000002.json" % TA,
                         "unparsable: duplicate object key near '\"a\"' (line 1, column 10)")
        with open(p, "wb") as f:
            f.write(b'{"a":"\xc3\xa9\n\x01\xff')
        rc, out, err = self.verify(root)
        self.assertEqual(rc, 1)
        self.assertTrue(err.startswith("sk audit verify: FAILED: %s/000000002.json: unparsable: " % TA), err)
        self.assertEqual(len(err.splitlines()), 1)

    # -------------------------------------------------------------- FORMAT.md's recipe

    def test_stock_tools_recipe(self):
        d = os.path.join(self.base, TA)
        script = ("cd '%s' && jq -cjS 'del(.signature)' 000000012.json > '%s/r.ser' && "
                  "jq -r .signature 000000012.json | base64 -d > '%s/r.sig' && "
                  "openssl dgst -sha256 -verify '%s' -signature '%s/r.sig' '%s/r.ser' && "
                  "jq -cjS . 000000011.json | sha256sum | cut -d' ' -f1 && jq -r .prev_hash 000000012.json"
                  % (d, self.tmp, self.tmp, self.pub, self.tmp, self.tmp))
        r = run(["sh", "-c", script])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(lines[0], "Verified OK")
        self.assertEqual(lines[1], lines[2])

    # -------------------------------------------------------------- command line

    def test_help(self):
        for args in (["--help"], ["-h"], ["audit", "--help"], ["audit", "verify", "--help"]):
            with self.subTest(args=args):
                rc, out, err = sk(*args)
                self.assertEqual((rc, err), (0, ""))
                self.assertTrue(out.startswith("Usage: sk"), out)
                self.assertIn("audit verify", out)
        out = sk("audit", "verify", "-h")[1]
        for word in ("AUDIT-DIR", "--pubkey PEM", "--jobs N", "Exit status", "*.json.tmp", "FAILED"):
            self.assertIn(word, out)

    def test_usage_errors(self):
        d = self.base
        cases = [
            ([], "sk: missing command (try sk --help)"),
            (["bogus"], 'sk: unknown command "bogus" (try sk --help)'),
            (["audit"], "sk: audit: missing command (try sk audit --help)"),
            (["audit", "bogus"], 'sk: unknown command "audit bogus" (try sk --help)'),
            (["audit", "verify"], "sk audit verify: missing AUDIT-DIR (see --help)"),
            (["audit", "verify", d], "sk audit verify: missing --pubkey PEM (see --help)"),
            (["audit", "verify", d, d, "--pubkey", self.pub], "sk audit verify: unexpected argument %s (see --help)" % d),
            (["audit", "verify", d, "--pubkey"], "sk audit verify: --pubkey needs a value (see --help)"),
            (["audit", "verify", d, "--bogus"], "sk audit verify: unknown option --bogus (see --help)"),
            (["audit", "verify", d, "--pubkey", self.pub, "-j", "0"], "sk audit verify: --jobs wants a number from 1 to 64"),
        ]
        for args, line in cases:
            with self.subTest(args=args):
                self.assertEqual(sk(*args), (2, "", line + "\n"))

    def test_unreadable(self):
        missing = os.path.join(self.tmp, "missing")
        self.assertEqual(self.verify(missing),
                         (1, "", "sk audit verify: cannot open %s: No such file or directory\n" % missing))
        self.assertEqual(self.verify(self.base, pub=missing),
                         (1, "", "sk audit verify: cannot open %s: No such file or directory\n" % missing))
        # a private key, an RSA key, a P-256 key: not the audit key
        rsa = os.path.join(self.tmp, "rsa.pem")
        run(["sh", "-c", "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 2>/dev/null | "
                         "openssl pkey -pubout -out '%s'" % rsa], check=True)
        p256 = os.path.join(self.tmp, "p256.pem")
        run(["sh", "-c", "openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | "
                         "openssl ec -pubout -out '%s' 2>/dev/null" % p256], check=True)
        for pem, msg in ((self.key, "holds no PEM public key (BEGIN PUBLIC KEY)"),
                         (rsa, "is not an EC P-384 public key"), (p256, "is not an EC P-384 public key")):
            with self.subTest(pem=pem):
                self.assertEqual(self.verify(self.base, pub=pem), (1, "", "sk audit verify: %s %s\n" % (pem, msg)))


if __name__ == "__main__":
    skdtest.main()
