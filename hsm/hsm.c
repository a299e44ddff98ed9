/* The token: module loading, sessions, login, key discovery, init, signing. */
#include "hsm_internal.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <p11-kit/p11-kit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* DER of the secp384r1 OID, as CKA_EC_PARAMS. */
static const CK_BYTE secp384r1_params[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};

const char *hsm_rv_name(CK_RV rv) {
    switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
    case CKR_WRAPPED_KEY_INVALID: return "CKR_WRAPPED_KEY_INVALID";
    case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
    case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
    case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
    case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
    case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
    case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
    default: return "CKR_GENERAL_ERROR or other";
    }
}

static hsm_status_t failp(char *err, size_t err_len, const char *what, CK_RV rv) {
    snprintf(err, err_len, "%s: %s (0x%lx)", what, hsm_rv_name(rv), (unsigned long)rv);
    return HSM_ERR_FAILED;
}

/* ---- module and token ---- */

/* The token label is blank-padded to 32 bytes in CK_TOKEN_INFO. */
static bool label_matches(const CK_UTF8CHAR label[32], const char *want) {
    size_t n = strlen(want);
    if (n > 32 || memcmp(label, want, n) != 0)
        return false;
    for (size_t i = n; i < 32; i++)
        if (label[i] != ' ')
            return false;
    return true;
}

hsm_status_t hsm_open(hsm_t **out, const char *module_path, const char *token_label, char *err, size_t err_len) {
    *out = NULL;
    hsm_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, err_len, "out of memory");
        return HSM_ERR_FAILED;
    }
    pthread_mutex_init(&h->lock, NULL);
    buf_init(&h->public_key_der, 0);
    /* Exactly this module; p11-kit's managed mode makes it safe to call from
     * several threads and initializes it. */
    h->p11 = p11_kit_module_load(module_path, 0);
    if (!h->p11) {
        snprintf(err, err_len, "cannot load PKCS#11 module %s: %s", module_path, p11_kit_message());
        goto fail;
    }
    CK_RV rv = p11_kit_module_initialize(h->p11);
    if (rv != CKR_OK) {
        snprintf(err, err_len, "cannot initialize %s: %s", module_path, p11_kit_message());
        p11_kit_module_release(h->p11);
        h->p11 = NULL;
        goto fail;
    }
    CK_ULONG nslots = 0;
    rv = h->p11->C_GetSlotList(CK_TRUE, NULL, &nslots);
    CK_SLOT_ID *slots = rv == CKR_OK && nslots ? calloc(nslots, sizeof *slots) : NULL;
    if (slots)
        rv = h->p11->C_GetSlotList(CK_TRUE, slots, &nslots);
    bool found = false;
    for (CK_ULONG i = 0; slots && rv == CKR_OK && i < nslots; i++) {
        CK_TOKEN_INFO info;
        if (h->p11->C_GetTokenInfo(slots[i], &info) != CKR_OK || !label_matches(info.label, token_label))
            continue;
        if (found) {
            snprintf(err, err_len, "two tokens are labelled \"%s\"", token_label);
            free(slots);
            goto fail;
        }
        found = true;
        h->slot = slots[i];
    }
    free(slots);
    if (!found) {
        snprintf(err, err_len, "no token labelled \"%s\" in %s", token_label, module_path);
        goto fail;
    }
    *out = h;
    return HSM_OK;
fail:
    hsm_close(h);
    return HSM_ERR_FAILED;
}

void hsm_close(hsm_t *h) {
    if (!h)
        return;
    if (h->p11) {
        h->p11->C_CloseAllSessions(h->slot);
        p11_kit_module_finalize(h->p11);
        p11_kit_module_release(h->p11);
    }
    free(h->idle);
    buf_free(&h->public_key_der);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- sessions ---- */

CK_RV hsm_session_get(hsm_t *h, CK_SESSION_HANDLE *s) {
    pthread_mutex_lock(&h->lock);
    if (h->nidle) {
        *s = h->idle[--h->nidle];
        pthread_mutex_unlock(&h->lock);
        return CKR_OK;
    }
    pthread_mutex_unlock(&h->lock);
    return h->p11->C_OpenSession(h->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s);
}

void hsm_session_put(hsm_t *h, CK_SESSION_HANDLE s) {
    pthread_mutex_lock(&h->lock);
    if (h->nidle == h->idle_cap) {
        size_t cap = h->idle_cap ? h->idle_cap * 2 : 8;
        CK_SESSION_HANDLE *grown = realloc(h->idle, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&h->lock);
            h->p11->C_CloseSession(s);
            return;
        }
        h->idle = grown;
        h->idle_cap = cap;
    }
    h->idle[h->nidle++] = s;
    pthread_mutex_unlock(&h->lock);
}

