/* The sans-IO HTTP/1.1 connection core; see http.h.
 *
 * Everything happens in advance(): answered requests at the head of the queue
 * are serialized in order, then input is parsed until one request completes
 * (llhttp is paused after each request so that dispatching happens outside its
 * callbacks), and so on until nothing moves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"

/* Input kept while parsing is paused never exceeds what was read before the
 * I/O layer stopped reading (one read), so this bound is only a safety net. */
#define HTTP_IN_LIMIT (1024 * 1024)

static void advance(http_conn_t *c);

static http_conn_t *conn_of(llhttp_t *p) {
    return p->data;
}

/* Records why parsing stops; the message goes to the client as JSON. */
static int stop_with(http_conn_t *c, int status, const char *message) {
    c->error_status = status;
    c->error_message = message;
    return -1;
}

/* ---- llhttp callbacks ---- */

static int on_message_begin(llhttp_t *p) {
    http_conn_t *c = conn_of(p);
    http_request_t *req = calloc(1, sizeof *req);
    if (!req)
        return stop_with(c, 503, "Out of memory");
    req->conn = c;
    req->start_us = c->now_us;
    buf_init(&req->head, c->limits->max_header_bytes);
    buf_init(&req->body, c->limits->max_body_bytes);
    if (c->tail)
        c->tail->next = req;
    else
        c->queue = req;
    c->tail = req;
    c->parsing = req;
    c->phase = HTTP_PHASE_HEAD;
    c->phase_us = c->now_us;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
    http_conn_t *c = conn_of(p);
    if (buf_append(&c->parsing->head, at, len) != 0)
        return stop_with(c, 414, "Request target too long");
    return 0;
}

static int append_nul(http_conn_t *c) {
    if (buf_append(&c->parsing->head, "", 1) != 0)
        return stop_with(c, 431, "Request headers too large");
    return 0;
}

static int on_url_complete(llhttp_t *p) {
    return append_nul(conn_of(p));
}

/* RFC 9110 token characters. llhttp 8.1 lets whitespace before the colon
 * through, which RFC 9112 requires a server to reject (a smuggling vector). */
static bool is_token(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", ch))
            return false;
    }
    return true;
}

/* Trailer fields (after a chunked body) are not kept, only bounded. */
static int skip_trailer(http_conn_t *c, size_t len) {
    c->trailer_bytes += len;
    if (c->trailer_bytes > c->limits->max_header_bytes)
        return stop_with(c, 431, "Request trailers too large");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    http_conn_t *c = conn_of(p);
    http_request_t *req = c->parsing;
    if (!is_token(at, len))
        return stop_with(c, 400, "Malformed header name");
    if (c->phase == HTTP_PHASE_BODY)
        return skip_trailer(c, len);
    if (!c->header_field_open) {
        if (req->nheaders >= c->limits->max_headers)
            return stop_with(c, 431, "Too many request headers");
        if (req->nheaders == req->offsets_cap) {
            /* Grows by doubling: most requests carry a handful of headers. */
            size_t cap = req->offsets_cap ? req->offsets_cap * 2 : 8;
            size_t *grown = realloc(req->offsets, 2 * cap * sizeof *grown);
            if (!grown)
                return stop_with(c, 503, "Out of memory");
            req->offsets = grown;
            req->offsets_cap = cap;
        }
        req->offsets[2 * req->nheaders] = req->head.len;
        c->header_field_open = true;
    }
    if (buf_append(&req->head, at, len) != 0)
        return stop_with(c, 431, "Request headers too large");
    return 0;
}

static int on_header_field_complete(llhttp_t *p) {
    http_conn_t *c = conn_of(p);
    if (c->phase == HTTP_PHASE_BODY)
        return 0;
    if (append_nul(c) != 0)
        return -1;
    /* An empty value gets no on_header_value call: its start is here. */
    c->parsing->offsets[2 * c->parsing->nheaders + 1] = c->parsing->head.len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    http_conn_t *c = conn_of(p);
    if (c->phase == HTTP_PHASE_BODY)
        return skip_trailer(c, len);
    if (buf_append(&c->parsing->head, at, len) != 0)
        return stop_with(c, 431, "Request headers too large");
    return 0;
}

