/* acme_self: skd keeps the certificate of its own TLS listener ([acme] in
 * skd.conf) with the ACME machine (acme/acme.h) on skd's loop.
 *
 * Each name is <label>.<zone> of the installations' zone; skd holds one
 * installation per label in the store (its id kept in state_dir/acme.json;
 * a throw-away key, so nobody can change it through the REST API) and sets
 * its dns-01 values as the installations API does, without HTTP: store
 * first (worker), then kvpsend, then waits until every DNS server serves
 * them. Key generation and every file write run on the worker pool; the
 * certificate and key are written atomically to [public] tls_cert/tls_key
 * and the listener's TLS context is swapped (server_reload_tls(): open
 * connections keep the old one). Then it sleeps until renewal: a random
 * time in the CA's renewal window (RFC 9773; asked again as its Retry-After
 * says), else two thirds of the lifetime or renew_before_ms before expiry
 * (which also caps the CA's time); a failed attempt is
 * logged with the machine's one-line message and retried with backoff,
 * resuming its order. State and the next renewal in /metrics (skd_acme_*). */
#ifndef SKD_ACME_SELF_H
#define SKD_ACME_SELF_H

#include <stdbool.h>
#include <stdint.h>

#include "../acme/acme.h"
#include "../acme/http_uv.h"
#include "certs_service.h"

struct acme_self_slot {
    struct acme_self *as;
    kvpsend_wait_t *wait; /* NULL once answered or cancelled */
};

typedef struct acme_self {
    server_t *server;
    certs_service_t *cs;
    const config_t *cfg;
    acme_http_t http;
    uv_timer_t timer; /* the machine's wake time, the DNS wait, the sleep */
    uv_check_t stop_watch;
    acme_t m;
    bool running; /* m holds an attempt */
    bool closing;
    const char *names[CONFIG_ACME_NAMES];
    char ids[CONFIG_ACME_NAMES][STORE_INSTALLATION_ID_SIZE];
    EVP_PKEY *account_key;
    EVP_PKEY *order_key; /* the key of the saved order, or NULL */
    char account_url[ACME_URL_MAX];
    char order_url[ACME_URL_MAX];
    /* The dns-01 values being published. */
    acme_challenge_value_t values[ACME_MAX_NAMES];
    size_t nvalues;
    struct acme_self_slot slots[ACME_MAX_NAMES];
    size_t nwaiting;
    uint64_t publish_deadline;
    int64_t cert_not_before, cert_not_after; /* the served certificate's, Unix seconds; 0: none */
    char *cert_pem;         /* the served certificate, or NULL */
    size_t cert_pem_len;
    bool checking;          /* m asks for the CA's renewal window */
    acme_renewal_plan_t plan;
    int64_t check_at_ms;    /* when to ask for it (wall clock); 0: not to */
    int64_t renew_at_ms;    /* wall clock */
    char saved_line[sizeof ((acme_t *)0)->progress]; /* a step's line, logged once its SAVE_* is done */
    unsigned failures;      /* in a row */
} acme_self_t;

/* Starts the service if cfg has [acme] (else does nothing): loads or makes
 * the state on a worker, then gets a certificate if none or due. */
int acme_self_init(acme_self_t *as, server_t *s, certs_service_t *cs, const config_t *cfg);
/* Stops everything (called by itself when the server stops, and by serve
 * after the loop); idempotent. */
void acme_self_close(acme_self_t *as);
/* After the loop finished the closes. */
void acme_self_free(acme_self_t *as);

#endif