void hsm_destroy(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *obj) {
    if (*obj) {
        h->p11->C_DestroyObject(s, *obj);
        *obj = 0;
    }
}

hsm_status_t hsm_login(hsm_t *h, const char *pin, size_t pin_len, char *err, size_t err_len) {
    CK_SESSION_HANDLE s;
    CK_RV rv = hsm_session_get(h, &s);
    if (rv != CKR_OK)
        return failp(err, err_len, "C_OpenSession", rv);
    rv = h->p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, pin_len);
    hsm_session_put(h, s);
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE || rv == CKR_ARGUMENTS_BAD) {
        snprintf(err, err_len, "PIN was not accepted");
        return HSM_ERR_PIN;
    }
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
        return failp(err, err_len, "C_Login", rv);
    h->logged_in = true;
    return HSM_OK;
}

/* ---- finding objects ---- */

/* Handles of objects of class cls labelled label (at most max). */
static CK_RV find(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label, CK_OBJECT_HANDLE *found,
                  CK_ULONG max, CK_ULONG *n) {
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_RV rv = h->p11->C_FindObjectsInit(s, tmpl, 2);
    if (rv != CKR_OK)
        return rv;
    rv = h->p11->C_FindObjects(s, found, max, n);
    h->p11->C_FindObjectsFinal(s);
    return rv;
}

/* Exactly one object, or a clear reason. */
static hsm_status_t find_one(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label,
                             CK_OBJECT_HANDLE *obj, char *err, size_t err_len) {
    CK_OBJECT_HANDLE found[2];
    CK_ULONG n = 0;
    CK_RV rv = find(h, s, cls, label, found, 2, &n);
    if (rv != CKR_OK)
        return failp(err, err_len, "C_FindObjects", rv);
    if (n != 1) {
        snprintf(err, err_len, "%s \"%s\" on the token (want exactly one; run skd init on a new token)",
                 n ? "more than one" : "no", label);
        return HSM_ERR_FAILED;
    }
    *obj = found[0];
    return HSM_OK;
}

static CK_RV get_attr(hsm_t *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, buf_t *out) {
    CK_ATTRIBUTE a = {type, NULL, 0};
    CK_RV rv = h->p11->C_GetAttributeValue(s, o, &a, 1);
    if (rv != CKR_OK)
        return rv;
    if (buf_reserve(out, a.ulValueLen) != 0)
        return CKR_HOST_MEMORY;
    a.pValue = out->data + out->len;
    rv = h->p11->C_GetAttributeValue(s, o, &a, 1);
    if (rv == CKR_OK)
        out->len += a.ulValueLen;
    return rv;
}

/* CKA_EC_POINT (a DER OCTET STRING around the point) to SubjectPublicKeyInfo. */
static int ec_point_to_spki(const buf_t *point, buf_t *spki) {
    const unsigned char *p = (const unsigned char *)point->data;
    ASN1_OCTET_STRING *os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)point->len);
    if (!os)
        return -1;
    int rc = -1;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    if (bld && ctx && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "secp384r1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, ASN1_STRING_get0_data(os),
                                         (size_t)ASN1_STRING_length(os)) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1) {
        unsigned char *der = NULL;
        int len = i2d_PUBKEY(pkey, &der);
        if (len > 0 && buf_append(spki, der, (size_t)len) == 0)
            rc = 0;
        OPENSSL_free(der);
    }
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    ASN1_OCTET_STRING_free(os);
    return rc;
}

