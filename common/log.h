/* log: leveled operational log lines and buffered access lines, on stderr.
 *
 * Each line: "2026-11-22T14:33:16.123Z LEVEL message". Operational lines are
 * written at once; access lines are collected and written in batches by
 * log_flush() (the server calls it once per loop iteration), so that a busy
 * server makes one write per batch instead of one per request.
 * Never pass secrets or request bodies to these functions. */
#ifndef SKD_LOG_H
#define SKD_LOG_H

#include <stdbool.h>

typedef enum log_level {
    LOG_ERROR = 0,
    LOG_WARN = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
} log_level_t;

void log_set_level(log_level_t level);
log_level_t log_get_level(void);
/* Parses "error", "warn", "info" or "debug"; returns -1 otherwise. */
int log_level_parse(const char *s, log_level_t *out);

void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                 \
    do {                                                                               \
        if (log_get_level() >= LOG_DEBUG)                                              \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
    } while (0)

/* Appends one access line (buffered). */
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes buffered access lines. */
void log_flush(void);

#endif
