/* skdns's wire format: the query parser and the response writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../skdns/dns_check.h"
#include "../../skdns/dns_msg.h"

/* A query: header, one question, optionally an OPT record (ttl: ext rcode,
 * version, flags). */
static size_t query(uint8_t *out, uint16_t flags, const char *name, uint16_t qtype, bool edns, uint16_t size,
                    uint32_t ttl) {
    uint8_t wire[DNS_NAME_MAX];
    int n = dns_name_from_text(name, wire);
    assert_true(n > 0);
    memset(out, 0, 12);
    dns_put16(out, 0x1234);
    dns_put16(out + 2, flags);
    dns_put16(out + 4, 1);
    dns_put16(out + 10, edns ? 1 : 0);
    size_t p = 12;
    memcpy(out + p, wire, (size_t)n);
    p += (size_t)n;
    dns_put16(out + p, qtype);
    dns_put16(out + p + 2, DNS_C_IN);
    p += 4;
    if (edns) {
        out[p++] = 0;
        dns_put16(out + p, DNS_T_OPT);
        dns_put16(out + p + 2, size);
        dns_put16(out + p + 4, (uint16_t)(ttl >> 16));
        dns_put16(out + p + 6, (uint16_t)ttl);
        dns_put16(out + p + 8, 0);
        p += 10;
    }
    return p;
}

static void parses_a_plain_query(void **state) {
    (void)state;
    uint8_t q[512];
    size_t n = query(q, DNS_F_RD, "Host1.SK.test.", DNS_T_A, false, 0, 0);
    dns_query_t dq;
    assert_int_equal(dns_parse_query(q, n, &dq), DNS_PARSE_OK);
    assert_int_equal(dq.id, 0x1234);
    assert_int_equal(dq.qtype, DNS_T_A);
    assert_int_equal(dq.qclass, DNS_C_IN);
    assert_int_equal(dq.nlabels, 3);
    assert_int_equal(dq.qname_len, 15);
    assert_int_equal(dq.question_end, n);
    assert_memory_equal(dq.lower, "\x05host1\x02sk\x04test\x00", 15);
    assert_int_equal(dq.off[0], 0);
    assert_int_equal(dq.off[1], 6);
    assert_int_equal(dq.off[2], 9);
    assert_false(dq.edns);
    /* every strict prefix is malformed or not a query */
    for (size_t k = 0; k < n; k++)
        assert_int_not_equal(dns_parse_query(q, k, &dq), DNS_PARSE_OK);
    /* the root */
    n = query(q, 0, ".", DNS_T_NS, false, 0, 0);
    assert_int_equal(dns_parse_query(q, n, &dq), DNS_PARSE_OK);
    assert_int_equal(dq.nlabels, 0);
    assert_int_equal(dq.qname_len, 1);
}

static void parses_edns(void **state) {
    (void)state;
    uint8_t q[512];
    size_t n = query(q, 0, "sk.test", DNS_T_SOA, true, 4096, 0x00008000);
    dns_query_t dq;
    assert_int_equal(dns_parse_query(q, n, &dq), DNS_PARSE_OK);
    assert_true(dq.edns);
    assert_int_equal(dq.udp_size, 4096);
    assert_int_equal(dq.edns_version, 0);
    assert_true(dq.dnssec_ok);
    n = query(q, 0, "sk.test", DNS_T_SOA, true, 1232, 0x00010000);
    assert_int_equal(dns_parse_query(q, n, &dq), DNS_PARSE_OK);
    assert_int_equal(dq.edns_version, 1);
    assert_false(dq.dnssec_ok);
    /* with options: a cookie (10) of 8 bytes and an empty padding (12) */
    static const uint8_t opts[] = {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 12, 0, 0};
    dns_put16(q + n - 2, sizeof opts);
    memcpy(q + n, opts, sizeof opts);
    assert_int_equal(dns_parse_query(q, n + sizeof opts, &dq), DNS_PARSE_OK);
    /* an option longer than the record */
    q[n + 3] = 9;
    assert_int_equal(dns_parse_query(q, n + sizeof opts, &dq), DNS_PARSE_FORMERR);
    /* an option header cut short */
    q[n + 3] = 8;
    dns_put16(q + n - 2, 14);
    assert_int_equal(dns_parse_query(q, n + 14, &dq), DNS_PARSE_FORMERR);
}

