/* config: defaults, every value checked, clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/config.h"

#include <string.h>

#define ARGV(...) ((char *[]){"receiptd", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"receiptd", __VA_ARGS__}) / sizeof(char *)))

static config_result parse(config *cfg, int argc, char **argv, char *err)
{
    return config_parse(cfg, argc, argv, err, 256);
}

static void test_defaults(void **state)
{
    (void)state;
    config cfg;
    char err[256] = "";
    assert_int_equal(parse(&cfg, ARGC("--root", "/srv"), ARGV("--root", "/srv"), err), CONFIG_OK);
    assert_string_equal(cfg.root, "/srv");
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.public_url, "http://127.0.0.1:8080");
    assert_int_equal(cfg.ticket_ttl_s, 7 * 24 * 3600);
    assert_int_equal(cfg.max_connections, 10000);
    assert_int_equal(cfg.idle_timeout_s, 30);
    assert_int_equal(cfg.connection_memory, 16384);
    assert_true(cfg.inject);
    assert_true(cfg.server_id[0] != '\0');
    assert_null(strpbrk(cfg.server_id, " \"\\"));
    config_free(&cfg);
}

static void test_values(void **state)
{
    (void)state;
    config cfg;
    char err[256] = "";
    assert_int_equal(parse(&cfg,
                           ARGC("--root", "/srv", "--listen", "[::1]:9000", "--public-url",
                                "https://example.com/", "--ticket-ttl", "1", "--no-inject",
                                "--add-header", "X-A: b", "--server-id", "edge-1"),
                           ARGV("--root", "/srv", "--listen", "[::1]:9000", "--public-url",
                                "https://example.com/", "--ticket-ttl", "1", "--no-inject",
                                "--add-header", "X-A: b", "--server-id", "edge-1"),
                           err),
                     CONFIG_OK);
    assert_string_equal(cfg.public_url, "https://example.com"); /* no trailing slash */
    assert_int_equal(cfg.ticket_ttl_s, 1);
    assert_false(cfg.inject);
    assert_int_equal(cfg.header_count, 1);
    assert_string_equal(cfg.headers[0].name, "X-A");
    assert_string_equal(cfg.headers[0].value, "b");
    assert_string_equal(cfg.server_id, "edge-1");
    config_free(&cfg);
}

typedef struct bad_case {
    const char *flag;
    const char *value;
    const char *mentions;
} bad_case;

static void test_refusals(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"--ticket-ttl", "soon", "--ticket-ttl"},
        {"--ticket-ttl", "0", "--ticket-ttl"},
        {"--ticket-ttl", "-5", "--ticket-ttl"},
        {"--listen", "nowhere", "HOST:PORT"},
        {"--listen", "127.0.0.1:70000", "port"},
        {"--public-url", "ftp://x", "--public-url"},
        {"--public-url", "http://a b", "--public-url"},
        {"--add-header", "NoColon", "--add-header"},
        {"--add-header", "Bad Name: x", "--add-header"},
        {"--add-header", "X: a\rb", "--add-header"},
        {"--server-id", "has space", "--server-id"},
        {"--server-id", "", "--server-id"},
        {"--connection-memory", "100", "--connection-memory"},
        {"--queue", "99999999999", "--queue"},
        {"--log-level", "loud", "--log-level"},
        {"--threads", "0", "--threads"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config cfg;
        char err[256] = "";
        char *argv[] = {"receiptd", "--root", "/srv", (char *)cases[i].flag, (char *)cases[i].value,
                        NULL};
        if (parse(&cfg, 5, argv, err) != CONFIG_USAGE)
            fail_msg("%s %s was accepted", cases[i].flag, cases[i].value);
        if (strstr(err, cases[i].mentions) == NULL)
            fail_msg("%s %s: error '%s' does not mention %s", cases[i].flag, cases[i].value, err,
                     cases[i].mentions);
        config_free(&cfg);
    }
    config cfg;
    char err[256] = "";
    assert_int_equal(
        parse(&cfg, ARGC("--listen", "127.0.0.1:1"), ARGV("--listen", "127.0.0.1:1"), err),
        CONFIG_USAGE);
    assert_non_null(strstr(err, "--root"));
    config_free(&cfg);
    assert_int_equal(parse(&cfg, ARGC("--root", "/a", "extra"), ARGV("--root", "/a", "extra"), err),
                     CONFIG_USAGE);
    config_free(&cfg);
    assert_int_equal(parse(&cfg, ARGC("--bogus"), ARGV("--bogus"), err), CONFIG_USAGE);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
