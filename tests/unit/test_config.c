/* config: defaults, every value checked, clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/config.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    /* The server ID is the public URL's host. */
    assert_string_equal(cfg.server_id, "127.0.0.1");
    assert_false(cfg.track_subresources);
    assert_int_equal(cfg.path_rule_count, 0);
    config_free(&cfg);
}

/* The default server ID is the host of the public URL, given or derived. */
static void test_server_id_from_public_url(void **state)
{
    (void)state;
    static const struct {
        const char *url, *id;
    } cases[] = {
        {"https://www.example.com", "www.example.com"},
        {"https://www.example.com:8443/base", "www.example.com"},
        {"http://[2001:db8::1]:8080", "2001:db8::1"},
        {"https://Example.ORG/", "Example.ORG"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config cfg;
        char err[256] = "";
        char *argv[] = {"receiptd", "--root", "/srv", "--public-url", (char *)cases[i].url, NULL};
        assert_int_equal(parse(&cfg, 5, argv, err), CONFIG_OK);
        assert_string_equal(cfg.server_id, cases[i].id);
        config_free(&cfg);
    }
}

/* The start-up warnings: plain http off loopback, a public listener without
 * --public-url; none for the usual set-ups. */
static void test_warnings(void **state)
{
    (void)state;
    static const struct {
        const char *listen, *public_url;
        const char *first, *second; /* what the warnings mention, NULL: none */
    } cases[] = {
        {"127.0.0.1:8080", NULL, NULL, NULL},
        {"127.0.0.1:8080", "https://www.example.com", NULL, NULL},
        {"127.0.0.1:8080", "http://localhost:8080", NULL, NULL},
        {"127.0.0.1:8080", "http://app.localhost", NULL, NULL},
        {"127.0.0.1:8080", "http://127.0.0.2:8080", NULL, NULL},
        {"127.0.0.1:8080", "http://[::1]:8080", NULL, NULL},
        {"[::1]:8080", NULL, NULL, NULL},
        {"127.0.0.1:8080", "http://www.example.com", "http://www.example.com is plain http", NULL},
        {"127.0.0.1:8080", "http://[2001:db8::1]", "plain http", NULL},
        {"127.0.0.1:8080", "http://localhost.example.com", "plain http", NULL},
        {"0.0.0.0:8080", "https://www.example.com", NULL, NULL},
        {"0.0.0.0:8080", NULL, "plain http", "listening on 0.0.0.0:8080 without --public-url"},
        {"[::]:8080", NULL, "plain http", "without --public-url"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[8] = {"receiptd", "--root", "/srv", "--listen", (char *)cases[i].listen};
        int argc = 5;
        if (cases[i].public_url != NULL) {
            argv[argc++] = "--public-url";
            argv[argc++] = (char *)cases[i].public_url;
        }
        argv[argc] = NULL;
        config cfg;
        char err[256] = "";
        assert_int_equal(parse(&cfg, argc, argv, err), CONFIG_OK);
        char lines[CONFIG_WARNINGS_MAX][CONFIG_WARNING_LEN];
        size_t n = config_warnings(&cfg, lines, CONFIG_WARNINGS_MAX);
        size_t want = (cases[i].first != NULL) + (cases[i].second != NULL);
        if (n != want)
            fail_msg("case %zu (%s, %s): %zu warnings, expected %zu", i, cases[i].listen,
                     cases[i].public_url ? cases[i].public_url : "-", n, want);
        if (cases[i].first != NULL)
            assert_non_null(strstr(lines[0], cases[i].first));
        if (cases[i].second != NULL)
            assert_non_null(strstr(lines[1], cases[i].second));
        config_free(&cfg);
    }
}

/* --track and --untrack keep their order in one list. */
static void test_path_rules(void **state)
{
    (void)state;
    config cfg;
    char err[256] = "";
    assert_int_equal(
        parse(&cfg,
              ARGC("--root", "/srv", "--untrack", "/status/**", "--track", "/status/notice.html",
                   "--track-subresources", "--untrack", "**.svg"),
              ARGV("--root", "/srv", "--untrack", "/status/**", "--track", "/status/notice.html",
                   "--track-subresources", "--untrack", "**.svg"),
              err),
        CONFIG_OK);
    assert_true(cfg.track_subresources);
    assert_int_equal(cfg.path_rule_count, 3);
    assert_false(cfg.path_rules[0].track);
    assert_string_equal(cfg.path_rules[0].glob, "/status/**");
    assert_true(cfg.path_rules[1].track);
    assert_string_equal(cfg.path_rules[1].glob, "/status/notice.html");
    assert_false(cfg.path_rules[2].track);
    assert_string_equal(cfg.path_rules[2].glob, "**.svg");
    config_free(&cfg);
    assert_int_equal(cfg.path_rule_count, 0);

    /* At most CONFIG_PATH_RULES_MAX in all. */
    char *argv[3 + 2 * (CONFIG_PATH_RULES_MAX + 1) + 1];
    int argc = 0;
    argv[argc++] = "receiptd";
    argv[argc++] = "--root";
    argv[argc++] = "/srv";
    for (int i = 0; i <= CONFIG_PATH_RULES_MAX; i++) {
        argv[argc++] = i % 2 ? "--track" : "--untrack";
        argv[argc++] = "/x";
    }
    argv[argc] = NULL;
    assert_int_equal(parse(&cfg, argc, argv, err), CONFIG_USAGE);
    assert_non_null(strstr(err, "at most 64"));
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
        {"--track", "img/*.png", "starts with / or *"},
        {"--track", "", "starts with / or *"},
        {"--untrack", "/a b", "space"},
        {"--untrack", "/a\tb", "control"},
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
    assert_non_null(strstr(err, "--root DIR, --upstream URL"));
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

/* Upstreams: --upstream, --upstream-for PREFIX URL (two arguments), and
 * --root no longer required once there is one. */
static void test_upstreams(void **state)
{
    (void)state;
    config cfg;
    char err[256] = "";
    assert_int_equal(parse(&cfg,
                           ARGC("--upstream", "http://127.0.0.1:9000", "--upstream-for", "/api/",
                                "unix:/run/app.sock:/v1/", "--upstream-for", "/static/",
                                "https://cdn.example:8443", "--proxy-buffer", "64",
                                "--proxy-max-body", "5", "--upstream-timeout", "7"),
                           ARGV("--upstream", "http://127.0.0.1:9000", "--upstream-for", "/api/",
                                "unix:/run/app.sock:/v1/", "--upstream-for", "/static/",
                                "https://cdn.example:8443", "--proxy-buffer", "64",
                                "--proxy-max-body", "5", "--upstream-timeout", "7"),
                           err),
                     CONFIG_OK);
    assert_null(cfg.root);
    assert_int_equal(cfg.upstream_count, 3);
    assert_string_equal(cfg.upstreams[0].prefix, "/");
    assert_string_equal(cfg.upstreams[0].url.base, "http://127.0.0.1:9000");
    assert_false(cfg.upstreams[0].url.has_path);
    assert_string_equal(cfg.upstreams[1].prefix, "/api/");
    assert_int_equal(cfg.upstreams[1].url.scheme, UPSTREAM_UNIX);
    assert_string_equal(cfg.upstreams[1].url.socket, "/run/app.sock");
    assert_string_equal(cfg.upstreams[1].url.path, "/v1/");
    assert_int_equal(cfg.upstreams[2].url.scheme, UPSTREAM_HTTPS);
    assert_int_equal(cfg.proxy_buffer, 64 * 1024);
    assert_int_equal(cfg.proxy_max_body, 5 * 1024 * 1024);
    assert_int_equal(cfg.upstream_timeout_s, 7);
    assert_string_equal(cfg.temp_dir, "/var/tmp");
    assert_null(cfg.upstream_host);
    config_free(&cfg);

    /* A configuration file's line "upstream-for PREFIX URL". */
    assert_int_equal(parse(&cfg, ARGC("--root", "/srv"), ARGV("--root", "/srv"), err), CONFIG_OK);
    assert_int_equal(config_set(&cfg, "upstream-for", "/app/ http://[::1]:8000/", err, sizeof err),
                     0);
    assert_string_equal(cfg.upstreams[0].url.authority, "[::1]:8000");
    assert_int_equal(config_set(&cfg, "upstream-host", "upstream", err, sizeof err), 0);
    assert_string_equal(cfg.upstream_host, "upstream");
    assert_int_equal(config_set(&cfg, "upstream-for", "/app/ http://other", err, sizeof err), -1);
    assert_non_null(strstr(err, "has an upstream already"));
    assert_int_equal(config_set(&cfg, "upstream-for", "/x/", err, sizeof err), -1);
    assert_non_null(strstr(err, "PREFIX and a URL"));
    config_free(&cfg);

    static const char *const bad[][3] = {
        {"--upstream", "ftp://host", "--upstream"},
        {"--upstream", "http://user@host", "user information"},
        {"--upstream", "http://host:0", "1 to 65535"},
        {"--upstream", "http://host?x=1", "query"},
        {"--upstream", "unix:relative.sock", "unix:/"},
        {"--upstream-host", "a b", "--upstream-host"},
        {"--proxy-buffer", "1", "--proxy-buffer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {"receiptd", "--root", "/srv", (char *)bad[i][0], (char *)bad[i][1], NULL};
        if (parse(&cfg, 5, argv, err) != CONFIG_USAGE)
            fail_msg("%s %s was accepted", bad[i][0], bad[i][1]);
        if (strstr(err, bad[i][2]) == NULL)
            fail_msg("%s %s: '%s' does not mention %s", bad[i][0], bad[i][1], err, bad[i][2]);
        config_free(&cfg);
    }
    assert_int_equal(parse(&cfg, ARGC("--upstream-for", "/_receipt/x", "http://h"),
                           ARGV("--upstream-for", "/_receipt/x", "http://h"), err),
                     CONFIG_USAGE);
    assert_non_null(strstr(err, "/_receipt/"));
    config_free(&cfg);
    assert_int_equal(parse(&cfg, ARGC("--upstream-for", "/a/"), ARGV("--upstream-for", "/a/"), err),
                     CONFIG_USAGE);
    assert_non_null(strstr(err, "PREFIX URL"));
    config_free(&cfg);
    assert_int_equal(parse(&cfg, ARGC("--upstream-for", "/a/", "--root", "/srv"),
                           ARGV("--upstream-for", "/a/", "--root", "/srv"), err),
                     CONFIG_USAGE);
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
        "(default 4096)",
        "(default 64)",
        "(default info)",
        "\nLimits:\n",
        "  --upstream-for PREFIX URL",
        "(default 60)",
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
        ".SS Upstreams (in front of an existing site)\n",
        ".BI \\-\\-upstream\\-for \" PREFIX URL\"\n",
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

/* A configuration file with text and mode; its path is returned. */
static char *config_file(const char *text, mode_t mode)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test_config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void test_file(void **state)
{
    (void)state;
    config cfg;
    char err[512] = "";
    char *path = config_file("# receiptd.conf\n"
                             "\n"
                             "root /tmp\n"
                             "  listen   127.0.0.1:9001  \r\n"
                             "no-inject\n"
                             "add-header X-A: one two\n"
                             "add-header X-B: three\n"
                             "trusted-proxy 10.0.0.0/8\n"
                             "trusted-proxy ::1\n"
                             "\t# an indented comment\n"
                             "ledger sqlite:/var/x.db",
                             0644);
    assert_int_equal(
        config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err),
        CONFIG_OK);
    assert_string_equal(cfg.root, "/tmp");
    assert_string_equal(cfg.listen.text, "127.0.0.1:9001");
    assert_string_equal(cfg.public_url, "http://127.0.0.1:9001");
    assert_false(cfg.inject);
    assert_int_equal(cfg.header_count, 2);
    assert_string_equal(cfg.headers[0].value, "one two");
    assert_int_equal(cfg.trusted_proxies.count, 2);
    assert_string_equal(cfg.ledger_url, "sqlite:/var/x.db");
    assert_string_equal(cfg.config_file, path);
    config_free(&cfg);

    /* The command line wins: a value replaces the file's, a list the
     * file's whole list; what it does not name stays as the file says. */
    assert_int_equal(config_parse(&cfg,
                                  ARGC("--listen", "127.0.0.1:9002", "--config", path,
                                       "--add-header", "X-C: four", "--add-header", "X-D: five"),
                                  ARGV("--listen", "127.0.0.1:9002", "--config", path,
                                       "--add-header", "X-C: four", "--add-header", "X-D: five"),
                                  err, sizeof err),
                     CONFIG_OK);
    assert_string_equal(cfg.listen.text, "127.0.0.1:9002");
    assert_int_equal(cfg.header_count, 2);
    assert_string_equal(cfg.headers[0].name, "X-C");
    assert_string_equal(cfg.headers[1].name, "X-D");
    assert_int_equal(cfg.trusted_proxies.count, 2);
    assert_string_equal(cfg.root, "/tmp");
    config_free(&cfg);
    assert_int_equal(config_parse(&cfg, ARGC("--config", path, "--trusted-proxy", "192.0.2.1"),
                                  ARGV("--config", path, "--trusted-proxy", "192.0.2.1"), err,
                                  sizeof err),
                     CONFIG_OK);
    assert_int_equal(cfg.trusted_proxies.count, 1);
    assert_int_equal(cfg.header_count, 2);
    config_free(&cfg);
    unlink(path);

    /* --track and --untrack in a file: one ordered list, which the command
     * line replaces whole, whichever of the two it gives first. */
    path = config_file("root /srv\n"
                       "untrack /status/**\n"
                       "track /status/notice.html\n"
                       "untrack **.json\n",
                       0600);
    assert_int_equal(
        config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err),
        CONFIG_OK);
    assert_int_equal(cfg.path_rule_count, 3);
    assert_false(cfg.path_rules[0].track);
    assert_true(cfg.path_rules[1].track);
    assert_string_equal(cfg.path_rules[2].glob, "**.json");
    config_free(&cfg);
    assert_int_equal(
        config_parse(
            &cfg,
            ARGC("--config", path, "--track", "/a/**", "--untrack", "/a/b", "--track", "/a/b/c"),
            ARGV("--config", path, "--track", "/a/**", "--untrack", "/a/b", "--track", "/a/b/c"),
            err, sizeof err),
        CONFIG_OK);
    assert_int_equal(cfg.path_rule_count, 3);
    assert_true(cfg.path_rules[0].track);
    assert_string_equal(cfg.path_rules[0].glob, "/a/**");
    assert_false(cfg.path_rules[1].track);
    assert_string_equal(cfg.path_rules[1].glob, "/a/b");
    assert_true(cfg.path_rules[2].track);
    assert_string_equal(cfg.path_rules[2].glob, "/a/b/c");
    config_free(&cfg);
    unlink(path);

    /* Flags as yes and no. */
    path = config_file("root /srv\nno-inject no\n", 0600);
    assert_int_equal(
        config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err),
        CONFIG_OK);
    assert_true(cfg.inject);
    config_free(&cfg);
    unlink(path);
    path = config_file("root /srv\nno-inject yes\n", 0600);
    assert_int_equal(
        config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err),
        CONFIG_OK);
    assert_false(cfg.inject);
    config_free(&cfg);
    unlink(path);

    /* --help needs no file. */
    assert_int_equal(config_parse(&cfg, ARGC("--config", "/nonexistent", "--version"),
                                  ARGV("--config", "/nonexistent", "--version"), err, sizeof err),
                     CONFIG_EXIT_OK);
    config_free(&cfg);
}

typedef struct file_case {
    const char *text;
    mode_t mode;
    const char *error; /* after "PATH" */
} file_case;

/*
 * A file owned by another user than root or the one receiptd runs as:
 * refused whatever its mode, since its owner may change that at will.
 */
static void file_other_owner(const struct passwd *nobody)
{
    char want[512];
    config cfg;
    char err[512] = "";
    char *path = config_file("root /srv\n", 0644);
    assert_int_equal(chown(path, nobody->pw_uid, 0), 0);
    snprintf(want, sizeof want,
             "--config %s is owned by nobody, who may change it, not by root or the user "
             "receiptd runs as: chown root %s",
             path, path);
    assert_int_equal(
        config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err),
        CONFIG_USAGE);
    assert_string_equal(err, want);
    config_free(&cfg);

    /* The fix the error names. */
    assert_int_equal(chown(path, 0, 0), 0);
    assert_int_equal(
        config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err),
        CONFIG_OK);
    config_free(&cfg);
    unlink(path);
}