/* The recorded profile: "profile=kwp oaep=sha1". */
static int parse_config(const buf_t *v, hsm_profile_t *profile, hsm_oaep_t *oaep) {
    char text[64];
    if (v->len >= sizeof text)
        return -1;
    memcpy(text, v->data, v->len);
    text[v->len] = '\0';
    if (strstr(text, "profile=kwp"))
        *profile = HSM_PROFILE_KWP;
    else
        return -1;
    if (strstr(text, "oaep=sha256"))
        *oaep = HSM_OAEP_SHA256;
    else if (strstr(text, "oaep=sha1"))
        *oaep = HSM_OAEP_SHA1;
    else
        return -1;
    return 0;
}

/* A session for init and key loading, which need a PIN accepted first. */
static hsm_status_t logged_in_session(hsm_t *h, CK_SESSION_HANDLE *s, char *err, size_t err_len) {
    if (!h->logged_in) {
        snprintf(err, err_len, "not logged in");
        return HSM_ERR_NOT_READY;
    }
    CK_RV rv = hsm_session_get(h, s);
    return rv == CKR_OK ? HSM_OK : failp(err, err_len, "C_OpenSession", rv);
}

hsm_status_t hsm_load_keys(hsm_t *h, char *err, size_t err_len) {
    CK_SESSION_HANDLE s;
    CK_RV rv;
    hsm_status_t ready = logged_in_session(h, &s, err, err_len);
    if (ready != HSM_OK)
        return ready;
    CK_OBJECT_HANDLE config = 0, pub = 0;
    buf_t point, value;
    buf_init(&point, 0);
    buf_init(&value, 0);
    hsm_status_t st = find_one(h, s, CKO_SECRET_KEY, HSM_LABEL_DOMAIN, &h->domain_key, err, err_len);
    if (st == HSM_OK)
        st = find_one(h, s, CKO_PRIVATE_KEY, HSM_LABEL_SIGNING, &h->signing_key, err, err_len);
    if (st == HSM_OK)
        st = find_one(h, s, CKO_PUBLIC_KEY, HSM_LABEL_SIGNING, &pub, err, err_len);
    if (st == HSM_OK)
        st = find_one(h, s, CKO_DATA, HSM_LABEL_CONFIG, &config, err, err_len);
    if (st == HSM_OK && (rv = get_attr(h, s, config, CKA_VALUE, &value)) != CKR_OK)
        st = failp(err, err_len, "reading the binding profile", rv);
    if (st == HSM_OK && parse_config(&value, &h->profile, &h->oaep) != 0) {
        snprintf(err, err_len, "unknown binding profile recorded on the token");
        st = HSM_ERR_FAILED;
    }
    if (st == HSM_OK && (rv = get_attr(h, s, pub, CKA_EC_POINT, &point)) != CKR_OK)
        st = failp(err, err_len, "reading the signing public key", rv);
    h->public_key_der.len = 0;
    if (st == HSM_OK && ec_point_to_spki(&point, &h->public_key_der) != 0) {
        snprintf(err, err_len, "the signing public key is not a P-384 point");
        st = HSM_ERR_FAILED;
    }
    hsm_session_put(h, s);
    buf_free(&point);
    buf_free(&value);
    h->keys_loaded = st == HSM_OK;
    return st;
}

hsm_profile_t hsm_profile(const hsm_t *h) {
    return h->profile;
}

hsm_oaep_t hsm_oaep(const hsm_t *h) {
    return h->oaep;
}

const char *hsm_oaep_name(hsm_oaep_t oaep) {
    return oaep == HSM_OAEP_SHA256 ? "RSA-OAEP-SHA256" : "RSA-OAEP-SHA1";
}

const buf_t *hsm_public_key_der(const hsm_t *h) {
    return &h->public_key_der;
}

/* ---- signing ---- */

