/* upstream_header: hop-by-hop fields, list tokens, status lines and the
 * capped list of an answer's fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/upstream_header.h"

#include <string.h>

static void test_hop_by_hop(void **state)
{
    (void)state;
    static const char *const hop[] = {"Connection",
                                      "keep-alive",
                                      "TE",
                                      "Trailer",
                                      "transfer-encoding",
                                      "Upgrade",
                                      "Proxy-Authorization",
                                      "Proxy-Authenticate",
                                      "Proxy-Connection"};
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
        assert_true(upstream_header_hop_by_hop(hop[i]));
    assert_false(upstream_header_hop_by_hop("Set-Cookie"));
    assert_false(upstream_header_hop_by_hop("Content-Type"));
    assert_false(upstream_header_hop_by_hop("Trailers"));
    assert_false(upstream_header_hop_by_hop("Authorization"));
}

static void test_lists(void **state)
{
    (void)state;
    assert_true(upstream_header_lists("close", "close"));
    assert_true(upstream_header_lists("Keep-Alive, X-Private", "x-private"));
    assert_true(upstream_header_lists(" , ,upgrade", "Upgrade"));
    assert_true(upstream_header_lists("websocket", "websocket"));
    assert_false(upstream_header_lists("websockets", "websocket"));
    assert_false(upstream_header_lists("", "close"));
    /* Cache-Control: directives with values and quoted strings. */
    assert_true(upstream_header_lists("private, no-store", "no-store"));
    assert_true(upstream_header_lists("max-age=0, no-store", "no-store"));
    assert_true(upstream_header_lists("no-cache=\"Set-Cookie\"", "no-cache"));
    assert_false(upstream_header_lists("private=\"no-store, x\"", "no-store"));
    assert_false(upstream_header_lists("no-storex", "no-store"));
    assert_false(upstream_header_lists("x=no-store", "no-store"));
    assert_true(upstream_header_lists("a=\"q\\\"uote,\", no-store", "no-store"));
    assert_false(upstream_header_lists("\"unterminated, no-store", "no-store"));
}

static void test_status_lines(void **state)
{
    (void)state;
    unsigned status = 0;
    assert_int_equal(upstream_header_status_line("HTTP/1.1 200 OK\r\n", 17, &status), 1);
    assert_int_equal(status, 200);
    assert_int_equal(upstream_header_status_line("HTTP/1.0 404 Not Found", 22, &status), 1);
    assert_int_equal(status, 404);
    assert_int_equal(upstream_header_status_line("HTTP/1.1 204 \r\n", 15, &status), 1);
    assert_int_equal(status, 204);
    assert_int_equal(upstream_header_status_line("HTTP/2 301\r\n", 12, &status), 1);
    assert_int_equal(status, 301);
    assert_int_equal(upstream_header_status_line("HTTP/1.1 99 Low\r\n", 17, &status), 0);
    assert_int_equal(upstream_header_status_line("HTTP/1.1 600 High\r\n", 19, &status), 0);
    assert_int_equal(upstream_header_status_line("HTTP/1.1 2000 OK\r\n", 18, &status), 0);
    assert_int_equal(upstream_header_status_line("Content-Type: x\r\n", 17, &status), 0);
    assert_int_equal(upstream_header_status_line("HTTP/1.1 20x OK\r\n", 17, &status), 0);
}

static void add_ok(upstream_header_list *l, const char *line)
{
    upstream_header_add r = upstream_header_list_add(l, line, strlen(line));
    if (r != UPSTREAM_HEADER_ADDED)
        fail_msg("'%s' not added (%d)", line, r);
}

static void test_list(void **state)
{
    (void)state;
    upstream_header_list l;
    upstream_header_list_init(&l, 4096);
    add_ok(&l, "Content-Type: text/html\r\n");
    add_ok(&l, "Set-Cookie: a=1\r\n");
    add_ok(&l, "set-cookie:b=2   \n");
    add_ok(&l, "X-Empty:\r\n");
    add_ok(&l, "X-Folded: first\r\n");
    add_ok(&l, "   second\r\n");
    assert_int_equal(l.count, 5);
    assert_string_equal(upstream_header_list_get(&l, "content-type"), "text/html");
    assert_string_equal(upstream_header_list_get(&l, "X-Folded"), "first second");
    assert_string_equal(upstream_header_list_get(&l, "X-Empty"), "");
    assert_null(upstream_header_list_get(&l, "Location"));
    /* A list split over fields is read whole. */
    add_ok(&l, "Cache-Control: max-age=60\r\n");
    add_ok(&l, "cache-control: private, no-store\r\n");
    assert_true(upstream_header_list_lists(&l, "Cache-Control", "no-store"));
    assert_true(upstream_header_list_lists(&l, "Cache-Control", "max-age"));
    assert_false(upstream_header_list_lists(&l, "Cache-Control", "no-cache"));
    assert_false(upstream_header_list_lists(&l, "Pragma", "no-store"));
    /* Both cookies, in order. */
    size_t cursor = 0;
    const char *value;
    int cookies = 0;
    for (const char *name; (name = upstream_header_list_next(&l, &cursor, &value)) != NULL;) {
        if (strcasecmp(name, "Set-Cookie") == 0)
            assert_string_equal(value, cookies++ == 0 ? "a=1" : "b=2");
    }
    assert_int_equal(cookies, 2);

    static const char *const malformed[] = {
        "No colon\r\n", ": no name\r\n", "Bad Name: x\r\n", "X: a\001b\r\n", "X: \x7f\r\n",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++)
        assert_int_equal(upstream_header_list_add(&l, malformed[i], strlen(malformed[i])),
                         UPSTREAM_HEADER_MALFORMED);
    upstream_header_list_clear(&l);
    assert_int_equal(l.count, 0);
    assert_int_equal(upstream_header_list_add(&l, " folded first\r\n", 15),
                     UPSTREAM_HEADER_MALFORMED);
    upstream_header_list_free(&l);

    /* The cap holds: names and values together. */
    upstream_header_list_init(&l, 64);
    add_ok(&l, "X-A: 0123456789012345678901234567890123456789\r\n");
    assert_int_equal(upstream_header_list_add(&l, "X-B: 0123456789012345\r\n", 23),
                     UPSTREAM_HEADER_TOO_LARGE);
    assert_true(l.len <= 64);
    upstream_header_list_free(&l);
    upstream_header_list_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hop_by_hop),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_status_lines),
        cmocka_unit_test(test_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