/*
 * A group-writable file: refused when its group holds another user than
 * its owner, taken when the group is the owner's alone; and a file of
 * another owner. Giving a file another group or owner needs root (as CI
 * runs).
 */
static void test_file_group_writable(void **state)
{
    (void)state;
    const struct passwd *nobody = getpwnam("nobody");
    if (geteuid() != 0 || nobody == NULL) {
        print_message("skipped: giving the file another group needs root and a user nobody\n");
        skip();
    }
    file_other_owner(nobody);

    gid_t others = nobody->pw_gid; /* nobody's: a group with another member than root */
    const struct group *gr = getgrgid(others);
    assert_non_null(gr);
    char want[256];
    config cfg;
    char err[512] = "";
    char *path = config_file("root /srv\n", 0664);
    assert_int_equal(chown(path, 0, others), 0);
    snprintf(want, sizeof want,
             "--config %s may be changed by the group %s (mode 0664), which is not its owner's "
             "alone: chmod g-w,o-w %s",
             path, gr->gr_name, path);
    assert_int_equal(
        config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err),
        CONFIG_USAGE);
    assert_string_equal(err, want);
    config_free(&cfg);

    /* The fix the error names. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(
        config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err),
        CONFIG_OK);
    config_free(&cfg);

    /* root's own group, which holds root alone: the owner's alone. */
    const struct group *root_group = getgrgid(0);
    assert_non_null(root_group);
    if (root_group->gr_mem[0] != NULL) {
        unlink(path);
        print_message("skipped: the group root lists members here\n");
        skip();
    }
    assert_int_equal(chown(path, 0, 0), 0);
    assert_int_equal(chmod(path, 0664), 0);
    assert_int_equal(
        config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err),
        CONFIG_OK);
    config_free(&cfg);
    unlink(path);
}

