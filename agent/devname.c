#include "devname.h"

#include <stdio.h>
#include <string.h>

int skdev_partition(const char *disk, unsigned n, char *out, size_t outlen) {
    size_t len = strlen(disk);
    if (len == 0 || n < 1 || n > 128 || disk[len - 1] == '/')
        return -1;
    const char *sep = disk[len - 1] >= '0' && disk[len - 1] <= '9' ? "p" : "";
    int w = snprintf(out, outlen, "%s%s%u", disk, sep, n);
    return w > 0 && (size_t)w < outlen ? 0 : -1;
}

int skdev_mapper_name(const char *uuid, char *out, size_t outlen) {
    int w = snprintf(out, outlen, "sk-%s", uuid);
    return w > 0 && (size_t)w < outlen ? 0 : -1;
}
