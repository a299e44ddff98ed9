/* dns_msg: DNS wire format, sans I/O: a strict parser of queries and a
 * response writer with name compression (RFC 1035, EDNS0 of RFC 6891).
 *
 * The parser accepts what a stub or a resolver sends: a header, exactly one
 * question whose name is not compressed, no answer or authority records, and
 * in the additional section at most one OPT record (other records, e.g.
 * TSIG, are skipped but must be well-formed). Nothing may trail the records. */
#ifndef SKDNS_DNS_MSG_H
#define SKDNS_DNS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_HEADER_LEN 12
#define DNS_NAME_MAX 255
#define DNS_LABEL_MAX 63
#define DNS_UDP_MIN 512   /* a client without EDNS */
#define DNS_UDP_MAX 1232  /* our EDNS payload size (DNS flag day 2020) */
#define DNS_TCP_MAX 65535
#define DNS_OPT_LEN 11    /* an OPT record without options */

enum {
    DNS_T_A = 1, DNS_T_NS = 2, DNS_T_SOA = 6, DNS_T_HINFO = 13, DNS_T_TXT = 16, DNS_T_AAAA = 28,
    DNS_T_OPT = 41, DNS_T_ANY = 255, DNS_T_CAA = 257,
};
enum { DNS_C_IN = 1 };
enum {
    DNS_R_NOERROR = 0, DNS_R_FORMERR = 1, DNS_R_SERVFAIL = 2, DNS_R_NXDOMAIN = 3, DNS_R_NOTIMP = 4,
    DNS_R_REFUSED = 5, DNS_R_BADVERS = 16, /* extended: the upper 8 bits go in the OPT record */
};
/* Header flags (second 16-bit word). */
#define DNS_F_QR 0x8000
#define DNS_F_AA 0x0400
#define DNS_F_TC 0x0200
#define DNS_F_RD 0x0100
#define DNS_F_CD 0x0010
#define DNS_OPCODE(flags) (((flags) >> 11) & 0xF)

typedef enum dns_parse {
    DNS_PARSE_OK = 0,
    DNS_PARSE_DROP,    /* not a query at all (short, or QR set): never answered */
    DNS_PARSE_FORMERR, /* a query header with a malformed rest */
    DNS_PARSE_NOTIMP,  /* an opcode other than QUERY; the rest is not parsed */
} dns_parse_t;

typedef struct dns_query {
    uint16_t id;
    uint16_t flags;
    /* The question: the name as sent (original case) is q + DNS_HEADER_LEN,
     * qname_len bytes; the question ends at question_end. */
    size_t qname_len;
    size_t question_end;
    uint16_t qtype, qclass;
    /* The name lowercased, split in labels: label i is lower + off[i]
     * (a length byte, then the label). */
    uint8_t lower[DNS_NAME_MAX];
    uint8_t off[DNS_NAME_MAX / 2];
    unsigned nlabels; /* without the root */
    /* EDNS0 */
    bool edns;
    uint16_t udp_size;
    uint8_t edns_version;
    bool dnssec_ok;
} dns_query_t;

dns_parse_t dns_parse_query(const uint8_t *q, size_t len, dns_query_t *out);

/* An empty truncated answer (TC, the question echoed) to a well-formed
 * query: what a rate-limited client gets now and then. 0 if q is not one. */
size_t dns_tc_reply(const uint8_t *q, size_t len, uint8_t *out, size_t cap);

/* "sk.test." or "sk.test" (no escapes) to wire form, lowercased. Returns the
 * length (with the root byte) or -1 for an empty label or a name too long. */
int dns_name_from_text(const char *text, uint8_t out[DNS_NAME_MAX]);
/* Length of a wire name (uncompressed, valid). */
size_t dns_name_len(const uint8_t *name);

/* ---- the response writer ----
 * Appends past limit set overflow and write nothing; the caller writes one
 * RRset at a time between dnsw_mark() and dnsw_rollback() so that a
 * truncated response holds whole RRsets only. */
#define DNSW_NAMES 32
typedef struct dnsw {
    uint8_t *buf;
    size_t len, limit;
    bool overflow;
    uint16_t names[DNSW_NAMES]; /* offsets of names written, for compression */
    size_t nnames;
} dnsw_t;

void dnsw_init(dnsw_t *w, uint8_t *buf, size_t limit);
void dnsw_bytes(dnsw_t *w, const void *data, size_t len);
void dnsw_u8(dnsw_t *w, uint8_t v);
void dnsw_u16(dnsw_t *w, uint16_t v);
void dnsw_u32(dnsw_t *w, uint32_t v);
/* A wire name (uncompressed), compressed against the names written before. */
void dnsw_name(dnsw_t *w, const uint8_t *name);
/* Makes the labels of the name at offset off (written raw, e.g. the copied
 * question) targets for compression. */
void dnsw_remember(dnsw_t *w, size_t off, const uint8_t *name);
/* Starts a record: owner, type, class IN, ttl and a length to fill in by
 * dnsw_rr_end(), which gets what dnsw_rr_begin() returned. */
size_t dnsw_rr_begin(dnsw_t *w, const uint8_t *owner, uint16_t type, uint32_t ttl);
void dnsw_rr_end(dnsw_t *w, size_t begin);
size_t dnsw_mark(const dnsw_t *w);
void dnsw_rollback(dnsw_t *w, size_t mark);

static inline uint16_t dns_get16(const uint8_t *p) {
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline void dns_put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

#endif
