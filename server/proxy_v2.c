#include "proxy_v2.h"

#include <netinet/in.h>
#include <string.h>

static const uint8_t signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

#define PP2_TYPE_AWS 0xEA
#define PP2_SUBTYPE_AWS_VPCE_ID 0x01

static int parse_tlvs(const uint8_t *p, size_t len, proxy_v2_info_t *out) {
    while (len > 0) {
        if (len < 3)
            return -1;
        size_t vlen = (size_t)p[1] << 8 | p[2];
        if (vlen > len - 3)
            return -1;
        if (p[0] == PP2_TYPE_AWS && vlen >= 1 && p[3] == PP2_SUBTYPE_AWS_VPCE_ID) {
            size_t n = vlen - 1;
            if (n == 0 || n >= sizeof out->vpce_id)
                return -1;
            for (size_t i = 0; i < n; i++) /* printable ids only: they reach logs */
                if (p[4 + i] < 0x21 || p[4 + i] > 0x7e)
                    return -1;
            memcpy(out->vpce_id, p + 4, n);
            out->vpce_id[n] = '\0';
        }
        p += 3 + vlen;
        len -= 3 + vlen;
    }
    return 0;
}

int proxy_v2_parse(const uint8_t *data, size_t len, proxy_v2_info_t *out) {
    size_t check = len < sizeof signature ? len : sizeof signature;
    if (memcmp(data, signature, check) != 0)
        return -1;
    if (len < 16)
        return 0;
    uint8_t version = data[12] >> 4, command = data[12] & 0x0F;
    uint8_t family = data[13];
    size_t body = (size_t)data[14] << 8 | data[15];
    if (version != 2 || command > 1 || 16 + body > PROXY_V2_MAX)
        return -1;
    if (len < 16 + body)
        return 0;
    memset(out, 0, sizeof *out);
    const uint8_t *p = data + 16;
    size_t addr_len;
    if (family == 0x11) { /* TCP over IPv4 */
        addr_len = 12;
        if (body < addr_len)
            return -1;
        struct sockaddr_in *a = (struct sockaddr_in *)&out->source;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, p, 4);
        memcpy(&a->sin_port, p + 8, 2);
    } else if (family == 0x21) { /* TCP over IPv6 */
        addr_len = 36;
        if (body < addr_len)
            return -1;
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->source;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, p, 16);
        memcpy(&a->sin6_port, p + 32, 2);
    } else if (family == 0x00 && command == 0) { /* LOCAL, UNSPEC */
        addr_len = 0;
    } else {
        return -1; /* UDP or UNIX: never in front of skd */
    }
    out->local = command == 0;
    if (out->local)
        memset(&out->source, 0, sizeof out->source);
    if (parse_tlvs(p + addr_len, body - addr_len, out) != 0)
        return -1;
    return (int)(16 + body);
}
