/* kvpsync core: the wire format, and senders and receivers on a simulated
 * network driven by a fake clock (loss, duplication, reordering, delay,
 * restarts). Each test names the PROTOCOL.md rules it checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../kvpsync/kvpsync.h"
#include "../../kvpsync/wire.h"

#define MAXS 2
#define MAXR 3

/* ---- a small key/value list: the model of a cache and a receiver's mirror -- */

typedef struct kv {
    uint8_t key[KVPS_MAX_KEY], val[KVPS_MAX_VAL];
    size_t klen, vlen;
    uint64_t id; /* in a model: the key's latest update id */
} kv_t;

typedef struct kvlist {
    kv_t *v;
    size_t n, cap;
} kvlist_t;

static kv_t *kv_find(kvlist_t *l, const void *key, size_t klen) {
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].klen == klen && memcmp(l->v[i].key, key, klen) == 0)
            return &l->v[i];
    return NULL;
}

static kv_t *kv_set(kvlist_t *l, const void *key, size_t klen, const void *val, size_t vlen) {
    kv_t *e = kv_find(l, key, klen);
    if (!e) {
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 64;
            l->v = realloc(l->v, l->cap * sizeof *l->v);
            assert_non_null(l->v);
        }
        e = &l->v[l->n++];
        memcpy(e->key, key, klen);
        e->klen = klen;
    }
    memcpy(e->val, val, vlen);
    e->vlen = vlen;
    return e;
}

static bool kv_del(kvlist_t *l, const void *key, size_t klen) {
    kv_t *e = kv_find(l, key, klen);
    if (!e)
        return false;
    *e = l->v[--l->n];
    return true;
}

