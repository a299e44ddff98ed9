#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/net.h"
#include "conn.h"
#include "tls.h"

/* ---- built-in routes ---- */

static void handle_healthcheck(http_request_t *req, void *ctx) {
    server_t *s = ctx;
    if (s->health && !s->health(s->health_ctx)) {
        http_respond_error(req, 500, "Unhealthy");
        return;
    }
    http_respond_empty(req, 204);
}

static void handle_metrics(http_request_t *req, void *ctx) {
    server_t *s = ctx;
    http_response_t *resp = http_response_new(200);
    if (!resp) {
        http_respond_error(req, 500, "Out of memory");
        return;
    }
    if (s->metrics_refresh)
        s->metrics_refresh(s->metrics_ctx, &s->metrics);
    metrics_render(&s->metrics, &resp->body);
    resp->content_type = "text/plain; version=0.0.4";
    http_respond(req, resp);
}

/* ---- dispatch (called by conn.c for every complete request) ---- */

void server_dispatch(server_t *s, conn_t *c, http_request_t *req) {
    const router_t *router = &s->public_router;
    if (c->listener->kind == LISTENER_ADMIN) {
        /* Loopback only, even if the listener was bound elsewhere by mistake. */
        if (!conn_peer_is_loopback(c)) {
            http_respond_error(req, 403, "The admin API answers loopback clients only");
            return;
        }
        router = &s->admin_router;
    }
    char allow[128];
    switch (router_match(router, req, allow, sizeof allow)) {
    case ROUTER_FOUND:
        req->route->handler(req, req->route->ctx);
        return;
    case ROUTER_BAD_METHOD: {
        http_response_t *resp = http_response_new(405);
        static const char body[] = "{\"message\":\"Method not allowed\"}";
        if (!resp || http_response_header(resp, "Allow", allow) != 0 ||
            http_response_body(resp, "application/json", body, sizeof body - 1) != 0) {
            http_response_free(resp);
            http_respond_error(req, 500, "Out of memory");
            return;
        }
        http_respond(req, resp);
        return;
    }
    case ROUTER_NOT_FOUND:
        /* The original API's message for an unknown route. */
        http_respond_error(req, 404, "Unimplemented");
        return;
    }
}

/* ---- accepting with back-pressure ---- */

static void on_connection(uv_stream_t *stream, int status) {
    listener_t *l = stream->data;
    server_t *s = l->server;
    if (status < 0) {
        log_warn("accept on %s failed: %s", l->addr->text, uv_strerror(status));
        return;
    }
    if (s->nconns >= s->cfg->max_connections) {
        /* Leaving the connection un-accepted makes libuv stop polling this
         * listener; the kernel backlog holds further clients until
         * server_connection_closed() makes room. */
        if (!l->paused)
            s->metrics.connections_refused++;
        l->paused = true;
        return;
    }
    int rc = conn_accept(l);
    if (rc != 0)
        log_warn("cannot accept on %s: %s", l->addr->text, uv_strerror(rc));
}

void server_connection_closed(server_t *s) {
    for (size_t i = 0; i < s->nlisteners && !s->stopping; i++) {
        listener_t *l = &s->listeners[i];
        if (l->paused && s->nconns < s->cfg->max_connections) {
            l->paused = false;
            int rc = conn_accept(l); /* also resumes polling the listener */
            if (rc != 0)
                log_warn("cannot accept on %s: %s", l->addr->text, uv_strerror(rc));
        }
    }
    if (s->stopping && s->nconns == 0) {
        uv_timer_stop(&s->shutdown_timer);
        uv_close((uv_handle_t *)&s->shutdown_timer, NULL);
        uv_close((uv_handle_t *)&s->sigterm, NULL);
        uv_close((uv_handle_t *)&s->sigint, NULL);
        uv_close((uv_handle_t *)&s->sighup, NULL);
        uv_close((uv_handle_t *)&s->log_flush, NULL);
        log_info("stopped");
    }
}

/* ---- shutdown ---- */

