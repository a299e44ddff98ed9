/* feed: the kvpsync receiver of skdns, on its own UDP socket ([kvpsync]
 * listen). Datagrams from the senders go to the sans-IO receiver core,
 * whose replies go back to their source; its put and del events update the
 * zone (zone_put, zone_del), and feed_state() tells the DNS server what the
 * fed data may be trusted for (served, denied, or not yet whole). */
#ifndef SKDNS_FEED_H
#define SKDNS_FEED_H

#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "zone.h"

typedef struct feed feed_t;

/* Loads the senders' keys and binds the socket; 0, or -1 (logged). */
int feed_start(feed_t **out, uv_loop_t *loop, const skdns_config_t *cfg, zone_t *zone);
/* A dnssrv_feed_fn: arg is the feed. */
dns_feed_t feed_state(void *arg);
/* Closes the socket; cb (may be NULL) runs once it is closed and the feed freed. */
void feed_close(feed_t *f, void (*cb)(void *arg), void *arg);

#endif
