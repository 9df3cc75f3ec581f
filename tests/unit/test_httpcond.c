/* httpcond: entity-tag lists, HTTP dates and byte ranges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/httpcond.h"

static void test_etags(void **state)
{
    (void)state;
    const char *etag = "\"abc\"";
    assert_true(httpcond_etag_matches("\"abc\"", etag));
    assert_true(httpcond_etag_matches("*", etag));
    assert_true(httpcond_etag_matches("W/\"abc\"", etag));
    assert_true(httpcond_etag_matches("\"x\", \"abc\"", etag));
    assert_true(httpcond_etag_matches("\"x\",\"abc\" ,\"y\"", etag));
    assert_false(httpcond_etag_matches("\"abcd\"", etag));
    assert_false(httpcond_etag_matches("\"ab\"", etag));
    assert_false(httpcond_etag_matches("abc", etag));
    assert_false(httpcond_etag_matches("", etag));
    assert_false(httpcond_etag_matches(",,,", etag));
}

static void test_dates(void **state)
{
    (void)state;
    time_t t;
    assert_true(httpcond_parse_date("Sun, 06 Nov 1994 08:49:37 GMT", &t));
    assert_int_equal(t, 784111777);
    assert_false(httpcond_parse_date("Sunday, 06-Nov-94 08:49:37 GMT", &t));
    assert_false(httpcond_parse_date("Sun, 06 Nov 1994 08:49:37 GMT x", &t));
    assert_false(httpcond_parse_date("", &t));
}

typedef struct range_case {
    const char *header;
    uint64_t size;
    httpcond_range expect;
    uint64_t start, len;
} range_case;

static void test_ranges(void **state)
{
    (void)state;
    static const range_case cases[] = {
        {"bytes=0-9", 100, HTTPCOND_RANGE_PARTIAL, 0, 10},
        {"bytes=10-19", 100, HTTPCOND_RANGE_PARTIAL, 10, 10},
        {"bytes=90-", 100, HTTPCOND_RANGE_PARTIAL, 90, 10},
        {"bytes=90-1000", 100, HTTPCOND_RANGE_PARTIAL, 90, 10},
        {"bytes=-5", 100, HTTPCOND_RANGE_PARTIAL, 95, 5},
        {"bytes=-500", 100, HTTPCOND_RANGE_PARTIAL, 0, 100},
        {"bytes=99-99", 100, HTTPCOND_RANGE_PARTIAL, 99, 1},
        {"bytes=100-", 100, HTTPCOND_RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=-0", 100, HTTPCOND_RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=0-", 0, HTTPCOND_RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=-1", 0, HTTPCOND_RANGE_UNSATISFIABLE, 0, 0},
        {"bytes=5-4", 100, HTTPCOND_RANGE_NONE, 0, 0},
        {"bytes=0-1,5-6", 100, HTTPCOND_RANGE_NONE, 0, 0},
        {"bytes=+5-6", 100, HTTPCOND_RANGE_NONE, 0, 0},
        {"bytes=- 5", 100, HTTPCOND_RANGE_NONE, 0, 0},
        {"bytes= 5-6", 100, HTTPCOND_RANGE_NONE, 0, 0},
        {"bytes=5", 100, HTTPCOND_RANGE_NONE, 0, 0},
        {"bytes=-", 100, HTTPCOND_RANGE_NONE, 0, 0},
        {"bytes=a-b", 100, HTTPCOND_RANGE_NONE, 0, 0},
        {"items=0-1", 100, HTTPCOND_RANGE_NONE, 0, 0},
        {"bytes=99999999999999999999-", 100, HTTPCOND_RANGE_NONE, 0, 0},
        {"bytes=0-99999999999999999999", 100, HTTPCOND_RANGE_NONE, 0, 0},
        {"bytes=1844674407370955161-", 100, HTTPCOND_RANGE_UNSATISFIABLE, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t start = 0, len = 0;
        httpcond_range r = httpcond_parse_range(cases[i].header, cases[i].size, &start, &len);
        if (r != cases[i].expect)
            fail_msg("%s: got %d, want %d", cases[i].header, (int)r, (int)cases[i].expect);
        if (r == HTTPCOND_RANGE_PARTIAL) {
            assert_int_equal(start, cases[i].start);
            assert_int_equal(len, cases[i].len);
        }
    }
    uint64_t s, l;
    assert_int_equal(httpcond_parse_range(NULL, 10, &s, &l), HTTPCOND_RANGE_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etags),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
