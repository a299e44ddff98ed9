/* sk prep-dev: a new sk volume on an empty device. Nothing is written to
 * the device before the key API's answer has been checked. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "commands.h"
#include "devname.h"
#include "mount.h"

static void usage(FILE *out) {
    fprintf(out,
            "Usage: sk prep-dev [-f FS] [-a MOUNTPOINT] [--delete-all-existing-data] [OPTIONS] DEVICE\n"
            "\n"
            "Makes DEVICE (a block device, or a regular file standing for one) an sk volume:\n"
            "asks the key API for a new secret bound to this instance and the volume, checks\n"
            "both signatures against the pinned key, then writes a LUKS2 container whose\n"
            "keyslot the secret opens and whose sk token holds the encrypted secret. Where\n"
            "device-mapper works it also makes the filesystem (and mounts it with -a).\n"
            "\n"
            "  -f, --filesystem FS            xfs (default), ext2, ext3, ext4, fat or vfat\n"
            "  -a, --automount MOUNTPOINT     mount there now and at boot (automount.conf)\n"
            "      --delete-all-existing-data prepare DEVICE even if it holds data (erased)\n" AGENT_COMMON_HELP "\n"
            "Exit status: 0 success, 1 failure, 2 usage, 4 DEVICE holds data or is in use, 5 not root.\n");
}

/* Partitions the kernel knows of a block device, e.g. "/dev/nvme1n1p1 /dev/nvme1n1p2". */
static void partitions(const char *device, char *out, size_t outlen) {
    char real[PATH_MAX], part[PATH_MAX], sys[PATH_MAX + 32];
    struct stat st;
    out[0] = '\0';
    if (!realpath(device, real) || stat(real, &st) != 0 || !S_ISBLK(st.st_mode))
        return;
    for (unsigned n = 1; n <= 128; n++) {
        if (skdev_partition(real, n, part, sizeof part) != 0)
            return;
        const char *base = strrchr(part, '/');
        snprintf(sys, sizeof sys, "/sys/class/block/%s", base ? base + 1 : part);
        if (access(sys, F_OK) == 0 && strlen(out) + strlen(part) + 2 < outlen)
            snprintf(out + strlen(out), outlen - strlen(out), "%s%s", out[0] ? " " : "", part);
    }
}

