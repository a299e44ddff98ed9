/* EKTs and instance secrets: every step inside the token.
 *
 * Blob (EKT and encrypted_secret), version 1:
 *   version (1) | profile (1 = kwp) | nonce (32) | wrapped key (AES key wrap with padding, RFC 5649)
 * The key-encryption key is a one-time session key derived in the token from
 * the parent key (domain key for an EKT, CMK for a secret) with
 * CKM_AES_ECB_ENCRYPT_DATA over SHA-256("skd-kek-v1" | nonce | binding), the
 * binding being length-prefixed fields (kind, tenant[, instance, volume]).
 * Another binding derives another KEK, and the unwrap fails its integrity
 * check: a blob only opens for the context it was made for. */
#include <ctype.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>

#include "hsm_internal.h"

#define BLOB_VERSION 1
#define NONCE_LEN 32
#define BLOB_HEADER (2 + NONCE_LEN)
#define BLOB_MAX 256

/* ---- binding and KEK ---- */

#define BINDING_MAX (10 + NONCE_LEN + 4 * (2 + 255))

static int add_field(unsigned char *buf, size_t *len, const char *field, bool lower) {
    size_t n = strlen(field);
    if (n > 255)
        return -1;
    buf[(*len)++] = 0;
    buf[(*len)++] = (unsigned char)n;
    for (size_t i = 0; i < n; i++)
        buf[(*len)++] = (unsigned char)(lower ? tolower((unsigned char)field[i]) : field[i]);
    return 0;
}

/* SHA-256("skd-kek-v1" | nonce | kind | tenant [| instance | volume]). */
static int binding_digest(const unsigned char *nonce, const char *kind, const hsm_binding_t *b,
                          unsigned char out[SHA256_DIGEST_LENGTH]) {
    unsigned char buf[BINDING_MAX];
    size_t len = 0;
    memcpy(buf, "skd-kek-v1", 10);
    len = 10;
    memcpy(buf + len, nonce, NONCE_LEN);
    len += NONCE_LEN;
    int rc = add_field(buf, &len, kind, false) | add_field(buf, &len, b->tenant_id, false);
    if (b->instance_id)
        rc |= add_field(buf, &len, b->instance_id, true) | add_field(buf, &len, b->volume_uuid, true);
    SHA256(buf, len, out);
    return rc;
}

static CK_RV derive_kek(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE parent, const unsigned char *nonce,
                        const char *kind, const hsm_binding_t *b, CK_OBJECT_HANDLE *kek) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    if (binding_digest(nonce, kind, b, digest) != 0)
        return CKR_ARGUMENTS_BAD;
    CK_KEY_DERIVATION_STRING_DATA data = {digest, sizeof digest};
    CK_MECHANISM mech = {CKM_AES_ECB_ENCRYPT_DATA, &data, sizeof data};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},     {CKA_KEY_TYPE, &aes, sizeof aes},
        {CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &no, sizeof no},
        {CKA_SENSITIVE, &yes, sizeof yes}, {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_WRAP, &yes, sizeof yes},      {CKA_UNWRAP, &yes, sizeof yes},
    };
    return h->p11->C_DeriveKey(s, &mech, parent, tmpl, sizeof tmpl / sizeof tmpl[0], kek);
}

/* ---- blobs ---- */

/* Wraps key under a fresh KEK derived from parent; writes the whole blob. */
static CK_RV wrap_blob(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE parent, const char *kind,
                       const hsm_binding_t *b, CK_OBJECT_HANDLE key, buf_t *blob) {
    unsigned char header[BLOB_HEADER] = {BLOB_VERSION, HSM_PROFILE_KWP};
    CK_RV rv = h->p11->C_GenerateRandom(s, header + 2, NONCE_LEN);
    if (rv != CKR_OK)
        return rv;
    CK_OBJECT_HANDLE kek = 0;
    rv = derive_kek(h, s, parent, header + 2, kind, b, &kek);
    if (rv != CKR_OK)
        return rv;
    CK_MECHANISM mech = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    unsigned char wrapped[BLOB_MAX - BLOB_HEADER];
    CK_ULONG len = sizeof wrapped;
    rv = h->p11->C_WrapKey(s, &mech, kek, key, wrapped, &len);
    hsm_destroy(h, s, &kek);
    if (rv == CKR_OK && (buf_append(blob, header, sizeof header) != 0 || buf_append(blob, wrapped, len) != 0))
        rv = CKR_HOST_MEMORY;
    return rv;
}

/* Unwraps a blob into a session key with the given template. Returns
 * HSM_ERR_BAD_BLOB for anything that is not a blob for this binding. */
