#include "tls.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

static const unsigned char alpn_http11[] = "\x08http/1.1";

/* Selects "http/1.1" when the client offers ALPN; a client that offers only
 * other protocols (h2 alone) gets the no_application_protocol alert (RFC 7301). */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
    (void)ssl;
    (void)arg;
    unsigned char *selected;
    if (SSL_select_next_proto(&selected, outlen, alpn_http11, sizeof alpn_http11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

static void openssl_reason(char *err, size_t err_len, const char *what, const char *file) {
    unsigned long e = ERR_get_error();
    char reason[256];
    ERR_error_string_n(e, reason, sizeof reason);
    snprintf(err, err_len, "%s %s: %s", what, file, e ? reason : "unknown error");
    ERR_clear_error();
}

static SSL_CTX *context_new(char *err, size_t err_len) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        openssl_reason(err, err_len, "cannot create TLS context", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    return ctx;
}

SSL_CTX *tls_context_self_signed(const char *cn, char *err, size_t err_len) {
    SSL_CTX *ctx = context_new(err, err_len);
    EVP_PKEY *key = ctx ? EVP_EC_gen("P-256") : NULL;
    X509 *x = key ? X509_new() : NULL;
    X509_NAME *name = x ? X509_get_subject_name(x) : NULL;
    if (!name || X509_set_version(x, 2) != 1 || ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), 0) || !X509_gmtime_adj(X509_getm_notAfter(x), 86400) ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1 || X509_sign(x, key, EVP_sha256()) == 0 ||
        SSL_CTX_use_certificate(ctx, x) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
        if (ctx)
            openssl_reason(err, err_len, "cannot make a self-signed certificate for", cn);
        SSL_CTX_free(ctx);
        ctx = NULL;
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return ctx;
}

SSL_CTX *tls_context_load(const char *cert_file, const char *key_file, char *err, size_t err_len) {
    SSL_CTX *ctx = context_new(err, err_len);
    if (!ctx)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        openssl_reason(err, err_len, "cannot load certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        openssl_reason(err, err_len, "cannot load private key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        openssl_reason(err, err_len, "private key does not match certificate", cert_file);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_session_init(tls_session_t *s, SSL_CTX *ctx) {
    memset(s, 0, sizeof *s);
    s->ssl = SSL_new(ctx);
    s->network_in = BIO_new(BIO_s_mem());
    s->network_out = BIO_new(BIO_s_mem());
    if (!s->ssl || !s->network_in || !s->network_out) {
        SSL_free(s->ssl);
        BIO_free(s->network_in);
        BIO_free(s->network_out);
        memset(s, 0, sizeof *s);
        return -1;
    }
    /* An empty memory BIO means "wait for more", not end of file. */
    BIO_set_mem_eof_return(s->network_in, -1);
    BIO_set_mem_eof_return(s->network_out, -1);
    SSL_set_bio(s->ssl, s->network_in, s->network_out); /* the SSL owns both now */
    SSL_set_accept_state(s->ssl);
    return 0;
}

void tls_session_free(tls_session_t *s) {
    if (s->ssl)
        SSL_free(s->ssl);
    memset(s, 0, sizeof *s);
}

tls_status_t tls_session_recv(tls_session_t *s, const char *data, size_t len, tls_plaintext_sink sink, void *arg) {
    if (len && BIO_write(s->network_in, data, (int)len) != (int)len)
        return TLS_FAILED;
    char plain[16384];
    for (;;) {
        int n = SSL_read(s->ssl, plain, sizeof plain);
        if (n > 0) {
            sink(arg, plain, (size_t)n);
            continue;
        }
        int e = SSL_get_error(s->ssl, n);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return TLS_OK;
        if (e == SSL_ERROR_ZERO_RETURN)
            return TLS_CLOSED;
        return TLS_FAILED;
    }
}

tls_status_t tls_session_send(tls_session_t *s, const char *data, size_t len) {
    while (len > 0) {
        size_t written = 0;
        /* Writes go into a memory BIO, so they complete unless the session failed. */
        if (SSL_write_ex(s->ssl, data, len, &written) != 1) {
            ERR_clear_error();
            return TLS_FAILED;
        }
        data += written;
        len -= written;
    }
    return TLS_OK;
}

void tls_session_shutdown(tls_session_t *s) {
    if (SSL_is_init_finished(s->ssl))
        SSL_shutdown(s->ssl);
    ERR_clear_error();
}

int tls_session_take_output(tls_session_t *s, buf_t *out) {
    size_t pending = BIO_ctrl_pending(s->network_out);
    if (pending == 0)
        return 0;
    if (buf_reserve(out, pending) != 0)
        return -1;
    int n = BIO_read(s->network_out, out->data + out->len, (int)pending);
    if (n > 0)
        out->len += (size_t)n;
    return 0;
}