static void kv_free(kvlist_t *l) {
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* ---- the simulated network ------------------------------------------------ */

typedef struct dgram {
    uint64_t at, order;
    bool to_receiver;
    int si, ri;
    size_t len;
    uint8_t data[KVPS_MAX_PACKET];
} dgram_t;


/* What a receiver's events said, per sender. */
typedef struct mirror {
    kvlist_t l[MAXS];
    uint64_t events, redundant_puts;
} mirror_t;

typedef struct sim {
    uint64_t now, rng, order;
    int ns, nr;
    int loss_pct, dup_pct, delay_min, delay_max;
    uint32_t lease_ms, window;
    size_t cache_max, recv_max;
    uint32_t tombstone_ms, grace_ms;
    kvps_cache_t *cache[MAXS];
    kvlist_t model[MAXS]; /* what the test put into each cache */
    kvlist_t gone[MAXS];  /* keys deleted from it, with the deletion's id */
    bool (*filter)(struct sim *s, const dgram_t *d); /* true: lose it */
    uint64_t session[MAXS];
    kvps_sender_t *snd[MAXS][MAXR];
    kvps_receiver_t *rcv[MAXR];
    uint64_t rid[MAXR];
    bool r_deaf[MAXR]; /* everything sent to it is lost */
    bool r_mute[MAXR]; /* its replies are lost */
    mirror_t mirror[MAXR];
    dgram_t *q;
    size_t nq, qcap;
    dgram_t *captured; /* every datagram sent while capture is on */
    size_t ncaptured, capcap;
    bool capture;
} sim_t;

static uint32_t rnd(sim_t *s) {
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (uint32_t)(s->rng >> 11);
}

static kvps_psk_t pair_psk(int si, int ri) {
    kvps_psk_t k;
    for (int i = 0; i < 32; i++)
        k.key[i] = (uint8_t)(si * 16 + ri * 3 + i);
    return k;
}

static void ev_put(void *arg, size_t si, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen) {
    mirror_t *m = arg;
    kv_t *e = kv_find(&m->l[si], key, klen);
    if (e && e->vlen == vlen && memcmp(e->val, val, vlen) == 0)
        m->redundant_puts++;
    kv_set(&m->l[si], key, klen, val, vlen);
    m->events++;
}

static void ev_del(void *arg, size_t si, const uint8_t *key, size_t klen) {
    mirror_t *m = arg;
    assert_true(kv_del(&m->l[si], key, klen)); /* only keys it had */
    m->events++;
}

static const kvps_receiver_events_t mirror_events = {ev_put, ev_del};

static uint32_t sender_id(int si) {
    return 100 + (uint32_t)si;
}

static kvps_sender_t *new_sender(sim_t *s, int si, int ri) {
    kvps_sender_config_t c = {
        .sender_id = sender_id(si),
        .session_id = s->session[si],
        .psk = pair_psk(si, ri),
        .lease_ms = s->lease_ms,
        .window = s->window,
    };
    kvps_sender_t *snd = kvps_sender_new(&c, s->cache[si], s->now);
    assert_non_null(snd);
    return snd;
}

static void receiver_start(sim_t *s, int ri, uint64_t rid) {
    kvps_receiver_sender_t senders[MAXS];
    for (int si = 0; si < s->ns; si++)
        senders[si] = (kvps_receiver_sender_t){sender_id(si), pair_psk(si, ri)};
    kvps_receiver_config_t c = {
        .senders = senders,
        .n_senders = (size_t)s->ns,
        .tombstone_ms = s->tombstone_ms,
        .startup_grace_ms = s->grace_ms,
        .max_keys = s->recv_max,
    };
    for (int si = 0; si < MAXS; si++)
        kv_free(&s->mirror[ri].l[si]);
    memset(&s->mirror[ri], 0, sizeof s->mirror[ri]);
    s->rid[ri] = rid;
    s->rcv[ri] = kvps_receiver_new(&c, &mirror_events, &s->mirror[ri], s->now, rid);
    assert_non_null(s->rcv[ri]);
}

/* The receiver process restarts: everything it had is lost, new random id (R7). */
static void receiver_restart(sim_t *s, int ri, uint64_t rid) {
    kvps_receiver_free(s->rcv[ri]);
    receiver_start(s, ri, rid);
}

/* The sender process restarts with a new session and rebuilds the same cache
 * contents from its store (R8). */
static void sender_restart(sim_t *s, int si, uint64_t session) {
    for (int ri = 0; ri < s->nr; ri++)
        kvps_sender_free(s->snd[si][ri]);
    kvps_cache_free(s->cache[si]);
    s->cache[si] = kvps_cache_new(s->cache_max);
    for (size_t i = 0; i < s->model[si].n; i++) {
        kv_t *e = &s->model[si].v[i];
        e->id = kvps_cache_put(s->cache[si], e->key, e->klen, e->val, e->vlen);
        assert_true(e->id != 0);
    }
    kv_free(&s->gone[si]); /* the new cache knows nothing of them: FLUSH does */
    s->session[si] = session;
    for (int ri = 0; ri < s->nr; ri++)
        s->snd[si][ri] = new_sender(s, si, ri);
}

static sim_t *sim_new(int ns, int nr, uint64_t seed) {
    sim_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->ns = ns;
    s->nr = nr;
    s->rng = seed | 1;
    s->now = 1000;
    s->delay_min = s->delay_max = 1;
    for (int si = 0; si < ns; si++)
        s->session[si] = 0x5e55000000000000u + (uint64_t)si * 0x100000001u + 1;
    for (int ri = 0; ri < nr; ri++)
        s->rid[ri] = 0x7ec0000000000000u + (uint64_t)ri * 0x1000000010u + 7;
    return s;
}

/* Creates caches, senders and receivers with the options set so far. */
static void sim_start(sim_t *s) {
    for (int si = 0; si < s->ns; si++) {
        s->cache[si] = kvps_cache_new(s->cache_max);
        assert_non_null(s->cache[si]);
        for (int ri = 0; ri < s->nr; ri++)
            s->snd[si][ri] = new_sender(s, si, ri);
    }
    for (int ri = 0; ri < s->nr; ri++)
        receiver_start(s, ri, s->rid[ri]);
}

static void sim_free(sim_t *s) {
    for (int si = 0; si < s->ns; si++) {
        for (int ri = 0; ri < s->nr; ri++)
            kvps_sender_free(s->snd[si][ri]);
        kvps_cache_free(s->cache[si]);
        kv_free(&s->model[si]);
        kv_free(&s->gone[si]);
    }
    for (int ri = 0; ri < s->nr; ri++) {
        kvps_receiver_free(s->rcv[ri]);
        for (int si = 0; si < MAXS; si++)
            kv_free(&s->mirror[ri].l[si]);
    }
    free(s->q);
    free(s->captured);
    free(s);
}

static void enqueue_one(sim_t *s, const dgram_t *d) {
    if (s->nq == s->qcap) {
        s->qcap = s->qcap ? s->qcap * 2 : 256;
        s->q = realloc(s->q, s->qcap * sizeof *s->q);
        assert_non_null(s->q);
    }
    dgram_t *n = &s->q[s->nq++];
    *n = *d;
    uint32_t span = (uint32_t)(s->delay_max - s->delay_min + 1);
    n->at = s->now + (uint64_t)s->delay_min + rnd(s) % span;
    n->order = s->order++;
}

/* Loss, duplication and a random delay per copy (which reorders). */
static void send_dgram(sim_t *s, bool to_receiver, int si, int ri, const uint8_t *data, size_t len) {
    assert_true(len > 0 && len <= KVPS_MAX_PACKET);
    dgram_t d = {.at = s->now, .to_receiver = to_receiver, .si = si, .ri = ri, .len = len};
    memcpy(d.data, data, len);
    if (s->capture) {
        if (s->ncaptured == s->capcap) {
            s->capcap = s->capcap ? s->capcap * 2 : 1024;
            s->captured = realloc(s->captured, s->capcap * sizeof *s->captured);
            assert_non_null(s->captured);
        }
        s->captured[s->ncaptured++] = d;
    }
    if ((to_receiver ? s->r_deaf[ri] : s->r_mute[ri]) || (s->filter && s->filter(s, &d)))
        return;
    if ((int)(rnd(s) % 100) < s->loss_pct)
        return;
    enqueue_one(s, &d);
    if ((int)(rnd(s) % 100) < s->dup_pct)
        enqueue_one(s, &d);
}

static void deliver(sim_t *s, const dgram_t *d) {
    if (d->to_receiver) {
        uint8_t out[KVPS_MAX_PACKET];
        size_t n = kvps_receiver_handle(s->rcv[d->ri], d->data, d->len, s->now, out, sizeof out);
        if (n)
            send_dgram(s, false, d->si, d->ri, out, n);
    } else {
        kvps_sender_handle(s->snd[d->si][d->ri], d->data, d->len, s->now);
    }
}

static void poll_senders(sim_t *s) {
    uint8_t out[KVPS_MAX_PACKET];
    for (int si = 0; si < s->ns; si++)
        for (int ri = 0; ri < s->nr; ri++) {
            size_t n;
            while ((n = kvps_sender_poll(s->snd[si][ri], s->now, out, sizeof out)) > 0)
                send_dgram(s, true, si, ri, out, n);
            assert_true(kvps_sender_deadline(s->snd[si][ri]) > s->now); /* no busy loop */
        }
}

/* One millisecond: deliver what is due (oldest first), poll every sender. */
static void sim_step(sim_t *s) {
    for (;;) {
        size_t best = s->nq;
        for (size_t i = 0; i < s->nq; i++)
            if (s->q[i].at <= s->now &&
                (best == s->nq || s->q[i].at < s->q[best].at ||
                 (s->q[i].at == s->q[best].at && s->q[i].order < s->q[best].order)))
                best = i;
        if (best == s->nq)
            break;
        dgram_t d = s->q[best];
        s->q[best] = s->q[--s->nq];
        deliver(s, &d);
    }
    poll_senders(s);
    s->now++;
}

static void sim_run(sim_t *s, uint64_t ms) {
    for (uint64_t i = 0; i < ms; i++)
        sim_step(s);
}

static uint64_t put(sim_t *s, int si, const char *key, const char *val) {
    uint64_t id = kvps_cache_put(s->cache[si], key, strlen(key), val, strlen(val));
    if (id == 0) { /* only a bounded cache may refuse */
        assert_true(s->cache_max && kvps_cache_count(s->cache[si]) == s->cache_max);
        return 0;
    }
    kv_set(&s->model[si], key, strlen(key), val, strlen(val))->id = id;
    kv_del(&s->gone[si], key, strlen(key));
    return id;
}

static uint64_t del(sim_t *s, int si, const char *key) {
    uint64_t id = kvps_cache_del(s->cache[si], key, strlen(key));
    if (kv_del(&s->model[si], key, strlen(key)))
        kv_set(&s->gone[si], key, strlen(key), "", 0)->id = id;
    return id;
}

/* The receiver's pairs of sender si, by events and by kvps_receiver_get, are
 * the sender's model. */
static bool pair_synced(sim_t *s, int si, int ri) {
    kvlist_t *m = &s->mirror[ri].l[si], *want = &s->model[si];
    if (m->n != want->n || kvps_receiver_count(s->rcv[ri], (size_t)si) != want->n)
        return false;
    for (size_t i = 0; i < want->n; i++) {
        kv_t *w = &want->v[i], *e = kv_find(m, w->key, w->klen);
        size_t vlen;
        const uint8_t *v = kvps_receiver_get(s->rcv[ri], (size_t)si, w->key, w->klen, &vlen);
        if (!e || e->vlen != w->vlen || memcmp(e->val, w->val, w->vlen) != 0 || !v || vlen != w->vlen ||
            memcmp(v, w->val, vlen) != 0)
            return false;
    }
    kvps_sender_stats_t st;
    kvps_sender_stats(s->snd[si][ri], &st);
    return st.in_sync && kvps_sender_healthy(s->snd[si][ri], s->now) &&
           kvps_sender_acked_below(s->snd[si][ri]) == kvps_cache_next_id(s->cache[si]);
}

static bool all_synced(sim_t *s) {
    for (int si = 0; si < s->ns; si++)
        for (int ri = 0; ri < s->nr; ri++)
            if (!pair_synced(s, si, ri))
                return false;
    return true;
}

/* Runs until everything is in sync (and stays so for a while); fails after max_ms. */
static void converge(sim_t *s, uint64_t max_ms) {
    uint64_t end = s->now + max_ms;
    while (!all_synced(s)) {
        assert_true(s->now < end);
        sim_step(s);
    }
}

/* R24 safety, checked at every step of the lossy runs: an id below
 * acked_below means the receiver lacks a deleted key, and holds the key's
 * current value unless it answers no negatives for this sender (a receiver
 * that restarted empty holds no lease until it resyncs). */
static void check_acked_below(sim_t *s, int si, int ri) {
    uint64_t below = kvps_sender_acked_below(s->snd[si][ri]);
    kvlist_t *m = &s->mirror[ri].l[si];
    for (size_t i = 0; kvps_receiver_leased(s->rcv[ri], (size_t)si, s->now) && i < s->model[si].n; i++) {
        kv_t *w = &s->model[si].v[i];
        if (w->id < below) {
            kv_t *e = kv_find(m, w->key, w->klen);
            assert_non_null(e);
            assert_int_equal(e->vlen, w->vlen);
            assert_memory_equal(e->val, w->val, w->vlen);
        }
    }
    for (size_t i = 0; i < s->gone[si].n; i++)
        if (s->gone[si].v[i].id < below)
            assert_null(kv_find(m, s->gone[si].v[i].key, s->gone[si].v[i].klen));
}

/* ---- helpers for hand-driven exchanges ------------------------------------ */

typedef struct pkt {
    size_t len;
    uint8_t data[KVPS_MAX_PACKET];
} pkt_t;

/* Everything the sender wants to send now. */
static size_t drain(sim_t *s, int si, int ri, pkt_t *out, size_t max) {
    size_t n = 0;
    while (n < max && (out[n].len = kvps_sender_poll(s->snd[si][ri], s->now, out[n].data, KVPS_MAX_PACKET)) > 0)
        n++;
    return n;
}

/* Gives p to the receiver and its reply back to the sender. */
static void exchange(sim_t *s, int si, int ri, const pkt_t *p) {
    uint8_t out[KVPS_MAX_PACKET];
    size_t n = kvps_receiver_handle(s->rcv[ri], p->data, p->len, s->now, out, sizeof out);
    if (n)
        kvps_sender_handle(s->snd[si][ri], out, n, s->now);
}

static kvps_pkt_t decode(const pkt_t *p, int si, int ri) {
    kvps_pkt_t d;
    kvps_psk_t k = pair_psk(si, ri);
    assert_int_equal(kvps_wire_decode(p->data, p->len, &k, &d), 0);
    return d;
}

/* Re-signs a hand-modified datagram with the pair's key. */
static void resign(pkt_t *p, int si, int ri) {
    kvps_psk_t k = pair_psk(si, ri);
    kvps_wire_sign(p->data, p->len, &k);
}

static bool is_update(struct sim *s, const dgram_t *d) {
    (void)s;
    return d->to_receiver && d->data[5] == KVPS_UPDATE;
}

/* ---- wire format ---------------------------------------------------------- */

static size_t encode(const kvps_pkt_t *p, pkt_t *out) {
    kvps_psk_t k = pair_psk(0, 0);
    out->len = kvps_wire_encode(p, &k, out->data, sizeof out->data);
    assert_true(out->len > 0);
    return out->len;
}

static const kvps_pkt_t sample_update = {
    .type = KVPS_UPDATE, .sender_id = 100, .gen = 7, .receiver_id = 0x1234, .session = 0x99,
    .sent_ms = 5, .anchor_ms = 4, .lease_ms = 3000, .seq = 42, .op = KVPS_OP_PUT,
    .key = (const uint8_t *)"a/host", .klen = 6, .val = (const uint8_t *)"192.0.2.7", .vlen = 9,
};

static bool decodes(const pkt_t *p) {
    kvps_pkt_t d;
    kvps_psk_t k = pair_psk(0, 0);
    return kvps_wire_decode(p->data, p->len, &k, &d) == 0;
}

/* Patches a byte, re-signs, and says whether it still decodes. */
static bool decodes_with(const kvps_pkt_t *base, size_t off, uint8_t val) {
    pkt_t p;
    encode(base, &p);
    p.data[off] = val;
    resign(&p, 0, 0);
    return decodes(&p);
}

/* R1, R2: framing and exact lengths. */
static void wire_framing(void **state) {
    (void)state;
    static const uint8_t types[] = {KVPS_HELLO, KVPS_START, KVPS_UPDATE, KVPS_FLUSH, KVPS_KEEPALIVE, KVPS_ACK};
    for (size_t t = 0; t < sizeof types; t++) {
        kvps_pkt_t in = sample_update;
        in.type = types[t];
        if (in.type == KVPS_HELLO)
            in.gen = in.seq = 0, in.anchor_ms = in.lease_ms = 0;
        if (in.type == KVPS_KEEPALIVE)
            in.seq = 0;
        pkt_t p;
        encode(&in, &p);
        kvps_pkt_t out;
        kvps_psk_t k = pair_psk(0, 0);
        assert_int_equal(kvps_wire_decode(p.data, p.len, &k, &out), 0);
        assert_int_equal(out.type, in.type);
        assert_int_equal(out.sender_id, 100);
        assert_int_equal(out.receiver_id, 0x1234);
        assert_int_equal(out.session, 0x99);
        if (in.type == KVPS_UPDATE) {
            assert_int_equal(p.len, 60 + 6 + 9 + 32);
            assert_int_equal(out.seq, 42);
            assert_memory_equal(out.key, "a/host", 6);
            assert_memory_equal(out.val, "192.0.2.7", 9);
        } else {
            assert_int_equal(p.len, in.type == KVPS_ACK ? 104 : 88);
        }
        /* every shorter datagram, and one with a byte more, is dropped (R2) */
        for (size_t n = 0; n < p.len; n++) {
            pkt_t q = p;
            q.len = n;
            if (n >= 32)
                resign(&q, 0, 0);
            assert_false(decodes(&q));
        }
        pkt_t q = p;
        q.data[q.len++] = 0;
        resign(&q, 0, 0);
        assert_false(decodes(&q));
        /* R1: magic, version, reserved, type */
        assert_false(decodes_with(&in, 0, 'X'));
        assert_false(decodes_with(&in, 4, 2));
        assert_false(decodes_with(&in, 7, 1));
        assert_false(decodes_with(&in, 5, 0));
        assert_false(decodes_with(&in, 5, 7));
    }
    /* R2: nothing longer than 1232 bytes, whatever the length fields say */
    pkt_t small;
    encode(&sample_update, &small);
    uint8_t huge[KVPS_MAX_PACKET + 1] = {0};
    memcpy(huge, small.data, small.len);
    uint8_t type;
    uint32_t sid;
    assert_int_equal(kvps_wire_peek(huge, sizeof huge, &type, &sid), -1);
    /* the largest UPDATE fits */
    uint8_t key[KVPS_MAX_KEY], val[KVPS_MAX_VAL];
    memset(key, 'k', sizeof key);
    memset(val, 'v', sizeof val);
    kvps_pkt_t maxed = sample_update;
    maxed.key = key, maxed.klen = sizeof key, maxed.val = val, maxed.vlen = sizeof val;
    pkt_t m;
    encode(&maxed, &m);
    assert_true(m.len <= KVPS_MAX_PACKET);
    assert_true(decodes(&m));
}

/* R3: field ranges. */
static void wire_fields(void **state) {
    (void)state;
    kvps_pkt_t in = sample_update;
    assert_false(decodes_with(&in, 56, 3));    /* op */
    assert_false(decodes_with(&in, 56, 0));
    assert_false(decodes_with(&in, 58, 0x02)); /* klen 512+6: length mismatch */
    in.op = KVPS_OP_DEL;                       /* a delete carries no value */
    pkt_t p;
    encode(&in, &p);
    assert_false(decodes(&p));
    in.vlen = 0;
    encode(&in, &p);
    assert_true(decodes(&p));
    in = sample_update;
    in.klen = 0;
    encode(&in, &p);
    assert_false(decodes(&p));
    in = sample_update;
    in.lease_ms = KVPS_MAX_LEASE_MS + 1;
    encode(&in, &p);
    assert_false(decodes(&p));
    in.lease_ms = KVPS_MAX_LEASE_MS;
    encode(&in, &p);
    assert_true(decodes(&p));
    in.lease_ms = 0; /* no grant: no anchor either */
    encode(&in, &p);
    assert_false(decodes(&p));
    in.anchor_ms = 0;
    encode(&in, &p);
    assert_true(decodes(&p));
    in.session = 0;
    encode(&in, &p);
    assert_false(decodes(&p));
    in = sample_update;
    in.receiver_id = 0; /* only a HELLO may not know the receiver */
    encode(&in, &p);
    assert_false(decodes(&p));
    kvps_pkt_t h = {.type = KVPS_HELLO, .sender_id = 1, .session = 2};
    encode(&h, &p);
    assert_true(decodes(&p));
    h.seq = 1;
    encode(&h, &p);
    assert_false(decodes(&p));
    kvps_pkt_t ka = sample_update;
    ka.type = KVPS_KEEPALIVE;
    encode(&ka, &p);
    assert_false(decodes(&p)); /* seq must be 0 */
    kvps_pkt_t a = {.type = KVPS_ACK, .sender_id = 1, .receiver_id = 3, .session = 2, .flags = 3};
    encode(&a, &p);
    assert_true(decodes(&p));
    assert_false(decodes_with(&a, 68, 4)); /* unknown flag */
    assert_false(decodes_with(&a, 70, 1)); /* padding */
}

/* R4: any changed byte, or another pair's key, fails the MAC. */
static void wire_mac(void **state) {
    (void)state;
    pkt_t p;
    encode(&sample_update, &p);
    for (size_t i = 0; i < p.len; i++)
        for (int bit = 0; bit < 8; bit++) {
            pkt_t q = p;
            q.data[i] ^= (uint8_t)(1 << bit);
            assert_false(decodes(&q));
        }
    kvps_pkt_t d;
    kvps_psk_t other = pair_psk(0, 1);
    assert_int_equal(kvps_wire_decode(p.data, p.len, &other, &d), -1);
}

/* R29: serial-number order across the wrap. */
static void serial_order(void **state) {
    (void)state;
    assert_true(kvps_serial_lt(1, 2));
    assert_true(kvps_serial_lt(0xFFFFFFFFu, 0));
    assert_true(kvps_serial_lt(0xFFFFFFF0u, 5));
    assert_false(kvps_serial_lt(5, 0xFFFFFFF0u));
    assert_false(kvps_serial_lt(7, 7));
    assert_true(kvps_serial_lt(0, 0x7FFFFFFFu));
    assert_false(kvps_serial_lt(0, 0x80000000u)); /* undefined distance: not before */
    assert_false(kvps_serial_lt(0x80000000u, 0));
}

/* ---- endpoints: direction and identity ------------------------------------ */

/* R5: a receiver ignores ACKs, a sender everything but ACKs, even correctly
 * signed with the pair's key (no reflection). R6: ids must match. */
static void direction_and_identity(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 1, 1);
    sim_start(s);
    converge(s, 1000);
    uint64_t events = s->mirror[0].events;
    pkt_t p[8];
    put(s, 0, "k", "v");
    assert_int_equal(drain(s, 0, 0, p, 8), 1);
    uint8_t reply[KVPS_MAX_PACKET];
    size_t n = kvps_receiver_handle(s->rcv[0], p[0].data, p[0].len, s->now, reply, sizeof reply);
    assert_int_equal(n, KVPS_ACK_LEN);
    /* R5 */
    uint8_t out[KVPS_MAX_PACKET];
    assert_int_equal(kvps_receiver_handle(s->rcv[0], reply, n, s->now, out, sizeof out), 0);
    assert_int_equal(kvps_sender_handle(s->snd[0][0], p[0].data, p[0].len, s->now), -1);
    assert_int_equal(kvps_sender_handle(s->snd[0][0], reply, n, s->now), 0);
    /* R6: an unknown sender id gets nothing */
    kvps_pkt_t d = decode(&p[0], 0, 0);
    d.sender_id = 999;
    pkt_t q;
    kvps_psk_t k = pair_psk(0, 0);
    q.len = kvps_wire_encode(&d, &k, q.data, sizeof q.data);
    assert_int_equal(kvps_receiver_handle(s->rcv[0], q.data, q.len, s->now, out, sizeof out), 0);
    /* R6: another receiver id: only the status comes back, nothing changes */
    d = decode(&p[0], 0, 0);
    d.receiver_id++;
    d.key = (const uint8_t *)"other", d.klen = 5, d.seq++;
    q.len = kvps_wire_encode(&d, &k, q.data, sizeof q.data);
    n = kvps_receiver_handle(s->rcv[0], q.data, q.len, s->now, out, sizeof out);
    assert_int_equal(n, KVPS_ACK_LEN);
    pkt_t r = {.len = n};
    memcpy(r.data, out, n);
    kvps_pkt_t a = decode(&r, 0, 0);
    assert_int_equal(a.receiver_id, s->rid[0]);
    assert_int_equal(a.flags & KVPS_FLAG_ACKED, 0);
    assert_null(kvps_receiver_get(s->rcv[0], 0, "other", 5, &n));
    assert_int_equal(s->mirror[0].events, events + 1); /* only k */
    /* R6: a sender drops replies for another sender id or session */
    kvps_pkt_t good = decode(&r, 0, 0);
    good.receiver_id = s->rid[0];
    good.sender_id = 101;
    r.len = kvps_wire_encode(&good, &k, r.data, sizeof r.data);
    assert_int_equal(kvps_sender_handle(s->snd[0][0], r.data, r.len, s->now), -1);
    good.sender_id = 100;
    good.session ^= 1;
    r.len = kvps_wire_encode(&good, &k, r.data, sizeof r.data);
    assert_int_equal(kvps_sender_handle(s->snd[0][0], r.data, r.len, s->now), -1);
    /* R4 at the endpoints: another pair's key */
    kvps_psk_t other = pair_psk(0, 1);
    d = decode(&p[0], 0, 0);
    q.len = kvps_wire_encode(&d, &other, q.data, sizeof q.data);
    assert_int_equal(kvps_receiver_handle(s->rcv[0], q.data, q.len, s->now, out, sizeof out), 0);
    converge(s, 1000);
    sim_free(s);
}

