#include "cert_state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../acme/acme_crypto.h"

int cert_write_atomic(const char *dir, const char *name, const void *data, size_t len, int mode) {
    char tmp[4096], path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld", dir, name, (long)getpid());
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
    if (left || fsync(fd) < 0 || close(fd) < 0) {
        if (left)
            close(fd);
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int cert_read_file(const char *dir, const char *name, buf_t *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(out, chunk, n) < 0 || out->len > 1024 * 1024) {
            rc = -1;
            break;
        }
    if (ferror(f))
        rc = -1;
    fclose(f);
    if (rc == 0 && buf_append(out, "", 1) == 0)
        out->len--; /* NUL-terminated */
    return rc;
}

EVP_PKEY *cert_read_key(const char *dir, const char *name) {
    buf_t b;
    buf_init(&b, 0);
    EVP_PKEY *key = cert_read_file(dir, name, &b) == 0 ? acme_key_from_pem(b.data, b.len) : NULL;
    buf_free_secure(&b);
    return key;
}

int cert_write_key(const char *dir, const char *name, EVP_PKEY *key) {
    buf_t b;
    buf_init(&b, 0);
    int rc = acme_key_to_pem(key, &b) == 0 ? cert_write_atomic(dir, name, b.data, b.len, 0600) : -1;
    buf_free_secure(&b);
    return rc;
}

json_t *cert_read_json(const char *dir, const char *name) {
    buf_t b;
    buf_init(&b, 0);
    json_t *j = cert_read_file(dir, name, &b) == 0 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    buf_free(&b);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

int cert_write_json(const char *dir, const char *name, const json_t *obj) {
    char *text = json_dumps(obj, JSON_INDENT(2) | JSON_SORT_KEYS);
    int rc = text ? cert_write_atomic(dir, name, text, strlen(text), 0644) : -1;
    free(text);
    return rc;
}
