#include "kvpsend.h"

#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <openssl/rand.h>

#include "../common/log.h"
#include "udp.h"

struct kvpsend_peer {
    char name[64];
    struct sockaddr_storage addr;
    kvps_sender_t *s;
    bool healthy; /* as last logged */
};

struct kvpsend_wait {
    kvpsend_t *k;
    kvpsend_wait_t *prev, *next;
    uint64_t id;
    void (*cb)(int status, void *arg);
    void *arg;
};

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr *b) {
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

/* R25: every id below it is ready; 0 while no receiver is healthy. */
static uint64_t ready_below(const kvpsend_t *k, uint64_t now) {
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < k->n_peers; i++)
        if (kvps_sender_healthy(k->peers[i].s, now)) {
            uint64_t a = kvps_sender_acked_below(k->peers[i].s);
            min = a < min ? a : min;
        }
    return min == UINT64_MAX ? 0 : min;
}

static void on_timer(uv_timer_t *t);

/* Sends what the senders have, and when release is set (only from loop
 * callbacks) logs health changes and calls the waiters that are ready. Then
 * arms the timer for the earliest deadline. */
static void pump(kvpsend_t *k, bool release) {
    if (k->close_cb || k->open_handles < 2)
        return;
    uint64_t now = uv_now(k->loop);
    uint8_t out[KVPS_MAX_PACKET];
    for (size_t i = 0; i < k->n_peers; i++) {
        kvpsend_peer_t *p = &k->peers[i];
        size_t n;
        while ((n = kvps_sender_poll(p->s, now, out, sizeof out)) > 0) {
            uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
            uv_udp_try_send(&k->udp, &b, 1, (const struct sockaddr *)&p->addr); /* lost if it cannot go now */
        }
    }
    if (release) {
        for (size_t i = 0; i < k->n_peers; i++) {
            kvpsend_peer_t *p = &k->peers[i];
            bool h = kvps_sender_healthy(p->s, now);
            if (h != p->healthy) {
                p->healthy = h;
                if (h)
                    log_info("kvpsend: receiver %s healthy", p->name);
                else
                    log_warn("kvpsend: receiver %s unhealthy (no valid lease)", p->name);
            }
        }
        k->ready_below = ready_below(k, now);
        kvpsend_wait_t *w;
        while (!k->close_cb && (w = k->wait_head) && w->id < k->ready_below) {
            void (*cb)(int, void *) = w->cb;
            void *arg = w->arg;
            kvpsend_wait_cancel(w); /* unlinks and frees */
            cb(0, arg);
        }
        if (k->close_cb)
            return;
    }
    uint64_t d = UINT64_MAX;
    for (size_t i = 0; i < k->n_peers; i++) {
        uint64_t pd = kvps_sender_deadline(k->peers[i].s);
        d = pd < d ? pd : d;
    }
    if (d == UINT64_MAX)
        uv_timer_stop(&k->timer);
    else
        uv_timer_start(&k->timer, on_timer, d > now ? d - now : 0, 0);
}

static void on_timer(uv_timer_t *t) {
    pump(t->data, true);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    kvpsend_t *k = h->data;
    *buf = uv_buf_init((char *)k->rbuf, sizeof k->rbuf);
}

static void on_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from, unsigned flags) {
    kvpsend_t *k = udp->data;
    if (nread <= 0 || !from || (flags & UV_UDP_PARTIAL))
        return;
    const uint8_t *pkt = (const uint8_t *)buf->base;
    uint64_t now = uv_now(k->loop);
    size_t i = 0;
    while (i < k->n_peers && !same_addr(&k->peers[i].addr, from))
        i++;
    if (i < k->n_peers) {
        kvps_sender_handle(k->peers[i].s, pkt, (size_t)nread, now);
    } else {
        /* A receiver answering from another of its addresses: its key decides. */
        for (i = 0; i < k->n_peers; i++)
            if (kvps_sender_handle(k->peers[i].s, pkt, (size_t)nread, now) == 0)
                break;
    }
    pump(k, true);
}

static void free_state(kvpsend_t *k) {
    for (size_t i = 0; i < k->n_peers; i++)
        kvps_sender_free(k->peers[i].s);
    free(k->peers);
    kvps_cache_free(k->cache);
    k->peers = NULL;
    k->cache = NULL;
}

