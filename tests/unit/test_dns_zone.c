/* skdns's zone index and answers: every rule of answer.c on hand-built
 * queries, read back with dns_check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../skdns/dns_check.h"
#include "../../skdns/zone.h"

static const uint64_t hash_key[2] = {1, 2};

/* sk.test.: NS ns1.sk.test. (glue 192.0.2.53, 2001:db8::53) and
 * ns2.example.net., CAA issue pebble.test and an iodef. */
static zone_t *make_zone(void) {
    zone_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    dns_name_from_text("sk.test", cfg.apex);
    cfg.ttl = 1;
    cfg.apex_ttl = 3600;
    dns_name_from_text("ns1.sk.test", cfg.soa_mname);
    dns_name_from_text("hostmaster.sk.test", cfg.soa_rname);
    cfg.serial = 7;
    cfg.refresh = 3600;
    cfg.retry = 600;
    cfg.expire = 86400;
    cfg.minimum = 5;
    dns_name_from_text("ns1.sk.test", cfg.ns[0].name);
    memcpy(cfg.ns[0].a[0], "\xc0\x00\x02\x35", 4);
    cfg.ns[0].n_a = 1;
    memcpy(cfg.ns[0].aaaa[0], "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x53", 16);
    cfg.ns[0].n_aaaa = 1;
    dns_name_from_text("ns2.example.net", cfg.ns[1].name);
    cfg.n_ns = 2;
    cfg.caa[0] = (zone_caa_t){0, "issue", "pebble.test"};
    cfg.caa[1] = (zone_caa_t){0, "iodef", "mailto:hostmaster@sk.test"};
    cfg.n_caa = 2;
    cfg.max_records = 100000;
    char err[128];
    zone_t *z = zone_new(&cfg, hash_key, err, sizeof err);
    assert_non_null(z);
    return z;
}

static int setup(void **state) {
    *state = make_zone();
    return 0;
}

static int teardown(void **state) {
    zone_free(*state);
    return 0;
}

static void put(zone_t *z, unsigned sender, const char *key, const char *val) {
    assert_int_equal(zone_put(z, sender, key, strlen(key), val, strlen(val)), 0);
}

static void del(zone_t *z, unsigned sender, const char *key) {
    assert_int_equal(zone_del(z, sender, key, strlen(key)), 0);
}

typedef struct q_opts {
    bool edns;
    uint16_t size;
    uint8_t version;
    bool dnssec_ok;
    uint16_t qclass;
} q_opts_t;

static size_t build(uint8_t *out, const char *name, uint16_t qtype, q_opts_t o) {
    uint8_t wire[DNS_NAME_MAX];
    size_t n = 0;
    memset(out, 0, 12);
    dns_put16(out, 0xbeef);
    dns_put16(out + 2, DNS_F_RD | DNS_F_CD);
    dns_put16(out + 4, 1);
    dns_put16(out + 10, o.edns);
    /* the name as written, case kept */
    for (const char *s = name; *s;) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        wire[n] = (uint8_t)l;
        memcpy(wire + n + 1, s, l);
        n += 1 + l;
        s += l + (dot ? 1 : 0);
    }
    wire[n++] = 0;
    memcpy(out + 12, wire, n);
    size_t p = 12 + n;
    dns_put16(out + p, qtype);
    dns_put16(out + p + 2, o.qclass ? o.qclass : DNS_C_IN);
    p += 4;
    if (o.edns) {
        static const uint8_t opt[] = {0, 0, 41};
        memcpy(out + p, opt, 3);
        dns_put16(out + p + 3, o.size);
        out[p + 5] = 0;
        out[p + 6] = o.version;
        out[p + 7] = o.dnssec_ok ? 0x80 : 0;
        out[p + 8] = 0;
        dns_put16(out + p + 9, 0);
        p += 11;
    }
    return p;
}

#define MAX_RRS 8192
static dns_rr_view_t rrs[MAX_RRS];
static uint8_t resp_buf[DNS_TCP_MAX];
static size_t resp_len;

