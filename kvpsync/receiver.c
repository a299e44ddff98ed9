/* The receiver (PROTOCOL.md R6, R9, R10, R14 to R17, R20, R27): purely
 * reactive, one state per configured sender, each with its own pairs. */
#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "wire.h"

#define MAX_SENDERS 64

typedef struct rentry {
    kvps_hnode_t h;
    struct rentry *tprev, *tnext; /* tombstones, oldest first */
    uint8_t *val;
    size_t vlen;
    uint32_t gen, seq; /* the write that set it (R15) */
    bool deleted;
    uint64_t tomb_until_ms;
    uint8_t key[];
} rentry_t;

typedef struct rsender {
    kvps_receiver_sender_t conf;
    uint64_t session; /* 0: no generation since we started */
    uint32_t gen, start_seq;
    uint32_t ack_next;                      /* every seq before it received */
    uint64_t seen[KVPS_MAX_WINDOW / 64];    /* bit i: ack_next + i received */
    bool in_resync, synced_once, flush_pending;
    uint32_t flush_seq;
    uint64_t lease_until_ms;
    kvps_map_t map;
    size_t live, total; /* total counts tombstones too */
    rentry_t *thead, *ttail;
} rsender_t;

struct kvps_receiver {
    rsender_t *senders;
    size_t n;
    kvps_receiver_events_t ev;
    void *arg;
    uint64_t id, started_ms;
    uint32_t tombstone_ms, startup_grace_ms;
    size_t max_keys;
};

kvps_receiver_t *kvps_receiver_new(const kvps_receiver_config_t *cfg, const kvps_receiver_events_t *ev, void *arg,
                                   uint64_t now_ms, uint64_t random_receiver_id) {
    if (cfg->n_senders == 0 || cfg->n_senders > MAX_SENDERS || random_receiver_id == 0)
        return NULL;
    kvps_receiver_t *r = calloc(1, sizeof *r);
    if (!r || !(r->senders = calloc(cfg->n_senders, sizeof *r->senders))) {
        free(r);
        return NULL;
    }
    r->n = cfg->n_senders;
    r->ev = *ev;
    r->arg = arg;
    r->id = random_receiver_id;
    r->started_ms = now_ms;
    r->tombstone_ms = cfg->tombstone_ms ? cfg->tombstone_ms : KVPS_TOMBSTONE_MS;
    r->startup_grace_ms = cfg->startup_grace_ms ? cfg->startup_grace_ms : KVPS_STARTUP_GRACE_MS;
    r->max_keys = cfg->max_keys ? cfg->max_keys : KVPS_MAX_KEYS;
    for (size_t i = 0; i < r->n; i++) {
        r->senders[i].conf = cfg->senders[i];
        r->senders[i].gen = (uint32_t)random_receiver_id; /* R29 */
    }
    return r;
}

static void free_entry(rentry_t *e) {
    free(e->val);
    free(e);
}

void kvps_receiver_free(kvps_receiver_t *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        kvps_map_t *m = &r->senders[i].map;
        for (size_t b = 0; b < m->nbuckets; b++)
            for (kvps_hnode_t *n = m->buckets[b], *next; n; n = next) {
                next = n->hnext;
                free_entry((rentry_t *)n);
            }
        kvps_map_free(m);
    }
    free(r->senders);
    free(r);
}

static void tomb_unlink(rsender_t *rs, rentry_t *e) {
    *(e->tprev ? &e->tprev->tnext : &rs->thead) = e->tnext;
    *(e->tnext ? &e->tnext->tprev : &rs->ttail) = e->tprev;
    e->tprev = e->tnext = NULL;
}

static void tomb_append(rsender_t *rs, rentry_t *e) {
    e->tprev = rs->ttail;
    *(rs->ttail ? &rs->ttail->tnext : &rs->thead) = e;
    rs->ttail = e;
}

static void drop_entry(rsender_t *rs, rentry_t *e) {
    if (e->deleted)
        tomb_unlink(rs, e);
    else
        rs->live--;
    rs->total--;
    kvps_map_remove(&rs->map, &e->h);
    free_entry(e);
}

/* R16: a tombstone goes once it is older than tombstone_ms and no write it
 * overrides can still arrive: every seq before it was received, or its
 * generation is over. */
static void gc_tombs(rsender_t *rs, uint64_t now) {
    rentry_t *t;
    while ((t = rs->thead) && now >= t->tomb_until_ms && (t->gen != rs->gen || kvps_serial_lt(t->seq, rs->ack_next)))
        drop_entry(rs, t);
}

