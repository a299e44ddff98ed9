/* cert_state: the files of sk cert's state directory.
 *
 *   installation-key.pem  the installation's P-256 key (0600)
 *   installation.json     {"server", "id", "name", "label"} from registration
 *   account-key.pem       the ACME account key (0600), written before the account exists
 *   acme.json             {"directory", "ca_bundle", "account", "order"}
 *   order-key.pem         the certificate key of the order in progress (0600)
 *   cert.pem, key.pem     the chain and its key (0600)
 *
 * Every file is written atomically: a temporary file, fsync, rename, fsync
 * of the directory. */
#ifndef SK_CERT_STATE_H
#define SK_CERT_STATE_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

#include "../common/buf.h"

int cert_write_atomic(const char *dir, const char *name, const void *data, size_t len, int mode);
/* Reads DIR/name whole (at most 1 MiB) into out; -1 if missing or too large. */
int cert_read_file(const char *dir, const char *name, buf_t *out);
/* A private key from DIR/name, or NULL. */
EVP_PKEY *cert_read_key(const char *dir, const char *name);
int cert_write_key(const char *dir, const char *name, EVP_PKEY *key);
/* DIR/name as a JSON object (NULL if missing or not an object). */
json_t *cert_read_json(const char *dir, const char *name);
int cert_write_json(const char *dir, const char *name, const json_t *obj);

#endif
