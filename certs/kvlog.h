/* kvlog: the puts and deletes made while a store snapshot is being read,
 * replayed onto the snapshot before kvpsend sees it (certs_reconcile.c says
 * why). Sans-IO; bounded. */
#ifndef SKD_KVLOG_H
#define SKD_KVLOG_H

#include <stdbool.h>
#include <stddef.h>

#define KVLOG_MAX 4096 /* operations kept; past it the log is spoilt */

typedef struct kvlog_op {
    char *key;
    char *val; /* NULL: a delete */
} kvlog_op_t;

typedef struct kvlog {
    kvlog_op_t *ops;
    size_t n, cap;
    bool spoilt; /* an operation was lost (too many, or out of memory) */
} kvlog_t;

/* Records a put (val != NULL) or a delete of key. */
void kvlog_add(kvlog_t *log, const char *key, const char *val);
/* Writes the snapshot (keys sorted bytewise, unique) with the logged
 * operations applied, the last per key winning, into out_keys/out_vals,
 * which have room for n + log->n entries; the output is sorted too and
 * points into the snapshot and the log. Returns the count, or -1 out of
 * memory. */
long kvlog_apply(const kvlog_t *log, const char *const *keys, const char *const *vals, size_t n,
                 const char **out_keys, const char **out_vals);
void kvlog_free(kvlog_t *log);

#endif
