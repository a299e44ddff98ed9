#!/usr/bin/env python3
"""skd's command line and configuration errors: FILE:LINE: messages, exit
statuses, missing files and busy ports."""

import os
import re
import shutil
import socket
import tempfile
import unittest

import skdtest
from skdtest import SKD, Server, run

SANITIZER = re.compile("|".join(skdtest.SANITIZER_MARKERS))


class CommandLineTest(unittest.TestCase):
    def skd(self, *args):
        p = run([SKD] + list(args), timeout=30)
        out, err = p.stdout.decode(), p.stderr.decode()
        self.assertFalse(SANITIZER.search(err), err)
        return p.returncode, out, err

    def test_help(self):
        for args in (["--help"], ["-h"], ["help"]):
            rc, out, err = self.skd(*args)
            self.assertEqual(rc, 0, args)
            self.assertIn("Usage: skd COMMAND", out)
            self.assertIn("serve -c FILE", out)
            self.assertEqual(err, "")

    def test_serve_help(self):
        for args in (["serve", "--help"], ["serve", "-h"]):
            rc, out, err = self.skd(*args)
            self.assertEqual(rc, 0, args)
            self.assertIn("Usage: skd serve -c FILE", out)
            self.assertIn("SIGHUP", out)
            self.assertEqual(err, "")

    def test_version(self):
        rc, out, err = self.skd("--version")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^skd \S+\n$")

    def test_unknown_command(self):
        rc, out, err = self.skd("frobnicate")
        self.assertEqual(rc, 2)
        self.assertEqual(out, "")
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertTrue(err.endswith("\n"))
        self.assertIn("frobnicate", err)

    def test_usage_errors(self):
        for args in ([], ["serve"], ["serve", "-c"], ["serve", "-x"], ["serve", "-c", "a.conf", "extra"]):
            rc, out, err = self.skd(*args)
            self.assertEqual(rc, 2, (args, err))
            self.assertEqual(out, "", args)
            self.assertTrue(err, args)


class ConfigErrorTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="skdtest-conf-")
        self.path = os.path.join(self.dir, "skd.conf")
        self.port = skdtest.free_port()

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def serve(self, text, timeout=30):
        with open(self.path, "w") as f:
            f.write(text)
        p = run([SKD, "serve", "-c", self.path], timeout=timeout)
        err = p.stderr.decode()
        self.assertFalse(SANITIZER.search(err), err)
        return p.returncode, err

    def assert_error_at(self, text, line, *needles):
        rc, err = self.serve(text)
        self.assertEqual(rc, 1, err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertRegex(err, r"^skd: %s:%d: " % (re.escape(self.path), line))
        for n in needles:
            self.assertIn(n, err)
        return err

    def conf(self, *lines):
        """A valid start followed by lines; returns (text, line number of the first extra line)."""
        head = ["; skd test configuration", "", "[server]", "worker_threads = 2", "",
                "[public]", "listen = 127.0.0.1:%d" % self.port, ""]
        return "\n".join(head + list(lines)) + "\n", len(head) + 1

    def test_unknown_option(self):
        text, n = self.conf("[server]", "worker_thread = 2")
        self.assert_error_at(text, n + 1, 'unknown option "worker_thread" in section [server]')
        text, n = self.conf("[limits]", "max_body_bytes = 1", "", "; comment", "frobnicate = yes")
        self.assert_error_at(text, n + 4, '"frobnicate"')
        text, n = self.conf("[bogus]", "listen = 127.0.0.1:1")
        self.assert_error_at(text, n + 1, "section [bogus]")
        # An option of another section.
        text, n = self.conf("[admin]", "worker_threads = 2")
        self.assert_error_at(text, n + 1, '"worker_threads" in section [admin]')

    def test_bad_number(self):
        for option, value in (("[server]", "max_connections = abc"), ("[server]", "worker_threads = 0"),
                              ("[server]", "worker_threads = 129"), ("[limits]", "max_body_bytes = -1"),
                              ("[limits]", "header_timeout_ms = 10s"), ("[limits]", "max_headers = "),
                              ("[limits]", "max_header_bytes = 99999999999999999999999"),
                              ("[limits]", "write_queue_bytes = 100"), ("[limits]", "idle_timeout_ms = 1.5"),
                              ("[server]", "shutdown_timeout_ms = +5")):
            with self.subTest(value):
                text, n = self.conf("; padding", option, value)
                name = value.split("=")[0].strip()
                self.assert_error_at(text, n + 2, name, "want a whole number")

    def test_bad_address(self):
        for value in ("127.0.0.1", "127.0.0.1:", "256.0.0.1:80", "localhost:80", "127.0.0.1:65536",
                      "::1:80", "[::1]80", "[::1:80", "[127.0.0.1]:80", "127.0.0.1:http", ":80"):
            with self.subTest(value):
                text, n = self.conf("listen = " + value)
                self.assert_error_at(text, n, "bad address", '"%s"' % value)
        text, n = self.conf("[admin]", "", "listen = 127.0.0.1:-1")
        self.assert_error_at(text, n + 2, "bad address")
        text, n = self.conf("tls_listen = 127.0.0.1", "tls_cert = a", "tls_key = b")
        self.assert_error_at(text, n, "bad address")

    def test_other_bad_values(self):
        text, n = self.conf("[log]", "level = verbose")
        self.assert_error_at(text, n + 1, "level", '"verbose"')
        text, n = self.conf("[log]", "access_log = maybe")
        self.assert_error_at(text, n + 1, "access_log", '"maybe"')
        text, n = self.conf("[server]", "worker_threads")
        self.assert_error_at(text, n + 1, "syntax error")
        text, n = self.conf("[server")
        self.assert_error_at(text, n, "syntax error")

    def test_tls_listen_without_cert(self):
        text, n = self.conf("", "tls_listen = 127.0.0.1:%d" % skdtest.free_port(), "", "[log]", "level = info")
        self.assert_error_at(text, n + 1, "tls_listen needs tls_cert and tls_key")
        text, n = self.conf("tls_listen = 127.0.0.1:1", "tls_cert = /nonexistent/cert.pem")
        self.assert_error_at(text, n, "tls_listen needs tls_cert and tls_key")
        # The first tls_listen line is named.
        text, n = self.conf("tls_listen = 127.0.0.1:1", "tls_listen = 127.0.0.1:2", "tls_key = /k.pem")
        self.assert_error_at(text, n, "tls_listen")

    def test_no_listener(self):
        rc, err = self.serve("[server]\nworker_threads = 2\n[admin]\nlisten = 127.0.0.1:1\n")
        self.assertEqual(rc, 1)
        self.assertIn("%s: [public] needs at least one listen" % self.path, err)

    def test_missing_file(self):
        path = os.path.join(self.dir, "does-not-exist.conf")
        p = run([SKD, "serve", "-c", path], timeout=30)
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 1, err)
        self.assertEqual(err, "skd: %s: cannot open: No such file or directory\n" % path)

    def test_missing_certificate_file(self):
        cert = os.path.join(self.dir, "missing-cert.pem")
        text, n = self.conf("tls_listen = 127.0.0.1:%d" % skdtest.free_port(), "tls_cert = " + cert,
                            "tls_key = " + os.path.join(self.dir, "missing-key.pem"))
        rc, err = self.serve(text)
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, r"ERROR cannot load certificate %s" % re.escape(cert))

    def test_long_lines(self):
        # inih reads lines into a 200-byte buffer; longer lines must still be
        # one line each, for line numbers and for what they mean.
        with self.subTest("line number after a long comment"):
            text, n = self.conf("; " + "x" * 300, "bogus = 1")
            self.assert_error_at(text, n + 1, '"bogus"')
        with self.subTest("name = value deep in a comment"):
            text, n = self.conf("; " + "y" * 250 + " max_body_bytes = 1", "", "bogus = 2")
            self.assert_error_at(text, n + 2, '"bogus"')
        with self.subTest("long value"):
            # A deep certificate path is taken whole.
            cert = os.path.join(self.dir, "d" * 120, "e" * 120, "cert.pem")
            text, n = self.conf("tls_listen = 127.0.0.1:%d" % skdtest.free_port(), "tls_cert = " + cert,
                                "tls_key = " + cert)
            rc, err = self.serve(text)
            self.assertEqual(rc, 1, err)
            self.assertIn("cannot load certificate %s" % cert, err)

    def test_long_comment_sets_nothing(self):
        # A comment whose text after the 200th byte reads "max_body_bytes = 1".
        comment = "; " + "z" * 197 + "max_body_bytes = 1"
        with Server(SKD, extra_text="[limits]\n%s\n" % comment) as srv:
            r = srv.request("POST", "/healthcheck", body=b"x" * 100)
            self.assertEqual(r.status, 405, "the comment changed max_body_bytes: %r" % r)

    def test_first_error_is_reported(self):
        # Several mistakes: the first one is named, with its line.
        with self.subTest("two unknown options"):
            text, n = self.conf("first = 1", "second = 2")
            self.assert_error_at(text, n, '"first"')
        with self.subTest("syntax error, then an unknown option"):
            text, n = self.conf("a broken line", "second = 2")
            self.assert_error_at(text, n, "syntax error")
        with self.subTest("two bad numbers"):
            text, n = self.conf("[limits]", "max_headers = x", "max_body_bytes = y")
            self.assert_error_at(text, n + 1, "max_headers")

    def test_port_in_use(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            # As the public listener, then as the admin one.
            text, n = self.conf("listen = 127.0.0.1:%d" % port, "[admin]", "listen = 127.0.0.1:%d"
                                % skdtest.free_port())
            rc, err = self.serve(text)
            self.assertEqual(rc, 1, err)
            self.assertRegex(err, r"ERROR %s:%d: cannot listen on 127\.0\.0\.1:%d: address already in use"
                             % (re.escape(self.path), n, port))
            text, n = self.conf("[admin]", "listen = 127.0.0.1:%d" % port)
            rc, err = self.serve(text)
            self.assertEqual(rc, 1, err)
            self.assertRegex(err, r"%s:%d: cannot listen on 127\.0\.0\.1:%d" % (re.escape(self.path), n + 1, port))

    def test_valid_config_example(self):
        # The shipped example is valid (once its ports are free ones).
        with open(os.path.join(skdtest.ROOT, "skd.conf.example")) as f:
            example = f.read()
        sections = {}
        for line in example.splitlines():
            m = re.match(r"^\[(\w+)\]$", line)
            if m:
                current = m.group(1)
            m = re.match(r"^(\w+) = (.*)$", line)
            if m and m.group(1) != "listen":
                sections.setdefault(current, {})[m.group(1)] = m.group(2)
        self.assertIn("max_pipelined", sections.get("limits", {}))
        with Server(SKD, sections) as srv:
            self.assertEqual(srv.request("GET", "/healthcheck").status, 204)


if __name__ == "__main__":
    skdtest.main()