/* ---- whole exchanges -------------------------------------------------------- */

/* R12: HELLO, then START, the cache in update-id order, FLUSH; R17 every
 * packet acknowledged; R27 negatives allowed once in sync and leased. */
static void basic_sync(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 1, 2);
    sim_start(s);
    char key[32], val[32];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "a/host%d", i);
        snprintf(val, sizeof val, "192.0.2.%d", i);
        put(s, 0, key, val);
    }
    put(s, 0, "a/host3", "198.51.100.3"); /* moves to the end */
    del(s, 0, "a/host4"); /* no sender walks yet: forgotten at once (R30) */
    put(s, 0, "n/empty", "");
    assert_false(kvps_receiver_negatives_ok(s->rcv[0], s->now));
    s->capture = true;
    converge(s, 1000);
    assert_true(kvps_receiver_negatives_ok(s->rcv[0], s->now));
    assert_int_equal(s->mirror[0].events, 50); /* 49 + n/empty, no del for a key it never had */
    assert_int_equal(s->mirror[0].redundant_puts, 0);
    size_t vlen;
    assert_non_null(kvps_receiver_get(s->rcv[0], 0, "n/empty", 7, &vlen));
    assert_int_equal(vlen, 0);
    /* the order on the wire */
    int stage = 0;
    uint32_t last_seq = 0;
    size_t updates = 0;
    for (size_t i = 0; i < s->ncaptured; i++) {
        dgram_t *d = &s->captured[i];
        if (!d->to_receiver)
            continue;
        pkt_t p = {.len = d->len};
        memcpy(p.data, d->data, d->len);
        kvps_pkt_t k = decode(&p, 0, 0);
        switch (stage) {
        case 0:
            assert_int_equal(k.type, KVPS_HELLO);
            assert_int_equal(k.receiver_id, 0);
            stage = 1;
            break;
        case 1:
            assert_int_equal(k.type, KVPS_START);
            assert_int_equal(k.seq, (uint32_t)s->session[0]); /* R13 */
            assert_int_equal(k.gen, (uint32_t)s->rid[0] + 1);  /* R29 */
            last_seq = k.seq;
            stage = 2;
            break;
        case 2:
            if (k.type == KVPS_KEEPALIVE)
                break;
            assert_int_equal(k.seq, last_seq + 1);
            last_seq = k.seq;
            if (k.type == KVPS_FLUSH) {
                stage = 3;
                break;
            }
            assert_int_equal(k.type, KVPS_UPDATE);
            updates++;
            if (updates == 49) /* a/host3 moved behind the others */
                assert_memory_equal(k.key, "a/host3", 7);
            if (updates == 50)
                assert_memory_equal(k.key, "n/empty", 7);
            break;
        default:
            assert_true(k.type == KVPS_KEEPALIVE || k.type == KVPS_UPDATE);
        }
    }
    assert_int_equal(stage, 3);
    assert_int_equal(updates, 50);
    sim_free(s);
}

