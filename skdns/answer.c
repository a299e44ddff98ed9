/* dns_answer: the rules of skdns (see zone.h), from a query to a response.
 *
 * Names in the zone, by depth below the apex:
 *   0  the apex: SOA, NS (with glue), CAA;
 *   1  <label>: an NS name of the configuration (its glue), or an
 *      installation name (A, AAAA fed by kvpsync);
 *   2  _acme-challenge.<label>: TXT fed by kvpsync;
 *   anything else never exists.
 * A negative answer about what kvpsync feeds is only given when the caller
 * says negatives are safe (DNS_FEED_CONFIDENT); otherwise SERVFAIL, so that
 * no resolver caches a false negative. Negatives that kvpsync cannot change
 * (a type it never feeds at a name that exists, a name it can never create)
 * are always given. Before any sender has sent its whole set
 * (DNS_FEED_INCOMPLETE) every fed name is SERVFAIL: a record set could lack
 * values. */
#include <string.h>

#include "dns_msg.h"
#include "zone.h"

typedef struct reply {
    dnsw_t w;
    const dns_query_t *q;
    const zone_config_t *cfg;
    uint16_t count[3]; /* answer, authority, additional */
    bool aa, tc;
} reply_t;

enum { ANSWER, AUTHORITY, ADDITIONAL };

static const uint8_t acme_label[] = "\x0f_acme-challenge";

/* ---- RRsets: each is written whole or not at all (then TC) ---- */

typedef struct rrset {
    size_t mark;
    uint16_t n;
} rrset_t;

static bool rrset_begin(reply_t *r, rrset_t *s) {
    s->mark = dnsw_mark(&r->w);
    s->n = 0;
    return !r->tc; /* nothing is added after a truncation */
}

static void rrset_end(reply_t *r, rrset_t *s, int section) {
    if (r->w.overflow) {
        dnsw_rollback(&r->w, s->mark);
        r->tc = true;
        return;
    }
    r->count[section] += s->n;
}

static void rr_bytes(reply_t *r, rrset_t *s, const uint8_t *owner, uint16_t type, uint32_t ttl,
                     const void *data, size_t len) {
    size_t b = dnsw_rr_begin(&r->w, owner, type, ttl);
    dnsw_bytes(&r->w, data, len);
    dnsw_rr_end(&r->w, b);
    s->n++;
}

static void add_soa(reply_t *r, int section, uint32_t ttl) {
    rrset_t s;
    if (!rrset_begin(r, &s))
        return;
    const zone_config_t *c = r->cfg;
    size_t b = dnsw_rr_begin(&r->w, c->apex, DNS_T_SOA, ttl);
    dnsw_name(&r->w, c->soa_mname);
    dnsw_name(&r->w, c->soa_rname);
    dnsw_u32(&r->w, c->serial);
    dnsw_u32(&r->w, c->refresh);
    dnsw_u32(&r->w, c->retry);
    dnsw_u32(&r->w, c->expire);
    dnsw_u32(&r->w, c->minimum);
    dnsw_rr_end(&r->w, b);
    s.n++;
    rrset_end(r, &s, section);
}

static void add_glue(reply_t *r, const zone_ns_t *ns, int section) {
    rrset_t s;
    if (rrset_begin(r, &s)) {
        for (size_t i = 0; i < ns->n_a; i++)
            rr_bytes(r, &s, ns->name, DNS_T_A, r->cfg->apex_ttl, ns->a[i], 4);
        rrset_end(r, &s, section);
    }
    if (rrset_begin(r, &s)) {
        for (size_t i = 0; i < ns->n_aaaa; i++)
            rr_bytes(r, &s, ns->name, DNS_T_AAAA, r->cfg->apex_ttl, ns->aaaa[i], 16);
        rrset_end(r, &s, section);
    }
}

static void add_ns(reply_t *r) {
    rrset_t s;
    if (!rrset_begin(r, &s))
        return;
    for (size_t i = 0; i < r->cfg->n_ns; i++) {
        size_t b = dnsw_rr_begin(&r->w, r->cfg->apex, DNS_T_NS, r->cfg->apex_ttl);
        dnsw_name(&r->w, r->cfg->ns[i].name);
        dnsw_rr_end(&r->w, b);
        s.n++;
    }
    rrset_end(r, &s, ANSWER);
    for (size_t i = 0; i < r->cfg->n_ns; i++)
        add_glue(r, &r->cfg->ns[i], ADDITIONAL);
}

static void add_caa(reply_t *r) {
    rrset_t s;
    if (!rrset_begin(r, &s))
        return;
    for (size_t i = 0; i < r->cfg->n_caa; i++) {
        const zone_caa_t *caa = &r->cfg->caa[i];
        size_t tag = strlen(caa->tag), value = strlen(caa->value);
        size_t b = dnsw_rr_begin(&r->w, r->cfg->apex, DNS_T_CAA, r->cfg->apex_ttl);
        dnsw_u8(&r->w, caa->flags);
        dnsw_u8(&r->w, (uint8_t)tag);
        dnsw_bytes(&r->w, caa->tag, tag);
        dnsw_bytes(&r->w, caa->value, value);
        dnsw_rr_end(&r->w, b);
        s.n++;
    }
    rrset_end(r, &s, ANSWER);
}

