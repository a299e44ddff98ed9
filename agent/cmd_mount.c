/* sk mount, sk check and sk automount: unlock a volume with its released
 * secret, then map and mount it, or only check the keyslot. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "commands.h"
#include "devname.h"
#include "mount.h"

/* Unlocks device and, with mountpoint, maps and mounts it (with NULL only
 * checks that the released secret opens the keyslot). */
static int unlock_one(agent_t *a, const char *device, const char *mountpoint) {
    char err[1024], name[64] = "", mapped[96] = "";
    agent_volume_t v;
    secmem_t secret = {0};
    int rc = agent_open_volume(a, device, &v);
    if (rc == AGENT_OK && mountpoint) {
        skdev_mapper_name(v.uuid, name, sizeof name);
        snprintf(mapped, sizeof mapped, "/dev/mapper/%s", name);
        if (skvol_active(name))
            rc = agent_fail(a, AGENT_STATE, "%s is already unlocked as %s", device, mapped);
    }
    if (rc == AGENT_OK)
        rc = agent_unlock(a, &v, &secret);
    if (rc == AGENT_OK && mountpoint) {
        agent_step(a, "Mounting the encrypted volume on %s...", mountpoint);
        if (skvol_activate(v.vol, v.token.keyslot, name, &secret, err, sizeof err) != 0) {
            rc = agent_fail(a, AGENT_FAIL, "%s", err);
        } else if (skmount_mount(mapped, mountpoint, err, sizeof err) != 0) {
            char err2[256];
            skvol_deactivate(name, err2, sizeof err2);
            rc = agent_fail(a, AGENT_FAIL, "%s", err);
        } else {
            agent_ok(a);
        }
    }
    secmem_free(&secret);
    agent_close_volume(&v);
    return rc;
}

static const char no_dm[] = "device-mapper is not available here (/dev/mapper/control): cannot map %s "
                            "(sk check %s tests the key without it)";

static void mount_usage(FILE *out) {
    fprintf(out, "Usage: sk mount [OPTIONS] DEVICE MOUNTPOINT\n"
                 "\n"
                 "Has the key API release the secret of the sk volume DEVICE (checking every\n"
                 "signature against the pinned key), unlocks it as /dev/mapper/sk-<LUKS UUID> and\n"
                 "mounts it on MOUNTPOINT (made if missing). Needs device-mapper.\n"
                 "\n" AGENT_COMMON_HELP "\n"
                 "Exit status: 0 success, 1 failure, 2 usage, 4 DEVICE is not an sk volume or is\n"
                 "already unlocked, 5 not root.\n");
}

int sk_mount(int argc, char **argv) {
    static const struct option opts[] = {AGENT_LONG_OPTIONS, {0}};
    agent_t a;
    agent_init(&a, argv[0]);
    int rc = agent_parse_options(&a, argc, argv, mount_usage, opts, NULL);
    if (rc != AGENT_OK)
        return rc < 0 ? AGENT_OK : rc;
    if (argc - optind != 2)
        return agent_fail(&a, AGENT_USAGE, "want DEVICE and MOUNTPOINT (see --help)");
    const char *device = argv[optind], *mountpoint = argv[optind + 1];
    if ((rc = agent_require_root(&a)) != AGENT_OK || (rc = agent_check_device(&a, device)) != AGENT_OK)
        return rc;
    if (!skvol_dm_available())
        return agent_fail(&a, AGENT_FAIL, no_dm, device, device);
    rc = agent_load(&a, true);
    if (rc == AGENT_OK)
        rc = unlock_one(&a, device, mountpoint);
    if (rc == AGENT_OK)
        printf("Success\n");
    agent_free(&a);
    return rc;
}

static void check_usage(FILE *out) {
    fprintf(out, "Usage: sk check [OPTIONS] DEVICE\n"
                 "\n"
                 "Like sk mount, but stops once the released secret has opened the volume's\n"
                 "keyslot: nothing is mapped or mounted, nothing is written (no device-mapper\n"
                 "needed).\n"
                 "\n" AGENT_COMMON_HELP "\n"
                 "Exit status: 0 the secret opens DEVICE, 1 failure, 2 usage, 4 DEVICE is not an\n"
                 "sk volume, 5 not root.\n");
}

