/* http_uv: outbound HTTP(S) with libcurl's multi-socket interface on a
 * libuv loop (uv_poll per socket, one uv_timer for curl's timeouts), for
 * the ACME client and for sk's calls to skd.
 *
 * One acme_http_t per loop: its connections are reused between requests.
 * Every request has a timeout; the CA bundle is configurable; proxies come
 * from the environment (http_proxy, https_proxy, no_proxy: libcurl's
 * defaults). Answers are bounded (ACME_HTTP_BODY_MAX). Callbacks run on
 * the loop, status first (0: an HTTP answer, whatever its code; -1: none,
 * error says why). */
#ifndef SKD_ACME_HTTP_UV_H
#define SKD_ACME_HTTP_UV_H

#include <stddef.h>
#include <uv.h>

#include "../common/buf.h"
#include "acme.h"

#define ACME_HTTP_BODY_MAX (1024 * 1024)
#define ACME_HTTP_HEADER_MAX 2048 /* a kept header's value */
#define ACME_HTTP_TIMEOUT_MS 30000

typedef struct acme_http_response {
    long status;
    /* These headers' values ("" when absent). */
    char replay_nonce[ACME_HTTP_HEADER_MAX];
    char location[ACME_HTTP_HEADER_MAX];
    char retry_after[64];
    char content_type[128];
    buf_t body;
} acme_http_response_t;

typedef void (*acme_http_cb)(int status, const acme_http_response_t *res, const char *error, void *arg);

typedef struct acme_http_request {
    const char *method; /* GET, HEAD, POST, PUT, DELETE */
    const char *url;
    const char *body;   /* copied; may be NULL */
    size_t body_len;
    const char *content_type;     /* or NULL */
    const char *accept;           /* or NULL */
    const char *authorization;    /* a whole header value, or NULL */
    long timeout_ms;              /* 0: ACME_HTTP_TIMEOUT_MS */
} acme_http_request_t;

typedef struct acme_http {
    uv_loop_t *loop;
    void *multi; /* CURLM */
    uv_timer_t timer;
    char *ca_bundle;
    struct acme_http_transfer *transfers; /* in flight */
    int closing;
} acme_http_t;

/* ca_bundle: a PEM file of trusted roots, or NULL for the system's. */
int acme_http_init(acme_http_t *h, uv_loop_t *loop, const char *ca_bundle);
/* Starts a request; cb runs exactly once unless acme_http_close comes first. */
int acme_http_send(acme_http_t *h, const acme_http_request_t *req, acme_http_cb cb, void *arg);
/* The machine's input for an answer given to an acme_http_cb: the response
 * (pointing into res, valid during the callback) or the transport error. */
acme_input_t acme_http_input(int status, const acme_http_response_t *res, const char *error);
/* Drops the requests in flight (no callbacks) and closes the handles; the
 * loop must run once more to finish closing them. */
void acme_http_close(acme_http_t *h);

#endif
