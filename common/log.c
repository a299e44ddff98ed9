#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static log_level_t current_level = LOG_INFO;

/* Worker threads log too: one lock keeps lines whole and in order. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

/* Access lines wait here until log_flush(); a full buffer is flushed early. */
static char access_buf[64 * 1024];
static size_t access_len;

void log_set_level(log_level_t level) {
    current_level = level;
}

log_level_t log_get_level(void) {
    return current_level;
}

int log_level_parse(const char *s, log_level_t *out) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

/* "2026-11-22T14:33:16.123Z"; the calendar part is formatted once per second. */
static size_t format_time(char *out, size_t cap) {
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[32];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    if (tv.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = tv.tv_sec;
    }
    int n = snprintf(out, cap, "%s.%03dZ", cached, (int)(tv.tv_usec / 1000));
    return n < 0 ? 0 : (size_t)n;
}

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void flush_locked(void) {
    if (access_len == 0)
        return;
    write_all(access_buf, access_len);
    access_len = 0;
}

/* Formats "TIME LEVEL message\n" into line; cuts overlong messages. */
__attribute__((format(printf, 4, 0))) static size_t format_line(char *line, size_t cap, const char *level,
                                                              const char *fmt, va_list ap) {
    size_t n = format_time(line, cap);
    int k = snprintf(line + n, cap - n, " %s ", level);
    n += k > 0 ? (size_t)k : 0;
    k = vsnprintf(line + n, cap - n, fmt, ap);
    if (k > 0)
        n += (size_t)k < cap - n ? (size_t)k : cap - n - 1;
    line[n++] = '\n';
    return n;
}

void log_msg(log_level_t level, const char *fmt, ...) {
    if (level > current_level)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    size_t n = format_line(line, sizeof line - 1, level_names[level], fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    flush_locked(); /* keep lines in the order they happened */
    write_all(line, n);
    pthread_mutex_unlock(&log_lock);
}

/* Appends the decimal digits of v at p; returns the end. */
static char *put_uint(char *p, unsigned long long v) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = digits[--n];
    return p;
}

static char *put_str(char *p, const char *s, size_t max) {
    size_t n = strnlen(s, max);
    memcpy(p, s, n);
    return p + n;
}

void log_security(const char *fmt, ...) {
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static time_t window;
    static unsigned in_window;
    static unsigned long dropped;
    time_t now = time(NULL);
    pthread_mutex_lock(&lock);
    if (now != window) {
        window = now;
        in_window = 0;
    }
    bool pass = in_window < LOG_SECURITY_PER_SECOND;
    unsigned long report = 0;
    if (pass) {
        in_window++;
        report = dropped;
        dropped = 0;
    } else {
        dropped++;
    }
    pthread_mutex_unlock(&lock);
    if (!pass)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (report)
        log_warn("security: %s (%lu earlier security lines dropped)", msg, report);
    else
        log_warn("security: %s", msg);
}

void log_access(const char *peer, const char *method, const char *path, int status, size_t bytes,
                unsigned long long duration_us) {
    char line[512];
    char *p = line + format_time(line, 40);
    p = put_str(p, " ACCESS ", 8);
    p = put_str(p, peer, 64);
    *p++ = ' ';
    p = put_str(p, method, 32);
    *p++ = ' ';
    p = put_str(p, path, 256);
    *p++ = ' ';
    p = put_uint(p, (unsigned)status);
    *p++ = ' ';
    p = put_uint(p, bytes);
    *p++ = ' ';
    p = put_uint(p, duration_us);
    p = put_str(p, "us\n", 3);
    size_t n = (size_t)(p - line);
    pthread_mutex_lock(&log_lock);
    if (access_len + n > sizeof access_buf)
        flush_locked();
    memcpy(access_buf + access_len, line, n);
    access_len += n;
    pthread_mutex_unlock(&log_lock);
}

void log_flush(void) {
    pthread_mutex_lock(&log_lock);
    flush_locked();
    pthread_mutex_unlock(&log_lock);
}
