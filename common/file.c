#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int file_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* The directory part of path. */
static int fsync_parent(const char *path) {
    char *copy = strdup(path);
    int rc = copy ? file_fsync_dir(dirname(copy)) : -1;
    free(copy);
    return rc;
}

int file_rename_durable(const char *from, const char *to) {
    if (rename(from, to) < 0)
        return -1;
    return fsync_parent(to);
}

int file_write_atomic(const char *path, const void *data, size_t len, int mode) {
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
    }
    int failed = left || fsync(fd) < 0;
    if (close(fd) < 0 || failed || file_rename_durable(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int file_read(const char *path, buf_t *out, size_t max) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char chunk[4096];
    size_t n, start = out->len;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = out->len - start + n > max ? -1 : buf_append(out, chunk, n);
    if (ferror(f))
        rc = -1;
    fclose(f);
    if (rc == 0 && buf_append(out, "", 1) == 0)
        out->len--; /* NUL-terminated, for text */
    return rc;
}
