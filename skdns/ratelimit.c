#include "ratelimit.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"

#define WAYS 4

typedef struct rl_net {
    uint64_t bits; /* the network's first (up to) 64 address bits */
    uint64_t family;
} rl_net_t;

typedef struct rl_entry {
    rl_net_t net;
    uint64_t tat_us;   /* GCRA: theoretical arrival time; 0: unused */
    uint64_t seen_us;  /* for eviction */
    uint32_t limited;  /* responses limited so far, for slip */
} rl_entry_t;

struct rl {
    rl_config_t cfg;
    uint64_t key[2];
    uint64_t interval_us; /* 1 s / rate */
    uint64_t tolerance_us; /* interval * burst */
    size_t mask;          /* buckets - 1 */
    rl_entry_t *entries;  /* (mask + 1) * WAYS */
};

rl_t *rl_new(const rl_config_t *cfg, const uint64_t hash_key[2]) {
    rl_t *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->cfg = *cfg;
    rl->key[0] = hash_key[0];
    rl->key[1] = hash_key[1];
    if (cfg->rate) {
        rl->interval_us = 1000000 / cfg->rate;
        if (!rl->interval_us)
            rl->interval_us = 1;
        rl->tolerance_us = rl->interval_us * (cfg->burst ? cfg->burst : 1);
    }
    size_t buckets = 1;
    while (buckets * WAYS < cfg->table_size)
        buckets *= 2;
    rl->mask = buckets - 1;
    rl->entries = calloc(buckets * WAYS, sizeof *rl->entries);
    if (!rl->entries) {
        free(rl);
        return NULL;
    }
    return rl;
}

void rl_free(rl_t *rl) {
    if (rl)
        free(rl->entries);
    free(rl);
}

static uint64_t prefix_bits(const uint8_t *addr, unsigned bits) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | addr[i];
    return bits >= 64 ? v : v & ~(UINT64_MAX >> bits);
}

/* The network of addr; IPv4-mapped IPv6 addresses count as IPv4. */
static rl_net_t network(const rl_t *rl, const struct sockaddr *addr) {
    uint8_t b[8] = {0};
    if (addr->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
        if (!IN6_IS_ADDR_V4MAPPED(a6)) {
            memcpy(b, a6->s6_addr, 8);
            return (rl_net_t){prefix_bits(b, rl->cfg.ipv6_prefix), AF_INET6};
        }
        memcpy(b, a6->s6_addr + 12, 4);
    } else {
        memcpy(b, &((const struct sockaddr_in *)addr)->sin_addr, 4);
    }
    return (rl_net_t){prefix_bits(b, rl->cfg.ipv4_prefix), AF_INET};
}

rl_verdict_t rl_check(rl_t *rl, const struct sockaddr *addr, uint64_t now_ms) {
    if (!rl->cfg.rate)
        return RL_PASS;
    uint64_t now = now_ms * 1000 + 1; /* never 0: 0 marks an unused entry */
    rl_net_t net = network(rl, addr);
    rl_entry_t *set = &rl->entries[(siphash13(rl->key, &net, sizeof net) & rl->mask) * WAYS], *e = NULL;
    for (int i = 0; i < WAYS && !e; i++)
        if (set[i].tat_us && set[i].net.bits == net.bits && set[i].net.family == net.family)
            e = &set[i];
    if (!e) { /* a new network takes the least recently seen entry */
        e = &set[0];
        for (int i = 1; i < WAYS; i++)
            if (set[i].seen_us < e->seen_us)
                e = &set[i];
        *e = (rl_entry_t){.net = net, .tat_us = now};
    }
    e->seen_us = now;
    if (e->tat_us < now)
        e->tat_us = now;
    if (e->tat_us - now + rl->interval_us <= rl->tolerance_us) {
        e->tat_us += rl->interval_us;
        return RL_PASS;
    }
    e->limited++;
    return rl->cfg.slip && e->limited % rl->cfg.slip == 0 ? RL_SLIP : RL_DROP;
}
