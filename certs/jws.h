/* jws: the signed requests of the installations API: JSON Web Signatures
 * (RFC 7515) in the flattened JSON serialization, ES256 only, with ACME's
 * protected header (RFC 8555 section 6.2):
 *
 *   {"protected": b64url({"alg":"ES256","nonce":...,"url":...,"kid":...}),
 *    "payload":   b64url(JSON or empty),
 *    "signature": b64url(r || s, 64 bytes)}
 *
 * with either "kid" (an installation) or "jwk" (its key, to register it).
 * Parsing is strict and bounded: duplicate members, unknown members,
 * unprotected headers, padding or non-canonical base64url are refused.
 * jws_parse does no crypto beyond checking the jwk; jws_verify checks the
 * signature. Sans-IO: no allocation outlives jws_free. */
#ifndef SKD_JWS_H
#define SKD_JWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "jwk.h"

#define JWS_MAX_BYTES 8192      /* a whole request body */
#define JWS_PROTECTED_MAX 2048  /* the decoded protected header */
#define JWS_PAYLOAD_MAX 4096    /* the decoded payload */
#define JWS_NONCE_MAX 64        /* header strings, NUL included */
#define JWS_URL_MAX 512
#define JWS_KID_MAX 512
#define JWS_SIGNATURE_BYTES 64  /* ES256: r || s */

typedef enum jws_status {
    JWS_OK = 0,
    JWS_MALFORMED, /* not a well-formed JWS of this API */
    JWS_BAD_ALG,   /* alg is not ES256 */
    JWS_BAD_KEY,   /* the jwk is not an acceptable P-256 public key */
    JWS_TOO_BIG,   /* a size limit above */
} jws_status_t;

typedef struct jws {
    char nonce[JWS_NONCE_MAX];
    char url[JWS_URL_MAX];
    char kid[JWS_KID_MAX]; /* "" when the header has a jwk */
    bool has_jwk;
    jwk_t jwk;             /* the header's key when has_jwk */
    buf_t signing_input;   /* protected "." payload, as sent */
    buf_t payload;         /* decoded; may be empty */
    uint8_t signature[JWS_SIGNATURE_BYTES];
} jws_t;

/* Parses body into j (which owns memory afterwards even on failure: call
 * jws_free). On failure *why is a static reason for the client. */
jws_status_t jws_parse(jws_t *j, const char *body, size_t len, const char **why);
/* 0 if j's signature is key's over the signing input, -1 otherwise. */
int jws_verify(const jws_t *j, EVP_PKEY *key);
void jws_free(jws_t *j);
/* Whether the header's url is exactly scheme "://" host target, the URL the
 * request was sent to. */
bool jws_url_is(const jws_t *j, const char *scheme, const char *host, const char *target);
/* Whether the header's kid names installation id: the id itself, or its
 * URL (an http(s) URL whose path ends in "/installations/<id>"). */
bool jws_kid_is(const jws_t *j, const char *id);
/* The status's short name for API errors: "malformed", "badSignatureAlgorithm", ... */
const char *jws_status_type(jws_status_t st);

#endif
