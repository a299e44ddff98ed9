/* dns_check: a strict parser of DNS responses, for the tests and the fuzz
 * target only (skdns itself never reads responses). It follows compression
 * pointers (backwards only), checks the record data of the types skdns
 * writes and that nothing trails the records. */
#ifndef SKDNS_DNS_CHECK_H
#define SKDNS_DNS_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns_msg.h"

typedef struct dns_rr_view {
    int section; /* 0 answer, 1 authority, 2 additional */
    uint8_t owner[DNS_NAME_MAX]; /* decompressed, case kept */
    uint16_t type, rclass;
    uint32_t ttl;
    const uint8_t *rdata;
    uint16_t rdlen;
    uint8_t target[DNS_NAME_MAX]; /* NS: the name; SOA: mname */
} dns_rr_view_t;

typedef struct dns_resp {
    uint16_t id, flags;
    int rcode; /* with the extended bits of OPT */
    uint16_t qdcount, count[3];
    uint8_t qname[DNS_NAME_MAX];
    uint16_t qtype, qclass;
    bool edns;
    uint16_t udp_size;
    uint8_t edns_version;
    bool dnssec_ok;
    size_t nrr; /* records other than OPT (all sections) */
} dns_resp_t;

/* 0 if msg is a well-formed response; the first max_rrs records go to rrs. */
int dns_check_response(const uint8_t *msg, size_t len, dns_resp_t *out, dns_rr_view_t *rrs, size_t max_rrs);
/* Case-insensitive comparison of two wire names. */
bool dns_name_equal(const uint8_t *a, const uint8_t *b);

#endif
