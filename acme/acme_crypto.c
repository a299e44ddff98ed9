#include "acme_crypto.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int acme_buf_terminate(buf_t *b) {
    if (buf_append(b, "", 1) < 0)
        return -1;
    b->len--;
    return 0;
}

int acme_b64url(const void *data, size_t len, buf_t *out) {
    const unsigned char *p = data;
    if (buf_reserve(out, (len + 2) / 3 * 4 + 1) < 0)
        return -1;
    char *o = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = B64URL[v >> 18];
        *o++ = B64URL[(v >> 12) & 63];
        *o++ = B64URL[(v >> 6) & 63];
        *o++ = B64URL[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        *o++ = B64URL[v >> 18];
        *o++ = B64URL[(v >> 12) & 63];
    } else if (len - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        *o++ = B64URL[v >> 18];
        *o++ = B64URL[(v >> 12) & 63];
        *o++ = B64URL[(v >> 6) & 63];
    }
    *o = '\0';
    out->len = (size_t)(o - out->data);
    return 0;
}

/* base64url into a fixed array (NUL-terminated). */
static int b64url_fixed(const void *data, size_t len, char *out, size_t out_size) {
    buf_t b;
    buf_init(&b, 0);
    int rc = acme_b64url(data, len, &b) == 0 && b.len < out_size ? 0 : -1;
    if (rc == 0)
        memcpy(out, b.data, b.len + 1);
    buf_free(&b);
    return rc;
}

EVP_PKEY *acme_key_new_p256(void) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

EVP_PKEY *acme_key_new_rsa(int bits) {
    if (bits < 2048 || bits > 8192)
        return NULL;
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

EVP_PKEY *acme_key_from_pem(const char *pem, size_t len) {
    if (len > 64 * 1024)
        return NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return key;
}

int acme_key_to_pem(EVP_PKEY *key, buf_t *out) {
    BIO *bio = BIO_new(BIO_s_mem());
    char *p;
    int rc = -1;
    if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) {
        long n = BIO_get_mem_data(bio, &p);
        rc = n > 0 && buf_append(out, p, (size_t)n) == 0 ? acme_buf_terminate(out) : -1;
    }
    BIO_free(bio);
    return rc;
}

/* The affine coordinates of a P-256 key, 32 bytes each. */
static int p256_xy(EVP_PKEY *key, unsigned char x[32], unsigned char y[32]) {
    unsigned char point[65];
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point, &len) != 1 ||
        len != 65 || point[0] != 0x04)
        return -1;
    memcpy(x, point + 1, 32);
    memcpy(y, point + 33, 32);
    return 0;
}

int acme_jwk(EVP_PKEY *key, buf_t *out) {
    unsigned char x[32], y[32];
    char xs[44], ys[44];
    if (!EVP_PKEY_is_a(key, "EC") || p256_xy(key, x, y) < 0 || b64url_fixed(x, 32, xs, sizeof xs) < 0 ||
        b64url_fixed(y, 32, ys, sizeof ys) < 0)
        return -1;
    if (buf_printf(out, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", xs, ys) < 0)
        return -1;
    return acme_buf_terminate(out);
}

int acme_jwk_thumbprint(EVP_PKEY *key, char out[ACME_THUMBPRINT_SIZE]) {
    buf_t jwk;
    buf_init(&jwk, 0);
    unsigned char md[SHA256_DIGEST_LENGTH];
    int rc = acme_jwk(key, &jwk) == 0 && SHA256((const unsigned char *)jwk.data, jwk.len, md)
                 ? b64url_fixed(md, sizeof md, out, ACME_THUMBPRINT_SIZE)
                 : -1;
    buf_free(&jwk);
    return rc;
}

int acme_dns01_value(const char *token, const char *thumbprint, char out[ACME_DNS01_SIZE]) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    buf_t ka; /* the key authorization */
    buf_init(&ka, 0);
    int rc = buf_printf(&ka, "%s.%s", token, thumbprint) == 0 && SHA256((const unsigned char *)ka.data, ka.len, md)
                 ? b64url_fixed(md, sizeof md, out, ACME_DNS01_SIZE)
                 : -1;
    buf_free(&ka);
    return rc;
}

/* ES256 over data: the raw 64-byte r || s. */
static int es256_sign(EVP_PKEY *key, const char *data, size_t len, unsigned char sig[64]) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t der_len = sizeof der;
    int rc = -1;
    if (ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)data, len) == 1) {
        const unsigned char *p = der;
        ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
        if (s && BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32) == 32 &&
            BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32) == 32)
            rc = 0;
        ECDSA_SIG_free(s);
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}

