/* feed: the kvpsync receiver of skdns, on its own UDP socket ([kvpsync]
 * listen). Datagrams from the senders go to the sans-IO receiver core,
 * whose replies go back to their source; its put and del events update the
 * zone (zone_put, zone_del), and feed_negatives_ok() tells the DNS server
 * whether it may deny what kvpsync feeds. */
#ifndef SKDNS_FEED_H
#define SKDNS_FEED_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "zone.h"

typedef struct feed feed_t;

/* Loads the senders' keys and binds the socket; 0, or -1 (logged). */
int feed_start(feed_t **out, uv_loop_t *loop, const skdns_config_t *cfg, zone_t *zone);
/* A dnssrv_negatives_fn: arg is the feed. */
bool feed_negatives_ok(void *arg);
/* Closes the socket; cb (may be NULL) runs once it is closed and the feed freed. */
void feed_close(feed_t *f, void (*cb)(void *arg), void *arg);

#endif