/* Random churn on a bad network; checks R24's safety at every step. */
static void churn(sim_t *s, uint64_t ms, int keys, int change_every) {
    char key[32], val[32];
    for (uint64_t t = 0; t < ms; t++) {
        if (change_every && rnd(s) % (uint32_t)change_every == 0) {
            int si = (int)(rnd(s) % (uint32_t)s->ns);
            snprintf(key, sizeof key, "t/label%u/x", rnd(s) % (uint32_t)keys);
            if (rnd(s) % 3 == 0) {
                del(s, si, key);
            } else {
                snprintf(val, sizeof val, "%u", rnd(s) % 4);
                put(s, si, key, val);
            }
        }
        sim_step(s);
        for (int si = 0; si < s->ns; si++)
            for (int ri = 0; ri < s->nr; ri++) {
                /* R22: a receiver's lease never outlives the sender's view */
                if (kvps_receiver_leased(s->rcv[ri], (size_t)si, s->now))
                    assert_true(kvps_sender_healthy(s->snd[si][ri], s->now));
                if (t % 16 == 0)
                    check_acked_below(s, si, ri);
            }
    }
}

/* R14, R17, R18, R24: loss, duplication, reordering and delay; R11: and
 * reordering alone never makes a sender start a new generation. */
static void lossy_network(void **state) {
    (void)state;
    sim_t *s = sim_new(2, 3, 3);
    s->loss_pct = 20;
    s->dup_pct = 10;
    s->delay_min = 1;
    s->delay_max = 40;
    s->window = 16;
    sim_start(s);
    churn(s, 8000, 300, 3);
    s->loss_pct = 5;
    converge(s, 30000);
    for (int ri = 0; ri < s->nr; ri++) {
        assert_int_equal(s->mirror[ri].redundant_puts, 0);
        assert_true(kvps_receiver_negatives_ok(s->rcv[ri], s->now));
    }
    kvps_sender_stats_t st;
    kvps_sender_stats(s->snd[0][0], &st);
    assert_true(st.retransmitted > 0);
    assert_int_equal(st.resyncs, 1); /* reordering alone never restarts a generation */
    sim_free(s);
}

