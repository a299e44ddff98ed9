#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "../../server/proxy_v2.h"

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Builds a header: ver/cmd, family, address block and TLVs. */
static size_t build(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *addr, size_t addr_len,
                    const uint8_t *tlv, size_t tlv_len) {
    memcpy(out, sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    size_t body = addr_len + tlv_len;
    out[14] = (uint8_t)(body >> 8);
    out[15] = (uint8_t)body;
    if (addr_len)
        memcpy(out + 16, addr, addr_len);
    if (tlv_len)
        memcpy(out + 16 + addr_len, tlv, tlv_len);
    return 16 + body;
}

static const uint8_t v4[12] = {10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0x01, 0xbb};
static const uint8_t vpce_tlv[] = {0xEA, 0x00, 0x17, 0x01, 'v', 'p', 'c', 'e', '-', '0', '1', '2', '3', '4', '5',
                                   '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f', '0'};

static void tcp4_with_vpce(void **state) {
    (void)state;
    uint8_t buf[256];
    size_t n = build(buf, 0x21, 0x11, v4, sizeof v4, vpce_tlv, sizeof vpce_tlv);
    proxy_v2_info_t info;
    assert_int_equal(proxy_v2_parse(buf, n, &info), (int)n);
    assert_false(info.local);
    struct sockaddr_in *a = (struct sockaddr_in *)&info.source;
    assert_int_equal(a->sin_family, AF_INET);
    assert_int_equal(ntohl(a->sin_addr.s_addr), 0x0a000001);
    assert_int_equal(ntohs(a->sin_port), 40000);
    assert_string_equal(info.vpce_id, "vpce-0123456789abcdef0");
    /* every prefix asks for more */
    for (size_t k = 0; k < n; k++)
        assert_int_equal(proxy_v2_parse(buf, k, &info), 0);
}

static void tcp6_and_local(void **state) {
    (void)state;
    uint8_t addr[36] = {0}, buf[128];
    addr[15] = 1;
    addr[33] = 80;
    size_t n = build(buf, 0x21, 0x21, addr, sizeof addr, NULL, 0);
    proxy_v2_info_t info;
    assert_int_equal(proxy_v2_parse(buf, n, &info), (int)n);
    assert_int_equal(info.source.ss_family, AF_INET6);
    assert_string_equal(info.vpce_id, "");
    n = build(buf, 0x20, 0x00, NULL, 0, NULL, 0);
    assert_int_equal(proxy_v2_parse(buf, n, &info), 16);
    assert_true(info.local);
}

static void refused(void **state) {
    (void)state;
    uint8_t buf[2048];
    proxy_v2_info_t info;
    assert_int_equal(proxy_v2_parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &info), -1);
    assert_int_equal(proxy_v2_parse((const uint8_t *)"PROXY TCP4 1.2.3.4", 18, &info), -1); /* v1 */
    size_t n = build(buf, 0x11, 0x11, v4, sizeof v4, NULL, 0);                              /* version 1 */
    assert_int_equal(proxy_v2_parse(buf, n, &info), -1);
    n = build(buf, 0x22, 0x11, v4, sizeof v4, NULL, 0); /* unknown command */
    assert_int_equal(proxy_v2_parse(buf, n, &info), -1);
    n = build(buf, 0x21, 0x12, v4, sizeof v4, NULL, 0); /* UDP */
    assert_int_equal(proxy_v2_parse(buf, n, &info), -1);
    n = build(buf, 0x21, 0x11, v4, 8, NULL, 0); /* address block too short */
    assert_int_equal(proxy_v2_parse(buf, n, &info), -1);
    uint8_t bad_tlv[] = {0xEA, 0x00, 0x09, 0x01, 'a'}; /* claims more than it has */
    n = build(buf, 0x21, 0x11, v4, sizeof v4, bad_tlv, sizeof bad_tlv);
    assert_int_equal(proxy_v2_parse(buf, n, &info), -1);
    uint8_t ctl_tlv[] = {0xEA, 0x00, 0x03, 0x01, 'a', '\n'}; /* unprintable id */
    n = build(buf, 0x21, 0x11, v4, sizeof v4, ctl_tlv, sizeof ctl_tlv);
    assert_int_equal(proxy_v2_parse(buf, n, &info), -1);
    uint8_t big[1100] = {0};
    n = build(buf, 0x21, 0x11, big, sizeof big, NULL, 0); /* over PROXY_V2_MAX */
    assert_int_equal(proxy_v2_parse(buf, n, &info), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tcp4_with_vpce),
        cmocka_unit_test(tcp6_and_local),
        cmocka_unit_test(refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