/* Asks and checks that the response is well-formed and echoes the question. */
static dns_resp_t ask_with(const zone_t *z, const char *name, uint16_t qtype, q_opts_t o, bool tcp, dns_feed_t neg_ok) {
    uint8_t q[512];
    size_t qlen = build(q, name, qtype, o);
    resp_len = dns_answer(z, q, qlen, tcp, neg_ok, resp_buf, sizeof resp_buf);
    assert_true(resp_len >= 12);
    dns_resp_t r;
    assert_int_equal(dns_check_response(resp_buf, resp_len, &r, rrs, MAX_RRS), 0);
    assert_int_equal(r.id, 0xbeef);
    assert_int_equal(r.qdcount, 1);
    assert_memory_equal(r.qname, q + 12, dns_name_len(q + 12)); /* the asker's case */
    assert_int_equal(r.qtype, qtype);
    assert_int_equal(r.flags & (DNS_F_RD | DNS_F_CD), DNS_F_RD | DNS_F_CD);
    assert_int_equal(r.edns, o.edns);
    size_t limit = tcp ? DNS_TCP_MAX : !o.edns ? 512 : o.size < 512 ? 512 : o.size > 1232 ? 1232 : o.size;
    assert_true(resp_len <= limit);
    return r;
}

static dns_resp_t ask(const zone_t *z, const char *name, uint16_t qtype, dns_feed_t neg_ok) {
    return ask_with(z, name, qtype, (q_opts_t){0}, false, neg_ok);
}

static void assert_rr(size_t i, int section, const char *owner, uint16_t type, uint32_t ttl) {
    uint8_t w[DNS_NAME_MAX];
    dns_name_from_text(owner, w);
    assert_int_equal(rrs[i].section, section);
    assert_true(dns_name_equal(rrs[i].owner, w));
    assert_int_equal(rrs[i].type, type);
    assert_int_equal(rrs[i].ttl, ttl);
}

/* A negative answer: AA, rcode, SOA alone in the authority section. */
static void assert_negative(dns_resp_t r, int rcode) {
    assert_int_equal(r.rcode, rcode);
    assert_true(r.flags & DNS_F_AA);
    assert_int_equal(r.count[0], 0);
    assert_int_equal(r.count[1], 1);
    assert_rr(0, 1, "sk.test", DNS_T_SOA, 5); /* min(SOA minimum, apex TTL) */
}

static void assert_servfail(dns_resp_t r) {
    assert_int_equal(r.rcode, DNS_R_SERVFAIL);
    assert_false(r.flags & DNS_F_AA);
    assert_int_equal(r.nrr, 0);
}

/* ---- the apex ---- */

static void soa_at_apex(void **state) {
    zone_t *z = *state;
    dns_resp_t r = ask(z, "SK.Test", DNS_T_SOA, false);
    assert_int_equal(r.rcode, DNS_R_NOERROR);
    assert_true(r.flags & DNS_F_AA);
    assert_false(r.flags & DNS_F_TC);
    assert_int_equal(r.nrr, 1);
    assert_rr(0, 0, "sk.test", DNS_T_SOA, 3600);
    uint8_t ns1[DNS_NAME_MAX];
    dns_name_from_text("ns1.sk.test", ns1);
    assert_true(dns_name_equal(rrs[0].target, ns1));
    const uint8_t *tail = rrs[0].rdata + rrs[0].rdlen - 20;
    static const uint8_t numbers[20] = {0, 0, 0, 7, 0, 0, 0x0e, 0x10, 0, 0, 2, 0x58, 0, 1, 0x51, 0x80, 0, 0, 0, 5};
    assert_memory_equal(tail, numbers, 20);
    /* the owner is a pointer to the question, whose case is echoed */
    assert_memory_equal(resp_buf + 12, "\x02SK\x04Test", 9);
    assert_memory_equal(resp_buf + 12 + 9 + 4, "\xC0\x0C", 2);
}

