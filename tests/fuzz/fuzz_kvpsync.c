/* libFuzzer target: kvpsync's sender and receiver fed arbitrary datagrams.
 *
 * The first byte chooses the mode:
 * - even: "packet". A sender and a receiver are brought in sync on a clean
 *   network; the rest of the input is one datagram, fed to both as it is
 *   (then nothing may change: it cannot carry a valid MAC unless it is a
 *   replay of a past datagram) and then re-signed with the pair's key (so
 *   that mutations get past the MAC and reach the state machines).
 * - odd: "scenario". The rest is a list of operations on the network between
 *   them (poll, deliver, drop, duplicate, reorder, time, cache changes,
 *   restarts, corrupted and re-signed datagrams). Unless a re-signed datagram
 *   was injected, a clean network must then bring them back in sync.
 * Invariants are checked after every step; seeds are in corpus/kvpsync. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kvpsync/kvpsync.h"
#include "../../kvpsync/wire.h"

#define MAX_KEYS 64
#define QMAX 64
#define HMAX 64
#define SENDER_ID 42

typedef struct dgram {
    bool to_receiver;
    size_t len;
    uint8_t data[KVPS_MAX_PACKET];
} dgram_t;

typedef struct kv {
    uint8_t key[KVPS_MAX_KEY], val[KVPS_MAX_VAL];
    size_t klen, vlen;
} kv_t;

typedef struct fz {
    uint64_t now, session, rid, restarts;
    kvps_psk_t psk;
    kvps_cache_t *cache;
    kvps_sender_t *snd;
    kvps_receiver_t *rcv;
    kv_t mirror[MAX_KEYS]; /* what the receiver's events said */
    size_t nmirror;
    uint64_t events;
    dgram_t q[QMAX]; /* in flight */
    size_t nq;
    dgram_t hist[HMAX]; /* the last datagrams sent, for replays */
    size_t nhist;
    bool forged;
} fz_t;

#define CHECK(x)                                                                                                  \
    do {                                                                                                          \
        if (!(x))                                                                                                 \
            abort();                                                                                              \
    } while (0)

static kv_t *mirror_find(fz_t *f, const uint8_t *key, size_t klen) {
    for (size_t i = 0; i < f->nmirror; i++)
        if (f->mirror[i].klen == klen && memcmp(f->mirror[i].key, key, klen) == 0)
            return &f->mirror[i];
    return NULL;
}

static void ev_put(void *arg, size_t si, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen) {
    fz_t *f = arg;
    CHECK(si == 0 && klen >= 1 && klen <= KVPS_MAX_KEY && vlen <= KVPS_MAX_VAL);
    kv_t *e = mirror_find(f, key, klen);
    if (!e) {
        CHECK(f->nmirror < MAX_KEYS);
        e = &f->mirror[f->nmirror++];
        memcpy(e->key, key, klen);
        e->klen = klen;
    } else {
        CHECK(e->vlen != vlen || memcmp(e->val, val, vlen) != 0); /* only changes */
    }
    memcpy(e->val, val, vlen);
    e->vlen = vlen;
    f->events++;
}

static void ev_del(void *arg, size_t si, const uint8_t *key, size_t klen) {
    fz_t *f = arg;
    kv_t *e = mirror_find(f, key, klen);
    CHECK(si == 0 && e); /* only keys it had */
    *e = f->mirror[--f->nmirror];
    f->events++;
}

static const kvps_receiver_events_t mirror_events = {ev_put, ev_del};

static void sender_start(fz_t *f) {
    kvps_sender_config_t c = {
        .sender_id = SENDER_ID, .session_id = f->session, .psk = f->psk,
        .keepalive_ms = 50, .lease_ms = 300, .rto_initial_ms = 10, .rto_max_ms = 200, .window = 4,
    };
    f->snd = kvps_sender_new(&c, f->cache, f->now);
    CHECK(f->snd);
}

static void receiver_start(fz_t *f) {
    kvps_receiver_sender_t s = {SENDER_ID, f->psk};
    kvps_receiver_config_t c = {.senders = &s, .n_senders = 1, .tombstone_ms = 100, .startup_grace_ms = 1000,
                                .max_keys = MAX_KEYS};
    f->nmirror = 0;
    f->rcv = kvps_receiver_new(&c, &mirror_events, f, f->now, f->rid);
    CHECK(f->rcv);
}

static void fz_init(fz_t *f) {
    memset(f, 0, sizeof *f);
    f->now = 1000;
    f->session = 0x5e5510000000fff0u;
    f->rid = 0x7ec0000000000001u;
    memset(f->psk.key, 0x5a, sizeof f->psk.key);
    f->cache = kvps_cache_new(MAX_KEYS);
    CHECK(f->cache);
    sender_start(f);
    receiver_start(f);
}

static void fz_free(fz_t *f) {
    kvps_sender_free(f->snd);
    kvps_cache_free(f->cache);
    kvps_receiver_free(f->rcv);
}

