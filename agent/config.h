/* config: the agent's configuration directory (/etc/sk by default).
 *
 *   api_url             one line: the key API's base, e.g. http://127.0.0.1:8080/v1
 *   api_public_key.pem  the pinned API signing key (EC P-384)
 *   ca.pem              optional: the CA bundle for an https api_url
 *   tenant              optional, one line: this instance's tenant (VPC) id
 *   imds_url            optional, one line: the metadata service (default
 *                       http://169.254.169.254; env SK_IMDS_URL wins)
 *   automount.conf      optional: "DEVICE:MOUNTPOINT" lines for sk automount
 *
 * The parsers are pure (text in); the small file helpers are below them. */
#ifndef SK_CONFIG_H
#define SK_CONFIG_H

#include <stddef.h>

#include "../common/buf.h"

#define SKCFG_FILE_MAX 65536
#define SKCFG_URL_MAX 480
#define SKCFG_PATH_MAX 1024
#define SKCFG_MOUNTS_MAX 64

typedef struct skcfg_mount {
    char device[SKCFG_PATH_MAX];
    char mountpoint[SKCFG_PATH_MAX];
} skcfg_mount_t;

/* The one line of text (a newline at the end and surrounding blanks
 * dropped) into out; -1 when empty, longer than outlen - 1, more than one
 * line, or holding control characters. */
int skcfg_one_line(const char *text, size_t len, char *out, size_t outlen);
/* An http:// or https:// URL without blanks; a trailing '/' dropped. */
int skcfg_api_url(const char *line, char *out, size_t outlen);
/* automount.conf: "DEVICE:MOUNTPOINT" per line (split at the first ':'),
 * both absolute paths; '#' comments and blank lines skipped. Fills up to
 * SKCFG_MOUNTS_MAX entries of out (*n of them); -1 with err (naming the
 * line) on a bad line or too many. */
int skcfg_parse_automount(const char *text, size_t len, skcfg_mount_t *out, size_t *n, char *err, size_t errlen);
/* text with every line of device removed and "device:mountpoint" added. */
int skcfg_automount_set(const char *text, size_t len, const char *device, const char *mountpoint, buf_t *out);

/* Reads a whole file (at most SKCFG_FILE_MAX bytes) into out; returns 0, 1
 * when it does not exist, -1 (errno set) otherwise. */
int skcfg_read_file(const char *path, buf_t *out);
/* Reads DIR/name as one line into out; 0, 1 when missing, -1 with err set. */
int skcfg_read_line(const char *dir, const char *name, char *out, size_t outlen, char *err, size_t errlen);
/* Replaces path with data atomically (temporary file, fsync, rename). */
int skcfg_write_file(const char *path, const char *data, size_t len, int mode);

#endif