hsm_status_t hsm_sign(hsm_t *h, const void *data, size_t len, buf_t *sig_der) {
    if (!h->keys_loaded)
        return HSM_ERR_NOT_READY;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(data, len, digest);
    CK_SESSION_HANDLE s;
    if (hsm_session_get(h, &s) != CKR_OK)
        return HSM_ERR_FAILED;
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    CK_BYTE raw[96]; /* r || s, 48 bytes each for P-384 */
    CK_ULONG raw_len = sizeof raw;
    CK_RV rv = h->p11->C_SignInit(s, &mech, h->signing_key);
    if (rv == CKR_OK)
        rv = h->p11->C_Sign(s, digest, sizeof digest, raw, &raw_len);
    hsm_session_put(h, s);
    if (rv != CKR_OK || raw_len != sizeof raw)
        return HSM_ERR_FAILED;
    /* DER with minimal INTEGERs: OpenSSL's encoder strips leading zeros (the
     * original service kept them and 1 in 128 signatures failed to verify). */
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 48, NULL), *sv = BN_bin2bn(raw + 48, 48, NULL);
    hsm_status_t st = HSM_ERR_FAILED;
    if (sig && r && sv && ECDSA_SIG_set0(sig, r, sv) == 1) {
        r = sv = NULL; /* owned by sig */
        unsigned char *der = NULL;
        int n = i2d_ECDSA_SIG(sig, &der);
        if (n > 0 && buf_append(sig_der, der, (size_t)n) == 0)
            st = HSM_OK;
        OPENSSL_free(der);
    }
    BN_free(r);
    BN_free(sv);
    ECDSA_SIG_free(sig);
    return st;
}

/* ---- RSA wrapping keys ---- */

hsm_status_t hsm_import_rsa(hsm_t *h, CK_SESSION_HANDLE s, const void *spki, size_t len, CK_OBJECT_HANDLE *key) {
    const unsigned char *p = spki;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)len);
    hsm_status_t st = HSM_ERR_BAD_RSA_KEY;
    BIGNUM *n = NULL, *e = NULL;
    if (!pkey || p != (const unsigned char *)spki + len || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
        goto done;
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < 3072 || bits > 8192)
        goto done;
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1 || !BN_is_word(e, 65537))
        goto done;
    unsigned char modulus[1024], exponent[3] = {0x01, 0x00, 0x01};
    int mod_len = BN_bn2bin(n, modulus);
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_KEY_TYPE type = CKK_RSA;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},     {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_TOKEN, &no, sizeof no},       {CKA_WRAP, &yes, sizeof yes},
        {CKA_ENCRYPT, &no, sizeof no},     {CKA_VERIFY, &no, sizeof no},
        {CKA_MODULUS, modulus, (CK_ULONG)mod_len}, {CKA_PUBLIC_EXPONENT, exponent, sizeof exponent},
    };
    st = h->p11->C_CreateObject(s, tmpl, sizeof tmpl / sizeof tmpl[0], key) == CKR_OK ? HSM_OK : HSM_ERR_FAILED;
done:
    BN_free(n);
    BN_free(e);
    EVP_PKEY_free(pkey);
    return st;
}

CK_RV hsm_wrap_oaep(hsm_t *h, CK_SESSION_HANDLE s, hsm_oaep_t oaep, CK_OBJECT_HANDLE rsa, CK_OBJECT_HANDLE key,
                    buf_t *out) {
    CK_RSA_PKCS_OAEP_PARAMS params = {
        .hashAlg = oaep == HSM_OAEP_SHA256 ? CKM_SHA256 : CKM_SHA_1,
        .mgf = oaep == HSM_OAEP_SHA256 ? CKG_MGF1_SHA256 : CKG_MGF1_SHA1,
        .source = CKZ_DATA_SPECIFIED,
    };
    CK_MECHANISM mech = {CKM_RSA_PKCS_OAEP, &params, sizeof params};
    CK_ULONG len = 0;
    CK_RV rv = h->p11->C_WrapKey(s, &mech, rsa, key, NULL, &len);
    if (rv != CKR_OK)
        return rv;
    if (buf_reserve(out, len) != 0)
        return CKR_HOST_MEMORY;
    rv = h->p11->C_WrapKey(s, &mech, rsa, key, (CK_BYTE_PTR)out->data + out->len, &len);
    if (rv == CKR_OK)
        out->len += len;
    return rv;
}

/* ---- init ---- */