static void check(fz_t *f) {
    CHECK(kvps_receiver_count(f->rcv, 0) == f->nmirror && f->nmirror <= MAX_KEYS);
    CHECK(kvps_sender_acked_below(f->snd) <= kvps_cache_next_id(f->cache));
    for (size_t i = 0; i < f->nmirror; i++) {
        size_t vlen;
        const uint8_t *v = kvps_receiver_get(f->rcv, 0, f->mirror[i].key, f->mirror[i].klen, &vlen);
        CHECK(v && vlen == f->mirror[i].vlen && memcmp(v, f->mirror[i].val, vlen) == 0);
    }
    /* R22 */
    if (kvps_receiver_leased(f->rcv, 0, f->now))
        CHECK(kvps_sender_healthy(f->snd, f->now) || f->forged);
}

static void transmit(fz_t *f, bool to_receiver, const uint8_t *data, size_t len) {
    dgram_t *h = &f->hist[f->nhist++ % HMAX];
    h->to_receiver = to_receiver;
    h->len = len;
    memcpy(h->data, data, len);
    if (f->nq < QMAX)
        f->q[f->nq++] = *h;
}

static void to_receiver(fz_t *f, const uint8_t *data, size_t len) {
    uint8_t out[KVPS_MAX_PACKET];
    size_t n = kvps_receiver_handle(f->rcv, data, len, f->now, out, sizeof out);
    if (n) {
        kvps_pkt_t p;
        CHECK(n == KVPS_ACK_LEN && kvps_wire_decode(out, n, &f->psk, &p) == 0 && p.type == KVPS_ACK);
        transmit(f, false, out, n);
    }
}

static void to_sender(fz_t *f, const uint8_t *data, size_t len) {
    int rc = kvps_sender_handle(f->snd, data, len, f->now);
    CHECK(rc == 0 || rc == -1);
}

static void poll_sender(fz_t *f) {
    uint8_t out[KVPS_MAX_PACKET];
    size_t n;
    while ((n = kvps_sender_poll(f->snd, f->now, out, sizeof out)) > 0) {
        kvps_pkt_t p;
        CHECK(n <= KVPS_MAX_PACKET && kvps_wire_decode(out, n, &f->psk, &p) == 0 && p.type != KVPS_ACK);
        transmit(f, true, out, n);
    }
}

static void deliver(fz_t *f, size_t i) {
    dgram_t d = f->q[i];
    memmove(&f->q[i], &f->q[i + 1], (f->nq - i - 1) * sizeof *f->q);
    f->nq--;
    if (d.to_receiver)
        to_receiver(f, d.data, d.len);
    else
        to_sender(f, d.data, d.len);
}

static bool synced(fz_t *f) {
    kvps_sender_stats_t st;
    kvps_sender_stats(f->snd, &st);
    if (!st.in_sync || kvps_sender_acked_below(f->snd) != kvps_cache_next_id(f->cache) ||
        kvps_cache_count(f->cache) != f->nmirror)
        return false;
    for (size_t i = 0; i < f->nmirror; i++) {
        size_t vlen;
        const uint8_t *v = kvps_cache_get(f->cache, f->mirror[i].key, f->mirror[i].klen, &vlen);
        if (!v || vlen != f->mirror[i].vlen || memcmp(v, f->mirror[i].val, vlen) != 0)
            return false;
    }
    return true;
}

/* A clean network: everything in flight is delivered, then every datagram at
 * once, a millisecond at a time. */
static bool quiesce(fz_t *f, uint64_t max_ms) {
    while (f->nq)
        deliver(f, 0);
    for (uint64_t t = 0; t < max_ms; t++, f->now++) {
        poll_sender(f);
        while (f->nq) {
            deliver(f, 0);
            check(f);
        }
        if (synced(f))
            return true;
    }
    return false;
}

static void put_key(fz_t *f, uint8_t k, uint8_t v) {
    char key[16], val[4] = {'v', (char)('0' + v % 4)};
    size_t klen = (size_t)snprintf(key, sizeof key, "t/l%u/x", k % 16u);
    kvps_cache_put(f->cache, key, klen, val, v % 5 == 4 ? 0 : 2);
}

