#include "mountinfo.h"

#include <string.h>

/* Copies field [a, b) into out, undoing \ooo escapes; -1 if it does not fit. */
static int unescape(const char *a, const char *b, char *out, size_t outlen) {
    size_t n = 0;
    while (a < b) {
        char c = *a++;
        if (c == '\\' && b - a >= 3 && a[0] >= '0' && a[0] <= '3' && a[1] >= '0' && a[1] <= '7' && a[2] >= '0' &&
            a[2] <= '7') {
            c = (char)((a[0] - '0') * 64 + (a[1] - '0') * 8 + (a[2] - '0'));
            a += 3;
        }
        if (n + 1 >= outlen)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

/* The next space-separated field of [*p, end): its bounds; -1 if none. */
static int field(const char **p, const char *end, const char **a, const char **b) {
    while (*p < end && **p == ' ')
        (*p)++;
    if (*p == end)
        return -1;
    *a = *p;
    while (*p < end && **p != ' ')
        (*p)++;
    *b = *p;
    return 0;
}

int skmnt_source(const char *text, size_t len, const char *mountpoint, char *source, size_t srclen) {
    int found = 1;
    const char *end = text + len;
    for (const char *line = text; line < end;) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *stop = nl ? nl : end;
        const char *p = line, *a, *b;
        line = nl ? nl + 1 : end;
        if (p == stop)
            continue;
        /* mount id, parent id, major:minor, root, mount point */
        char mp[4096];
        for (int i = 0; i < 5; i++)
            if (field(&p, stop, &a, &b) != 0)
                return -1;
        if (unescape(a, b, mp, sizeof mp) != 0)
            return -1;
        /* optional fields up to the lone "-", then fstype and source */
        do {
            if (field(&p, stop, &a, &b) != 0)
                return -1;
        } while (!(b - a == 1 && *a == '-'));
        if (field(&p, stop, &a, &b) != 0 || field(&p, stop, &a, &b) != 0)
            return -1;
        if (strcmp(mp, mountpoint) != 0)
            continue;
        if (unescape(a, b, source, srclen) != 0)
            return -1;
        found = 0; /* later lines are mounted on top: keep going */
    }
    return found;
}