static int on_header_value_complete(llhttp_t *p) {
    http_conn_t *c = conn_of(p);
    if (c->phase == HTTP_PHASE_BODY) {
        c->header_field_open = false;
        return 0;
    }
    if (append_nul(c) != 0)
        return -1;
    c->parsing->nheaders++;
    c->header_field_open = false;
    return 0;
}

/* Splits the target into path and query, then turns the offsets gathered
 * while parsing into pointers (the head buffer does not grow after this). */
static int finish_head(http_conn_t *c, http_request_t *req) {
    /* Origin form only ("/path?query"): skd is no proxy. */
    if (req->head.len == 0 || req->head.data[0] != '/')
        return stop_with(c, 400, "Bad request target");
    size_t target_len = strlen(req->head.data);
    const char *q = memchr(req->head.data, '?', target_len);
    size_t path_off = 0, query_off = 0;
    if (q) {
        size_t path_len = (size_t)(q - req->head.data);
        query_off = path_len + 1;
        path_off = req->head.len;
        /* The copy is bounded by the target, which already passed the limit:
         * it must not count twice. Reserve first: its source is the buffer itself. */
        req->head.limit = 0;
        if (buf_reserve(&req->head, path_len + 1) != 0)
            return stop_with(c, 431, "Request headers too large");
        buf_append(&req->head, req->head.data, path_len);
        buf_append(&req->head, "", 1);
    }
    char *base = req->head.data;
    req->target = base;
    req->path = base + path_off;
    req->query = q ? base + query_off : NULL;
    if (req->nheaders) {
        req->headers = calloc(req->nheaders, sizeof *req->headers);
        if (!req->headers)
            return stop_with(c, 503, "Out of memory");
        for (size_t i = 0; i < req->nheaders; i++) {
            req->headers[i].name = base + req->offsets[2 * i];
            req->headers[i].value = base + req->offsets[2 * i + 1];
        }
    }
    free(req->offsets);
    req->offsets = NULL;
    return 0;
}

static int on_headers_complete(llhttp_t *p) {
    http_conn_t *c = conn_of(p);
    http_request_t *req = c->parsing;
    if (finish_head(c, req) != 0)
        return -1;
    req->method = llhttp_get_method(p);
    req->http10 = llhttp_get_http_major(p) == 1 && llhttp_get_http_minor(p) == 0;
    req->keep_alive = llhttp_should_keep_alive(p);
    /* RFC 9112 3.2: exactly one Host in HTTP/1.1, never two. */
    size_t hosts = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        hosts += strcasecmp(req->headers[i].name, "Host") == 0;
    if (hosts > 1 || (hosts == 0 && !req->http10))
        return stop_with(c, 400, hosts ? "Duplicate Host header" : "Missing Host header");
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->limits->max_body_bytes)
        return stop_with(c, 413, "Request body too large");
    const char *expect = http_request_header(req, "Expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0)
            return stop_with(c, 417, "Unsupported expectation");
        req->expect_continue = !req->http10;
    }
    c->phase = HTTP_PHASE_BODY;
    c->phase_us = c->now_us;
    c->trailer_bytes = 0;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    http_conn_t *c = conn_of(p);
    if (buf_append(&c->parsing->body, at, len) != 0)
        return stop_with(c, 413, "Request body too large");
    c->phase_us = c->now_us;
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    http_conn_t *c = conn_of(p);
    http_request_t *req = c->parsing;
    req->complete = true;
    req->expect_continue = false;
    c->parsing = NULL;
    c->completed = req;
    c->waiting++;
    c->phase = HTTP_PHASE_IDLE;
    c->phase_us = c->now_us;
    if (!req->keep_alive || p->upgrade || c->draining)
        c->closing = true; /* no upgrades: answer this one, then close */
    return HPE_PAUSED;     /* dispatch outside llhttp, see advance() */
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- queue ---- */

void http_request_on_abandon(http_request_t *req, void (*cb)(http_request_t *req, void *arg), void *arg) {
    req->on_abandon = cb;
    req->abandon_arg = arg;
}

