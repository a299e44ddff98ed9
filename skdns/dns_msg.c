#include "dns_msg.h"

#include <string.h>

static inline uint8_t lower(uint8_t c) {
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* Skips a name in the additional section; a compression pointer ends it
 * (its target is never read). */
static int skip_name(const uint8_t *q, size_t len, size_t *p) {
    size_t total = 0;
    for (;;) {
        if (*p >= len)
            return -1;
        uint8_t l = q[*p];
        if ((l & 0xC0) == 0xC0) {
            if (len - *p < 2)
                return -1;
            *p += 2;
            return 0;
        }
        if (l > DNS_LABEL_MAX || (total += 1u + l) > DNS_NAME_MAX)
            return -1;
        *p += 1u + l;
        if (l == 0)
            return 0;
    }
}

static dns_parse_t parse_opt(const uint8_t *rr, const uint8_t *rdata, size_t rdlen, dns_query_t *out) {
    if (out->edns)
        return DNS_PARSE_FORMERR; /* two OPT records (RFC 6891 6.1.1) */
    out->edns = true;
    out->udp_size = dns_get16(rr + 2);
    out->edns_version = rr[5];
    out->dnssec_ok = rr[6] & 0x80;
    for (size_t o = 0; o < rdlen;) { /* options: code, length, data; none is used */
        if (rdlen - o < 4 || dns_get16(rdata + o + 2) > rdlen - o - 4)
            return DNS_PARSE_FORMERR;
        o += 4u + dns_get16(rdata + o + 2);
    }
    return DNS_PARSE_OK;
}

dns_parse_t dns_parse_query(const uint8_t *q, size_t len, dns_query_t *out) {
    if (len < DNS_HEADER_LEN || (q[2] & 0x80))
        return DNS_PARSE_DROP;
    out->id = dns_get16(q);
    out->flags = dns_get16(q + 2);
    out->edns = false;
    out->dnssec_ok = false;
    out->nlabels = 0;
    out->qname_len = 0;
    if (DNS_OPCODE(out->flags) != 0)
        return DNS_PARSE_NOTIMP;
    if (dns_get16(q + 4) != 1 || dns_get16(q + 6) != 0 || dns_get16(q + 8) != 0)
        return DNS_PARSE_FORMERR;
    unsigned arcount = dns_get16(q + 10);

    size_t p = DNS_HEADER_LEN, n = 0;
    for (;;) { /* the question name: plain labels only */
        if (p >= len)
            return DNS_PARSE_FORMERR;
        uint8_t l = q[p];
        if (l > DNS_LABEL_MAX || l >= len - p || (l && n + 2u + l > DNS_NAME_MAX))
            return DNS_PARSE_FORMERR; /* pointer, bad label type, past the end, too long */
        out->lower[n] = l;
        if (l == 0)
            break;
        out->off[out->nlabels++] = (uint8_t)n;
        for (size_t i = 1; i <= l; i++)
            out->lower[n + i] = lower(q[p + i]);
        n += 1u + l;
        p += 1u + l;
    }
    out->qname_len = n + 1;
    p++;
    if (len - p < 4)
        return DNS_PARSE_FORMERR;
    out->qtype = dns_get16(q + p);
    out->qclass = dns_get16(q + p + 2);
    p += 4;
    out->question_end = p;

    for (unsigned i = 0; i < arcount; i++) {
        size_t owner = p;
        if (skip_name(q, len, &p) != 0 || len - p < 10)
            return DNS_PARSE_FORMERR;
        const uint8_t *rr = q + p;
        size_t rdlen = dns_get16(rr + 8);
        p += 10;
        if (rdlen > len - p)
            return DNS_PARSE_FORMERR;
        if (dns_get16(rr) == DNS_T_OPT) {
            if (q[owner] != 0) /* OPT belongs to the root */
                return DNS_PARSE_FORMERR;
            dns_parse_t r = parse_opt(rr, q + p, rdlen, out);
            if (r != DNS_PARSE_OK)
                return r;
        }
        p += rdlen;
    }
    return p == len ? DNS_PARSE_OK : DNS_PARSE_FORMERR;
}

size_t dns_tc_reply(const uint8_t *q, size_t len, uint8_t *out, size_t cap) {
    dns_query_t dq;
    if (dns_parse_query(q, len, &dq) != DNS_PARSE_OK || cap < dq.question_end)
        return 0;
    memcpy(out, q, dq.question_end);
    dns_put16(out + 2, (uint16_t)(DNS_F_QR | DNS_F_TC | (dq.flags & (DNS_F_RD | DNS_F_CD))));
    memset(out + 6, 0, 6);
    return dq.question_end;
}

int dns_name_from_text(const char *text, uint8_t out[DNS_NAME_MAX]) {
    size_t n = 0;
    const char *s = text;
    if (strcmp(s, ".") == 0)
        s++;
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        if (l == 0 || l > DNS_LABEL_MAX || n + 1 + l + 1 > DNS_NAME_MAX)
            return -1;
        out[n] = (uint8_t)l;
        for (size_t i = 0; i < l; i++)
            out[n + 1 + i] = lower((uint8_t)s[i]);
        n += 1 + l;
        s += l;
        if (*s == '.')
            s++;
    }
    out[n++] = 0;
    return (int)n;
}