/* R7, R11: the receiver restarts empty with a new id; the sender notices from
 * its replies and resyncs. Packets for the old id change nothing. */
static void receiver_restart_resyncs(void **state) {
    (void)state;
    sim_t *s = sim_new(2, 2, 4);
    s->loss_pct = 10;
    s->delay_max = 10;
    sim_start(s);
    churn(s, 2000, 100, 4);
    converge(s, 20000);
    s->capture = true;
    sim_run(s, 300);
    s->capture = false;
    receiver_restart(s, 0, 0x1111222233334444u);
    assert_false(kvps_receiver_negatives_ok(s->rcv[0], s->now));
    /* what was sent to the old instance is ignored by the new one */
    for (size_t i = 0; i < s->ncaptured; i++) {
        dgram_t *d = &s->captured[i];
        if (!d->to_receiver || d->ri != 0)
            continue;
        uint8_t out[KVPS_MAX_PACKET];
        kvps_receiver_handle(s->rcv[0], d->data, d->len, s->now, out, sizeof out);
    }
    assert_int_equal(s->mirror[0].events, 0);
    churn(s, 500, 100, 4);
    converge(s, 20000);
    kvps_sender_stats_t st;
    kvps_sender_stats(s->snd[0][0], &st);
    assert_int_equal(st.resyncs, 2);
    assert_int_equal(st.receiver_id, 0x1111222233334444u);
    kvps_sender_stats(s->snd[0][1], &st);
    assert_int_equal(st.resyncs, 1);
    assert_true(kvps_receiver_negatives_ok(s->rcv[0], s->now));
    sim_free(s);
}

/* R8, R9, R10: the sender restarts with a new session; meanwhile its store
 * changed. The receiver keeps serving the old pairs during the resync (but no
 * negatives), and FLUSH removes the pairs the new cache lacks. */
static void sender_restart_resyncs(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 1, 5);
    s->delay_max = 5;
    sim_start(s);
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "n/host%d", i);
        put(s, 0, key, "");
    }
    converge(s, 2000);
    uint64_t events = s->mirror[0].events;
    /* while it is down: 10 deleted from the store, 5 changed */
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "n/host%d", i);
        kv_del(&s->model[0], key, strlen(key));
    }
    for (int i = 10; i < 15; i++) {
        snprintf(key, sizeof key, "n/host%d", i);
        kv_set(&s->model[0], key, strlen(key), "x", 1);
    }
    sender_restart(s, 0, 0xabcdef0012345678u);
    bool saw_resync = false;
    while (!all_synced(s)) {
        assert_true(s->now < 10000);
        sim_step(s);
        if (kvps_receiver_leased(s->rcv[0], 0, s->now) && !kvps_receiver_negatives_ok(s->rcv[0], s->now)) {
            saw_resync = true;
            assert_true(kvps_receiver_count(s->rcv[0], 0) >= 90); /* old pairs are served meanwhile */
        }
    }
    assert_true(saw_resync);
    assert_int_equal(s->mirror[0].events - events, 15); /* 10 dels at FLUSH, 5 puts */
    assert_int_equal(s->mirror[0].redundant_puts, 0);
    assert_true(kvps_receiver_negatives_ok(s->rcv[0], s->now));
    sim_free(s);
}

/* R8, R18, R23: HELLO and retransmissions back off 30, 60, ... up to 1000 ms;
 * a quiet link carries a keepalive every 250 ms. */
static void timers(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 1, 6);
    sim_start(s);
    s->r_deaf[0] = true;
    s->capture = true;
    sim_run(s, 5000);
    uint64_t expect[] = {0, 30, 90, 210, 450, 930, 1890, 2890, 3890, 4890};
    assert_int_equal(s->ncaptured, 10);
    for (size_t i = 0; i < s->ncaptured; i++)
        assert_int_equal(s->captured[i].at, 1000 + expect[i]);
    s->r_deaf[0] = false;
    converge(s, 2000);
    s->ncaptured = 0;
    s->r_deaf[0] = true; /* an update that never arrives */
    uint64_t t0 = s->now;
    put(s, 0, "k", "v");
    sim_run(s, 3000);
    size_t updates = 0;
    for (size_t i = 0; i < s->ncaptured; i++)
        if (s->captured[i].data[5] == KVPS_UPDATE)
            assert_int_equal(s->captured[i].at, t0 + expect[updates++]);
    assert_int_equal(updates, 8);
    s->r_deaf[0] = false;
    converge(s, 2000);
    s->ncaptured = 0;
    sim_run(s, 1000); /* idle: keepalives only */
    size_t keepalives = 0;
    for (size_t i = 0; i < s->ncaptured; i++) {
        assert_true(s->captured[i].data[5] == KVPS_KEEPALIVE || s->captured[i].data[5] == KVPS_ACK);
        keepalives += s->captured[i].data[5] == KVPS_KEEPALIVE;
    }
    assert_int_equal(keepalives, 4);
    assert_true(kvps_sender_healthy(s->snd[0][0], s->now));
    sim_free(s);
}

/* R18: once the receiver answers again, what it missed during an outage is
 * sent again within rto_initial_ms of its first reply, not after the timer
 * that backed off to 1000 ms meanwhile. */
static void backoff_reset_on_reply(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 1, 7);
    sim_start(s);
    converge(s, 2000);
    s->r_deaf[0] = true;
    uint64_t id = put(s, 0, "k", "v");
    sim_run(s, 3000); /* the update's timer is at 1000 ms now */
    s->r_deaf[0] = false;
    uint64_t back = s->now, acked_at = 0;
    for (int i = 0; i < 200 && !acked_at; i++) {
        sim_run(s, 5);
        if (kvps_sender_acked_below(s->snd[0][0]) > id)
            acked_at = s->now;
    }
    assert_true(acked_at);
    /* the next keepalive (<= 250 ms), its reply, then at most 30 ms */
    assert_true(acked_at - back <= KVPS_KEEPALIVE_MS + KVPS_RTO_INITIAL_MS + 20);
    sim_free(s);
}

/* R19, R9: after a busy session (with a receiver restart in it), every
 * captured datagram is replayed to both sides, in order and backwards:
 * nothing changes. */