/* DEVICE:MOUNTPOINT into DIR/automount.conf, replacing DEVICE's old line. */
static int add_automount(agent_t *a, const char *device, const char *mountpoint, char *err, size_t errlen) {
    char path[SKCFG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/automount.conf", a->config_dir);
    buf_t old, out;
    buf_init(&old, SKCFG_FILE_MAX);
    buf_init(&out, SKCFG_FILE_MAX);
    int rc = skcfg_read_file(path, &old) < 0 ||
                     skcfg_automount_set(old.data ? old.data : "", old.len, device, mountpoint, &out) != 0 ||
                     skcfg_write_file(path, out.data, out.len, 0644) != 0
                 ? -1
                 : 0;
    if (rc != 0)
        snprintf(err, errlen, "cannot update %.900s: %m", path);
    buf_free(&old);
    buf_free(&out);
    return rc;
}

typedef struct prep {
    const char *device;
    const char *fs;
    const char *mountpoint;
    bool wipe;
    char stored[PATH_MAX]; /* the device as automount.conf names it */
} prep_t;

/* The filesystem (and the mount with -a), device-mapper hosts only. */
static int make_filesystem(agent_t *a, const prep_t *p, const char *uuid, const sktoken_t *t, const secmem_t *secret) {
    char err[1024], name[64], mapped[96];
    skdev_mapper_name(uuid, name, sizeof name);
    snprintf(mapped, sizeof mapped, "/dev/mapper/%s", name);
    skvol_t *v = NULL;
    agent_step(a, "Creating the %s filesystem...", p->fs);
    if (skvol_open(p->device, &v, err, sizeof err) != 0 ||
        skvol_activate(v, t->keyslot, name, secret, err, sizeof err) != 0) {
        skvol_close(v);
        return agent_fail(a, AGENT_FAIL, "%s", err);
    }
    skvol_close(v);
    int rc = skmount_mkfs(p->fs, mapped, err, sizeof err);
    if (rc == 0)
        agent_ok(a);
    if (rc == 0 && p->mountpoint) {
        agent_step(a, "Mounting the encrypted volume on %s...", p->mountpoint);
        rc = skmount_mount(mapped, p->mountpoint, err, sizeof err);
        if (rc == 0) {
            agent_ok(a);
            return AGENT_OK;
        }
    }
    char err2[256];
    if (skvol_deactivate(name, err2, sizeof err2) != 0 && rc == 0)
        return agent_fail(a, AGENT_FAIL, "%s", err2);
    return rc == 0 ? AGENT_OK : agent_fail(a, AGENT_FAIL, "%s", err);
}

static int prepare(agent_t *a, prep_t *p) {
    char what[512], parts[512], err[1024];
    uint64_t size = 0;
    int st = skvol_probe(p->device, &size, what, sizeof what);
    if (st < 0)
        return agent_fail(a, AGENT_FAIL, "%s", what);
    if (st == SKVOL_BUSY)
        return agent_fail(a, AGENT_STATE, "%s is %s", p->device, what);
    partitions(p->device, parts, sizeof parts);
    if ((st == SKVOL_HAS_DATA || parts[0]) && !p->wipe)
        return agent_fail(a, AGENT_STATE,
                          "%s is not empty (%s%s%s): sk prep-dev only prepares empty devices; if you are SURE "
                          "you want to ERASE it, add --delete-all-existing-data",
                          p->device, st == SKVOL_HAS_DATA ? what : "", parts[0] ? " partitions: " : "", parts);
    if (size < SKVOL_MIN_SIZE)
        return agent_fail(a, AGENT_STATE, "%s is too small (%llu bytes; at least %u MiB)", p->device,
                          (unsigned long long)size, SKVOL_MIN_SIZE >> 20);
    skvol_pbkdf_t pbkdf;
    if (skvol_pbkdf_default(&pbkdf) != 0)
        return agent_fail(a, AGENT_FAIL, "SK_PBKDF_MEMORY_KIB must be 32 to 1048576");
    char uuid[SKID_UUID_LEN + 1];
    if (skcrypto_uuid4(uuid) != 0)
        return agent_fail(a, AGENT_FAIL, "no random numbers");

    sktoken_t t;
    sktoken_init(&t);
    secmem_t secret = {0};
    char *json = NULL;
    buf_t blob, sig;
    buf_init(&blob, SKTOKEN_BLOB_MAX);
    buf_init(&sig, SKTOKEN_SIG_MAX);
    int rc = agent_generate(a, uuid, &blob, &sig, &secret);
    if (rc != AGENT_OK)
        goto done;
    t.keyslot = SKVOL_KEYSLOT;
    snprintf(t.volume_uuid, sizeof t.volume_uuid, "%s", uuid);
    snprintf(t.tenant, sizeof t.tenant, "%s", a->tenant);
    snprintf(t.api_key_fingerprint, sizeof t.api_key_fingerprint, "%s", a->api_fpr);
    snprintf(t.current.instance_id, sizeof t.current.instance_id, "%s", a->instance_id);
    if (sktoken_set_current(&t, blob.data, blob.len, sig.data, sig.len) != 0 || !(json = sktoken_encode(&t))) {
        rc = agent_fail(a, AGENT_FAIL, "the API's encrypted secret does not fit the sk token");
        goto done;
    }
    if (p->wipe) {
        agent_step(a, "Erasing the existing data signatures of %s...", p->device);
        if (skvol_wipe(p->device, err, sizeof err) != 0) {
            rc = agent_fail(a, AGENT_FAIL, "%s", err);
            goto done;
        }
        agent_ok(a);
    }
    agent_step(a, "Creating the LUKS2 container (%s-%s, %d-bit key, argon2id)...", SKVOL_CIPHER, SKVOL_CIPHER_MODE,
               SKVOL_KEY_BYTES * 8);
    if (skvol_format(p->device, uuid, &pbkdf, &secret, json, err, sizeof err) != 0) {
        rc = agent_fail(a, AGENT_FAIL, "%s", err);
        goto done;
    }
    agent_ok(a);
    /* Read back as mount will: header, token, signature, keyslot. */
    agent_volume_t v;
    rc = agent_open_volume(a, p->device, &v);
    if (rc == AGENT_OK) {
        agent_step(a, "Checking that the secret opens the volume's keyslot...");
        if (skvol_test_key(v.vol, v.token.keyslot, &secret, err, sizeof err) != 0)
            rc = agent_fail(a, AGENT_FAIL, "%s", err);
        else
            agent_ok(a);
    }
    agent_close_volume(&v);
    if (rc != AGENT_OK)
        goto done;
    if (skvol_dm_available()) {
        rc = make_filesystem(a, p, uuid, &t, &secret);
        if (rc != AGENT_OK)
            goto done;
    } else {
        printf("No device-mapper here (/dev/mapper/control): no filesystem made%s.\n",
               p->mountpoint ? ", nothing mounted" : "");
    }
    if (p->mountpoint) {
        agent_step(a, "Adding %s to the automount list...", p->stored);
        if (add_automount(a, p->stored, p->mountpoint, err, sizeof err) != 0) {
            rc = agent_fail(a, AGENT_FAIL, "%s", err);
            goto done;
        }
        agent_ok(a);
    }
    printf("Success: %s is sk volume %s\n", p->device, uuid);
done:
    free(json);
    secmem_free(&secret);
    buf_free(&blob);
    buf_free(&sig);
    sktoken_free(&t);
    return rc;
}

int sk_prep_dev(int argc, char **argv) {
    static const struct option opts[] = {
        AGENT_LONG_OPTIONS,
        {"filesystem", required_argument, NULL, 'f'},
        {"automount", required_argument, NULL, 'a'},
        {"delete-all-existing-data", no_argument, NULL, 'D'},
        {0},
    };
    agent_t a;
    agent_init(&a, argv[0]);
    prep_t p = {.fs = "xfs"};
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":f:a:h", opts, NULL)) != -1) {
        if (agent_option(&a, ch, optarg))
            continue;
        switch (ch) {
        case 'f':
            p.fs = optarg;
            break;
        case 'a':
            p.mountpoint = optarg;
            break;
        case 'D':
            p.wipe = true;
            break;
        case 'h':
            usage(stdout);
            return AGENT_OK;
        default:
            return agent_usage_error(&a, ch, argv);
        }
    }
    if (argc - optind != 1)
        return agent_fail(&a, AGENT_USAGE, "want exactly one DEVICE (see --help)");
    p.device = argv[optind];
    if (!skmount_fs_known(p.fs))
        return agent_fail(&a, AGENT_USAGE, "unknown filesystem %s (xfs, ext2, ext3, ext4, fat, vfat)", p.fs);
    if (p.mountpoint && p.mountpoint[0] != '/')
        return agent_fail(&a, AGENT_USAGE, "MOUNTPOINT must be an absolute path");
    int rc = agent_require_root(&a);
    if (rc == AGENT_OK)
        rc = agent_check_device(&a, p.device);
    if (rc != AGENT_OK)
        return rc;
    if (p.device[0] == '/')
        snprintf(p.stored, sizeof p.stored, "%s", p.device);
    else if (!realpath(p.device, p.stored))
        return agent_fail(&a, AGENT_USAGE, "%s: %m", p.device);
    if (p.mountpoint && strchr(p.stored, ':'))
        return agent_fail(&a, AGENT_USAGE, "a DEVICE for automount cannot have ':' in its path");
    rc = agent_load(&a, true);
    if (rc == AGENT_OK)
        rc = prepare(&a, &p);
    agent_free(&a);
    return rc;
}
