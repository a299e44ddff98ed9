#include "certs_service.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../kvpsync/kvpsync.h"
#include "certs_internal.h"

/* ---- GET|HEAD /api/v1/nonce, GET /api/v1/whoami ---- */

static void handle_nonce(http_request_t *req, void *ctx) {
    /* RFC 8555 section 7.2: 200 for HEAD, 204 for GET. */
    certs_respond(ctx, req, req->method == HTTP_HEAD ? 200 : 204, NULL, 0);
}

static void handle_whoami(http_request_t *req, void *ctx) {
    certs_service_t *cs = ctx;
    char addr[STORE_IP_SIZE], json[96];
    if (certs_client_address(cs, req, addr, sizeof addr) != 0) {
        certs_respond_error(cs, req, 400, "malformed", "Unusable forwarding headers from a trusted proxy");
        return;
    }
    snprintf(json, sizeof json, "{\"address\":\"%s\"}", addr);
    certs_respond(cs, req, 200, json, 0);
}

/* ---- GET /installations/status (admin listener) ---- */

/* The DNS push at a glance, for operators and tests. */
static void handle_status(http_request_t *req, void *ctx) {
    certs_service_t *cs = ctx;
    json_t *o = json_pack("{s:s, s:I, s:b}", "zone", cs->cfg->installations_zone, "pending_longpolls",
                          (json_int_t)cs->nlongpolls, "kvpsend", cs->kvpsend_open);
    if (o && cs->kvpsend_open) {
        kvpsend_stats_t st;
        kvpsend_stats(cs->kvpsend, &st);
        json_t *receivers = json_array();
        for (size_t i = 0; receivers && i < st.n_receivers; i++) {
            const kvpsend_receiver_stats_t *r = &st.receivers[i];
            json_array_append_new(receivers,
                                  json_pack("{s:s, s:b, s:b, s:I, s:I, s:I, s:I}", "name", r->name, "healthy",
                                            r->healthy, "in_sync", r->core.in_sync, "acked_below",
                                            (json_int_t)r->acked_below, "sent", (json_int_t)r->core.sent,
                                            "retransmitted", (json_int_t)r->core.retransmitted, "resyncs",
                                            (json_int_t)r->core.resyncs));
        }
        json_object_set_new(o, "keys", json_integer((json_int_t)st.keys));
        json_object_set_new(o, "ready_below", json_integer((json_int_t)st.ready_below));
        json_object_set_new(o, "receivers", receivers ? receivers : json_null());
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text)
        http_respond_json(req, 200, text, strlen(text));
    else
        http_respond_error(req, 500, "Out of memory");
    free(text);
}

/* ---- life cycle ---- */

/* The server has no stop hook: this check handle (unreferenced, so it does
 * not keep the loop alive) runs once per loop iteration and closes the
 * service when the server starts stopping, so that pending long-polls are
 * answered at once and kvpsend's socket lets the loop end. */
static void on_check(uv_check_t *h) {
    certs_service_t *cs = h->data;
    if (cs->server->stopping)
        certs_service_close(cs);
}

static void on_handle_closed(uv_handle_t *h) {
    certs_service_t *cs = h->data;
    cs->handles_open--;
}

static void on_kvpsend_closed(kvpsend_t *k) {
    (void)k;
}

