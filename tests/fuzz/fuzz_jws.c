/* libFuzzer target: the installations API's request parsers on arbitrary
 * bytes: the flattened JWS (with its protected header and jwk), base64url
 * (canonical: what decodes re-encodes to the same text) and nonces. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../certs/b64url.h"
#include "../../certs/jws.h"
#include "../../certs/nonce.h"

static EVP_PKEY *key;
static nonce_table_t nonces;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!key) {
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        uint8_t k[NONCE_KEY_BYTES] = {0};
        if (!key || nonce_table_init(&nonces, k, 1000, 64) != 0)
            abort();
    }
    jws_t j;
    const char *why = NULL;
    jws_status_t st = jws_parse(&j, (const char *)data, size, &why);
    if (st != JWS_OK && !why)
        abort();
    if (st == JWS_OK) {
        if (strlen(j.nonce) >= sizeof j.nonce || strlen(j.url) >= sizeof j.url || j.payload.len > JWS_PAYLOAD_MAX ||
            (j.has_jwk && (!j.jwk.pkey || strlen(j.jwk.thumbprint) != 43)))
            abort();
        jws_verify(&j, j.has_jwk ? j.jwk.pkey : key);
        jws_url_is(&j, "http", "127.0.0.1:8080", "/api/v1/installations");
        jws_kid_is(&j, "0123456789abcdef0123456789abcdef");
        nonce_redeem(&nonces, j.nonce, strlen(j.nonce), 1);
    }
    jws_free(&j);

    buf_t b;
    buf_init(&b, 4096);
    if (b64url_decode((const char *)data, size, &b) == 0) {
        char *again = malloc(size + 1);
        if (!again || b64url_encode(b.data, b.len, again, size + 1) != 0 || memcmp(again, data, size) != 0)
            abort();
        free(again);
    }
    buf_free(&b);
    nonce_redeem(&nonces, (const char *)data, size, 1);
    return 0;
}
