/* certs_service: the installations REST API of the certificate pipeline
 * (../shared/spec/cert-pipeline.md) on skd's public listener:
 *
 *   GET|HEAD /api/v1/nonce                          a fresh Replay-Nonce
 *   GET      /api/v1/whoami                         {"address": the caller's address}
 *   POST     /api/v1/installations                  register a key, get a name
 *   PUT      /api/v1/installations/{id}/address     A or AAAA of the name
 *   PUT      /api/v1/installations/{id}/challenge   add a TXT value, long-poll until served
 *   DELETE   /api/v1/installations/{id}/challenge   remove one TXT value or all
 *   DELETE   /api/v1/installations/{id}             remove the installation
 *
 * and on the admin listener GET /installations/status (the DNS push's state).
 *
 * Every POST, PUT and DELETE is a JWS signed by the installation's key
 * (jws.h); certs_api.c describes the checks. Every change goes to the store
 * first (on a worker), then to the DNS servers through kvpsend (on the loop);
 * a periodic reconcile re-reads the whole store (another skd node may have
 * changed it) and hands it to kvpsend. */
#ifndef SKD_CERTS_SERVICE_H
#define SKD_CERTS_SERVICE_H

#include <openssl/sha.h>
#include <stdbool.h>

#include "../kvpsync/kvpsend.h"
#include "../server/server.h"
#include "../store/store.h"
#include "nonce.h"

struct certs_longpoll;
struct certs_reconcile;

typedef struct certs_service {
    server_t *server;
    store_t *store; /* serve's; not owned */
    const config_t *cfg;
    uint8_t (*tokens)[SHA256_DIGEST_LENGTH]; /* SHA-256 of each enrolment token */
    size_t ntokens;
    nonce_table_t nonces;
    kvpsend_t *kvpsend; /* NULL without [kvpsend] */
    kvpsend_receiver_config_t *receivers; /* [kvpsend] receiver lines, PSKs loaded */
    bool kvpsend_open;  /* kvpsend_init succeeded (with the first snapshot), not closed yet */
    /* Pending challenge PUTs, oldest first; all wait equally long, so this
     * is also deadline order, and one timer serves them all. */
    struct certs_longpoll *longpolls, *longpolls_tail;
    size_t nlongpolls;
    uv_timer_t longpoll_timer;
    uv_timer_t reconcile_timer;
    struct certs_reconcile *reconcile; /* in flight on a worker, or NULL */
    uv_check_t stop_watch; /* notices the server stopping */
    int handles_open;
    bool closing;
} certs_service_t;

/* Adds the routes and starts kvpsend and the reconcile timer, if cfg has
 * [installations] (else does nothing and returns 0). store is serve's. */
int certs_service_init(certs_service_t *cs, server_t *s, store_t *store, const config_t *cfg);
/* Answers pending long-polls, stops the timers, closes kvpsend. Loop
 * thread; called by itself when the server stops, and by serve after the
 * loop ended (then the final uv_run completes the closes). Idempotent. */
void certs_service_close(certs_service_t *cs);
/* Frees the rest, after the loop is done with every handle. */
void certs_service_free(certs_service_t *cs);

#endif