/* A, AAAA or TXT values fed by kvpsync, owned by the query's name. */
static void add_fed(reply_t *r, uint16_t type, const zone_rr_t *rr) {
    rrset_t s;
    if (!rrset_begin(r, &s))
        return;
    for (; rr; rr = rr->next) {
        size_t b = dnsw_rr_begin(&r->w, r->q->lower, type, r->cfg->ttl);
        if (type == DNS_T_TXT)
            dnsw_u8(&r->w, rr->len); /* one character-string */
        dnsw_bytes(&r->w, rr->data, rr->len);
        dnsw_rr_end(&r->w, b);
        s.n++;
        if (r->w.overflow)
            break;
    }
    rrset_end(r, &s, ANSWER);
}

/* RFC 8482: ANY gets a small synthesized HINFO instead of everything. */
static void add_hinfo(reply_t *r) {
    static const uint8_t hinfo[] = "\x07RFC8482\x00";
    rrset_t s;
    if (!rrset_begin(r, &s))
        return;
    rr_bytes(r, &s, r->q->lower, DNS_T_HINFO, r->cfg->ttl, hinfo, sizeof hinfo - 1);
    rrset_end(r, &s, ANSWER);
}

/* NXDOMAIN or NODATA; confident: kvpsync cannot make it wrong. */
static int negative(reply_t *r, bool nxdomain, bool confident, bool negatives_ok) {
    if (!confident && !negatives_ok) {
        r->aa = false;
        return DNS_R_SERVFAIL;
    }
    uint32_t ttl = r->cfg->minimum < r->cfg->apex_ttl ? r->cfg->minimum : r->cfg->apex_ttl;
    add_soa(r, AUTHORITY, ttl);
    return nxdomain ? DNS_R_NXDOMAIN : DNS_R_NOERROR;
}

/* ---- the names ---- */

static int at_apex(reply_t *r, uint16_t qtype) {
    switch (qtype) {
    case DNS_T_SOA:
        add_soa(r, ANSWER, r->cfg->apex_ttl);
        break;
    case DNS_T_NS:
        add_ns(r);
        break;
    case DNS_T_CAA:
        if (r->cfg->n_caa == 0)
            return negative(r, false, true, true);
        add_caa(r);
        break;
    case DNS_T_ANY:
        add_hinfo(r);
        break;
    default:
        return negative(r, false, true, true);
    }
    return DNS_R_NOERROR;
}

static int at_host(reply_t *r, const zone_ns_t *ns, uint16_t qtype) {
    if (qtype == DNS_T_ANY) {
        add_hinfo(r);
        return DNS_R_NOERROR;
    }
    if ((qtype == DNS_T_A && ns->n_a) || (qtype == DNS_T_AAAA && ns->n_aaaa)) {
        zone_ns_t only = *ns; /* the asked family only */
        if (qtype == DNS_T_A)
            only.n_aaaa = 0;
        else
            only.n_a = 0;
        add_glue(r, &only, ANSWER);
        return DNS_R_NOERROR;
    }
    return negative(r, false, true, true);
}

/* Before any sender has sent its whole set, a fed name's records may be
 * missing values: answering with what has arrived would be a false "no". */
static int incomplete(reply_t *r) {
    r->aa = false;
    return DNS_R_SERVFAIL;
}

static int at_installation(reply_t *r, const zone_name_t *e, bool valid, uint16_t qtype, dns_feed_t feed) {
    bool neg_ok = feed == DNS_FEED_CONFIDENT;
    if (valid && feed == DNS_FEED_INCOMPLETE)
        return incomplete(r);
    if (!e || !zone_name_exists(e))
        return negative(r, true, !valid, neg_ok);
    const zone_rr_t *fed = qtype == DNS_T_A ? e->a : qtype == DNS_T_AAAA ? e->aaaa : NULL;
    if (fed) {
        add_fed(r, qtype, fed);
        return DNS_R_NOERROR;
    }
    if (qtype == DNS_T_ANY) {
        add_hinfo(r);
        return DNS_R_NOERROR;
    }
    return negative(r, false, qtype != DNS_T_A && qtype != DNS_T_AAAA, neg_ok);
}

static int at_challenge(reply_t *r, const zone_name_t *e, bool valid, uint16_t qtype, dns_feed_t feed) {
    bool neg_ok = feed == DNS_FEED_CONFIDENT;
    if (valid && feed == DNS_FEED_INCOMPLETE)
        return incomplete(r);
    if (!e || !e->txt)
        return negative(r, true, !valid, neg_ok);
    if (qtype == DNS_T_TXT)
        add_fed(r, DNS_T_TXT, e->txt);
    else if (qtype == DNS_T_ANY)
        add_hinfo(r);
    else
        return negative(r, false, true, neg_ok);
    return DNS_R_NOERROR;
}