/* Which OAEP hash the token wraps with: a real test wrap with a throwaway key. */
static hsm_status_t probe_oaep(hsm_t *h, CK_SESSION_HANDLE s, hsm_oaep_t *oaep, char *err, size_t err_len) {
    EVP_PKEY *rsa = EVP_RSA_gen(3072);
    unsigned char *spki = NULL;
    int spki_len = rsa ? i2d_PUBKEY(rsa, &spki) : -1;
    CK_OBJECT_HANDLE pub = 0, secret = 0;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    CK_ULONG value_len = HSM_SECRET_LEN;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},           {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_VALUE_LEN, &value_len, sizeof value_len}, {CKA_TOKEN, &no, sizeof no},
        {CKA_SENSITIVE, &yes, sizeof yes},       {CKA_EXTRACTABLE, &yes, sizeof yes},
    };
    CK_MECHANISM gen = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    hsm_status_t st = HSM_ERR_FAILED;
    if (spki_len <= 0 || hsm_import_rsa(h, s, spki, (size_t)spki_len, &pub) != HSM_OK ||
        h->p11->C_GenerateKey(s, &gen, tmpl, sizeof tmpl / sizeof tmpl[0], &secret) != CKR_OK) {
        snprintf(err, err_len, "cannot probe RSA-OAEP wrapping");
        goto done;
    }
    buf_t out;
    buf_init(&out, 0);
    if (hsm_wrap_oaep(h, s, HSM_OAEP_SHA256, pub, secret, &out) == CKR_OK) {
        *oaep = HSM_OAEP_SHA256;
        st = HSM_OK;
    } else if (hsm_wrap_oaep(h, s, HSM_OAEP_SHA1, pub, secret, &out) == CKR_OK) {
        *oaep = HSM_OAEP_SHA1;
        st = HSM_OK;
    } else {
        snprintf(err, err_len, "the token wraps with neither RSA-OAEP SHA-256 nor SHA-1");
    }
    buf_free(&out);
done:
    hsm_destroy(h, s, &pub);
    hsm_destroy(h, s, &secret);
    OPENSSL_free(spki);
    EVP_PKEY_free(rsa);
    return st;
}

