/* upstream_url: upstream addresses and the URL a proxied request goes to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/upstream_url.h"

#include <string.h>

static upstream_url parsed(const char *text)
{
    upstream_url u;
    char err[256] = "";
    if (upstream_url_parse(text, &u, err, sizeof err) != 0)
        fail_msg("%s refused: %s", text, err);
    return u;
}

static void test_parse(void **state)
{
    (void)state;
    upstream_url u = parsed("http://127.0.0.1:9000");
    assert_int_equal(u.scheme, UPSTREAM_HTTP);
    assert_string_equal(u.base, "http://127.0.0.1:9000");
    assert_string_equal(u.authority, "127.0.0.1:9000");
    assert_false(u.has_path);

    u = parsed("https://app.example/base/");
    assert_int_equal(u.scheme, UPSTREAM_HTTPS);
    assert_string_equal(u.base, "https://app.example");
    assert_string_equal(u.path, "/base/");
    assert_true(u.has_path);

    u = parsed("http://[::1]:8080/");
    assert_string_equal(u.authority, "[::1]:8080");
    assert_string_equal(u.path, "/");

    u = parsed("unix:/run/app.sock");
    assert_int_equal(u.scheme, UPSTREAM_UNIX);
    assert_string_equal(u.socket, "/run/app.sock");
    assert_string_equal(u.base, "http://localhost");
    assert_false(u.has_path);

    u = parsed("unix:/run/app.sock:/api/");
    assert_string_equal(u.socket, "/run/app.sock");
    assert_string_equal(u.path, "/api/");
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "127.0.0.1:9000",
        "ftp://host/",
        "http://",
        "http:///path",
        "http://user:pw@host/",
        "http://host:/",
        "http://host:0",
        "http://host:65536",
        "http://host:12x",
        "http://ho st/",
        "http://host/a b",
        "http://host/?q=1",
        "http://host/#f",
        "http://[::1/",
        "http://[zz::1]/",
        "unix:",
        "unix:run/app.sock",
        "unix:/run/app.sock:/a?b",
        "unix:/run/\001.sock",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        upstream_url u;
        char err[256] = "";
        if (upstream_url_parse(bad[i], &u, err, sizeof err) == 0)
            fail_msg("'%s' was accepted", bad[i]);
        if (err[0] == '\0')
            fail_msg("'%s' was refused without a reason", bad[i]);
    }
    char longpath[200];
    memset(longpath, 'a', sizeof longpath);
    memcpy(longpath, "unix:/", 6);
    longpath[sizeof longpath - 1] = '\0';
    upstream_url u;
    char err[256];
    assert_int_equal(upstream_url_parse(longpath, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "longer than"));
}

static void test_prefixes(void **state)
{
    (void)state;
    assert_true(upstream_url_prefix_valid("/"));
    assert_true(upstream_url_prefix_valid("/api/"));
    assert_true(upstream_url_prefix_valid("/docs"));
    assert_false(upstream_url_prefix_valid(""));
    assert_false(upstream_url_prefix_valid("api/"));
    assert_false(upstream_url_prefix_valid("/a b/"));
    assert_false(upstream_url_prefix_valid("/_receipt/"));
    assert_false(upstream_url_prefix_valid("/_receipt"));
    assert_false(upstream_url_prefix_valid("/_receipt/plugin/"));
    assert_true(upstream_url_prefix_valid("/_receipts/"));
}

static void expect_target(const char *url, const char *prefix, const char *raw, const char *path,
                          const char *want)
{
    upstream_url u = parsed(url);
    char out[UPSTREAM_TARGET_MAX];
    size_t n = upstream_url_target(&u, prefix, raw, path, out, sizeof out);
    if (want == NULL) {
        assert_int_equal(n, 0);
        return;
    }
    if (n == 0 || strcmp(out, want) != 0)
        fail_msg("%s + %s (prefix %s): got '%s', want '%s'", url, raw, prefix, n ? out : "", want);
    assert_int_equal(n, strlen(want));
}

static void test_targets(void **state)
{
    (void)state;
    /* Without a path: the target as received. */
    expect_target("http://h:1", "/", "/a/b?x=1&y=%20", "/a/b", "http://h:1/a/b?x=1&y=%20");
    expect_target("http://h:1", "/api/", "/api/v%2F1", "/api/v/1", "http://h:1/api/v%2F1");
    /* With one: it replaces the prefix. */
    expect_target("http://h:1/", "/app/", "/app/x?q", "/app/x", "http://h:1/x?q");
    expect_target("http://h:1/base/", "/", "/x", "/x", "http://h:1/base/x");
    expect_target("unix:/s.sock:/v1", "/api", "/api/items", "/api/items",
                  "http://localhost/v1/items");
    /* One '/' between the URL's path and the rest, whichever ends with one. */
    expect_target("http://h:1/base", "/", "/x?q=/", "/x", "http://h:1/base/x?q=/");
    expect_target("http://h:1/base", "/", "/", "/", "http://h:1/base");
    expect_target("http://h:1/base", "/", "//x", "//x", "http://h:1/base//x");
    expect_target("http://h:1/base", "/app/", "/app/x/", "/app/x/", "http://h:1/base/x/");
    expect_target("http://h:1/v1/", "/api", "/api/x", "/api/x", "http://h:1/v1/x");
    expect_target("http://h:1/v1/", "/api", "/api?q", "/api", "http://h:1/v1/?q");
    expect_target("http://h:1/v1", "/api", "/apix", "/apix", "http://h:1/v1x");
    expect_target("http://h:1/base", "/app/", "/%61pp/a%20b", "/app/a b", "http://h:1/base/a%20b");
    /* The prefix percent-encoded by the client: the decoded path again. */
    expect_target("http://h:1/", "/app/", "/%61pp/a%20b?z", "/app/a b", "http://h:1/a%20b?z");
    expect_target("http://h:1/", "/app/", "/%61pp/100%25", "/app/100%", "http://h:1/100%25");
    /* What a target may not hold goes encoded. */
    expect_target("http://h:1", "/", "/a b#c\x80", "/a b#c\x80", "http://h:1/a%20b%23c%80");
    /* Too long for the buffer: 0. */
    upstream_url u = parsed("http://h:1");
    char small[16];
    assert_int_equal(
        upstream_url_target(&u, "/", "/a/long/path", "/a/long/path", small, sizeof small), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