static hsm_status_t unwrap_blob(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE parent, const char *kind,
                                const hsm_binding_t *b, const void *blob, size_t len, CK_ATTRIBUTE *tmpl,
                                CK_ULONG ntmpl, CK_OBJECT_HANDLE *key) {
    const unsigned char *p = blob;
    if (len <= BLOB_HEADER || len > BLOB_MAX || p[0] != BLOB_VERSION || p[1] != HSM_PROFILE_KWP)
        return HSM_ERR_BAD_BLOB;
    CK_OBJECT_HANDLE kek = 0;
    if (derive_kek(h, s, parent, p + 2, kind, b, &kek) != CKR_OK)
        return HSM_ERR_FAILED;
    CK_MECHANISM mech = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    CK_RV rv = h->p11->C_UnwrapKey(s, &mech, kek, (CK_BYTE_PTR)p + BLOB_HEADER, len - BLOB_HEADER, tmpl, ntmpl,
                                   key);
    hsm_destroy(h, s, &kek);
    if (rv == CKR_OK)
        return HSM_OK;
    /* An integrity failure: tampered, or made for another context. */
    if (rv == CKR_WRAPPED_KEY_INVALID || rv == CKR_WRAPPED_KEY_LEN_RANGE || rv == CKR_ENCRYPTED_DATA_INVALID ||
        rv == CKR_ENCRYPTED_DATA_LEN_RANGE || rv == CKR_TEMPLATE_INCONSISTENT || rv == CKR_GENERAL_ERROR)
        return HSM_ERR_BAD_BLOB;
    return HSM_ERR_FAILED;
}

/* ---- templates ---- */

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static const CK_OBJECT_CLASS secret_class = CKO_SECRET_KEY;
static const CK_KEY_TYPE aes_type = CKK_AES, generic_type = CKK_GENERIC_SECRET;
static const CK_ULONG key_len = 32;

#define ATTR(type, value) {type, (void *)&(value), sizeof(value)}

/* A CMK as unwrapped for use: derives instance KEKs, never leaves again. */
static CK_ATTRIBUTE cmk_use_tmpl[] = {
    ATTR(CKA_CLASS, secret_class), ATTR(CKA_KEY_TYPE, aes_type), ATTR(CKA_TOKEN, no),
    ATTR(CKA_SENSITIVE, yes),      ATTR(CKA_EXTRACTABLE, no),   ATTR(CKA_DERIVE, yes),
};

