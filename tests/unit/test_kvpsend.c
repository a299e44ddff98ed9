/* R25, R32: kvpsend and kvprecv over real loopback UDP: readiness with two
 * receivers, a receiver that dies (R22), a new one that comes up (R7),
 * waiters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>

#include "../../kvpsync/kvprecv.h"
#include "../../kvpsync/kvpsend.h"

#define LEASE_MS 400

typedef struct node {
    kvps_receiver_t *r;
    kvprecv_t net;
    struct sockaddr_in addr;
    bool up;
} node_t;

typedef struct ctx {
    uv_loop_t loop;
    uv_timer_t check;
    kvpsend_t snd;
    node_t nodes[2];
    bool (*cond)(struct ctx *);
    uint64_t deadline;
    size_t done, failed;
    bool in_wait;
    bool closed;
} ctx_t;

static kvps_psk_t psk_of(int i) {
    kvps_psk_t k;
    memset(k.key, 0x40 + i, sizeof k.key);
    return k;
}

static void ev_put(void *arg, size_t si, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen) {
    (void)arg, (void)si, (void)key, (void)klen, (void)val, (void)vlen;
}

static void ev_del(void *arg, size_t si, const uint8_t *key, size_t klen) {
    (void)arg, (void)si, (void)key, (void)klen;
}

static const kvps_receiver_events_t events = {ev_put, ev_del};

/* Starts node i on its address (port 0 the first time: the kernel picks). */
static void node_up(ctx_t *c, int i, uint64_t id) {
    node_t *n = &c->nodes[i];
    kvps_receiver_sender_t s = {.sender_id = 7, .psk = psk_of(i)};
    kvps_receiver_config_t cfg = {.senders = &s, .n_senders = 1};
    n->r = kvps_receiver_new(&cfg, &events, NULL, uv_now(&c->loop), id);
    assert_non_null(n->r);
    if (n->addr.sin_family == 0) {
        n->addr.sin_family = AF_INET;
        n->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    assert_int_equal(kvprecv_init(&n->net, &c->loop, (const struct sockaddr *)&n->addr, n->r), 0);
    int len = sizeof n->addr;
    assert_int_equal(uv_udp_getsockname(&n->net.udp, (struct sockaddr *)&n->addr, &len), 0);
    n->up = true;
}

static void node_closed(kvprecv_t *k) {
    node_t *n = (node_t *)((char *)k - offsetof(node_t, net));
    kvps_receiver_free(n->r);
    n->r = NULL;
}

static void node_down(ctx_t *c, int i) {
    c->nodes[i].up = false;
    kvprecv_close(&c->nodes[i].net, node_closed);
}

static void on_check(uv_timer_t *t) {
    ctx_t *c = t->data;
    if (c->cond(c) || uv_now(&c->loop) >= c->deadline)
        uv_stop(&c->loop);
}

/* Runs the loop until cond holds; false on timeout. */
static bool run_until(ctx_t *c, bool (*cond)(ctx_t *), uint64_t timeout_ms) {
    c->cond = cond;
    c->deadline = uv_now(&c->loop) + timeout_ms;
    uv_timer_start(&c->check, on_check, 5, 5);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&c->check);
    return cond(c);
}

static bool never(ctx_t *c) {
    (void)c;
    return false;
}

static bool healthy(ctx_t *c, int i) {
    kvpsend_stats_t st;
    kvpsend_stats(&c->snd, &st);
    return st.receivers[i].healthy;
}

static bool node1_unhealthy(ctx_t *c) {
    return !healthy(c, 1);
}

static bool none_healthy(ctx_t *c) {
    return !healthy(c, 0) && !healthy(c, 1);
}

static size_t want_done;
static bool all_done(ctx_t *c) {
    return c->done >= want_done;
}

static void on_ready(int status, void *arg) {
    ctx_t *c = arg;
    assert_false(c->in_wait); /* never from inside kvpsend_wait */
    if (status == 0)
        c->done++;
    else
        c->failed++;
}

static uint64_t put_and_wait(ctx_t *c, const char *key, const char *val) {
    uint64_t id = kvpsend_put(&c->snd, key, val);
    assert_true(id != 0);
    c->in_wait = true;
    assert_non_null(kvpsend_wait(&c->snd, id, on_ready, c));
    c->in_wait = false;
    return id;
}

static void has(ctx_t *c, int i, const char *key, const char *val) {
    size_t vlen;
    const uint8_t *v = kvps_receiver_get(c->nodes[i].r, 0, key, strlen(key), &vlen);
    assert_non_null(v);
    assert_int_equal(vlen, strlen(val));
    assert_memory_equal(v, val, vlen);
}

