/* metrics: counters and a latency histogram, rendered in the Prometheus text
 * format by GET /metrics on the admin listener. Loop thread only. */
#ifndef SKD_METRICS_H
#define SKD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"

#define METRICS_MAX_SERIES 256
#define METRICS_BUCKETS 14

typedef struct metrics_series {
    const char *route; /* static: a route pattern or "unmatched" */
    int status;
    uint64_t count;
} metrics_series_t;

/* skd's own certificate (certs/acme_self.c); rendered when enabled. */
typedef struct metrics_acme {
    bool enabled;
    const char *const *states; /* every state's name, NULL-terminated (static) */
    const char *state;         /* the current one, among states */
    int64_t next_renewal;      /* Unix seconds; 0: not known yet */
    uint64_t renewals_total;   /* certificates obtained and installed */
    uint64_t failures_total;   /* attempts that failed */
} metrics_acme_t;

/* The audit writer (audit/audit.c); rendered when enabled. */
typedef struct metrics_audit {
    bool enabled;
    uint64_t records_total;  /* made durable */
    uint64_t batches_total;  /* flushes that made them durable */
    uint64_t failures_total; /* calls failed for want of their record */
} metrics_audit_t;

typedef struct metrics {
    metrics_series_t series[METRICS_MAX_SERIES];
    size_t nseries;
    uint64_t dropped_series; /* observations beyond METRICS_MAX_SERIES */
    uint64_t buckets[METRICS_BUCKETS + 1]; /* the last one is +Inf */
    uint64_t duration_sum_us;
    uint64_t duration_count;
    uint64_t connections_open;
    uint64_t connections_total;
    uint64_t connections_refused; /* accept paused at max_connections */
    uint64_t tls_handshake_failures;
    uint64_t worker_queue_depth;
    uint64_t worker_jobs_total;
    uint64_t worker_jobs_rejected;
    metrics_acme_t acme;
    metrics_audit_t audit;
} metrics_t;

void metrics_init(metrics_t *m);
void metrics_observe_request(metrics_t *m, const char *route, int status, uint64_t duration_us);
int metrics_render(const metrics_t *m, buf_t *out);

#endif
