/* hsm: skd's keys in a PKCS#11 token, loaded with p11-kit.
 *
 * Every function here blocks (PKCS#11 calls): call them from the worker
 * pool, never from the loop thread. They are thread-safe: each call borrows
 * a logged-in session from a pool (one session per concurrently calling
 * thread) and gives it back. Key handles are found once, at hsm_load_keys():
 * a token search per request grows slower with every object on the token.
 * Temporary keys are session objects, destroyed before a call returns, on
 * error paths too. No key material leaves the token unwrapped.
 *
 * Key hierarchy (see ../shared/spec/keys-api.md):
 *   domain key (token, AES-256, derive only)
 *     -> per tenant CMK, stored outside as the EKT (wrapped, bound to the tenant)
 *       -> per volume instance secret, stored outside as encrypted_secret
 *          (wrapped, bound to instance and volume), released re-wrapped to the
 *          caller's RSA key (wrapped_secret).
 *   signing key pair (token, EC P-384): signs every released blob. */
#ifndef SKD_HSM_H
#define SKD_HSM_H

#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"

typedef struct hsm hsm_t;

typedef enum hsm_status {
    HSM_OK = 0,
    HSM_ERR_FAILED = -1,     /* token or library failure: 500 */
    HSM_ERR_PIN = -2,        /* wrong PIN */
    HSM_ERR_BAD_BLOB = -3,   /* blob malformed, tampered or bound elsewhere */
    HSM_ERR_BAD_RSA_KEY = -4, /* caller's key unusable */
    HSM_ERR_NOT_READY = -5,  /* not logged in, or keys not loaded */
    HSM_ERR_EXISTS = -6,     /* init on a token that has skd keys */
} hsm_status_t;

/* How blobs are bound, from what the token can do (probed by hsm_init). */
typedef enum hsm_profile {
    HSM_PROFILE_KWP = 1, /* KEK derived over SHA-256(nonce, binding); AES key wrap with padding */
} hsm_profile_t;

typedef enum hsm_oaep {
    HSM_OAEP_SHA1 = 1,
    HSM_OAEP_SHA256 = 2,
} hsm_oaep_t;

#define HSM_SECRET_LEN 32

/* Loads exactly this PKCS#11 module (not every registered one) and finds the
 * token by label. */
hsm_status_t hsm_open(hsm_t **out, const char *module_path, const char *token_label, char *err, size_t err_len);
void hsm_close(hsm_t *h);

/* Logs the application into the token (user PIN). The PIN is not kept. */
hsm_status_t hsm_login(hsm_t *h, const char *pin, size_t pin_len, char *err, size_t err_len);

/* skd init: creates the domain key, the signing key pair and the record of
 * the binding profile; HSM_ERR_EXISTS if any skd object is on the token. */
hsm_status_t hsm_init(hsm_t *h, char *err, size_t err_len);

/* Finds the keys, exactly one of each (fails closed otherwise). */
hsm_status_t hsm_load_keys(hsm_t *h, char *err, size_t err_len);
hsm_profile_t hsm_profile(const hsm_t *h);
hsm_oaep_t hsm_oaep(const hsm_t *h);
const char *hsm_oaep_name(hsm_oaep_t oaep); /* "RSA-OAEP-SHA256" or "RSA-OAEP-SHA1" */

/* DER SubjectPublicKeyInfo of the signing key (loaded with the keys). */
const buf_t *hsm_public_key_der(const hsm_t *h);
/* ECDSA P-384 over SHA-256(data), canonical DER. */
hsm_status_t hsm_sign(hsm_t *h, const void *data, size_t len, buf_t *sig_der);

/* A new CMK for tenant_id, returned as its EKT. */
hsm_status_t hsm_create_ekt(hsm_t *h, const char *tenant_id, buf_t *ekt);

typedef struct hsm_binding {
    const char *tenant_id;
    const char *instance_id; /* compared lower-case */
    const char *volume_uuid; /* compared lower-case */
} hsm_binding_t;

/* A new instance secret: encrypted_secret (bound to b) and wrapped_secret
 * (RSA-OAEP to rsa_spki, DER SubjectPublicKeyInfo). */
hsm_status_t hsm_generate_secret(hsm_t *h, const buf_t *ekt, const hsm_binding_t *b, const void *rsa_spki,
                                 size_t rsa_len, buf_t *encrypted_secret, buf_t *wrapped_secret);
/* Releases the secret in encrypted_secret (bound to b) re-wrapped to rsa_spki. */
hsm_status_t hsm_decrypt_secret(hsm_t *h, const buf_t *ekt, const hsm_binding_t *b, const void *blob,
                                size_t blob_len, const void *rsa_spki, size_t rsa_len, buf_t *wrapped_secret);
/* Re-binds a secret from one binding to another (same tenant). */
hsm_status_t hsm_convert_secret(hsm_t *h, const buf_t *ekt, const hsm_binding_t *from, const hsm_binding_t *to,
                                const void *blob, size_t blob_len, buf_t *encrypted_secret);

/* Token objects (token = 1) or session objects left by this process
 * (token = 0): temporaries must never pile up. */
hsm_status_t hsm_count_objects(hsm_t *h, int token, unsigned long *count);

#endif