static void test_file_errors(void **state)
{
    (void)state;
    static const file_case cases[] = {
        {"root /srv\nlisten 127.0.0.1:1\nbogus 1\n", 0644, ":3: unknown option 'bogus'"},
        {"root /srv\n--listen 127.0.0.1:1\n", 0644,
         ":2: option names go without their dashes: 'listen', not '--listen'"},
        {"root /srv\nlisten nowhere\n", 0644, ":2: listen: 'nowhere' is not HOST:PORT"},
        {"root /srv\nthreads 0\n", 0644, ":2: threads '0': expected a whole number from 1 to 256"},
        {"root /srv\nlisten 127.0.0.1:1\n\nlisten 127.0.0.1:2\n", 0644,
         ":4: listen is given already, on line 2"},
        {"root /srv\nconfig /etc/other.conf\n", 0644,
         ":2: 'config' can only be given on the command line"},
        {"root /srv\ncheck\n", 0644, ":2: 'check' can only be given on the command line"},
        {"root /srv\nno-inject maybe\n", 0644,
         ":2: no-inject is a flag: give it alone, or with yes or no"},
        {"root /srv\nlisten\n", 0644, ":2: listen needs a value (HOST:PORT)"},
        {"root /srv\ntrusted-proxy 10.0.0.1/8\n", 0644,
         ":2: trusted-proxy: '10.0.0.1/8' has address bits set beyond its prefix length"},
        {"root /srv\nledger postgresql://u:secret@db/receipt\n", 0644,
         ":2: ledger holds a password, and others may read the file (mode 0644): chmod o-r "},
        {"root /srv\nledger host=db password=secret\n", 0604,
         ":2: ledger holds a password, and others may read the file (mode 0604)"},
        {"root /srv\nx\0y\n", 0644, ":2: a NUL byte"},
        {"root /srv\n", 0646, " may be changed by others (mode 0646): chmod g-w,o-w "},
        {"root /srv\n", 0666, " may be changed by others (mode 0666): chmod g-w,o-w "},
        {"root /srv\ntls-cert /etc/c.pem\n", 0644, "--tls-cert and --tls-key go together"},
        {"root /srv\nredirect-http 127.0.0.1:80\n", 0644,
         "--redirect-http redirects to HTTPS: it needs --tls-cert"},
        {"root /srv\nadmin-tls-key /k\n", 0644, "--admin-tls-cert and --admin-tls-key go together"},
        {"root /srv\nadmin-listen off\nadmin-tls-cert /etc/passwd\nadmin-tls-key /etc/passwd\n",
         0644, "--admin-tls-cert is for the admin listener, which --admin-listen off turns off"},
        /* Paths that do not name what they should are bad values too. */
        {"root /nonexistent-root\n", 0644, ":1: root /nonexistent-root: No such file or directory"},
        {"root /etc/passwd\n", 0644, ":1: root /etc/passwd is not a directory"},
        {"root /srv\ntls-cert /nonexistent.pem\ntls-key /etc/passwd\n", 0644,
         ":2: tls-cert /nonexistent.pem: No such file or directory"},
        {"root /srv\ntemp-dir /etc/passwd\n", 0644, ":2: temp-dir /etc/passwd is not a directory"},
        {"root /srv\nupstream-ca /etc\n", 0644, ":2: upstream-ca /etc is a directory, not a file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config cfg;
        char err[512] = "";
        /* The NUL case's text is written in full. */
        char *path;
        if (strstr(cases[i].error, "NUL") != NULL) {
            static char nul_path[64];
            snprintf(nul_path, sizeof nul_path, "/tmp/test_config-XXXXXX");
            int fd = mkstemp(nul_path);
            assert_int_equal(write(fd, "root /srv\nx\0y\n", 14), 14);
            close(fd);
            path = nul_path;
        } else {
            path = config_file(cases[i].text, cases[i].mode);
        }
        config_result r =
            config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err);
        char want[512];
        snprintf(want, sizeof want, "%s%s",
                 strchr(cases[i].error, ':') == cases[i].error ? path : "", cases[i].error);
        if (r != CONFIG_USAGE || strstr(err, want) == NULL)
            fail_msg("case %zu: result %d, error '%s'; expected '%s'", i, r, err, want);
        config_free(&cfg);
        unlink(path);
    }

    config cfg;
    char err[512] = "";
    /* A password in a file only its owner and group may read is fine. */
    char *path = config_file("root /srv\nledger postgresql://u:secret@db/r\n", 0640);
    assert_int_equal(
        config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err),
        CONFIG_OK);
    config_free(&cfg);
    unlink(path);
    /* A password given on the command line is no file's business. */
    path = config_file("root /srv\n", 0644);
    assert_int_equal(config_parse(&cfg, ARGC("--config", path, "--ledger", "postgresql://u:p@h/d"),
                                  ARGV("--config", path, "--ledger", "postgresql://u:p@h/d"), err,
                                  sizeof err),
                     CONFIG_OK);
    config_free(&cfg);
    unlink(path);

    assert_int_equal(config_parse(&cfg, ARGC("--config", "/nonexistent/receiptd.conf"),
                                  ARGV("--config", "/nonexistent/receiptd.conf"), err, sizeof err),
                     CONFIG_USAGE);
    assert_string_equal(
        err, "--config: cannot open /nonexistent/receiptd.conf: No such file or directory");
    config_free(&cfg);

    char long_line[CONFIG_LINE_MAX + 64] = "root /srv\nadd-header X: ";
    size_t n = strlen(long_line);
    memset(long_line + n, 'a', CONFIG_LINE_MAX);
    long_line[n + CONFIG_LINE_MAX] = '\0';
    path = config_file(long_line, 0644);
    assert_int_equal(
        config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err),
        CONFIG_USAGE);
    assert_non_null(strstr(err, ":2: the line is longer than 4096 bytes"));
    config_free(&cfg);
    unlink(path);
}

