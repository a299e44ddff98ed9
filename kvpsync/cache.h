/* cache internals shared with sender.c: entries kept in update-id order and
 * the cursors with which each sender walks them. */
#ifndef SKD_KVPS_CACHE_H
#define SKD_KVPS_CACHE_H

#include <stdbool.h>

#include "kvpsync.h"
#include "map.h"

typedef struct kvps_entry {
    kvps_hnode_t h;
    struct kvps_entry *prev, *next;   /* all entries, by id */
    struct kvps_entry *tprev, *tnext; /* deleted entries, by id */
    uint64_t id;                      /* the id of the key's latest update */
    uint64_t epoch;                   /* the last reconcile that kept it */
    uint8_t *val;
    size_t vlen;
    bool deleted; /* a cache tombstone, kept until every active cursor passed it */
    uint8_t key[];
} kvps_entry_t;

/* A sender's position: every entry before next was taken in the current
 * generation; NULL means at the tail (new entries become next). */
typedef struct kvps_cursor {
    kvps_entry_t *next;
    bool active; /* walking; inactive cursors hold no tombstones */
    bool lost;   /* a tombstone it had not passed was dropped: resync (R30) */
} kvps_cursor_t;

int kvps_cache_attach(kvps_cache_t *c, kvps_cursor_t *cur);
void kvps_cache_detach(kvps_cache_t *c, kvps_cursor_t *cur);
/* Restarts the walk at the oldest entry and activates the cursor. */
void kvps_cursor_reset(kvps_cache_t *c, kvps_cursor_t *cur);
/* The next entry and advances past it; NULL at the tail. Valid until the next
 * call into the cache. */
const kvps_entry_t *kvps_cursor_take(kvps_cache_t *c, kvps_cursor_t *cur);

#endif
