#include "zone.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"

#define INITIAL_BUCKETS 1024

struct zone {
    zone_config_t cfg;
    uint64_t key[2];
    zone_name_t **buckets;
    size_t mask;    /* buckets - 1 */
    size_t nnames;  /* in the table, NS hosts included */
    size_t records; /* dynamic names and values */
};

/* ---- the table ---- */

static size_t bucket(const zone_t *z, const uint8_t *label, size_t len) {
    return (size_t)siphash13(z->key, label, len) & z->mask;
}

/* The link that points at the name, or at the NULL ending its chain. */
static zone_name_t **find_link(const zone_t *z, const uint8_t *label, size_t len) {
    zone_name_t **link = &z->buckets[bucket(z, label, len)];
    while (*link && !((*link)->len == len && memcmp((*link)->label, label, len) == 0))
        link = &(*link)->next;
    return link;
}

const zone_name_t *zone_find(const zone_t *z, const uint8_t *label, size_t len) {
    return *find_link(z, label, len);
}

static int grow(zone_t *z) {
    size_t n = (z->mask + 1) * 2;
    zone_name_t **b = calloc(n, sizeof *b);
    if (!b)
        return -1; /* chains just get longer */
    zone_name_t **old = z->buckets;
    size_t old_n = z->mask + 1;
    z->buckets = b;
    z->mask = n - 1;
    for (size_t i = 0; i < old_n; i++) {
        for (zone_name_t *e = old[i], *next; e; e = next) {
            next = e->next;
            zone_name_t **link = &z->buckets[bucket(z, (const uint8_t *)e->label, e->len)];
            e->next = *link;
            *link = e;
        }
    }
    free(old);
    return 0;
}

static zone_name_t *add_name(zone_t *z, const uint8_t *label, size_t len) {
    zone_name_t **link = find_link(z, label, len);
    if (*link)
        return *link;
    if (z->records >= z->cfg.max_records)
        return NULL;
    zone_name_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->len = (uint8_t)len;
    memcpy(e->label, label, len);
    *link = e;
    z->nnames++;
    z->records++;
    if (z->nnames > z->mask + 1)
        grow(z);
    return e;
}

bool zone_name_exists(const zone_name_t *n) {
    return n->exists || n->a || n->aaaa || n->txt;
}

/* Frees a dynamic name nobody holds any more. */
static void drop_if_empty(zone_t *z, const zone_name_t *e) {
    if (e->host || zone_name_exists(e))
        return;
    zone_name_t **link = find_link(z, (const uint8_t *)e->label, e->len);
    zone_name_t *dead = *link;
    *link = dead->next;
    free(dead);
    z->nnames--;
    z->records--;
}

/* ---- values ---- */

static void remove_bit(zone_t *z, zone_rr_t **list, uint64_t bit) {
    for (zone_rr_t **link = list; *link;) {
        zone_rr_t *rr = *link;
        rr->senders &= ~bit;
        if (rr->senders) {
            link = &rr->next;
            continue;
        }
        *link = rr->next;
        free(rr);
        z->records--;
    }
}

static zone_rr_t **find_rr(zone_rr_t **list, const uint8_t *data, size_t len) {
    while (*list && !((*list)->len == len && memcmp((*list)->data, data, len) == 0))
        list = &(*list)->next;
    return list;
}

static int add_bit(zone_t *z, zone_rr_t **list, uint64_t bit, const uint8_t *data, size_t len) {
    zone_rr_t **link = find_rr(list, data, len);
    if (*link) {
        (*link)->senders |= bit;
        return 0;
    }
    if (z->records >= z->cfg.max_records)
        return -1;
    zone_rr_t *rr = malloc(sizeof *rr + len);
    if (!rr)
        return -1;
    rr->next = NULL;
    rr->senders = bit;
    rr->len = (uint8_t)len;
    memcpy(rr->data, data, len);
    *link = rr; /* at the end: values keep their arrival order */
    z->records++;
    return 0;
}

