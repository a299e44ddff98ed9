/* skd-testserver: skd's server with extra routes that exercise the worker
 * pool and request bodies from integration tests. Never installed.
 *
 *   GET  /test/sleep/{ms}  a worker job sleeps ms (at most 10 s), then 200 {"slept": ms}
 *   POST /test/echo        200 with the request body; X-Body-Length header
 *   GET  /test/stats       {"completed": n, "discarded": n}: finished sleep jobs,
 *                          and those whose client had gone or timed out
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../server/serve.h"

typedef struct test_state {
    server_t *server;
    unsigned long completed;
    unsigned long discarded;
} test_state_t;

typedef struct sleep_job {
    test_state_t *state;
    unsigned ms;
} sleep_job_t;

static void sleep_work(void *arg) {
    sleep_job_t *job = arg;
    usleep(job->ms * 1000u);
}

static void sleep_done(int status, http_request_t *req, void *arg) {
    sleep_job_t *job = arg;
    if (status != 0) {
        job->state->discarded++;
    } else {
        job->state->completed++;
        char body[64];
        int n = snprintf(body, sizeof body, "{\"slept\":%u}", job->ms);
        http_respond_json(req, 200, body, (size_t)n);
    }
    free(job);
}

static void handle_sleep(http_request_t *req, void *ctx) {
    test_state_t *st = ctx;
    char *end;
    unsigned long ms = strtoul(http_request_param(req, "ms"), &end, 10);
    if (*end || ms > 10000) {
        http_respond_error(req, 400, "Bad parameters");
        return;
    }
    sleep_job_t *job = malloc(sizeof *job);
    if (!job) {
        http_respond_error(req, 500, "Out of memory");
        return;
    }
    *job = (sleep_job_t){.state = st, .ms = (unsigned)ms};
    int rc = worker_submit_for_request(&st->server->pool, req, sleep_work, sleep_done, job);
    if (rc != 0) {
        free(job);
        http_respond_error(req, 503, "Server busy");
    }
}

static void handle_echo(http_request_t *req, void *ctx) {
    (void)ctx;
    http_response_t *resp = http_response_new(200);
    char len[32];
    snprintf(len, sizeof len, "%zu", req->body.len);
    if (!resp || http_response_body(resp, "application/octet-stream", req->body.data, req->body.len) != 0 ||
        http_response_header(resp, "X-Body-Length", len) != 0) {
        http_response_free(resp);
        http_respond_error(req, 500, "Out of memory");
        return;
    }
    http_respond(req, resp);
}

static void handle_stats(http_request_t *req, void *ctx) {
    test_state_t *st = ctx;
    char body[128];
    int n = snprintf(body, sizeof body, "{\"completed\":%lu,\"discarded\":%lu}", st->completed, st->discarded);
    http_respond_json(req, 200, body, (size_t)n);
}

static int add_test_routes(server_t *s, void *arg) {
    test_state_t *st = arg;
    st->server = s;
    if (router_add(&s->public_router, HTTP_GET, "/test/sleep/{ms}", handle_sleep, st) != 0 ||
        router_add(&s->public_router, HTTP_POST, "/test/echo", handle_echo, st) != 0 ||
        router_add(&s->public_router, HTTP_GET, "/test/stats", handle_stats, st) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 || strcmp(argv[1], "-c") != 0) {
        fprintf(stderr, "usage: skd-testserver -c FILE\n");
        return 2;
    }
    test_state_t st = {0};
    return serve_run(argv[2], add_test_routes, &st);
}
