/* sjson: duplicates, nesting, top-level type, integer range, accessor types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/sjson.h"

#include <stdlib.h>
#include <string.h>

static json_t *parse(const char *text, size_t depth)
{
    char err[128] = "";
    json_t *v = sjson_parse_object(text, strlen(text), depth, err, sizeof(err));

    if (v == NULL)
        assert_true(err[0] != '\0');
    return v;
}

static void test_object_ok(void **state)
{
    json_t *v = parse("{\"a\":\"x\",\"b\":{\"c\":1},\"n\":42}", 0);
    size_t len = 0;
    uint64_t n = 0;

    (void)state;
    assert_non_null(v);
    assert_string_equal(sjson_string(v, "a", &len), "x");
    assert_int_equal(len, 1);
    assert_non_null(sjson_object(v, "b"));
    assert_true(sjson_uint(v, "n", &n));
    assert_int_equal(n, 42);
    json_decref(v);
}

static void test_duplicates(void **state)
{
    (void)state;
    assert_null(parse("{\"a\":1,\"a\":2}", 0));
    assert_null(parse("{\"o\":{\"k\":1,\"k\":1}}", 0));
}

static void test_non_object(void **state)
{
    static const char *bad[] = {"[]", "[1,2]", "1", "\"s\"", "null",       "true",
                                "",   " ",     "{", "{}x",   "{\"a\":1}{}"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(parse(bad[i], 0));
}

static void test_depth(void **state)
{
    char deep[4096];
    size_t n = 0;
    json_t *v;

    (void)state;
    v = parse("{\"a\":{\"b\":{\"c\":[1]}}}", 4);
    assert_non_null(v);
    json_decref(v);
    assert_null(parse("{\"a\":{\"b\":{\"c\":[[1]]}}}", 4));
    /* Brackets inside strings, escaped quotes included, do not count. */
    v = parse("{\"a\":\"[[[[[[[[[[{{{{{{{{\\\"[[[[[[\"}", 2);
    assert_non_null(v);
    json_decref(v);
    /* Default cap, and a depth that would hurt an unguarded recursive parser. */
    for (int i = 0; i < SJSON_MAX_DEPTH; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"a\":");
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "1");
    for (int i = 0; i < SJSON_MAX_DEPTH; i++)
        deep[n++] = '}';
    deep[n] = '\0';
    v = parse(deep, 0);
    assert_non_null(v);
    json_decref(v);
    n = 0;
    deep[n++] = '{';
    deep[n++] = '"';
    deep[n++] = 'a';
    deep[n++] = '"';
    deep[n++] = ':';
    while (n < sizeof(deep) - 1)
        deep[n++] = '[';
    deep[n] = '\0';
    assert_null(parse(deep, 0));
}

static void test_size_cap(void **state)
{
    size_t n = SJSON_MAX_LEN + 1;
    char *big = malloc(n);

    (void)state;
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    assert_null(sjson_parse_object(big, n, 0, NULL, 0));
    free(big);
}

static void test_numbers(void **state)
{
    json_t *v = parse("{\"neg\":-1,\"real\":1.0,\"exp\":1e3,\"max\":9223372036854775807,"
                      "\"zero\":0,\"str\":\"5\"}",
                      0);
    uint64_t n = 7;

    (void)state;
    assert_non_null(v);
    assert_false(sjson_uint(v, "neg", &n));
    assert_false(sjson_uint(v, "real", &n));
    assert_false(sjson_uint(v, "exp", &n));
    assert_false(sjson_uint(v, "str", &n));
    assert_false(sjson_uint(v, "missing", &n));
    assert_int_equal(n, 7);
    assert_true(sjson_uint(v, "zero", &n));
    assert_int_equal(n, 0);
    assert_true(sjson_uint(v, "max", &n));
    assert_int_equal(n, INT64_MAX);
    json_decref(v);
    /* Beyond int64: refused at parse time rather than wrapped. */
    assert_null(parse("{\"big\":9223372036854775808}", 0));
    assert_null(parse("{\"big\":18446744073709551616}", 0));
}

static void test_wrong_types(void **state)
{
    json_t *v = parse("{\"s\":1,\"o\":[],\"n\":null,\"t\":\"text\",\"nul\":\"a\\u0001b\"}", 0);
    size_t len = 0;

    (void)state;
    assert_non_null(v);
    assert_null(sjson_string(v, "s", &len));
    assert_null(sjson_string(v, "o", NULL));
    assert_null(sjson_string(v, "n", NULL));
    assert_null(sjson_object(v, "o"));
    assert_null(sjson_object(v, "t"));
    assert_null(sjson_object(v, "missing"));
    assert_non_null(sjson_string(v, "nul", &len));
    assert_int_equal(len, 3);
    json_decref(v);
    /* Embedded NUL in a string, and invalid UTF-8, are refused outright. */
    assert_null(parse("{\"a\":\"x\\u0000y\"}", 0));
    assert_null(parse("{\"a\":\"\xff\"}", 0));
}

static void test_dump(void **state)
{
    json_t *v = parse("{ \"b\" : 1, \"a\" : [ true , null ] }", 0);
    char *s;

    (void)state;
    assert_non_null(v);
    s = sjson_dump(v);
    assert_string_equal(s, "{\"b\":1,\"a\":[true,null]}");
    free(s);
    json_decref(v);
    assert_null(sjson_dump(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_object_ok),   cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_non_object),  cmocka_unit_test(test_depth),
        cmocka_unit_test(test_size_cap),    cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_wrong_types), cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