static bool is_meta(uint16_t t) {
    return t == DNS_T_OPT || (t >= 128 && t < 255); /* AXFR, IXFR, TSIG, ... */
}

static int resolve(reply_t *r, const zone_t *z, dns_feed_t feed) {
    const dns_query_t *q = r->q;
    if (q->edns && q->edns_version != 0)
        return DNS_R_BADVERS;
    const uint8_t *apex = r->cfg->apex;
    size_t apex_len = dns_name_len(apex);
    unsigned apex_labels = 0;
    for (const uint8_t *p = apex; *p; p += 1u + *p)
        apex_labels++;
    if (q->qclass != DNS_C_IN || q->nlabels < apex_labels)
        return DNS_R_REFUSED;
    unsigned depth = q->nlabels - apex_labels;
    size_t apex_off = q->off[depth]; /* the apex has a label at least: depth < nlabels */
    if (q->qname_len - apex_off != apex_len || memcmp(q->lower + apex_off, apex, apex_len) != 0)
        return DNS_R_REFUSED;
    if (is_meta(q->qtype))
        return DNS_R_NOTIMP;
    r->aa = true;
    if (depth == 0)
        return at_apex(r, q->qtype);
    const uint8_t *label = q->lower + q->off[depth - 1]; /* right under the apex */
    const zone_name_t *e = zone_find(z, label + 1, label[0]);
    bool valid = zone_label_valid(label + 1, label[0]);
    if (depth == 1)
        return e && e->host ? at_host(r, e->host, q->qtype) : at_installation(r, e, valid, q->qtype, feed);
    if (depth == 2 && memcmp(q->lower, acme_label, sizeof acme_label - 1) == 0)
        return at_challenge(r, e, valid, q->qtype, feed);
    return negative(r, true, true, true);
}

/* A response of a header only: FORMERR, NOTIMP. */
static size_t header_only(const uint8_t *q, int rcode, uint8_t *out) {
    uint16_t flags = dns_get16(q + 2);
    memset(out, 0, DNS_HEADER_LEN);
    memcpy(out, q, 2);
    dns_put16(out + 2, (uint16_t)(DNS_F_QR | (flags & (0xF << 11 | DNS_F_RD | DNS_F_CD)) | rcode));
    return DNS_HEADER_LEN;
}

size_t dns_answer(const zone_t *z, const uint8_t *q, size_t qlen, bool tcp, dns_feed_t feed, uint8_t *out,
                  size_t cap) {
    dns_query_t query;
    dns_parse_t parsed = dns_parse_query(q, qlen, &query);
    if (parsed == DNS_PARSE_DROP || (parsed == DNS_PARSE_FORMERR && !tcp) || cap < DNS_HEADER_LEN)
        return 0;
    if (parsed != DNS_PARSE_OK)
        return header_only(q, parsed == DNS_PARSE_FORMERR ? DNS_R_FORMERR : DNS_R_NOTIMP, out);

    size_t limit = DNS_TCP_MAX;
    if (!tcp)
        limit = !query.edns || query.udp_size < DNS_UDP_MIN ? DNS_UDP_MIN
                : query.udp_size > DNS_UDP_MAX              ? DNS_UDP_MAX
                                                            : query.udp_size;
    if (limit > cap)
        limit = cap;
    size_t opt = query.edns ? DNS_OPT_LEN : 0;
    if (limit < query.question_end + opt)
        return 0;
    reply_t r = {.q = &query, .cfg = zone_config(z)};
    dnsw_init(&r.w, out, limit - opt); /* room kept for the OPT record */
    dnsw_bytes(&r.w, q, 4);
    dnsw_bytes(&r.w, "\0\1\0\0\0\0\0\0", 8);
    dnsw_bytes(&r.w, q + DNS_HEADER_LEN, query.question_end - DNS_HEADER_LEN); /* the asker's case */
    dnsw_remember(&r.w, DNS_HEADER_LEN, query.lower);

    int rcode = resolve(&r, z, feed);
    if (opt) {
        r.w.limit += opt;
        dnsw_u8(&r.w, 0);
        dnsw_u16(&r.w, DNS_T_OPT);
        dnsw_u16(&r.w, DNS_UDP_MAX);
        dnsw_u32(&r.w, (uint32_t)(rcode >> 4) << 24 | (query.dnssec_ok ? 0x8000u : 0));
        dnsw_u16(&r.w, 0);
        r.count[ADDITIONAL]++;
    }
    uint16_t flags = DNS_F_QR | (query.flags & (DNS_F_RD | DNS_F_CD)) | (rcode & 0xF);
    flags |= (r.aa ? DNS_F_AA : 0) | (r.tc ? DNS_F_TC : 0);
    dns_put16(out + 2, flags);
    dns_put16(out + 6, r.count[ANSWER]);
    dns_put16(out + 8, r.count[AUTHORITY]);
    dns_put16(out + 10, r.count[ADDITIONAL]);
    return r.w.len;
}