/* An instance secret in the token: leaves only wrapped. */
static CK_ATTRIBUTE secret_tmpl[] = {
    ATTR(CKA_CLASS, secret_class), ATTR(CKA_KEY_TYPE, generic_type), ATTR(CKA_TOKEN, no),
    ATTR(CKA_SENSITIVE, yes),      ATTR(CKA_EXTRACTABLE, yes),
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static hsm_status_t check_ready(hsm_t *h, CK_SESSION_HANDLE *s) {
    if (!h->keys_loaded)
        return HSM_ERR_NOT_READY;
    return hsm_session_get(h, s) == CKR_OK ? HSM_OK : HSM_ERR_FAILED;
}

/* ---- operations ---- */

hsm_status_t hsm_create_ekt(hsm_t *h, const char *tenant_id, buf_t *ekt) {
    CK_SESSION_HANDLE s;
    hsm_status_t st = check_ready(h, &s);
    if (st != HSM_OK)
        return st;
    /* Extractable once, to be wrapped into the EKT; every later copy is not. */
    CK_ATTRIBUTE gen_tmpl[] = {
        ATTR(CKA_CLASS, secret_class), ATTR(CKA_KEY_TYPE, aes_type), ATTR(CKA_VALUE_LEN, key_len),
        ATTR(CKA_TOKEN, no),           ATTR(CKA_SENSITIVE, yes),     ATTR(CKA_EXTRACTABLE, yes),
        ATTR(CKA_DERIVE, yes),
    };
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE cmk = 0;
    hsm_binding_t b = {.tenant_id = tenant_id};
    CK_RV rv = h->p11->C_GenerateKey(s, &gen, gen_tmpl, COUNT(gen_tmpl), &cmk);
    if (rv == CKR_OK)
        rv = wrap_blob(h, s, h->domain_key, "ekt", &b, cmk, ekt);
    hsm_destroy(h, s, &cmk);
    hsm_session_put(h, s);
    return rv == CKR_OK ? HSM_OK : HSM_ERR_FAILED;
}

static hsm_status_t unwrap_cmk(hsm_t *h, CK_SESSION_HANDLE s, const buf_t *ekt, const char *tenant_id,
                               CK_OBJECT_HANDLE *cmk) {
    hsm_binding_t b = {.tenant_id = tenant_id};
    hsm_status_t st = unwrap_blob(h, s, h->domain_key, "ekt", &b, ekt->data, ekt->len, cmk_use_tmpl,
                                  COUNT(cmk_use_tmpl), cmk);
    return st == HSM_ERR_BAD_BLOB ? HSM_ERR_FAILED : st; /* a bad EKT is our fault, not the caller's */
}

static hsm_status_t wrap_to_rsa(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE secret, const void *rsa_spki,
                                size_t rsa_len, buf_t *wrapped) {
    CK_OBJECT_HANDLE rsa = 0;
    hsm_status_t st = hsm_import_rsa(h, s, rsa_spki, rsa_len, &rsa);
    if (st == HSM_OK && hsm_wrap_oaep(h, s, h->oaep, rsa, secret, wrapped) != CKR_OK)
        st = HSM_ERR_FAILED;
    hsm_destroy(h, s, &rsa);
    return st;
}

hsm_status_t hsm_generate_secret(hsm_t *h, const buf_t *ekt, const hsm_binding_t *b, const void *rsa_spki,
                                 size_t rsa_len, buf_t *encrypted_secret, buf_t *wrapped_secret) {
    CK_SESSION_HANDLE s;
    hsm_status_t st = check_ready(h, &s);
    if (st != HSM_OK)
        return st;
    CK_OBJECT_HANDLE cmk = 0, secret = 0;
    CK_ATTRIBUTE gen_tmpl[] = {
        ATTR(CKA_CLASS, secret_class), ATTR(CKA_KEY_TYPE, generic_type), ATTR(CKA_VALUE_LEN, key_len),
        ATTR(CKA_TOKEN, no),           ATTR(CKA_SENSITIVE, yes),         ATTR(CKA_EXTRACTABLE, yes),
    };
    CK_MECHANISM gen = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    st = unwrap_cmk(h, s, ekt, b->tenant_id, &cmk);
    if (st == HSM_OK && h->p11->C_GenerateKey(s, &gen, gen_tmpl, COUNT(gen_tmpl), &secret) != CKR_OK)
        st = HSM_ERR_FAILED;
    /* The caller's key first: a bad one costs no blob. */
    if (st == HSM_OK)
        st = wrap_to_rsa(h, s, secret, rsa_spki, rsa_len, wrapped_secret);
    if (st == HSM_OK && wrap_blob(h, s, cmk, "secret", b, secret, encrypted_secret) != CKR_OK)
        st = HSM_ERR_FAILED;
    hsm_destroy(h, s, &secret);
    hsm_destroy(h, s, &cmk);
    hsm_session_put(h, s);
    return st;
}

/* The CMK of the tenant and the secret in blob (bound to b), as session
 * objects the caller destroys. */
static hsm_status_t open_secret(hsm_t *h, CK_SESSION_HANDLE s, const buf_t *ekt, const hsm_binding_t *b,
                                const void *blob, size_t blob_len, CK_OBJECT_HANDLE *cmk, CK_OBJECT_HANDLE *secret) {
    hsm_status_t st = unwrap_cmk(h, s, ekt, b->tenant_id, cmk);
    if (st == HSM_OK)
        st = unwrap_blob(h, s, *cmk, "secret", b, blob, blob_len, secret_tmpl, COUNT(secret_tmpl), secret);
    return st;
}

hsm_status_t hsm_decrypt_secret(hsm_t *h, const buf_t *ekt, const hsm_binding_t *b, const void *blob,
                                size_t blob_len, const void *rsa_spki, size_t rsa_len, buf_t *wrapped_secret) {
    CK_SESSION_HANDLE s;
    hsm_status_t st = check_ready(h, &s);
    if (st != HSM_OK)
        return st;
    CK_OBJECT_HANDLE cmk = 0, secret = 0;
    st = open_secret(h, s, ekt, b, blob, blob_len, &cmk, &secret);
    if (st == HSM_OK)
        st = wrap_to_rsa(h, s, secret, rsa_spki, rsa_len, wrapped_secret);
    hsm_destroy(h, s, &secret);
    hsm_destroy(h, s, &cmk);
    hsm_session_put(h, s);
    return st;
}

hsm_status_t hsm_convert_secret(hsm_t *h, const buf_t *ekt, const hsm_binding_t *from, const hsm_binding_t *to,
                                const void *blob, size_t blob_len, buf_t *encrypted_secret) {
    if (strcmp(from->tenant_id, to->tenant_id) != 0)
        return HSM_ERR_BAD_BLOB;
    CK_SESSION_HANDLE s;
    hsm_status_t st = check_ready(h, &s);
    if (st != HSM_OK)
        return st;
    CK_OBJECT_HANDLE cmk = 0, secret = 0;
    st = open_secret(h, s, ekt, from, blob, blob_len, &cmk, &secret);
    if (st == HSM_OK && wrap_blob(h, s, cmk, "secret", to, secret, encrypted_secret) != CKR_OK)
        st = HSM_ERR_FAILED;
    hsm_destroy(h, s, &secret);
    hsm_destroy(h, s, &cmk);
    hsm_session_put(h, s);
    return st;
}
