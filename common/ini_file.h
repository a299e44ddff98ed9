/* ini_file: INI files read with inih, for skd's and skdns's configurations.
 *
 * Debian's inih is built with 200-byte lines and would parse the rest of a
 * longer line as a line of its own, so lines are read whole here: a long
 * comment becomes an empty line, a long "name = value" reaches inih with a
 * marker and on_option gets the whole value. Only the first error counts
 * (inih would go on after one); messages read "FILE:LINE: reason". */
#ifndef SKD_INI_FILE_H
#define SKD_INI_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ini_file {
    const char *path;
    FILE *file;
    int line;       /* line being parsed */
    bool failed;
    int fail_line;
    char *err;
    size_t err_len;
    char *line_buf; /* the current line, read whole */
    size_t line_cap;
    char *long_value;
    int (*on_option)(struct ini_file *f, void *user, const char *section, const char *name, const char *value);
    void *user;
} ini_file_t;

/* Records the first error as "PATH:LINE: message" (or "PATH: message" outside
 * any line) and returns 0, which stops inih: handlers `return ini_fail(...)`. */
__attribute__((format(printf, 2, 3))) int ini_fail(ini_file_t *f, const char *fmt, ...);

/* Reads path; on_option gets every option (name NULL for a section header
 * alone) and returns nonzero to go on. 0, or -1 with the message in err (a
 * file that cannot be opened, a syntax error, or the first ini_fail). */
int ini_file_parse(const char *path,
                   int (*on_option)(ini_file_t *f, void *user, const char *section, const char *name,
                                    const char *value),
                   void *user, char *err, size_t err_len);

/* A whole decimal number in [min, max] (no sign, nothing after it); 0 or -1. */
int ini_parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out);

#endif
