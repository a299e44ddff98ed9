#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/buf.h"

static void grows_and_respects_limit(void **state) {
    (void)state;
    buf_t b;
    buf_init(&b, 1000);
    for (int i = 0; i < 100; i++)
        assert_int_equal(buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 1000);
    assert_int_equal(buf_append(&b, "x", 1), -1);
    assert_int_equal(b.len, 1000);
    buf_consume(&b, 990);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "0123456789", 10);
    buf_free(&b);
    assert_null(b.data);
}

static void printf_long(void **state) {
    (void)state;
    buf_t b;
    buf_init(&b, 0);
    char big[1000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(buf_printf(&b, "<%s>%d", big, 42), 0);
    assert_int_equal(b.len, 1 + 999 + 1 + 2);
    assert_memory_equal(b.data + 1000, ">42", 3);
    buf_free_secure(&b);
}

static void move(void **state) {
    (void)state;
    buf_t a, b;
    buf_init(&a, 0);
    buf_append_str(&a, "hello");
    buf_move(&b, &a);
    assert_int_equal(a.len, 0);
    assert_null(a.data);
    assert_memory_equal(b.data, "hello", 5);
    buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grows_and_respects_limit),
        cmocka_unit_test(printf_long),
        cmocka_unit_test(move),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
