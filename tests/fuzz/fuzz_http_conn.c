/* libFuzzer target: arbitrary bytes through the HTTP connection core, cut
 * into pieces at arbitrary places, with time passing, answers given now or
 * later in any order, graceful stop and end of input. Checks that nothing
 * crashes, leaks or breaks the core's invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/http.h"

#define MAX_HELD 16

typedef struct fuzz_state {
    http_request_t *held[MAX_HELD];
    size_t nheld;
    unsigned answer_mode;
} fuzz_state_t;

static void on_request(http_conn_t *c, http_request_t *req) {
    fuzz_state_t *st = c->owner;
    /* Read the request as a handler would. */
    for (size_t i = 0; i < req->nheaders; i++)
        if (strlen(req->headers[i].name) + strlen(req->headers[i].value) > 512)
            abort(); /* max_header_bytes bounds both */
    if (http_request_header(req, "Host") && strlen(req->path) > 512)
        abort();
    /* Answer at once, or keep the request for later (as a worker job would). */
    if ((st->answer_mode++ % 3) == 0 || st->nheld == MAX_HELD) {
        http_respond_error(req, 404, "Unimplemented");
        return;
    }
    req->pending_work = true;
    st->held[st->nheld++] = req;
}

static void on_response(http_conn_t *c, const http_request_t *req, int status, size_t bytes) {
    (void)c;
    (void)req;
    (void)bytes;
    if (status < 100 || status > 599)
        abort();
}

static void on_output(http_conn_t *c) {
    (void)c;
}

static const http_conn_ops_t ops = {.on_request = on_request, .on_response = on_response, .on_output = on_output};

/* Finishes a held request as worker.c does. */
static void finish_held(fuzz_state_t *st, size_t i) {
    http_request_t *req = st->held[i];
    st->held[i] = st->held[--st->nheld];
    req->pending_work = false;
    if (!req->conn)
        http_request_free(req);
    else if (!req->response)
        http_respond_empty(req, 204);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const http_limits_t limits = {
        .max_header_bytes = 512,
        .max_headers = 8,
        .max_body_bytes = 256,
        .max_pipelined = 4,
        .header_timeout_ms = 100,
        .body_timeout_ms = 100,
        .idle_timeout_ms = 1000,
        .request_timeout_ms = 300,
        .max_output_bytes = 4096,
    };
    fuzz_state_t st = {0};
    http_conn_t c;
    uint64_t now = 1000000;
    http_conn_init(&c, &limits, &ops, &st, now);
    uint32_t rng = (uint32_t)size * 2654435761u + 1;
    size_t pos = 0;
    while (pos < size) {
        rng = rng * 1103515245u + 12345u;
        size_t piece = 1 + (rng >> 16) % 64;
        if (piece > size - pos)
            piece = size - pos;
        if (http_conn_wants_read(&c) || c.closing)
            http_conn_feed(&c, (const char *)data + pos, piece, now);
        pos += piece;
        c.out.len = 0; /* the I/O layer sent it */
        switch ((rng >> 8) % 8) {
        case 0:
            now += 50000;
            if (http_conn_deadline(&c) && now >= http_conn_deadline(&c))
                http_conn_tick(&c, now);
            break;
        case 1:
            if (st.nheld)
                finish_held(&st, (rng >> 4) % st.nheld);
            break;
        case 2:
            if ((rng >> 12) % 16 == 0)
                http_conn_stop(&c);
            break;
        default:
            break;
        }
    }
    http_conn_eof(&c);
    while (st.nheld && c.queue)
        finish_held(&st, 0);
    http_conn_free(&c);
    while (st.nheld)
        finish_held(&st, 0);
    return 0;
}