static void refuses_bad_edns(void **state) {
    (void)state;
    uint8_t q[512];
    dns_query_t dq;
    size_t n = query(q, 0, "sk.test", DNS_T_SOA, true, 1232, 0);
    /* two OPT records */
    memcpy(q + n, q + n - 11, 11);
    dns_put16(q + 10, 2);
    assert_int_equal(dns_parse_query(q, n + 11, &dq), DNS_PARSE_FORMERR);
    /* an OPT owned by another name than the root */
    n = query(q, 0, "sk.test", DNS_T_SOA, false, 0, 0);
    static const uint8_t opt_named[] = {1, 'x', 0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0};
    memcpy(q + n, opt_named, sizeof opt_named);
    dns_put16(q + 10, 1);
    assert_int_equal(dns_parse_query(q, n + sizeof opt_named, &dq), DNS_PARSE_FORMERR);
    /* another record (a TSIG-like one, compressed owner) is skipped */
    static const uint8_t other[] = {0xC0, 12, 0, 250, 0, 255, 0, 0, 0, 0, 0, 2, 0xAA, 0xBB};
    memcpy(q + n, other, sizeof other);
    assert_int_equal(dns_parse_query(q, n + sizeof other, &dq), DNS_PARSE_OK);
    assert_false(dq.edns);
    /* ... but its data must be there */
    assert_int_equal(dns_parse_query(q, n + sizeof other - 1, &dq), DNS_PARSE_FORMERR);
}

static void refuses_malformed(void **state) {
    (void)state;
    uint8_t q[600];
    dns_query_t dq;
    size_t n = query(q, 0, "a.sk.test", DNS_T_A, false, 0, 0);
    assert_int_equal(dns_parse_query(q, 11, &dq), DNS_PARSE_DROP);
    q[2] |= 0x80; /* a response */
    assert_int_equal(dns_parse_query(q, n, &dq), DNS_PARSE_DROP);
    q[2] = 0x10; /* opcode 2 (STATUS) */
    assert_int_equal(dns_parse_query(q, n, &dq), DNS_PARSE_NOTIMP);
    q[2] = 0;
    assert_int_equal(dns_parse_query(q, n, &dq), DNS_PARSE_OK);
    for (int field = 4; field <= 8; field += 2) { /* qdcount 2, an answer, an authority record */
        uint8_t c[600];
        memcpy(c, q, n);
        dns_put16(c + field, field == 4 ? 2 : 1);
        assert_int_equal(dns_parse_query(c, n, &dq), DNS_PARSE_FORMERR);
    }
    dns_put16(q + 4, 0);
    assert_int_equal(dns_parse_query(q, n, &dq), DNS_PARSE_FORMERR);
    dns_put16(q + 4, 1);
    /* trailing bytes */
    q[n] = 0;
    assert_int_equal(dns_parse_query(q, n + 1, &dq), DNS_PARSE_FORMERR);
    /* a compression pointer in the question */
    uint8_t c[64];
    memcpy(c, q, 12);
    static const uint8_t ptr[] = {1, 'a', 0xC0, 12, 0, 1, 0, 1};
    memcpy(c + 12, ptr, sizeof ptr);
    assert_int_equal(dns_parse_query(c, 12 + sizeof ptr, &dq), DNS_PARSE_FORMERR);
    /* an extended label type (0x40) */
    c[12] = 0x41;
    assert_int_equal(dns_parse_query(c, 12 + sizeof ptr, &dq), DNS_PARSE_FORMERR);
    /* a name of 256 bytes: 3 labels of 63, one of 62, the root */
    for (int over = 1; over >= 0; over--) {
        size_t p = 12;
        for (int i = 0; i < 4; i++) {
            uint8_t l = i < 3 ? 63 : (uint8_t)(61 + over);
            q[p++] = l;
            memset(q + p, 'x', l);
            p += l;
        }
        q[p++] = 0;
        memcpy(q + p, "\0\1\0\1", 4);
        assert_int_equal(p - 12, 255 + over);
        assert_int_equal(dns_parse_query(q, p + 4, &dq), over ? DNS_PARSE_FORMERR : DNS_PARSE_OK);
    }
    assert_int_equal(dq.qname_len, 255);
    assert_int_equal(dq.nlabels, 4);
}

static void names_from_text(void **state) {
    (void)state;
    uint8_t w[DNS_NAME_MAX];
    assert_int_equal(dns_name_from_text("SK.test.", w), 9);
    assert_memory_equal(w, "\x02sk\x04test", 9);
    assert_int_equal(dns_name_from_text("sk.test", w), 9);
    assert_int_equal(dns_name_from_text(".", w), 1);
    assert_int_equal(w[0], 0);
    assert_int_equal(dns_name_from_text("", w), 1);
    assert_int_equal(dns_name_from_text("a..b", w), -1);
    assert_int_equal(dns_name_from_text(".a", w), -1);
    char label[80];
    memset(label, 'x', 64);
    label[64] = '\0';
    assert_int_equal(dns_name_from_text(label, w), -1);
    label[63] = '\0';
    assert_int_equal(dns_name_from_text(label, w), 65);
    char longname[300] = "";
    for (int i = 0; i < 4; i++)
        strcat(strcat(longname, label), ".");
    assert_int_equal(dns_name_from_text(longname, w), -1); /* 257 bytes */
    assert_int_equal(dns_name_len((const uint8_t *)"\x02sk\x04test"), 9);
}

