/* mountinfo: reading /proc/self/mountinfo (proc(5)), sans I/O. */
#ifndef SK_MOUNTINFO_H
#define SK_MOUNTINFO_H

#include <stddef.h>

/* The source of the mount on mountpoint (the topmost when several are
 * stacked there), its octal escapes (\040 ...) undone, into source.
 * Returns 0 when found, 1 when nothing is mounted there, -1 on a malformed
 * line or a source longer than srclen - 1. */
int skmnt_source(const char *text, size_t len, const char *mountpoint, char *source, size_t srclen);

#endif
