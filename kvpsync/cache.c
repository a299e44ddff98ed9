#include "cache.h"

#include <stdlib.h>
#include <string.h>

struct kvps_cache {
    kvps_map_t map;
    kvps_entry_t *head, *tail;   /* by id */
    kvps_entry_t *thead, *ttail; /* deleted, by id */
    size_t live, tombs, max_keys;
    uint64_t next_id, epoch;
    kvps_cursor_t *cursors[KVPS_MAX_CURSORS];
    size_t ncursors;
};

kvps_cache_t *kvps_cache_new(size_t max_keys) {
    kvps_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->max_keys = max_keys ? max_keys : KVPS_MAX_KEYS;
    c->next_id = 1;
    return c;
}

static void free_entry(kvps_entry_t *e) {
    free(e->val);
    free(e);
}

void kvps_cache_free(kvps_cache_t *c) {
    if (!c)
        return;
    for (kvps_entry_t *e = c->head, *next; e; e = next) {
        next = e->next;
        free_entry(e);
    }
    kvps_map_free(&c->map);
    free(c);
}

static void unlink_entry(kvps_cache_t *c, kvps_entry_t *e) {
    for (size_t i = 0; i < c->ncursors; i++)
        if (c->cursors[i]->next == e)
            c->cursors[i]->next = e->next;
    *(e->prev ? &e->prev->next : &c->head) = e->next;
    *(e->next ? &e->next->prev : &c->tail) = e->prev;
    e->prev = e->next = NULL;
}

static void append_entry(kvps_cache_t *c, kvps_entry_t *e) {
    e->prev = c->tail;
    *(c->tail ? &c->tail->next : &c->head) = e;
    c->tail = e;
    for (size_t i = 0; i < c->ncursors; i++)
        if (!c->cursors[i]->next)
            c->cursors[i]->next = e;
}

static void tomb_unlink(kvps_cache_t *c, kvps_entry_t *e) {
    *(e->tprev ? &e->tprev->tnext : &c->thead) = e->tnext;
    *(e->tnext ? &e->tnext->tprev : &c->ttail) = e->tprev;
    e->tprev = e->tnext = NULL;
    c->tombs--;
}

static void drop_tomb(kvps_cache_t *c, kvps_entry_t *e) {
    tomb_unlink(c, e);
    unlink_entry(c, e);
    kvps_map_remove(&c->map, &e->h);
    free_entry(e);
}

/* Frees the tombstones every active cursor has passed; beyond the bound, the
 * oldest ones anyway, and the cursors that still needed them are lost. */
static void gc(kvps_cache_t *c) {
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < c->ncursors; i++)
        if (c->cursors[i]->active && c->cursors[i]->next && c->cursors[i]->next->id < min)
            min = c->cursors[i]->next->id;
    while (c->thead && c->thead->id < min)
        drop_tomb(c, c->thead);
    while (c->tombs > c->max_keys) {
        for (size_t i = 0; i < c->ncursors; i++) {
            kvps_cursor_t *cur = c->cursors[i];
            if (cur->active && cur->next && cur->next->id <= c->thead->id)
                cur->lost = true;
        }
        drop_tomb(c, c->thead);
    }
}

static kvps_entry_t *lookup(const kvps_cache_t *c, const void *key, size_t klen) {
    kvps_hnode_t *n = kvps_map_get(&c->map, key, klen, kvps_map_hash(key, klen));
    return n ? (kvps_entry_t *)n : NULL;
}

/* Gives e the next id and moves it to the tail. */
static uint64_t touch(kvps_cache_t *c, kvps_entry_t *e) {
    if (e->prev || c->head == e)
        unlink_entry(c, e);
    e->id = c->next_id++;
    append_entry(c, e);
    return e->id;
}

