#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/net.h"
#include "proxy_v2.h"

/* How long a closing connection keeps reading (and discarding) after its last
 * answer, so that the client reads the answer instead of a reset. */
#define LINGER_US (2 * 1000 * 1000)

typedef struct write_req {
    uv_write_t req;
    buf_t data;
} write_req_t;

static void after_event(conn_t *c);

static uint64_t now_us(void) {
    return uv_hrtime() / 1000;
}

static const config_t *cfg_of(const conn_t *c) {
    return c->server->cfg;
}

/* ---- HTTP core callbacks ---- */

static void on_request(http_conn_t *hc, http_request_t *req) {
    conn_t *c = hc->owner;
    server_dispatch(c->server, c, req);
}

/* Copies a request path for the log, replacing anything unprintable. */
static void printable(char *out, size_t cap, const char *in) {
    size_t i = 0;
    for (; in && in[i] && i + 1 < cap; i++)
        out[i] = (in[i] > 0x20 && in[i] < 0x7f && in[i] != '"') ? in[i] : '?';
    out[i] = '\0';
    if (i == 0 && cap > 1)
        out[0] = '-', out[1] = '\0';
}

static void on_response(http_conn_t *hc, const http_request_t *req, int status, size_t bytes) {
    conn_t *c = hc->owner;
    uint64_t duration = now_us() - req->start_us;
    metrics_observe_request(&c->server->metrics, req->route ? req->route->pattern : "unmatched", status, duration);
    if (!cfg_of(c)->access_log)
        return;
    char path[256];
    printable(path, sizeof path, req->path);
    const char *method = req->path ? llhttp_method_name((llhttp_method_t)req->method) : "-";
    log_access(c->peer, method, path, status, bytes, duration);
}

static void on_output(http_conn_t *hc) {
    after_event(hc->owner);
}

static uint64_t http_now(http_conn_t *hc) {
    (void)hc;
    return now_us();
}

static const http_conn_ops_t http_ops = {
    .on_request = on_request,
    .on_response = on_response,
    .on_output = on_output,
    .now = http_now,
};

/* ---- closing ---- */

static void on_handle_closed(uv_handle_t *h) {
    conn_t *c = h->data;
    if (--c->handles_open > 0)
        return;
    server_t *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else if (s->conns == c)
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    s->metrics.connections_open--;
    free(c);
    server_connection_closed(s);
}

void conn_close(conn_t *c) {
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    http_conn_free(&c->http); /* requests held by worker jobs are detached */
    buf_free(&c->proxy_header);
    if (c->is_tls)
        tls_session_free(&c->tls);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    conn_t *c = req->data;
    free(req);
    if (status < 0)
        conn_close(c); /* also reached with UV_ECANCELED while closing: a no-op */
}

/* Everything is answered and written: send FIN, then read and discard for a
 * moment so that the client sees our last answer rather than a reset. */
static void begin_linger(conn_t *c) {
    c->state = CONN_LINGERING;
    c->linger_until_us = now_us() + LINGER_US;
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(c);
        return;
    }
    req->data = c;
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status) {
    write_req_t *w = (write_req_t *)req;
    conn_t *c = req->data;
    size_t len = w->data.len;
    buf_free(&w->data);
    free(w);
    if (c->state == CONN_CLOSING)
        return;
    c->write_bytes -= len;
    c->write_since_us = now_us();
    c->write_queue_seen = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (status < 0) {
        conn_close(c);
        return;
    }
    after_event(c);
}

/* Sends out (consumed); tries a direct write first so that the common case
 * needs no copy and no allocation. */
static int send_bytes(conn_t *c, buf_t *out) {
    size_t done = 0;
    if (c->write_bytes == 0) {
        uv_buf_t b = uv_buf_init(out->data, (unsigned)out->len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n < 0 && n != UV_EAGAIN)
            return -1;
        done = n > 0 ? (size_t)n : 0;
    }
    if (done < out->len) {
        write_req_t *w = malloc(sizeof *w);
        if (!w)
            return -1;
        buf_init(&w->data, 0);
        if (buf_append(&w->data, out->data + done, out->len - done) != 0) {
            free(w);
            return -1;
        }
        w->req.data = c;
        uv_buf_t b = uv_buf_init(w->data.data, (unsigned)w->data.len);
        if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
            buf_free(&w->data);
            free(w);
            return -1;
        }
        if (c->write_bytes == 0)
            c->write_since_us = now_us();
        c->write_bytes += w->data.len;
        c->write_queue_seen = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    }
    out->len = 0; /* keep the storage for the next answer */
    return 0;
}