/* R10: every pair not written in the current generation is gone. */
static void flush(kvps_receiver_t *r, size_t idx) {
    rsender_t *rs = &r->senders[idx];
    for (size_t b = 0; b < rs->map.nbuckets; b++) {
        for (kvps_hnode_t *n = rs->map.buckets[b], *next; n; n = next) {
            next = n->hnext;
            rentry_t *e = (rentry_t *)n;
            if (e->gen == rs->gen)
                continue;
            if (!e->deleted)
                r->ev.del(r->arg, idx, e->key, e->h.klen);
            drop_entry(rs, e);
        }
    }
    rs->in_resync = false;
    rs->flush_pending = false;
    rs->synced_once = true;
}

/* A new key starts as a tombstone; a put revives it at once. */
static rentry_t *new_entry(rsender_t *rs, const kvps_pkt_t *p, uint64_t hash) {
    rentry_t *e = calloc(1, sizeof *e + p->klen);
    if (!e)
        return NULL;
    memcpy(e->key, p->key, p->klen);
    e->h.key = e->key;
    e->h.klen = p->klen;
    e->h.hash = hash;
    if (kvps_map_add(&rs->map, &e->h) != 0) {
        free(e);
        return NULL;
    }
    e->deleted = true;
    tomb_append(rs, e);
    rs->total++;
    return e;
}

/* R15, R16, R28. Returns -1 when it cannot be stored (then it is not acked). */
static int apply_update(kvps_receiver_t *r, size_t idx, const kvps_pkt_t *p, uint64_t now) {
    rsender_t *rs = &r->senders[idx];
    uint64_t hash = kvps_map_hash(p->key, p->klen);
    rentry_t *e = (rentry_t *)kvps_map_get(&rs->map, p->key, p->klen, hash);
    if (e && e->gen == rs->gen && kvps_serial_lt(p->seq, e->seq))
        return 0; /* a later write of this generation is already here */
    uint8_t *copy = NULL;
    if (p->op == KVPS_OP_PUT && p->vlen && !(copy = malloc(p->vlen)))
        return -1;
    if (!e) {
        if (rs->total >= r->max_keys)
            gc_tombs(rs, now);
        if (rs->total >= r->max_keys || !(e = new_entry(rs, p, hash))) {
            free(copy);
            return -1;
        }
    }
    e->gen = rs->gen;
    e->seq = p->seq;
    if (p->op == KVPS_OP_DEL) {
        if (!e->deleted) {
            r->ev.del(r->arg, idx, e->key, e->h.klen);
            free(e->val);
            e->val = NULL;
            e->vlen = 0;
            e->deleted = true;
            rs->live--;
        } else {
            tomb_unlink(rs, e);
        }
        tomb_append(rs, e);
        e->tomb_until_ms = now + r->tombstone_ms;
        return 0;
    }
    if (!e->deleted && e->vlen == p->vlen && (p->vlen == 0 || memcmp(e->val, p->val, p->vlen) == 0)) {
        free(copy);
        return 0;
    }
    if (p->vlen)
        memcpy(copy, p->val, p->vlen);
    if (e->deleted) {
        tomb_unlink(rs, e);
        e->deleted = false;
        rs->live++;
    }
    free(e->val);
    e->val = copy;
    e->vlen = p->vlen;
    r->ev.put(r->arg, idx, e->key, e->h.klen, p->val, p->vlen);
    return 0;
}

static bool bit_test(const rsender_t *rs, uint32_t i) {
    return rs->seen[i / 64] >> (i % 64) & 1;
}

/* Marks seq received and slides the window past the received prefix. */
static void mark_seen(rsender_t *rs, uint32_t i) {
    rs->seen[i / 64] |= (uint64_t)1 << (i % 64);
    while (rs->seen[0] & 1) {
        for (size_t w = 0; w < KVPS_MAX_WINDOW / 64; w++)
            rs->seen[w] = rs->seen[w] >> 1 | (w + 1 < KVPS_MAX_WINDOW / 64 ? rs->seen[w + 1] << 63 : 0);
        rs->ack_next++;
    }
}

/* R14, R17: UPDATE and FLUSH of the current generation. Returns whether the
 * packet's seq is now received. */
static bool handle_seq(kvps_receiver_t *r, size_t idx, const kvps_pkt_t *p, uint64_t now) {
    rsender_t *rs = &r->senders[idx];
    uint32_t d = p->seq - rs->ack_next;
    if (kvps_serial_lt(p->seq, rs->ack_next) || (d < KVPS_MAX_WINDOW && bit_test(rs, d)))
        return true; /* a duplicate: acknowledged again, nothing changes (R19) */
    if (d >= KVPS_MAX_WINDOW)
        return false;
    if (p->type == KVPS_UPDATE && apply_update(r, idx, p, now) != 0)
        return false;
    if (p->type == KVPS_FLUSH) {
        rs->flush_pending = true;
        rs->flush_seq = p->seq;
    }
    mark_seen(rs, d);
    if (rs->flush_pending && kvps_serial_lt(rs->flush_seq, rs->ack_next))
        flush(r, idx);
    return true;
}