static void ns_with_glue(void **state) {
    zone_t *z = *state;
    dns_resp_t r = ask(z, "sk.test", DNS_T_NS, false);
    assert_int_equal(r.rcode, DNS_R_NOERROR);
    assert_int_equal(r.count[0], 2);
    assert_int_equal(r.count[2], 2);
    assert_rr(0, 0, "sk.test", DNS_T_NS, 3600);
    assert_rr(1, 0, "sk.test", DNS_T_NS, 3600);
    assert_rr(2, 2, "ns1.sk.test", DNS_T_A, 3600);
    assert_memory_equal(rrs[2].rdata, "\xc0\x00\x02\x35", 4);
    assert_rr(3, 2, "ns1.sk.test", DNS_T_AAAA, 3600);
    uint8_t w[DNS_NAME_MAX];
    dns_name_from_text("ns2.example.net", w);
    assert_true(dns_name_equal(rrs[1].target, w));
    /* the NS name in the zone answers with its glue, authoritatively */
    r = ask(z, "ns1.sk.test", DNS_T_A, false);
    assert_int_equal(r.rcode, DNS_R_NOERROR);
    assert_true(r.flags & DNS_F_AA);
    assert_int_equal(r.nrr, 1);
    assert_rr(0, 0, "ns1.sk.test", DNS_T_A, 3600);
    r = ask(z, "ns1.sk.test", DNS_T_AAAA, false);
    assert_int_equal(r.nrr, 1);
    assert_rr(0, 0, "ns1.sk.test", DNS_T_AAAA, 3600);
    assert_negative(ask(z, "ns1.sk.test", DNS_T_TXT, false), DNS_R_NOERROR);
}

static void caa_at_apex(void **state) {
    zone_t *z = *state;
    dns_resp_t r = ask(z, "sk.test", DNS_T_CAA, false);
    assert_int_equal(r.rcode, DNS_R_NOERROR);
    assert_int_equal(r.count[0], 2);
    assert_rr(0, 0, "sk.test", DNS_T_CAA, 3600);
    assert_int_equal(rrs[0].rdlen, 2 + 5 + 11);
    assert_memory_equal(rrs[0].rdata, "\x00\x05issuepebble.test", 18);
    assert_memory_equal(rrs[1].rdata, "\x00\x05iodefmailto:", 14);
    /* other types at the apex: NODATA, always */
    assert_negative(ask(z, "sk.test", DNS_T_A, false), DNS_R_NOERROR);
    assert_negative(ask(z, "sk.test", DNS_T_TXT, false), DNS_R_NOERROR);
}

static void refused_outside(void **state) {
    zone_t *z = *state;
    const char *names[] = {"example.com", "test", "xsk.test", "sk.test.example", "a.b.example.net"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        dns_resp_t r = ask(z, names[i], DNS_T_A, true);
        assert_int_equal(r.rcode, DNS_R_REFUSED);
        assert_false(r.flags & DNS_F_AA);
        assert_int_equal(r.nrr, 0);
    }
    dns_resp_t r = ask_with(z, "sk.test", DNS_T_SOA, (q_opts_t){.qclass = 3}, false, true); /* CH */
    assert_int_equal(r.rcode, DNS_R_REFUSED);
    r = ask(z, "sk.test", 252, true); /* AXFR */
    assert_int_equal(r.rcode, DNS_R_NOTIMP);
}

/* ---- fed data ---- */

