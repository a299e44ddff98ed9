/* audit files: how records become durable files under a root directory,
 * <root>/<tenant>/<seq, 9 digits>.json (audit/FORMAT.md). Blocking calls:
 * the audit writer thread, recovery at start and bench/audit_files. */
#ifndef SKD_AUDIT_FILES_H
#define SKD_AUDIT_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct audit_file {
    uint64_t seq;
    const char *text; /* the whole file: canonical form and a newline */
} audit_file_t;

/* <root>/<tenant>/<seq>.json, or .json.tmp when tmp. */
void audit_file_path(char *out, size_t len, const char *root, const char *tenant, uint64_t seq, bool tmp);

/* Creates root and (unless tenant is NULL) root/tenant when missing. */
int audit_dir_create(const char *root, const char *tenant);

/* fsync() of a directory. */
int audit_dir_sync(const char *path);

/* Makes n records of one tenant durable under root, in order: every
 * temporary file written, all of them synced at once, renamed, and the
 * directory synced. On failure (-1, errno set) the temporary files are
 * removed; renamed files may remain (their numbers get rewritten). */
int audit_files_write(const char *root, const char *tenant, const audit_file_t *files, size_t n);

#endif
