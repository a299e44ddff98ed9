/* cert_skd: sk's calls to skd's installations API (certs/API.md) on a
 * libuv loop: each call fetches a nonce, signs its request with the
 * installation key (jwk for registration, kid afterwards), retries a
 * refused nonce with the one the answer carries (bounded), and repeats a
 * challenge PUT answered 202 (the long-poll's wait limit) until 200. */
#ifndef SK_CERT_SKD_H
#define SK_CERT_SKD_H

#include <openssl/evp.h>
#include <stdbool.h>

#include "../acme/http_uv.h"

#define SKD_CALL_BAD_NONCES 10

typedef struct skd_installation {
    char server[512]; /* base URL, no trailing slash */
    char id[128];
    char name[256];   /* with its trailing dot, as skd gives it */
    EVP_PKEY *key;
} skd_installation_t;

typedef struct skd_call skd_call_t;
/* status 0: an answer (http_status, body); -1: none (error). */
typedef void (*skd_call_cb)(skd_call_t *c, int status, long http_status, const char *body, const char *error);

struct skd_call {
    acme_http_t *http;
    const skd_installation_t *inst;
    const char *method;
    char path[512];
    char payload[1024];
    bool jwk;          /* registration */
    bool repeat_202;   /* the challenge long-poll */
    const char *authorization;
    unsigned bad_nonces;
    unsigned rounds;   /* 202s so far */
    char nonce[256];
    bool nonce_request; /* the request in flight is HEAD /api/v1/nonce */
    buf_t body;
    skd_call_cb cb;
    void *data;
};

/* Reads DIR/installation.json and DIR/installation-key.pem; 0 or -1. */
int skd_installation_load(const char *dir, skd_installation_t *inst);

/* Starts the call; cb runs once. The call struct must live until then. */
int skd_call_start(skd_call_t *c);

#endif