static void installation_addresses(void **state) {
    zone_t *z = *state;
    put(z, 0, "n/host1", "");
    put(z, 0, "a/host1", "192.0.2.7");
    put(z, 0, "aaaa/host1", "2001:db8::7");
    dns_resp_t r = ask(z, "Host1.SK.test", DNS_T_A, false);
    assert_int_equal(r.rcode, DNS_R_NOERROR);
    assert_true(r.flags & DNS_F_AA);
    assert_int_equal(r.nrr, 1);
    assert_rr(0, 0, "host1.sk.test", DNS_T_A, 1);
    assert_memory_equal(rrs[0].rdata, "\xc0\x00\x02\x07", 4);
    assert_memory_equal(rrs[0].owner, "\x05Host1\x02SK\x04test", 15); /* a pointer to the question */
    r = ask(z, "host1.sk.test", DNS_T_AAAA, false);
    assert_int_equal(r.nrr, 1);
    assert_memory_equal(rrs[0].rdata, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07", 16);
    /* a new address from the same sender replaces the old one */
    put(z, 0, "a/host1", "192.0.2.8");
    r = ask(z, "host1.sk.test", DNS_T_A, false);
    assert_int_equal(r.nrr, 1);
    assert_memory_equal(rrs[0].rdata, "\xc0\x00\x02\x08", 4);
    /* types kvpsync never feeds: NODATA even without a lease */
    assert_negative(ask(z, "host1.sk.test", DNS_T_CAA, false), DNS_R_NOERROR);
    assert_negative(ask(z, "host1.sk.test", DNS_T_TXT, false), DNS_R_NOERROR);
    assert_negative(ask(z, "host1.sk.test", 15 /* MX */, false), DNS_R_NOERROR);
    r = ask(z, "host1.sk.test", DNS_T_ANY, false); /* RFC 8482 */
    assert_int_equal(r.nrr, 1);
    assert_rr(0, 0, "host1.sk.test", DNS_T_HINFO, 1);
    assert_memory_equal(rrs[0].rdata, "\x07RFC8482\x00", 9);
}

static void challenge_values(void **state) {
    zone_t *z = *state;
    put(z, 0, "n/host1", "");
    put(z, 0, "t/host1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "");
    put(z, 0, "t/host1/bbbb", "");
    dns_resp_t r = ask(z, "_ACME-challenge.host1.sk.test", DNS_T_TXT, false);
    assert_int_equal(r.rcode, DNS_R_NOERROR);
    assert_int_equal(r.nrr, 2);
    assert_rr(0, 0, "_acme-challenge.host1.sk.test", DNS_T_TXT, 1);
    assert_memory_equal(rrs[0].rdata, "\x2b" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 44);
    assert_memory_equal(rrs[1].rdata, "\x04" "bbbb", 5);
    /* other types there: NODATA (the name exists for sure) */
    assert_negative(ask(z, "_acme-challenge.host1.sk.test", DNS_T_A, false), DNS_R_NOERROR);
    del(z, 0, "t/host1/bbbb");
    r = ask(z, "_acme-challenge.host1.sk.test", DNS_T_TXT, false);
    assert_int_equal(r.nrr, 1);
    del(z, 0, "t/host1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_servfail(ask(z, "_acme-challenge.host1.sk.test", DNS_T_TXT, false));
    assert_negative(ask(z, "_acme-challenge.host1.sk.test", DNS_T_TXT, true), DNS_R_NXDOMAIN);
}

static void negatives_need_a_lease(void **state) {
    zone_t *z = *state;
    put(z, 0, "n/host1", "");
    /* absent name, absent address, absent TXT */
    assert_servfail(ask(z, "nope.sk.test", DNS_T_A, false));
    assert_servfail(ask(z, "nope.sk.test", DNS_T_CAA, false));
    assert_servfail(ask(z, "host1.sk.test", DNS_T_A, false));
    assert_servfail(ask(z, "host1.sk.test", DNS_T_AAAA, false));
    assert_servfail(ask(z, "_acme-challenge.nope.sk.test", DNS_T_TXT, false));
    assert_servfail(ask(z, "nope.sk.test", DNS_T_ANY, false));
    /* with negatives allowed */
    assert_negative(ask(z, "nope.sk.test", DNS_T_A, true), DNS_R_NXDOMAIN);
    assert_negative(ask(z, "host1.sk.test", DNS_T_A, true), DNS_R_NOERROR);
    assert_negative(ask(z, "_acme-challenge.host1.sk.test", DNS_T_TXT, true), DNS_R_NXDOMAIN);
    /* names kvpsync can never make: NXDOMAIN always */
    assert_negative(ask(z, "a.b.sk.test", DNS_T_A, false), DNS_R_NXDOMAIN);
    assert_negative(ask(z, "x._acme-challenge.host1.sk.test", DNS_T_TXT, false), DNS_R_NXDOMAIN);
    assert_negative(ask(z, "under_score.sk.test", DNS_T_A, false), DNS_R_NXDOMAIN);
    assert_negative(ask(z, "_acme-challenge.sk.test", DNS_T_TXT, false), DNS_R_NXDOMAIN);
    assert_negative(ask(z, "-x.sk.test", DNS_T_A, false), DNS_R_NXDOMAIN);
    /* an empty non-terminal: a TXT value alone makes host2 exist */
    put(z, 1, "t/host2/v", "");
    assert_servfail(ask(z, "host2.sk.test", DNS_T_A, false));
    assert_negative(ask(z, "host2.sk.test", DNS_T_A, true), DNS_R_NOERROR);
    /* an address alone too */
    put(z, 1, "aaaa/host3", "::1");
    assert_negative(ask(z, "host3.sk.test", DNS_T_A, true), DNS_R_NOERROR);
}

/* Before any sender has sent its whole set (a restarted skdns in its first
 * resync), values found may be only part of a record set: every fed name is
 * SERVFAIL; the apex and names kvpsync can never make are still answered. */
static void incomplete_feed(void **state) {
    zone_t *z = *state;
    put(z, 0, "n/host1", "");
    put(z, 0, "a/host1", "192.0.2.1");
    put(z, 0, "t/host1/v1", "");
    assert_servfail(ask(z, "host1.sk.test", DNS_T_A, DNS_FEED_INCOMPLETE));
    assert_servfail(ask(z, "_acme-challenge.host1.sk.test", DNS_T_TXT, DNS_FEED_INCOMPLETE));
    assert_servfail(ask(z, "nope.sk.test", DNS_T_A, DNS_FEED_INCOMPLETE));
    assert_negative(ask(z, "a.b.sk.test", DNS_T_A, DNS_FEED_INCOMPLETE), DNS_R_NXDOMAIN);
    dns_resp_t r = ask(z, "sk.test", DNS_T_SOA, DNS_FEED_INCOMPLETE);
    assert_int_equal(r.rcode, DNS_R_NOERROR);
    /* once a sender has sent its whole set, what is there is served */
    r = ask(z, "_acme-challenge.host1.sk.test", DNS_T_TXT, DNS_FEED_POSITIVES);
    assert_int_equal(r.rcode, DNS_R_NOERROR);
    assert_int_equal(r.count[0], 1);
}

static void senders_merge(void **state) {
    zone_t *z = *state;
    put(z, 0, "t/h/v1", "");
    put(z, 1, "t/h/v1", "");
    put(z, 1, "t/h/v2", "");
    dns_resp_t r = ask(z, "_acme-challenge.h.sk.test", DNS_T_TXT, false);
    assert_int_equal(r.nrr, 2);
    del(z, 0, "t/h/v1"); /* sender 1 still has it */
    r = ask(z, "_acme-challenge.h.sk.test", DNS_T_TXT, false);
    assert_int_equal(r.nrr, 2);
    del(z, 1, "t/h/v1");
    r = ask(z, "_acme-challenge.h.sk.test", DNS_T_TXT, false);
    assert_int_equal(r.nrr, 1);
    assert_memory_equal(rrs[0].rdata, "\x02v2", 3);
    del(z, 0, "t/h/v2"); /* sender 0 never had it */
    assert_int_equal(ask(z, "_acme-challenge.h.sk.test", DNS_T_TXT, false).nrr, 1);
    del(z, 1, "t/h/v2");
    assert_servfail(ask(z, "_acme-challenge.h.sk.test", DNS_T_TXT, false));

    /* addresses: each sender's own, both served while they differ */
    put(z, 0, "a/h", "192.0.2.1");
    put(z, 1, "a/h", "192.0.2.2");
    assert_int_equal(ask(z, "h.sk.test", DNS_T_A, false).nrr, 2);
    put(z, 1, "a/h", "192.0.2.1"); /* sender 1 catches up */
    r = ask(z, "h.sk.test", DNS_T_A, false);
    assert_int_equal(r.nrr, 1);
    assert_memory_equal(rrs[0].rdata, "\xc0\x00\x02\x01", 4);
    put(z, 0, "a/h", "192.0.2.1"); /* unchanged */
    del(z, 0, "a/h");
    assert_int_equal(ask(z, "h.sk.test", DNS_T_A, false).nrr, 1);
    del(z, 1, "a/h");

    /* existence */
    put(z, 3, "n/h", "");
    put(z, 63, "n/h", "");
    del(z, 3, "n/h");
    assert_negative(ask(z, "h.sk.test", DNS_T_A, true), DNS_R_NOERROR);
    del(z, 63, "n/h");
    assert_negative(ask(z, "h.sk.test", DNS_T_A, true), DNS_R_NXDOMAIN);
    assert_int_equal(zone_records(z), 0);
    /* deleting what is not there is fine */
    del(z, 5, "n/nothing");
    del(z, 5, "t/nothing/x");
}

static void bad_keys_ignored(void **state) {
    zone_t *z = *state;
    static const char *const bad[][2] = {
        {"x/host", ""},        {"n/Host", ""},          {"n/-host", ""},          {"n/host-", ""},
        {"n/", ""},            {"n/a.b", ""},           {"a/host", "999.1.1.1"},  {"a/host", "::1"},
        {"aaaa/host", "1.2.3.4"}, {"a/host", ""},       {"t/host/", ""},          {"t/host/a b", ""},
        {"t/host", ""},        {"t//v", ""},            {"t/host/a/b", ""},       {"n/host_1", ""},
        {"a/host", "192.0.2.1 "},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(zone_put(z, 0, bad[i][0], strlen(bad[i][0]), bad[i][1], strlen(bad[i][1])), -1);
    assert_int_equal(zone_put(z, 0, "a/host", 6, "1.2.3.4\0", 8), -1);
    char label[80];
    memset(label, 'x', sizeof label);
    memcpy(label, "n/", 2);
    assert_int_equal(zone_put(z, 0, label, 2 + 64, "", 0), -1);
    assert_int_equal(zone_put(z, 0, label, 2 + 63, "", 0), 0);
    char txt[300] = "t/h/";
    memset(txt + 4, 'v', 256);
    assert_int_equal(zone_put(z, 0, txt, 4 + 256, "", 0), -1);
    assert_int_equal(zone_put(z, 0, txt, 4 + 255, "", 0), 0);
    assert_int_equal(zone_put(z, 64, "n/host", 6, "", 0), -1);
    assert_int_equal(zone_del(z, 64, "n/host", 6), -1);
    assert_int_equal(zone_records(z), 3);
}

static void max_records_bound(void **state) {
    (void)state;
    zone_t *z = make_zone();
    zone_free(z);
    zone_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    dns_name_from_text("sk.test", cfg.apex);
    dns_name_from_text("ns.example.net", cfg.ns[0].name);
    cfg.n_ns = 1;
    cfg.max_records = 3;
    char err[128];
    z = zone_new(&cfg, hash_key, err, sizeof err);
    assert_non_null(z);
    put(z, 0, "n/a", "");
    put(z, 0, "t/a/1", "");
    put(z, 0, "t/a/2", "");
    assert_int_equal(zone_put(z, 0, "t/a/3", 5, "", 0), -1);
    assert_int_equal(zone_put(z, 0, "n/b", 3, "", 0), -1);
    put(z, 1, "t/a/2", ""); /* more senders of a value: no new record */
    assert_int_equal(zone_records(z), 3);
    zone_free(z);
}

static void many_names(void **state) {
    zone_t *z = *state;
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "n/h%d", i);
        put(z, (unsigned)(i % 3), key, "");
    }
    assert_int_equal(zone_records(z), 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "h%d", i);
        const zone_name_t *e = zone_find(z, (const uint8_t *)key, strlen(key));
        assert_non_null(e);
        assert_true(e->exists == (uint64_t)1 << (i % 3));
    }
    assert_null(zone_find(z, (const uint8_t *)"h5000", 5));
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "n/h%d", i);
        del(z, (unsigned)(i % 3), key);
    }
    assert_int_equal(zone_records(z), 0);
    /* the NS host stays */
    assert_non_null(zone_find(z, (const uint8_t *)"ns1", 3));
}

