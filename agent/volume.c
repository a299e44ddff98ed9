#include "volume.h"

#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1u << 20)

struct skvol {
    struct crypt_device *cd;
};

static char last_error[512];

static void on_log(int level, const char *msg, void *arg) {
    (void)arg;
    if (level != CRYPT_LOG_ERROR || !msg)
        return;
    size_t n = 0;
    for (const char *p = msg; *p && n + 1 < sizeof last_error; p++)
        if (*p != '\n')
            last_error[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    last_error[n] = '\0';
}

void skvol_setup(void) {
    crypt_token_external_disable();
    crypt_set_log_callback(NULL, on_log, NULL);
}

/* err: what failed, libcryptsetup's last message (if any) and errno's text. */
static int fail(char *err, size_t errlen, const char *what, int rc) {
    if (last_error[0])
        snprintf(err, errlen, "%s: %s", what, last_error);
    else
        snprintf(err, errlen, "%s: %s", what, strerror(rc < 0 ? -rc : rc));
    last_error[0] = '\0';
    return -1;
}

int skvol_pbkdf_default(skvol_pbkdf_t *p) {
    p->memory_kib = 131072;
    p->iterations = 4;
    p->parallel = 2;
    const char *env = getenv("SK_PBKDF_MEMORY_KIB");
    if (env) {
        char *end;
        unsigned long v = strtoul(env, &end, 10);
        if (!*env || *end || v < 32 || v > 1048576)
            return -1;
        p->memory_kib = (uint32_t)v;
        if (v < 1024)
            p->parallel = 1;
    }
    return 0;
}

int skvol_dm_available(void) {
    /* The node alone proves nothing: libdevmapper makes it when missing, and
     * in a container without the driver opening it fails (ENODEV). */
    int fd = geteuid() == 0 ? open("/dev/mapper/control", O_RDWR | O_CLOEXEC) : -1;
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

/* ---- before prep-dev */

static int nonzero(int fd, uint64_t off, size_t len) {
    static unsigned char block[65536];
    for (size_t done = 0; done < len;) {
        size_t want = len - done < sizeof block ? len - done : sizeof block;
        ssize_t r = pread(fd, block, want, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -1 : 0;
        for (ssize_t i = 0; i < r; i++)
            if (block[i])
                return 1;
        done += (size_t)r;
    }
    return 0;
}

static int device_size(int fd, uint64_t *size) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
        return 0;
    }
    return ioctl(fd, BLKGETSIZE64, size);
}

int skvol_probe(const char *path, uint64_t *size, char *what, size_t whatlen) {
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(what, whatlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | (S_ISBLK(st.st_mode) ? O_EXCL : 0));
    if (fd < 0 && errno == EBUSY) {
        snprintf(what, whatlen, "in use (mounted, mapped or held by another program)");
        return SKVOL_BUSY;
    }
    if (fd < 0 || device_size(fd, size) != 0) {
        snprintf(what, whatlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int rc = SKVOL_EMPTY;
    blkid_probe pr = blkid_new_probe();
    if (!pr || blkid_probe_set_device(pr, fd, 0, 0) != 0) {
        snprintf(what, whatlen, "libblkid cannot probe %s", path);
        rc = -1;
        goto done;
    }
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
    blkid_probe_enable_partitions(pr, 1);
    blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
    int found = blkid_do_safeprobe(pr);
    const char *type = NULL;
    if (found == 0 && (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0 ||
                       blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL) == 0)) {
        snprintf(what, whatlen, "it holds %s", type);
        rc = SKVOL_HAS_DATA;
    } else if (found == 0 || found == -2) {
        snprintf(what, whatlen, "it holds data signatures");
        rc = SKVOL_HAS_DATA;
    } else if (found < 0) {
        snprintf(what, whatlen, "libblkid cannot probe %s", path);
        rc = -1;
    } else {
        uint64_t tail = *size > MIB ? *size - MIB : 0;
        int z = nonzero(fd, 0, *size < MIB ? (size_t)*size : MIB);
        if (z == 0)
            z = nonzero(fd, tail, (size_t)(*size - tail));
        if (z != 0) {
            snprintf(what, whatlen, z < 0 ? "it cannot be read" : "its first or last MiB is not blank");
            rc = z < 0 ? -1 : SKVOL_HAS_DATA;
        }
    }
done:
    blkid_free_probe(pr);
    close(fd);
    return rc;
}

static int zero(int fd, uint64_t off, size_t len) {
    static const unsigned char block[65536];
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof block ? len - done : sizeof block;
        ssize_t w = pwrite(fd, block, n, (off_t)(off + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        done += (size_t)w;
    }
    return 0;
}

int skvol_wipe(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    uint64_t size = 0;
    if (fd < 0 || device_size(fd, &size) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int rc = -1;
    blkid_probe pr = blkid_new_probe();
    if (pr && blkid_probe_set_device(pr, fd, 0, 0) == 0) {
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC);
        blkid_probe_enable_partitions(pr, 1);
        blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC);
        rc = 0;
        for (int i = 0; rc == 0 && i < 64 && blkid_do_probe(pr) == 0; i++)
            rc = blkid_do_wipe(pr, 0);
    }
    blkid_free_probe(pr);
    uint64_t tail = size > MIB ? size - MIB : 0;
    if (rc == 0 && (zero(fd, 0, size < MIB ? (size_t)size : MIB) != 0 || zero(fd, tail, (size_t)(size - tail)) != 0 ||
                    fsync(fd) != 0))
        rc = -1;
    struct stat st;
    if (rc == 0 && fstat(fd, &st) == 0 && S_ISBLK(st.st_mode))
        (void)ioctl(fd, BLKRRPART); /* the kernel forgets the old partitions; fails harmlessly on a disk without */
    if (rc != 0)
        snprintf(err, errlen, "cannot wipe %s: %s", path, strerror(errno ? errno : EIO));
    close(fd);
    return rc;
}

int skvol_format(const char *path, const char *uuid, const skvol_pbkdf_t *pbkdf, const secmem_t *secret,
                 const char *token_json, char *err, size_t errlen) {
    struct crypt_device *cd = NULL;
    struct crypt_pbkdf_type kdf = {.type = CRYPT_KDF_ARGON2ID,
                                   .hash = "sha256",
                                   .iterations = pbkdf->iterations,
                                   .max_memory_kb = pbkdf->memory_kib,
                                   .parallel_threads = pbkdf->parallel,
                                   .flags = CRYPT_PBKDF_NO_BENCHMARK};
    struct crypt_params_luks2 params = {.pbkdf = &kdf, .label = "sk"};
    last_error[0] = '\0';
    int rc = crypt_init(&cd, path);
    if (rc < 0)
        return fail(err, errlen, "cannot open the device", rc);
    rc = crypt_format(cd, CRYPT_LUKS2, SKVOL_CIPHER, SKVOL_CIPHER_MODE, uuid, NULL, SKVOL_KEY_BYTES, &params);
    if (rc < 0) {
        fail(err, errlen, "cannot write the LUKS2 header", rc);
        goto done;
    }
    rc = crypt_keyslot_add_by_volume_key(cd, SKVOL_KEYSLOT, NULL, 0, (const char *)secret->data, secret->len);
    if (rc < 0) {
        fail(err, errlen, "cannot add the keyslot", rc);
        goto done;
    }
    rc = crypt_token_json_set(cd, CRYPT_ANY_TOKEN, token_json);
    if (rc < 0)
        fail(err, errlen, "cannot write the sk token", rc);
done:
    crypt_free(cd);
    return rc < 0 ? -1 : 0;
}

/* ---- an existing volume */

int skvol_open(const char *path, skvol_t **out, char *err, size_t errlen) {
    *out = NULL;
    struct crypt_device *cd = NULL;
    last_error[0] = '\0';
    int rc = crypt_init(&cd, path);
    if (rc < 0)
        return fail(err, errlen, path, rc);
    rc = crypt_load(cd, CRYPT_LUKS2, NULL);
    if (rc < 0) {
        crypt_free(cd);
        last_error[0] = '\0';
        return SKVOL_NOT_LUKS2;
    }
    skvol_t *v = malloc(sizeof *v);
    if (!v) {
        crypt_free(cd);
        return fail(err, errlen, path, -ENOMEM);
    }
    v->cd = cd;
    *out = v;
    return 0;
}

void skvol_close(skvol_t *v) {
    if (v) {
        crypt_free(v->cd);
        free(v);
    }
}

const char *skvol_uuid(skvol_t *v) {
    const char *u = crypt_get_uuid(v->cd);
    return u ? u : "";
}

int skvol_token(skvol_t *v, const char **json, int *id) {
    int found = 0;
    for (int i = 0; i < 32; i++) {
        const char *type = NULL;
        crypt_token_info st = crypt_token_status(v->cd, i, &type);
        if (st == CRYPT_TOKEN_INVALID || st == CRYPT_TOKEN_INACTIVE || !type || strcmp(type, "sk") != 0)
            continue;
        if (found++)
            return SKVOL_MANY_TOKENS;
        *id = i;
    }
    if (!found || crypt_token_json_get(v->cd, *id, json) < 0)
        return SKVOL_NO_TOKEN;
    return 0;
}

int skvol_set_token(skvol_t *v, int id, const char *json, char *err, size_t errlen) {
    last_error[0] = '\0';
    int rc = crypt_token_json_set(v->cd, id, json);
    if (rc < 0)
        return fail(err, errlen, "cannot write the sk token", rc);
    return 0;
}

int skvol_test_key(skvol_t *v, int keyslot, const secmem_t *secret, char *err, size_t errlen) {
    last_error[0] = '\0';
    int rc = crypt_activate_by_passphrase(v->cd, NULL, keyslot, (const char *)secret->data, secret->len, 0);
    if (rc < 0)
        return fail(err, errlen, "the secret does not open the keyslot", rc);
    return 0;
}

int skvol_activate(skvol_t *v, int keyslot, const char *name, const secmem_t *secret, char *err, size_t errlen) {
    last_error[0] = '\0';
    int rc = crypt_activate_by_passphrase(v->cd, name, keyslot, (const char *)secret->data, secret->len, 0);
    if (rc < 0)
        return fail(err, errlen, "cannot unlock the volume", rc);
    return 0;
}

int skvol_active(const char *name) {
    crypt_status_info st = crypt_status(NULL, name);
    return st == CRYPT_ACTIVE || st == CRYPT_BUSY;
}

int skvol_deactivate(const char *name, char *err, size_t errlen) {
    struct crypt_device *cd = NULL;
    last_error[0] = '\0';
    int rc = crypt_init_by_name(&cd, name);
    if (rc >= 0)
        rc = crypt_deactivate(cd, name);
    crypt_free(cd);
    if (rc < 0)
        return fail(err, errlen, "cannot close the mapping", rc);
    return 0;
}
