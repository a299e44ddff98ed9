/* certs_internal: what the files of the installations service share. */
#ifndef SKD_CERTS_INTERNAL_H
#define SKD_CERTS_INTERNAL_H

#include <stdint.h>

#include "../server/http.h"
#include "certs_service.h"

#define CERTS_NONCE_LIFETIME_MS (5 * 60 * 1000)

/* ---- certs_http.c: requests and answers ---- */

/* The caller's address (normalized) as the key API sees it: the socket's
 * peer or a PROXY v2 header's source (conn.c), or the last X-Forwarded-For
 * address when the peer is one of [public] trusted_proxies. -1 if unusable. */
int certs_client_address(const certs_service_t *cs, http_request_t *req, char *out, size_t len);
/* "http" or "https" as the client used: the listener's kind (TLS or not),
 * or X-Forwarded-Proto from a trusted proxy. */
const char *certs_request_scheme(const certs_service_t *cs, http_request_t *req);
/* A response with a fresh Replay-Nonce and Cache-Control: no-store, and
 * json (text, or NULL for no body); NULL when out of memory. */
http_response_t *certs_response(certs_service_t *cs, int status, const char *json);
/* Answers with certs_response(); retry_after: seconds, 0 for none. */
void certs_respond(certs_service_t *cs, http_request_t *req, int status, const char *json, unsigned retry_after);
/* {"type": type, "message": message} with a fresh Replay-Nonce. */
void certs_respond_error(certs_service_t *cs, http_request_t *req, int status, const char *type, const char *message);
/* Whether the request's Authorization: Bearer token is an enrolment token
 * (constant time). 0: yes or no tokens configured; 401: none sent; 403: wrong. */
int certs_check_enrolment(const certs_service_t *cs, http_request_t *req);
/* Loads the tokens file (one per line; '#' comments and blank lines
 * skipped; it must not be readable by group or others). */
int certs_load_tokens(certs_service_t *cs, const char *path, char *err, size_t err_len);
uint64_t certs_now_ms(const certs_service_t *cs);

/* ---- certs_api.c: the routes ---- */

int certs_api_add_routes(certs_service_t *cs);

/* ---- certs_longpoll.c: challenge PUTs waiting for the DNS servers ---- */

/* Answers req 200 {"status":"ready"} once kvpsend reports update ready,
 * or 202 {"status":"pending"} with Retry-After after longpoll_wait_ms. */
void certs_longpoll_start(certs_service_t *cs, http_request_t *req, uint64_t update);
/* Answers every pending one 202 at once (shutdown). */
void certs_longpoll_flush(certs_service_t *cs);
void certs_longpoll_init(certs_service_t *cs);

/* ---- certs_reconcile.c: the DNS servers' key/value pairs ---- */

/* kvpsend_put/del that a reconcile in flight knows about (see there). */
uint64_t certs_kv_put(certs_service_t *cs, const char *key, const char *val);
void certs_kv_del(certs_service_t *cs, const char *key);
/* Starts the periodic reconcile (a first one at once). */
int certs_reconcile_start(certs_service_t *cs);
void certs_reconcile_stop(certs_service_t *cs);

#endif
