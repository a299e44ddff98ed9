/* server: the libuv loop, its listeners, connections, signals and shutdown. */
#ifndef SKD_SERVER_H
#define SKD_SERVER_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <uv.h>

#include "config.h"
#include "metrics.h"
#include "router.h"
#include "worker.h"

struct conn;
struct server;

typedef enum listener_kind {
    LISTENER_PUBLIC,
    LISTENER_ADMIN,
} listener_kind_t;

typedef struct listener {
    uv_tcp_t tcp;
    struct server *server;
    listener_kind_t kind;
    bool tls;
    bool paused; /* a connection waits in libuv until there is room for it */
    const listen_addr_t *addr;
} listener_t;

/* Whether the service behind the public API can answer (the HSM issue plugs
 * its session pool in here); NULL means always. */
typedef bool (*server_health_fn)(void *ctx);

/* Copies counters kept elsewhere (other threads' state) into m before GET
 * /metrics renders it; NULL means none. Loop thread. */
typedef void (*server_metrics_fn)(void *ctx, metrics_t *m);

typedef struct server {
    uv_loop_t *loop;
    const config_t *cfg;
    listener_t *listeners;
    size_t nlisteners;
    router_t public_router;
    router_t admin_router;
    SSL_CTX *tls_ctx; /* for new handshakes; sessions hold their own reference */
    bool tls_reloading;
    bool tls_reload_again; /* asked for while one was running */
    struct conn *conns; /* every open connection */
    size_t nconns;
    worker_pool_t pool;
    metrics_t metrics;
    server_health_fn health;
    void *health_ctx;
    server_metrics_fn metrics_refresh;
    void *metrics_ctx;
    bool stopping;
    int exit_code; /* set by server_fail() */
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t shutdown_timer;
    uv_timer_t log_flush; /* writes buffered access lines every second */
    char read_buf[64 * 1024]; /* every read lands here and is consumed at once */
} server_t;

/* Sets up routes and state; nothing is bound yet. */
int server_init(server_t *s, uv_loop_t *loop, const config_t *cfg);
/* Loads TLS, binds every listener, installs signal handlers. Returns 0 or
 * -1 after logging why. */
int server_start(server_t *s);
/* Starts a graceful shutdown (as SIGTERM does). */
void server_stop(server_t *s);
/* Stops because skd cannot work safely (e.g. a key missing on the token):
 * graceful shutdown, then exit code 1. */
void server_fail(server_t *s);
/* Reloads the TLS certificate and key from the configured files off the loop;
 * new handshakes use them, open connections keep theirs. */
void server_reload_tls(server_t *s);
/* Frees what server_init and server_start made, after uv_run returned. */
void server_free(server_t *s);

/* Called by conn.c: a connection closed; routes a complete request. */
void server_connection_closed(server_t *s);
void server_dispatch(server_t *s, struct conn *c, http_request_t *req);

#endif
