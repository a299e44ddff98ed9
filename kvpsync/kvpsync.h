/* kvpsync: one-way key/value replication over UDP, sans I/O (PROTOCOL.md).
 *
 * A sender node (skd) keeps its current key/value pairs in a kvps_cache_t and
 * runs one kvps_sender_t per DNS server; each DNS server (skdns) runs one
 * kvps_receiver_t that knows every sender by id and pre-shared key. The cores
 * open no sockets and read no clocks: they are fed datagrams and a monotonic
 * `now` in milliseconds, and say what to send and when to wake up.
 * Rules R1..R32 are numbered in PROTOCOL.md. */
#ifndef SKD_KVPSYNC_H
#define SKD_KVPSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVPS_MAX_KEY 320        /* bytes */
#define KVPS_MAX_VAL 255        /* bytes */
#define KVPS_MAX_PACKET 1232    /* bytes; no datagram is longer */
#define KVPS_MAX_WINDOW 256     /* sequence numbers in flight */
#define KVPS_MAX_LEASE_MS 60000 /* a longer grant is refused (R3) */
#define KVPS_MAX_CURSORS 32     /* senders sharing one cache */

/* Defaults of the configurable timings (0 in a config means these). */
#define KVPS_KEEPALIVE_MS 250
#define KVPS_LEASE_MS 3000
#define KVPS_RTO_INITIAL_MS 30
#define KVPS_RTO_MAX_MS 1000
#define KVPS_TOMBSTONE_MS 30000
#define KVPS_STARTUP_GRACE_MS 10000
#define KVPS_MAX_KEYS 100000

typedef struct kvps_psk {
    uint8_t key[32];
} kvps_psk_t;

/* Reads 64 hex digits (one line, an optional final newline) from path. Refuses
 * files that are not regular or that group or others may read. Returns 0, or
 * -1 with a message in err. */
int kvps_psk_load(const char *path, kvps_psk_t *out, char *err, size_t errlen);

/* ---- Sender side: the cache ---------------------------------------------- */

typedef struct kvps_cache kvps_cache_t;

/* max_keys bounds the live pairs and, separately, the deleted keys kept until
 * every sender has sent their deletion (0: KVPS_MAX_KEYS). */
kvps_cache_t *kvps_cache_new(size_t max_keys);
/* Free the senders attached to it first. */
void kvps_cache_free(kvps_cache_t *c);
/* Returns the update id of the pair: a new one when it changed, the existing
 * one when it is unchanged; 0 when refused (klen 0 or > KVPS_MAX_KEY, vlen >
 * KVPS_MAX_VAL, cache full, out of memory). Ids strictly increase from 1. */
uint64_t kvps_cache_put(kvps_cache_t *c, const void *key, size_t klen, const void *val, size_t vlen);
/* Returns the id of the deletion, 0 when the key is absent. */
uint64_t kvps_cache_del(kvps_cache_t *c, const void *key, size_t klen);
typedef struct kvps_pair {
    const void *key, *val;
    size_t klen, vlen;
} kvps_pair_t;
/* Makes the cache hold exactly these pairs (a snapshot of the store): deletes
 * the other keys first, then puts these. Returns how many were refused. */
size_t kvps_cache_reconcile(kvps_cache_t *c, const kvps_pair_t *pairs, size_t n);
/* The value of a live key (NULL when absent; *vlen set). */
const uint8_t *kvps_cache_get(const kvps_cache_t *c, const void *key, size_t klen, size_t *vlen);
size_t kvps_cache_count(const kvps_cache_t *c);
/* The id the next change will get (every id issued so far is below it). */
uint64_t kvps_cache_next_id(const kvps_cache_t *c);

/* ---- Sender side: one state machine per receiver -------------------------- */

typedef struct kvps_sender kvps_sender_t;

typedef struct kvps_sender_config {
    uint32_t sender_id;
    uint64_t session_id; /* random and nonzero, new at every start of the process (R8) */
    kvps_psk_t psk;      /* the key of this (sender, receiver) pair */
    /* 0 = the defaults above */
    uint32_t keepalive_ms, lease_ms, rto_initial_ms, rto_max_ms;
    uint32_t window; /* 1..KVPS_MAX_WINDOW */
} kvps_sender_config_t;

typedef struct kvps_sender_stats {
    bool in_sync;   /* the receiver flushed our current generation */
    uint32_t gen;   /* our current generation (0 before the first) */
    uint64_t receiver_id;
    uint64_t sent, retransmitted, received, dropped, resyncs;
    uint32_t in_flight;
} kvps_sender_stats_t;

