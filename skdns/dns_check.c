#include "dns_check.h"

#include <string.h>

/* Reads a possibly compressed name at *p into out; *p moves past it. */
static int read_name(const uint8_t *m, size_t len, size_t *p, uint8_t out[DNS_NAME_MAX]) {
    size_t o = *p, n = 0;
    bool jumped = false;
    for (;;) {
        if (o >= len)
            return -1;
        uint8_t l = m[o];
        if ((l & 0xC0) == 0xC0) {
            if (len - o < 2)
                return -1;
            size_t target = (size_t)(l & 0x3F) << 8 | m[o + 1];
            if (!jumped)
                *p = o + 2;
            if (target >= o)
                return -1; /* backwards only: no loops */
            jumped = true;
            o = target;
            continue;
        }
        if (l > DNS_LABEL_MAX || len - o <= l || (l && n + 2u + l > DNS_NAME_MAX))
            return -1;
        memcpy(out + n, m + o, 1u + l);
        n += 1u + l;
        o += 1u + l;
        if (l == 0)
            break;
    }
    if (!jumped)
        *p = o;
    return 0;
}

/* Character-strings filling exactly len bytes; how many, or -1. */
static int strings(const uint8_t *d, size_t len) {
    int n = 0;
    for (size_t o = 0; o < len; o += 1u + d[o], n++)
        if (d[o] >= len - o)
            return -1;
    return n;
}

static int check_rdata(const uint8_t *m, size_t p, dns_rr_view_t *rr) {
    size_t end = p + rr->rdlen;
    const uint8_t *d = m + p;
    switch (rr->type) {
    case DNS_T_A:
        return rr->rdlen == 4 ? 0 : -1;
    case DNS_T_AAAA:
        return rr->rdlen == 16 ? 0 : -1;
    case DNS_T_NS:
        return read_name(m, end, &p, rr->target) == 0 && p == end ? 0 : -1;
    case DNS_T_SOA: {
        uint8_t rname[DNS_NAME_MAX];
        if (read_name(m, end, &p, rr->target) != 0 || read_name(m, end, &p, rname) != 0)
            return -1;
        return end - p == 20 ? 0 : -1;
    }
    case DNS_T_TXT:
        return rr->rdlen > 0 && strings(d, rr->rdlen) > 0 ? 0 : -1;
    case DNS_T_HINFO:
        return strings(d, rr->rdlen) == 2 ? 0 : -1;
    case DNS_T_CAA:
        return rr->rdlen >= 2 && d[1] >= 1 && d[1] <= rr->rdlen - 2 ? 0 : -1;
    default:
        return -1; /* skdns writes no other type */
    }
}

int dns_check_response(const uint8_t *m, size_t len, dns_resp_t *out, dns_rr_view_t *rrs, size_t max_rrs) {
    memset(out, 0, sizeof *out);
    if (len < DNS_HEADER_LEN)
        return -1;
    out->id = dns_get16(m);
    out->flags = dns_get16(m + 2);
    out->rcode = out->flags & 0xF;
    out->qdcount = dns_get16(m + 4);
    for (int s = 0; s < 3; s++)
        out->count[s] = dns_get16(m + 6 + 2 * s);
    if (!(out->flags & DNS_F_QR) || out->qdcount > 1)
        return -1;
    size_t p = DNS_HEADER_LEN;
    if (out->qdcount == 1) {
        if (read_name(m, len, &p, out->qname) != 0 || len - p < 4)
            return -1;
        out->qtype = dns_get16(m + p);
        out->qclass = dns_get16(m + p + 2);
        p += 4;
    }
    for (int s = 0; s < 3; s++) {
        for (unsigned i = 0; i < out->count[s]; i++) {
            dns_rr_view_t tmp, *rr = out->nrr < max_rrs ? &rrs[out->nrr] : &tmp;
            memset(rr, 0, sizeof *rr);
            rr->section = s;
            if (read_name(m, len, &p, rr->owner) != 0 || len - p < 10)
                return -1;
            rr->type = dns_get16(m + p);
            rr->rclass = dns_get16(m + p + 2);
            rr->ttl = (uint32_t)dns_get16(m + p + 4) << 16 | dns_get16(m + p + 6);
            rr->rdlen = dns_get16(m + p + 8);
            p += 10;
            if (rr->rdlen > len - p)
                return -1;
            rr->rdata = m + p;
            if (rr->type == DNS_T_OPT) {
                if (s != 2 || out->edns || rr->owner[0] != 0)
                    return -1;
                out->edns = true;
                out->udp_size = rr->rclass;
                out->rcode |= (int)(rr->ttl >> 24) << 4;
                out->edns_version = (uint8_t)(rr->ttl >> 16);
                out->dnssec_ok = rr->ttl & 0x8000;
            } else {
                if (rr->rclass != DNS_C_IN || check_rdata(m, p, rr) != 0)
                    return -1;
                out->nrr++;
            }
            p += rr->rdlen;
        }
    }
    return p == len ? 0 : -1;
}

bool dns_name_equal(const uint8_t *a, const uint8_t *b) {
    size_t la = dns_name_len(a);
    if (la != dns_name_len(b))
        return false;
    for (size_t i = 0; i < la; i++) {
        uint8_t x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return false;
    }
    return true;
}
