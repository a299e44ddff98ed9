/* http: requests, responses and the sans-IO HTTP/1.1 connection core.
 *
 * The core (http_conn) is fed the bytes a client sent and the current
 * monotonic time in microseconds; it parses requests with llhttp, hands each complete request
 * to ops->on_request, keeps responses in request order (pipelining), and
 * collects the bytes to send in conn->out. It does no I/O and owns no timer:
 * the I/O layer (conn.c) asks it for the next deadline and calls
 * http_conn_tick() then. This keeps it testable and fuzzable without sockets.
 *
 * Ownership: a request belongs to its connection core until its response has
 * been serialized, then it is freed, unless a worker job still refers to it
 * (req->pending_work); then the request is detached (req->conn == NULL) and
 * the job's completion frees it (see worker.c). A response belongs to whoever
 * built it until http_respond() takes it. */
#ifndef SKD_HTTP_H
#define SKD_HTTP_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"

struct route;
struct http_conn;

#define HTTP_MAX_PARAMS 4

typedef struct http_header {
    const char *name;  /* as sent; compare case-insensitively */
    const char *value; /* surrounding whitespace removed by llhttp */
} http_header_t;

typedef struct http_response {
    int status;
    const char *content_type; /* static string or NULL */
    buf_t headers;            /* extra "Name: value\r\n" lines */
    buf_t body;
} http_response_t;

typedef struct http_request {
    struct http_conn *conn;    /* NULL once detached from a closed connection */
    struct http_request *next; /* queue of the connection, in arrival order */
    int method;                /* llhttp_method_t */
    bool http10;
    bool keep_alive;
    bool expect_continue;
    bool complete;     /* the whole request (with body) has arrived */
    bool dispatched;   /* handed to ops->on_request */
    bool pending_work; /* a worker job refers to this request */
    /* See http_request_on_abandon(). */
    void (*on_abandon)(struct http_request *req, void *arg);
    void *abandon_arg;
    const char *target;        /* request target as sent, NUL-terminated */
    const char *path;          /* target without the query, NUL-terminated */
    const char *query;         /* after '?', or NULL */
    http_header_t *headers;
    size_t nheaders;
    buf_t body;
    http_response_t *response; /* set by http_respond() */
    /* Set by the router. */
    const struct route *route;
    const char *param_names[HTTP_MAX_PARAMS];
    const char *param_values[HTTP_MAX_PARAMS];
    size_t nparams;
    char *path_parts; /* the router's split copy of path */
    uint64_t start_us; /* monotonic time (µs) of the read holding the first byte */
    uint64_t dispatch_us;
    /* Request target, header names and values, NUL-separated; the pointers
     * above point into it once the head is complete. */
    buf_t head;
    size_t *offsets; /* while parsing: 2 per header (name, value) into head */
    size_t offsets_cap; /* headers that offsets has room for */
} http_request_t;

typedef struct http_limits {
    size_t max_header_bytes; /* request line and all headers */
    size_t max_headers;
    size_t max_body_bytes;
    size_t max_pipelined;    /* requests received and not yet answered */
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms; /* longest pause between body bytes */
    uint64_t idle_timeout_ms;
    uint64_t request_timeout_ms; /* longest wait for a handler's answer */
    size_t max_output_bytes;     /* parsing pauses while this much output waits */
} http_limits_t;

typedef struct http_conn_ops {
    /* A complete request; the handler answers it now or later with http_respond(). */
    void (*on_request)(struct http_conn *c, http_request_t *req);
    /* A response was serialized into c->out (access log and metrics);
     * bytes is the number of body bytes sent. */
    void (*on_response)(struct http_conn *c, const http_request_t *req, int status, size_t bytes);
    /* Output became pending outside http_conn_feed()/http_conn_tick(),
     * e.g. a worker job answered; the I/O layer should flush. */
    void (*on_output)(struct http_conn *c);
    /* The monotonic time (µs), read when an answer comes outside
     * http_conn_feed()/http_conn_tick() (which are given the time). */
    uint64_t (*now)(struct http_conn *c);
} http_conn_ops_t;

typedef enum http_read_phase {
    HTTP_PHASE_IDLE,   /* between requests */
    HTTP_PHASE_HEAD,   /* request line and headers */
    HTTP_PHASE_BODY,
} http_read_phase_t;

