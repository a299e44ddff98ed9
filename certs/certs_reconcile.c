/* certs_reconcile: what the DNS servers should hold, from the store.
 *
 * Every [kvpsend] reconcile_interval_ms a worker reads every installation's
 * key/value pairs in one snapshot (store_kvp_list) and the loop hands them
 * to kvpsend_reconcile, which puts what is new or changed and deletes the
 * rest. That is how this node learns what another skd node sharing the store
 * changed, and how it recovers from anything missed. kvpsend itself starts
 * with the first snapshot, so that its first sync generation is complete
 * (an empty one would make the DNS servers drop this node's names).
 *
 * A race: this node's own change may commit after the worker read the
 * snapshot but reach kvpsend before the snapshot does; applying the snapshot
 * as read would undo it (and a long-poll could see its value "ready" while
 * deleted). So while a snapshot is being read, every put/del is also logged,
 * and the log is replayed onto the snapshot before kvpsend sees it. */
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "certs_internal.h"
#include "kvlog.h"

typedef struct certs_reconcile {
    certs_service_t *cs; /* NULL once the service closed: the completion only frees */
    store_kvp_list_t list;
    int rc;
    char err[256];
    kvlog_t log;
} certs_reconcile_t;

static void reconcile_free(certs_reconcile_t *r) {
    kvlog_free(&r->log);
    store_kvp_list_free(&r->list);
    free(r);
}

uint64_t certs_kv_put(certs_service_t *cs, const char *key, const char *val) {
    if (cs->reconcile)
        kvlog_add(&cs->reconcile->log, key, val);
    return cs->kvpsend_open ? kvpsend_put(cs->kvpsend, key, val) : 0;
}

void certs_kv_del(certs_service_t *cs, const char *key) {
    if (cs->reconcile)
        kvlog_add(&cs->reconcile->log, key, NULL);
    if (cs->kvpsend_open)
        kvpsend_del(cs->kvpsend, key);
}

/* The first snapshot starts kvpsend: its first generation is then whole. */
static int start_kvpsend(certs_service_t *cs, size_t nkeys) {
    kvpsend_config_t kc = {0};
    kc.sender_id = cs->cfg->kvpsend_sender_id;
    kc.receivers = cs->receivers;
    kc.n_receivers = cs->cfg->kvpsend_receiver_count;
    int rc = kvpsend_init(cs->kvpsend, cs->server->loop, &kc);
    if (rc != 0) {
        log_error("installations: cannot start kvpsend: %s", uv_strerror(rc));
        server_fail(cs->server);
        return -1;
    }
    cs->kvpsend_open = true;
    log_info("installations: kvpsend started with %zu key(s) for %zu DNS server(s)", nkeys,
             cs->cfg->kvpsend_receiver_count);
    return 0;
}

static void apply(certs_service_t *cs, certs_reconcile_t *r) {
    size_t room = r->list.n + r->log.n + 1;
    const char **keys = malloc(room * sizeof *keys), **vals = malloc(room * sizeof *vals);
    long n = keys && vals ? kvlog_apply(&r->log, r->list.keys, r->list.vals, r->list.n, keys, vals) : -1;
    if (n < 0)
        log_error("installations: reconcile: out of memory");
    else if (cs->kvpsend_open || start_kvpsend(cs, (size_t)n) == 0)
        kvpsend_reconcile(cs->kvpsend, keys, vals, (size_t)n);
    free(keys);
    free(vals);
}

static void reconcile_work(void *arg) {
    certs_reconcile_t *r = arg;
    r->rc = store_kvp_list(r->cs->store, &r->list);
    if (r->rc != 0)
        snprintf(r->err, sizeof r->err, "%s", store_last_error());
}

static void reconcile_done(int status, void *arg) {
    certs_reconcile_t *r = arg;
    certs_service_t *cs = r->cs;
    if (cs) {
        cs->reconcile = NULL;
        if (status != 0 || r->rc != 0)
            log_error("installations: reconcile: cannot read the store: %s", status ? uv_strerror(status) : r->err);
        else if (r->log.spoilt)
            log_warn("installations: reconcile: more than %d changes while reading; trying again", KVLOG_MAX);
        else
            apply(cs, r);
    }
    reconcile_free(r);
}

static void on_tick(uv_timer_t *t) {
    certs_service_t *cs = t->data;
    if (cs->reconcile || cs->closing)
        return; /* the last one is still reading */
    certs_reconcile_t *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->cs = cs;
    cs->reconcile = r;
    if (worker_submit(&cs->server->pool, reconcile_work, reconcile_done, r) != 0) {
        cs->reconcile = NULL;
        free(r); /* the pool is full: next time */
    }
}

int certs_reconcile_start(certs_service_t *cs) {
    if (uv_timer_init(cs->server->loop, &cs->reconcile_timer) != 0)
        return -1;
    cs->handles_open++;
    cs->reconcile_timer.data = cs;
    uv_unref((uv_handle_t *)&cs->reconcile_timer);
    return uv_timer_start(&cs->reconcile_timer, on_tick, 0, cs->cfg->reconcile_interval_ms);
}

void certs_reconcile_stop(certs_service_t *cs) {
    uv_timer_stop(&cs->reconcile_timer);
    if (cs->reconcile) {
        cs->reconcile->cs = NULL; /* its completion frees it */
        cs->reconcile = NULL;
    }
}
