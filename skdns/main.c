/* skdns: the authoritative DNS server of the installations' zone, fed by
 * skd through kvpsync. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../common/log.h"
#include "config.h"
#include "feed.h"
#include "server.h"

#define SKDNS_VERSION "0.1.0"

typedef struct app {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    dnssrv_t *srv;
    feed_t *feed;
    bool stopping;
} app_t;

static void usage(FILE *out) {
    fprintf(out, "Usage: skdns -c FILE\n"
                 "\n"
                 "Serves the installations' zone over UDP and TCP, fed by skd through kvpsync.\n"
                 "SIGTERM or SIGINT: stop.\n"
                 "\n"
                 "  -c, --config FILE   configuration (INI), see skdns/skdns.conf.example\n"
                 "  -h, --help          show this help\n"
                 "  -V, --version       print the version\n");
}

static void stop(app_t *app) {
    if (app->stopping)
        return;
    app->stopping = true;
    if (app->srv) {
        const dnssrv_stats_t *st = dnssrv_stats(app->srv);
        log_info("UDP: %llu queries, %llu answers, %llu dropped, %llu rate-limited, %llu truncated by the limit, "
                 "%llu pauses for buffers; TCP: %llu connections (%llu refused), %llu queries",
                 (unsigned long long)st->udp_queries, (unsigned long long)st->udp_answers,
                 (unsigned long long)st->udp_dropped, (unsigned long long)st->rate_limited,
                 (unsigned long long)st->slipped, (unsigned long long)st->pool_exhausted,
                 (unsigned long long)st->tcp_connections, (unsigned long long)st->tcp_refused,
                 (unsigned long long)st->tcp_queries);
        dnssrv_close(app->srv, NULL, NULL);
    }
    if (app->feed)
        feed_close(app->feed, NULL, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
    log_info("%s: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
    stop(h->data);
}

static int run(const skdns_config_t *cfg) {
    uint64_t key[2];
    char err[256];
    if (getrandom(key, sizeof key, 0) != sizeof key) {
        log_error("getrandom failed");
        return 1;
    }
    zone_t *zone = zone_new(&cfg->zone, key, err, sizeof err);
    if (!zone) {
        log_error("%s: %s", cfg->path, err);
        return 1;
    }
    app_t app = {0};
    uv_loop_init(&app.loop);
    uv_signal_init(&app.loop, &app.sigint);
    uv_signal_init(&app.loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    int status = 0;
    if (feed_start(&app.feed, &app.loop, cfg, zone) != 0 ||
        dnssrv_start(&app.srv, &app.loop, cfg, zone, feed_state, app.feed) != 0) {
        status = 1;
        stop(&app);
    } else {
        log_info("skdns %s ready", SKDNS_VERSION);
    }
    uv_run(&app.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&app.loop) != 0)
        log_warn("event loop closed with handles still open");
    zone_free(zone);
    log_info("skdns stopped");
    return status;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    const char *config_path = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("skdns %s\n", SKDNS_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!config_path || optind != argc) {
        fprintf(stderr, "skdns: %s\n", config_path ? "unexpected argument" : "missing -c FILE");
        return 2;
    }
    skdns_config_t cfg;
    char err[512];
    if (skdns_config_load(&cfg, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "skdns: %s\n", err);
        return 1;
    }
    log_set_level(cfg.log_level);
    signal(SIGPIPE, SIG_IGN); /* a closed peer is an error code, not a signal */
    int status = run(&cfg);
    skdns_config_free(&cfg);
    return status;
}
