#include "metrics.h"

#include <inttypes.h>
#include <string.h>

/* Upper bounds of the latency buckets in microseconds. */
static const uint64_t bucket_us[METRICS_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000,
};

void metrics_init(metrics_t *m) {
    memset(m, 0, sizeof *m);
}

void metrics_observe_request(metrics_t *m, const char *route, int status, uint64_t duration_us) {
    size_t i;
    for (i = 0; i < m->nseries; i++)
        if (m->series[i].status == status && strcmp(m->series[i].route, route) == 0)
            break;
    if (i == m->nseries) {
        if (m->nseries == METRICS_MAX_SERIES) {
            m->dropped_series++;
            i = METRICS_MAX_SERIES;
        } else {
            m->series[m->nseries++] = (metrics_series_t){.route = route, .status = status};
        }
    }
    if (i < METRICS_MAX_SERIES)
        m->series[i].count++;
    size_t b = 0;
    while (b < METRICS_BUCKETS && duration_us > bucket_us[b])
        b++;
    m->buckets[b]++;
    m->duration_sum_us += duration_us;
    m->duration_count++;
}

static void gauge(buf_t *o, const char *name, const char *type, const char *help, uint64_t value) {
    buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, value);
}

int metrics_render(const metrics_t *m, buf_t *o) {
    buf_append_str(o, "# HELP skd_http_requests_total HTTP requests answered, by route and status.\n"
                      "# TYPE skd_http_requests_total counter\n");
    for (size_t i = 0; i < m->nseries; i++)
        buf_printf(o, "skd_http_requests_total{route=\"%s\",status=\"%d\"} %" PRIu64 "\n", m->series[i].route,
                   m->series[i].status, m->series[i].count);
    buf_append_str(o, "# HELP skd_http_request_duration_seconds Time from the first byte of a request to its "
                      "response.\n# TYPE skd_http_request_duration_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t b = 0; b < METRICS_BUCKETS; b++) {
        cumulative += m->buckets[b];
        buf_printf(o, "skd_http_request_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                   (double)bucket_us[b] / 1e6, cumulative);
    }
    cumulative += m->buckets[METRICS_BUCKETS];
    buf_printf(o, "skd_http_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cumulative);
    buf_printf(o, "skd_http_request_duration_seconds_sum %.6f\n", (double)m->duration_sum_us / 1e6);
    buf_printf(o, "skd_http_request_duration_seconds_count %" PRIu64 "\n", m->duration_count);
    gauge(o, "skd_http_series_dropped_total", "counter", "Requests not counted by route: too many series.",
          m->dropped_series);
    gauge(o, "skd_http_connections_open", "gauge", "Open client connections.", m->connections_open);
    gauge(o, "skd_http_connections_total", "counter", "Client connections accepted.", m->connections_total);
    gauge(o, "skd_http_accept_paused_total", "counter", "Times accepting paused at max_connections.",
          m->connections_refused);
    gauge(o, "skd_tls_handshake_failures_total", "counter", "TLS sessions that failed.", m->tls_handshake_failures);
    gauge(o, "skd_worker_queue_depth", "gauge", "Jobs submitted to the worker pool and not yet completed.",
          m->worker_queue_depth);
    gauge(o, "skd_worker_jobs_total", "counter", "Jobs completed by the worker pool.", m->worker_jobs_total);
    gauge(o, "skd_worker_jobs_rejected_total", "counter", "Jobs refused because the queue was full.",
          m->worker_jobs_rejected);
    if (m->audit.enabled) {
        gauge(o, "skd_audit_records_total", "counter", "Audit records made durable.", m->audit.records_total);
        gauge(o, "skd_audit_batches_total", "counter", "Batches (flushes) that made audit records durable.",
              m->audit.batches_total);
        gauge(o, "skd_audit_failures_total", "counter",
              "Calls failed because their audit record could not be signed or written.", m->audit.failures_total);
    }
    if (m->acme.enabled) {
        buf_append_str(o, "# HELP skd_acme_state The state of skd's own certificate (ACME).\n"
                          "# TYPE skd_acme_state gauge\n");
        for (const char *const *s = m->acme.states; *s; s++)
            buf_printf(o, "skd_acme_state{state=\"%s\"} %d\n", *s, m->acme.state == *s);
        buf_printf(o, "# HELP skd_acme_next_renewal_seconds When skd renews its certificate (Unix time; 0: "
                      "unknown).\n# TYPE skd_acme_next_renewal_seconds gauge\nskd_acme_next_renewal_seconds %" PRId64
                      "\n", m->acme.next_renewal);
        gauge(o, "skd_acme_renewals_total", "counter", "Certificates obtained over ACME and installed.",
              m->acme.renewals_total);
        gauge(o, "skd_acme_failures_total", "counter", "ACME attempts that failed (retried with backoff).",
              m->acme.failures_total);
    }
    return 0;
}
