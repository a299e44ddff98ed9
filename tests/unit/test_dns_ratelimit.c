/* skdns's response rate limiter: token buckets per network, slip, the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "../../skdns/ratelimit.h"

static const uint64_t key[2] = {3, 4};

static struct sockaddr_storage v4(const char *text) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, text, &a->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *text) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, text, &a->sin6_addr), 1);
    return ss;
}

static rl_verdict_t check(rl_t *rl, struct sockaddr_storage ss, uint64_t now) {
    return rl_check(rl, (const struct sockaddr *)&ss, now);
}

static void burst_then_rate(void **state) {
    (void)state;
    rl_config_t cfg = {.rate = 10, .burst = 5, .slip = 0, .ipv4_prefix = 24, .ipv6_prefix = 56, .table_size = 64};
    rl_t *rl = rl_new(&cfg, key);
    assert_non_null(rl);
    for (int i = 0; i < 5; i++)
        assert_int_equal(check(rl, v4("192.0.2.1"), 1000), RL_PASS);
    assert_int_equal(check(rl, v4("192.0.2.1"), 1000), RL_DROP);
    /* the same /24 shares the bucket; another does not */
    assert_int_equal(check(rl, v4("192.0.2.200"), 1000), RL_DROP);
    assert_int_equal(check(rl, v4("192.0.3.1"), 1000), RL_PASS);
    /* 100 ms later: one more (10 a second) */
    assert_int_equal(check(rl, v4("192.0.2.1"), 1099), RL_DROP);
    assert_int_equal(check(rl, v4("192.0.2.1"), 1100), RL_PASS);
    assert_int_equal(check(rl, v4("192.0.2.1"), 1100), RL_DROP);
    /* a long pause refills the burst, not more */
    for (int i = 0; i < 5; i++)
        assert_int_equal(check(rl, v4("192.0.2.1"), 60000), RL_PASS);
    assert_int_equal(check(rl, v4("192.0.2.1"), 60000), RL_DROP);
    rl_free(rl);
}

static void slip_every_nth(void **state) {
    (void)state;
    rl_config_t cfg = {.rate = 1, .burst = 1, .slip = 3, .ipv4_prefix = 24, .ipv6_prefix = 56, .table_size = 64};
    rl_t *rl = rl_new(&cfg, key);
    assert_int_equal(check(rl, v4("198.51.100.7"), 0), RL_PASS);
    rl_verdict_t want[] = {RL_DROP, RL_DROP, RL_SLIP, RL_DROP, RL_DROP, RL_SLIP};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(check(rl, v4("198.51.100.7"), 0), want[i]);
    rl_free(rl);
}

static void ipv6_networks(void **state) {
    (void)state;
    rl_config_t cfg = {.rate = 1, .burst = 1, .slip = 0, .ipv4_prefix = 24, .ipv6_prefix = 56, .table_size = 64};
    rl_t *rl = rl_new(&cfg, key);
    assert_int_equal(check(rl, v6("2001:db8:0:100::1"), 0), RL_PASS);
    assert_int_equal(check(rl, v6("2001:db8:0:1ff::2"), 0), RL_DROP); /* same /56 */
    assert_int_equal(check(rl, v6("2001:db8:0:200::1"), 0), RL_PASS); /* another */
    /* an IPv4-mapped address counts as IPv4 */
    assert_int_equal(check(rl, v4("203.0.113.5"), 0), RL_PASS);
    assert_int_equal(check(rl, v6("::ffff:203.0.113.77"), 0), RL_DROP);
    rl_free(rl);
}

static void off_and_bounded(void **state) {
    (void)state;
    rl_config_t cfg = {.rate = 0, .burst = 1, .ipv4_prefix = 24, .ipv6_prefix = 56, .table_size = 16};
    rl_t *rl = rl_new(&cfg, key);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(check(rl, v4("192.0.2.1"), 0), RL_PASS);
    rl_free(rl);
    /* a small table: many networks evict each other, none is refused wrongly */
    cfg.rate = 1;
    rl = rl_new(&cfg, key);
    char addr[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(addr, sizeof addr, "10.%d.%d.1", i / 256, i % 256);
        assert_int_equal(check(rl, v4(addr), 0), RL_PASS);
    }
    /* the most recent network is still tracked */
    assert_int_equal(check(rl, v4(addr), 0), RL_DROP);
    rl_free(rl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_rate),
        cmocka_unit_test(slip_every_nth),
        cmocka_unit_test(ipv6_networks),
        cmocka_unit_test(off_and_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
