/* cert_state: the files of sk cert's state directory.
 *
 *   installation-key.pem  the installation's P-256 key (0600)
 *   installation.json     {"server", "id", "name", "label"} from registration
 *   account-key.pem       the ACME account key (0600), written before the account exists
 *   acme.json             {"directory", "ca_bundle", "account", "order"}
 *   order-key.pem         the certificate key of the order in progress (0600)
 *   live -> gen.N         the current certificate generation (a symlink)
 *   gen.N/cert.pem, gen.N/key.pem  the chain and its key (0600)
 *   cert.pem -> live/cert.pem, key.pem -> live/key.pem
 *
 * Every file is written atomically: a temporary file, fsync, rename, fsync
 * of the directory. A new certificate and its key go into a new generation
 * directory first; one rename of the "live" symlink then switches both, so
 * a crash leaves either the old pair or the new pair, never a new key next
 * to an old certificate (an unfinished generation is never pointed to, and
 * is removed by the next write). */
#ifndef SK_CERT_STATE_H
#define SK_CERT_STATE_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

#include "../common/buf.h"

int cert_write_atomic(const char *dir, const char *name, const void *data, size_t len, int mode);
/* Renames DIR/from to DIR/to and makes that durable (fsync of DIR). */
int cert_rename(const char *dir, const char *from, const char *to);
/* Reads DIR/name whole (at most 1 MiB) into out; -1 if missing or too large. */
int cert_read_file(const char *dir, const char *name, buf_t *out);
/* A private key from DIR/name, or NULL. */
EVP_PKEY *cert_read_key(const char *dir, const char *name);
int cert_write_key(const char *dir, const char *name, EVP_PKEY *key);
/* Writes the chain and its key as the new live generation (above). */
int cert_write_pair(const char *dir, const char *chain, size_t chain_len, EVP_PKEY *key);
/* DIR/name as a JSON object (NULL if missing or not an object). */
json_t *cert_read_json(const char *dir, const char *name);
int cert_write_json(const char *dir, const char *name, const json_t *obj);

#endif
