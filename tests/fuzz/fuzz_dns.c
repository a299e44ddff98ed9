/* libFuzzer target: skdns's answers to arbitrary bytes, as a UDP and as a
 * TCP query, with and without negatives allowed, against a zone with a few
 * records. Every response must fit the caller's buffer and the transport's
 * limit and parse back (dns_check) with the query's id. The same bytes, as
 * "key=value", are also put into and deleted from the zone by a sender of
 * their own, which must leave the zone as it was. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../skdns/dns_check.h"
#include "../../skdns/zone.h"

static zone_t *zone;

static void put(const char *key, const char *val) {
    zone_put(zone, 0, key, strlen(key), val, strlen(val));
}

static void make_zone(void) {
    zone_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    dns_name_from_text("sk.test", cfg.apex);
    cfg.ttl = 1;
    cfg.apex_ttl = 3600;
    dns_name_from_text("ns1.sk.test", cfg.soa_mname);
    dns_name_from_text("hostmaster.sk.test", cfg.soa_rname);
    cfg.minimum = 1;
    dns_name_from_text("ns1.sk.test", cfg.ns[0].name);
    cfg.ns[0].n_a = cfg.ns[0].n_aaaa = 1;
    cfg.ns[0].a[0][0] = 127;
    cfg.ns[0].aaaa[0][15] = 1;
    dns_name_from_text("ns2.example.net", cfg.ns[1].name);
    cfg.n_ns = 2;
    cfg.caa[0] = (zone_caa_t){0, "issue", "pebble.test"};
    cfg.n_caa = 1;
    cfg.max_records = 1000;
    char err[128];
    static const uint64_t key[2] = {1, 2};
    zone = zone_new(&cfg, key, err, sizeof err);
    if (!zone)
        abort();
    put("n/host1", "");
    put("a/host1", "192.0.2.7");
    put("aaaa/host1", "2001:db8::7");
    put("t/host1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "");
    char key_text[64];
    for (int i = 0; i < 30; i++) { /* enough to truncate over UDP */
        memcpy(key_text, "t/big/", 6);
        memset(key_text + 6, 'a' + i % 26, 43);
        key_text[6 + 42] = (char)('0' + i / 26);
        key_text[6 + 43] = '\0';
        put(key_text, "");
    }
}

static uint8_t out[DNS_TCP_MAX];

static void check(const uint8_t *q, size_t qlen, size_t n, size_t cap, size_t limit) {
    if (n == 0)
        return;
    dns_resp_t r;
    if (n > cap || n > limit || n < DNS_HEADER_LEN || dns_check_response(out, n, &r, NULL, 0) != 0 ||
        qlen < 2 || r.id != dns_get16(q))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!zone)
        make_zone();
    for (int tcp = 0; tcp < 2; tcp++) {
        for (int feed = DNS_FEED_POSITIVES; feed <= DNS_FEED_INCOMPLETE; feed++) {
            /* the full buffer, then one of a size taken from the input */
            size_t caps[2] = {sizeof out, size ? 12 + data[size - 1] * 4u : 12};
            for (int c = 0; c < 2; c++) {
                size_t n = dns_answer(zone, data, size, tcp, (dns_feed_t)feed, out, caps[c]);
                check(data, size, n, caps[c], tcp ? DNS_TCP_MAX : DNS_UDP_MAX);
            }
        }
    }
    check(data, size, dns_tc_reply(data, size, out, sizeof out), sizeof out, DNS_UDP_MAX);

    /* the bytes as a kvpsync pair */
    size_t before = zone_records(zone);
    const uint8_t *eq = memchr(data, '=', size);
    size_t klen = eq ? (size_t)(eq - data) : size;
    const uint8_t *val = eq ? eq + 1 : data + size;
    if (zone_put(zone, 7, data, klen, val, size - klen - (eq ? 1 : 0)) == 0) {
        uint8_t q[512];
        static const uint8_t query[] = "\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                                       "\x0f_acme-challenge\x05host1\x02sk\x04test\x00\x00\x10\x00\x01";
        memcpy(q, query, sizeof query - 1);
        size_t n = dns_answer(zone, q, sizeof query - 1, false, DNS_FEED_CONFIDENT, out, sizeof out);
        check(q, sizeof query - 1, n, sizeof out, DNS_UDP_MAX);
    }
    zone_del(zone, 7, data, klen);
    if (zone_records(zone) != before)
        abort();
    return 0;
}