int sk_check(int argc, char **argv) {
    static const struct option opts[] = {AGENT_LONG_OPTIONS, {0}};
    agent_t a;
    agent_init(&a, argv[0]);
    int rc = agent_parse_options(&a, argc, argv, check_usage, opts, NULL);
    if (rc != AGENT_OK)
        return rc < 0 ? AGENT_OK : rc;
    if (argc - optind != 1)
        return agent_fail(&a, AGENT_USAGE, "want exactly one DEVICE (see --help)");
    const char *device = argv[optind];
    if ((rc = agent_require_root(&a)) != AGENT_OK || (rc = agent_check_device(&a, device)) != AGENT_OK)
        return rc;
    rc = agent_load(&a, true);
    if (rc == AGENT_OK)
        rc = unlock_one(&a, device, NULL);
    if (rc == AGENT_OK)
        printf("Success: the released secret opens %s\n", device);
    agent_free(&a);
    return rc;
}

static void automount_usage(FILE *out) {
    fprintf(out, "Usage: sk automount [--check] [OPTIONS]\n"
                 "\n"
                 "Mounts every volume of DIR/automount.conf (\"DEVICE:MOUNTPOINT\" lines, written\n"
                 "by sk prep-dev -a), skipping those already mounted there; run at boot by\n"
                 "sk-automount.service. With --check, only checks that each one's secret opens it.\n"
                 "\n"
                 "  --check               unlock-test each volume, map and mount nothing\n" AGENT_COMMON_HELP "\n"
                 "Exit status: 0 every volume mounted (or checked), 1 one or more failed, 2 usage,\n"
                 "5 not root.\n");
}

/* Whether an sk volume is mounted on mountpoint already. */
static bool mounted(const char *mountpoint) {
    char real[PATH_MAX], name[256], err[256];
    return realpath(mountpoint, real) && skmount_mapper_at(real, name, sizeof name, err, sizeof err) == 0 &&
           strncmp(name, "sk-", 3) == 0;
}

int sk_automount(int argc, char **argv) {
    static const struct option opts[] = {AGENT_LONG_OPTIONS, {"check", no_argument, NULL, 'k'}, {0}};
    agent_t a;
    agent_init(&a, argv[0]);
    bool check = false;
    int rc = agent_parse_options(&a, argc, argv, automount_usage, opts, &check);
    if (rc != AGENT_OK)
        return rc < 0 ? AGENT_OK : rc;
    if (argc != optind)
        return agent_fail(&a, AGENT_USAGE, "unexpected argument %s (see --help)", argv[optind]);
    if ((rc = agent_require_root(&a)) != AGENT_OK)
        return rc;
    char path[SKCFG_PATH_MAX + 32], err[512];
    snprintf(path, sizeof path, "%s/automount.conf", a.config_dir);
    buf_t text;
    buf_init(&text, SKCFG_FILE_MAX);
    static skcfg_mount_t list[SKCFG_MOUNTS_MAX];
    size_t n = 0;
    int r = skcfg_read_file(path, &text);
    if (r < 0)
        rc = agent_fail(&a, AGENT_FAIL, "cannot read %s: %m", path);
    else if (r == 0 && skcfg_parse_automount(text.data ? text.data : "", text.len, list, &n, err, sizeof err) != 0)
        rc = agent_fail(&a, AGENT_FAIL, "%s: %s", path, err);
    buf_free(&text);
    if (rc != AGENT_OK)
        return rc;
    if (n == 0) {
        printf("No volumes in %s\n", path);
        return AGENT_OK;
    }
    if (!check && !skvol_dm_available())
        return agent_fail(&a, AGENT_FAIL,
                          "device-mapper is not available here (/dev/mapper/control): cannot "
                          "map any volume (sk automount --check tests the keys without it)");
    rc = agent_load(&a, true);
    size_t failed = 0;
    for (size_t i = 0; rc == AGENT_OK && i < n; i++) {
        const char *dev = list[i].device, *mp = list[i].mountpoint;
        if (!check && mounted(mp)) {
            printf("%s is already mounted on %s\n", dev, mp);
            continue;
        }
        printf("Invoking: sk %s %s%s%s\n", check ? "check" : "mount", dev, check ? "" : " ", check ? "" : mp);
        fflush(stdout);
        if (agent_check_device(&a, dev) != AGENT_OK || unlock_one(&a, dev, check ? NULL : mp) != AGENT_OK)
            failed++;
    }
    agent_free(&a);
    if (rc != AGENT_OK)
        return rc;
    if (failed)
        return agent_fail(&a, AGENT_FAIL, "%zu of %zu volumes failed", failed, n);
    printf("Success: %zu volume%s %s\n", n, n == 1 ? "" : "s", check ? "checked" : "mounted");
    return AGENT_OK;
}
