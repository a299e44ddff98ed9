/* The sender's state machine for one receiver (PROTOCOL.md R7 to R13, R18,
 * R21 to R24).
 *
 * HELLO until the receiver first answers; then a generation: START, the whole
 * cache walked in update-id order, FLUSH, and live updates as the cache
 * changes. Every START/UPDATE/FLUSH takes a sequence number and a slot of the
 * window until acknowledged. */
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "wire.h"

enum { ST_HELLO, ST_SYNC, ST_LIVE };
enum { SLOT_START, SLOT_UPDATE, SLOT_FLUSH };

typedef struct slot {
    uint8_t kind, op, vlen;
    bool acked;
    uint16_t klen;
    uint32_t seq, rto_ms, sends;
    uint64_t first_sent_ms, next_tx_ms;
    uint8_t data[KVPS_MAX_KEY + KVPS_MAX_VAL];
} slot_t;

struct kvps_sender {
    kvps_sender_config_t cfg; /* defaults applied */
    kvps_cache_t *cache;
    kvps_cursor_t cursor;
    int state;
    uint64_t rid;          /* the receiver's id, 0 before its first reply */
    uint64_t rid_since_ms; /* when we learnt it (R7) */
    bool have_anchor;      /* anchor_ms: the newest receiver clock seen (R21), */
    uint64_t anchor_ms;    /* anchor_rx_ms: when it arrived */
    uint64_t anchor_rx_ms;
    uint32_t gen;  /* ours, in ST_SYNC and ST_LIVE */
    uint32_t rgen; /* the receiver's, from its newest reply */
    uint32_t base, next_seq; /* window: [base, next_seq); base is the oldest unacked */
    bool replay_done;        /* FLUSH queued at flush_seq */
    uint32_t flush_seq;
    uint64_t ka_next_ms, hello_next_ms;
    uint32_t hello_rto_ms;
    uint64_t lease_end_ms; /* no lease we granted lasts beyond it (R22) */
    uint64_t acked_below;  /* see R24 */
    bool mark_pending;
    uint64_t mark_id;
    uint32_t mark_seq;
    uint64_t last_now_ms;
    kvps_sender_stats_t st;
    slot_t slots[KVPS_MAX_WINDOW]; /* indexed by seq % KVPS_MAX_WINDOW */
};

static slot_t *slot_of(kvps_sender_t *s, uint32_t seq) {
    return &s->slots[seq % KVPS_MAX_WINDOW];
}

static uint32_t in_flight(const kvps_sender_t *s) {
    return s->next_seq - s->base;
}

kvps_sender_t *kvps_sender_new(const kvps_sender_config_t *cfg, kvps_cache_t *cache, uint64_t now_ms) {
    kvps_sender_config_t c = *cfg;
    c.keepalive_ms = c.keepalive_ms ? c.keepalive_ms : KVPS_KEEPALIVE_MS;
    c.lease_ms = c.lease_ms ? c.lease_ms : KVPS_LEASE_MS;
    c.rto_initial_ms = c.rto_initial_ms ? c.rto_initial_ms : KVPS_RTO_INITIAL_MS;
    c.rto_max_ms = c.rto_max_ms ? c.rto_max_ms : KVPS_RTO_MAX_MS;
    c.window = c.window ? c.window : KVPS_MAX_WINDOW;
    if (c.session_id == 0 || c.window > KVPS_MAX_WINDOW || c.lease_ms > KVPS_MAX_LEASE_MS ||
        c.rto_initial_ms > c.rto_max_ms)
        return NULL;
    kvps_sender_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (kvps_cache_attach(cache, &s->cursor) != 0) {
        free(s);
        return NULL;
    }
    s->cfg = c;
    s->cache = cache;
    s->state = ST_HELLO;
    s->base = s->next_seq = (uint32_t)c.session_id; /* R13 */
    s->hello_next_ms = now_ms;
    s->hello_rto_ms = c.rto_initial_ms;
    /* A previous incarnation may have granted a lease we know nothing of (R22). */
    s->lease_end_ms = now_ms + c.lease_ms;
    s->last_now_ms = now_ms;
    return s;
}

