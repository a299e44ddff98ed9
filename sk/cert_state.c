#include "cert_state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../acme/acme_crypto.h"
#include "../common/file.h"

/* dir/name into out; -1 if it does not fit. */
static int join(char out[4096], const char *dir, const char *name) {
    int n = snprintf(out, 4096, "%s/%s", dir, name);
    return n < 0 || n >= 4096 ? -1 : 0;
}

int cert_write_atomic(const char *dir, const char *name, const void *data, size_t len, int mode) {
    char path[4096];
    return join(path, dir, name) == 0 ? file_write_atomic(path, data, len, mode) : -1;
}

int cert_rename(const char *dir, const char *from, const char *to) {
    char a[4096], b[4096];
    return join(a, dir, from) == 0 && join(b, dir, to) == 0 ? file_rename_durable(a, b) : -1;
}

int cert_read_file(const char *dir, const char *name, buf_t *out) {
    char path[4096];
    return join(path, dir, name) == 0 ? file_read(path, out, 1024 * 1024) : -1;
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

/* Points DIR/name at target with one rename (a symlink made aside first). */
static int symlink_atomic(const char *dir, const char *name, const char *target) {
    char path[4096], tmp[4096], now[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ssize_t n = readlink(path, now, sizeof now - 1);
    if (n >= 0) {
        now[n] = '\0';
        if (strcmp(now, target) == 0)
            return 0;
    }
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld", dir, name, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) < 0)
        return -1;
    if (rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The number N of DIR/live -> gen.N, 0 if there is none. */
static unsigned long live_generation(const char *dir) {
    char path[4096], target[256];
    snprintf(path, sizeof path, "%s/live", dir);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0)
        return 0;
    target[n] = '\0';
    char *end;
    unsigned long g = strncmp(target, "gen.", 4) == 0 ? strtoul(target + 4, &end, 10) : 0;
    return g && *end == '\0' ? g : 0;
}

/* Removes DIR/gen.G and the files in it (the names this module writes). */
static void remove_generation(const char *dir, unsigned long g) {
    static const char *const FILES[] = {"cert.pem", "key.pem"};
    char path[4096];
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        snprintf(path, sizeof path, "%s/gen.%lu/%s", dir, g, FILES[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/gen.%lu", dir, g);
    rmdir(path);
}

/* Layouts before generations had cert.pem and key.pem as plain files: they
 * become gen.N (hard links), then the names become symlinks into live, so
 * that each step leaves a matching pair in place. */
static unsigned long adopt_plain_files(const char *dir) {
    char cert[4096], key[4096], gdir[4000], gcert[4096], gkey[4096], gen[64];
    struct stat st;
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    if (lstat(cert, &st) < 0 || !S_ISREG(st.st_mode) || lstat(key, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    unsigned long g = 1;
    snprintf(gdir, sizeof gdir, "%s/gen.%lu", dir, g);
    remove_generation(dir, g);
    snprintf(gcert, sizeof gcert, "%s/cert.pem", gdir);
    snprintf(gkey, sizeof gkey, "%s/key.pem", gdir);
    snprintf(gen, sizeof gen, "gen.%lu", g);
    if (mkdir(gdir, 0700) < 0 || link(cert, gcert) < 0 || link(key, gkey) < 0 || symlink_atomic(dir, "live", gen) < 0)
        return 0;
    return g;
}

int cert_write_pair(const char *dir, const char *chain, size_t chain_len, EVP_PKEY *key) {
    unsigned long old = live_generation(dir);
    if (!old)
        old = adopt_plain_files(dir);
    unsigned long g = old + 1;
    char gdir[4096], gen[64];
    snprintf(gdir, sizeof gdir, "%s/gen.%lu", dir, g);
    snprintf(gen, sizeof gen, "gen.%lu", g);
    remove_generation(dir, g); /* the leftover of a crash */
    if (mkdir(gdir, 0700) < 0)
        return -1;
    if (cert_write_key(gdir, "key.pem", key) < 0 || cert_write_atomic(gdir, "cert.pem", chain, chain_len, 0644) < 0 ||
        symlink_atomic(dir, "live", gen) < 0) {
        remove_generation(dir, g);
        return -1;
    }
    if (symlink_atomic(dir, "cert.pem", "live/cert.pem") < 0 || symlink_atomic(dir, "key.pem", "live/key.pem") < 0)
        return -1;
    file_fsync_dir(dir);
    if (old)
        remove_generation(dir, old);
    return 0;
}