/* NULL on a bad config, out of memory or KVPS_MAX_CURSORS senders attached. */
kvps_sender_t *kvps_sender_new(const kvps_sender_config_t *cfg, kvps_cache_t *cache, uint64_t now_ms);
void kvps_sender_free(kvps_sender_t *s);
/* A datagram from this sender's receiver. Returns 0 when accepted, -1 when
 * dropped (malformed, bad MAC, not ours, stale). */
int kvps_sender_handle(kvps_sender_t *s, const uint8_t *pkt, size_t len, uint64_t now_ms);
/* Writes the next datagram to send now into out and returns its length, 0
 * when there is nothing (more) to send. Call until it returns 0, and again
 * after every cache change and every kvps_sender_handle. cap >= KVPS_MAX_PACKET. */
size_t kvps_sender_poll(kvps_sender_t *s, uint64_t now_ms, uint8_t *out, size_t cap);
/* When poll has something to do next (UINT64_MAX: nothing planned); also the
 * moment kvps_sender_healthy() turns false. */
uint64_t kvps_sender_deadline(const kvps_sender_t *s);
/* False once no lease we granted can still hold at the receiver (R22): the
 * receiver may answer negatives only while this is true, so kvpsend must wait
 * for every healthy receiver and may forget the others. */
bool kvps_sender_healthy(const kvps_sender_t *s, uint64_t now_ms);
/* Every update id below this one is acknowledged by the receiver in its
 * current generation, or superseded by a later acknowledged update of the
 * same key (R24). 0 before anything is acknowledged. */
uint64_t kvps_sender_acked_below(const kvps_sender_t *s);
void kvps_sender_stats(const kvps_sender_t *s, kvps_sender_stats_t *out);

/* ---- Receiver side -------------------------------------------------------- */

typedef struct kvps_receiver kvps_receiver_t;

typedef struct kvps_receiver_sender {
    uint32_t sender_id;
    kvps_psk_t psk;
} kvps_receiver_sender_t;

typedef struct kvps_receiver_config {
    const kvps_receiver_sender_t *senders; /* copied */
    size_t n_senders;                      /* 1..64 */
    /* 0 = defaults */
    uint32_t tombstone_ms, startup_grace_ms;
    size_t max_keys; /* per sender, live pairs and tombstones */
} kvps_receiver_config_t;

/* Called from inside kvps_receiver_handle; they must not call the receiver.
 * sender_index is the sender's position in the config. put is called for new
 * and changed pairs only; del for removed pairs, also those dropped at the end
 * of a resync (R10). */
typedef struct kvps_receiver_events {
    void (*put)(void *arg, size_t sender_index, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);
    void (*del)(void *arg, size_t sender_index, const uint8_t *key, size_t klen);
} kvps_receiver_events_t;

/* random_receiver_id: random and nonzero, new at every start (R7). */
kvps_receiver_t *kvps_receiver_new(const kvps_receiver_config_t *cfg, const kvps_receiver_events_t *ev, void *arg,
                                   uint64_t now_ms, uint64_t random_receiver_id);
void kvps_receiver_free(kvps_receiver_t *r);
/* Feeds one datagram; returns the length of the reply written to out, to be
 * sent back to the datagram's source (0: none). cap >= KVPS_MAX_PACKET. */
size_t kvps_receiver_handle(kvps_receiver_t *r, const uint8_t *pkt, size_t len, uint64_t now_ms, uint8_t *out,
                            size_t cap);
/* Has any sender completed a generation with this receiver since it
 * started? Before, what a sender pushed may be only part of its set (R10). */
bool kvps_receiver_any_synced(const kvps_receiver_t *r);
/* May the DNS server answer NXDOMAIN/NODATA now? (R27) */
bool kvps_receiver_negatives_ok(const kvps_receiver_t *r, uint64_t now_ms);
/* Does sender_index hold a valid lease at now? */
bool kvps_receiver_leased(const kvps_receiver_t *r, size_t sender_index, uint64_t now_ms);
/* The value sender_index holds for key (NULL when absent; *vlen set). */
const uint8_t *kvps_receiver_get(const kvps_receiver_t *r, size_t sender_index, const void *key, size_t klen,
                                 size_t *vlen);
/* Live pairs held for sender_index. */
size_t kvps_receiver_count(const kvps_receiver_t *r, size_t sender_index);

#endif
