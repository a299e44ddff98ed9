/* conn: one client connection: a TCP handle, an optional TLS session and the
 * HTTP core, with the timers, write accounting and graceful close around them. */
#ifndef SKD_CONN_H
#define SKD_CONN_H

#include <stdbool.h>
#include <uv.h>

#include "http.h"
#include "server.h"
#include "tls.h"

typedef enum conn_state {
    CONN_OPEN,
    CONN_LINGERING, /* FIN sent; discarding input briefly so the client reads our answer */
    CONN_CLOSING,   /* handles are closing */
} conn_state_t;

typedef struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    server_t *server;
    listener_t *listener;
    struct conn *prev, *next;
    http_conn_t http;
    tls_session_t tls;
    bool is_tls;
    bool handshake_done;
    bool reading;
    bool peer_eof; /* the client closed its sending side */
    conn_state_t state;
    int handles_open;
    size_t write_bytes;      /* queued in uv_write and not yet completed */
    uint64_t write_since_us; /* last write progress while write_bytes > 0 */
    size_t write_queue_seen; /* libuv's queue size at the last progress */
    uint64_t linger_until_us;
    uint64_t timer_due_us;   /* when the timer is set to fire, 0 if stopped */
    struct sockaddr_storage peer_addr; /* the immediate peer */
    char peer[64]; /* "127.0.0.1:40000" or "[::1]:40000" */
    /* The client: the peer, or what a PROXY v2 header from a configured load
     * balancer says, with the VPC endpoint it came through ("" if none). */
    struct sockaddr_storage client_addr;
    char vpce_id[64];
    bool awaiting_proxy; /* the PROXY v2 header has not arrived whole yet */
    buf_t proxy_header;
} conn_t;

/* Accepts a pending connection from l; returns 0 or a libuv error. */
int conn_accept(listener_t *l);
/* Graceful shutdown: stop reading new requests, answer the queued ones. */
void conn_stop(conn_t *c);
/* Closes at once (shutdown deadline). */
void conn_close(conn_t *c);
/* Whether the peer is on the loopback network. */
bool conn_peer_is_loopback(const conn_t *c);

#endif