uint64_t kvps_cache_put(kvps_cache_t *c, const void *key, size_t klen, const void *val, size_t vlen) {
    if (klen == 0 || klen > KVPS_MAX_KEY || vlen > KVPS_MAX_VAL || (vlen && !val))
        return 0;
    kvps_entry_t *e = lookup(c, key, klen);
    if (e && !e->deleted && e->vlen == vlen && (vlen == 0 || memcmp(e->val, val, vlen) == 0))
        return e->id;
    if (c->next_id == UINT64_MAX || ((!e || e->deleted) && c->live >= c->max_keys))
        return 0;
    uint8_t *copy = NULL;
    if (vlen && !(copy = malloc(vlen)))
        return 0;
    if (vlen)
        memcpy(copy, val, vlen);
    if (!e) {
        e = calloc(1, sizeof *e + klen);
        if (!e) {
            free(copy);
            return 0;
        }
        memcpy(e->key, key, klen);
        e->h.key = e->key;
        e->h.klen = klen;
        e->h.hash = kvps_map_hash(key, klen);
        if (kvps_map_add(&c->map, &e->h) != 0) {
            free(copy);
            free(e);
            return 0;
        }
        c->live++;
    } else if (e->deleted) {
        tomb_unlink(c, e);
        e->deleted = false;
        c->live++;
    }
    free(e->val);
    e->val = copy;
    e->vlen = vlen;
    uint64_t id = touch(c, e);
    gc(c);
    return id;
}

static uint64_t del_entry(kvps_cache_t *c, kvps_entry_t *e) {
    free(e->val);
    e->val = NULL;
    e->vlen = 0;
    e->deleted = true;
    c->live--;
    e->tprev = c->ttail;
    *(c->ttail ? &c->ttail->tnext : &c->thead) = e;
    c->ttail = e;
    c->tombs++;
    return touch(c, e);
}

uint64_t kvps_cache_del(kvps_cache_t *c, const void *key, size_t klen) {
    kvps_entry_t *e = lookup(c, key, klen);
    if (!e || e->deleted || c->next_id == UINT64_MAX)
        return 0;
    uint64_t id = del_entry(c, e);
    gc(c);
    return id;
}

size_t kvps_cache_reconcile(kvps_cache_t *c, const kvps_pair_t *pairs, size_t n) {
    c->epoch++;
    for (size_t i = 0; i < n; i++) {
        kvps_entry_t *e = lookup(c, pairs[i].key, pairs[i].klen);
        if (e)
            e->epoch = c->epoch;
    }
    /* Deleted entries move to the tail and are skipped when met again; none
     * is freed before the walk ends. */
    for (kvps_entry_t *e = c->head, *next; e; e = next) {
        next = e->next;
        if (!e->deleted && e->epoch != c->epoch && c->next_id != UINT64_MAX)
            del_entry(c, e);
    }
    gc(c);
    size_t refused = 0;
    for (size_t i = 0; i < n; i++)
        refused += kvps_cache_put(c, pairs[i].key, pairs[i].klen, pairs[i].val, pairs[i].vlen) == 0;
    return refused;
}

const uint8_t *kvps_cache_get(const kvps_cache_t *c, const void *key, size_t klen, size_t *vlen) {
    kvps_entry_t *e = lookup(c, key, klen);
    if (!e || e->deleted)
        return NULL;
    *vlen = e->vlen;
    return e->val ? e->val : (const uint8_t *)"";
}

size_t kvps_cache_count(const kvps_cache_t *c) {
    return c->live;
}

uint64_t kvps_cache_next_id(const kvps_cache_t *c) {
    return c->next_id;
}

int kvps_cache_attach(kvps_cache_t *c, kvps_cursor_t *cur) {
    if (c->ncursors == KVPS_MAX_CURSORS)
        return -1;
    memset(cur, 0, sizeof *cur);
    c->cursors[c->ncursors++] = cur;
    return 0;
}

void kvps_cache_detach(kvps_cache_t *c, kvps_cursor_t *cur) {
    for (size_t i = 0; i < c->ncursors; i++) {
        if (c->cursors[i] == cur) {
            c->cursors[i] = c->cursors[--c->ncursors];
            break;
        }
    }
    gc(c);
}

void kvps_cursor_reset(kvps_cache_t *c, kvps_cursor_t *cur) {
    cur->next = c->head;
    cur->active = true;
    cur->lost = false;
}

const kvps_entry_t *kvps_cursor_take(kvps_cache_t *c, kvps_cursor_t *cur) {
    gc(c);
    kvps_entry_t *e = cur->next;
    if (e)
        cur->next = e->next;
    return e;
}