static void on_shutdown_deadline(uv_timer_t *t) {
    server_t *s = t->data;
    log_warn("shutdown deadline reached: closing %zu connection(s)", s->nconns);
    for (conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
    /* A running job cannot be interrupted; the deadline still holds:
     * serve_run() exits without waiting for it. */
    if (s->metrics.worker_queue_depth > 0)
        uv_stop(s->loop);
}

void server_stop(server_t *s) {
    if (s->stopping)
        return;
    s->stopping = true;
    log_info("shutting down: %zu connection(s) open", s->nconns);
    for (size_t i = 0; i < s->nlisteners; i++)
        uv_close((uv_handle_t *)&s->listeners[i].tcp, NULL);
    for (conn_t *c = s->conns, *next; c; c = next) {
        next = c->next; /* conn_stop may close c */
        conn_stop(c);
    }
    /* Before the deadline timer starts: with no connection left, finish now. */
    if (s->nconns == 0) {
        server_connection_closed(s);
        return;
    }
    uv_timer_start(&s->shutdown_timer, on_shutdown_deadline, s->cfg->shutdown_timeout_ms, 0);
}

void server_fail(server_t *s) {
    s->exit_code = 1;
    server_stop(s);
}

/* ---- TLS reload off the loop ---- */

typedef struct tls_reload {
    server_t *server;
    SSL_CTX *ctx;
    char err[512];
} tls_reload_t;

static void load_tls_job(void *arg) {
    tls_reload_t *r = arg;
    const config_t *cfg = r->server->cfg;
    r->ctx = tls_context_load(cfg->tls_cert, cfg->tls_key, r->err, sizeof r->err);
}

static void load_tls_done(int status, void *arg) {
    tls_reload_t *r = arg;
    server_t *s = r->server;
    s->tls_reloading = false;
    if (status == 0 && r->ctx) {
        SSL_CTX_free(s->tls_ctx); /* open sessions keep their own reference */
        s->tls_ctx = r->ctx;
        log_info("TLS certificate reloaded from %s", s->cfg->tls_cert);
    } else {
        SSL_CTX_free(r->ctx);
        log_error("TLS reload failed, keeping the current certificate: %s", r->err);
    }
    free(r);
    /* A reload asked for meanwhile may have seen newer files: run it now. */
    if (s->tls_reload_again) {
        s->tls_reload_again = false;
        server_reload_tls(s);
    }
}

void server_reload_tls(server_t *s) {
    if (!s->tls_ctx || s->stopping)
        return;
    if (s->tls_reloading) {
        s->tls_reload_again = true;
        return;
    }
    tls_reload_t *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->server = s;
    if (worker_submit(&s->pool, load_tls_job, load_tls_done, r) != 0) {
        log_error("TLS reload failed: the worker queue is full");
        free(r);
        return;
    }
    s->tls_reloading = true;
}

static void on_signal(uv_signal_t *h, int signum) {
    server_t *s = h->data;
    if (signum == SIGHUP) {
        log_info("SIGHUP: reloading the TLS certificate");
        server_reload_tls(s);
        return;
    }
    server_stop(s);
}

static void on_log_flush(uv_timer_t *h) {
    (void)h;
    log_flush();
}

/* ---- set-up ---- */

int server_init(server_t *s, uv_loop_t *loop, const config_t *cfg) {
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cfg = cfg;
    metrics_init(&s->metrics);
    worker_pool_init(&s->pool, loop, cfg->max_queued_jobs, &s->metrics);
    router_init(&s->public_router);
    router_init(&s->admin_router);
    if (router_add(&s->public_router, HTTP_GET, "/healthcheck", handle_healthcheck, s) != 0 ||
        router_add(&s->admin_router, HTTP_GET, "/metrics", handle_metrics, s) != 0 ||
        router_add(&s->admin_router, HTTP_GET, "/healthcheck", handle_healthcheck, s) != 0)
        return -1;
    return 0;
}

static int bind_listener(server_t *s, listener_t *l) {
    uv_tcp_init(s->loop, &l->tcp);
    l->tcp.data = l;
    l->server = s;
    unsigned flags = l->addr->addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    int rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&l->addr->addr, flags);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
    if (rc != 0) {
        log_error("%s:%d: cannot listen on %s: %s", s->cfg->path, l->addr->line, l->addr->text, uv_strerror(rc));
        return -1;
    }
    const char *what = l->kind == LISTENER_ADMIN ? "admin" : l->tls ? "public (TLS)" : "public";
    log_info("listening on %s (%s)", l->addr->text, what);
    if (l->kind == LISTENER_ADMIN) {
        if (!net_is_loopback(&l->addr->addr))
            log_warn("%s:%d: admin listener %s is not on loopback; non-loopback clients get 403", s->cfg->path,
                     l->addr->line, l->addr->text);
    }
    return 0;
}

int server_start(server_t *s) {
    const config_t *cfg = s->cfg;
    if (cfg->tls_listen_count) {
        char err[512];
        s->tls_ctx = tls_context_load(cfg->tls_cert, cfg->tls_key, err, sizeof err);
        if (!s->tls_ctx && cfg->acme && access(cfg->tls_cert, F_OK) != 0) {
            /* The first start with [acme]: nothing issued yet. */
            log_warn("no certificate in %s yet: serving a self-signed one until ACME provides it", cfg->tls_cert);
            s->tls_ctx = tls_context_self_signed(cfg->acme_names[0], err, sizeof err);
        }
        if (!s->tls_ctx) {
            log_error("%s", err);
            return -1;
        }
    }
    size_t n = cfg->public_listen_count + cfg->tls_listen_count + cfg->admin_listen_count;
    s->listeners = calloc(n, sizeof *s->listeners);
    if (!s->listeners)
        return -1;
    for (size_t i = 0; i < cfg->public_listen_count; i++)
        s->listeners[s->nlisteners++] = (listener_t){.kind = LISTENER_PUBLIC, .addr = &cfg->public_listen[i]};
    for (size_t i = 0; i < cfg->tls_listen_count; i++)
        s->listeners[s->nlisteners++] =
            (listener_t){.kind = LISTENER_PUBLIC, .tls = true, .addr = &cfg->tls_listen[i]};
    for (size_t i = 0; i < cfg->admin_listen_count; i++)
        s->listeners[s->nlisteners++] = (listener_t){.kind = LISTENER_ADMIN, .addr = &cfg->admin_listen[i]};
    for (size_t i = 0; i < s->nlisteners; i++)
        if (bind_listener(s, &s->listeners[i]) != 0)
            return -1;

    uv_timer_init(s->loop, &s->shutdown_timer);
    s->shutdown_timer.data = s;
    uv_signal_t *sigs[] = {&s->sigterm, &s->sigint, &s->sighup};
    int signums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(s->loop, sigs[i]);
        sigs[i]->data = s;
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }
    uv_timer_init(s->loop, &s->log_flush);
    uv_timer_start(&s->log_flush, on_log_flush, 1000, 1000);
    uv_unref((uv_handle_t *)&s->log_flush);
    return 0;
}

void server_free(server_t *s) {
    router_free(&s->public_router);
    router_free(&s->admin_router);
    SSL_CTX_free(s->tls_ctx);
    free(s->listeners);
    s->tls_ctx = NULL;
    s->listeners = NULL;
    log_flush();
}
