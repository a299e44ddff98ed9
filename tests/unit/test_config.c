#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../server/config.h"
#include "../../common/net.h"

static char path[64];

/* Writes text to a temporary file and loads it; returns config_load's result. */
static int load(const char *text, config_t *cfg, char *err, size_t err_len) {
    snprintf(path, sizeof path, "/tmp/skd-test-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = config_load(cfg, path, err, err_len);
    unlink(path);
    return rc;
}

static void expect_error(const char *text, int line, const char *fragment) {
    config_t cfg;
    char err[512], want[128];
    assert_int_equal(load(text, &cfg, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:%d: ", path, line);
    if (line && strncmp(err, want, strlen(want)) != 0)
        fail_msg("want prefix %s, got %s", want, err);
    if (!strstr(err, fragment))
        fail_msg("want %s in %s", fragment, err);
}

static void defaults_and_values(void **state) {
    (void)state;
    config_t cfg;
    char err[512];
    assert_int_equal(load("; comment\n[public]\nlisten = 127.0.0.1:8080\nlisten = [::1]:8080\n"
                          "[server]\nworker_threads = 8\n[limits]\nmax_body_bytes = 1024\n"
                          "[log]\nlevel = debug\naccess_log = off\n",
                          &cfg, err, sizeof err),
                     0);
    assert_int_equal(cfg.public_listen_count, 2);
    assert_int_equal(cfg.public_listen[0].addr.ss_family, AF_INET);
    assert_int_equal(cfg.public_listen[1].addr.ss_family, AF_INET6);
    assert_int_equal(cfg.public_listen[1].line, 4);
    assert_int_equal(cfg.worker_threads, 8);
    assert_int_equal(cfg.http.max_body_bytes, 1024);
    assert_int_equal(cfg.http.max_headers, 64); /* default */
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_false(cfg.access_log);
    config_free(&cfg);
}

static void errors_name_the_line(void **state) {
    (void)state;
    expect_error("[public]\nlisten = 127.0.0.1:8080\n[server]\nworker_thread = 3\n", 4, "unknown option");
    expect_error("[public]\nlisten = 127.0.0.1:8080\n[server]\nworker_threads = many\n", 4, "whole number");
    expect_error("[public]\nlisten = 127.0.0.1:8080\n[server]\nworker_threads = 0\n", 4, "from 1 to 128");
    expect_error("[public]\nlisten = localhost:80\n", 2, "bad address");
    expect_error("[public]\nlisten = 127.0.0.1:65536\n", 2, "bad address");
    expect_error("[public]\nlisten = [::1:80\n", 2, "bad address");
    expect_error("[public]\nlisten = 127.0.0.1:8080\n\ntls_listen = 127.0.0.1:8443\n", 4, "tls_cert");
    expect_error("[log]\nlevel = loud\n", 2, "level");
    expect_error("[public]\nthis line is wrong\n", 2, "syntax error");
    expect_error("[admin]\nlisten = 127.0.0.1:8081\n", 0, "at least one listen");
}

static void missing_file(void **state) {
    (void)state;
    config_t cfg;
    char err[512];
    assert_int_equal(config_load(&cfg, "/nonexistent/skd.conf", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/skd.conf: cannot open"));
}

static void addresses(void **state) {
    (void)state;
    struct sockaddr_storage a;
    assert_int_equal(net_parse_address("0.0.0.0:0", &a), 0);
    assert_int_equal(net_parse_address("[::]:443", &a), 0);
    assert_int_equal(net_parse_address("[::ffff:127.0.0.1]:443", &a), 0);
    assert_int_equal(net_parse_address("::1:443", &a), -1);
    assert_int_equal(net_parse_address("127.0.0.1", &a), -1);
    assert_int_equal(net_parse_address("127.0.0.1:-1", &a), -1);
    assert_int_equal(net_parse_address("127.0.0.1:80x", &a), -1);
    assert_int_equal(net_parse_address("[127.0.0.1]:80", &a), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_and_values),
        cmocka_unit_test(errors_name_the_line),
        cmocka_unit_test(missing_file),
        cmocka_unit_test(addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
