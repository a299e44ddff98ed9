/* DNS over TCP (RFC 7766): length-framed queries, answered in order. */
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/net.h"
#include "server_internal.h"

struct tcp_conn {
    dnssrv_t *srv;
    tcp_conn_t *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t idle;
    int handles; /* open handles of this connection */
    size_t unwritten; /* answers queued in uv_write */
    bool reading, eof, closing;
    size_t in_len;
    uint8_t in[2 + TCP_QUERY_MAX];
};

typedef struct tcp_write {
    uv_write_t req;
    tcp_conn_t *conn;
    uint8_t data[];
} tcp_write_t;

static void conn_closed(uv_handle_t *h) {
    tcp_conn_t *c = h->data;
    dnssrv_t *s = c->srv;
    if (--c->handles == 0)
        free(c);
    dnssrv_release(s);
}

static void conn_close(tcp_conn_t *c) {
    if (c->closing)
        return;
    c->closing = true;
    dnssrv_t *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    uv_close((uv_handle_t *)&c->idle, conn_closed);
}

void tcp_close_all(dnssrv_t *s) {
    while (s->conns)
        conn_close(s->conns);
}

static void on_idle(uv_timer_t *t) {
    conn_close(t->data);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    tcp_conn_t *c = h->data;
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(sizeof c->in - c->in_len));
}

static void conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void set_reading(tcp_conn_t *c, bool on) {
    if (c->reading == on || c->closing)
        return;
    c->reading = on;
    if (on)
        uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

static void advance(tcp_conn_t *c);

static void written(uv_write_t *req, int status) {
    tcp_write_t *w = (tcp_write_t *)req;
    tcp_conn_t *c = w->conn;
    free(w);
    c->unwritten--;
    if (c->closing)
        return;
    if (status < 0)
        conn_close(c);
    else
        advance(c);
}

/* Writes what the socket takes now; queues a copy of the rest. */
static int send_answer(tcp_conn_t *c, const uint8_t *data, size_t len) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r == (int)len)
        return 0;
    if (r < 0 && r != UV_EAGAIN)
        return r;
    size_t done = r > 0 ? (size_t)r : 0;
    tcp_write_t *w = malloc(sizeof *w + len - done);
    if (!w)
        return UV_ENOMEM;
    w->conn = c;
    memcpy(w->data, data + done, len - done);
    b = uv_buf_init((char *)w->data, (unsigned)(len - done));
    if ((r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, written)) != 0) {
        free(w);
        return r;
    }
    c->unwritten++;
    return 0;
}

/* Answers every whole frame in c->in; -1 closes the connection. */
static int answer_frames(tcp_conn_t *c) {
    dnssrv_t *s = c->srv;
    size_t off = 0;
    while (c->in_len - off >= 2 && c->unwritten < s->cfg->tcp_max_pipelined) {
        size_t flen = dns_get16(c->in + off);
        if (flen > TCP_QUERY_MAX)
            return -1;
        if (c->in_len - off - 2 < flen)
            break;
        s->stats.tcp_queries++;
        size_t n = dns_answer(s->zone, c->in + off + 2, flen, true, s->feed_state(s->feed_arg),
                              s->tcp_answer + 2, DNS_TCP_MAX);
        off += 2 + flen;
        if (n == 0)
            continue; /* not a query: nothing to say */
        dns_put16(s->tcp_answer, (uint16_t)n);
        if (send_answer(c, s->tcp_answer, n + 2) != 0)
            return -1;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

/* Answers what can be answered, then reads on only if there is room for
 * more answers and more input; after the client's EOF, closes once every
 * answer is written. */
static void advance(tcp_conn_t *c) {
    size_t max = c->srv->cfg->tcp_max_pipelined;
    if (answer_frames(c) != 0 || (c->eof && c->unwritten == 0)) {
        conn_close(c);
        return;
    }
    set_reading(c, !c->eof && c->unwritten < max && c->in_len < sizeof c->in);
}

static void conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    tcp_conn_t *c = stream->data;
    if (nread == 0)
        return; /* nothing read this time */
    if (nread == UV_EOF) {
        c->eof = true;
    } else if (nread < 0) {
        conn_close(c);
        return;
    } else {
        c->in_len += (size_t)nread;
        uv_timer_again(&c->idle);
    }
    advance(c);
}

void tcp_on_connection(uv_stream_t *stream, int status) {
    listener_t *l = stream->data;
    dnssrv_t *s = l->srv;
    if (status < 0) {
        log_warn("TCP accept on %s: %s", l->addr->text, uv_strerror(status));
        return;
    }
    tcp_conn_t *c = calloc(1, sizeof *c);
    if (!c || uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c);
        log_warn("TCP accept on %s: out of memory", l->addr->text);
        return;
    }
    c->srv = s;
    c->tcp.data = c;
    c->idle.data = c;
    c->handles = 2;
    s->open_handles += 2;
    uv_timer_init(s->loop, &c->idle);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(stream, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (s->n_conns > s->cfg->tcp_max_connections) {
        s->stats.tcp_refused++;
        struct sockaddr_storage peer;
        int len = sizeof peer;
        char text[64] = "?";
        if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) == 0)
            net_format(&peer, text, sizeof text);
        log_security("TCP connection from %s refused: %zu open already", text, s->cfg->tcp_max_connections);
        conn_close(c);
        return;
    }
    s->stats.tcp_connections++;
    uv_timer_start(&c->idle, on_idle, s->cfg->tcp_idle_timeout_ms, s->cfg->tcp_idle_timeout_ms);
    set_reading(c, true);
}
