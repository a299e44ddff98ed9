/* Unit tests of the sans-IO HTTP/1.1 connection core: bytes and a clock in,
 * requests and bytes out, no sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/http.h"

#define MAX_SEEN 64

/* What the test's "handler" saw. In auto mode it answers 204 at once;
 * otherwise it keeps the requests for the test to answer. */
typedef struct fixture {
    http_conn_t conn;
    http_limits_t limits;
    http_request_t *seen[MAX_SEEN];
    size_t nseen;
    bool auto_answer;
    int responses;
    int outputs;
} fixture_t;

static void on_request(http_conn_t *c, http_request_t *req) {
    fixture_t *f = c->owner;
    assert_true(f->nseen < MAX_SEEN);
    f->seen[f->nseen++] = req;
    if (f->auto_answer)
        http_respond_empty(req, 204);
}

static void on_response(http_conn_t *c, const http_request_t *req, int status, size_t bytes) {
    (void)req;
    (void)status;
    (void)bytes;
    ((fixture_t *)c->owner)->responses++;
}

static void on_output(http_conn_t *c) {
    ((fixture_t *)c->owner)->outputs++;
}

/* The test's clock for answers given outside feed/tick. */
static uint64_t fake_now_us;

static uint64_t now(http_conn_t *c) {
    (void)c;
    return fake_now_us;
}

static const http_conn_ops_t ops = {
    .on_request = on_request, .on_response = on_response, .on_output = on_output, .now = now};

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof *f);
    f->limits = (http_limits_t){
        .max_header_bytes = 1024,
        .max_headers = 8,
        .max_body_bytes = 100,
        .max_pipelined = 4,
        .header_timeout_ms = 1000,
        .body_timeout_ms = 500,
        .idle_timeout_ms = 5000,
        .request_timeout_ms = 2000,
        .max_output_bytes = 65536,
    };
    f->auto_answer = true;
    http_conn_init(&f->conn, &f->limits, &ops, f, 1000000);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    http_conn_free(&f->conn);
    free(f);
    return 0;
}

static void feed(fixture_t *f, const char *s, uint64_t now_us) {
    http_conn_feed(&f->conn, s, strlen(s), now_us);
}

