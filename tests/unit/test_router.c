#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/router.h"

static void handler(http_request_t *req, void *ctx) {
    (void)req;
    (void)ctx;
}

static http_request_t *make_request(int method, const char *path) {
    http_request_t *req = calloc(1, sizeof *req);
    buf_init(&req->head, 0);
    buf_init(&req->body, 0);
    buf_append(&req->head, path, strlen(path) + 1);
    req->path = req->head.data;
    req->method = method;
    return req;
}

static router_t r;

static int setup(void **state) {
    (void)state;
    router_init(&r);
    assert_int_equal(router_add(&r, HTTP_GET, "/healthcheck", handler, NULL), 0);
    assert_int_equal(router_add(&r, HTTP_GET, "/v1/public-signing-key", handler, NULL), 0);
    assert_int_equal(router_add(&r, HTTP_POST, "/v1/encryption/{InstanceId}/generate-secret", handler, NULL), 0);
    assert_int_equal(router_add(&r, HTTP_POST, "/v1/encryption/{InstanceId}/decrypt-secret", handler, NULL), 0);
    assert_int_equal(router_add(&r, HTTP_PUT, "/api/v1/installations/{Id}/challenge", handler, NULL), 0);
    assert_int_equal(router_add(&r, HTTP_DELETE, "/api/v1/installations/{Id}/challenge", handler, NULL), 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    router_free(&r);
    return 0;
}

static void expect(int method, const char *path, router_result_t want, const char *pattern) {
    http_request_t *req = make_request(method, path);
    char allow[128];
    router_result_t got = router_match(&r, req, allow, sizeof allow);
    if (got != want)
        fail_msg("%s: want %d, got %d", path, want, got);
    if (pattern)
        assert_string_equal(req->route->pattern, pattern);
    http_request_free(req);
}

static void literal_and_params(void **state) {
    (void)state;
    expect(HTTP_GET, "/healthcheck", ROUTER_FOUND, "/healthcheck");
    http_request_t *req = make_request(HTTP_POST, "/v1/encryption/i-0123456789abcdef0/generate-secret");
    char allow[64];
    assert_int_equal(router_match(&r, req, allow, sizeof allow), ROUTER_FOUND);
    assert_string_equal(req->route->pattern, "/v1/encryption/{InstanceId}/generate-secret");
    assert_string_equal(http_request_param(req, "InstanceId"), "i-0123456789abcdef0");
    assert_null(http_request_param(req, "Other"));
    http_request_free(req);
    expect(HTTP_POST, "/v1/encryption/i-1/decrypt-secret", ROUTER_FOUND,
           "/v1/encryption/{InstanceId}/decrypt-secret");
}

static void not_found(void **state) {
    (void)state;
    expect(HTTP_GET, "/", ROUTER_NOT_FOUND, NULL);
    expect(HTTP_GET, "/healthcheck/", ROUTER_NOT_FOUND, NULL);
    expect(HTTP_GET, "/healthcheckx", ROUTER_NOT_FOUND, NULL);
    expect(HTTP_POST, "/v1/encryption//generate-secret", ROUTER_NOT_FOUND, NULL); /* empty parameter */
    expect(HTTP_POST, "/v1/encryption/a/b/generate-secret", ROUTER_NOT_FOUND, NULL);
    expect(HTTP_GET, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s", ROUTER_NOT_FOUND, NULL);
}

static void method_not_allowed_lists_allowed(void **state) {
    (void)state;
    http_request_t *req = make_request(HTTP_POST, "/healthcheck");
    char allow[128];
    assert_int_equal(router_match(&r, req, allow, sizeof allow), ROUTER_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD");
    http_request_free(req);
    req = make_request(HTTP_GET, "/api/v1/installations/x/challenge");
    assert_int_equal(router_match(&r, req, allow, sizeof allow), ROUTER_BAD_METHOD);
    assert_string_equal(allow, "PUT, DELETE");
    http_request_free(req);
}

static void head_uses_get(void **state) {
    (void)state;
    expect(HTTP_HEAD, "/healthcheck", ROUTER_FOUND, "/healthcheck");
}

static void bad_patterns(void **state) {
    (void)state;
    assert_int_equal(router_add(&r, HTTP_GET, "nope", handler, NULL), -1);
    assert_int_equal(router_add(&r, HTTP_GET, "/{a}/{b}/{c}/{d}/{e}", handler, NULL), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(literal_and_params, setup, teardown),
        cmocka_unit_test_setup_teardown(not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(method_not_allowed_lists_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(head_uses_get, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_patterns, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
