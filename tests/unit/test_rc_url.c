/* rc_url: the confirm URL policy and origins; rc_http: the response fields
 * the protocol reads (Repr-Digest, Retry-After). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/rc_http.h"
#include "lib/rc_url.h"

#include <stdio.h>
#include <string.h>

static void test_loopback_hosts(void **state)
{
    (void)state;
    static const char *yes[] = {
        "localhost", "LOCALHOST",          "localhost.",       "app.localhost",
        "127.0.0.1", "127.1.2.3",          "127.255.255.254",  "[::1]",
        "::1",       "[::ffff:127.0.0.1]", "[0:0:0:0:0:0:0:1]"};
    static const char *no[] = {"",
                               "example.com",
                               "localhost.example.com",
                               "128.0.0.1",
                               "10.0.0.1",
                               "0.0.0.0",
                               "[::]",
                               "[::2]",
                               "[::ffff:10.0.0.1]",
                               "127.0.0.1.example.com",
                               "mylocalhost",
                               "[fe80::1]"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!rc_url_host_is_loopback(yes[i]))
            fail_msg("%s should be loopback", yes[i]);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (rc_url_host_is_loopback(no[i]))
            fail_msg("%s should not be loopback", no[i]);
    }
}

static void test_confirm_policy(void **state)
{
    (void)state;
    char err[256];
    static const struct {
        const char *url;
        rc_url_verdict strict;  /* without allowing insecure */
        rc_url_verdict relaxed; /* with */
    } cases[] = {
        {"https://example.com/_receipt/confirm", RC_URL_OK, RC_URL_OK},
        {"HTTPS://Example.COM:8443/c", RC_URL_OK, RC_URL_OK},
        {"http://127.0.0.1:8080/_receipt/confirm", RC_URL_OK, RC_URL_OK},
        {"http://localhost/_receipt/confirm", RC_URL_OK, RC_URL_OK},
        {"http://[::1]:9/_receipt/confirm", RC_URL_OK, RC_URL_OK},
        {"http://example.com/_receipt/confirm", RC_URL_INSECURE, RC_URL_OK},
        {"http://10.1.2.3/_receipt/confirm", RC_URL_INSECURE, RC_URL_OK},
        /* The host is what follows the userinfo, as curl would connect. */
        {"http://127.0.0.1@evil.example/_receipt/confirm", RC_URL_INSECURE, RC_URL_OK},
        {"http://127.0.0.1.evil.example/c", RC_URL_INSECURE, RC_URL_OK},
        {"ftp://127.0.0.1/c", RC_URL_SCHEME, RC_URL_SCHEME},
        {"file:///etc/passwd", RC_URL_SCHEME, RC_URL_SCHEME},
        {"javascript:alert(1)", RC_URL_MALFORMED, RC_URL_MALFORMED},
        {"/_receipt/confirm", RC_URL_MALFORMED, RC_URL_MALFORMED},
        {"example.com/_receipt/confirm", RC_URL_MALFORMED, RC_URL_MALFORMED},
        {"", RC_URL_MALFORMED, RC_URL_MALFORMED},
        {"http://", RC_URL_MALFORMED, RC_URL_MALFORMED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rc_url_verdict s = rc_url_confirm_allowed(cases[i].url, false, err, sizeof(err));
        rc_url_verdict r = rc_url_confirm_allowed(cases[i].url, true, err, sizeof(err));
        if (s != cases[i].strict || r != cases[i].relaxed)
            fail_msg("%s: got %d/%d, want %d/%d", cases[i].url, s, r, cases[i].strict,
                     cases[i].relaxed);
    }
    assert_int_equal(rc_url_confirm_allowed(NULL, true, err, sizeof(err)), RC_URL_MALFORMED);
    assert_int_equal(rc_url_confirm_allowed("http://example.com/c", false, err, sizeof(err)),
                     RC_URL_INSECURE);
    assert_non_null(strstr(err, "example.com"));

    /* Too long to be a URL we accept. */
    char long_url[RC_URL_MAX + 32];
    memset(long_url, 'a', sizeof(long_url) - 1);
    memcpy(long_url, "https://x.test/", 15);
    long_url[sizeof(long_url) - 1] = '\0';
    assert_int_equal(rc_url_confirm_allowed(long_url, true, err, sizeof(err)), RC_URL_MALFORMED);
}

