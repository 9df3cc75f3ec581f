/* proxy: trusted networks, Forwarded and X-Forwarded-* and who the client is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* The 16-byte form of a textual address. */
static void addr_of(const char *text, uint8_t out[16])
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(out, mapped, 12);
        memcpy(out + 12, &a4, 4);
        return;
    }
    assert_int_equal(inet_pton(AF_INET6, text, &a6), 1);
    memcpy(out, &a6, 16);
}

static proxy_set trusted(const char *const *cidrs)
{
    proxy_set s = {.count = 0};
    char err[128];
    for (size_t i = 0; cidrs[i] != NULL; i++)
        assert_int_equal(proxy_set_add(&s, cidrs[i], err, sizeof err), 0);
    return s;
}

static void test_set(void **state)
{
    (void)state;
    proxy_set s =
        trusted((const char *const[]){"10.0.0.0/8", "192.0.2.7", "fd00::/8", "::1", NULL});
    uint8_t a[16];
    const char *inside[] = {"10.1.2.3", "10.255.255.255", "192.0.2.7", "fd12::5", "::1"};
    const char *outside[] = {"11.0.0.1", "192.0.2.8", "fe00::1", "::2", "::ffff:0:0"};
    for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++) {
        addr_of(inside[i], a);
        assert_true(proxy_set_contains(&s, a));
    }
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        addr_of(outside[i], a);
        assert_false(proxy_set_contains(&s, a));
    }
    /* An IPv4 network also holds the IPv4-mapped form a dual-stack socket reports. */
    addr_of("::ffff:10.9.9.9", a);
    assert_true(proxy_set_contains(&s, a));

    proxy_set all = trusted((const char *const[]){"0.0.0.0/0", NULL});
    addr_of("203.0.113.9", a);
    assert_true(proxy_set_contains(&all, a));
    addr_of("2001:db8::1", a);
    assert_false(proxy_set_contains(&all, a));
    proxy_set odd = trusted((const char *const[]){"172.16.0.0/12", "2001:db8:8000::/33", NULL});
    addr_of("172.31.255.1", a);
    assert_true(proxy_set_contains(&odd, a));
    addr_of("172.32.0.1", a);
    assert_false(proxy_set_contains(&odd, a));
    addr_of("2001:db8:ffff::1", a);
    assert_true(proxy_set_contains(&odd, a));
    addr_of("2001:db8:7fff::1", a);
    assert_false(proxy_set_contains(&odd, a));

    /* Every IPv6 peer is not every peer: ::/0 (or ::/64) holds no IPv4 one,
     * while a network written in the mapped range does. */
    proxy_set v6 = trusted((const char *const[]){"::/0", "::/64", NULL});
    addr_of("2001:db8::1", a);
    assert_true(proxy_set_contains(&v6, a));
    addr_of("127.0.0.1", a);
    assert_false(proxy_set_contains(&v6, a));
    proxy_set mapped = trusted((const char *const[]){"::ffff:10.0.0.0/104", NULL});
    addr_of("10.1.2.3", a);
    assert_true(proxy_set_contains(&mapped, a));
    addr_of("11.1.2.3", a);
    assert_false(proxy_set_contains(&mapped, a));
}