int acme_jws(EVP_PKEY *key, const char *kid, const char *nonce, const char *url, const char *payload, buf_t *out) {
    json_t *hdr = json_pack("{s:s, s:s}", "alg", "ES256", "url", url);
    if (hdr && nonce && json_object_set_new(hdr, "nonce", json_string(nonce)) < 0) {
        json_decref(hdr);
        hdr = NULL;
    }
    buf_t jwk, input;
    buf_init(&jwk, 0);
    buf_init(&input, 0);
    char *hdr_text = NULL;
    unsigned char sig[64];
    int rc = -1;
    if (!hdr)
        goto done;
    if (kid) {
        if (json_object_set_new(hdr, "kid", json_string(kid)) < 0)
            goto done;
    } else {
        json_t *j = NULL;
        if (acme_jwk(key, &jwk) < 0 || !(j = json_loadb(jwk.data, jwk.len, 0, NULL)) ||
            json_object_set_new(hdr, "jwk", j) < 0)
            goto done;
    }
    hdr_text = json_dumps(hdr, JSON_COMPACT);
    if (!hdr_text || acme_b64url(hdr_text, strlen(hdr_text), &input) < 0)
        goto done;
    size_t protected_len = input.len;
    if (buf_append(&input, ".", 1) < 0 || acme_b64url(payload, strlen(payload), &input) < 0 ||
        es256_sign(key, input.data, input.len, sig) < 0)
        goto done;
    if (buf_printf(out, "{\"protected\":\"%.*s\",\"payload\":\"%s\",\"signature\":\"", (int)protected_len,
                   input.data, input.data + protected_len + 1) < 0 ||
        acme_b64url(sig, sizeof sig, out) < 0 || buf_append_str(out, "\"}") < 0 || acme_buf_terminate(out) < 0)
        goto done;
    rc = 0;
done:
    free(hdr_text);
    json_decref(hdr);
    buf_free(&jwk);
    buf_free(&input);
    return rc;
}

int acme_csr(EVP_PKEY *key, const char *const *names, size_t nnames, buf_t *out) {
    X509_REQ *req = X509_REQ_new();
    X509_NAME *subject = X509_NAME_new();
    GENERAL_NAMES *san = GENERAL_NAMES_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    unsigned char *der = NULL;
    int rc = -1;
    if (!req || !subject || !san || !exts || nnames == 0 || strlen(names[0]) > 64)
        goto done;
    if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, (const unsigned char *)names[0], -1, -1, 0) != 1 ||
        X509_REQ_set_subject_name(req, subject) != 1 || X509_REQ_set_version(req, 0) != 1 ||
        X509_REQ_set_pubkey(req, key) != 1)
        goto done;
    for (size_t i = 0; i < nnames; i++) {
        GENERAL_NAME *gn = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        if (!gn || !s || ASN1_STRING_set(s, names[i], -1) != 1) {
            GENERAL_NAME_free(gn);
            ASN1_IA5STRING_free(s);
            goto done;
        }
        GENERAL_NAME_set0_value(gn, GEN_DNS, s);
        if (!sk_GENERAL_NAME_push(san, gn)) {
            GENERAL_NAME_free(gn);
            goto done;
        }
    }
    X509_EXTENSION *ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, san);
    if (!ext || !sk_X509_EXTENSION_push(exts, ext)) {
        X509_EXTENSION_free(ext);
        goto done;
    }
    if (X509_REQ_add_extensions(req, exts) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0)
        goto done;
    int len = i2d_X509_REQ(req, &der);
    if (len > 0)
        rc = acme_b64url(der, (size_t)len, out);
