/* http: one HTTP(S) exchange with libcurl, retried with backoff on network
 * errors only (an HTTP answer, whatever its status, is never retried).
 * Redirects are not followed; only http and https; bounded answers. */
#ifndef SK_HTTP_H
#define SK_HTTP_H

#include <stddef.h>

#include "../common/buf.h"

typedef struct skhttp_opts {
    const char *ca_file;      /* PEM CA bundle for https; NULL: the system's */
    const char *bind_address; /* local source address; NULL: any */
    long connect_timeout_ms;
    long timeout_ms; /* whole exchange */
    int attempts;    /* tries on network errors, at least 1 */
    long backoff_ms; /* wait before the 2nd try, doubled each time */
    size_t max_body; /* answers longer than this fail */
} skhttp_opts_t;

typedef struct skhttp_response {
    long status;
    buf_t body;
} skhttp_response_t;

/* Once per process, before any request (and skhttp_global_cleanup at exit). */
int skhttp_global_init(void);
void skhttp_global_cleanup(void);

/* method "GET", "PUT" or "POST"; headers: NULL-terminated "Name: value"
 * lines or NULL; body may be NULL. Returns 0 when an answer came (resp set,
 * free resp->body with buf_free), -1 with err set after the last failed try.
 * tries: how many attempts were made (may be NULL). */
int skhttp_request(const skhttp_opts_t *o, const char *method, const char *url, const char *const *headers,
                   const char *body, skhttp_response_t *resp, int *tries, char *err, size_t errlen);

#endif
