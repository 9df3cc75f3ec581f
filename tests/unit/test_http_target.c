/* http_target: the origin and absolute forms of a request target. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/http_target.h"

#include <string.h>

static void test_origin(void **state)
{
    (void)state;
    http_target t;
    http_target_parse("/a/b?c=d", &t);
    assert_int_equal(t.form, HTTP_TARGET_ORIGIN);
    assert_int_equal(t.prefix_len, 0);
    assert_null(t.authority);
    http_target_parse("/", &t);
    assert_int_equal(t.form, HTTP_TARGET_ORIGIN);
}

static void test_absolute(void **state)
{
    (void)state;
    static const struct {
        const char *target;
        const char *authority;
        const char *rest; /* what follows the prefix */
        bool empty_path;
    } cases[] = {
        {"http://files.example/a/b?c=d", "files.example", "/a/b?c=d", false},
        {"https://files.example:8443/", "files.example:8443", "/", false},
        {"HTTP://Files.Example/x", "Files.Example", "/x", false},
        {"http://files.example", "files.example", "", true},
        {"http://files.example?q=1", "files.example", "?q=1", true},
        {"http://[2001:db8::1]:8080/x", "[2001:db8::1]:8080", "/x", false},
        {"http://127.0.0.1/%41", "127.0.0.1", "/%41", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_target t;
        http_target_parse(cases[i].target, &t);
        if (t.form != HTTP_TARGET_ABSOLUTE)
            fail_msg("%s: form %d (%s)", cases[i].target, t.form, t.reason ? t.reason : "");
        assert_int_equal(t.authority_len, strlen(cases[i].authority));
        assert_memory_equal(t.authority, cases[i].authority, t.authority_len);
        assert_string_equal(cases[i].target + t.prefix_len, cases[i].rest);
        assert_int_equal(t.empty_path, cases[i].empty_path);
    }
}

static void test_bad(void **state)
{
    (void)state;
    char longest[HTTP_TARGET_AUTHORITY_MAX + 16];
    char too_long[HTTP_TARGET_AUTHORITY_MAX + 16];
    memcpy(longest, "http://", 7);
    memset(longest + 7, 'h', HTTP_TARGET_AUTHORITY_MAX);
    memcpy(longest + 7 + HTTP_TARGET_AUTHORITY_MAX, "/x", 3);
    memcpy(too_long, longest, sizeof longest);
    memset(too_long + 7, 'h', HTTP_TARGET_AUTHORITY_MAX + 1);
    memcpy(too_long + 8 + HTTP_TARGET_AUTHORITY_MAX, "/x", 3);
    http_target t;
    http_target_parse(longest, &t);
    assert_int_equal(t.form, HTTP_TARGET_ABSOLUTE);

    static const struct {
        const char *target;
        const char *reason; /* a part of it */
    } cases[] = {
        {"ftp://files.example/a", "http or https"},
        {"httpx://files.example/a", "http or https"},
        {"mailto:a@b.example", "neither a path nor"},
        {"http:/files.example/a", "neither a path nor"},
        {"http://user:pw@files.example/a", "user information"},
        {"http://@files.example/a", "user information"},
        {"http:///a", "names no host"},
        {"http://", "names no host"},
        {"http://?q", "names no host"},
        {"http://files%2Eexample/a", "not valid"},
        {"http://files example/a", "not valid"},
        {"http://files.example#f", "no fragment"},
        {"*", "neither a path nor"},
        {"", "neither a path nor"},
        {"a/b", "neither a path nor"},
        {"files.example:80", "neither a path nor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_target_parse(cases[i].target, &t);
        if (t.form != HTTP_TARGET_BAD || strstr(t.reason, cases[i].reason) == NULL)
            fail_msg("%s: form %d, reason '%s'; expected '%s'", cases[i].target, t.form,
                     t.reason ? t.reason : "", cases[i].reason);
    }
    http_target_parse(too_long, &t);
    assert_int_equal(t.form, HTTP_TARGET_BAD);
    assert_non_null(strstr(t.reason, "too long"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_absolute),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
