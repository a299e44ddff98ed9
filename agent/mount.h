/* mount: filesystems on unlocked volumes (device-mapper hosts only).
 * mkfs is the one external program the agent runs: it never sees the
 * secret, only /dev/mapper/NAME. */
#ifndef SK_MOUNT_H
#define SK_MOUNT_H

#include <stdbool.h>
#include <stddef.h>

/* Whether fs is one prep-dev makes: xfs, ext2, ext3, ext4, fat, vfat. */
bool skmount_fs_known(const char *fs);
/* Runs mkfs for fs on device (its output discarded); -1 with err set. */
int skmount_mkfs(const char *fs, const char *device, char *err, size_t errlen);
/* Mounts device (its filesystem type found by libblkid) on mountpoint,
 * made with mode 0755 (and its parents) if missing. */
int skmount_mount(const char *device, const char *mountpoint, char *err, size_t errlen);
/* The device-mapper name behind what is mounted on mountpoint (canonical
 * path) into name: 0, 1 when nothing is mounted there, 2 when it is not a
 * device-mapper device; -1 with err set. */
int skmount_mapper_at(const char *mountpoint, char *name, size_t namelen, char *err, size_t errlen);

#endif
