#include "jwk.h"

#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "b64url.h"

#define COORD_BYTES 32

/* A coordinate: canonical base64url of exactly 32 bytes. */
static int coordinate(const json_t *obj, const char *name, uint8_t out[COORD_BYTES]) {
    const char *text = json_string_value(json_object_get(obj, name));
    if (!text)
        return -1;
    buf_t b;
    buf_init(&b, COORD_BYTES);
    int rc = b64url_decode(text, json_string_length(json_object_get(obj, name)), &b) == 0 && b.len == COORD_BYTES
                 ? 0
                 : -1;
    if (rc == 0)
        memcpy(out, b.data, COORD_BYTES);
    buf_free(&b);
    return rc;
}

/* An EVP_PKEY for the point (x, y) of P-256; NULL if it is not on the curve. */
static EVP_PKEY *p256_key(const uint8_t x[COORD_BYTES], const uint8_t y[COORD_BYTES]) {
    uint8_t point[1 + 2 * COORD_BYTES];
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, COORD_BYTES);
    memcpy(point + 1 + COORD_BYTES, y, COORD_BYTES);
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (bld && ctx && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1) {
        EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!check || EVP_PKEY_public_check(check) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(check);
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

static int fail(const char **why, const char *reason) {
    *why = reason;
    return -1;
}

int jwk_parse(jwk_t *out, const json_t *obj, const char **why) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(obj))
        return fail(why, "The jwk is not an object");
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        if (strcmp(key, "d") == 0)
            return fail(why, "The jwk holds a private key (d): never send it");
        if (strcmp(key, "kty") && strcmp(key, "crv") && strcmp(key, "x") && strcmp(key, "y") &&
            strcmp(key, "alg") && strcmp(key, "use") && strcmp(key, "kid"))
            return fail(why, "The jwk has an unknown member");
        if (!json_is_string(value))
            return fail(why, "The jwk members must be strings");
    }
    const char *kty = json_string_value(json_object_get(obj, "kty"));
    const char *crv = json_string_value(json_object_get(obj, "crv"));
    const char *alg = json_string_value(json_object_get(obj, "alg"));
    const char *use = json_string_value(json_object_get(obj, "use"));
    if (!kty || strcmp(kty, "EC") != 0 || !crv || strcmp(crv, "P-256") != 0)
        return fail(why, "The jwk must be an EC key on P-256");
    if ((alg && strcmp(alg, "ES256") != 0) || (use && strcmp(use, "sig") != 0))
        return fail(why, "The jwk alg must be ES256 and use sig");
    uint8_t x[COORD_BYTES], y[COORD_BYTES];
    if (coordinate(obj, "x", x) != 0 || coordinate(obj, "y", y) != 0)
        return fail(why, "The jwk x and y must be 32 bytes in base64url");
    char xs[44], ys[44]; /* 43 characters each */
    b64url_encode(x, sizeof x, xs, sizeof xs);
    b64url_encode(y, sizeof y, ys, sizeof ys);
    /* RFC 7638: the required members in lexicographic order, no whitespace. */
    snprintf(out->text, sizeof out->text, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", xs, ys);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)out->text, strlen(out->text), digest);
    b64url_encode(digest, sizeof digest, out->thumbprint, sizeof out->thumbprint);
    if (!(out->pkey = p256_key(x, y)))
        return fail(why, "The jwk is not a point of P-256");
    return 0;
}

int jwk_parse_text(jwk_t *out, const char *text, const char **why) {
    json_error_t err;
    json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    int rc = jwk_parse(out, obj, why);
    json_decref(obj);
    return rc;
}

void jwk_free(jwk_t *k) {
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof *k);
}
