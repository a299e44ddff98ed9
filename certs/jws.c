#include "jws.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <string.h>

#include "b64url.h"

static jws_status_t fail(const char **why, jws_status_t st, const char *reason) {
    *why = reason;
    return st;
}

/* Copies a string member into out; -1 if absent, not a string, empty, too
 * long or holding a NUL (jansson refuses \u0000 anyway). */
static int copy_member(const json_t *obj, const char *name, char *out, size_t out_len) {
    const json_t *v = json_object_get(obj, name);
    if (!json_is_string(v))
        return -1;
    size_t len = json_string_length(v);
    if (len == 0 || len >= out_len || memchr(json_string_value(v), '\0', len))
        return -1;
    memcpy(out, json_string_value(v), len + 1);
    return 0;
}

static jws_status_t parse_protected(jws_t *j, const char *text, size_t len, const char **why) {
    if (len > b64url_encoded_len(JWS_PROTECTED_MAX))
        return fail(why, JWS_TOO_BIG, "The protected header is too long");
    buf_t raw;
    buf_init(&raw, JWS_PROTECTED_MAX);
    if (b64url_decode(text, len, &raw) != 0) {
        buf_free(&raw);
        return fail(why, JWS_MALFORMED, "The protected header is not base64url (without padding)");
    }
    json_error_t jerr;
    json_t *h = json_loadb(raw.data, raw.len, JSON_REJECT_DUPLICATES, &jerr);
    buf_free(&raw);
    jws_status_t st = JWS_MALFORMED;
    const char *key;
    json_t *value;
    if (!json_is_object(h)) {
        *why = "The protected header is not a JSON object (or has duplicate members)";
        goto done;
    }
    json_object_foreach(h, key, value) {
        if (strcmp(key, "alg") && strcmp(key, "nonce") && strcmp(key, "url") && strcmp(key, "kid") &&
            strcmp(key, "jwk")) {
            *why = "The protected header has an unknown member (only alg, nonce, url, kid or jwk)";
            goto done;
        }
    }
    const char *alg = json_string_value(json_object_get(h, "alg"));
    if (!alg) {
        *why = "The protected header needs alg";
        goto done;
    }
    if (strcmp(alg, "ES256") != 0) {
        st = fail(why, JWS_BAD_ALG, "The alg must be ES256");
        goto done;
    }
    if (copy_member(h, "nonce", j->nonce, sizeof j->nonce) != 0 ||
        copy_member(h, "url", j->url, sizeof j->url) != 0) {
        *why = "The protected header needs nonce and url (strings, bounded)";
        goto done;
    }
    json_t *jwk = json_object_get(h, "jwk");
    bool has_kid = json_object_get(h, "kid") != NULL;
    if ((jwk != NULL) == has_kid) {
        *why = "The protected header needs exactly one of kid and jwk";
        goto done;
    }
    if (has_kid && copy_member(h, "kid", j->kid, sizeof j->kid) != 0) {
        *why = "The kid must be a string (bounded)";
        goto done;
    }
    if (jwk) {
        if (jwk_parse(&j->jwk, jwk, why) != 0) {
            st = JWS_BAD_KEY;
            goto done;
        }
        j->has_jwk = true;
    }
    st = JWS_OK;
done:
    json_decref(h);
    return st;
}