done:
    OPENSSL_free(der);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(san);
    X509_NAME_free(subject);
    X509_REQ_free(req);
    return rc;
}

int acme_b64url_decode(const char *text, size_t len, buf_t *out) {
    unsigned v = 0, bits = 0;
    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        const char *p = text[i] ? memchr(B64URL, text[i], 64) : NULL;
        if (!p)
            return -1;
        v = (v << 6) | (unsigned)(p - B64URL);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            unsigned char c = (unsigned char)(v >> bits);
            if (buf_append(out, &c, 1) < 0)
                return -1;
        }
        v &= (1u << bits) - 1;
    }
    return v == 0 ? 0 : -1; /* the leftover bits of canonical text are zero */
}

int acme_eab_jws(EVP_PKEY *account_key, const char *kid, const unsigned char *mac_key, size_t mac_len,
                 const char *url, buf_t *out) {
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", kid, "url", url);
    char *hdr_text = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
    buf_t jwk, input;
    buf_init(&jwk, 0);
    buf_init(&input, 0);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_out = 0;
    int rc = -1;
    if (!hdr_text || mac_len == 0 || mac_len > 1024 || acme_jwk(account_key, &jwk) < 0 ||
        acme_b64url(hdr_text, strlen(hdr_text), &input) < 0)
        goto done;
    size_t protected_len = input.len;
    if (buf_append(&input, ".", 1) < 0 || acme_b64url(jwk.data, jwk.len, &input) < 0 ||
        !HMAC(EVP_sha256(), mac_key, (int)mac_len, (const unsigned char *)input.data, input.len, mac, &mac_out))
        goto done;
    if (buf_printf(out, "{\"protected\":\"%.*s\",\"payload\":\"%s\",\"signature\":\"", (int)protected_len,
                   input.data, input.data + protected_len + 1) < 0 ||
        acme_b64url(mac, mac_out, out) < 0 || buf_append_str(out, "\"}") < 0 || acme_buf_terminate(out) < 0)
        goto done;
    rc = 0;
done:
    free(hdr_text);
    json_decref(hdr);
    buf_free(&jwk);
    buf_free(&input);
    return rc;
}

static X509 *first_cert(const char *pem, size_t len) {
    if (!pem || len == 0 || len > 1024 * 1024)
        return NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return x;
}

int acme_cert_der_b64url(const char *pem, size_t len, buf_t *out) {
    X509 *x = first_cert(pem, len);
    unsigned char *der = NULL;
    int n = x ? i2d_X509(x, &der) : -1;
    int rc = n > 0 && acme_b64url(der, (size_t)n, out) == 0 ? 0 : -1;
    OPENSSL_free(der);
    X509_free(x);
    return rc;
}

int acme_ari_cert_id(const char *pem, size_t len, buf_t *out) {
    X509 *x = first_cert(pem, len);
    const ASN1_OCTET_STRING *akid = x ? X509_get0_authority_key_id(x) : NULL;
    BIGNUM *bn = x ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL) : NULL;
    unsigned char serial[64];
    int rc = -1;
    /* The serial's DER content octets: big-endian, a leading zero if the top bit is set. */
    int n = bn && !BN_is_negative(bn) && BN_num_bytes(bn) < (int)sizeof serial ? BN_bn2bin(bn, serial + 1) : -1;
    if (akid && n > 0) {
        unsigned char *p = serial + 1;
        if (p[0] & 0x80) {
            p--;
            *p = 0;
            n++;
        }
        if (acme_b64url(ASN1_STRING_get0_data(akid), (size_t)ASN1_STRING_length(akid), out) == 0 &&
            buf_append(out, ".", 1) == 0 && acme_b64url(p, (size_t)n, out) == 0)
            rc = 0;
    }
    BN_free(bn);
    X509_free(x);
    return rc;
}
