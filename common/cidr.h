/* cidr: networks (CIDR lists) and IP addresses in text form. */
#ifndef SKD_CIDR_H
#define SKD_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network address, host bits zero; AF_INET uses 4 bytes */
    unsigned prefix;  /* 0..32 or 0..128 */
} cidr_t;

/* Longest text of a list cidr_parse_list() accepts. */
#define CIDR_LIST_TEXT_MAX 4096

/* Parses one or more CIDRs separated by commas, spaces around them allowed:
 * "10.0.0.0/8, fd00::/8". Each needs its prefix length and no host bits set.
 * At most max entries. 0, or -1 with the reason in err. */
int cidr_parse_list(const char *text, cidr_t *out, size_t max, size_t *n, char *err, size_t err_len);
/* Canonical text: "10.0.0.0/8,fd00::/8". 0, or -1 if out is too small. */
int cidr_format_list(const cidr_t *nets, size_t n, char *out, size_t out_len);
/* Whether addr (4 or 16 bytes in network order, per family) lies in net.
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches IPv4 networks, as
 * dual-stack sockets report IPv4 peers that way. */
bool cidr_contains(const cidr_t *net, int family, const void *addr);
/* Whether any of nets holds addr. */
bool cidr_list_contains(const cidr_t *nets, size_t n, int family, const void *addr);
/* Canonical text of an IPv4 or IPv6 address (inet_ntop form; an
 * IPv4-mapped IPv6 address becomes plain IPv4). 0, or -1 if in is not an
 * address or out is too small (46 bytes is enough). */
int ip_normalize(const char *in, char *out, size_t out_len);

#endif