static void replay_changes_nothing(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 1, 7);
    s->loss_pct = 10;
    s->dup_pct = 5;
    s->delay_max = 20;
    s->capture = true;
    sim_start(s);
    churn(s, 3000, 50, 5);
    receiver_restart(s, 0, 0x4444333322221111u);
    churn(s, 3000, 50, 5);
    sender_restart(s, 0, 0x0123456789abcdefu);
    churn(s, 3000, 50, 5);
    converge(s, 20000);
    s->capture = false;
    sim_run(s, 100);
    assert_true(all_synced(s));
    uint64_t events = s->mirror[0].events;
    kvps_sender_stats_t before, after;
    kvps_sender_stats(s->snd[0][0], &before);
    uint8_t out[KVPS_MAX_PACKET];
    for (int pass = 0; pass < 2; pass++) {
        for (size_t j = 0; j < s->ncaptured; j++) {
            dgram_t *d = &s->captured[pass ? s->ncaptured - 1 - j : j];
            if (d->to_receiver)
                kvps_receiver_handle(s->rcv[0], d->data, d->len, s->now, out, sizeof out);
            else
                kvps_sender_handle(s->snd[0][0], d->data, d->len, s->now);
        }
        sim_run(s, 50);
    }
    assert_int_equal(s->mirror[0].events, events);
    kvps_sender_stats(s->snd[0][0], &after);
    assert_int_equal(after.resyncs, before.resyncs);
    assert_int_equal(after.gen, before.gen);
    assert_true(all_synced(s));
    sim_free(s);
}

/* R13, R29: sequence numbers and generations wrap (they start near the top
 * here), on a lossy network with restarts. */
static void wraparound(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 2, 8);
    s->session[0] = 0x00000001FFFFFFF0u; /* seq wraps after 16 */
    s->rid[0] = 0x00000002FFFFFFFFu;     /* first gen is 0 */
    s->rid[1] = 0x00000003FFFFFFFEu;     /* first gen is 0xFFFFFFFF */
    s->loss_pct = 15;
    s->dup_pct = 10;
    s->delay_max = 15;
    s->window = 8;
    sim_start(s);
    churn(s, 3000, 40, 3);
    converge(s, 20000);
    kvps_sender_stats_t st;
    kvps_sender_stats(s->snd[0][0], &st);
    assert_int_equal(st.gen, 0);
    kvps_sender_stats(s->snd[0][1], &st);
    assert_int_equal(st.gen, 0xFFFFFFFFu);
    receiver_restart(s, 1, 0x00000004FFFFFFFFu);
    sender_restart(s, 0, 0x00000005FFFFFFFFu);
    churn(s, 3000, 40, 3);
    converge(s, 20000);
    assert_int_equal(s->mirror[0].redundant_puts, 0);
    sim_free(s);
}

/* R14: the receiver's window is 256 seqs from the next expected one. */
static void window_edges(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 1, 19);
    sim_start(s);
    converge(s, 1000);
    pkt_t p[2];
    put(s, 0, "k", "v");
    assert_int_equal(drain(s, 0, 0, p, 2), 1);
    kvps_pkt_t d = decode(&p[0], 0, 0); /* seq is the next expected */
    uint8_t out[KVPS_MAX_PACKET];
    kvps_psk_t k = pair_psk(0, 0);
    pkt_t q, r;
    for (uint32_t off = 255; off <= 256; off++) {
        kvps_pkt_t e = d;
        e.seq = d.seq + off;
        e.key = (const uint8_t *)(off == 255 ? "last" : "beyond"), e.klen = off == 255 ? 4 : 6;
        q.len = kvps_wire_encode(&e, &k, q.data, sizeof q.data);
        r.len = kvps_receiver_handle(s->rcv[0], q.data, q.len, s->now, out, sizeof out);
        assert_int_equal(r.len, KVPS_ACK_LEN);
        memcpy(r.data, out, r.len);
        kvps_pkt_t a = decode(&r, 0, 0);
        assert_int_equal(a.ack_next, d.seq);
        assert_int_equal(a.flags & KVPS_FLAG_ACKED, off == 255 ? KVPS_FLAG_ACKED : 0);
    }
    size_t vlen;
    assert_non_null(kvps_receiver_get(s->rcv[0], 0, "last", 4, &vlen));
    assert_null(kvps_receiver_get(s->rcv[0], 0, "beyond", 6, &vlen));
    /* the same seq again is a duplicate: acknowledged, nothing changes */
    uint64_t events = s->mirror[0].events;
    kvps_pkt_t e = d;
    e.seq = d.seq + 255;
    e.key = (const uint8_t *)"other", e.klen = 5;
    q.len = kvps_wire_encode(&e, &k, q.data, sizeof q.data);
    r.len = kvps_receiver_handle(s->rcv[0], q.data, q.len, s->now, out, sizeof out);
    memcpy(r.data, out, r.len);
    assert_int_equal(decode(&r, 0, 0).flags & KVPS_FLAG_ACKED, KVPS_FLAG_ACKED);
    assert_int_equal(s->mirror[0].events, events);
    assert_null(kvps_receiver_get(s->rcv[0], 0, "other", 5, &vlen));
    sim_free(s);
}

/* ---- leases ---------------------------------------------------------------- */

/* R20, R22: the receiver stops answering (its replies are lost, or it hears
 * nothing): its lease runs out, and the sender's healthy() turns false when
 * the last lease it granted can have ended, never before the receiver's. */
static void lease_expiry(void **state) {
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        sim_t *s = sim_new(1, 1, 9);
        s->delay_min = 2;
        s->delay_max = 20;
        sim_start(s);
        put(s, 0, "n/a", "");
        converge(s, 2000);
        sim_run(s, 1000);
        if (mode)
            s->r_deaf[0] = true;
        else
            s->r_mute[0] = true;
        uint64_t stop = s->now, t_neg = 0, t_unhealthy = 0;
        while (!t_unhealthy) {
            assert_true(s->now < stop + 10000);
            sim_step(s);
            if (!t_neg && !kvps_receiver_negatives_ok(s->rcv[0], s->now))
                t_neg = s->now;
            if (kvps_receiver_leased(s->rcv[0], 0, s->now))
                assert_true(kvps_sender_healthy(s->snd[0][0], s->now));
            if (!kvps_sender_healthy(s->snd[0][0], s->now))
                t_unhealthy = s->now;
            else
                assert_true(kvps_sender_deadline(s->snd[0][0]) <= s->now + KVPS_KEEPALIVE_MS);
        }
        assert_true(t_neg > stop + KVPS_LEASE_MS - 300); /* it held a full lease */
        assert_true(t_neg <= t_unhealthy);
        assert_true(t_unhealthy <= stop + KVPS_LEASE_MS + 20 + 1);
        /* it answers again: a new lease, negatives again */
        s->r_deaf[0] = s->r_mute[0] = false;
        converge(s, 2000);
        sim_run(s, 50); /* the new grant is on its way */
        assert_true(kvps_receiver_negatives_ok(s->rcv[0], s->now));
        sim_free(s);
    }
}

/* R21: keepalives keep flowing but an update never arrives: no lease is
 * extended beyond the update's first transmission plus lease_ms. */
static void lease_capped_by_oldest_unacked(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 1, 10);
    sim_start(s);
    put(s, 0, "n/a", "");
    converge(s, 2000);
    sim_run(s, 1000);
    s->filter = is_update;
    uint64_t t0 = s->now;
    put(s, 0, "t/a/token", "");
    while (s->now < t0 + KVPS_LEASE_MS + 500) {
        sim_step(s);
        bool leased = kvps_receiver_leased(s->rcv[0], 0, s->now);
        bool healthy = kvps_sender_healthy(s->snd[0][0], s->now);
        if (s->now < t0 + KVPS_LEASE_MS - 300)
            assert_true(leased && healthy); /* the receiver is responsive */
        if (s->now >= t0 + KVPS_LEASE_MS)
            assert_false(leased || healthy);
        assert_false(kvps_sender_acked_below(s->snd[0][0]) > 1 && leased && !healthy);
    }
    assert_false(kvps_receiver_negatives_ok(s->rcv[0], s->now));
    s->filter = NULL;
    converge(s, 3000);
    sim_run(s, 50);
    assert_true(kvps_receiver_negatives_ok(s->rcv[0], s->now));
    sim_free(s);
}