static void writer_compresses(void **state) {
    (void)state;
    uint8_t buf[512], a[DNS_NAME_MAX], b[DNS_NAME_MAX], c[DNS_NAME_MAX];
    dns_name_from_text("host.sk.test", a);
    dns_name_from_text("ns1.sk.test", b);
    dnsw_t w;
    dnsw_init(&w, buf, sizeof buf);
    dnsw_bytes(&w, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
    /* a name in the asker's case, remembered as written raw */
    static const uint8_t mixed[] = "\x04HoSt\x02Sk\x04TEST";
    dnsw_bytes(&w, mixed, sizeof mixed);
    dnsw_remember(&w, 12, mixed);
    dnsw_name(&w, a); /* the whole name: one pointer */
    assert_int_equal(w.len, 12 + 14 + 2);
    assert_memory_equal(buf + 26, "\xC0\x0C", 2);
    dnsw_name(&w, b); /* ns1, then the pointer to sk.test */
    assert_memory_equal(buf + 28, "\x03ns1\xC0\x11", 6);
    size_t mark = dnsw_mark(&w);
    dnsw_name(&w, b); /* all of it now */
    assert_memory_equal(buf + 34, "\xC0\x1C", 2);
    dnsw_rollback(&w, mark);
    assert_int_equal(w.len, 34);
    dns_name_from_text("x.ns1.sk.test", c);
    dnsw_name(&w, c);
    assert_memory_equal(buf + 34, "\x01x\xC0\x1C", 4);
    /* the root is never a pointer */
    dnsw_name(&w, (const uint8_t *)"");
    assert_int_equal(buf[w.len - 1], 0);
    /* other names: written whole */
    dns_name_from_text("example.net", c);
    size_t before = w.len;
    dnsw_name(&w, c);
    assert_int_equal(w.len - before, 13);
}

static void writer_overflows_cleanly(void **state) {
    (void)state;
    uint8_t buf[20];
    dnsw_t w;
    dnsw_init(&w, buf, 16);
    dnsw_bytes(&w, "0123456789", 10);
    size_t mark = dnsw_mark(&w);
    dnsw_u32(&w, 1);
    assert_false(w.overflow);
    dnsw_u32(&w, 2); /* 18 > 16 */
    assert_true(w.overflow);
    assert_int_equal(w.len, 14);
    dnsw_u8(&w, 3); /* fits, but overflow is sticky */
    assert_int_equal(w.len, 14);
    dnsw_rollback(&w, mark);
    assert_false(w.overflow);
    assert_int_equal(w.len, 10);
}

static void check_parser_follows_pointers(void **state) {
    (void)state;
    /* a response built with the writer reads back */
    uint8_t buf[512], owner[DNS_NAME_MAX], ns[DNS_NAME_MAX];
    dns_name_from_text("sk.test", owner);
    dns_name_from_text("ns1.sk.test", ns);
    dnsw_t w;
    dnsw_init(&w, buf, sizeof buf);
    dnsw_bytes(&w, "\x12\x34\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00", 12);
    dnsw_name(&w, owner);
    dnsw_u16(&w, DNS_T_NS);
    dnsw_u16(&w, DNS_C_IN);
    size_t b = dnsw_rr_begin(&w, owner, DNS_T_NS, 3600);
    dnsw_name(&w, ns);
    dnsw_rr_end(&w, b);
    dns_resp_t r;
    dns_rr_view_t rr;
    assert_int_equal(dns_check_response(buf, w.len, &r, &rr, 1), 0);
    assert_int_equal(r.nrr, 1);
    assert_true(dns_name_equal(rr.owner, owner));
    assert_true(dns_name_equal(rr.target, ns));
    assert_int_equal(rr.ttl, 3600);
    /* a forward pointer is refused */
    buf[w.len - 1] = (uint8_t)(w.len);
    assert_int_equal(dns_check_response(buf, w.len, &r, &rr, 1), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_a_plain_query),
        cmocka_unit_test(parses_edns),
        cmocka_unit_test(refuses_bad_edns),
        cmocka_unit_test(refuses_malformed),
        cmocka_unit_test(names_from_text),
        cmocka_unit_test(writer_compresses),
        cmocka_unit_test(writer_overflows_cleanly),
        cmocka_unit_test(check_parser_follows_pointers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
