#include "cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4_mapped(const uint8_t a[16]) {
    return memcmp(a, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0;
}

/* Whether bits [prefix, bits) of addr are all zero. */
static bool host_bits_zero(const uint8_t *addr, unsigned prefix, unsigned bits) {
    for (unsigned i = prefix; i < bits; i++) {
        if (addr[i / 8] & (0x80u >> (i % 8)))
            return false;
    }
    return true;
}

/* "0" or 1 to 3 digits without a leading zero; -1 otherwise. */
static int parse_prefix(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* One "ADDRESS/PREFIX" of len bytes, already trimmed. idx numbers it (from 1)
 * in messages; the text itself is quoted only once known to be printable. */
static int parse_one(const char *text, size_t len, size_t idx, cidr_t *out, char *err,
                     size_t err_len) {
    char tok[64];
    if (len == 0) {
        snprintf(err, err_len, "network %zu is empty", idx);
        return -1;
    }
    if (len >= sizeof tok) {
        snprintf(err, err_len, "network %zu is too long", idx);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\0' || strchr("0123456789abcdefABCDEF:./", text[i]) == NULL) {
            snprintf(err, err_len, "network %zu has an unexpected character", idx);
            return -1;
        }
    }
    memcpy(tok, text, len);
    tok[len] = '\0';
    char *slash = strchr(tok, '/');
    if (slash == NULL) {
        snprintf(err, err_len, "%s: prefix length missing (ADDRESS/PREFIX)", tok);
        return -1;
    }
    *slash = '\0';
    memset(out, 0, sizeof *out);
    unsigned bits;
    if (inet_pton(AF_INET, tok, out->addr) == 1) {
        out->family = AF_INET;
        bits = 32;
    } else if (inet_pton(AF_INET6, tok, out->addr) == 1) {
        out->family = AF_INET6;
        bits = 128;
    } else {
        *slash = '/';
        snprintf(err, err_len, "%s: not an IPv4 or IPv6 address", tok);
        return -1;
    }
    int prefix = parse_prefix(slash + 1);
    *slash = '/';
    if (prefix < 0 || (unsigned)prefix > bits) {
        snprintf(err, err_len, "%s: prefix length must be 0 to %u", tok, bits);
        return -1;
    }
    out->prefix = (unsigned)prefix;
    if (!host_bits_zero(out->addr, out->prefix, bits)) {
        snprintf(err, err_len, "%s: host bits set", tok);
        return -1;
    }
    return 0;
}

int cidr_parse_list(const char *text, cidr_t *out, size_t max, size_t *n, char *err,
                         size_t err_len) {
    *n = 0;
    if (text == NULL || strnlen(text, CIDR_LIST_TEXT_MAX) >= CIDR_LIST_TEXT_MAX) {
        snprintf(err, err_len, "no networks or too long a list");
        return -1;
    }
    const char *p = text;
    for (;;) {
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && *a == ' ')
            a++;
        while (b > a && b[-1] == ' ')
            b--;
        if (*n == max) {
            snprintf(err, err_len, "more than %zu networks", max);
            return -1;
        }
        if (parse_one(a, (size_t)(b - a), *n + 1, &out[*n], err, err_len) != 0)
            return -1;
        (*n)++;
        if (*end == '\0')
            return 0;
        p = end + 1;
    }
}

int cidr_format_list(const cidr_t *nets, size_t n, char *out, size_t out_len) {
    size_t used = 0;
    if (out_len == 0)
        return -1;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char addr[INET6_ADDRSTRLEN];
        if (inet_ntop(nets[i].family, nets[i].addr, addr, sizeof addr) == NULL)
            return -1;
        int w = snprintf(out + used, out_len - used, "%s%s/%u", i ? "," : "", addr, nets[i].prefix);
        if (w < 0 || (size_t)w >= out_len - used)
            return -1;
        used += (size_t)w;
    }
    return 0;
}

bool cidr_contains(const cidr_t *net, int family, const void *addr) {
    const uint8_t *a = addr;
    if (family == AF_INET6 && net->family == AF_INET && is_v4_mapped(a)) {
        a += 12;
        family = AF_INET;
    }
    if (family != net->family)
        return false;
    unsigned full = net->prefix / 8, rest = net->prefix % 8;
    if (memcmp(a, net->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[full] & mask) == net->addr[full];
}

int ip_normalize(const char *in, char *out, size_t out_len) {
    uint8_t a[16];
    const char *r;
    if (in == NULL)
        return -1;
    if (inet_pton(AF_INET, in, a) == 1)
        r = inet_ntop(AF_INET, a, out, (socklen_t)out_len);
    else if (inet_pton(AF_INET6, in, a) == 1)
        r = is_v4_mapped(a) ? inet_ntop(AF_INET, a + 12, out, (socklen_t)out_len)
                            : inet_ntop(AF_INET6, a, out, (socklen_t)out_len);
    else
        return -1;
    return r ? 0 : -1;
}

bool cidr_list_contains(const cidr_t *nets, size_t n, int family, const void *addr) {
    for (size_t i = 0; i < n; i++)
        if (cidr_contains(&nets[i], family, addr))
            return true;
    return false;
}