/* The output so far as a string; clears it. */
static char *take_out(fixture_t *f) {
    char *s = strndup(f->conn.out.data ? f->conn.out.data : "", f->conn.out.len);
    f->conn.out.len = 0;
    return s;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void simple_get(void **state) {
    fixture_t *f = *state;
    feed(f, "GET /v1/x?a=1&b=2 HTTP/1.1\r\nHost: example\r\nX-Empty:\r\nX-Long: a b  c\r\n\r\n", 1000000);
    assert_int_equal(f->nseen, 1);
    http_request_t *req = f->seen[0];
    (void)req; /* answered and freed already (auto mode) */
    char *out = take_out(f);
    assert_non_null(strstr(out, "HTTP/1.1 204 No Content\r\n"));
    assert_null(strstr(out, "Content-Length"));
    assert_null(strstr(out, "Connection: close"));
    free(out);
    assert_false(http_conn_done(&f->conn));
    assert_true(http_conn_wants_read(&f->conn));
    assert_int_equal(f->outputs, 0); /* answered inside feed: no notification needed */
}

static void parses_target_and_headers(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    feed(f, "POST /v1/x?a=1 HTTP/1.1\r\nHost: example\r\nX-Empty:\r\nx-long: a b  c\r\nContent-Length: 3\r\n\r\nabc",
         1);
    assert_int_equal(f->nseen, 1);
    http_request_t *req = f->seen[0];
    assert_int_equal(req->method, HTTP_POST);
    assert_string_equal(req->target, "/v1/x?a=1");
    assert_string_equal(req->path, "/v1/x");
    assert_string_equal(req->query, "a=1");
    assert_string_equal(http_request_header(req, "host"), "example");
    assert_string_equal(http_request_header(req, "X-EMPTY"), "");
    assert_string_equal(http_request_header(req, "X-Long"), "a b  c");
    assert_null(http_request_header(req, "Missing"));
    assert_int_equal(req->body.len, 3);
    assert_memory_equal(req->body.data, "abc", 3);
    http_respond_error(req, 400, "Bad \"parameters\"");
    assert_int_equal(f->outputs, 1); /* answered later: the I/O layer is told */
    char *out = take_out(f);
    assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(out, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(out, "\r\n\r\n{\"message\":\"Bad \\\"parameters\\\"\"}"));
    char *cl = strstr(out, "Content-Length: ");
    assert_non_null(cl);
    assert_int_equal(atoi(cl + 16), (int)strlen("{\"message\":\"Bad \\\"parameters\\\"\"}"));
    free(out);
}

/* Found by the fuzzer: splitting off the path copies the head buffer into
 * itself, which must survive the buffer moving. */
static void query_when_head_buffer_grows(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    char text[600];
    snprintf(text, sizeof text, "GET /p?q=1 HTTP/1.1\r\nHost: h\r\nX-Fill: %0240d\r\n\r\n", 7);
    feed(f, text, 1);
    assert_int_equal(f->nseen, 1);
    assert_string_equal(f->seen[0]->path, "/p");
    assert_string_equal(f->seen[0]->query, "q=1");
    assert_int_equal(strlen(http_request_header(f->seen[0], "X-Fill")), 240);
    http_respond_empty(f->seen[0], 204);
}

static void byte_by_byte_equals_whole(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    const char *req_text = "PUT /a/b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n";
    for (const char *p = req_text; *p; p++)
        http_conn_feed(&f->conn, p, 1, 1);
    assert_int_equal(f->nseen, 1);
    assert_string_equal(f->seen[0]->path, "/a/b");
    assert_int_equal(f->seen[0]->body.len, 5);
    assert_memory_equal(f->seen[0]->body.data, "abcde", 5);
    assert_null(http_request_header(f->seen[0], "Trailer")); /* trailers are not kept */
    assert_string_equal(http_request_header(f->seen[0], "Host"), "h");
    http_respond_empty(f->seen[0], 204);
}

static void pipelined_answers_keep_order(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    feed(f, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n", 1);
    assert_int_equal(f->nseen, 3);
    http_request_t *r1 = f->seen[0], *r2 = f->seen[1], *r3 = f->seen[2];
    http_respond_error(r3, 404, "three");
    assert_int_equal(f->conn.out.len, 0); /* 1 and 2 first */
    http_respond_error(r1, 404, "one");
    char *out = take_out(f);
    assert_non_null(strstr(out, "one"));
    assert_null(strstr(out, "three"));
    free(out);
    http_respond_error(r2, 404, "two");
    out = take_out(f);
    char *two = strstr(out, "two"), *three = strstr(out, "three");
    assert_non_null(two);
    assert_non_null(three);
    assert_true(two < three);
    free(out);
    assert_int_equal(f->responses, 3);
}

static void pipeline_limit_pauses_parsing(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    f->limits.max_pipelined = 2;
    feed(f, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n", 1);
    assert_int_equal(f->nseen, 2);
    assert_false(http_conn_wants_read(&f->conn));
    http_respond_empty(f->seen[0], 204);
    assert_int_equal(f->nseen, 3); /* the kept input is parsed as room appears */
    assert_string_equal(f->seen[2]->path, "/3");
    assert_true(http_conn_wants_read(&f->conn) == false); /* still 2 waiting */
    http_respond_empty(f->seen[1], 204);
    http_respond_empty(f->seen[2], 204);
    assert_true(http_conn_wants_read(&f->conn));
    char *out = take_out(f);
    assert_int_equal(count(out, "HTTP/1.1 204"), 3);
    free(out);
}

static void body_too_large_by_content_length(void **state) {
    fixture_t *f = *state;
    feed(f, "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10485760\r\n\r\n", 1);
    assert_int_equal(f->nseen, 0);
    char *out = take_out(f);
    assert_non_null(strstr(out, "HTTP/1.1 413 "));
    assert_non_null(strstr(out, "Connection: close\r\n"));
    free(out);
    assert_true(http_conn_done(&f->conn));
    assert_false(http_conn_wants_read(&f->conn));
    feed(f, "more body bytes", 2); /* ignored */
    assert_int_equal(f->conn.out.len, 0);
}

static void chunked_body_too_large(void **state) {
    fixture_t *f = *state;
    feed(f, "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 1);
    for (int i = 0; i < 20; i++)
        feed(f, "a\r\n0123456789\r\n", 2);
    char *out = take_out(f);
    assert_non_null(strstr(out, "HTTP/1.1 413 "));
    free(out);
    assert_true(http_conn_done(&f->conn));
}

static void expect_continue(void **state) {
    fixture_t *f = *state;
    feed(f, "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n", 1);
    char *out = take_out(f);
    assert_string_equal(out, "HTTP/1.1 100 Continue\r\n\r\n");
    free(out);
    feed(f, "body", 2);
    out = take_out(f);
    assert_non_null(strstr(out, "HTTP/1.1 204"));
    assert_null(strstr(out, "100 Continue"));
    free(out);
}

static void expect_continue_waits_for_earlier_answers(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    feed(f, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n", 1);
    assert_int_equal(f->conn.out.len, 0);
    http_respond_empty(f->seen[0], 204);
    char *out = take_out(f);
    char *a = strstr(out, "204"), *b = strstr(out, "100 Continue");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
    free(out);
    feed(f, "ok", 2);
    assert_int_equal(f->nseen, 2);
    http_respond_empty(f->seen[1], 204);
}

static void unknown_expectation(void **state) {
    fixture_t *f = *state;
    feed(f, "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: teapot\r\n\r\n", 1);
    char *out = take_out(f);
    assert_non_null(strstr(out, "HTTP/1.1 417 "));
    free(out);
}

static void head_has_length_no_body(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    feed(f, "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n", 1);
    http_respond_error(f->seen[0], 404, "Unimplemented");
    char *out = take_out(f);
    assert_non_null(strstr(out, "Content-Length: 27\r\n"));
    assert_null(strstr(out, "Unimplemented"));
    free(out);
}

static void connection_close(void **state) {
    fixture_t *f = *state;
    feed(f, "GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n", 1);
    assert_int_equal(f->nseen, 1); /* nothing after "close" is read */
    char *out = take_out(f);
    assert_non_null(strstr(out, "Connection: close\r\n"));
    free(out);
    assert_true(http_conn_done(&f->conn));
}

static void http10(void **state) {
    fixture_t *f = *state;
    feed(f, "GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1);
    char *out = take_out(f);
    assert_non_null(strstr(out, "Connection: keep-alive\r\n"));
    free(out);
    assert_false(http_conn_done(&f->conn));
    feed(f, "GET /1 HTTP/1.0\r\n\r\n", 2);
    out = take_out(f);
    assert_non_null(strstr(out, "Connection: close\r\n"));
    free(out);
    assert_true(http_conn_done(&f->conn));
}

static void expect_error(fixture_t *f, const char *input, const char *status_line) {
    feed(f, input, 1);
    char *out = take_out(f);
    if (!strstr(out, status_line))
        fail_msg("input %s: want %s, got %s", input, status_line, out);
    assert_non_null(strstr(out, "Content-Length: "));
    assert_non_null(strstr(out, "{\"message\":"));
    free(out);
    assert_true(http_conn_done(&f->conn));
}

static void too_many_headers(void **state) {
    fixture_t *f = *state;
    expect_error(f, "GET / HTTP/1.1\r\nHost: h\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\ng: 1\r\nh: 1\r\ni: 1\r\n\r\n",
                 "HTTP/1.1 431 ");
}

static void headers_too_large(void **state) {
    fixture_t *f = *state;
    char big[2048];
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: h\r\nX: %01500d\r\n\r\n", 0);
    expect_error(f, big, "HTTP/1.1 431 ");
}

static void target_too_long(void **state) {
    fixture_t *f = *state;
    char big[2048];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    big[sizeof big - 1] = '\0';
    expect_error(f, big, "HTTP/1.1 414 ");
}

static void malformed_inputs(void **state) {
    (void)state;
    static const char *const bad[] = {
        "garbage\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nNo-Colon\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nBad : space\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET http://example/ HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
        "G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *st;
        setup(&st);
        expect_error(st, bad[i], "HTTP/1.1 400 ");
        teardown(&st);
    }
}

static void error_after_good_requests_keeps_order(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    feed(f, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nBAD\r\n\r\n", 1);
    assert_int_equal(f->nseen, 1);
    assert_int_equal(f->conn.out.len, 0); /* the 400 waits for /1 */
    http_respond_empty(f->seen[0], 204);
    char *out = take_out(f);
    char *a = strstr(out, "204"), *b = strstr(out, "400");
    assert_true(a && b && a < b);
    free(out);
    assert_true(http_conn_done(&f->conn));
}

static void header_timeout(void **state) {
    fixture_t *f = *state;
    feed(f, "GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ", 1000000);
    assert_int_equal(http_conn_deadline(&f->conn), 1000000 + 1000 * 1000);
    feed(f, "a", 1500000); /* a trickle does not extend the header deadline */
    assert_int_equal(http_conn_deadline(&f->conn), 1000000 + 1000 * 1000);
    http_conn_tick(&f->conn, 1999999);
    assert_int_equal(f->conn.out.len, 0);
    http_conn_tick(&f->conn, 2000000);
    char *out = take_out(f);
    assert_non_null(strstr(out, "HTTP/1.1 408 "));
    free(out);
    assert_true(http_conn_done(&f->conn));
}

static void body_timeout(void **state) {
    fixture_t *f = *state;
    feed(f, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab", 1000000);
    assert_int_equal(http_conn_deadline(&f->conn), 1000000 + 500 * 1000);
    feed(f, "cd", 1400000); /* progress extends it */
    assert_int_equal(http_conn_deadline(&f->conn), 1400000 + 500 * 1000);
    http_conn_tick(&f->conn, 1900000);
    char *out = take_out(f);
    assert_non_null(strstr(out, "HTTP/1.1 408 "));
    free(out);
}

static void idle_timeout(void **state) {
    fixture_t *f = *state;
    feed(f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1000000);
    f->conn.out.len = 0;
    assert_int_equal(http_conn_deadline(&f->conn), 1000000 + 5000 * 1000);
    http_conn_tick(&f->conn, 1000000 + 5000 * 1000);
    assert_int_equal(f->conn.out.len, 0); /* closed quietly */
    assert_true(http_conn_done(&f->conn));
}

static void idle_counts_from_the_last_answer(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    feed(f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1000000);
    assert_int_equal(http_conn_deadline(&f->conn), 1000000 + 2000 * 1000); /* the request timeout */
    fake_now_us = 1000000 + 1500 * 1000; /* a slow handler answers */
    http_respond_empty(f->seen[0], 204);
    assert_int_equal(http_conn_deadline(&f->conn), fake_now_us + 5000 * 1000);
}

static void no_body_timer_before_100_continue(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    feed(f, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n"
            "Expect: 100-continue\r\n\r\n",
         1000000);
    /* Only the first request's timeout runs: the client waits for us. */
    assert_int_equal(http_conn_deadline(&f->conn), 1000000 + 2000 * 1000);
    fake_now_us = 2500000;
    http_respond_empty(f->seen[0], 204);
    assert_int_equal(http_conn_deadline(&f->conn), 2500000 + 500 * 1000); /* body timer from the 100 */
    char *out = take_out(f);
    assert_non_null(strstr(out, "100 Continue"));
    free(out);
}

static void output_limit_pauses_parsing(void **state) {
    fixture_t *f = *state;
    f->limits.max_output_bytes = 200; /* about two answers */
    char text[2000] = "";
    for (int i = 0; i < 20; i++)
        strcat(text, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    feed(f, text, 1);
    assert_true(f->nseen < 20);
    assert_false(http_conn_wants_read(&f->conn));
    assert_true(http_conn_has_input(&f->conn));
    size_t answered = f->nseen;
    while (http_conn_has_input(&f->conn)) {
        f->conn.out.len = 0; /* the I/O layer sent it */
        http_conn_pump(&f->conn, 2);
        assert_true(f->nseen > answered);
        answered = f->nseen;
    }
    assert_int_equal(f->nseen, 20);
}

static void eof_with_unanswered_request_drops_it(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    feed(f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1);
    http_request_t *req = f->seen[0];
    req->pending_work = true; /* a worker job holds it */
    http_conn_eof(&f->conn);
    assert_true(http_conn_done(&f->conn)); /* nobody to answer: close now */
    assert_null(req->conn);
    req->pending_work = false;
    http_request_free(req);
}

static void request_timeout(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    feed(f, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1000000);
    http_request_t *req = f->seen[0];
    req->pending_work = true; /* as a worker job would */
    assert_int_equal(http_conn_deadline(&f->conn), 1000000 + 2000 * 1000);
    http_conn_tick(&f->conn, 3000000);
    char *out = take_out(f);
    assert_non_null(strstr(out, "HTTP/1.1 503 "));
    assert_non_null(strstr(out, "Request timed out"));
    free(out);
    /* The request now waits for its job only: detached, not freed. */
    assert_null(req->conn);
    http_respond_empty(req, 200); /* a late answer is dropped */
    req->pending_work = false;
    http_request_free(req);
    assert_false(http_conn_done(&f->conn));
}

static void free_detaches_pending_work(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    feed(f, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n", 1);
    http_request_t *held = f->seen[0];
    held->pending_work = true;
    http_conn_free(&f->conn);
    assert_null(held->conn);
    http_respond_empty(held, 204); /* no connection: dropped without harm */
    http_request_free(held);
    http_conn_init(&f->conn, &f->limits, &ops, f, 1); /* for teardown */
}

static void count_abandon(http_request_t *req, void *arg) {
    (void)req;
    (*(int *)arg)++;
}

/* A long-poll handler learns when its request ends without its answer. */
static void abandon_on_close_timeout_not_on_answer(void **state) {
    fixture_t *f = *state;
    f->auto_answer = false;
    int closed = 0, timed_out = 0, answered = 0;
    feed(f, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n", 1000000);
    assert_int_equal(f->nseen, 2);
    http_request_on_abandon(f->seen[0], count_abandon, &answered);
    http_request_on_abandon(f->seen[1], count_abandon, &closed);
    http_respond_empty(f->seen[0], 204);
    free(take_out(f));
    assert_int_equal(answered, 0);
    http_conn_free(&f->conn); /* /2 is dropped unanswered */
    assert_int_equal(closed, 1);
    http_conn_init(&f->conn, &f->limits, &ops, f, 1);

    f->nseen = 0;
    feed(f, "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n", 1000000);
    http_request_on_abandon(f->seen[0], count_abandon, &timed_out);
    http_conn_tick(&f->conn, 4000000);
    assert_int_equal(timed_out, 1);
    char *out = take_out(f);
    assert_non_null(strstr(out, "HTTP/1.1 503 "));
    free(out);
    assert_int_equal(timed_out, 1); /* once, although the request is freed after */
}

static void eof_after_answers_drops_partial(void **state) {
    fixture_t *f = *state;
    feed(f, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost:", 1);
    assert_int_equal(f->nseen, 1);
    http_conn_eof(&f->conn);
    assert_true(http_conn_done(&f->conn)); /* /1 answered, /2 never complete */
    char *out = take_out(f);
    assert_int_equal(count(out, "HTTP/1.1"), 1);
    free(out);
}

static void graceful_stop(void **state) {
    fixture_t *f = *state;
    /* In the middle of a body: the request completes, then the connection closes. */
    feed(f, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab", 1);
    http_conn_stop(&f->conn);
    assert_false(http_conn_done(&f->conn));
    feed(f, "cdGET / HTTP/1.1\r\nHost: h\r\n\r\n", 2);
    assert_int_equal(f->nseen, 1);
    char *out = take_out(f);
    assert_int_equal(count(out, "HTTP/1.1 204"), 1);
    assert_non_null(strstr(out, "Connection: close"));
    free(out);
    assert_true(http_conn_done(&f->conn));
}

static void graceful_stop_mid_header(void **state) {
    fixture_t *f = *state;
    feed(f, "GET / HTTP/1.1\r\nHost: h\r\nHo", 1);
    http_conn_stop(&f->conn);
    char *out = take_out(f);
    assert_non_null(strstr(out, "HTTP/1.1 503 "));
    free(out);
    assert_true(http_conn_done(&f->conn));
}

static void graceful_stop_idle(void **state) {
    fixture_t *f = *state;
    http_conn_stop(&f->conn);
    assert_true(http_conn_done(&f->conn));
    assert_int_equal(f->conn.out.len, 0);
}

static void response_header_injection_refused(void **state) {
    (void)state;
    http_response_t *resp = http_response_new(200);
    assert_int_equal(http_response_header(resp, "X-A", "ok"), 0);
    assert_int_equal(http_response_header(resp, "X-B", "bad\r\nSet-Cookie: x"), -1);
    assert_int_equal(http_response_header(resp, "X-C:", "v"), -1);
    http_response_free(resp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(simple_get, setup, teardown),
        cmocka_unit_test_setup_teardown(parses_target_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(query_when_head_buffer_grows, setup, teardown),
        cmocka_unit_test_setup_teardown(byte_by_byte_equals_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(pipelined_answers_keep_order, setup, teardown),
        cmocka_unit_test_setup_teardown(pipeline_limit_pauses_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(body_too_large_by_content_length, setup, teardown),
        cmocka_unit_test_setup_teardown(chunked_body_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(expect_continue_waits_for_earlier_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_expectation, setup, teardown),
        cmocka_unit_test_setup_teardown(head_has_length_no_body, setup, teardown),
        cmocka_unit_test_setup_teardown(connection_close, setup, teardown),
        cmocka_unit_test_setup_teardown(http10, setup, teardown),
        cmocka_unit_test_setup_teardown(too_many_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(headers_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(target_too_long, setup, teardown),
        cmocka_unit_test(malformed_inputs),
        cmocka_unit_test_setup_teardown(error_after_good_requests_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(header_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(body_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(idle_counts_from_the_last_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(no_body_timer_before_100_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(output_limit_pauses_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(eof_with_unanswered_request_drops_it, setup, teardown),
        cmocka_unit_test_setup_teardown(request_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(abandon_on_close_timeout_not_on_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(free_detaches_pending_work, setup, teardown),
        cmocka_unit_test_setup_teardown(eof_after_answers_drops_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(graceful_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(graceful_stop_mid_header, setup, teardown),
        cmocka_unit_test_setup_teardown(graceful_stop_idle, setup, teardown),
        cmocka_unit_test(response_header_injection_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
