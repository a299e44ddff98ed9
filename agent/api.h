/* api: the key-release API's bodies (../shared/spec/keys-api.md), sans I/O.
 *
 * Request bodies are built here; responses are parsed strictly (fields
 * present, strict base64, bounded) before anything looks at them. The
 * signatures are checked by the caller (crypto.h) against the pinned key. */
#ifndef SK_API_H
#define SK_API_H

#include <stddef.h>

#include "../common/buf.h"

#define SKAPI_WRAPPED_MAX 1024 /* RSA-8192 */
#define SKAPI_SIG_MAX 160
#define SKAPI_BODY_MAX 65536 /* skd answers are far smaller */

enum { SKAPI_ENCRYPTED = 1, SKAPI_WRAPPED = 2 };

typedef struct skapi_reply {
    buf_t enc, enc_sig;         /* encrypted_secret and its signature (SKAPI_ENCRYPTED) */
    buf_t wrapped, wrapped_sig; /* wrapped_secret and its signature (SKAPI_WRAPPED) */
    char algorithm[24];         /* wrapped_secret_algorithm; "" if absent (the original: SHA-256) */
} skapi_reply_t;

/* JSON request bodies (malloc'd, free() them); NULL on failure. */
char *skapi_generate_body(const buf_t *rsa_spki, const char *volume_uuid);
char *skapi_decrypt_body(const buf_t *blob, const buf_t *rsa_spki, const char *volume_uuid);
char *skapi_convert_body(const buf_t *blob, const char *source_instance_id, const char *volume_uuid);

void skapi_reply_init(skapi_reply_t *r);
void skapi_reply_free(skapi_reply_t *r);
/* Parses a 200 answer that must carry the fields groups named by want
 * (SKAPI_ENCRYPTED, SKAPI_WRAPPED or both); -1 with err set otherwise. */
int skapi_parse_reply(const char *body, size_t len, int want, skapi_reply_t *r, char *err, size_t errlen);
/* The DER key of a GET /v1/public-signing-key answer, appended to der. */
int skapi_parse_public_key(const char *body, size_t len, buf_t *der, char *err, size_t errlen);
/* The "message" of an error answer, printable ASCII only, truncated to fit
 * out; "(no message)" when there is none. */
void skapi_error_message(const char *body, size_t len, char *out, size_t outlen);

#endif