int kvpsend_init(kvpsend_t *k, uv_loop_t *loop, const kvpsend_config_t *cfg) {
    memset(k, 0, sizeof *k);
    k->loop = loop;
    if (cfg->n_receivers == 0 || cfg->n_receivers > KVPSEND_MAX_RECEIVERS)
        return UV_EINVAL;
    sa_family_t family = cfg->receivers[0].addr.ss_family;
    for (size_t i = 0; i < cfg->n_receivers; i++)
        if (cfg->receivers[i].addr.ss_family != family || (family != AF_INET && family != AF_INET6))
            return UV_EINVAL;
    uint64_t session = 0; /* R8 */
    while (session == 0)
        if (RAND_bytes((unsigned char *)&session, sizeof session) != 1)
            return UV_EIO;
    k->cache = kvps_cache_new(cfg->max_keys);
    k->peers = calloc(cfg->n_receivers, sizeof *k->peers);
    if (!k->cache || !k->peers) {
        free_state(k);
        return UV_ENOMEM;
    }
    uint64_t now = uv_now(loop);
    for (size_t i = 0; i < cfg->n_receivers; i++) {
        const kvpsend_receiver_config_t *rc = &cfg->receivers[i];
        kvps_sender_config_t sc = {
            .sender_id = cfg->sender_id,
            .session_id = session,
            .psk = rc->psk,
            .keepalive_ms = cfg->keepalive_ms,
            .lease_ms = cfg->lease_ms,
            .rto_initial_ms = cfg->rto_initial_ms,
            .rto_max_ms = cfg->rto_max_ms,
            .window = cfg->window,
        };
        kvpsend_peer_t *p = &k->peers[k->n_peers];
        if (!(p->s = kvps_sender_new(&sc, k->cache, now))) {
            free_state(k);
            return UV_EINVAL;
        }
        k->n_peers++;
        memcpy(p->name, rc->name, sizeof p->name);
        p->name[sizeof p->name - 1] = '\0';
        p->addr = rc->addr;
        p->healthy = true; /* R22: assumed at start */
    }
    struct sockaddr_storage any = {.ss_family = family};
    int err = kvps_udp_open(loop, &k->udp, (const struct sockaddr *)&any, on_alloc, on_recv);
    if (err != 0) {
        free_state(k);
        return err;
    }
    k->udp.data = k;
    uv_timer_init(loop, &k->timer);
    k->timer.data = k;
    k->open_handles = 2;
    pump(k, false);
    return 0;
}

uint64_t kvpsend_put(kvpsend_t *k, const char *key, const char *val) {
    if (k->close_cb)
        return 0;
    uint64_t id = kvps_cache_put(k->cache, key, strlen(key), val, strlen(val));
    if (id)
        pump(k, false);
    return id;
}

uint64_t kvpsend_del(kvpsend_t *k, const char *key) {
    if (k->close_cb)
        return 0;
    uint64_t id = kvps_cache_del(k->cache, key, strlen(key));
    if (id)
        pump(k, false);
    return id;
}

void kvpsend_reconcile(kvpsend_t *k, const char *const *keys, const char *const *vals, size_t n) {
    if (k->close_cb)
        return;
    kvps_pair_t *pairs = malloc((n ? n : 1) * sizeof *pairs);
    if (!pairs) {
        log_error("kvpsend: reconcile: out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        pairs[i] = (kvps_pair_t){keys[i], vals[i], strlen(keys[i]), strlen(vals[i])};
    size_t refused = kvps_cache_reconcile(k->cache, pairs, n);
    free(pairs);
    if (refused)
        log_warn("kvpsend: reconcile: %zu pairs refused (too long, or the cache is full)", refused);
    pump(k, false);
}

bool kvpsend_ready(const kvpsend_t *k, uint64_t update_id) {
    return update_id < ready_below(k, uv_now(k->loop));
}

kvpsend_wait_t *kvpsend_wait(kvpsend_t *k, uint64_t update_id, void (*cb)(int status, void *arg), void *arg) {
    if (k->close_cb)
        return NULL;
    kvpsend_wait_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    *w = (kvpsend_wait_t){.k = k, .id = update_id, .cb = cb, .arg = arg};
    /* Kept by id; new waiters mostly wait for the newest id, so search from the tail. */
    kvpsend_wait_t *after = k->wait_tail;
    while (after && after->id > update_id)
        after = after->prev;
    w->prev = after;
    w->next = after ? after->next : k->wait_head;
    *(w->next ? &w->next->prev : &k->wait_tail) = w;
    *(after ? &after->next : &k->wait_head) = w;
    k->n_waiters++;
    if (kvpsend_ready(k, update_id))
        uv_timer_start(&k->timer, on_timer, 0, 0); /* called from the loop, not from here */
    return w;
}

void kvpsend_wait_cancel(kvpsend_wait_t *w) {
    kvpsend_t *k = w->k;
    *(w->prev ? &w->prev->next : &k->wait_head) = w->next;
    *(w->next ? &w->next->prev : &k->wait_tail) = w->prev;
    k->n_waiters--;
    free(w);
}

void kvpsend_stats(const kvpsend_t *k, kvpsend_stats_t *out) {
    memset(out, 0, sizeof *out);
    uint64_t now = uv_now(k->loop);
    out->n_receivers = k->n_peers;
    for (size_t i = 0; i < k->n_peers; i++) {
        kvpsend_receiver_stats_t *r = &out->receivers[i];
        memcpy(r->name, k->peers[i].name, sizeof r->name);
        r->healthy = kvps_sender_healthy(k->peers[i].s, now);
        r->acked_below = kvps_sender_acked_below(k->peers[i].s);
        kvps_sender_stats(k->peers[i].s, &r->core);
    }
    out->keys = kvps_cache_count(k->cache);
    out->next_id = kvps_cache_next_id(k->cache);
    out->ready_below = ready_below(k, now);
    out->waiters = k->n_waiters;
}

static void on_handle_closed(uv_handle_t *h) {
    kvpsend_t *k = h->data;
    if (--k->open_handles > 0)
        return;
    kvpsend_wait_t *w;
    while ((w = k->wait_head)) {
        void (*cb)(int, void *) = w->cb;
        void *arg = w->arg;
        kvpsend_wait_cancel(w);
        cb(UV_ECANCELED, arg);
    }
    free_state(k);
    k->close_cb(k);
}

static void no_cb(kvpsend_t *k) {
    (void)k;
}

void kvpsend_close(kvpsend_t *k, void (*cb)(kvpsend_t *)) {
    k->close_cb = cb ? cb : no_cb;
    uv_close((uv_handle_t *)&k->udp, on_handle_closed);
    uv_close((uv_handle_t *)&k->timer, on_handle_closed);
}