/* Loads the PSK of every [kvpsend] receiver line. */
static int load_receivers(certs_service_t *cs) {
    const config_t *cfg = cs->cfg;
    cs->receivers = calloc(cfg->kvpsend_receiver_count, sizeof *cs->receivers);
    cs->kvpsend = calloc(1, sizeof *cs->kvpsend);
    if (!cs->receivers || !cs->kvpsend) {
        log_error("out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->kvpsend_receiver_count; i++) {
        const config_receiver_t *r = &cfg->kvpsend_receivers[i];
        kvpsend_receiver_config_t *out = &cs->receivers[i];
        char err[256];
        snprintf(out->name, sizeof out->name, "%s", r->name);
        out->addr = r->addr;
        if (kvps_psk_load(r->psk_file, &out->psk, err, sizeof err) != 0) {
            log_error("%s:%d: receiver %s: %s", cfg->path, r->line, r->name, err);
            return -1;
        }
    }
    return 0;
}

int certs_service_init(certs_service_t *cs, server_t *s, store_t *store, const config_t *cfg) {
    memset(cs, 0, sizeof *cs);
    if (!cfg->installations_zone)
        return 0;
    cs->server = s;
    cs->store = store;
    cs->cfg = cfg;
    char err[512];
    uint8_t key[NONCE_KEY_BYTES];
    if (RAND_bytes(key, sizeof key) != 1 ||
        nonce_table_init(&cs->nonces, key, CERTS_NONCE_LIFETIME_MS, NONCE_WINDOW) != 0) {
        log_error("installations: cannot set up nonces");
        return -1;
    }
    OPENSSL_cleanse(key, sizeof key);
    if (cfg->enrolment_tokens && certs_load_tokens(cs, cfg->enrolment_tokens, err, sizeof err) != 0) {
        log_error("[installations] enrolment_tokens: %s", err);
        return -1;
    }
    if (cfg->kvpsend && load_receivers(cs) != 0)
        return -1;
    certs_longpoll_init(cs);
    cs->handles_open++;
    uv_check_init(s->loop, &cs->stop_watch);
    cs->handles_open++;
    cs->stop_watch.data = cs;
    uv_check_start(&cs->stop_watch, on_check);
    uv_unref((uv_handle_t *)&cs->stop_watch);
    if (certs_api_add_routes(cs) != 0 ||
        router_add(&s->public_router, HTTP_GET, "/api/v1/nonce", handle_nonce, cs) != 0 ||
        router_add(&s->public_router, HTTP_GET, "/api/v1/whoami", handle_whoami, cs) != 0 ||
        router_add(&s->admin_router, HTTP_GET, "/installations/status", handle_status, cs) != 0) {
        log_error("installations: cannot add routes: out of memory");
        return -1;
    }
    if (cfg->kvpsend && certs_reconcile_start(cs) != 0) {
        log_error("installations: cannot start the reconcile timer");
        return -1;
    }
    log_info("installations API for zone %s: registration %s, %s", cfg->installations_zone,
             cs->ntokens ? "with enrolment tokens" : "open",
             cfg->kvpsend ? "DNS servers through kvpsend" : "no [kvpsend]: challenges refused");
    return 0;
}

void certs_service_close(certs_service_t *cs) {
    if (!cs->server || cs->closing)
        return;
    cs->closing = true;
    certs_longpoll_flush(cs);
    if (cs->cfg->kvpsend)
        certs_reconcile_stop(cs);
    uv_handle_t *handles[] = {(uv_handle_t *)&cs->longpoll_timer, (uv_handle_t *)&cs->reconcile_timer,
                              (uv_handle_t *)&cs->stop_watch};
    for (size_t i = 0; i < 3; i++) {
        if (handles[i]->loop && !uv_is_closing(handles[i])) {
            handles[i]->data = cs;
            uv_close(handles[i], on_handle_closed);
        }
    }
    if (cs->kvpsend_open) {
        cs->kvpsend_open = false;
        kvpsend_close(cs->kvpsend, on_kvpsend_closed);
    }
}

void certs_service_free(certs_service_t *cs) {
    if (cs->handles_open > 0)
        log_error("installations: freed with %d handle(s) open", cs->handles_open);
    nonce_table_free(&cs->nonces);
    if (cs->receivers)
        OPENSSL_cleanse(cs->receivers, cs->cfg->kvpsend_receiver_count * sizeof *cs->receivers);
    free(cs->receivers);
    free(cs->kvpsend);
    free(cs->tokens);
    memset(cs, 0, sizeof *cs);
}