/* The handler will not get to answer req: tell it (once). */
static void abandon(http_request_t *req) {
    void (*cb)(http_request_t *, void *) = req->on_abandon;
    if (cb) {
        req->on_abandon = NULL;
        cb(req, req->abandon_arg);
    }
}

/* The core is done with req: free it, or leave it to the worker job holding it. */
static void release(http_request_t *req) {
    abandon(req);
    if (req->pending_work) {
        req->conn = NULL;
        req->next = NULL;
        return;
    }
    http_request_free(req);
}

static http_request_t *pop(http_conn_t *c) {
    http_request_t *req = c->queue;
    c->queue = req->next;
    if (!c->queue)
        c->tail = NULL;
    if (req->complete)
        c->waiting--;
    return req;
}

/* ---- output ---- */

/* "Sun, 22 Nov 2026 14:33:16 GMT", formatted once per second. */
static const char *http_date(void) {
    static time_t cached = -1;
    static char text[40];
    time_t now = time(NULL);
    if (now != cached) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached = now;
    }
    return text;
}

static void serialize(http_conn_t *c, http_request_t *req) {
    http_response_t *resp = req->response;
    bool last = c->closing && req->next == NULL && !c->parsing;
    bool has_body = resp->status >= 200 && resp->status != 204 && resp->status != 304;
    buf_t *o = &c->out;
    /* Plain appends: this runs once per answer and printf costs show. */
    char status[4] = {(char)('0' + resp->status / 100 % 10), (char)('0' + resp->status / 10 % 10),
                      (char)('0' + resp->status % 10), ' '};
    buf_append(o, "HTTP/1.1 ", 9);
    buf_append(o, status, 4);
    buf_append_str(o, http_status_reason(resp->status));
    buf_append(o, "\r\nDate: ", 8);
    buf_append_str(o, http_date());
    buf_append(o, "\r\n", 2);
    if (has_body) {
        if (resp->content_type) {
            buf_append(o, "Content-Type: ", 14);
            buf_append_str(o, resp->content_type);
            buf_append(o, "\r\n", 2);
        }
        buf_printf(o, "Content-Length: %zu\r\n", resp->body.len);
    }
    buf_append(o, resp->headers.data, resp->headers.len);
    if (last)
        buf_append_str(o, "Connection: close\r\n");
    else if (req->http10)
        buf_append_str(o, "Connection: keep-alive\r\n");
    buf_append(o, "\r\n", 2);
    size_t sent = 0;
    if (has_body && req->method != HTTP_HEAD) {
        buf_append(o, resp->body.data, resp->body.len);
        sent = resp->body.len;
    }
    if (c->ops->on_response)
        c->ops->on_response(c, req, resp->status, sent);
}

/* Serializes every answered request at the head of the queue, in order. */
static void flush_answered(http_conn_t *c) {
    while (c->queue && c->queue->response) {
        http_request_t *req = pop(c);
        serialize(c, req);
        release(req);
        if (!c->queue && c->phase == HTTP_PHASE_IDLE)
            c->phase_us = c->now_us; /* idle from the last answer on */
    }
    /* The client waits for "100 Continue" before sending the body; it may
     * only go out once every earlier response has. */
    http_request_t *req = c->queue;
    if (req && req == c->parsing && req->expect_continue && c->phase == HTTP_PHASE_BODY) {
        buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        req->expect_continue = false;
        c->phase_us = c->now_us; /* the body timer starts now */
    }
}

/* ---- input ---- */

/* Parsing failed: the request being parsed (or a new one standing for the
 * garbage) gets the error response; earlier requests are still answered. */
static void fail(http_conn_t *c, llhttp_errno_t err) {
    int status = c->error_status ? c->error_status : 400;
    const char *message = c->error_message;
    if (!message)
        message = err == HPE_INVALID_METHOD ? "Invalid method" : "Malformed request";
    http_request_t *req = c->parsing;
    if (!req) {
        if (on_message_begin(&c->parser) != 0)
            return; /* out of memory: close without an answer */
        req = c->parsing;
    }
    c->parsing = NULL;
    c->closing = true;
    c->in_off = c->in.len;
    http_respond_error(req, status, message);
}

