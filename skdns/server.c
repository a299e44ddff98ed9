#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "../common/log.h"
#include "server_internal.h"

/* ---- UDP ---- */

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    listener_t *l = h->data;
    *buf = uv_buf_init((char *)l->srv->udp_in, UDP_CHUNK * UDP_BATCH);
}

static void udp_set_reading(dnssrv_t *s, bool on);

static void udp_sent(uv_udp_send_t *req, int status) {
    udp_out_t *out = (udp_out_t *)req;
    dnssrv_t *s = ((listener_t *)req->handle->data)->srv;
    if (status < 0 && status != UV_ECANCELED)
        log_debug("UDP send: %s", uv_strerror(status));
    out->next_free = s->free_out;
    s->free_out = out;
    s->n_free++;
    if (s->paused && !s->closing && s->n_free * 2 >= s->cfg->buffers)
        udp_set_reading(s, true);
}

/* Sends now if the socket takes it, else queues a copy in a pool buffer. */
static void udp_send(listener_t *l, const uint8_t *data, size_t len, const struct sockaddr *to) {
    dnssrv_t *s = l->srv;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int r = uv_udp_try_send(&l->udp, &b, 1, to);
    if (r >= 0) {
        s->stats.udp_answers++;
        return;
    }
    if (r != UV_EAGAIN) {
        log_debug("UDP send: %s", uv_strerror(r));
        s->stats.udp_dropped++;
        return;
    }
    udp_out_t *out = s->free_out;
    if (!out) { /* only between the pause and the end of a batch */
        s->stats.udp_dropped++;
        return;
    }
    s->free_out = out->next_free;
    s->n_free--;
    memcpy(out->data, data, len);
    b = uv_buf_init((char *)out->data, (unsigned)len);
    if (uv_udp_send(&out->req, &l->udp, &b, 1, to, udp_sent) != 0) {
        out->next_free = s->free_out;
        s->free_out = out;
        s->n_free++;
        s->stats.udp_dropped++;
        return;
    }
    s->stats.udp_answers++;
    if (s->n_free == 0 && !s->paused) { /* back-pressure: the next answer would have nowhere to go */
        s->stats.pool_exhausted++;
        udp_set_reading(s, false);
    }
}

/* Sends the answers of a recvmmsg batch with one sendmmsg; what the socket
 * does not take goes through udp_send(), which queues it. */
static void udp_flush(listener_t *l) {
    dnssrv_t *s = l->srv;
    size_t n = s->n_batch, sent = 0;
    s->n_batch = 0;
    uv_os_fd_t fd;
    if (n == 0)
        return;
    if (l->udp.send_queue_count == 0 && uv_fileno((uv_handle_t *)&l->udp, &fd) == 0) {
        struct mmsghdr msgs[UDP_BATCH];
        struct iovec iov[UDP_BATCH];
        for (size_t i = 0; i < n; i++) {
            udp_reply_t *r = &s->batch[i];
            iov[i] = (struct iovec){r->data, r->len};
            msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &r->to, .msg_iov = &iov[i], .msg_iovlen = 1}};
            msgs[i].msg_hdr.msg_namelen =
                r->to.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        }
        int r;
        do
            r = sendmmsg(fd, msgs, (unsigned)n, 0);
        while (r < 0 && errno == EINTR);
        if (r > 0) {
            sent = (size_t)r;
            s->stats.udp_answers += sent;
        }
    }
    for (size_t i = sent; i < n; i++)
        udp_send(l, s->batch[i].data, s->batch[i].len, (const struct sockaddr *)&s->batch[i].to);
}

/* The answer to one datagram into out: its length, 0 for none. */
static size_t udp_answer(dnssrv_t *s, const uint8_t *q, size_t len, const struct sockaddr *from, uint8_t *out) {
    size_t n = 0;
    switch (rl_check(s->rl, from, uv_now(s->loop))) {
    case RL_PASS:
        n = dns_answer(s->zone, q, len, false, s->feed_state(s->feed_arg), out, DNS_UDP_MAX);
        break;
    case RL_SLIP:
        s->stats.slipped++;
        n = dns_tc_reply(q, len, out, DNS_UDP_MAX);
        break;
    case RL_DROP:
        s->stats.rate_limited++;
        return 0;
    }
    if (n == 0)
        s->stats.udp_dropped++; /* not a query, or malformed */
    return n;
}

/* With recvmmsg, libuv calls this once per datagram (UV_UDP_MMSG_CHUNK),
 * then once more with UV_UDP_MMSG_FREE: the answers are batched in
 * between. Without it, each datagram is answered at once. */