static void test_set_errors(void **state)
{
    (void)state;
    proxy_set s = {.count = 0};
    char err[128];
    const char *bad[] = {"",           "10.0.0.0/", "10.0.0.0/33", "10.0.0.1/8", "::1/129",
                         "10.0.0.0/x", "10.0.0/8",  "localhost",   "fe80::1%lo", "10.0.0.0/08x",
                         "010.0.0.1",  "::/-1",     "1.2.3.4/ 8",  "[::1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(proxy_set_add(&s, bad[i], err, sizeof err), -1);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(s.count, 0);
    assert_int_equal(proxy_set_add(&s, "10.0.0.1/8", err, sizeof err), -1);
    assert_non_null(strstr(err, "beyond its prefix"));
    for (int i = 0; i < PROXY_SET_MAX; i++)
        assert_int_equal(proxy_set_add(&s, "::/0", err, sizeof err), 0);
    assert_int_equal(proxy_set_add(&s, "::/0", err, sizeof err), -1);
}

typedef struct resolve_case {
    const char *peer;
    const char *forwarded, *xff, *xfp;
    proxy_outcome outcome;
    const char *client; /* NULL: the peer */
    proxy_scheme scheme;
} resolve_case;

static void check(const proxy_set *s, const resolve_case *c)
{
    uint8_t peer[16];
    addr_of(c->peer, peer);
    proxy_headers h = {c->forwarded, c->xff, c->xfp};
    proxy_client out;
    proxy_outcome got = proxy_resolve(s, peer, &h, &out);
    char text[PROXY_ADDR_TEXT_MAX];
    proxy_addr_format(out.addr, text);
    char expect[PROXY_ADDR_TEXT_MAX];
    uint8_t e[16];
    addr_of(c->client ? c->client : c->peer, e);
    proxy_addr_format(e, expect);
    if (got != c->outcome || strcmp(text, expect) != 0 || out.scheme != c->scheme)
        fail_msg("peer %s Forwarded [%s] XFF [%s] XFP [%s]: outcome %d client %s scheme %d; "
                 "expected %d %s %d",
                 c->peer, c->forwarded ? c->forwarded : "-", c->xff ? c->xff : "-",
                 c->xfp ? c->xfp : "-", got, text, out.scheme, c->outcome, expect, c->scheme);
}

static void test_resolve(void **state)
{
    (void)state;
    proxy_set s =
        trusted((const char *const[]){"127.0.0.1", "10.0.0.0/8", "2001:db8:1::/48", NULL});
    const proxy_scheme N = PROXY_SCHEME_NONE, H = PROXY_SCHEME_HTTP, S = PROXY_SCHEME_HTTPS;
    static const proxy_outcome D = PROXY_DIRECT, F = PROXY_FORWARDED, U = PROXY_UNTRUSTED,
                               M = PROXY_MALFORMED;
    const resolve_case cases[] = {
        /* no headers */
        {"127.0.0.1", NULL, NULL, NULL, D, NULL, N},
        {"203.0.113.1", NULL, NULL, NULL, D, NULL, N},
        /* untrusted peers are not believed */
        {"203.0.113.1", NULL, "198.51.100.7", "https", U, NULL, N},
        {"203.0.113.1", "for=198.51.100.7", NULL, NULL, U, NULL, N},
        {"127.0.0.2", NULL, "198.51.100.7", NULL, U, NULL, N},
        /* X-Forwarded-For: the right-most untrusted address */
        {"127.0.0.1", NULL, "127.0.0.5", NULL, F, "127.0.0.5", N},
        {"127.0.0.1", NULL, "198.51.100.7", "https", F, "198.51.100.7", S},
        {"127.0.0.1", NULL, "6.6.6.6, 198.51.100.7, 10.1.1.1", NULL, F, "198.51.100.7", N},
        {"127.0.0.1", NULL, "6.6.6.6,198.51.100.7 ,\t10.1.1.1", "HTTP", F, "198.51.100.7", H},
        {"127.0.0.1", NULL, "10.2.2.2, 10.1.1.1", NULL, F, "10.2.2.2", N},
        {"127.0.0.1", NULL, "198.51.100.7:5555", NULL, F, "198.51.100.7", N},
        {"127.0.0.1", NULL, "2001:db8:9::1", NULL, F, "2001:db8:9::1", N},
        {"127.0.0.1", NULL, "[2001:db8:9::1]:443, 2001:db8:1::5", NULL, F, "2001:db8:9::1", N},
        {"127.0.0.1", NULL, "[2001:db8:9::2]", NULL, F, "2001:db8:9::2", N},
        {"127.0.0.1", NULL, "unknown, 10.1.1.1", NULL, F, "10.1.1.1", N},
        {"127.0.0.1", NULL, "unknown", NULL, F, "127.0.0.1", N},
        /* one scheme per address lines up; otherwise the last counts */
        {"127.0.0.1", NULL, "198.51.100.7, 10.1.1.1", "https, http", F, "198.51.100.7", S},
        {"127.0.0.1", NULL, "198.51.100.7, 10.1.1.1", "http, https, http", F, "198.51.100.7", H},
        {"127.0.0.1", NULL, NULL, "https", F, NULL, S},
        {"127.0.0.1", NULL, "198.51.100.7", "wss", F, "198.51.100.7", N},
        /* malformed X-Forwarded-* */
        {"127.0.0.1", NULL, "198.51.100.7 junk", NULL, M, NULL, N},
        {"127.0.0.1", NULL, "", NULL, M, NULL, N},
        {"127.0.0.1", NULL, "1.2.3.4,", NULL, M, NULL, N},
        {"127.0.0.1", NULL, "1.2.3.4, 10.1.1.1,, 10.2.2.2", NULL, M, NULL, N},
        {"127.0.0.1", NULL, "1.2.3.4, junk, 10.1.1.1", NULL, M, NULL, N},
        /* left of the client, what the client wrote itself is not read: a
         * proxy appends to it, and garbage there must not make the proxy
         * the client */
        {"127.0.0.1", NULL, "1.2.3.4,,5.6.7.8", NULL, F, "5.6.7.8", N},
        {"127.0.0.1", NULL, "junk, 198.51.100.7, 10.1.1.1", NULL, F, "198.51.100.7", N},
        {"127.0.0.1", NULL, "\"x, [::1, 198.51.100.7", "https", F, "198.51.100.7", S},
        {"127.0.0.1", NULL, "1.2.3", NULL, M, NULL, N},
        {"127.0.0.1", NULL, "01.2.3.4", NULL, M, NULL, N},
        {"127.0.0.1", NULL, "1.2.3.4:99999", NULL, M, NULL, N},
        {"127.0.0.1", NULL, "[2001:db8::1", NULL, M, NULL, N},
        {"127.0.0.1", NULL, "[2001:db8::1]x", NULL, M, NULL, N},
        {"127.0.0.1", NULL, "fe80::1%eth0", NULL, M, NULL, N},
        {"127.0.0.1", NULL, "host.example", NULL, M, NULL, N},
        {"127.0.0.1", NULL, "1.2.3.4", "ht tp", M, NULL, N},
        {"127.0.0.1", NULL, "1.2.3.4", "9http", M, NULL, N},
        {"127.0.0.1", NULL, "1.2.3.4", "", M, NULL, N},
        /* Forwarded wins over X-Forwarded-* */
        {"127.0.0.1", "for=192.0.2.60;proto=https;by=203.0.113.43", "6.6.6.6", "http", F,
         "192.0.2.60", S},
        {"127.0.0.1", "for=192.0.2.43, for=198.51.100.17", NULL, NULL, F, "198.51.100.17", N},
        {"127.0.0.1", "for=192.0.2.43, for=10.0.0.9;proto=http", NULL, NULL, F, "192.0.2.43", N},
        {"127.0.0.1", "For=\"[2001:db8:cafe::17]:4711\";Proto=HTTPS", NULL, NULL, F,
         "2001:db8:cafe::17", S},
        {"127.0.0.1", "for=\"192.0.2.60:8080\"", NULL, NULL, F, "192.0.2.60", N},
        {"127.0.0.1", "for=\"\\192.0.2.60\"", NULL, NULL, F, "192.0.2.60", N},
        {"127.0.0.1", "for=unknown;proto=https, for=10.0.0.3", NULL, NULL, F, "10.0.0.3", S},
        {"127.0.0.1", "for=_hidden, for=10.0.0.3", NULL, NULL, F, "10.0.0.3", N},
        {"127.0.0.1", "for=\"_gazonk:_p1\"", NULL, NULL, F, "127.0.0.1", N},
        {"127.0.0.1", "proto=https", NULL, NULL, F, "127.0.0.1", S},
        {"127.0.0.1", "by=10.0.0.1;for=192.0.2.1;host=example.com", NULL, NULL, F, "192.0.2.1", N},
        {"127.0.0.1", " , for=192.0.2.1 ,, ", NULL, NULL, F, "192.0.2.1", N},
        {"127.0.0.1", "for=192.0.2.1 ; proto=http", NULL, NULL, F, "192.0.2.1", H},
        {"127.0.0.1", "for=192.0.2.1;ext=\"anything, even; this\"", NULL, NULL, F, "192.0.2.1", N},
        /* malformed Forwarded: ignored, even with a good X-Forwarded-For */
        {"127.0.0.1", "for=", "198.51.100.7", NULL, M, NULL, N},
        {"127.0.0.1", "for=192.0.2.60:8080", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=[2001:db8::1]", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=\"2001:db8::1\"", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=\"[2001:db8::1\"", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=\"192.0.2.60", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=192.0.2.60;for=192.0.2.61", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=192.0.2.60;proto=http;proto=https", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=192.0.2.600", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for =192.0.2.60", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=192.0.2.60 x", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=hostname", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=\"192.0.2.60:http\"", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=192.0.2.60;proto=\"ht tp\"", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "", NULL, NULL, M, NULL, N},
        {"127.0.0.1", ",", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "=x", NULL, NULL, M, NULL, N},
        {"127.0.0.1", "for=\"a\x01\"", NULL, NULL, M, NULL, N},
        /* IPv6 peers */
        {"2001:db8:1::1", NULL, "198.51.100.7", NULL, F, "198.51.100.7", N},
        {"2001:db8:2::1", NULL, "198.51.100.7", NULL, U, NULL, N},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check(&s, &cases[i]);

    /* Without trusted proxies, nobody is believed. */
    proxy_set none = {.count = 0};
    check(&none, &(resolve_case){"127.0.0.1", NULL, "1.2.3.4", NULL, U, NULL, N});
}

static void test_hop_limit(void **state)
{
    (void)state;
    proxy_set s = trusted((const char *const[]){"127.0.0.1", NULL});
    char xff[PROXY_HEADER_MAX];
    size_t len = 0;
    xff[0] = '\0';
    for (int i = 0; i < PROXY_HOPS_MAX; i++) {
        char one[32];
        snprintf(one, sizeof one, "192.0.2.%d", i + 1);
        assert_int_equal(proxy_join(xff, sizeof xff, &len, one), 0);
    }
    check(&s, &(resolve_case){"127.0.0.1", NULL, xff, NULL, PROXY_FORWARDED, "192.0.2.32",
                              PROXY_SCHEME_NONE});
    /* More entries than the limit: the walk from the right reads one. */
    assert_int_equal(proxy_join(xff, sizeof xff, &len, "192.0.2.99"), 0);
    check(&s, &(resolve_case){"127.0.0.1", NULL, xff, NULL, PROXY_FORWARDED, "192.0.2.99",
                              PROXY_SCHEME_NONE});
    /* More trusted hops to walk than the limit: malformed. */
    len = 0;
    xff[0] = '\0';
    assert_int_equal(proxy_join(xff, sizeof xff, &len, "192.0.2.1"), 0);
    for (int i = 0; i < PROXY_HOPS_MAX; i++)
        assert_int_equal(proxy_join(xff, sizeof xff, &len, "127.0.0.1"), 0);
    check(&s,
          &(resolve_case){"127.0.0.1", NULL, xff, NULL, PROXY_MALFORMED, NULL, PROXY_SCHEME_NONE});
}

/* A long X-Forwarded-For keeps its right-most entries; other fields are
 * malformed past the limit. */
static void test_fields_too_long(void **state)
{
    (void)state;
    static proxy_fields f;
    proxy_set s = trusted((const char *const[]){"127.0.0.1", NULL});
    char claim[3 * PROXY_HEADER_MAX];
    size_t n = 0;
    for (int i = 0; n + 16 < sizeof claim - 32; i++)
        n += (size_t)snprintf(claim + n, sizeof claim - n, "198.51.%d.%d, ", i / 200, i % 200 + 1);
    memcpy(claim + n, "203.0.113.9", sizeof "203.0.113.9");

    /* One line, as nginx sends what it appended to. */
    proxy_fields_init(&f);
    assert_true(proxy_fields_add(&f, "X-Forwarded-For", claim));
    const char *v = proxy_fields_value(&f, PROXY_FIELD_X_FORWARDED_FOR);
    assert_true(strlen(v) <= PROXY_HEADER_MAX);
    assert_true(v[0] != ',' && strstr(claim, v) != NULL);
    check(&s, &(resolve_case){"127.0.0.1", NULL, v, NULL, PROXY_FORWARDED, "203.0.113.9",
                              PROXY_SCHEME_NONE});

    /* Many lines, the last one the proxy's. */
    proxy_fields_init(&f);
    for (int i = 0; i < 300; i++)
        assert_true(proxy_fields_add(&f, "x-forwarded-for", "198.51.100.1, 198.51.100.2"));
    assert_true(proxy_fields_add(&f, "X-Forwarded-For", "203.0.113.10"));
    v = proxy_fields_value(&f, PROXY_FIELD_X_FORWARDED_FOR);
    assert_true(strlen(v) <= PROXY_HEADER_MAX);
    check(&s, &(resolve_case){"127.0.0.1", NULL, v, NULL, PROXY_FORWARDED, "203.0.113.10",
                              PROXY_SCHEME_NONE});

    /* Forwarded past the limit: "" (malformed). */
    proxy_fields_init(&f);
    assert_true(proxy_fields_add(&f, "Forwarded", claim));
    assert_string_equal(proxy_fields_value(&f, PROXY_FIELD_FORWARDED), "");
}

static void test_join_and_format(void **state)
{
    (void)state;
    char buf[64];
    size_t len = 0;
    assert_int_equal(proxy_join(buf, sizeof buf, &len, "for=1.2.3.4"), 0);
    assert_int_equal(proxy_join(buf, sizeof buf, &len, "for=5.6.7.8"), 0);
    assert_string_equal(buf, "for=1.2.3.4, for=5.6.7.8");
    char big[PROXY_HEADER_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char huge[PROXY_HEADER_MAX * 2];
    len = 0;
    assert_int_equal(proxy_join(huge, sizeof huge, &len, big), -1);
    len = 0;
    assert_int_equal(proxy_join(buf, sizeof buf, &len, big), -1);

    uint8_t a[16];
    char text[PROXY_ADDR_TEXT_MAX];
    addr_of("::ffff:192.0.2.1", a);
    proxy_addr_format(a, text);
    assert_string_equal(text, "192.0.2.1");
    addr_of("2001:0db8:0000:0000:0000:0000:0000:0001", a);
    proxy_addr_format(a, text);
    assert_string_equal(text, "2001:db8::1");

    struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::1", &sa6.sin6_addr);
    assert_int_equal(proxy_addr_from_sockaddr((struct sockaddr *)&sa6, a), 0);
    proxy_addr_format(a, text);
    assert_string_equal(text, "::1");
    struct sockaddr sa_unix = {.sa_family = AF_UNIX};
    assert_int_equal(proxy_addr_from_sockaddr(&sa_unix, a), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_hop_limit),
        cmocka_unit_test(test_fields_too_long),
        cmocka_unit_test(test_join_and_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
