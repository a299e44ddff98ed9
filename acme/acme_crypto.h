/* acme_crypto: what the ACME client signs and makes with OpenSSL: base64url,
 * P-256 keys (PEM in and out), the JWK of a key and its RFC 7638
 * thumbprint, JWS ES256 in the flattened JSON serialization with ACME's
 * protected header (RFC 8555 section 6.2; skd's installations API takes the
 * same), the dns-01 value of a token (RFC 8555 section 8.4) and CSRs.
 * No I/O; every function returns 0 or -1. */
#ifndef SKD_ACME_CRYPTO_H
#define SKD_ACME_CRYPTO_H

#include <openssl/evp.h>
#include <stddef.h>

#include "../common/buf.h"

#define ACME_THUMBPRINT_SIZE 44 /* base64url of SHA-256, NUL included */
#define ACME_DNS01_SIZE 44      /* the TXT value, NUL included */

/* Every function below that appends text to a buf_t leaves it
 * NUL-terminated (the NUL not counted in len). */
int acme_buf_terminate(buf_t *b);

/* Appends the base64url encoding (no padding) of data to out. */
int acme_b64url(const void *data, size_t len, buf_t *out);

/* A new ECDSA P-256 key (NULL on failure). Slow-ish: not on a busy loop. */
EVP_PKEY *acme_key_new_p256(void);
/* An RSA key of bits (2048..8192), the optional certificate key type. */
EVP_PKEY *acme_key_new_rsa(int bits);
/* Reads a private key from PEM text; NULL if it is not one. */
EVP_PKEY *acme_key_from_pem(const char *pem, size_t len);
/* Appends the unencrypted PKCS#8 PEM of the private key to out. */
int acme_key_to_pem(EVP_PKEY *key, buf_t *out);

/* The public JWK of a P-256 key in RFC 7638's canonical form
 * {"crv":"P-256","kty":"EC","x":"...","y":"..."}. */
int acme_jwk(EVP_PKEY *key, buf_t *out);
/* base64url(SHA-256(canonical JWK)) into out[ACME_THUMBPRINT_SIZE]. */
int acme_jwk_thumbprint(EVP_PKEY *key, char out[ACME_THUMBPRINT_SIZE]);
/* The dns-01 TXT value: base64url(SHA-256(token "." thumbprint)). */
int acme_dns01_value(const char *token, const char *thumbprint, char out[ACME_DNS01_SIZE]);

/* Appends a flattened JWS to out: protected {"alg":"ES256","jwk"|"kid",
 * "nonce","url"}, payload the JSON text given ("" for POST-as-GET), and the
 * raw r || s signature. kid NULL: the key's jwk goes in the header; nonce
 * NULL: no nonce (the inner JWS of a keyChange). */
int acme_jws(EVP_PKEY *key, const char *kid, const char *nonce, const char *url, const char *payload, buf_t *out);

/* Appends the decoded bytes of base64url text (no padding) to out; -1 if
 * it is not base64url. */
int acme_b64url_decode(const char *text, size_t len, buf_t *out);

/* Appends the flattened JWS of an external account binding (RFC 8555
 * 7.3.4): protected {"alg":"HS256","kid","url"}, payload the account key's
 * JWK, HMAC-SHA256 with mac_key. */
int acme_eab_jws(EVP_PKEY *account_key, const char *kid, const unsigned char *mac_key, size_t mac_len,
                 const char *url, buf_t *out);

/* The first certificate of a PEM chain: base64url of its DER (revokeCert),
 * and its RFC 9773 renewal information id base64url(authority key id) "."
 * base64url(serial). */
int acme_cert_der_b64url(const char *pem, size_t len, buf_t *out);
int acme_ari_cert_id(const char *pem, size_t len, buf_t *out);

/* Appends base64url(DER) of a CSR for names (the first also the subject's
 * CN), signed by key with SHA-256. */
int acme_csr(EVP_PKEY *key, const char *const *names, size_t nnames, buf_t *out);

#endif