static void del_key(fz_t *f, uint8_t k) {
    char key[16];
    size_t klen = (size_t)snprintf(key, sizeof key, "t/l%u/x", k % 16u);
    kvps_cache_del(f->cache, key, klen);
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64(uint8_t *p, uint64_t v) {
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* A datagram from the input, given the live ids as flags say, re-signed. */
static size_t forge(fz_t *f, uint8_t flags, const uint8_t *in, size_t len, uint8_t *out) {
    memcpy(out, in, len);
    if (len < KVPS_HDR_LEN + KVPS_TAG_LEN)
        return len;
    kvps_sender_stats_t st;
    kvps_sender_stats(f->snd, &st);
    if (flags & 1)
        put32(out, KVPS_MAGIC), out[4] = KVPS_VERSION, out[6] = out[7] = 0;
    if (flags & 2)
        put32(out + 8, SENDER_ID);
    if (flags & 4)
        put32(out + 12, st.gen);
    if (flags & 8)
        put64(out + 16, f->rid);
    if (flags & 16)
        put64(out + 24, f->session);
    kvps_wire_sign(out, len, &f->psk);
    return len;
}

static void packet_mode(const uint8_t *data, size_t size) {
    fz_t *f = malloc(sizeof *f);
    CHECK(f);
    fz_init(f);
    for (uint8_t k = 0; k < 4; k++)
        put_key(f, k, k);
    CHECK(quiesce(f, 2000));
    del_key(f, 1);
    put_key(f, 2, 3);
    CHECK(quiesce(f, 2000));
    if (size > KVPS_MAX_PACKET + 1)
        size = KVPS_MAX_PACKET + 1;
    /* as it is: at most a replay, which changes nothing (R19) */
    kvps_sender_stats_t before, after;
    kvps_sender_stats(f->snd, &before);
    uint64_t events = f->events, below = kvps_sender_acked_below(f->snd);
    to_receiver(f, data, size);
    to_sender(f, data, size);
    kvps_sender_stats(f->snd, &after);
    CHECK(f->events == events && after.resyncs == before.resyncs && after.gen == before.gen &&
          kvps_sender_acked_below(f->snd) == below);
    check(f);
    /* re-signed: anything a compromised sender or receiver could say */
    uint8_t forged[KVPS_MAX_PACKET + 1];
    size_t n = forge(f, 0, data, size, forged);
    f->forged = true;
    to_receiver(f, forged, n);
    check(f);
    to_sender(f, forged, n);
    check(f);
    quiesce(f, 500);
    check(f);
    fz_free(f);
    free(f);
}

static void scenario_mode(const uint8_t *data, size_t size) {
    fz_t *f = malloc(sizeof *f);
    CHECK(f);
    fz_init(f);
    size_t i = 0;
#define NEXT() (i < size ? data[i++] : 0)
    while (i < size) {
        uint8_t op = NEXT(), a = NEXT();
        switch (op % 14) {
        case 0:
            poll_sender(f);
            break;
        case 1:
            if (f->nq)
                deliver(f, a % f->nq); /* any of them: reordering */
            break;
        case 2:
            if (f->nq)
                memmove(&f->q[0], &f->q[1], --f->nq * sizeof *f->q); /* loss */
            break;
        case 3:
            if (f->nq && f->nq < QMAX) {
                f->q[f->nq] = f->q[a % f->nq]; /* duplication */
                f->nq++;
            }
            break;
        case 4:
            f->now += a;
            break;
        case 5:
            f->now += (uint64_t)a * 16;
            break;
        case 6:
            put_key(f, a, NEXT());
            break;
        case 7:
            del_key(f, a);
            break;
        case 8:
            if (f->nhist && f->nq < QMAX) { /* replay */
                size_t back = a % (f->nhist < HMAX ? f->nhist : HMAX);
                f->q[f->nq++] = f->hist[(f->nhist - 1 - back) % HMAX];
            }
            break;
        case 9:
            if (f->nq) { /* corruption: the MAC fails */
                dgram_t *d = &f->q[a % f->nq];
                uint8_t at = NEXT(), x = NEXT();
                d->data[at % d->len] ^= (uint8_t)(x | 1);
            }
            break;
        case 10:
        case 11: { /* re-signed datagram from the input */
            uint8_t flags = NEXT();
            size_t n = NEXT() * 5u;
            if (n > size - i)
                n = size - i;
            uint8_t buf[KVPS_MAX_PACKET + 1];
            n = forge(f, flags, data + i, n > KVPS_MAX_PACKET ? KVPS_MAX_PACKET : n, buf);
            i += n;
            f->forged = true;
            if (op % 14 == 10)
                to_receiver(f, buf, n);
            else
                to_sender(f, buf, n);
            break;
        }
        case 12: /* the receiver restarts, new id */
            kvps_receiver_free(f->rcv);
            f->rid = 0x7ec0000000000001u + ++f->restarts * 0x100000001u; /* never one seen before */
            receiver_start(f);
            break;
        case 13: /* the sender restarts, new session, same cache */
            kvps_sender_free(f->snd);
            f->session = 0x5e5510000000fff0u + ++f->restarts * 0x10000000fu;
            sender_start(f);
            break;
        }
        check(f);
    }
#undef NEXT
    bool ok = quiesce(f, 5000);
    CHECK(ok || f->forged);
    fz_free(f);
    free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    if (data[0] & 1)
        scenario_mode(data + 1, size - 1);
    else
        packet_mode(data + 1, size - 1);
    return 0;
}
