#include "crypto.h"

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

EVP_PKEY *skcrypto_load_api_key(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read the pinned API key %s: %m", path);
        return NULL;
    }
    EVP_PKEY *key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    char group[32] = "";
    if (!key || !EVP_PKEY_is_a(key, "EC") ||
        !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) ||
        strcmp(group, "secp384r1") != 0) {
        snprintf(err, errlen, "%s is not a PEM EC P-384 public key", path);
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

int skcrypto_spki(EVP_PKEY *key, buf_t *der) {
    int n = i2d_PUBKEY(key, NULL);
    if (n <= 0 || buf_reserve(der, (size_t)n) != 0)
        return -1;
    unsigned char *p = (unsigned char *)der->data + der->len;
    if (i2d_PUBKEY(key, &p) != n)
        return -1;
    der->len += (size_t)n;
    return 0;
}

int skcrypto_fingerprint(EVP_PKEY *key, char hex[SKCRYPTO_FPR_LEN + 1]) {
    buf_t der;
    buf_init(&der, 0);
    unsigned char md[32];
    unsigned int mdlen = 0;
    int rc = -1;
    if (skcrypto_spki(key, &der) == 0 && EVP_Digest(der.data, der.len, md, &mdlen, EVP_sha256(), NULL) &&
        mdlen == sizeof md) {
        for (size_t i = 0; i < sizeof md; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        rc = 0;
    }
    buf_free(&der);
    return rc;
}

int skcrypto_verify(EVP_PKEY *pub, const uint8_t *blob, size_t blob_len, const uint8_t *sig, size_t sig_len) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && sig_len > 0 && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(ctx, sig, sig_len, blob, blob_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

EVP_PKEY *skcrypto_rsa_new(unsigned bits) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

int skcrypto_oaep_decrypt(EVP_PKEY *rsa, const char *algorithm, const uint8_t *in, size_t in_len, secmem_t *out) {
    const char *md;
    if (!algorithm || strcmp(algorithm, "RSA-OAEP-SHA256") == 0)
        md = "SHA256";
    else if (strcmp(algorithm, "RSA-OAEP-SHA1") == 0)
        md = "SHA1";
    else
        return -1;
    int rc = -1;
    size_t max = 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, rsa, NULL);
    if (!ctx || EVP_PKEY_decrypt_init(ctx) != 1 || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, md, NULL) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, md, NULL) != 1 || EVP_PKEY_decrypt(ctx, NULL, &max, in, in_len) != 1)
        goto done;
    if (secmem_alloc(out, max) != 0)
        goto done;
    size_t n = out->cap;
    if (EVP_PKEY_decrypt(ctx, out->data, &n, in, in_len) != 1) {
        secmem_free(out);
        goto done;
    }
    out->len = n;
    rc = 0;
done:
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

int skcrypto_uuid4(char out[37]) {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
             b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}