static void bad_configs(void **state) {
    (void)state;
    zone_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[128];
    dns_name_from_text("sk.test", cfg.apex);
    assert_null(zone_new(&cfg, hash_key, err, sizeof err)); /* no NS */
    cfg.n_ns = 1;
    dns_name_from_text("ns1.sk.test", cfg.ns[0].name);
    assert_null(zone_new(&cfg, hash_key, err, sizeof err)); /* in the zone, no address */
    assert_string_equal(err, "NS name 1 is in the zone and needs an address");
    cfg.ns[0].n_a = 1;
    dns_name_from_text("a.ns1.sk.test", cfg.ns[0].name);
    assert_null(zone_new(&cfg, hash_key, err, sizeof err));
    dns_name_from_text("ns1.example.net", cfg.ns[0].name);
    assert_null(zone_new(&cfg, hash_key, err, sizeof err));
    dns_name_from_text("sk.test", cfg.ns[0].name);
    assert_null(zone_new(&cfg, hash_key, err, sizeof err));
    dns_name_from_text("ns1.sk.test", cfg.ns[0].name);
    zone_t *z = zone_new(&cfg, hash_key, err, sizeof err);
    assert_non_null(z);
    zone_free(z);
}

/* ---- the message ---- */

static void truncation(void **state) {
    zone_t *z = *state;
    char key[80];
    for (int i = 0; i < 40; i++) { /* 40 ACME-sized values: 40 * 56 bytes */
        snprintf(key, sizeof key, "t/big/%02d%041d", i, 0);
        put(z, 0, key, "");
    }
    const char *name = "_acme-challenge.big.sk.test";
    dns_resp_t r = ask(z, name, DNS_T_TXT, false); /* 512 */
    assert_true(r.flags & DNS_F_TC);
    assert_true(r.flags & DNS_F_AA);
    assert_int_equal(r.nrr, 0); /* whole RRsets only */
    r = ask_with(z, name, DNS_T_TXT, (q_opts_t){.edns = true, .size = 4096}, false, false); /* 1232 */
    assert_true(r.flags & DNS_F_TC);
    assert_int_equal(r.nrr, 0);
    assert_true(r.edns);
    assert_int_equal(r.udp_size, 1232);
    r = ask_with(z, name, DNS_T_TXT, (q_opts_t){.edns = true, .size = 100}, false, false); /* below 512: 512 */
    assert_true(r.flags & DNS_F_TC);
    r = ask_with(z, name, DNS_T_TXT, (q_opts_t){0}, true, false);
    assert_false(r.flags & DNS_F_TC);
    assert_int_equal(r.nrr, 40);
    assert_true(resp_len > 1232);
    /* 20 values fit 1232 but not 512 */
    for (int i = 20; i < 40; i++) {
        snprintf(key, sizeof key, "t/big/%02d%041d", i, 0);
        del(z, 0, key);
    }
    r = ask_with(z, name, DNS_T_TXT, (q_opts_t){.edns = true, .size = 1232}, false, false);
    assert_false(r.flags & DNS_F_TC);
    assert_int_equal(r.nrr, 20);
    r = ask(z, name, DNS_T_TXT, false);
    assert_true(r.flags & DNS_F_TC);
    /* a caller's buffer smaller than the limit counts too */
    uint8_t q[512], out[600];
    size_t qlen = build(q, name, DNS_T_TXT, (q_opts_t){0});
    size_t n = dns_answer(z, q, qlen, true, false, out, sizeof out);
    assert_true(n > 0 && n <= sizeof out);
    assert_true(dns_get16(out + 2) & DNS_F_TC);
    assert_int_equal(dns_answer(z, q, qlen, true, false, out, qlen - 1), 0);
}

