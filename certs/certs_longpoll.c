/* certs_longpoll: challenge PUTs waiting until the DNS servers serve the
 * value. A pending one costs this struct, kvpsend's wait record and the
 * request itself: no worker, no thread, no timer of its own (every wait is
 * equally long, so the list is in deadline order and one timer, set for the
 * oldest, serves all). */
#include <stdlib.h>

#include "certs_internal.h"

typedef struct certs_longpoll {
    struct certs_longpoll *prev, *next;
    certs_service_t *cs;
    http_request_t *req;
    kvpsend_wait_t *wait;
    uint64_t deadline_ms;
} certs_longpoll_t;

static const char ready_json[] = "{\"status\":\"ready\"}";
static const char pending_json[] = "{\"status\":\"pending\"}";

static void on_timer(uv_timer_t *t);

static void arm(certs_service_t *cs) {
    if (!cs->longpolls) {
        uv_timer_stop(&cs->longpoll_timer);
        return;
    }
    uint64_t now = certs_now_ms(cs), due = cs->longpolls->deadline_ms;
    uv_timer_start(&cs->longpoll_timer, on_timer, due > now ? due - now : 0, 0);
}

/* Unlinks and frees lp; the caller has cancelled or consumed its wait. */
static void finish(certs_longpoll_t *lp) {
    certs_service_t *cs = lp->cs;
    bool was_head = cs->longpolls == lp;
    if (lp->prev)
        lp->prev->next = lp->next;
    else
        cs->longpolls = lp->next;
    if (lp->next)
        lp->next->prev = lp->prev;
    else
        cs->longpolls_tail = lp->prev;
    cs->nlongpolls--;
    free(lp);
    if (was_head && !cs->closing)
        arm(cs);
}

static void on_ready(int status, void *arg) {
    certs_longpoll_t *lp = arg;
    http_request_t *req = lp->req;
    certs_service_t *cs = lp->cs;
    lp->wait = NULL; /* consumed */
    finish(lp);
    if (status == 0)
        certs_respond(cs, req, 200, ready_json, 0);
    else
        certs_respond(cs, req, 202, pending_json, 1);
}

/* The client went away or the request timed out: req is not ours anymore. */
static void on_abandon(http_request_t *req, void *arg) {
    (void)req;
    certs_longpoll_t *lp = arg;
    kvpsend_wait_cancel(lp->wait);
    finish(lp);
}

/* Answers lp 202 (the client asks again) and frees it. */
static void give_up(certs_longpoll_t *lp) {
    http_request_t *req = lp->req;
    certs_service_t *cs = lp->cs;
    kvpsend_wait_cancel(lp->wait);
    finish(lp);
    certs_respond(cs, req, 202, pending_json, 1);
}

static void on_timer(uv_timer_t *t) {
    certs_service_t *cs = t->data;
    uint64_t now = certs_now_ms(cs);
    while (cs->longpolls && cs->longpolls->deadline_ms <= now)
        give_up(cs->longpolls);
}

void certs_longpoll_start(certs_service_t *cs, http_request_t *req, uint64_t update) {
    certs_longpoll_t *lp = calloc(1, sizeof *lp);
    if (!lp) {
        certs_respond_error(cs, req, 500, "serverInternal", "Out of memory");
        return;
    }
    *lp = (certs_longpoll_t){.cs = cs, .req = req, .deadline_ms = certs_now_ms(cs) + cs->cfg->longpoll_wait_ms};
    if (!(lp->wait = kvpsend_wait(cs->kvpsend, update, on_ready, lp))) {
        free(lp);
        certs_respond_error(cs, req, 500, "serverInternal", "Cannot wait for the DNS servers");
        return;
    }
    lp->prev = cs->longpolls_tail;
    if (lp->prev)
        lp->prev->next = lp;
    else
        cs->longpolls = lp;
    cs->longpolls_tail = lp;
    cs->nlongpolls++;
    http_request_on_abandon(req, on_abandon, lp);
    if (cs->longpolls == lp)
        arm(cs);
}

void certs_longpoll_flush(certs_service_t *cs) {
    while (cs->longpolls)
        give_up(cs->longpolls);
    uv_timer_stop(&cs->longpoll_timer);
}

void certs_longpoll_init(certs_service_t *cs) {
    uv_timer_init(cs->server->loop, &cs->longpoll_timer);
    cs->longpoll_timer.data = cs;
    /* The connections keep the loop alive while requests wait, not this timer. */
    uv_unref((uv_handle_t *)&cs->longpoll_timer);
}