/* ---- per-key order, tombstones, acked_below -------------------------------- */

/* R15, R16: out-of-order writes of one key: the later seq wins, and an old
 * put arriving after the delete does not bring the key back. */
static void tombstones(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 1, 11);
    sim_start(s);
    put(s, 0, "k", "v0");
    converge(s, 2000);
    pkt_t p1[4], p2[4], p3[4], p4[4];
    put(s, 0, "k", "v1");
    assert_int_equal(drain(s, 0, 0, p1, 4), 1);
    del(s, 0, "k");
    assert_int_equal(drain(s, 0, 0, p2, 4), 1);
    put(s, 0, "j", "a");
    assert_int_equal(drain(s, 0, 0, p3, 4), 1);
    put(s, 0, "j", "b");
    assert_int_equal(drain(s, 0, 0, p4, 4), 1);
    size_t vlen;
    exchange(s, 0, 0, &p2[0]); /* the delete first */
    assert_null(kvps_receiver_get(s->rcv[0], 0, "k", 1, &vlen));
    exchange(s, 0, 0, &p1[0]); /* then the older put: no resurrection */
    assert_null(kvps_receiver_get(s->rcv[0], 0, "k", 1, &vlen));
    assert_null(kv_find(&s->mirror[0].l[0], "k", 1));
    exchange(s, 0, 0, &p4[0]);
    exchange(s, 0, 0, &p3[0]);
    const uint8_t *v = kvps_receiver_get(s->rcv[0], 0, "j", 1, &vlen);
    assert_non_null(v);
    assert_memory_equal(v, "b", 1);
    converge(s, 2000);
    sim_free(s);

    /* A tombstone counts against max_keys until tombstone_ms has passed. */
    s = sim_new(1, 1, 12);
    s->recv_max = 3;
    s->tombstone_ms = 1000;
    sim_start(s);
    put(s, 0, "a", "");
    put(s, 0, "b", "");
    put(s, 0, "c", "");
    converge(s, 2000);
    del(s, 0, "a");
    del(s, 0, "b");
    converge(s, 2000);
    uint64_t t_del = s->now;
    put(s, 0, "d", "");
    while (!kvps_receiver_get(s->rcv[0], 0, "d", 1, &vlen)) {
        assert_true(s->now < t_del + 3000);
        sim_step(s);
    }
    assert_true(s->now >= t_del + 1000 - 5);
    converge(s, 3000);
    sim_free(s);
}

/* R24: acked_below, with superseded updates and across a new generation. */
static void acked_below(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 1, 13);
    sim_start(s);
    converge(s, 2000);
    kvps_sender_t *snd = s->snd[0][0];
    assert_int_equal(kvps_sender_acked_below(snd), 1);
    pkt_t p[4], q[4], r[4];
    uint64_t i1 = put(s, 0, "k1", "a"), i2 = put(s, 0, "k2", "a");
    assert_int_equal(drain(s, 0, 0, p, 4), 2);
    uint64_t i3 = put(s, 0, "k1", "b");
    assert_int_equal(drain(s, 0, 0, q, 4), 1);
    assert_true(kvps_sender_acked_below(snd) <= i1);
    exchange(s, 0, 0, &p[1]);
    assert_true(kvps_sender_acked_below(snd) <= i1); /* k1's a is not there */
    exchange(s, 0, 0, &p[0]);
    assert_int_equal(kvps_sender_acked_below(snd), i3); /* 1 and 2 are; 3 is not */
    assert_true(i2 < i3);
    exchange(s, 0, 0, &q[0]);
    assert_int_equal(kvps_sender_acked_below(snd), i3 + 1);
    /* superseded before it was sent: done when the later one is */
    uint64_t i4 = put(s, 0, "k2", "x"), i5 = put(s, 0, "k2", "y");
    assert_int_equal(drain(s, 0, 0, r, 4), 1);
    assert_true(kvps_sender_acked_below(snd) <= i4);
    exchange(s, 0, 0, &r[0]);
    assert_int_equal(kvps_sender_acked_below(snd), i5 + 1);
    uint64_t i6 = del(s, 0, "k1");
    assert_int_equal(drain(s, 0, 0, r, 4), 1);
    assert_true(kvps_sender_acked_below(snd) <= i6);
    exchange(s, 0, 0, &r[0]);
    assert_int_equal(kvps_sender_acked_below(snd), i6 + 1);
    /* a new generation starts from nothing */
    receiver_restart(s, 0, 0x9999u);
    kvps_sender_stats_t st;
    do {
        sim_step(s);
        kvps_sender_stats(snd, &st);
    } while (st.resyncs < 2);
    assert_true(kvps_sender_acked_below(snd) <= i6);
    converge(s, 2000);
    assert_int_equal(kvps_sender_acked_below(snd), i6 + 1);
    sim_free(s);
}

/* ---- several senders --------------------------------------------------------- */

static bool from_sender1(struct sim *s, const dgram_t *d) {
    (void)s;
    return d->si == 1;
}

/* R27: negatives need a lease, every sender synced once (or the startup
 * grace over), and no leased sender in a resync. */
static void negatives(void **state) {
    (void)state;
    sim_t *s = sim_new(2, 1, 14);
    s->grace_ms = 5000;
    s->window = 16;
    sim_start(s);
    char key[32];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "n/h%d", i);
        put(s, 1, key, "");
    }
    s->filter = from_sender1; /* sender 1 is not there yet */
    assert_false(kvps_receiver_any_synced(s->rcv[0])); /* R27: nothing whole yet */
    while (!pair_synced(s, 0, 0))
        sim_step(s);
    assert_true(kvps_receiver_any_synced(s->rcv[0]));
    assert_true(kvps_receiver_leased(s->rcv[0], 0, s->now));
    assert_false(kvps_receiver_negatives_ok(s->rcv[0], s->now)); /* sender 1 never synced */
    while (s->now < 1000 + 5000) {
        assert_false(kvps_receiver_negatives_ok(s->rcv[0], s->now));
        sim_step(s);
    }
    assert_true(kvps_receiver_negatives_ok(s->rcv[0], s->now)); /* grace over */
    s->filter = NULL;
    bool saw_resync = false;
    while (!all_synced(s)) {
        assert_true(s->now < 20000);
        sim_step(s);
        if (kvps_receiver_leased(s->rcv[0], 1, s->now) && !pair_synced(s, 1, 0) &&
            kvps_receiver_count(s->rcv[0], 1) < 300) {
            saw_resync = true;
            assert_false(kvps_receiver_negatives_ok(s->rcv[0], s->now));
        }
    }
    assert_true(saw_resync);
    assert_true(kvps_receiver_negatives_ok(s->rcv[0], s->now));
    s->r_deaf[0] = true; /* every lease runs out */
    sim_run(s, KVPS_LEASE_MS + 100);
    assert_false(kvps_receiver_negatives_ok(s->rcv[0], s->now));
    sim_free(s);

    /* both synced before the grace is over */
    s = sim_new(2, 1, 15);
    s->grace_ms = 5000;
    sim_start(s);
    converge(s, 1000);
    assert_true(kvps_receiver_negatives_ok(s->rcv[0], s->now));
    sim_free(s);
}

/* R26: the receiver keeps each sender's pairs apart. */
static void two_senders(void **state) {
    (void)state;
    sim_t *s = sim_new(2, 2, 16);
    s->loss_pct = 10;
    s->delay_max = 10;
    sim_start(s);
    put(s, 0, "a/x", "192.0.2.1");
    put(s, 1, "a/x", "192.0.2.2");
    put(s, 1, "n/y", "");
    converge(s, 5000);
    size_t vlen;
    for (int ri = 0; ri < 2; ri++) {
        assert_memory_equal(kvps_receiver_get(s->rcv[ri], 0, "a/x", 3, &vlen), "192.0.2.1", 9);
        assert_memory_equal(kvps_receiver_get(s->rcv[ri], 1, "a/x", 3, &vlen), "192.0.2.2", 9);
        assert_null(kvps_receiver_get(s->rcv[ri], 0, "n/y", 3, &vlen));
    }
    del(s, 0, "a/x");
    converge(s, 5000);
    for (int ri = 0; ri < 2; ri++) {
        assert_null(kvps_receiver_get(s->rcv[ri], 0, "a/x", 3, &vlen));
        assert_non_null(kvps_receiver_get(s->rcv[ri], 1, "a/x", 3, &vlen));
    }
    sim_free(s);
}