static int flush(conn_t *c) {
    if (!c->is_tls)
        return c->http.out.len ? send_bytes(c, &c->http.out) : 0;
    if (c->http.out.len) {
        if (tls_session_send(&c->tls, c->http.out.data, c->http.out.len) != TLS_OK)
            return -1;
        c->http.out.len = 0;
    }
    buf_t cipher;
    buf_init(&cipher, 0);
    int rc = tls_session_take_output(&c->tls, &cipher);
    if (rc == 0 && cipher.len)
        rc = send_bytes(c, &cipher);
    buf_free(&cipher);
    return rc;
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    conn_t *c = h->data;
    /* Shared by all connections: each read is consumed before the next. */
    *buf = uv_buf_init(c->server->read_buf, sizeof c->server->read_buf);
}

static void feed_plaintext(void *arg, const char *data, size_t len) {
    conn_t *c = arg;
    http_conn_feed(&c->http, data, len, now_us());
}

/* Hands bytes from the client to TLS or straight to HTTP; false if the
 * connection was closed. */
static bool consume(conn_t *c, const char *data, size_t len) {
    if (!c->is_tls) {
        http_conn_feed(&c->http, data, len, now_us());
        return true;
    }
    tls_status_t st = tls_session_recv(&c->tls, data, len, feed_plaintext, c);
    if (!c->handshake_done && SSL_is_init_finished(c->tls.ssl))
        c->handshake_done = true;
    if (st == TLS_FAILED) {
        if (!c->handshake_done)
            c->server->metrics.tls_handshake_failures++;
        flush(c); /* the alert, if any */
        conn_close(c);
        return false;
    }
    if (st == TLS_CLOSED)
        http_conn_eof(&c->http);
    return true;
}

/* Collects the PROXY v2 header a load balancer sends first; the bytes after
 * it (often in the same read) go on as the client's. Only the header is
 * buffered: at most PROXY_V2_MAX bytes. False if the connection was closed. */
static bool take_proxy_header(conn_t *c, const char *data, size_t len) {
    size_t had = c->proxy_header.len;
    size_t take = PROXY_V2_MAX - had < len ? PROXY_V2_MAX - had : len;
    proxy_v2_info_t info;
    int n = -1;
    if (buf_append(&c->proxy_header, data, take) == 0)
        n = proxy_v2_parse((const uint8_t *)c->proxy_header.data, c->proxy_header.len, &info);
    if (n < 0 || (n == 0 && c->proxy_header.len == PROXY_V2_MAX)) {
        log_security("%s: no valid PROXY v2 header from a load balancer: closing", c->peer);
        conn_close(c);
        return false;
    }
    if (n == 0)
        return true; /* more to come */
    c->awaiting_proxy = false;
    if (!info.local)
        c->client_addr = info.source;
    snprintf(c->vpce_id, sizeof c->vpce_id, "%s", info.vpce_id);
    /* The header ended n - had bytes into this read. */
    size_t used = (size_t)n - had;
    buf_free(&c->proxy_header);
    return used == len || consume(c, data + used, len - used);
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
    conn_t *c = stream->data;
    if (c->state == CONN_LINGERING) {
        if (n < 0)
            conn_close(c); /* the client closed too: done */
        return;            /* discard */
    }
    if (n > 0) {
        bool open = c->awaiting_proxy ? take_proxy_header(c, buf->base, (size_t)n)
                                      : consume(c, buf->base, (size_t)n);
        if (!open)
            return;
    } else if (n == UV_EOF) {
        c->peer_eof = true;
        c->reading = false; /* libuv stops reading at EOF */
        http_conn_eof(&c->http);
    } else if (n < 0) {
        conn_close(c);
        return;
    }
    after_event(c);
}

static void set_reading(conn_t *c, bool want) {
    if (want == c->reading)
        return;
    if (want) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
            return;
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    c->reading = want;
}

/* ---- timer ---- */

static void on_timer(uv_timer_t *t);

/* The PROXY header and the TLS handshake come before any request and are
 * bounded by the header timeout from the accept on. */
static bool in_preamble(const conn_t *c) {
    return c->awaiting_proxy || (c->is_tls && !c->handshake_done);
}

static uint64_t earliest(uint64_t a, uint64_t b) {
    if (!a)
        return b;
    if (!b)
        return a;
    return a < b ? a : b;
}

static void update_timer(conn_t *c) {
    const config_t *cfg = cfg_of(c);
    uint64_t due;
    if (c->state == CONN_LINGERING) {
        due = c->linger_until_us;
    } else {
        due = http_conn_deadline(&c->http);
        if (c->write_bytes)
            due = earliest(due, c->write_since_us + cfg->write_timeout_ms * 1000);
        if (in_preamble(c))
            due = earliest(due, c->http.phase_us + cfg->http.header_timeout_ms * 1000);
    }
    /* Deadlines move with every request; re-arming each time costs heap
     * operations per request. A timer already set to fire earlier is left
     * alone: when it fires, on_timer() finds nothing due and sets it again. */
    if (due == c->timer_due_us || (due && c->timer_due_us && c->timer_due_us < due))
        return;
    c->timer_due_us = due;
    if (!due) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = now_us();
    uint64_t delay_ms = due > now ? (due - now + 999) / 1000 : 0;
    uv_timer_start(&c->timer, on_timer, delay_ms, 0);
}