hsm_status_t hsm_init(hsm_t *h, char *err, size_t err_len) {
    CK_SESSION_HANDLE s;
    CK_RV rv;
    hsm_status_t ready = logged_in_session(h, &s, err, err_len);
    if (ready != HSM_OK)
        return ready;
    hsm_status_t st = HSM_OK;
    /* Refuse to run twice: any skd object means the token is in use. */
    static const struct {
        CK_OBJECT_CLASS cls;
        const char *label;
    } ours[] = {{CKO_SECRET_KEY, HSM_LABEL_DOMAIN},
                {CKO_PRIVATE_KEY, HSM_LABEL_SIGNING},
                {CKO_PUBLIC_KEY, HSM_LABEL_SIGNING},
                {CKO_DATA, HSM_LABEL_CONFIG}};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        CK_OBJECT_HANDLE o;
        CK_ULONG n = 0;
        if ((rv = find(h, s, ours[i].cls, ours[i].label, &o, 1, &n)) != CKR_OK) {
            st = failp(err, err_len, "C_FindObjects", rv);
            goto done;
        }
        if (n) {
            snprintf(err, err_len, "the token already holds skd keys (\"%s\"); init runs once per token",
                     ours[i].label);
            st = HSM_ERR_EXISTS;
            goto done;
        }
    }
    CK_MECHANISM_INFO info;
    if (h->p11->C_GetMechanismInfo(h->slot, CKM_AES_KEY_WRAP_PAD, &info) != CKR_OK ||
        !(info.flags & CKF_WRAP) || !(info.flags & CKF_UNWRAP) ||
        h->p11->C_GetMechanismInfo(h->slot, CKM_AES_ECB_ENCRYPT_DATA, &info) != CKR_OK ||
        !(info.flags & CKF_DERIVE)) {
        snprintf(err, err_len, "the token offers no usable binding profile (needs AES key wrap with padding "
                               "and AES-ECB key derivation)");
        st = HSM_ERR_FAILED;
        goto done;
    }
    hsm_oaep_t oaep;
    if ((st = probe_oaep(h, s, &oaep, err, err_len)) != HSM_OK)
        goto done;

    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_OBJECT_CLASS secret_cls = CKO_SECRET_KEY, pub_cls = CKO_PUBLIC_KEY, priv_cls = CKO_PRIVATE_KEY,
                    data_cls = CKO_DATA;
    CK_KEY_TYPE aes = CKK_AES, ec = CKK_EC;
    CK_ULONG aes_len = 32;
    CK_ATTRIBUTE domain_tmpl[] = {
        {CKA_CLASS, &secret_cls, sizeof secret_cls},
        {CKA_KEY_TYPE, &aes, sizeof aes},
        {CKA_VALUE_LEN, &aes_len, sizeof aes_len},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_DERIVE, &yes, sizeof yes},
        {CKA_ENCRYPT, &no, sizeof no},
        {CKA_DECRYPT, &no, sizeof no},
        {CKA_WRAP, &no, sizeof no},
        {CKA_UNWRAP, &no, sizeof no},
        {CKA_LABEL, HSM_LABEL_DOMAIN, strlen(HSM_LABEL_DOMAIN)},
    };
    CK_ATTRIBUTE pub_tmpl[] = {
        {CKA_CLASS, &pub_cls, sizeof pub_cls},
        {CKA_KEY_TYPE, &ec, sizeof ec},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_VERIFY, &yes, sizeof yes},
        {CKA_EC_PARAMS, (void *)secp384r1_params, sizeof secp384r1_params},
        {CKA_LABEL, HSM_LABEL_SIGNING, strlen(HSM_LABEL_SIGNING)},
    };
    CK_ATTRIBUTE priv_tmpl[] = {
        {CKA_CLASS, &priv_cls, sizeof priv_cls},
        {CKA_KEY_TYPE, &ec, sizeof ec},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},
        {CKA_LABEL, HSM_LABEL_SIGNING, strlen(HSM_LABEL_SIGNING)},
    };
    char config[64];
    int config_len = snprintf(config, sizeof config, "profile=kwp oaep=%s", oaep == HSM_OAEP_SHA256 ? "sha256" : "sha1");
    CK_ATTRIBUTE data_tmpl[] = {
        {CKA_CLASS, &data_cls, sizeof data_cls},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_LABEL, HSM_LABEL_CONFIG, strlen(HSM_LABEL_CONFIG)},
        {CKA_VALUE, config, (CK_ULONG)config_len},
    };
    CK_MECHANISM aes_gen = {CKM_AES_KEY_GEN, NULL, 0}, ec_gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_OBJECT_HANDLE domain = 0, pub = 0, priv = 0, data = 0;
    if ((rv = h->p11->C_GenerateKey(s, &aes_gen, domain_tmpl, sizeof domain_tmpl / sizeof domain_tmpl[0], &domain)) !=
            CKR_OK ||
        (rv = h->p11->C_GenerateKeyPair(s, &ec_gen, pub_tmpl, sizeof pub_tmpl / sizeof pub_tmpl[0], priv_tmpl,
                                        sizeof priv_tmpl / sizeof priv_tmpl[0], &pub, &priv)) != CKR_OK ||
        (rv = h->p11->C_CreateObject(s, data_tmpl, sizeof data_tmpl / sizeof data_tmpl[0], &data)) != CKR_OK) {
        st = failp(err, err_len, "creating the keys", rv);
        /* Leave nothing half made: init can then be run again. */
        hsm_destroy(h, s, &domain);
        hsm_destroy(h, s, &pub);
        hsm_destroy(h, s, &priv);
        hsm_destroy(h, s, &data);
    }
done:
    hsm_session_put(h, s);
    return st;
}

hsm_status_t hsm_count_objects(hsm_t *h, int token, unsigned long *count) {
    CK_SESSION_HANDLE s;
    if (hsm_session_get(h, &s) != CKR_OK)
        return HSM_ERR_FAILED;
    CK_BBOOL want = token ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {{CKA_TOKEN, &want, sizeof want}};
    CK_OBJECT_HANDLE found[64];
    CK_ULONG n = 0;
    *count = 0;
    CK_RV rv = h->p11->C_FindObjectsInit(s, tmpl, 1);
    while (rv == CKR_OK && (rv = h->p11->C_FindObjects(s, found, 64, &n)) == CKR_OK && n)
        *count += n;
    h->p11->C_FindObjectsFinal(s);
    hsm_session_put(h, s);
    return rv == CKR_OK ? HSM_OK : HSM_ERR_FAILED;
}