/* R9 */
static bool handle_start(rsender_t *rs, const kvps_pkt_t *p) {
    if (p->session == rs->session && p->gen == rs->gen)
        return p->seq == rs->start_seq;
    if (!kvps_serial_lt(rs->gen, p->gen))
        return false;
    rs->session = p->session;
    rs->gen = p->gen;
    rs->start_seq = p->seq;
    rs->ack_next = p->seq + 1;
    memset(rs->seen, 0, sizeof rs->seen);
    rs->in_resync = true;
    rs->flush_pending = false;
    rs->lease_until_ms = 0;
    return true;
}

size_t kvps_receiver_handle(kvps_receiver_t *r, const uint8_t *pkt, size_t len, uint64_t now, uint8_t *out,
                            size_t cap) {
    uint8_t type;
    uint32_t sender_id;
    if (kvps_wire_peek(pkt, len, &type, &sender_id) != 0 || type == KVPS_ACK) /* R1, R2, R5 */
        return 0;
    size_t idx = 0;
    while (idx < r->n && r->senders[idx].conf.sender_id != sender_id)
        idx++;
    kvps_pkt_t p;
    if (idx == r->n || kvps_wire_decode(pkt, len, &r->senders[idx].conf.psk, &p) != 0) /* R4, R6 */
        return 0;
    rsender_t *rs = &r->senders[idx];
    bool acked = false;
    if (p.receiver_id == r->id) { /* R6: otherwise only our status goes back */
        gc_tombs(rs, now);
        bool current = rs->session && p.session == rs->session && p.gen == rs->gen;
        if (p.type == KVPS_START)
            acked = handle_start(rs, &p);
        else if (current && (p.type == KVPS_UPDATE || p.type == KVPS_FLUSH))
            acked = handle_seq(r, idx, &p, now);
        current = rs->session && p.session == rs->session && p.gen == rs->gen;
        /* R20 */
        if (current && p.lease_ms && p.anchor_ms <= now && p.anchor_ms + p.lease_ms > rs->lease_until_ms)
            rs->lease_until_ms = p.anchor_ms + p.lease_ms;
    }
    kvps_pkt_t a = {
        .type = KVPS_ACK,
        .sender_id = sender_id,
        .gen = p.gen,
        .receiver_id = r->id,
        .session = p.session,
        .echo_ms = p.sent_ms,
        .receiver_ms = now,
        .cur_session = rs->session,
        .cur_gen = rs->gen,
        .ack_next = rs->ack_next,
        .ack_seq = acked ? p.seq : 0,
        .flags = (uint8_t)((acked ? KVPS_FLAG_ACKED : 0) | (rs->in_resync ? KVPS_FLAG_RESYNC : 0)),
    };
    return kvps_wire_encode(&a, &rs->conf.psk, out, cap);
}

bool kvps_receiver_leased(const kvps_receiver_t *r, size_t idx, uint64_t now_ms) {
    return idx < r->n && now_ms < r->senders[idx].lease_until_ms;
}

/* R27 */
bool kvps_receiver_any_synced(const kvps_receiver_t *r) {
    for (size_t i = 0; i < r->n; i++)
        if (r->senders[i].synced_once)
            return true;
    return false;
}

bool kvps_receiver_negatives_ok(const kvps_receiver_t *r, uint64_t now_ms) {
    bool any_lease = false, all_synced = true;
    for (size_t i = 0; i < r->n; i++) {
        const rsender_t *rs = &r->senders[i];
        if (now_ms < rs->lease_until_ms) {
            if (rs->in_resync)
                return false;
            any_lease = true;
        }
        all_synced = all_synced && rs->synced_once;
    }
    return any_lease && (all_synced || now_ms >= r->started_ms + r->startup_grace_ms);
}

const uint8_t *kvps_receiver_get(const kvps_receiver_t *r, size_t idx, const void *key, size_t klen, size_t *vlen) {
    if (idx >= r->n)
        return NULL;
    const rentry_t *e = (const rentry_t *)kvps_map_get(&r->senders[idx].map, key, klen, kvps_map_hash(key, klen));
    if (!e || e->deleted)
        return NULL;
    *vlen = e->vlen;
    return e->val ? e->val : (const uint8_t *)"";
}

size_t kvps_receiver_count(const kvps_receiver_t *r, size_t idx) {
    return idx < r->n ? r->senders[idx].live : 0;
}