size_t dns_name_len(const uint8_t *name) {
    size_t n = 0;
    while (name[n])
        n += 1u + name[n];
    return n + 1;
}

/* ---- writer ---- */

void dnsw_init(dnsw_t *w, uint8_t *buf, size_t limit) {
    w->buf = buf;
    w->len = 0;
    w->limit = limit;
    w->overflow = false;
    w->nnames = 0;
}

void dnsw_bytes(dnsw_t *w, const void *data, size_t len) {
    if (w->overflow || len > w->limit - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, data, len);
    w->len += len;
}

void dnsw_u8(dnsw_t *w, uint8_t v) {
    dnsw_bytes(w, &v, 1);
}

void dnsw_u16(dnsw_t *w, uint16_t v) {
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    dnsw_bytes(w, b, 2);
}

void dnsw_u32(dnsw_t *w, uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    dnsw_bytes(w, b, 4);
}

/* Whether the name written at off (perhaps ending in a pointer) equals the
 * uncompressed name s, ignoring case. The buffer holds only names this
 * writer made, whose pointers go backwards; the hop bound is a safety net. */
static bool name_at_equals(const uint8_t *buf, size_t off, const uint8_t *s) {
    for (int hops = 0; hops < DNS_NAME_MAX;) {
        uint8_t l = buf[off];
        if ((l & 0xC0) == 0xC0) {
            off = (size_t)(l & 0x3F) << 8 | buf[off + 1];
            hops++;
            continue;
        }
        if (l != *s)
            return false;
        if (l == 0)
            return true;
        for (size_t i = 1; i <= l; i++)
            if (lower(buf[off + i]) != lower(s[i]))
                return false;
        off += 1u + l;
        s += 1u + l;
    }
    return false;
}

/* Remembers the labels of name written raw at off, up to its byte end. */
static void remember(dnsw_t *w, size_t off, const uint8_t *name, const uint8_t *end) {
    for (; name < end && *name && off < 0x4000 && w->nnames < DNSW_NAMES; name += 1u + *name) {
        w->names[w->nnames++] = (uint16_t)off;
        off += 1u + *name;
    }
}

void dnsw_remember(dnsw_t *w, size_t off, const uint8_t *name) {
    remember(w, off, name, name + dns_name_len(name));
}

void dnsw_name(dnsw_t *w, const uint8_t *name) {
    size_t start = w->len;
    for (const uint8_t *s = name; *s; s += 1u + *s) {
        for (size_t i = 0; i < w->nnames; i++) {
            if (!name_at_equals(w->buf, w->names[i], s))
                continue;
            uint16_t target = w->names[i];
            dnsw_bytes(w, name, (size_t)(s - name));
            dnsw_u16(w, 0xC000 | target);
            if (!w->overflow)
                remember(w, start, name, s);
            return;
        }
    }
    dnsw_bytes(w, name, dns_name_len(name));
    if (!w->overflow)
        dnsw_remember(w, start, name);
}

size_t dnsw_rr_begin(dnsw_t *w, const uint8_t *owner, uint16_t type, uint32_t ttl) {
    dnsw_name(w, owner);
    dnsw_u16(w, type);
    dnsw_u16(w, DNS_C_IN);
    dnsw_u32(w, ttl);
    dnsw_u16(w, 0);
    return w->len;
}

void dnsw_rr_end(dnsw_t *w, size_t begin) {
    if (!w->overflow)
        dns_put16(w->buf + begin - 2, (uint16_t)(w->len - begin));
}

size_t dnsw_mark(const dnsw_t *w) {
    return w->len;
}

void dnsw_rollback(dnsw_t *w, size_t mark) {
    w->len = mark;
    w->overflow = false;
    while (w->nnames > 0 && w->names[w->nnames - 1] >= mark)
        w->nnames--;
}
