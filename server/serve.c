#include "serve.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "../certs/acme_self.h"
#include "../certs/certs_service.h"
#include "../common/log.h"
#include "../keys/keys_service.h"
#include "../store/store.h"
#include "config.h"

/* Each connection needs a descriptor: raise the soft limit to the hard one. */
static void raise_fd_limit(const config_t *cfg) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && cfg->max_connections + 64 > rl.rlim_cur)
        log_warn("max_connections = %zu but only %llu file descriptors are allowed (ulimit -n)",
                 cfg->max_connections, (unsigned long long)rl.rlim_cur);
}

static void close_handle(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int serve_run(const char *config_path, serve_setup_fn setup, void *arg) {
    config_t cfg;
    char err[512];
    if (config_load(&cfg, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "skd: %s\n", err);
        return 1;
    }
    log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN); /* a closed peer is an error code, not a signal */
    raise_fd_limit(&cfg);
    /* libuv sizes its pool from the environment at the first job. */
    char threads[16];
    snprintf(threads, sizeof threads, "%u", cfg.worker_threads);
    setenv("UV_THREADPOOL_SIZE", threads, 1);

    uv_loop_t loop;
    uv_loop_init(&loop);
    keys_install_secure_json_alloc();
    server_t *server = malloc(sizeof *server);
    keys_service_t keys = {0};
    certs_service_t certs = {0};
    acme_self_t acme = {0};
    store_t *store = NULL;
    int rc = 1;
    if (!server || server_init(server, &loop, &cfg) != 0 || (setup && setup(server, arg) != 0)) {
        log_error("cannot set up the server: out of memory");
    } else if (cfg.store_path && !(store = store_open_sqlite(cfg.store_path, err, sizeof err))) {
        log_error("store: %s", err);
    } else if (cfg.hsm_module && keys_service_init(&keys, server, store, &cfg) != 0) {
        log_error("cannot start without the HSM");
    } else if (certs_service_init(&certs, server, store, &cfg) != 0) {
        log_error("cannot start the installations API");
    } else if (acme_self_init(&acme, server, &certs, &cfg) != 0) {
        log_error("cannot start [acme]");
    } else if (server_start(server) == 0) {
        log_info("skd %s ready: %u worker threads, at most %zu connections", SKD_VERSION, cfg.worker_threads,
                 cfg.max_connections);
        if (cfg.hsm_module)
            log_info("waiting for the HSM PIN on the admin listener (PUT /hsm-pin)");
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = server->exit_code;
        if (server->metrics.worker_queue_depth > 0) {
            /* The shutdown deadline passed with jobs still running on worker
             * threads; they cannot be cancelled, so leave without them. */
            log_warn("exiting with %llu worker job(s) still running",
                     (unsigned long long)server->metrics.worker_queue_depth);
            log_flush();
            _exit(rc);
        }
    }
    /* After a failed start some handles are open: close them and let them finish. */
    acme_self_close(&acme);
    certs_service_close(&certs);
    uv_walk(&loop, close_handle, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        log_error("event loop closed with handles still open");
    keys_service_free(&keys);
    acme_self_free(&acme);
    certs_service_free(&certs);
    store_close(store);
    if (server)
        server_free(server);
    free(server);
    config_free(&cfg);
    log_flush();
    return rc;
}
