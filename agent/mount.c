#include "mount.h"

#include <blkid/blkid.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/buf.h"
#include "config.h"
#include "mountinfo.h"

extern char **environ;

static const char *const filesystems[][2] = {
    {"xfs", "mkfs.xfs"},   {"ext2", "mkfs.ext2"}, {"ext3", "mkfs.ext3"},
    {"ext4", "mkfs.ext4"}, {"fat", "mkfs.vfat"},  {"vfat", "mkfs.vfat"},
};

static const char *mkfs_program(const char *fs) {
    for (size_t i = 0; i < sizeof filesystems / sizeof filesystems[0]; i++)
        if (strcmp(fs, filesystems[i][0]) == 0)
            return filesystems[i][1];
    return NULL;
}

bool skmount_fs_known(const char *fs) {
    return mkfs_program(fs) != NULL;
}

int skmount_mkfs(const char *fs, const char *device, char *err, size_t errlen) {
    const char *prog = mkfs_program(fs);
    if (!prog) {
        snprintf(err, errlen, "unknown filesystem %s", fs);
        return -1;
    }
    char *argv[] = {(char *)prog, (char *)device, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        snprintf(err, errlen, "cannot run %s: %s", prog, strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(err, errlen, "%s: %s", prog, strerror(errno));
            return -1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, errlen, "%s %s failed (status %d)", prog, device, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    return 0;
}

static int mkdirs(const char *path) {
    char p[SKCFG_PATH_MAX];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int skmount_mount(const char *device, const char *mountpoint, char *err, size_t errlen) {
    char type[32] = "";
    blkid_probe pr = blkid_new_probe_from_filename(device);
    const char *t = NULL;
    if (pr && blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "TYPE", &t, NULL) == 0)
        snprintf(type, sizeof type, "%s", t);
    blkid_free_probe(pr);
    if (!type[0]) {
        snprintf(err, errlen, "%s holds no filesystem", device);
        return -1;
    }
    if (mkdirs(mountpoint) != 0) {
        snprintf(err, errlen, "cannot make %s: %s", mountpoint, strerror(errno));
        return -1;
    }
    if (mount(device, mountpoint, type, 0, NULL) != 0) {
        snprintf(err, errlen, "cannot mount %s (%s) on %s: %s", device, type, mountpoint, strerror(errno));
        return -1;
    }
    return 0;
}

int skmount_mapper_at(const char *mountpoint, char *name, size_t namelen, char *err, size_t errlen) {
    buf_t text;
    buf_init(&text, 16u << 20);
    char source[SKCFG_PATH_MAX];
    int rc = skcfg_read_file("/proc/self/mountinfo", &text);
    if (rc == 0)
        rc = skmnt_source(text.data ? text.data : "", text.len, mountpoint, source, sizeof source);
    buf_free(&text);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read /proc/self/mountinfo");
        return -1;
    }
    if (rc == 1)
        return 1;
    const char *mapper = "/dev/mapper/";
    if (strncmp(source, mapper, strlen(mapper)) == 0) {
        rc = snprintf(name, namelen, "%s", source + strlen(mapper));
        return rc > 0 && (size_t)rc < namelen ? 0 : 2;
    }
    if (strncmp(source, "/dev/dm-", 8) == 0 && strspn(source + 8, "0123456789") == strlen(source + 8)) {
        char path[SKCFG_PATH_MAX + 32], line[256];
        snprintf(path, sizeof path, "/sys/block/%s/dm/name", source + 5);
        buf_init(&text, 4096);
        rc = skcfg_read_file(path, &text) == 0 &&
                     skcfg_one_line(text.data ? text.data : "", text.len, line, sizeof line) == 0
                 ? 0
                 : 2;
        buf_free(&text);
        if (rc == 0 && snprintf(name, namelen, "%s", line) >= (int)namelen)
            rc = 2;
        return rc;
    }
    return 2;
}