/* Output is bounded too: many small pipelined requests answered at once
 * must not turn one read into megabytes of answers. */
static bool can_parse(const http_conn_t *c) {
    return !c->closing && c->in_off < c->in.len && c->waiting < c->limits->max_pipelined &&
           c->out.len < c->limits->max_output_bytes;
}

/* Parses until one request completes (then dispatches it) or input runs out. */
static void parse_some(http_conn_t *c) {
    const char *start = c->in.data + c->in_off;
    size_t len = c->in.len - c->in_off;
    llhttp_errno_t err = llhttp_execute(&c->parser, start, len);
    if (err == HPE_OK) {
        c->in_off = c->in.len;
    } else if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        c->in_off += (size_t)(llhttp_get_error_pos(&c->parser) - start);
        if (err == HPE_PAUSED)
            llhttp_resume(&c->parser);
        else
            llhttp_resume_after_upgrade(&c->parser);
    } else {
        fail(c, err);
    }
    if (c->in_off == c->in.len) {
        c->in.len = 0;
        c->in_off = 0;
    }
    http_request_t *req = c->completed;
    if (req) {
        c->completed = NULL;
        req->dispatched = true;
        req->dispatch_us = c->now_us;
        c->ops->on_request(c, req);
    }
}

static http_request_t *oldest_unanswered(const http_conn_t *c) {
    for (http_request_t *r = c->queue; r; r = r->next)
        if (r->dispatched && !r->response)
            return r;
    return NULL;
}

/* Callers set in_call around it, so that answers given meanwhile wait for
 * the loop here instead of re-entering it. */
static void advance(http_conn_t *c) {
    for (;;) {
        flush_answered(c);
        if (!can_parse(c))
            break;
        parse_some(c);
    }
    if (c->closing) {
        c->in.len = 0;
        c->in_off = 0;
    }
    /* A connection whose request waits for its handler (a worker job, a
     * long-poll) and has nothing left to parse gives its input buffer back:
     * 10,000 pending long-polls should not each hold a grown buffer. */
    if (c->in.len == 0 && c->in.cap && oldest_unanswered(c))
        buf_free(&c->in);
}

static void advance_from_call(http_conn_t *c) {
    c->in_call = true;
    advance(c);
    c->in_call = false;
}

/* ---- public ---- */

void http_conn_init(http_conn_t *c, const http_limits_t *limits, const http_conn_ops_t *ops, void *owner,
                    uint64_t now_us) {
    memset(c, 0, sizeof *c);
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
    c->limits = limits;
    c->ops = ops;
    c->owner = owner;
    buf_init(&c->in, HTTP_IN_LIMIT);
    buf_init(&c->out, 0);
    c->phase = HTTP_PHASE_IDLE;
    c->now_us = now_us;
    c->phase_us = now_us;
}

void http_conn_free(http_conn_t *c) {
    while (c->queue)
        release(pop(c));
    c->parsing = NULL;
    buf_free(&c->in);
    buf_free(&c->out);
}

void http_conn_feed(http_conn_t *c, const char *data, size_t len, uint64_t now_us) {
    c->now_us = now_us;
    if (c->closing)
        return; /* answers are pending or sent; nothing more is read */
    c->in_call = true;
    if (buf_append(&c->in, data, len) != 0) {
        /* Only reachable if the I/O layer ignores http_conn_wants_read(). */
        c->error_status = 503;
        c->error_message = "Input buffer full";
        fail(c, HPE_USER);
    }
    advance(c);
    c->in_call = false;
}

void http_conn_eof(http_conn_t *c) {
    c->closing = true;
    if (oldest_unanswered(c)) {
        /* The client left while handlers were still working (as nginx sees
         * it): the answers have nobody to go to. Their jobs' results are
         * discarded. */
        while (c->queue)
            release(pop(c));
        c->parsing = NULL;
        return;
    }
    http_request_t *partial = c->parsing;
    if (partial) {
        /* Half a request can never be answered: drop it. */
        c->parsing = NULL;
        http_request_t **pp = &c->queue;
        while (*pp != partial)
            pp = &(*pp)->next;
        *pp = NULL;
        c->tail = NULL;
        for (http_request_t *r = c->queue; r; r = r->next)
            c->tail = r;
        release(partial);
    }
    advance_from_call(c);
}

