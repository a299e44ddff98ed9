#include "kvprecv.h"

#include "udp.h"

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    kvprecv_t *k = h->data;
    *buf = uv_buf_init((char *)k->rbuf, sizeof k->rbuf);
}

static void on_recv(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from, unsigned flags) {
    kvprecv_t *k = udp->data;
    if (nread <= 0 || !from || (flags & UV_UDP_PARTIAL))
        return;
    uint8_t out[KVPS_MAX_PACKET];
    uint64_t now = uv_now(udp->loop);
    size_t n = kvps_receiver_handle(k->r, (const uint8_t *)buf->base, (size_t)nread, now, out, sizeof out);
    if (n) {
        uv_buf_t b = uv_buf_init((char *)out, (unsigned)n);
        uv_udp_try_send(udp, &b, 1, from); /* a reply that cannot go now is a lost datagram */
    }
}

int kvprecv_init(kvprecv_t *k, uv_loop_t *loop, const struct sockaddr *addr, kvps_receiver_t *r) {
    k->r = r;
    k->close_cb = NULL;
    int rc = kvps_udp_open(loop, &k->udp, addr, on_alloc, on_recv);
    k->udp.data = k;
    return rc;
}

static void on_closed(uv_handle_t *h) {
    kvprecv_t *k = h->data;
    if (k->close_cb)
        k->close_cb(k);
}

void kvprecv_close(kvprecv_t *k, void (*cb)(kvprecv_t *)) {
    k->close_cb = cb;
    uv_close((uv_handle_t *)&k->udp, on_closed);
}
