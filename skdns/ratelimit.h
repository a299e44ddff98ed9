/* ratelimit: per-source response rate limiting for UDP, sans I/O, in the
 * spirit of RRL: sources are grouped by network (/24 for IPv4, /56 for
 * IPv6 by default) and each network has a token bucket (GCRA: rate
 * responses a second, bursts of up to burst). Over the limit, a response is
 * dropped, except every slip-th one, which goes out truncated (TC) so that
 * a real client whose address is being spoofed can retry over TCP.
 *
 * The table is bounded: 4-way buckets, the least recently used network of
 * a bucket makes room for a new one. */
#ifndef SKDNS_RATELIMIT_H
#define SKDNS_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct rl_config {
    uint32_t rate;  /* responses a second per network; 0: no limit */
    uint32_t burst; /* >= 1 */
    uint32_t slip;  /* 0: drop all; n: every n-th limited response is sent truncated */
    unsigned ipv4_prefix, ipv6_prefix; /* 1..32, 1..64 */
    size_t table_size; /* networks tracked, rounded up to a power of two */
} rl_config_t;

typedef enum rl_verdict { RL_PASS, RL_DROP, RL_SLIP } rl_verdict_t;

typedef struct rl rl_t;

rl_t *rl_new(const rl_config_t *cfg, const uint64_t hash_key[2]);
void rl_free(rl_t *rl);
/* One response about to go to addr (AF_INET or AF_INET6) at now_ms. */
rl_verdict_t rl_check(rl_t *rl, const struct sockaddr *addr, uint64_t now_ms);

#endif