typedef struct http_conn {
    llhttp_t parser;
    const http_limits_t *limits;
    const http_conn_ops_t *ops;
    void *owner;               /* the I/O layer's connection */
    http_request_t *queue;     /* oldest request not yet answered and sent */
    http_request_t *tail;
    http_request_t *parsing;   /* request being parsed (also the queue's tail) */
    size_t waiting;            /* complete requests not yet answered */
    buf_t in;                  /* input not yet parsed (parsing paused) */
    size_t in_off;             /* parsed bytes at the start of in */
    http_request_t *completed; /* just completed by llhttp, to dispatch */
    buf_t out;                 /* bytes for the I/O layer to send */
    http_read_phase_t phase;
    uint64_t now_us;
    uint64_t phase_us;         /* start of the idle/head phase, or last body byte */
    int error_status;          /* status for the error that stopped parsing */
    const char *error_message;
    bool header_field_open;    /* llhttp delivers names and values in pieces */
    size_t trailer_bytes;      /* trailer fields seen (bounded, not kept) */
    bool closing;              /* read no more; close once the queue is sent */
    bool draining;             /* shutting down: close after the current request */
    bool in_call;              /* inside advance(): answers are picked up there */
} http_conn_t;

/* ---- core ---- */
void http_conn_init(http_conn_t *c, const http_limits_t *limits, const http_conn_ops_t *ops, void *owner,
                    uint64_t now_us);
/* Frees every request (detaching those a worker job holds) and the buffers. */
void http_conn_free(http_conn_t *c);
/* Feeds bytes received from the client. */
void http_conn_feed(http_conn_t *c, const char *data, size_t len, uint64_t now_us);
/* The client closed its side: no more requests. Answers already given
 * still go out; if a handler is still working, the client is gone and the
 * connection is done at once. */
void http_conn_eof(http_conn_t *c);
/* Acts on timeouts; call when the deadline has passed. */
void http_conn_tick(http_conn_t *c, uint64_t now_us);
/* Absolute monotonic time (µs) of the next timeout, or 0 for none. */
uint64_t http_conn_deadline(const http_conn_t *c);
/* Parses kept input once output has drained (see max_output_bytes). */
void http_conn_pump(http_conn_t *c, uint64_t now_us);
/* Whether received input waits to be parsed. */
bool http_conn_has_input(const http_conn_t *c);
/* Whether the I/O layer should read more (false: paused or closing). */
bool http_conn_wants_read(const http_conn_t *c);
/* Whether everything is answered and the connection should close once c->out is sent. */
bool http_conn_done(const http_conn_t *c);
/* Stops reading new requests (graceful shutdown); queued ones are answered. */
void http_conn_stop(http_conn_t *c);
/* Whether nothing is in progress (no request queued or partly read). */
bool http_conn_idle(const http_conn_t *c);

/* ---- requests ---- */
/* Header value by case-insensitive name, or NULL. */
const char *http_request_header(const http_request_t *req, const char *name);
const char *http_request_param(const http_request_t *req, const char *name);
void http_request_free(http_request_t *req);
/* For a handler that answers later without a worker job (a long-poll): cb
 * runs once if the request ends before the handler answers it (timed out
 * or its connection closed); from then on the handler must not touch req.
 * Answering with http_respond() cancels the registration. */
void http_request_on_abandon(http_request_t *req, void (*cb)(http_request_t *req, void *arg), void *arg);

/* ---- responses ---- */
http_response_t *http_response_new(int status);
/* Adds a header; fails on CR, LF or NUL in name or value. */
int http_response_header(http_response_t *resp, const char *name, const char *value);
int http_response_body(http_response_t *resp, const char *content_type, const void *data, size_t len);
void http_response_free(http_response_t *resp);
const char *http_status_reason(int status);

/* Answers a request; takes resp. A request that was already answered (timed
 * out) or whose connection is gone drops resp. */
void http_respond(http_request_t *req, http_response_t *resp);
/* Answers with an empty body (e.g. 204). */
void http_respond_empty(http_request_t *req, int status);
/* Answers {"message": message} with status. */
void http_respond_error(http_request_t *req, int status, const char *message);
/* Answers with a JSON text (serialized by the caller). */
void http_respond_json(http_request_t *req, int status, const char *json, size_t len);

#endif
