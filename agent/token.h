/* token: the LUKS2 token of an sk volume, sans I/O (JSON text in and out).
 *
 * The token is JSON in the LUKS2 header (as Clevis and systemd-cryptenroll
 * keep theirs), readable with `cryptsetup luksDump --dump-json-metadata`:
 *
 *   {"type": "sk", "keyslots": ["0"], "sk_version": 1,
 *    "volume_uuid": "<the LUKS UUID>", "instance_id": "i-...", "tenant": "vpc-...",
 *    "api_key_fingerprint": "<SHA-256 of the API key's DER SubjectPublicKeyInfo, hex>",
 *    "encrypted_secret": "<base64>", "encrypted_secret_signature": "<base64>",
 *    "history": [{"encrypted_secret": ..., "encrypted_secret_signature": ...,
 *                 "instance_id": "<its owner>", "replaced_at": "<UTC time>"}, ...]}
 *
 * Only the blob and its signature are protected (by the API's signature and
 * the key service's binding); the other fields are unsigned hints that let
 * the agent refuse early with a clear message. The header is hostile input:
 * every field is checked and bounded. "tenant" may be absent. */
#ifndef SK_TOKEN_H
#define SK_TOKEN_H

#include <stddef.h>

#include "../common/buf.h"
#include "crypto.h"
#include "ids.h"

#define SKTOKEN_TYPE "sk"
#define SKTOKEN_VERSION 1
#define SKTOKEN_BLOB_MAX 1024 /* decoded encrypted_secret (skd's are under 100 bytes) */
#define SKTOKEN_SIG_MAX 160   /* decoded signature (DER P-384: at most 104) */
#define SKTOKEN_HISTORY_MAX 16
#define SKTOKEN_TIME_MAX 31

typedef struct sktoken_blob {
    buf_t blob; /* decoded encrypted_secret */
    buf_t sig;  /* decoded encrypted_secret_signature */
    char instance_id[SKID_INSTANCE_MAX + 1];
    char replaced_at[SKTOKEN_TIME_MAX + 1]; /* history entries only */
} sktoken_blob_t;

typedef struct sktoken {
    int keyslot;
    char volume_uuid[SKID_UUID_LEN + 1];
    char tenant[SKID_TENANT_MAX + 1]; /* "" when unknown */
    char api_key_fingerprint[SKCRYPTO_FPR_LEN + 1];
    sktoken_blob_t current; /* instance_id: the owner */
    size_t nhistory;        /* oldest first */
    sktoken_blob_t history[SKTOKEN_HISTORY_MAX];
} sktoken_t;

/* An empty token (buffers bounded, ready for sktoken_set_current or parse). */
void sktoken_init(sktoken_t *t);
void sktoken_free(sktoken_t *t);
/* Copies blob and sig into t->current; -1 if either is empty or too long. */
int sktoken_set_current(sktoken_t *t, const void *blob, size_t blob_len, const void *sig, size_t sig_len);
/* The token as JSON (malloc'd, free() it); NULL if a field is invalid. */
char *sktoken_encode(const sktoken_t *t);
/* Parses json (len bytes) into t (initialized by the call); -1 with err set
 * on anything malformed, unknown type or version, or out of bounds. */
int sktoken_parse(const char *json, size_t len, sktoken_t *t, char *err, size_t errlen);
/* takeown: the current blob goes to the history (stamped now, a UTC time),
 * the new one becomes current, owned by owner. When the history is full its
 * oldest entry is dropped: returns 1 then, 0 otherwise, -1 on bad input
 * (t unchanged) or when memory runs out. */
int sktoken_replace(sktoken_t *t, const buf_t *blob, const buf_t *sig, const char *owner, const char *now);

#endif
