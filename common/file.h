/* file: whole files written so that a crash leaves the old content or the
 * new, never a mix, and read back with a bound. Blocking: worker threads or
 * command-line tools only. */
#ifndef SKD_FILE_H
#define SKD_FILE_H

#include <stddef.h>

#include "buf.h"

/* Writes data to a temporary file next to path (mode), fsyncs it, renames it
 * over path and fsyncs the directory. 0, or -1 (errno set; path untouched). */
int file_write_atomic(const char *path, const void *data, size_t len, int mode);
/* Renames from over to and fsyncs to's directory. */
int file_rename_durable(const char *from, const char *to);
/* fsyncs the directory dir (a rename or a new name in it becomes durable). */
int file_fsync_dir(const char *dir);
/* Appends the whole file to out (NUL-terminated past out->len); -1 if it
 * cannot be read or is longer than max bytes. */
int file_read(const char *path, buf_t *out, size_t max);

#endif