/* When the read in progress times out: the head, the body, or the wait for
 * the next request on an idle keep-alive connection. */
static uint64_t read_deadline(const http_conn_t *c) {
    const http_limits_t *l = c->limits;
    if (c->closing)
        return 0;
    switch (c->phase) {
    case HTTP_PHASE_HEAD:
        return c->phase_us + l->header_timeout_ms * 1000;
    case HTTP_PHASE_BODY:
        /* No body comes before our "100 Continue"; earlier requests are
         * bounded by the request timeout meanwhile. */
        if (c->parsing && c->parsing->expect_continue)
            return 0;
        return c->phase_us + l->body_timeout_ms * 1000;
    case HTTP_PHASE_IDLE:
        return c->queue ? 0 : c->phase_us + l->idle_timeout_ms * 1000;
    }
    return 0;
}

static uint64_t request_deadline(const http_request_t *r, const http_limits_t *l) {
    return r->dispatch_us + l->request_timeout_ms * 1000;
}

uint64_t http_conn_deadline(const http_conn_t *c) {
    uint64_t deadline = read_deadline(c);
    http_request_t *r = oldest_unanswered(c);
    if (r) {
        uint64_t d = request_deadline(r, c->limits);
        if (!deadline || d < deadline)
            deadline = d;
    }
    return deadline;
}

void http_conn_tick(http_conn_t *c, uint64_t now_us) {
    c->now_us = now_us;
    c->in_call = true;
    http_request_t *r = oldest_unanswered(c);
    if (r && now_us >= request_deadline(r, c->limits)) {
        abandon(r);
        http_respond_error(r, 503, "Request timed out");
    }
    uint64_t d = read_deadline(c);
    if (d && now_us >= d) {
        if (c->phase == HTTP_PHASE_IDLE) {
            c->closing = true; /* idle keep-alive connection: close quietly */
        } else {
            c->error_status = 408;
            c->error_message = c->phase == HTTP_PHASE_HEAD ? "Request header timeout" : "Request body timeout";
            fail(c, HPE_USER);
        }
    }
    advance(c);
    c->in_call = false;
}

void http_conn_pump(http_conn_t *c, uint64_t now_us) {
    c->now_us = now_us;
    c->in_call = true;
    advance(c);
    c->in_call = false;
}

bool http_conn_has_input(const http_conn_t *c) {
    return !c->closing && c->in_off < c->in.len;
}

bool http_conn_wants_read(const http_conn_t *c) {
    return !c->closing && c->waiting < c->limits->max_pipelined && c->in_off == c->in.len &&
           c->out.len < c->limits->max_output_bytes;
}

bool http_conn_done(const http_conn_t *c) {
    return c->closing && !c->queue;
}

void http_conn_stop(http_conn_t *c) {
    if (c->closing || c->draining)
        return;
    c->draining = true;
    c->in_call = true;
    if (c->phase == HTTP_PHASE_BODY) {
        /* The head is in: let the body arrive; the request is then answered
         * and on_message_complete() closes. */
    } else if (c->phase == HTTP_PHASE_HEAD) {
        /* Not read whole: tell the client to retry elsewhere. */
        c->error_status = 503;
        c->error_message = "Server shutting down";
        fail(c, HPE_USER);
    } else {
        c->closing = true;
    }
    advance(c);
    c->in_call = false;
}

bool http_conn_idle(const http_conn_t *c) {
    return !c->queue && c->phase == HTTP_PHASE_IDLE;
}

void http_respond(http_request_t *req, http_response_t *resp) {
    http_conn_t *c = req->conn;
    if (!c || req->response) {
        http_response_free(resp);
        return;
    }
    req->response = resp;
    req->on_abandon = NULL; /* answered */
    if (c->in_call)
        return; /* advance() is running and serializes it */
    if (c->ops->now)
        c->now_us = c->ops->now(c);
    advance_from_call(c);
    if (c->ops->on_output)
        c->ops->on_output(c);
}
