/* certs_http: the installations API's view of a request (who calls, through
 * which URL, with which enrolment token) and its answers. */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "../server/client_addr.h"
#include "../server/conn.h"
#include "certs_internal.h"

#define TOKEN_MIN 16
#define TOKEN_MAX 512
#define TOKENS_MAX 1024

uint64_t certs_now_ms(const certs_service_t *cs) {
    return uv_now(cs->server->loop);
}

int certs_client_address(const certs_service_t *cs, http_request_t *req, char *out, size_t len) {
    return client_addr_of(req, cs->cfg, out, len);
}

const char *certs_request_scheme(const certs_service_t *cs, http_request_t *req) {
    const conn_t *c = req->conn->owner;
    const char *proto = http_request_header(req, "X-Forwarded-Proto");
    if (proto && client_from_trusted_proxy(c, cs->cfg)) {
        if (strcasecmp(proto, "https") == 0)
            return "https";
        if (strcasecmp(proto, "http") == 0)
            return "http";
    }
    return c->is_tls ? "https" : "http";
}

http_response_t *certs_response(certs_service_t *cs, int status, const char *json) {
    char nonce[NONCE_TEXT_SIZE];
    nonce_issue(&cs->nonces, certs_now_ms(cs), nonce);
    http_response_t *resp = http_response_new(status);
    if (!resp || http_response_header(resp, "Replay-Nonce", nonce) != 0 ||
        http_response_header(resp, "Cache-Control", "no-store") != 0 ||
        (json && http_response_body(resp, "application/json", json, strlen(json)) != 0)) {
        http_response_free(resp);
        return NULL;
    }
    return resp;
}

void certs_respond(certs_service_t *cs, http_request_t *req, int status, const char *json, unsigned retry_after) {
    char seconds[16];
    snprintf(seconds, sizeof seconds, "%u", retry_after);
    http_response_t *resp = certs_response(cs, status, json);
    if (!resp || (retry_after && http_response_header(resp, "Retry-After", seconds) != 0)) {
        http_response_free(resp);
        http_respond_error(req, 500, "Out of memory");
        return;
    }
    http_respond(req, resp);
}

void certs_respond_error(certs_service_t *cs, http_request_t *req, int status, const char *type, const char *message) {
    json_t *o = json_pack("{s:s, s:s}", "type", type, "message", message);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text)
        certs_respond(cs, req, status, text, 0);
    else
        http_respond_error(req, 500, "Out of memory");
    free(text);
}

int certs_check_enrolment(const certs_service_t *cs, http_request_t *req) {
    if (!cs->ntokens)
        return 0;
    const char *auth = http_request_header(req, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7])
        return 401;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)auth + 7, strlen(auth + 7), digest);
    /* Every token is compared, whichever matches: the time says nothing. */
    int match = 0;
    for (size_t i = 0; i < cs->ntokens; i++)
        match |= CRYPTO_memcmp(digest, cs->tokens[i], sizeof digest) == 0;
    return match ? 0 : 403;
}

int certs_load_tokens(certs_service_t *cs, const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "r");
    struct stat st;
    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int rc = -1;
    if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077)) {
        snprintf(err, err_len, "%s: readable by group or others (chmod 600)", path);
        goto done;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0';
        const char *tok = line + strspn(line, " \t");
        if (!*tok || *tok == '#')
            continue;
        size_t len = strlen(tok);
        bool printable = true;
        for (size_t i = 0; i < len; i++)
            printable &= tok[i] > ' ' && tok[i] < 0x7f;
        if (len < TOKEN_MIN || len > TOKEN_MAX || !printable) {
            snprintf(err, err_len, "%s:%zu: a token is %d to %d printable characters without spaces", path, lineno,
                     TOKEN_MIN, TOKEN_MAX);
            goto done;
        }
        if (cs->ntokens == TOKENS_MAX) {
            snprintf(err, err_len, "%s: more than %d tokens", path, TOKENS_MAX);
            goto done;
        }
        void *grown = realloc(cs->tokens, (cs->ntokens + 1) * sizeof *cs->tokens);
        if (!grown) {
            snprintf(err, err_len, "out of memory");
            goto done;
        }
        cs->tokens = grown;
        SHA256((const uint8_t *)tok, len, cs->tokens[cs->ntokens++]);
    }
    if (!cs->ntokens) {
        snprintf(err, err_len, "%s: no token in it (registration would be closed to everyone)", path);
        goto done;
    }
    rc = 0;
done:
    if (line)
        OPENSSL_cleanse(line, cap);
    free(line);
    fclose(f);
    return rc;
}
