/* devname: device naming, sans I/O.
 *
 * The kernel names partition n of a disk whose name ends in a digit with a
 * 'p' between ("/dev/nvme1n1" -> "/dev/nvme1n1p1", mmcblk0p1, loop0p1) and
 * without one otherwise ("/dev/sdf" -> "/dev/sdf1", xvdf1). The original
 * agent appended the number to whatever name it was given, so on Nitro
 * instances (/dev/sdf -> nvme1n1) it looked for nvme1n11. Callers resolve
 * symbolic links first: the kernel's name decides. */
#ifndef SK_DEVNAME_H
#define SK_DEVNAME_H

#include <stddef.h>

/* Writes partition n (1..128) of disk into out; -1 if it does not fit or
 * disk is empty or n out of range. */
int skdev_partition(const char *disk, unsigned n, char *out, size_t outlen);
/* The device-mapper name sk gives a volume: "sk-" and its LUKS UUID. */
int skdev_mapper_name(const char *uuid, char *out, size_t outlen);

#endif