static void del_bit(zone_t *z, zone_rr_t **list, uint64_t bit, const uint8_t *data, size_t len) {
    zone_rr_t **link = find_rr(list, data, len);
    zone_rr_t *rr = *link;
    if (!rr)
        return;
    rr->senders &= ~bit;
    if (rr->senders)
        return;
    *link = rr->next;
    free(rr);
    z->records--;
}

/* ---- keys ---- */

bool zone_label_valid(const uint8_t *label, size_t len) {
    if (len < 1 || len > DNS_LABEL_MAX || label[0] == '-' || label[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = label[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

typedef enum key_kind { KEY_NAME, KEY_A, KEY_AAAA, KEY_TXT } key_kind_t;

typedef struct key {
    key_kind_t kind;
    const uint8_t *label, *txt;
    size_t label_len, txt_len;
} zkey_t;

static int parse_key(const uint8_t *k, size_t len, zkey_t *out) {
    static const struct {
        const char *prefix;
        key_kind_t kind;
    } kinds[] = {{"n/", KEY_NAME}, {"a/", KEY_A}, {"aaaa/", KEY_AAAA}, {"t/", KEY_TXT}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t plen = strlen(kinds[i].prefix);
        if (len < plen || memcmp(k, kinds[i].prefix, plen) != 0)
            continue;
        out->kind = kinds[i].kind;
        out->label = k + plen;
        out->label_len = len - plen;
        out->txt = NULL;
        out->txt_len = 0;
        if (out->kind == KEY_TXT) {
            const uint8_t *slash = memchr(out->label, '/', out->label_len);
            if (!slash)
                return -1;
            out->txt = slash + 1;
            out->txt_len = out->label_len - (size_t)(slash + 1 - out->label);
            out->label_len = (size_t)(slash - out->label);
            if (out->txt_len < 1 || out->txt_len > 255)
                return -1;
            for (size_t j = 0; j < out->txt_len; j++)
                if (out->txt[j] < 0x21 || out->txt[j] > 0x7e || out->txt[j] == '/')
                    return -1;
        }
        return zone_label_valid(out->label, out->label_len) ? 0 : -1;
    }
    return -1;
}

/* "192.0.2.7" or "2001:db8::7" to bytes; -1 if it is not one. */
static int parse_addr(int family, const void *val, size_t vlen, uint8_t *out) {
    char text[64];
    if (vlen >= sizeof text || memchr(val, '\0', vlen))
        return -1;
    memcpy(text, val, vlen);
    text[vlen] = '\0';
    return inet_pton(family, text, out) == 1 ? 0 : -1;
}

int zone_put(zone_t *z, unsigned sender, const void *key, size_t klen, const void *val, size_t vlen) {
    zkey_t k;
    uint8_t addr[16];
    if (sender >= ZONE_MAX_SENDERS || parse_key(key, klen, &k) != 0)
        return -1;
    if ((k.kind == KEY_A && parse_addr(AF_INET, val, vlen, addr) != 0) ||
        (k.kind == KEY_AAAA && parse_addr(AF_INET6, val, vlen, addr) != 0))
        return -1;
    zone_name_t *e = add_name(z, k.label, k.label_len);
    if (!e)
        return -1;
    uint64_t bit = (uint64_t)1 << sender;
    int r = 0;
    switch (k.kind) {
    case KEY_NAME:
        e->exists |= bit;
        break;
    case KEY_A:
    case KEY_AAAA: { /* one address per sender: the new one replaces its old one */
        zone_rr_t **list = k.kind == KEY_A ? &e->a : &e->aaaa;
        size_t len = k.kind == KEY_A ? 4 : 16;
        zone_rr_t **same = find_rr(list, addr, len);
        if (*same && ((*same)->senders & bit))
            break;
        remove_bit(z, list, bit);
        r = add_bit(z, list, bit, addr, len);
        break;
    }
    case KEY_TXT:
        r = add_bit(z, &e->txt, bit, k.txt, k.txt_len);
        break;
    }
    drop_if_empty(z, e);
    return r;
}

int zone_del(zone_t *z, unsigned sender, const void *key, size_t klen) {
    zkey_t k;
    if (sender >= ZONE_MAX_SENDERS || parse_key(key, klen, &k) != 0)
        return -1;
    zone_name_t *e = *find_link(z, k.label, k.label_len);
    if (!e)
        return 0;
    uint64_t bit = (uint64_t)1 << sender;
    switch (k.kind) {
    case KEY_NAME:
        e->exists &= ~bit;
        break;
    case KEY_A:
        remove_bit(z, &e->a, bit);
        break;
    case KEY_AAAA:
        remove_bit(z, &e->aaaa, bit);
        break;
    case KEY_TXT:
        del_bit(z, &e->txt, bit, k.txt, k.txt_len);
        break;
    }
    drop_if_empty(z, e);
    return 0;
}

/* ---- life cycle ---- */

/* How many labels name has below apex, or -1 if it is not in the zone. */
static int depth_below(const uint8_t *name, const uint8_t *apex) {
    size_t nlen = dns_name_len(name), alen = dns_name_len(apex);
    int depth = 0;
    for (size_t off = 0; off < nlen; off += 1u + name[off], depth++)
        if (nlen - off == alen && memcmp(name + off, apex, alen) == 0)
            return depth;
    return -1;
}

zone_t *zone_new(const zone_config_t *cfg, const uint64_t hash_key[2], char *err, size_t err_len) {
    if (cfg->apex[0] == 0) {
        snprintf(err, err_len, "the zone cannot be the root");
        return NULL;
    }
    if (cfg->n_ns == 0) {
        snprintf(err, err_len, "the zone needs at least one NS name");
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_ns; i++) {
        const zone_ns_t *ns = &cfg->ns[i];
        int depth = depth_below(ns->name, cfg->apex);
        bool glue = ns->n_a || ns->n_aaaa;
        const char *bad = depth < 0 && glue    ? "has addresses but is outside the zone"
                          : depth == 0         ? "is the apex itself"
                          : depth > 1          ? "must be right under the zone apex"
                          : depth == 1 && !glue ? "is in the zone and needs an address"
                                                : NULL;
        if (bad) {
            snprintf(err, err_len, "NS name %zu %s", i + 1, bad);
            return NULL;
        }
    }
    zone_t *z = calloc(1, sizeof *z);
    if (!z || !(z->buckets = calloc(INITIAL_BUCKETS, sizeof *z->buckets))) {
        free(z);
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    z->cfg = *cfg;
    z->key[0] = hash_key[0];
    z->key[1] = hash_key[1];
    z->mask = INITIAL_BUCKETS - 1;
    for (size_t i = 0; i < z->cfg.n_ns; i++) {
        const zone_ns_t *ns = &z->cfg.ns[i];
        if (depth_below(ns->name, z->cfg.apex) != 1)
            continue;
        zone_name_t **link = find_link(z, ns->name + 1, ns->name[0]);
        if (*link)
            continue; /* listed twice */
        zone_name_t *e = calloc(1, sizeof *e);
        if (!e) {
            zone_free(z);
            snprintf(err, err_len, "out of memory");
            return NULL;
        }
        e->host = ns;
        e->len = ns->name[0];
        memcpy(e->label, ns->name + 1, e->len);
        *link = e;
        z->nnames++;
    }
    return z;
}

static void free_rrs(zone_rr_t *rr) {
    for (zone_rr_t *next; rr; rr = next) {
        next = rr->next;
        free(rr);
    }
}

void zone_free(zone_t *z) {
    if (!z)
        return;
    for (size_t i = 0; i <= z->mask; i++) {
        for (zone_name_t *e = z->buckets[i], *next; e; e = next) {
            next = e->next;
            free_rrs(e->a);
            free_rrs(e->aaaa);
            free_rrs(e->txt);
            free(e);
        }
    }
    free(z->buckets);
    free(z);
}

const zone_config_t *zone_config(const zone_t *z) {
    return &z->cfg;
}

size_t zone_records(const zone_t *z) {
    return z->records;
}