jws_status_t jws_parse(jws_t *j, const char *body, size_t len, const char **why) {
    memset(j, 0, sizeof *j);
    buf_init(&j->signing_input, JWS_MAX_BYTES);
    buf_init(&j->payload, JWS_PAYLOAD_MAX);
    if (len > JWS_MAX_BYTES)
        return fail(why, JWS_TOO_BIG, "The request body is too long");
    json_error_t jerr;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    jws_status_t st = JWS_MALFORMED;
    json_t *prot = json_object_get(o, "protected"), *payload = json_object_get(o, "payload"),
           *sig = json_object_get(o, "signature");
    if (!json_is_object(o) || json_object_size(o) != 3 || !json_is_string(prot) || !json_is_string(payload) ||
        !json_is_string(sig)) {
        *why = "The body must be a flattened JWS: exactly protected, payload and signature (strings)";
        goto done;
    }
    const char *prot_text = json_string_value(prot), *payload_text = json_string_value(payload);
    size_t prot_len = json_string_length(prot), payload_len = json_string_length(payload);
    if ((st = parse_protected(j, prot_text, prot_len, why)) != JWS_OK)
        goto done;
    if (payload_len > b64url_encoded_len(JWS_PAYLOAD_MAX)) {
        st = fail(why, JWS_TOO_BIG, "The payload is too long");
        goto done;
    }
    st = JWS_MALFORMED;
    if (b64url_decode(payload_text, payload_len, &j->payload) != 0) {
        *why = "The payload is not base64url (without padding)";
        goto done;
    }
    buf_t raw;
    buf_init(&raw, JWS_SIGNATURE_BYTES);
    int sig_ok = b64url_decode(json_string_value(sig), json_string_length(sig), &raw) == 0 &&
                 raw.len == JWS_SIGNATURE_BYTES;
    if (sig_ok)
        memcpy(j->signature, raw.data, JWS_SIGNATURE_BYTES);
    buf_free(&raw);
    if (!sig_ok) {
        *why = "The signature must be 64 bytes (r || s) in base64url";
        goto done;
    }
    if (buf_append(&j->signing_input, prot_text, prot_len) != 0 || buf_append(&j->signing_input, ".", 1) != 0 ||
        buf_append(&j->signing_input, payload_text, payload_len) != 0) {
        st = fail(why, JWS_TOO_BIG, "The request body is too long");
        goto done;
    }
    st = JWS_OK;
done:
    json_decref(o);
    return st;
}

/* ECDSA verification handles only public values (key, message, signature):
 * it has no secret to leak through timing. */
int jws_verify(const jws_t *j, EVP_PKEY *key) {
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(j->signature, 32, NULL), *s = BN_bin2bn(j->signature + 32, 32, NULL);
    unsigned char *der = NULL;
    int der_len = -1, ok = 0;
    if (sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL; /* owned by sig */
        der_len = i2d_ECDSA_SIG(sig, &der);
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (der_len > 0 && ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1)
        ok = EVP_DigestVerify(ctx, der, (size_t)der_len, (const unsigned char *)j->signing_input.data,
                              j->signing_input.len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return ok ? 0 : -1;
}

void jws_free(jws_t *j) {
    jwk_free(&j->jwk);
    buf_free(&j->signing_input);
    buf_free(&j->payload);
}

bool jws_url_is(const jws_t *j, const char *scheme, const char *host, const char *target) {
    size_t ls = strlen(scheme), lh = strlen(host);
    return strncmp(j->url, scheme, ls) == 0 && strncmp(j->url + ls, "://", 3) == 0 &&
           strncmp(j->url + ls + 3, host, lh) == 0 && strcmp(j->url + ls + 3 + lh, target) == 0;
}

bool jws_kid_is(const jws_t *j, const char *id) {
    if (strcmp(j->kid, id) == 0)
        return true;
    if (strncmp(j->kid, "https://", 8) != 0 && strncmp(j->kid, "http://", 7) != 0)
        return false;
    static const char tail[] = "/installations/";
    size_t lk = strlen(j->kid), li = strlen(id), lt = sizeof tail - 1;
    return lk > li + lt && strcmp(j->kid + lk - li, id) == 0 && strncmp(j->kid + lk - li - lt, tail, lt) == 0;
}

const char *jws_status_type(jws_status_t st) {
    switch (st) {
    case JWS_OK: return "ok";
    case JWS_BAD_ALG: return "badSignatureAlgorithm";
    case JWS_BAD_KEY: return "badPublicKey";
    case JWS_TOO_BIG: return "tooLarge";
    case JWS_MALFORMED: break;
    }
    return "malformed";
}