static void edns_answers(void **state) {
    zone_t *z = *state;
    dns_resp_t r = ask_with(z, "sk.test", DNS_T_SOA, (q_opts_t){.edns = true, .size = 1232, .dnssec_ok = true},
                            false, false);
    assert_int_equal(r.rcode, DNS_R_NOERROR);
    assert_int_equal(r.count[2], 1); /* the OPT */
    assert_int_equal(r.udp_size, 1232);
    assert_int_equal(r.edns_version, 0);
    assert_true(r.dnssec_ok);
    r = ask_with(z, "sk.test", DNS_T_SOA, (q_opts_t){.edns = true, .size = 1232, .version = 1}, false, false);
    assert_int_equal(r.rcode, DNS_R_BADVERS);
    assert_int_equal(r.flags & 0xF, 0);
    assert_int_equal(r.nrr, 0);
    assert_int_equal(r.edns_version, 0);
    /* negatives carry the OPT too */
    r = ask_with(z, "nope.sk.test", DNS_T_A, (q_opts_t){.edns = true, .size = 1232}, false, true);
    assert_int_equal(r.rcode, DNS_R_NXDOMAIN);
    assert_int_equal(r.count[2], 1);
}

static void not_answered(void **state) {
    zone_t *z = *state;
    uint8_t q[512], out[512];
    size_t qlen = build(q, "sk.test", DNS_T_SOA, (q_opts_t){0});
    /* a response: never answered */
    q[2] |= 0x80;
    assert_int_equal(dns_answer(z, q, qlen, false, true, out, sizeof out), 0);
    assert_int_equal(dns_answer(z, q, qlen, true, true, out, sizeof out), 0);
    q[2] &= 0x7f;
    /* opcode NOTIFY (4): NOTIMP, a header only */
    q[2] |= 4 << 3;
    assert_int_equal(dns_answer(z, q, qlen, false, true, out, sizeof out), 12);
    assert_int_equal(dns_get16(out + 2), DNS_F_QR | 4 << 11 | DNS_F_RD | DNS_F_CD | DNS_R_NOTIMP);
    assert_int_equal(dns_get16(out + 4), 0);
    q[2] &= ~(4 << 3);
    /* malformed (two questions): dropped over UDP, FORMERR over TCP */
    dns_put16(q + 4, 2);
    assert_int_equal(dns_answer(z, q, qlen, false, true, out, sizeof out), 0);
    assert_int_equal(dns_answer(z, q, qlen, true, true, out, sizeof out), 12);
    assert_int_equal(dns_get16(out + 2) & 0xF, DNS_R_FORMERR);
    dns_put16(q + 4, 1);
    /* short */
    assert_int_equal(dns_answer(z, q, 11, true, true, out, sizeof out), 0);
    /* no room */
    assert_int_equal(dns_answer(z, q, qlen, false, true, out, 11), 0);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(soa_at_apex),         T(ns_with_glue),   T(caa_at_apex),       T(refused_outside),
        T(installation_addresses), T(challenge_values), T(negatives_need_a_lease), T(incomplete_feed), T(senders_merge),
        T(bad_keys_ignored),    T(max_records_bound), T(many_names),     T(bad_configs),
        T(truncation),          T(edns_answers),   T(not_answered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
