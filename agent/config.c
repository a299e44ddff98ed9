#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int blank(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

int skcfg_one_line(const char *text, size_t len, char *out, size_t outlen) {
    size_t a = 0, b = len;
    if (b > 0 && text[b - 1] == '\n')
        b--;
    while (a < b && blank(text[a]))
        a++;
    while (b > a && blank(text[b - 1]))
        b--;
    if (a == b || b - a >= outlen)
        return -1;
    for (size_t i = a; i < b; i++)
        if ((unsigned char)text[i] < 0x20 && text[i] != '\t')
            return -1; /* a newline inside, NUL, other controls */
    memcpy(out, text + a, b - a);
    out[b - a] = '\0';
    return 0;
}

int skcfg_api_url(const char *line, char *out, size_t outlen) {
    size_t scheme = strncmp(line, "https://", 8) == 0 ? 8 : strncmp(line, "http://", 7) == 0 ? 7 : 0;
    size_t n = strlen(line);
    if (!scheme || n > SKCFG_URL_MAX || n >= outlen)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (line[i] <= 0x20 || line[i] >= 0x7f)
            return -1;
    while (n > scheme && line[n - 1] == '/')
        n--;
    if (n == scheme || line[scheme] == '/')
        return -1; /* no host */
    memcpy(out, line, n);
    out[n] = '\0';
    return 0;
}

int skcfg_parse_automount(const char *text, size_t len, skcfg_mount_t *out, size_t *n, char *err, size_t errlen) {
    *n = 0;
    size_t lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        char line[2 * SKCFG_PATH_MAX + 2];
        lineno++;
        size_t a = pos, b = end;
        pos = nl ? end + 1 : len;
        while (a < b && blank(text[a]))
            a++;
        while (b > a && blank(text[b - 1]))
            b--;
        if (a == b || text[a] == '#')
            continue;
        if (b - a >= sizeof line || memchr(text + a, '\0', b - a)) {
            snprintf(err, errlen, "line %zu: too long or not text", lineno);
            return -1;
        }
        memcpy(line, text + a, b - a);
        line[b - a] = '\0';
        char *colon = strchr(line, ':');
        if (!colon || line[0] != '/' || colon[1] != '/') {
            snprintf(err, errlen, "line %zu: want DEVICE:MOUNTPOINT with absolute paths", lineno);
            return -1;
        }
        *colon = '\0';
        if (strlen(line) >= SKCFG_PATH_MAX || strlen(colon + 1) >= SKCFG_PATH_MAX) {
            snprintf(err, errlen, "line %zu: path too long", lineno);
            return -1;
        }
        if (*n == SKCFG_MOUNTS_MAX) {
            snprintf(err, errlen, "more than %d volumes", SKCFG_MOUNTS_MAX);
            return -1;
        }
        snprintf(out[*n].device, SKCFG_PATH_MAX, "%s", line);
        snprintf(out[*n].mountpoint, SKCFG_PATH_MAX, "%s", colon + 1);
        (*n)++;
    }
    return 0;
}

int skcfg_automount_set(const char *text, size_t len, const char *device, const char *mountpoint, buf_t *out) {
    size_t dlen = strlen(device);
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t a = pos;
        while (a < end && blank(text[a]))
            a++;
        int same = end - a > dlen && memcmp(text + a, device, dlen) == 0 && text[a + dlen] == ':';
        if (!same && (buf_append(out, text + pos, end - pos) != 0 || buf_append(out, "\n", 1) != 0))
            return -1;
        pos = nl ? end + 1 : len;
    }
    return buf_printf(out, "%s:%s\n", device, mountpoint);
}

int skcfg_read_file(const char *path, buf_t *out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    out->len = 0;
    for (;;) {
        if (buf_reserve(out, 4096) != 0) {
            close(fd);
            errno = EFBIG;
            return -1;
        }
        ssize_t r = read(fd, out->data + out->len, out->cap - out->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = errno;
            close(fd);
            errno = e;
            return r == 0 ? 0 : -1;
        }
        out->len += (size_t)r;
    }
}

int skcfg_read_line(const char *dir, const char *name, char *out, size_t outlen, char *err, size_t errlen) {
    char path[SKCFG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    buf_t text;
    buf_init(&text, SKCFG_FILE_MAX);
    int rc = skcfg_read_file(path, &text);
    if (rc < 0)
        snprintf(err, errlen, "cannot read %s: %m", path);
    else if (rc == 0 && skcfg_one_line(text.data ? text.data : "", text.len, out, outlen) != 0) {
        snprintf(err, errlen, "%s must hold one line (at most %zu bytes)", path, outlen - 1);
        rc = -1;
    }
    buf_free(&text);
    return rc;
}

int skcfg_write_file(const char *path, const char *data, size_t len, int mode) {
    char tmp[SKCFG_PATH_MAX + 16];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    int e = off == len && fsync(fd) == 0 ? 0 : (errno ? errno : EIO);
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}
