/* crypto: the agent's OpenSSL work. The pinned API signing key (EC P-384),
 * signature checks, the one-time RSA key of one operation and the OAEP
 * unwrap of the released secret into locked memory. */
#ifndef SK_CRYPTO_H
#define SK_CRYPTO_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "secmem.h"

#define SKCRYPTO_FPR_LEN 64 /* hex digits of a SHA-256 fingerprint */

/* The PEM public key at path; NULL (err set) unless it is EC P-384. */
EVP_PKEY *skcrypto_load_api_key(const char *path, char *err, size_t errlen);
/* Appends the DER SubjectPublicKeyInfo of key's public part to der. */
int skcrypto_spki(EVP_PKEY *key, buf_t *der);
/* hex: SHA-256 of the DER SubjectPublicKeyInfo, lower-case, NUL-terminated. */
int skcrypto_fingerprint(EVP_PKEY *key, char hex[SKCRYPTO_FPR_LEN + 1]);
/* 1 when sig is a valid DER ECDSA signature by pub over SHA-256(blob), else 0. */
int skcrypto_verify(EVP_PKEY *pub, const uint8_t *blob, size_t blob_len, const uint8_t *sig, size_t sig_len);
/* A fresh RSA key pair (exponent 65537), in memory only; NULL on failure. */
EVP_PKEY *skcrypto_rsa_new(unsigned bits);
/* Decrypts in with rsa's private key, OAEP and MGF1 with the hash that
 * algorithm names ("RSA-OAEP-SHA256", "RSA-OAEP-SHA1"; NULL: SHA-256, as the
 * original API), empty label, into out (allocated, locked). -1 on any
 * failure, out then empty. */
int skcrypto_oaep_decrypt(EVP_PKEY *rsa, const char *algorithm, const uint8_t *in, size_t in_len, secmem_t *out);
/* Fills out with a random version 4 UUID in lower case (36 chars + NUL). */
int skcrypto_uuid4(char out[37]);

#endif