static void on_closed(kvpsend_t *k) {
    ctx_t *c = (ctx_t *)((char *)k - offsetof(ctx_t, snd));
    c->closed = true;
}

static void loopback(void **state) {
    (void)state;
    ctx_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(uv_loop_init(&c->loop), 0);
    uv_timer_init(&c->loop, &c->check);
    c->check.data = c;
    node_up(c, 0, 0x1000000000000001u);
    node_up(c, 1, 0x2000000000000002u);
    kvpsend_receiver_config_t rc[2];
    memset(rc, 0, sizeof rc);
    for (int i = 0; i < 2; i++) {
        snprintf(rc[i].name, sizeof rc[i].name, "dns%d", i);
        memcpy(&rc[i].addr, &c->nodes[i].addr, sizeof c->nodes[i].addr);
        rc[i].psk = psk_of(i);
    }
    kvpsend_config_t cfg = {
        .sender_id = 7, .receivers = rc, .n_receivers = 2, .lease_ms = LEASE_MS, .keepalive_ms = 50};
    assert_int_equal(kvpsend_init(&c->snd, &c->loop, &cfg), 0);

    /* 1000 keys, each with its waiter: ready once both receivers have them */
    char key[64], val[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "a/host%d", i);
        snprintf(val, sizeof val, "192.0.2.%d", i % 256);
        put_and_wait(c, key, val);
    }
    want_done = 1000;
    assert_true(run_until(c, all_done, 10000));
    for (int n = 0; n < 2; n++) {
        assert_int_equal(kvps_receiver_count(c->nodes[n].r, 0), 1000);
        has(c, n, "a/host999", "192.0.2.231");
    }
    kvpsend_stats_t st;
    kvpsend_stats(&c->snd, &st);
    assert_true(st.receivers[0].healthy && st.receivers[0].core.in_sync);
    assert_int_equal(st.keys, 1000);
    assert_int_equal(st.waiters, 0);
    assert_int_equal(st.ready_below, st.next_id);

    /* an id that is ready already: the callback comes from the loop */
    put_and_wait(c, "a/host0", "192.0.2.0");
    want_done = 1001;
    assert_true(run_until(c, all_done, 1000));

    /* R22: node 1 dies; it falls out after the lease, and waiters complete
     * with node 0 alone */
    node_down(c, 1);
    uint64_t t0 = uv_now(&c->loop);
    put_and_wait(c, "t/x/one", "");
    want_done = 1002;
    assert_true(run_until(c, node1_unhealthy, 3000));
    assert_true(uv_now(&c->loop) - t0 <= LEASE_MS + 100);
    assert_true(run_until(c, all_done, 1000));
    has(c, 0, "t/x/one", "");

    /* R25: nobody healthy, nothing is ready */
    node_down(c, 0);
    assert_true(run_until(c, none_healthy, 3000));
    put_and_wait(c, "t/x/two", "");
    assert_false(run_until(c, never, 300));
    assert_int_equal(c->done, 1002);

    /* R7: a new instance comes up on node 1's address and gets everything */
    node_up(c, 1, 0x3000000000000003u);
    want_done = 1003;
    assert_true(run_until(c, all_done, 5000));
    assert_int_equal(kvps_receiver_count(c->nodes[1].r, 0), 1002);
    has(c, 1, "t/x/two", "");

    /* reconcile: a snapshot without the a/ keys */
    const char *keys[] = {"t/x/one", "t/x/two", "n/new"}, *vals[] = {"", "", ""};
    kvpsend_reconcile(&c->snd, keys, vals, 3);
    kvpsend_stats(&c->snd, &st);
    assert_int_equal(st.keys, 3);
    c->in_wait = true;
    assert_non_null(kvpsend_wait(&c->snd, st.next_id - 1, on_ready, c));
    c->in_wait = false;
    want_done = 1004;
    assert_true(run_until(c, all_done, 5000));
    assert_int_equal(kvps_receiver_count(c->nodes[1].r, 0), 3);

    /* close: a pending waiter gets UV_ECANCELED, a cancelled one nothing */
    put_and_wait(c, "n/late", "");
    kvpsend_wait_t *w = kvpsend_wait(&c->snd, UINT64_MAX - 1, on_ready, c);
    assert_non_null(w);
    kvpsend_wait_cancel(w);
    assert_int_equal(kvpsend_del(&c->snd, "n/absent"), 0);
    node_down(c, 1);
    kvpsend_close(&c->snd, on_closed);
    uv_close((uv_handle_t *)&c->check, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_true(c->closed);
    assert_int_equal(c->failed, 1);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
