/* jwk: an installation's public key as a JSON Web Key (RFC 7517/7518):
 * EC P-256 only, checked to be a point of the curve, with its RFC 7638
 * thumbprint (the key's unique name in the store). */
#ifndef SKD_JWK_H
#define SKD_JWK_H

#include <jansson.h>
#include <openssl/evp.h>

#define JWK_TEXT_SIZE 160      /* the canonical text below, NUL included */
#define JWK_THUMBPRINT_SIZE 44 /* base64url of SHA-256, NUL included */

typedef struct jwk {
    EVP_PKEY *pkey;
    /* {"crv":"P-256","kty":"EC","x":"...","y":"..."}: what the thumbprint
     * hashes, and what the store keeps. */
    char text[JWK_TEXT_SIZE];
    char thumbprint[JWK_THUMBPRINT_SIZE];
} jwk_t;

/* Parses a JWK object: kty "EC", crv "P-256", x and y (32 bytes each,
 * canonical base64url); alg ("ES256"), use ("sig") and kid (a string) are
 * allowed; anything else is refused, a private key ("d") above all. 0, or
 * -1 with a static reason in *why. */
int jwk_parse(jwk_t *out, const json_t *obj, const char **why);
/* The same from JSON text (e.g. read back from the store). */
int jwk_parse_text(jwk_t *out, const char *text, const char **why);
void jwk_free(jwk_t *k);

#endif
