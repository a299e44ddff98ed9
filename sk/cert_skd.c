#include "cert_skd.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "../acme/acme_crypto.h"
#include "cert_state.h"

static void on_answer(int status, const acme_http_response_t *res, const char *error, void *arg);

static int send_nonce_request(skd_call_t *c) {
    char url[1024];
    snprintf(url, sizeof url, "%s/api/v1/nonce", c->inst->server);
    acme_http_request_t r = {.method = "HEAD", .url = url};
    c->nonce[0] = '\0';
    c->nonce_request = true;
    return acme_http_send(c->http, &r, on_answer, c);
}

static int send_signed(skd_call_t *c) {
    char url[1024];
    snprintf(url, sizeof url, "%s%s", c->inst->server, c->path);
    buf_free(&c->body);
    if (acme_jws(c->inst->key, c->jwk ? NULL : c->inst->id, c->nonce, url, c->payload, &c->body) < 0)
        return -1;
    c->nonce[0] = '\0';
    c->nonce_request = false;
    acme_http_request_t r = {.method = c->method,
                             .url = url,
                             .body = c->body.data,
                             .body_len = c->body.len,
                             .content_type = "application/jose+json",
                             .authorization = c->authorization,
                             .timeout_ms = 120000}; /* above skd's long-poll wait */
    return acme_http_send(c->http, &r, on_answer, c);
}

static void finish(skd_call_t *c, int status, long http_status, const char *body, const char *error) {
    buf_free(&c->body);
    c->cb(c, status, http_status, body, error);
}

static bool is_bad_nonce(const acme_http_response_t *res) {
    if (res->status != 400)
        return false;
    json_t *j = json_loadb(res->body.data ? res->body.data : "", res->body.len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    bool bad = type && strcmp(type, "badNonce") == 0;
    json_decref(j);
    return bad;
}

static void on_answer(int status, const acme_http_response_t *res, const char *error, void *arg) {
    skd_call_t *c = arg;
    if (status < 0) {
        finish(c, -1, 0, NULL, error);
        return;
    }
    bool had_nonce_request = c->nonce_request;
    if (res->replay_nonce[0] && strlen(res->replay_nonce) < sizeof c->nonce)
        snprintf(c->nonce, sizeof c->nonce, "%s", res->replay_nonce);
    int rc;
    if (had_nonce_request) { /* the answer to HEAD /api/v1/nonce */
        if (!c->nonce[0]) {
            finish(c, -1, 0, NULL, "skd gave no Replay-Nonce");
            return;
        }
        rc = send_signed(c);
    } else if (is_bad_nonce(res) && ++c->bad_nonces <= SKD_CALL_BAD_NONCES) {
        rc = c->nonce[0] ? send_signed(c) : send_nonce_request(c);
    } else if (res->status == 202 && c->repeat_202) {
        c->rounds++;
        rc = c->nonce[0] ? send_signed(c) : send_nonce_request(c);
    } else {
        buf_t body;
        buf_init(&body, 0);
        buf_append(&body, res->body.data ? res->body.data : "", res->body.len);
        buf_append(&body, "", 1);
        finish(c, 0, res->status, body.data, NULL);
        buf_free(&body);
        return;
    }
    if (rc < 0)
        finish(c, -1, 0, NULL, "cannot send the request");
}

int skd_call_start(skd_call_t *c) {
    buf_init(&c->body, 0);
    c->bad_nonces = c->rounds = 0;
    return send_nonce_request(c);
}

int skd_installation_load(const char *dir, skd_installation_t *inst) {
    memset(inst, 0, sizeof *inst);
    json_t *j = cert_read_json(dir, "installation.json");
    const char *server = json_string_value(json_object_get(j, "server"));
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *name = json_string_value(json_object_get(j, "name"));
    int rc = -1;
    if (server && id && name && strlen(server) < sizeof inst->server && strlen(id) < sizeof inst->id &&
        strlen(name) < sizeof inst->name && (inst->key = cert_read_key(dir, "installation-key.pem"))) {
        strcpy(inst->server, server);
        strcpy(inst->id, id);
        strcpy(inst->name, name);
        rc = 0;
    }
    json_decref(j);
    return rc;
}
