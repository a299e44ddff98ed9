/* zone: the records skdns serves, sans I/O.
 *
 * The static part comes from the configuration: SOA, NS (with glue for NS
 * names right under the apex) and CAA at the apex. The dynamic part is fed
 * by kvpsync events, per sender, with the keys of the pipeline contract:
 *   n/<label>        the name <label>.<zone> exists
 *   a/<label>        its IPv4 address (text), aaaa/<label> its IPv6 address
 *   t/<label>/<txt>  one TXT value of _acme-challenge.<label>.<zone>
 * Every value carries the set of senders that hold it: it is served while
 * any of them does ("any yes wins") and goes away when the last one deletes
 * it. A put of a/ or aaaa/ replaces that sender's previous address.
 *
 * Names are found by their label through a hash table with a random key:
 * one lookup per query, whatever the size of the zone. */
#ifndef SKDNS_ZONE_H
#define SKDNS_ZONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns_msg.h"

#define ZONE_MAX_SENDERS 64 /* a bit each */
#define ZONE_MAX_NS 8
#define ZONE_MAX_GLUE 4     /* addresses per family and NS name */
#define ZONE_MAX_CAA 8

typedef struct zone_ns {
    uint8_t name[DNS_NAME_MAX]; /* wire, lowercase */
    uint8_t a[ZONE_MAX_GLUE][4];
    uint8_t aaaa[ZONE_MAX_GLUE][16];
    size_t n_a, n_aaaa; /* glue: only for names right under the apex */
} zone_ns_t;

typedef struct zone_caa {
    uint8_t flags;
    char tag[16];    /* "issue", "issuewild", "iodef" */
    char value[256];
} zone_caa_t;

typedef struct zone_config {
    uint8_t apex[DNS_NAME_MAX]; /* wire, lowercase */
    uint32_t ttl;               /* A, AAAA, TXT (and HINFO for ANY) */
    uint32_t apex_ttl;          /* SOA, NS, CAA, glue */
    uint8_t soa_mname[DNS_NAME_MAX], soa_rname[DNS_NAME_MAX];
    uint32_t serial, refresh, retry, expire, minimum; /* minimum: the negative TTL */
    zone_ns_t ns[ZONE_MAX_NS];
    size_t n_ns;
    zone_caa_t caa[ZONE_MAX_CAA];
    size_t n_caa;
    size_t max_records; /* dynamic names and values together */
} zone_config_t;

/* One value (A: 4 bytes, AAAA: 16, TXT: the text) and who holds it. */
typedef struct zone_rr {
    struct zone_rr *next;
    uint64_t senders;
    uint8_t len;
    uint8_t data[];
} zone_rr_t;

/* A label right under the apex: <label>.<zone> and _acme-challenge.<label>.<zone>. */
typedef struct zone_name {
    struct zone_name *next; /* hash chain */
    uint64_t exists;        /* senders that sent n/<label> */
    zone_rr_t *a, *aaaa, *txt;
    const zone_ns_t *host;  /* an NS name of the configuration: its glue is served */
    uint8_t len;
    char label[DNS_LABEL_MAX];
} zone_name_t;

typedef struct zone zone_t;

/* Checks cfg (NS glue only right under the apex, ...); NULL with the reason
 * in err. hash_key: random in production, fixed in tests. */
zone_t *zone_new(const zone_config_t *cfg, const uint64_t hash_key[2], char *err, size_t err_len);
void zone_free(zone_t *z);
const zone_config_t *zone_config(const zone_t *z);

/* kvpsync events. 0, or -1 for a key or value that breaks the contract (or
 * past max_records): it is ignored. */
int zone_put(zone_t *z, unsigned sender, const void *key, size_t klen, const void *val, size_t vlen);
int zone_del(zone_t *z, unsigned sender, const void *key, size_t klen);

/* The name for a lowercase label, or NULL. */
const zone_name_t *zone_find(const zone_t *z, const uint8_t *label, size_t len);
/* Whether any sender says the name <label>.<zone> exists (n/, an address
 * or a TXT value below it, which makes it an empty non-terminal). */
bool zone_name_exists(const zone_name_t *n);
/* Whether a label may ever be fed ([a-z0-9-], 1..63, no '-' at the ends). */
bool zone_label_valid(const uint8_t *label, size_t len);
/* Names and values held, for logs and tests. */
size_t zone_records(const zone_t *z);

/* What the fed data may be trusted for now (kvpsync's view of the senders). */
typedef enum dns_feed {
    DNS_FEED_POSITIVES = 0,  /* fed values are served; their absence is not asserted (SERVFAIL) */
    DNS_FEED_CONFIDENT = 1,  /* absence may be asserted too (NXDOMAIN, NODATA) */
    DNS_FEED_INCOMPLETE = 2, /* no sender has sent its whole set since start: a record set
                                found may lack values, so every fed name is SERVFAIL */
} dns_feed_t;

/* Answers one query (see answer.c): the response length in out, or 0 to
 * send nothing. tcp: the answer may use up to 65535 bytes, and a malformed
 * query gets FORMERR (over UDP it is dropped). */
size_t dns_answer(const zone_t *z, const uint8_t *q, size_t qlen, bool tcp, dns_feed_t feed, uint8_t *out,
                  size_t cap);

#endif
