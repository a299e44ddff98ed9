/* server: skdns's DNS listeners on libuv, UDP and TCP on every address.
 *
 * UDP: libuv reads up to 20 datagrams per system call (recvmmsg); each is
 * answered straight from the zone (dns_answer) into a fixed array and the
 * batch goes out with one sendmmsg (a lone datagram with uv_udp_try_send).
 * Only what the socket does not take is copied into one of a fixed pool of
 * buffers and queued (uv_udp_send); when the pool runs out, the server stops
 * reading its UDP sockets until half the pool is free again: back-pressure
 * instead of memory. No allocation per query. Responses are rate-limited
 * per source network (ratelimit.h).
 *
 * TCP (tcp.c): 2-byte length framing, bounded queries, pipelining up to
 * tcp_max_pipelined answers not yet written (then the connection is not
 * read until they are), an idle timeout, at most tcp_max_connections. */
#ifndef SKDNS_SERVER_H
#define SKDNS_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "zone.h"

/* What the fed data may be trusted for now (see zone.h). */
typedef dns_feed_t (*dnssrv_feed_fn)(void *arg);

typedef struct dnssrv_stats {
    uint64_t udp_queries, udp_answers, udp_dropped; /* dropped: no answer (malformed, send failure) */
    uint64_t rate_limited, slipped;                  /* over the rate limit: dropped, or sent truncated */
    uint64_t pool_exhausted;                         /* times reading stopped for want of buffers */
    uint64_t tcp_connections, tcp_refused, tcp_queries;
} dnssrv_stats_t;

typedef struct dnssrv dnssrv_t;

/* Binds every listen address of cfg (UDP and TCP) and starts serving zone.
 * cfg and zone must outlive the server. 0, or a libuv error (logged). */
int dnssrv_start(dnssrv_t **out, uv_loop_t *loop, const skdns_config_t *cfg, const zone_t *zone,
                 dnssrv_feed_fn feed_state, void *arg);
/* Closes every handle; cb (may be NULL) runs once all are closed and the server is freed. */
void dnssrv_close(dnssrv_t *s, void (*cb)(void *arg), void *arg);
const dnssrv_stats_t *dnssrv_stats(const dnssrv_t *s);

#endif
