#include "kvlog.h"

#include <stdlib.h>
#include <string.h>

void kvlog_add(kvlog_t *log, const char *key, const char *val) {
    if (log->spoilt)
        return;
    if (log->n == log->cap) {
        size_t cap = log->cap ? log->cap * 2 : 16;
        kvlog_op_t *grown = cap <= KVLOG_MAX ? realloc(log->ops, cap * sizeof *grown) : NULL;
        if (!grown) {
            log->spoilt = true;
            return;
        }
        log->ops = grown;
        log->cap = cap;
    }
    kvlog_op_t *op = &log->ops[log->n];
    op->key = strdup(key);
    op->val = val ? strdup(val) : NULL;
    if (!op->key || (val && !op->val)) {
        free(op->key);
        free(op->val);
        log->spoilt = true;
        return;
    }
    log->n++;
}

static int op_cmp(const void *a, const void *b) {
    return strcmp(((const kvlog_op_t *)a)->key, ((const kvlog_op_t *)b)->key);
}

long kvlog_apply(const kvlog_t *log, const char *const *keys, const char *const *vals, size_t n,
                 const char **out_keys, const char **out_vals) {
    /* The last operation of each key (scanning from the end), sorted. */
    kvlog_op_t *last = malloc((log->n ? log->n : 1) * sizeof *last);
    if (!last)
        return -1;
    size_t m = 0;
    for (size_t i = log->n; i-- > 0;) {
        bool seen = false;
        for (size_t k = 0; k < m && !seen; k++)
            seen = strcmp(last[k].key, log->ops[i].key) == 0;
        if (!seen)
            last[m++] = log->ops[i];
    }
    if (m)
        qsort(last, m, sizeof *last, op_cmp);
    /* Merge two sorted lists; on equal keys the operation wins. */
    size_t i = 0, k = 0, out = 0;
    while (i < n || k < m) {
        int c = i == n ? 1 : k == m ? -1 : strcmp(keys[i], last[k].key);
        if (c < 0) {
            out_keys[out] = keys[i];
            out_vals[out++] = vals[i++];
            continue;
        }
        if (last[k].val) {
            out_keys[out] = last[k].key;
            out_vals[out++] = last[k].val;
        }
        i += c == 0;
        k++;
    }
    free(last);
    return (long)out;
}

void kvlog_free(kvlog_t *log) {
    for (size_t i = 0; i < log->n; i++) {
        free(log->ops[i].key);
        free(log->ops[i].val);
    }
    free(log->ops);
    memset(log, 0, sizeof *log);
}