static void test_tls_options(void **state)
{
    (void)state;
    config cfg;
    char err[512] = "";
    assert_int_equal(
        config_parse(&cfg,
                     ARGC("--root", "/srv", "--listen", "127.0.0.1:8443", "--tls-cert", "/c",
                          "--tls-key", "/k", "--redirect-http", "127.0.0.1:8080"),
                     ARGV("--root", "/srv", "--listen", "127.0.0.1:8443", "--tls-cert", "/c",
                          "--tls-key", "/k", "--redirect-http", "127.0.0.1:8080"),
                     err, sizeof err),
        CONFIG_OK);
    assert_string_equal(cfg.public_url, "https://127.0.0.1:8443");
    assert_string_equal(cfg.redirect_http.text, "127.0.0.1:8080");
    config_free(&cfg);
    /* The scheme's own port is left out of the URL, as browsers write it. */
    assert_int_equal(
        config_parse(
            &cfg,
            ARGC("--root", "/srv", "--listen", "[::1]:443", "--tls-cert", "/c", "--tls-key", "/k"),
            ARGV("--root", "/srv", "--listen", "[::1]:443", "--tls-cert", "/c", "--tls-key", "/k"),
            err, sizeof err),
        CONFIG_OK);
    assert_string_equal(cfg.public_url, "https://[::1]");
    config_free(&cfg);
    assert_int_equal(config_parse(&cfg, ARGC("--root", "/srv", "--listen", "127.0.0.1:80"),
                                  ARGV("--root", "/srv", "--listen", "127.0.0.1:80"), err,
                                  sizeof err),
                     CONFIG_OK);
    assert_string_equal(cfg.public_url, "http://127.0.0.1");
    config_free(&cfg);
    assert_int_equal(config_parse(&cfg, ARGC("--root", "/srv", "--listen", "127.0.0.1:443"),
                                  ARGV("--root", "/srv", "--listen", "127.0.0.1:443"), err,
                                  sizeof err),
                     CONFIG_OK);
    assert_string_equal(cfg.public_url, "http://127.0.0.1:443");
    config_free(&cfg);
    assert_int_equal(
        config_parse(&cfg,
                     ARGC("--root", "/srv", "--tls-cert", "/c", "--tls-key", "/k",
                          "--redirect-http", "127.0.0.1:80", "--public-url", "http://example.com"),
                     ARGV("--root", "/srv", "--tls-cert", "/c", "--tls-key", "/k",
                          "--redirect-http", "127.0.0.1:80", "--public-url", "http://example.com"),
                     err, sizeof err),
        CONFIG_USAGE);
    assert_non_null(strstr(err, "needs an https --public-url"));
    config_free(&cfg);
    assert_int_equal(config_parse(&cfg,
                                  ARGC("--root", "/srv", "--tls-cert", "/c", "--tls-key", "/k",
                                       "--redirect-http", "127.0.0.1:8080"),
                                  ARGV("--root", "/srv", "--tls-cert", "/c", "--tls-key", "/k",
                                       "--redirect-http", "127.0.0.1:8080"),
                                  err, sizeof err),
                     CONFIG_USAGE);
    assert_non_null(strstr(err, "name the same address"));
    config_free(&cfg);
}

