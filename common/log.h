/* log: leveled operational log lines and buffered access lines, on stderr.
 *
 * Each line: "2026-11-22T14:33:16.123Z LEVEL message". Operational lines are
 * written at once; access lines are collected in a 64 KiB buffer and written
 * when it fills, before any operational line, and by log_flush() (the server
 * calls it every second), so that a busy server makes one write per buffer
 * instead of one per request.
 * Never pass secrets or request bodies to these functions. */
#ifndef SKD_LOG_H
#define SKD_LOG_H

#include <stdbool.h>
#include <stddef.h>

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

/* A WARN line about a refused caller, rate-limited (at most
 * LOG_SECURITY_PER_SECOND a second; the number dropped is reported with the
 * next line that passes) so that a hostile client cannot flood the log. */
#define LOG_SECURITY_PER_SECOND 20
void log_security(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Appends one access line (buffered):
 * "TIME ACCESS peer method path status bytes durationus". Formatted by hand:
 * it runs once per request. path must be printable already. */
void log_access(const char *peer, const char *method, const char *path, int status, size_t bytes,
                unsigned long long duration_us);
/* Writes buffered access lines. */
void log_flush(void);

#endif
