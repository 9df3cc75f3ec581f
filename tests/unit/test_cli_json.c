/*
 * cli_json: the command's --json strings follow the server's rule. Before
 * it, the command wrote \n, \r and \t as short escapes, let DEL and bytes
 * that are not UTF-8 through (invalid JSON for a file name of such bytes);
 * now control characters and DEL are \u00XX and such bytes U+FFFD, as in
 * daemon/jbuf.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect(const char *in, const char *want)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    cli_json_str(f, in);
    assert_int_equal(fclose(f), 0);
    assert_string_equal(text, want);
    free(text);
}

static void test_escapes(void **state)
{
    (void)state;
    expect(NULL, "null");
    expect("", "\"\"");
    expect("plain /a b.txt", "\"plain /a b.txt\"");
    expect("q\"b\\", "\"q\\\"b\\\\\"");
    expect("a\nb\r\t\x01", "\"a\\u000ab\\u000d\\u0009\\u0001\"");
    expect("del\x7f", "\"del\\u007f\"");
}

static void test_utf8(void **state)
{
    (void)state;
    expect("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x84",
           "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x84\"");
    /* each byte that is not part of valid UTF-8 becomes U+FFFD */
    expect("a\xff"
           "b",
           "\"a\xef\xbf\xbd"
           "b\"");
    expect("\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\"");                 /* overlong '/' */
    expect("\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* a surrogate */
    expect("\xf4\x90\x80\x80",
           "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* > U+10FFFF */
    expect("\xe2\x82", "\"\xef\xbf\xbd\xef\xbf\xbd\"");             /* cut short */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
