#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "kvpsync.h"

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int kvps_psk_load(const char *path, kvps_psk_t *out, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    char buf[68]; /* 64 digits, a newline, and one byte to see anything more */
    ssize_t n = -1;
    const char *why = NULL;
    if (fstat(fd, &st) != 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_mode & (S_IRWXG | S_IRWXO))
        why = "group or others have access (chmod 600)";
    else if ((n = read(fd, buf, sizeof buf)) < 0)
        why = strerror(errno);
    close(fd);
    if (!why && !(n == 64 || (n == 65 && buf[64] == '\n')))
        why = "expected 64 hex digits on one line";
    for (int i = 0; !why && i < 32; i++) {
        int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
        if (hi < 0 || lo < 0)
            why = "expected 64 hex digits on one line";
        else
            out->key[i] = (uint8_t)(hi << 4 | lo);
    }
    OPENSSL_cleanse(buf, sizeof buf);
    if (why) {
        OPENSSL_cleanse(out, sizeof *out);
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    return 0;
}