static void on_timer(uv_timer_t *t) {
    conn_t *c = t->data;
    const config_t *cfg = cfg_of(c);
    uint64_t now = now_us();
    c->timer_due_us = 0;
    if (c->state == CONN_LINGERING) {
        if (now >= c->linger_until_us)
            conn_close(c);
        else
            update_timer(c);
        return;
    }
    if (c->write_bytes && now >= c->write_since_us + cfg->write_timeout_ms * 1000) {
        /* libuv reports whole writes only: a shrinking queue is progress too. */
        size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
        if (queued < c->write_queue_seen) {
            c->write_queue_seen = queued;
            c->write_since_us = now;
        } else {
            log_debug("%s: closing: client does not read its answers", c->peer);
            conn_close(c);
            return;
        }
    }
    if (in_preamble(c) && now >= c->http.phase_us + cfg->http.header_timeout_ms * 1000) {
        log_debug("%s: closing: %s timeout", c->peer, c->awaiting_proxy ? "PROXY header" : "TLS handshake");
        if (!c->awaiting_proxy)
            c->server->metrics.tls_handshake_failures++;
        conn_close(c);
        return;
    }
    http_conn_tick(&c->http, now);
    after_event(c);
}

/* ---- the state after every event ---- */

static void after_event(conn_t *c) {
    if (c->state != CONN_OPEN)
        return;
    size_t write_limit = cfg_of(c)->write_queue_bytes;
    /* Send what is ready; while the client keeps up, parse what input the
     * core kept back because its output was full. */
    for (;;) {
        if (flush(c) != 0) {
            conn_close(c);
            return;
        }
        if (c->write_bytes >= write_limit || !http_conn_has_input(&c->http))
            break;
        size_t before = c->http.in.len - c->http.in_off;
        http_conn_pump(&c->http, now_us());
        if (c->http.out.len == 0 && c->http.in.len - c->http.in_off == before)
            break; /* blocked on something else: answers not yet given */
    }
    if (http_conn_done(&c->http) && c->write_bytes == 0) {
        if (c->peer_eof) {
            /* Everything we sent is with the kernel and nothing unread is
             * left: closing now sends a clean FIN. */
            conn_close(c);
            return;
        }
        if (c->is_tls) {
            tls_session_shutdown(&c->tls);
            if (flush(c) != 0) {
                conn_close(c);
                return;
            }
        }
        begin_linger(c);
        if (c->state == CONN_LINGERING) {
            set_reading(c, true);
            update_timer(c);
        }
        return;
    }
    set_reading(c, !c->peer_eof && http_conn_wants_read(&c->http) && c->write_bytes < write_limit);
    update_timer(c);
}

/* ---- accepting ---- */

static void format_peer(conn_t *c) {
    int len = sizeof c->peer_addr;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer_addr, &len) != 0)
        memset(&c->peer_addr, 0, sizeof c->peer_addr);
    net_format(&c->peer_addr, c->peer, sizeof c->peer);
}

static void free_unaccepted(uv_handle_t *h) {
    free(h->data);
}

int conn_accept(listener_t *l) {
    server_t *s = l->server;
    conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return UV_ENOMEM;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    int rc = uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp);
    if (rc == 0 && l->tls && tls_session_init(&c->tls, s->tls_ctx) != 0)
        rc = UV_ENOMEM;
    if (rc != 0) {
        uv_close((uv_handle_t *)&c->tcp, free_unaccepted);
        return rc;
    }
    c->server = s;
    c->listener = l;
    c->is_tls = l->tls;
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    uv_tcp_nodelay(&c->tcp, 1);
    format_peer(c);
    c->client_addr = c->peer_addr;
    buf_init(&c->proxy_header, PROXY_V2_MAX);
    if (l->kind == LISTENER_PUBLIC && s->cfg->proxy_protocol_from_count) {
        int family = c->peer_addr.ss_family;
        const void *addr = family == AF_INET ? (const void *)&((struct sockaddr_in *)&c->peer_addr)->sin_addr
                                             : (const void *)&((struct sockaddr_in6 *)&c->peer_addr)->sin6_addr;
        c->awaiting_proxy =
            cidr_list_contains(s->cfg->proxy_protocol_from, s->cfg->proxy_protocol_from_count, family, addr);
    }
    http_conn_init(&c->http, &s->cfg->http, &http_ops, c, now_us());
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->metrics.connections_open++;
    s->metrics.connections_total++;
    after_event(c);
    return 0;
}

void conn_stop(conn_t *c) {
    if (c->state != CONN_OPEN)
        return;
    http_conn_stop(&c->http);
    after_event(c);
}

bool conn_peer_is_loopback(const conn_t *c) {
    return net_is_loopback(&c->peer_addr);
}
