/* tls: OpenSSL 3 server contexts and a sans-IO TLS session over memory BIOs.
 *
 * The session is fed ciphertext from the socket and hands plaintext to a
 * sink; plaintext to send goes in with tls_session_send() and the ciphertext
 * comes out of tls_session_take_output(). No socket is touched here. */
#ifndef SKD_TLS_H
#define SKD_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>

#include "../common/buf.h"

/* A server context: TLS 1.2 and 1.3, ALPN "http/1.1", no renegotiation.
 * Returns NULL and a one-line reason in err on failure. */
SSL_CTX *tls_context_load(const char *cert_file, const char *key_file, char *err, size_t err_len);
/* The same with a fresh self-signed P-256 certificate for CN: what a TLS
 * listener serves until ACME ([acme]) gets the first real certificate. */
SSL_CTX *tls_context_self_signed(const char *cn, char *err, size_t err_len);

typedef struct tls_session {
    SSL *ssl;
    BIO *network_in;  /* ciphertext from the peer, read by OpenSSL */
    BIO *network_out; /* ciphertext OpenSSL wrote for the peer */
} tls_session_t;

typedef void (*tls_plaintext_sink)(void *arg, const char *data, size_t len);

typedef enum tls_status {
    TLS_OK = 0,
    TLS_CLOSED = 1, /* the peer sent close_notify */
    TLS_FAILED = -1, /* handshake failure or a protocol error: close */
} tls_status_t;

/* The session keeps its own reference to ctx: a reload does not affect it. */
int tls_session_init(tls_session_t *s, SSL_CTX *ctx);
void tls_session_free(tls_session_t *s);
tls_status_t tls_session_recv(tls_session_t *s, const char *data, size_t len, tls_plaintext_sink sink, void *arg);
tls_status_t tls_session_send(tls_session_t *s, const char *data, size_t len);
/* Queues close_notify. */
void tls_session_shutdown(tls_session_t *s);
/* Appends the ciphertext waiting to be sent to out. */
int tls_session_take_output(tls_session_t *s, buf_t *out);

#endif