void kvps_sender_free(kvps_sender_t *s) {
    if (!s)
        return;
    kvps_cache_detach(s->cache, &s->cursor);
    free(s);
}

static slot_t *new_slot(kvps_sender_t *s, int kind, uint64_t now) {
    slot_t *sl = slot_of(s, s->next_seq);
    sl->kind = (uint8_t)kind;
    sl->acked = false;
    sl->seq = s->next_seq++;
    sl->sends = 0;
    sl->rto_ms = s->cfg.rto_initial_ms;
    sl->first_sent_ms = sl->next_tx_ms = now;
    return sl;
}

/* R11: a new generation abandons the window and walks the cache again. */
static void start_gen(kvps_sender_t *s, uint32_t gen, uint64_t now) {
    s->state = ST_SYNC;
    s->gen = gen;
    s->base = s->next_seq;
    s->replay_done = false;
    s->acked_below = 0;
    s->mark_pending = false;
    kvps_cursor_reset(s->cache, &s->cursor);
    new_slot(s, SLOT_START, now);
    s->ka_next_ms = now;
    s->st.resyncs++;
}

/* R24: acked_below advances by marks. A mark is taken when the cursor is at
 * the tail (every current entry is in the window) and FLUSH is queued (it
 * stands for the deletions the cache forgot): once every seq taken so far is
 * acknowledged, every id issued before the mark is done. */
static void update_marks(kvps_sender_t *s) {
    if (s->mark_pending && !kvps_serial_lt(s->base, s->mark_seq)) {
        s->acked_below = s->mark_id;
        s->mark_pending = false;
    }
    if (s->mark_pending || s->state == ST_HELLO || !s->replay_done || s->cursor.next || s->cursor.lost)
        return;
    s->mark_id = kvps_cache_next_id(s->cache);
    s->mark_seq = s->next_seq;
    if (!kvps_serial_lt(s->base, s->mark_seq))
        s->acked_below = s->mark_id;
    else
        s->mark_pending = true;
}

/* Takes cache entries (then FLUSH once) into the window while there is room. */
static void fill(kvps_sender_t *s, uint64_t now) {
    while (in_flight(s) < s->cfg.window) {
        const kvps_entry_t *e = kvps_cursor_take(s->cache, &s->cursor);
        if (e) {
            slot_t *sl = new_slot(s, SLOT_UPDATE, now);
            sl->op = e->deleted ? KVPS_OP_DEL : KVPS_OP_PUT;
            sl->klen = (uint16_t)e->h.klen;
            sl->vlen = (uint8_t)e->vlen;
            memcpy(sl->data, e->key, e->h.klen);
            if (e->vlen)
                memcpy(sl->data + e->h.klen, e->val, e->vlen);
        } else if (!s->replay_done) {
            s->flush_seq = new_slot(s, SLOT_FLUSH, now)->seq;
            s->replay_done = true;
        } else {
            break;
        }
    }
    update_marks(s);
}

/* R21: the grant rides in every packet; it ends at the newest proof of
 * responsiveness plus lease_ms, never after the deadline of the oldest
 * unacknowledged update (its first transmission plus lease_ms). */
static void grant(kvps_sender_t *s, kvps_pkt_t *p) {
    if (s->state == ST_HELLO || !s->have_anchor)
        return;
    uint64_t end = s->anchor_rx_ms + s->cfg.lease_ms;
    if (s->base != s->next_seq) {
        uint64_t deadline = slot_of(s, s->base)->first_sent_ms + s->cfg.lease_ms;
        if (deadline < end)
            end = deadline;
    }
    if (end <= s->anchor_rx_ms)
        return;
    p->anchor_ms = s->anchor_ms;
    p->lease_ms = (uint32_t)(end - s->anchor_rx_ms);
    if (end > s->lease_end_ms)
        s->lease_end_ms = end;
}

