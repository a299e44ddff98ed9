#include "ini_file.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define LONG_VALUE_MARKER "\x01"

int ini_parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out) {
    if (!*v || *v == '-' || *v == '+')
        return -1;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

int ini_fail(ini_file_t *f, const char *fmt, ...) {
    if (f->failed)
        return 0;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (f->line)
        snprintf(f->err, f->err_len, "%s:%d: %s", f->path, f->line, msg);
    else
        snprintf(f->err, f->err_len, "%s: %s", f->path, msg);
    f->failed = true;
    f->fail_line = f->line;
    return 0;
}

/* inih's reader: counting lines here gives every option its line. */
static char *read_line(char *str, int num, void *stream) {
    ini_file_t *f = stream;
    if (f->failed)
        return NULL; /* stop at the first error */
    ssize_t len = getline(&f->line_buf, &f->line_cap, f->file);
    if (len < 0)
        return NULL;
    f->line++;
    char *line = f->line_buf;
    if (len < num - 1) {
        memcpy(str, line, (size_t)len + 1);
        return str;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
        line[--len] = '\0';
    const char *start = line + strspn(line, " \t");
    if (*start == ';' || *start == '#') {
        snprintf(str, (size_t)num, "\n");
        return str;
    }
    char *eq = strchr(line, '=');
    if (!eq || eq - line > 64 || *start == '[') {
        ini_fail(f, "line too long");
        return NULL;
    }
    char *value = eq + 1 + strspn(eq + 1, " \t");
    char *comment = strstr(value, " ;");
    if (comment)
        *comment = '\0';
    free(f->long_value);
    f->long_value = strdup(value);
    snprintf(str, (size_t)num, "%.*s= %s\n", (int)(eq - line), line, LONG_VALUE_MARKER);
    return str;
}

static int on_line(void *user, const char *section, const char *name, const char *value) {
    ini_file_t *f = user;
    if (value && strcmp(value, LONG_VALUE_MARKER) == 0 && f->long_value)
        value = f->long_value;
    return f->on_option(f, f->user, section, name, value);
}

int ini_file_parse(const char *path,
                   int (*on_option)(ini_file_t *f, void *user, const char *section, const char *name,
                                    const char *value),
                   void *user, char *err, size_t err_len) {
    ini_file_t f = {.path = path, .err = err, .err_len = err_len, .on_option = on_option, .user = user};
    f.file = fopen(path, "r");
    if (!f.file) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = ini_parse_stream(read_line, &f, on_line, &f);
    fclose(f.file);
    free(f.line_buf);
    free(f.long_value);
    /* rc is the first line inih found wrong: a syntax error, or ours. */
    if (rc > 0 && (!f.failed || rc < f.fail_line)) {
        snprintf(err, err_len, "%s:%d: syntax error (want \"[section]\" or \"name = value\")", path, rc);
        f.failed = true;
    }
    return f.failed ? -1 : 0;
}
