/*
 * jbuf: one escaping rule for every JSON string, caps that fail loudly, and
 * growth from a caller's buffer to the heap.
 *
 * Outputs that changed when three escapers became this one: the "content"
 * path of plug-in data and receipts (http.c's escaper) now has DEL as
 * \u007f where it went through raw, and bytes that are not UTF-8 as U+FFFD
 * where the whole payload was refused (test_delivery says so for that
 * member); the admin API and exports (export.c's escaper) are unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/jbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FFFD "\xef\xbf\xbd"

static void escapes_to(const char *in, size_t n, const char *want)
{
    char mem[256];
    jbuf b;
    jbuf_init(&b, mem, sizeof mem);
    jbuf_string(&b, in, n);
    assert_false(b.failed);
    assert_string_equal(mem, want);
    assert_int_equal(b.len, strlen(want));
}

#define ESCAPES_TO(in, want) escapes_to(in, sizeof in - 1, want)

static void test_escaping_rule(void **state)
{
    (void)state;
    ESCAPES_TO("", "\"\"");
    ESCAPES_TO("/notices/terms-2026.html", "\"/notices/terms-2026.html\"");
    ESCAPES_TO("q\"b\\", "\"q\\\"b\\\\\"");
    /* control characters and DEL as \u00XX, NUL included */
    ESCAPES_TO("a\nb\r\t\x01\x1f", "\"a\\u000ab\\u000d\\u0009\\u0001\\u001f\"");
    ESCAPES_TO("x\0y", "\"x\\u0000y\"");
    ESCAPES_TO("del\x7f", "\"del\\u007f\"");
    /* valid UTF-8 as it is */
    ESCAPES_TO("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x84",
               "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x84\"");
    /* every byte that is not part of valid UTF-8: U+FFFD */
    ESCAPES_TO("a\xff"
               "b",
               "\"a" FFFD "b\"");
    ESCAPES_TO("\xc0\xaf", "\"" FFFD FFFD "\"");                   /* overlong */
    ESCAPES_TO("\xed\xa0\x80", "\"" FFFD FFFD FFFD "\"");          /* surrogate */
    ESCAPES_TO("\xf4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\""); /* past U+10FFFF */
    ESCAPES_TO("\xe2\x82", "\"" FFFD FFFD "\"");                   /* cut short */
    ESCAPES_TO("\x80z", "\"" FFFD "z\"");                          /* a lone continuation */
}

static void test_values(void **state)
{
    (void)state;
    char mem[256];
    jbuf b;
    jbuf_init(&b, mem, sizeof mem);
    jbuf_adds(&b, "{");
    jbuf_member_u64(&b, "a", 0);
    jbuf_member_u64(&b, "b", UINT64_MAX);
    jbuf_key(&b, "c");
    jbuf_i64(&b, INT64_MIN);
    jbuf_key(&b, "d");
    jbuf_opt_u64(&b, 0);
    jbuf_key(&b, "e");
    jbuf_opt_str(&b, "");
    jbuf_key(&b, "f");
    jbuf_opt_str(&b, NULL);
    jbuf_key(&b, "g");
    jbuf_adds(&b, "[");
    for (int i = 0; i < 3; i++) {
        jbuf_sep(&b);
        jbuf_i64(&b, i - 1);
    }
    jbuf_adds(&b, "]}");
    assert_false(b.failed);
    assert_string_equal(mem, "{\"a\":0,\"b\":18446744073709551615,\"c\":-9223372036854775808,"
                             "\"d\":null,\"e\":null,\"f\":null,\"g\":[-1,0,1]}");

    jbuf_reset(&b);
    jbuf_double(&b, 0.1 + 0.2);
    assert_string_equal(mem, "0.30000000000000004");
    jbuf_reset(&b);
    jbuf_double(&b, 36.0 / 61.0);
    assert_true(strtod(mem, NULL) == 36.0 / 61.0);
    jbuf_reset(&b);
    jbuf_double(&b, NAN);
    assert_string_equal(mem, "null");
    jbuf_reset(&b);
    jbuf_double(&b, 0.5);
    assert_string_equal(mem, "0.5");
}

static void test_fixed_cap(void **state)
{
    (void)state;
    char mem[8];
    jbuf b;
    jbuf_init(&b, mem, sizeof mem);
    jbuf_adds(&b, "1234567");
    assert_false(b.failed);
    assert_string_equal(mem, "1234567");
    jbuf_adds(&b, "8");
    assert_true(b.failed); /* reported, never cut silently */
    assert_string_equal(mem, "1234567");
    jbuf_adds(&b, "");
    jbuf_addf(&b, "%d", 1);
    assert_int_equal(b.len, 7); /* nothing more once failed */

    /* An escape that does not fit whole is not half written. */
    jbuf_init(&b, mem, sizeof mem);
    jbuf_adds(&b, "abc");
    jbuf_escaped(&b, "\x01", 1);
    assert_true(b.failed);
    assert_string_equal(mem, "abc");

    jbuf_init(&b, mem, sizeof mem);
    jbuf_addf(&b, "%s", "too long for it");
    assert_true(b.failed);
    assert_int_equal(strlen(mem), b.len);
    assert_null(jbuf_take(&b, NULL)); /* a failed text is not handed out */
}

static void test_growing(void **state)
{
    (void)state;
    char start[16];
    jbuf b;
    jbuf_init_growing(&b, start, sizeof start, 5000);
    jbuf_adds(&b, "[");
    for (int i = 0; i < 1000; i++) {
        jbuf_sep(&b);
        jbuf_addf(&b, "%d", i % 10);
    }
    jbuf_adds(&b, "]");
    assert_false(b.failed);
    assert_true(b.heap); /* it left the caller's buffer */
    assert_int_equal(b.len, 2000 + 1);
    size_t len = 0;
    char *text = jbuf_take(&b, &len);
    assert_non_null(text);
    assert_int_equal(len, 2001);
    assert_int_equal(text[0], '[');
    assert_int_equal(text[len - 1], ']');
    assert_int_equal(text[len], '\0');
    free(text);

    /* The cap holds on the heap too. */
    jbuf_init_growing(&b, NULL, 0, 100);
    for (int i = 0; i < 10; i++)
        jbuf_adds(&b, "0123456789");
    assert_false(b.failed);
    assert_int_equal(b.len, 100);
    jbuf_adds(&b, "x");
    assert_true(b.failed);
    jbuf_free(&b);

    /* A text that fits its start is copied out on take. */
    jbuf_init_growing(&b, start, sizeof start, 100);
    jbuf_str(&b, "hi");
    assert_false(b.heap);
    text = jbuf_take(&b, &len);
    assert_string_equal(text, "\"hi\"");
    assert_true(text != start);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping_rule),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_fixed_cap),
        cmocka_unit_test(test_growing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
