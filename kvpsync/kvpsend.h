/* kvpsend: skd's side of kvpsync on libuv. One UDP socket and one timer for
 * all receivers; a cache shared by one kvps_sender_t per receiver; waiters
 * released when an update is served (PROTOCOL.md R25).
 *
 * Single-threaded: call everything from the loop's thread. */
#ifndef SKD_KVPSEND_H
#define SKD_KVPSEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "kvpsync.h"

#define KVPSEND_MAX_RECEIVERS 16

typedef struct kvpsend_receiver_config {
    char name[64]; /* for logs and metrics */
    struct sockaddr_storage addr;
    kvps_psk_t psk;
} kvpsend_receiver_config_t;

typedef struct kvpsend_config {
    uint32_t sender_id;
    const kvpsend_receiver_config_t *receivers; /* copied; all of one address family */
    size_t n_receivers;                         /* 1..KVPSEND_MAX_RECEIVERS */
    /* protocol timings and limits, 0 = defaults (kvpsync.h) */
    uint32_t keepalive_ms, lease_ms, rto_initial_ms, rto_max_ms, window;
    size_t max_keys;
} kvpsend_config_t;

typedef struct kvpsend_receiver_stats {
    char name[64];
    bool healthy;
    uint64_t acked_below;
    kvps_sender_stats_t core; /* in_sync, gen, sent, retransmitted, received, dropped, resyncs, in_flight */
} kvpsend_receiver_stats_t;

typedef struct kvpsend_stats {
    size_t n_receivers;
    kvpsend_receiver_stats_t receivers[KVPSEND_MAX_RECEIVERS];
    size_t keys;        /* live pairs in the cache */
    uint64_t next_id;   /* the id the next change gets */
    uint64_t ready_below; /* every id below it is ready */
    size_t waiters;
} kvpsend_stats_t;

typedef struct kvpsend_wait kvpsend_wait_t;
typedef struct kvpsend_peer kvpsend_peer_t;
typedef struct kvpsend kvpsend_t;

struct kvpsend {
    uv_loop_t *loop;
    uv_udp_t udp;
    uv_timer_t timer;
    kvps_cache_t *cache;
    kvpsend_peer_t *peers;
    size_t n_peers;
    kvpsend_wait_t *wait_head, *wait_tail; /* by update id */
    size_t n_waiters;
    uint64_t ready_below;
    int open_handles;
    void (*close_cb)(kvpsend_t *);
    uint8_t rbuf[KVPS_MAX_PACKET + 1]; /* one more: longer datagrams are seen and dropped */
};

/* Binds an ephemeral UDP port (of the receivers' address family). Returns 0
 * or a negative libuv error. */
int kvpsend_init(kvpsend_t *k, uv_loop_t *loop, const kvpsend_config_t *cfg);
/* Pushes at once; returns the update id (0: refused, see kvps_cache_put). */
uint64_t kvpsend_put(kvpsend_t *k, const char *key, const char *val);
/* Returns the id of the deletion, 0 when the key is absent. */
uint64_t kvpsend_del(kvpsend_t *k, const char *key);
/* Replaces the whole cache by a snapshot of the store (periodic reconcile):
 * puts for new/changed pairs, dels for the rest. */
void kvpsend_reconcile(kvpsend_t *k, const char *const *keys, const char *const *vals, size_t n);
/* Calls cb(0, arg) once update_id is ready: at least one receiver healthy and
 * every healthy receiver acknowledged it (waiting for an id that is ready
 * already is fine). cb runs from the event loop, never from inside a kvpsend_*
 * call; it gets UV_ECANCELED when kvpsend closes first. NULL when out of
 * memory or closing. Cancel before freeing arg (not after cb ran). */
kvpsend_wait_t *kvpsend_wait(kvpsend_t *k, uint64_t update_id, void (*cb)(int status, void *arg), void *arg);
void kvpsend_wait_cancel(kvpsend_wait_t *w);
/* Is update_id ready now? */
bool kvpsend_ready(const kvpsend_t *k, uint64_t update_id);
void kvpsend_stats(const kvpsend_t *k, kvpsend_stats_t *out);
/* Cancels the waiters, closes the handles; cb (may be NULL) runs when k may
 * be freed. */
void kvpsend_close(kvpsend_t *k, void (*cb)(kvpsend_t *));

#endif