static void test_origin(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *origin;
    } cases[] = {
        {"http://127.0.0.1:8080/a/b.bin?x=1#f", "http://127.0.0.1:8080"},
        {"HTTP://Example.COM/x", "http://example.com"},
        {"http://example.com:80/x", "http://example.com"},
        {"https://example.com:443/x", "https://example.com"},
        {"https://example.com:80/x", "https://example.com:80"},
        {"http://user:pw@example.com:81/", "http://example.com:81"},
        {"http://[::1]:9000/", "http://[::1]:9000"},
    };
    char origin[RC_ORIGIN_MAX];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(rc_url_origin(cases[i].url, origin), 0);
        assert_string_equal(origin, cases[i].origin);
    }
    assert_int_equal(rc_url_origin("ftp://example.com/", origin), -1);
    assert_int_equal(rc_url_origin("nonsense", origin), -1);

    bool https = false;
    char host[RC_ORIGIN_MAX];
    assert_int_equal(rc_url_check("https://Host.Example/x", &https, host), RC_URL_OK);
    assert_true(https);
    assert_string_equal(host, "host.example");
}

static void test_repr_digest(void **state)
{
    (void)state;
    /* SHA-256 of "hello receipt\n". */
    static const uint8_t want[32] = {0x66, 0x4c, 0x40, 0x55, 0x00, 0xe1, 0xcb, 0x0e,
                                     0xd9, 0x46, 0x96, 0x97, 0x4b, 0xe7, 0x98, 0xfc,
                                     0x22, 0xf3, 0x20, 0xe2, 0xb4, 0x66, 0xaa, 0x55,
                                     0x5a, 0x92, 0x9f, 0x4c, 0x00, 0x6d, 0x42, 0xc1};
    uint8_t got[32];
    assert_int_equal(
        rc_http_parse_repr_digest("sha-256=:ZkxAVQDhyw7ZRpaXS+eY/CLzIOK0ZqpVWpKfTABtQsE=:", got),
        0);
    assert_memory_equal(got, want, 32);
    /* Among other members, in any order. */
    assert_int_equal(
        rc_http_parse_repr_digest(
            "sha-512=:AAAA:, sha-256=:ZkxAVQDhyw7ZRpaXS+eY/CLzIOK0ZqpVWpKfTABtQsE=:", got),
        0);
    assert_memory_equal(got, want, 32);
    static const char *bad[] = {
        "",
        "sha-256=ZkxAVQDhyw7ZRpaXS+eY/CLzIOK0ZqpVWpKfTABtQsE=",
        "sha-256=:ZkxAVQDhyw7ZRpaXS-eY_CLzIOK0ZqpVWpKfTABtQsE:",  /* base64url */
        "sha-256=:ZkxAVQDhyw7ZRpaXS+eY/CLzIOK0ZqpVWpKfTABtQsE:",  /* no padding */
        "sha-256=:ZkxAVQDhyw7ZRpaXS+eY/CLzIOK0ZqpVWpKfTABtQsF=:", /* trailing bits */
        "sha-256=:ZkxAVQDhyw7ZRpaXS+eY/CLzIOK0ZqpVWpKfTABt=:",
        "sha-512=:ZkxAVQDhyw7ZRpaXS+eY/CLzIOK0ZqpVWpKfTABtQsE=:",
        "SHA-256=:ZkxAVQDhyw7ZRpaXS+eY/CLzIOK0ZqpVWpKfTABtQsE=:",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rc_http_parse_repr_digest(bad[i], got) == 0)
            fail_msg("accepted %s", bad[i]);
    }
}

static void test_retry_after(void **state)
{
    (void)state;
    /* 2026-11-26T00:00:00Z */
    uint64_t now = 1795651200000ull;
    assert_int_equal(rc_http_parse_retry_after("120", now), 120);
    assert_int_equal(rc_http_parse_retry_after("0", now), 0);
    assert_int_equal(rc_http_parse_retry_after("Thu, 26 Nov 2026 00:01:00 GMT", now), 60);
    assert_int_equal(rc_http_parse_retry_after("Wed, 25 Nov 2026 00:00:00 GMT", now), 0);
    assert_int_equal(rc_http_parse_retry_after("soon", now), -1);
    assert_int_equal(rc_http_parse_retry_after("12abc", now), -1);
    assert_int_equal(rc_http_parse_retry_after("99999999999", now), -1);
}

static void test_retryable_statuses(void **state)
{
    (void)state;
    assert_true(rc_http_retryable(0));
    assert_true(rc_http_retryable(429));
    assert_true(rc_http_retryable(500));
    assert_true(rc_http_retryable(503));
    assert_true(rc_http_retryable(599));
    static const long final[] = {200, 301, 400, 401, 404, 409, 410, 413, 415, 428, 431, 600};
    for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++)
        assert_false(rc_http_retryable(final[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_hosts), cmocka_unit_test(test_confirm_policy),
        cmocka_unit_test(test_origin),         cmocka_unit_test(test_repr_digest),
        cmocka_unit_test(test_retry_after),    cmocka_unit_test(test_retryable_statuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
