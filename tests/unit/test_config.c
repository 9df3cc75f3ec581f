/* config: defaults, every value checked, clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/config.h"

#include <stdio.h>
#include <stdlib.h>
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
    assert_string_equal(cfg.listen.text, "127.0.0.1:8080");
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

/* config_set(): one option by name, as a configuration file would. */
static void test_set_by_name(void **state)
{
    (void)state;
    config cfg;
    char err[256] = "";
    assert_int_equal(parse(&cfg, ARGC("--root", "/srv"), ARGV("--root", "/srv"), err), CONFIG_OK);
    assert_false(cfg.admin_explicit);
    assert_int_equal(config_set(&cfg, "cache-size", "2", err, sizeof err), 0);
    assert_int_equal(cfg.cache_bytes, 2u * 1024 * 1024);
    assert_int_equal(config_set(&cfg, "no-inject", NULL, err, sizeof err), 0);
    assert_false(cfg.inject);
    assert_int_equal(config_set(&cfg, "state-dir", "/var/x", err, sizeof err), 0);
    assert_string_equal(cfg.state_dir, "/var/x");
    assert_int_equal(config_set(&cfg, "admin-listen", "off", err, sizeof err), 0);
    assert_string_equal(cfg.admin_listen.text, "");
    assert_int_equal(config_set(&cfg, "listen", NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "--listen"));
    assert_int_equal(config_set(&cfg, "threads", "300", err, sizeof err), -1);
    assert_non_null(strstr(err, "from 1 to 256"));
    /* Options of the command line alone are not options of a file. */
    assert_int_equal(config_set(&cfg, "help", NULL, err, sizeof err), -1);
    assert_int_equal(config_set(&cfg, "check", NULL, err, sizeof err), -1);
    assert_int_equal(config_set(&cfg, "bogus", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "bogus"));
    config_free(&cfg);

    char *argv[2 + 2 * (CONFIG_EXTRA_HEADERS_MAX + 1) + 1];
    int argc = 0;
    argv[argc++] = "receiptd";
    argv[argc++] = "--root=/srv";
    for (int i = 0; i <= CONFIG_EXTRA_HEADERS_MAX; i++) {
        argv[argc++] = "--add-header";
        argv[argc++] = "X-A: b";
    }
    argv[argc] = NULL;
    assert_int_equal(parse(&cfg, argc, argv, err), CONFIG_USAGE);
    assert_non_null(strstr(err, "at most 32 --add-header"));
    config_free(&cfg);

    assert_int_equal(parse(&cfg, ARGC("--root", "/srv", "--admin-listen", "127.0.0.1:0"),
                           ARGV("--root", "/srv", "--admin-listen", "127.0.0.1:0"), err),
                     CONFIG_OK);
    assert_true(cfg.admin_explicit);
    config_free(&cfg);
}

static char *printed(void (*print)(FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    print(f);
    assert_int_equal(fclose(f), 0);
    return text;
}

/* --help and the man page say what the table says, defaults included. */
static void test_help_and_man(void **state)
{
    (void)state;
    char *help = printed(config_print_help);
    char *man = printed(config_print_man);
    static const char *const in_help[] = {
        "  --root DIR ",
        "--listen HOST:PORT      public listener (default 127.0.0.1:8080)\n",
        "(default 127.0.0.1:8091; 'off' disables it)",
        "(default 604800)",
        "(default /var/lib/receiptd; mode 0700)",
        "(default: the number of CPUs)",
        "(default 65536)",
        "(default 64)",
        "(default info)",
        "\nLimits:\n",
        "  --help ",
        "Exit status:",
    };
    for (size_t i = 0; i < sizeof in_help / sizeof in_help[0]; i++) {
        if (strstr(help, in_help[i]) == NULL)
            fail_msg("--help lacks '%s':\n%s", in_help[i], help);
    }
    static const char *const in_man[] = {
        ".SS Content and protocol\n.TP\n.BI \\-\\-root \" DIR\"\n",
        ".BI \\-\\-admin\\-listen \" HOST:PORT\"\n",
        ".B \\-\\-no\\-inject\n",
        "(default 127.0.0.1:8080)",
        "(default 16384)",
        "at most 32)",
        ".SS Operations\n",
    };
    for (size_t i = 0; i < sizeof in_man / sizeof in_man[0]; i++) {
        if (strstr(man, in_man[i]) == NULL)
            fail_msg("the man page lacks '%s':\n%s", in_man[i], man);
    }
    /* No placeholder left unfilled; no line of --help past 79 columns. */
    assert_null(strstr(help, "%D"));
    assert_null(strstr(man, "%D"));
    assert_null(strstr(man, "%M"));
    for (char *line = help, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        assert_non_null(end);
        if (end - line > 79)
            fail_msg("--help line over 79 columns: %.*s", (int)(end - line), line);
    }
    free(help);
    free(man);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_values),
        cmocka_unit_test(test_refusals),     cmocka_unit_test(test_set_by_name),
        cmocka_unit_test(test_help_and_man),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
