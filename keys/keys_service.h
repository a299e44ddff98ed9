/* keys_service: the HSM behind skd's API: its PIN and client key (admin
 * listener), its health, and the signing public key.
 *
 * The PIN arrives only through PUT /hsm-pin, is kept in locked memory (never
 * swapped, never on disk or in logs) and zeroed at exit. Until a PIN is
 * accepted and the keys are found, /healthcheck answers 500 and key routes
 * answer 500 "Unhealthy". If the token lacks a key or holds two, skd stops
 * with an error: it never creates keys by itself (that is skd init). */
#ifndef SKD_KEYS_SERVICE_H
#define SKD_KEYS_SERVICE_H

#include <stdbool.h>

#include "../audit/audit.h"
#include "../hsm/hsm.h"
#include "../server/server.h"
#include "../store/store.h"
#include "identity.h"

#define KEYS_SECRET_MAX 8192 /* locked bytes for the PIN and the client key */

typedef struct keys_service {
    server_t *server;
    hsm_t *hsm;
    store_t *store; /* serve's; not owned */
    audit_t *audit; /* NULL only in benchmarks (SKD_BENCH_NO_AUDIT=1) */
    identity_verifier_t identity; /* signers empty without [identity] */
    bool ready;     /* logged in, keys loaded */
    bool logging_in;
    char *locked;   /* KEYS_SECRET_MAX bytes, mlock()ed: PIN, then client key */
    size_t pin_len;
    size_t client_key_len;
    char *public_key_json; /* {"public_key": "..."} once ready */
} keys_service_t;

/* Opens the token of cfg's [hsm] section and adds the routes; store is
 * serve's (it outlives the service). */
int keys_service_init(keys_service_t *ks, server_t *s, store_t *store, const config_t *cfg);
/* Adds the key-release routes (keys_api.c). */
int keys_api_add_routes(keys_service_t *ks);
/* Zeroes the secrets and closes the token (after the loop has stopped). */
void keys_service_free(keys_service_t *ks);

/* Secrets in memory that jansson frees are zeroed first (PINs, keys). */
void keys_install_secure_json_alloc(void);

#endif