static size_t emit(kvps_sender_t *s, kvps_pkt_t *p, uint64_t now, uint8_t *out, size_t cap) {
    p->sender_id = s->cfg.sender_id;
    p->receiver_id = s->rid;
    p->session = s->cfg.session_id;
    p->sent_ms = now;
    if (p->type != KVPS_HELLO) {
        p->gen = s->gen;
        grant(s, p);
    }
    s->ka_next_ms = now + s->cfg.keepalive_ms;
    s->st.sent++;
    return kvps_wire_encode(p, &s->cfg.psk, out, cap);
}

static size_t send_slot(kvps_sender_t *s, slot_t *sl, uint64_t now, uint8_t *out, size_t cap) {
    static const uint8_t types[] = {[SLOT_START] = KVPS_START, [SLOT_UPDATE] = KVPS_UPDATE, [SLOT_FLUSH] = KVPS_FLUSH};
    kvps_pkt_t p = {.type = types[sl->kind], .seq = sl->seq};
    if (sl->kind == SLOT_UPDATE) {
        p.op = sl->op;
        p.key = sl->data;
        p.klen = sl->klen;
        p.val = sl->data + sl->klen;
        p.vlen = sl->vlen;
    }
    if (sl->sends++) { /* R18 */
        s->st.retransmitted++;
        sl->rto_ms = sl->rto_ms * 2 < s->cfg.rto_max_ms ? sl->rto_ms * 2 : s->cfg.rto_max_ms;
    }
    sl->next_tx_ms = now + sl->rto_ms;
    return emit(s, &p, now, out, cap);
}

static uint32_t next_gen(const kvps_sender_t *s) {
    return (kvps_serial_lt(s->gen, s->rgen) ? s->rgen : s->gen) + 1;
}

size_t kvps_sender_poll(kvps_sender_t *s, uint64_t now, uint8_t *out, size_t cap) {
    s->last_now_ms = now;
    if (cap < KVPS_MAX_PACKET)
        return 0;
    if (s->state == ST_HELLO) {
        if (now < s->hello_next_ms)
            return 0;
        s->hello_next_ms = now + s->hello_rto_ms;
        s->hello_rto_ms = s->hello_rto_ms * 2 < s->cfg.rto_max_ms ? s->hello_rto_ms * 2 : s->cfg.rto_max_ms;
        kvps_pkt_t p = {.type = KVPS_HELLO};
        return emit(s, &p, now, out, cap);
    }
    if (s->cursor.lost)
        start_gen(s, next_gen(s), now);
    fill(s, now);
    slot_t *due = NULL;
    for (uint32_t seq = s->base; seq != s->next_seq; seq++) {
        slot_t *sl = slot_of(s, seq);
        if (!sl->acked && sl->next_tx_ms <= now && (!due || sl->next_tx_ms < due->next_tx_ms))
            due = sl;
    }
    if (due)
        return send_slot(s, due, now, out, cap);
    if (now >= s->ka_next_ms) { /* R23 */
        kvps_pkt_t p = {.type = KVPS_KEEPALIVE};
        return emit(s, &p, now, out, cap);
    }
    return 0;
}

uint64_t kvps_sender_deadline(const kvps_sender_t *s) {
    uint64_t d;
    if (s->state == ST_HELLO) {
        d = s->hello_next_ms;
    } else if (s->cursor.lost || (s->cursor.next && in_flight(s) < s->cfg.window)) {
        d = s->last_now_ms;
    } else {
        d = s->ka_next_ms;
        for (uint32_t seq = s->base; seq != s->next_seq; seq++) {
            const slot_t *sl = &s->slots[seq % KVPS_MAX_WINDOW];
            if (!sl->acked && sl->next_tx_ms < d)
                d = sl->next_tx_ms;
        }
    }
    if (s->lease_end_ms > s->last_now_ms && s->lease_end_ms < d)
        d = s->lease_end_ms;
    return d;
}

