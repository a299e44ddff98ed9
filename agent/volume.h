/* volume: an sk volume on disk, through libcryptsetup and libblkid.
 *
 * A LUKS2 container on the whole device (or a regular file standing for
 * one) with pinned parameters: aes-xts-plain64 with a random 512-bit volume
 * key, one keyslot (0) whose passphrase is the 32-byte instance secret,
 * argon2id with a fixed, bounded cost (the passphrase is a full-entropy
 * secret: the PBKDF adds no strength, so its cost only has to keep boots
 * fast), and the sk token (token.h). The secret is handed to libcryptsetup
 * from locked memory, never through a file or a command line. */
#ifndef SK_VOLUME_H
#define SK_VOLUME_H

#include <stddef.h>
#include <stdint.h>

#include "secmem.h"

#define SKVOL_CIPHER "aes"
#define SKVOL_CIPHER_MODE "xts-plain64"
#define SKVOL_KEY_BYTES 64
#define SKVOL_KEYSLOT 0
#define SKVOL_MIN_SIZE (20u << 20) /* the 16 MiB LUKS2 header and some data */

typedef struct skvol_pbkdf {
    uint32_t memory_kib; /* argon2id memory cost */
    uint32_t iterations;
    uint32_t parallel;
} skvol_pbkdf_t;

/* The pinned cost, or the one SK_PBKDF_MEMORY_KIB (32 .. 1048576, for
 * tests) asks for; -1 if that variable is malformed. */
int skvol_pbkdf_default(skvol_pbkdf_t *p);

/* Once per process: no external token plugins; libcryptsetup's messages
 * not printed but kept (the last error ends up in the err of the call). */
void skvol_setup(void);
/* Whether device-mapper can be used here (root, /dev/mapper/control opens). */
int skvol_dm_available(void);

enum { SKVOL_EMPTY = 0, SKVOL_HAS_DATA = 1, SKVOL_BUSY = 2 };
/* Looks at path before prep-dev: SKVOL_BUSY (a block device opened
 * exclusively elsewhere: mounted, mapped), SKVOL_HAS_DATA (a signature
 * libblkid knows, a partition, or a non-zero byte in the first or last
 * MiB; what says which) or SKVOL_EMPTY; its size in *size. -1 with what set
 * on error. */
int skvol_probe(const char *path, uint64_t *size, char *what, size_t whatlen);
/* Erases every signature libblkid finds and zeroes the first and last MiB. */
int skvol_wipe(const char *path, char *err, size_t errlen);
/* Makes the LUKS2 container with uuid, keyslot SKVOL_KEYSLOT opened by
 * secret, and token_json as its token. */
int skvol_format(const char *path, const char *uuid, const skvol_pbkdf_t *pbkdf, const secmem_t *secret,
                 const char *token_json, char *err, size_t errlen);

typedef struct skvol skvol_t;
enum { SKVOL_NOT_LUKS2 = 1, SKVOL_NO_TOKEN = 2, SKVOL_MANY_TOKENS = 3 };
/* Loads the LUKS2 header of path: 0, SKVOL_NOT_LUKS2, or -1 (err set). */
int skvol_open(const char *path, skvol_t **out, char *err, size_t errlen);
void skvol_close(skvol_t *v);
const char *skvol_uuid(skvol_t *v);
/* The sk token's JSON (owned by v) and id: 0, SKVOL_NO_TOKEN or SKVOL_MANY_TOKENS. */
int skvol_token(skvol_t *v, const char **json, int *id);
/* Replaces token id with json (one header update). */
int skvol_set_token(skvol_t *v, int id, const char *json, char *err, size_t errlen);
/* Whether secret opens keyslot, without activating anything (no dm needed). */
int skvol_test_key(skvol_t *v, int keyslot, const secmem_t *secret, char *err, size_t errlen);
/* Opens keyslot with secret and maps the volume as /dev/mapper/name. */
int skvol_activate(skvol_t *v, int keyslot, const char *name, const secmem_t *secret, char *err, size_t errlen);
/* Whether /dev/mapper/name exists. */
int skvol_active(const char *name);
int skvol_deactivate(const char *name, char *err, size_t errlen);

#endif