/* ---- limits -------------------------------------------------------------------- */

/* R28: sizes and counts are bounded; a receiver that cannot store an update
 * does not acknowledge it, so its lease runs out (SERVFAIL, not a lie). */
static void limits(void **state) {
    (void)state;
    kvps_cache_t *c = kvps_cache_new(5);
    uint8_t big[KVPS_MAX_KEY + 1] = {0};
    assert_int_equal(kvps_cache_put(c, "", 0, "v", 1), 0);
    assert_int_equal(kvps_cache_put(c, big, KVPS_MAX_KEY + 1, "v", 1), 0);
    assert_int_equal(kvps_cache_put(c, "k", 1, big, KVPS_MAX_VAL + 1), 0);
    assert_int_equal(kvps_cache_put(c, "k", 1, NULL, 1), 0);
    assert_true(kvps_cache_put(c, big, KVPS_MAX_KEY, big, KVPS_MAX_VAL) != 0);
    uint64_t id = kvps_cache_put(c, "k0", 2, "v", 1);
    assert_int_equal(kvps_cache_put(c, "k0", 2, "v", 1), id); /* unchanged */
    assert_true(kvps_cache_put(c, "k0", 2, "w", 1) > id);
    assert_true(kvps_cache_put(c, "k1", 2, "", 0) != 0);
    assert_true(kvps_cache_put(c, "k2", 2, "", 0) != 0);
    assert_true(kvps_cache_put(c, "k3", 2, "", 0) != 0);
    assert_int_equal(kvps_cache_put(c, "k4", 2, "", 0), 0); /* full */
    assert_int_equal(kvps_cache_count(c), 5);
    assert_int_equal(kvps_cache_del(c, "nope", 4), 0);
    assert_true(kvps_cache_del(c, "k3", 2) != 0);
    assert_int_equal(kvps_cache_del(c, "k3", 2), 0);
    assert_true(kvps_cache_put(c, "k4", 2, "", 0) != 0);
    /* reconcile: deletes first, so a full cache takes new keys */
    kvps_pair_t snap[] = {{"k1", "", 2, 0}, {"k9", "z", 2, 1}, {"k8", "", 2, 0}, {"", "", 0, 0}};
    uint64_t k1 = kvps_cache_put(c, "k1", 2, "", 0);
    assert_int_equal(kvps_cache_reconcile(c, snap, 4), 1);
    assert_int_equal(kvps_cache_count(c), 3);
    assert_int_equal(kvps_cache_put(c, "k1", 2, "", 0), k1); /* kept as it was */
    size_t vlen;
    assert_null(kvps_cache_get(c, "k0", 2, &vlen));
    assert_memory_equal(kvps_cache_get(c, "k9", 2, &vlen), "z", 1);
    kvps_cache_free(c);

    sim_t *s = sim_new(1, 1, 17);
    s->recv_max = 10;
    sim_start(s);
    char key[32];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "n/h%d", i);
        put(s, 0, key, "");
    }
    sim_run(s, KVPS_LEASE_MS + 1000);
    assert_int_equal(kvps_receiver_count(s->rcv[0], 0), 10);
    assert_false(kvps_sender_healthy(s->snd[0][0], s->now));
    assert_false(kvps_receiver_leased(s->rcv[0], 0, s->now));
    assert_false(kvps_receiver_negatives_ok(s->rcv[0], s->now));
    sim_free(s);
}

static bool to_receiver(struct sim *s, const dgram_t *d) {
    (void)s;
    return d->to_receiver;
}

/* R30: deletions pile up while a receiver is away; past the bound the cache
 * forgets them and that receiver's sender resyncs instead. */
static void cursor_lost(void **state) {
    (void)state;
    sim_t *s = sim_new(1, 1, 18);
    s->cache_max = 4;
    s->window = 2;
    sim_start(s);
    converge(s, 1000);
    s->filter = to_receiver;
    char key[32];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "k%d", i);
        put(s, 0, key, "");
    }
    sim_run(s, 10);
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "k%d", i);
        del(s, 0, key);
    }
    sim_run(s, 10);
    kvps_sender_stats_t st;
    kvps_sender_stats(s->snd[0][0], &st);
    assert_int_equal(st.resyncs, 1);
    put(s, 0, "k4", "");
    del(s, 0, "k4"); /* the fifth tombstone */
    sim_run(s, 10);
    kvps_sender_stats(s->snd[0][0], &st);
    assert_int_equal(st.resyncs, 2);
    s->filter = NULL;
    converge(s, 5000);
    sim_free(s);
}

/* ---- the key file --------------------------------------------------------------- */

static int psk_file(const char *content, mode_t mode, char *path) {
    strcpy(path, "/tmp/test_kvpsync_psk_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    chmod(path, mode);
    kvps_psk_t k;
    char err[256];
    int rc = kvps_psk_load(path, &k, err, sizeof err);
    if (rc == 0)
        for (int i = 0; i < 32; i++)
            assert_int_equal(k.key[i], i == 0 ? 0xAB : i == 31 ? 0x0f : 0);
    else
        assert_true(strlen(err) > 0);
    unlink(path);
    return rc;
}

/* R31: the key file: 64 hex digits on one line, readable by its owner only. */
static void psk_load(void **state) {
    (void)state;
    char path[64];
    const char *good = "AB0000000000000000000000000000000000000000000000000000000000000f";
    char line[80];
    snprintf(line, sizeof line, "%s\n", good);
    assert_int_equal(psk_file(line, 0600, path), 0);
    assert_int_equal(psk_file(good, 0400, path), 0);
    assert_int_equal(psk_file(line, 0640, path), -1);
    assert_int_equal(psk_file(line, 0604, path), -1);
    snprintf(line, sizeof line, "%s\n\n", good);
    assert_int_equal(psk_file(line, 0600, path), -1);
    snprintf(line, sizeof line, "%sx", good);
    assert_int_equal(psk_file(line, 0600, path), -1);
    assert_int_equal(psk_file(good + 1, 0600, path), -1);
    snprintf(line, sizeof line, "%.63sg", good);
    assert_int_equal(psk_file(line, 0600, path), -1);
    kvps_psk_t k;
    char err[256];
    assert_int_equal(kvps_psk_load("/nonexistent/psk", &k, err, sizeof err), -1);
    assert_int_equal(kvps_psk_load("/tmp", &k, err, sizeof err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wire_framing),
        cmocka_unit_test(wire_fields),
        cmocka_unit_test(wire_mac),
        cmocka_unit_test(serial_order),
        cmocka_unit_test(direction_and_identity),
        cmocka_unit_test(basic_sync),
        cmocka_unit_test(lossy_network),
        cmocka_unit_test(receiver_restart_resyncs),
        cmocka_unit_test(sender_restart_resyncs),
        cmocka_unit_test(timers),
        cmocka_unit_test(backoff_reset_on_reply),
        cmocka_unit_test(replay_changes_nothing),
        cmocka_unit_test(wraparound),
        cmocka_unit_test(window_edges),
        cmocka_unit_test(lease_expiry),
        cmocka_unit_test(lease_capped_by_oldest_unacked),
        cmocka_unit_test(tombstones),
        cmocka_unit_test(acked_below),
        cmocka_unit_test(negatives),
        cmocka_unit_test(two_senders),
        cmocka_unit_test(limits),
        cmocka_unit_test(cursor_lost),
        cmocka_unit_test(psk_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
