/* What server.c and tcp.c share. */
#ifndef SKDNS_SERVER_INTERNAL_H
#define SKDNS_SERVER_INTERNAL_H

#include "ratelimit.h"
#include "server.h"

#define UDP_CHUNK 65536 /* libuv's recvmmsg reads one datagram per 64 KiB of buffer */
#define UDP_BATCH 20    /* ... and at most 20 at once */
#define TCP_QUERY_MAX 4096 /* larger frames close the connection */

typedef struct udp_out { /* a UDP answer waiting for the socket */
    uv_udp_send_t req;
    struct udp_out *next_free;
    uint8_t data[DNS_UDP_MAX];
} udp_out_t;

typedef struct udp_reply { /* an answer of the current recvmmsg batch */
    struct sockaddr_storage to;
    size_t len;
    uint8_t data[DNS_UDP_MAX];
} udp_reply_t;

typedef struct listener {
    dnssrv_t *srv;
    const skdns_addr_t *addr;
    uv_udp_t udp;
    uv_tcp_t tcp;
} listener_t;

typedef struct tcp_conn tcp_conn_t;

struct dnssrv {
    uv_loop_t *loop;
    const skdns_config_t *cfg;
    const zone_t *zone;
    dnssrv_feed_fn feed_state;
    void *feed_arg;
    rl_t *rl;
    listener_t *listeners;
    size_t n_listeners;
    udp_out_t *pool, *free_out;
    size_t n_free;
    bool paused; /* UDP reading stopped: no free buffer */
    tcp_conn_t *conns; /* open TCP connections */
    size_t n_conns;
    size_t open_handles;
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
    dnssrv_stats_t stats;
    uint8_t *udp_in; /* UDP_BATCH chunks */
    udp_reply_t batch[UDP_BATCH];
    size_t n_batch;
    uint8_t tcp_answer[2 + DNS_TCP_MAX];
};

/* tcp.c */
void tcp_on_connection(uv_stream_t *stream, int status);
void tcp_close_all(dnssrv_t *s);
/* server.c: one of the server's handles (listeners, connections, timers) is closed. */
void dnssrv_release(dnssrv_t *s);

#endif