static void udp_read(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                     unsigned flags) {
    listener_t *l = h->data;
    dnssrv_t *s = l->srv;
    if (flags & UV_UDP_MMSG_FREE) {
        udp_flush(l);
        return;
    }
    if (nread < 0) {
        log_debug("UDP receive on %s: %s", l->addr->text, uv_strerror((int)nread));
        return;
    }
    if (!from || nread == 0)
        return; /* nothing more to read now, or an empty datagram */
    s->stats.udp_queries++;
    if (flags & UV_UDP_PARTIAL) {
        s->stats.udp_dropped++;
        return;
    }
    bool batched = (flags & UV_UDP_MMSG_CHUNK) && s->n_batch < UDP_BATCH;
    udp_reply_t *r = &s->batch[batched ? s->n_batch : 0];
    uint8_t one[DNS_UDP_MAX];
    size_t n = udp_answer(s, (const uint8_t *)buf->base, (size_t)nread, from, batched ? r->data : one);
    if (n == 0)
        return;
    if (!batched) {
        udp_send(l, one, n, from);
        return;
    }
    r->len = n;
    memcpy(&r->to, from, from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    s->n_batch++;
}

static void udp_set_reading(dnssrv_t *s, bool on) {
    s->paused = !on;
    for (size_t i = 0; i < s->n_listeners; i++) {
        int r = on ? uv_udp_recv_start(&s->listeners[i].udp, udp_alloc, udp_read)
                   : uv_udp_recv_stop(&s->listeners[i].udp);
        if (r != 0)
            log_warn("UDP on %s: %s", s->listeners[i].addr->text, uv_strerror(r));
    }
    log_debug("UDP reading %s (%zu free buffers)", on ? "resumed" : "paused", s->n_free);
}

/* ---- life cycle ---- */

static int listen_on(dnssrv_t *s, listener_t *l) {
    const struct sockaddr *sa = (const struct sockaddr *)&l->addr->addr;
    unsigned v6only = sa->sa_family == AF_INET6 ? UV_UDP_IPV6ONLY : 0;
    int r = uv_udp_init_ex(s->loop, &l->udp, AF_UNSPEC | UV_UDP_RECVMMSG);
    if (r != 0)
        return r;
    l->udp.data = l;
    s->open_handles++;
    if ((r = uv_tcp_init(s->loop, &l->tcp)) != 0)
        return r;
    l->tcp.data = l;
    s->open_handles++;
    if ((r = uv_udp_bind(&l->udp, sa, v6only)) != 0 ||
        (r = uv_tcp_bind(&l->tcp, sa, v6only ? UV_TCP_IPV6ONLY : 0)) != 0 ||
        (r = uv_listen((uv_stream_t *)&l->tcp, 128, tcp_on_connection)) != 0)
        return r;
    return uv_udp_recv_start(&l->udp, udp_alloc, udp_read);
}

int dnssrv_start(dnssrv_t **out, uv_loop_t *loop, const skdns_config_t *cfg, const zone_t *zone,
                 dnssrv_feed_fn feed_state, void *arg) {
    *out = NULL;
    uint64_t key[2];
    if (getrandom(key, sizeof key, 0) != sizeof key)
        return UV_EIO;
    dnssrv_t *s = calloc(1, sizeof *s);
    if (!s)
        return UV_ENOMEM;
    s->loop = loop;
    s->cfg = cfg;
    s->zone = zone;
    s->feed_state = feed_state;
    s->feed_arg = arg;
    s->rl = rl_new(&cfg->rate_limit, key);
    s->pool = calloc(cfg->buffers, sizeof *s->pool);
    s->listeners = calloc(cfg->n_listen, sizeof *s->listeners);
    s->udp_in = malloc(UDP_CHUNK * UDP_BATCH);
    if (!s->rl || !s->pool || !s->listeners || !s->udp_in) {
        rl_free(s->rl);
        free(s->udp_in);
        free(s->pool);
        free(s->listeners);
        free(s);
        return UV_ENOMEM;
    }
    for (size_t i = cfg->buffers; i-- > 0;) {
        s->pool[i].next_free = s->free_out;
        s->free_out = &s->pool[i];
    }
    s->n_free = cfg->buffers;
    *out = s;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        listener_t *l = &s->listeners[s->n_listeners++];
        l->srv = s;
        l->addr = &cfg->listen[i];
        int r = listen_on(s, l);
        if (r != 0) {
            log_error("DNS listener %s: %s", l->addr->text, uv_strerror(r));
            return r; /* the caller closes the server */
        }
        log_info("DNS on %s (UDP and TCP)", l->addr->text);
    }
    return 0;
}

static void finish(dnssrv_t *s) {
    void (*cb)(void *) = s->close_cb;
    void *arg = s->close_arg;
    rl_free(s->rl);
    free(s->udp_in);
    free(s->pool);
    free(s->listeners);
    free(s);
    if (cb)
        cb(arg);
}

void dnssrv_release(dnssrv_t *s) {
    if (--s->open_handles == 0 && s->closing)
        finish(s);
}

static void listener_closed(uv_handle_t *h) {
    dnssrv_release(((listener_t *)h->data)->srv);
}

void dnssrv_close(dnssrv_t *s, void (*cb)(void *arg), void *arg) {
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    if (s->open_handles == 0) { /* nothing was opened */
        finish(s);
        return;
    }
    tcp_close_all(s);
    for (size_t i = 0; i < s->n_listeners; i++) {
        listener_t *l = &s->listeners[i];
        if (l->udp.data)
            uv_close((uv_handle_t *)&l->udp, listener_closed);
        if (l->tcp.data)
            uv_close((uv_handle_t *)&l->tcp, listener_closed);
    }
}

const dnssrv_stats_t *dnssrv_stats(const dnssrv_t *s) {
    return &s->stats;
}