/* R18: a reply the receiver sent after everything before it proves it is
 * listening again: what is still unacknowledged was lost meanwhile (e.g.
 * while the receiver was stopped), so it goes again soon instead of after a
 * retransmission timer backed off during the outage. */
static void reset_backoff(kvps_sender_t *s, uint64_t now) {
    for (uint32_t seq = s->base; seq != s->next_seq; seq++) {
        slot_t *sl = slot_of(s, seq);
        if (sl->acked || !sl->sends || sl->rto_ms <= s->cfg.rto_initial_ms)
            continue;
        sl->rto_ms = s->cfg.rto_initial_ms;
        if (sl->next_tx_ms > now + sl->rto_ms)
            sl->next_tx_ms = now + sl->rto_ms;
    }
}

static void handle_acks(kvps_sender_t *s, const kvps_pkt_t *p) {
    uint32_t span = in_flight(s);
    if ((p->flags & KVPS_FLAG_ACKED) && p->gen == s->gen && p->ack_seq - s->base < span)
        slot_of(s, p->ack_seq)->acked = true;
    if (kvps_serial_lt(s->base, p->ack_next) && p->ack_next - s->base <= span)
        for (uint32_t seq = s->base; seq != p->ack_next; seq++)
            slot_of(s, seq)->acked = true;
    while (s->base != s->next_seq && slot_of(s, s->base)->acked)
        s->base++;
    if (s->state == ST_SYNC && s->replay_done && kvps_serial_lt(s->flush_seq, s->base))
        s->state = ST_LIVE;
    update_marks(s);
}

int kvps_sender_handle(kvps_sender_t *s, const uint8_t *pkt, size_t len, uint64_t now) {
    s->last_now_ms = now;
    kvps_pkt_t p;
    /* R4, R5, R6 */
    if (kvps_wire_decode(pkt, len, &s->cfg.psk, &p) != 0 || p.type != KVPS_ACK || p.sender_id != s->cfg.sender_id ||
        p.session != s->cfg.session_id) {
        s->st.dropped++;
        return -1;
    }
    bool new_receiver = false;
    if (s->rid != p.receiver_id) {
        /* R7: another receiver instance counts only if it answers a packet we
         * sent after we learnt the current one (not a late or replayed reply
         * of an instance that is gone). */
        if (s->rid && p.echo_ms <= s->rid_since_ms) {
            s->st.dropped++;
            return -1;
        }
        s->rid = p.receiver_id;
        s->rid_since_ms = now;
        s->have_anchor = false;
        new_receiver = true;
    }
    s->st.received++;
    bool fresh = !s->have_anchor || p.receiver_ms > s->anchor_ms;
    if (fresh) {
        s->have_anchor = true;
        s->anchor_ms = p.receiver_ms;
        s->anchor_rx_ms = now;
        s->rgen = p.cur_gen;
    }
    if (new_receiver) { /* the first reply too: HELLO knows no receiver id */
        start_gen(s, p.cur_gen + 1, now);
    } else if (p.cur_session == s->cfg.session_id && p.cur_gen == s->gen) {
        handle_acks(s, &p);
        if (fresh)
            reset_backoff(s, now);
    } else if (p.gen == s->gen && !kvps_serial_lt(p.cur_gen, s->gen)) {
        /* R11: the receiver is past our generation (or another session of our
         * sender id holds it); an older cur_gen only means START is pending. */
        start_gen(s, p.cur_gen + 1, now);
    }
    return 0;
}

bool kvps_sender_healthy(const kvps_sender_t *s, uint64_t now_ms) {
    return now_ms < s->lease_end_ms;
}

uint64_t kvps_sender_acked_below(const kvps_sender_t *s) {
    return s->acked_below;
}

void kvps_sender_stats(const kvps_sender_t *s, kvps_sender_stats_t *out) {
    *out = s->st;
    out->in_sync = s->state == ST_LIVE;
    out->gen = s->state == ST_HELLO ? 0 : s->gen;
    out->receiver_id = s->rid;
    out->in_flight = in_flight(s);
}