/* The sample file: every option a file may hold, at its default. */
static void test_sample(void **state)
{
    (void)state;
    char *sample = printed(config_print_sample);
    static const char *const lines[] = {
        "\n#root DIR\n",
        "\n#listen 127.0.0.1:8080\n",
        "\n#no-inject no\n",
        "\n#tls-cert FILE\n",
        "\n#trusted-proxy CIDR\n",
        "\n#state-dir /var/lib/receiptd\n",
        "\n#log-level info\n",
        "\n# ---- Limits ----\n",
        "\n#add-header NAME:VALUE\n",
        "\n#redirect-http HOST:PORT\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (strstr(sample, lines[i]) == NULL)
            fail_msg("the sample lacks '%s'", lines[i]);
    }
    assert_null(strstr(sample, "\n#help"));
    assert_null(strstr(sample, "\n#config "));
    assert_null(strstr(sample, "\n#check"));
    /* Uncommented, every option line of the sample is accepted. */
    char *text = strdup(sample);
    size_t w = 0;
    for (char *line = strtok(sample, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (line[0] != '#' || line[1] == ' ' || line[1] == '\0' || strchr(line, ' ') == NULL)
            continue;
        if (strstr(line, " FILE") || strstr(line, " DIR") || strstr(line, " URL") ||
            strstr(line, " ID") || strstr(line, " N") || strstr(line, " CIDR") ||
            strstr(line, " GLOB") || strstr(line, "HOST:PORT") || strstr(line, "NAME:VALUE"))
            continue; /* placeholders, not values */
        size_t n = strlen(line + 1);
        memcpy(text + w, line + 1, n);
        text[w + n] = '\n';
        w += n + 1;
    }
    text[w] = '\0';
    char with_root[8192];
    snprintf(with_root, sizeof with_root, "root /srv\n%s", text);
    char *path = config_file(with_root, 0644);
    config cfg;
    char err[512] = "";
    if (config_parse(&cfg, ARGC("--config", path), ARGV("--config", path), err, sizeof err) !=
        CONFIG_OK)
        fail_msg("the sample's defaults do not parse: %s\n%s", err, with_root);
    assert_true(cfg.inject);
    config_free(&cfg);
    unlink(path);
    free(text);
    free(sample);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_set_by_name),
        cmocka_unit_test(test_help_and_man),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_file_group_writable),
        cmocka_unit_test(test_tls_options),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_server_id_from_public_url),
        cmocka_unit_test(test_path_rules),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_upstreams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
