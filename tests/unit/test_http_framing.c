/* http_framing: the request checks every listener applies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/http_framing.h"

#include <string.h>

/* The fault of a request of version given as "Name: value" pairs; NULL: none. */
static const http_framing_fault *check(const char *version, const char *const fields[][2], size_t n)
{
    http_framing f;
    http_framing_init(&f);
    for (size_t i = 0; i < n; i++)
        http_framing_note(&f, fields[i][0], fields[i][1]);
    return http_framing_check(&f, version);
}

#define CHECK(version, ...)                                                                        \
    check(version, (const char *const[][2]){__VA_ARGS__},                                          \
          sizeof((const char *const[][2]){__VA_ARGS__}) / sizeof(const char *const[2]))

static void assert_fault(const http_framing_fault *f, unsigned status, const char *code)
{
    assert_non_null(f);
    assert_int_equal(f->status, status);
    assert_string_equal(f->code, code);
    assert_non_null(f->message);
}

static void test_sound(void **state)
{
    (void)state;
    assert_null(CHECK("HTTP/1.1", {"Host", "x"}));
    assert_null(CHECK("HTTP/1.1", {"host", "x"}, {"Content-Length", "5"}, {"content-length", "5"}));
    assert_null(CHECK("HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", "Chunked"}));
    /* HTTP/1.0 needs no Host, and may repeat it (no rule of 1.0's). */
    assert_null(CHECK("HTTP/1.0", {"User-Agent", "a"}));
    assert_null(CHECK("HTTP/1.0", {"Host", "a"}, {"Host", "b"}));
    /* Fields of other names starting with the same letters are not taken for them. */
    assert_null(CHECK("HTTP/1.1", {"Host", "x"}, {"Content-Type", "a"}, {"TE", "trailers"},
                      {"Hostname", "y"}));
}

static void test_framing(void **state)
{
    (void)state;
    assert_fault(
        CHECK("HTTP/1.1", {"Host", "x"}, {"Content-Length", "5"}, {"Content-Length", "40"}), 400,
        "conflicting_length");
    assert_fault(
        CHECK("HTTP/1.1", {"Host", "x"}, {"Content-Length", "4"}, {"Transfer-Encoding", "chunked"}),
        400, "conflicting_length");
    assert_fault(CHECK("HTTP/1.0", {"Transfer-Encoding", "chunked"}, {"Content-Length", "4"}), 400,
                 "conflicting_length");
    /* Chunked last: the body's end is known; the rest is not understood (RFC 9112 6.1). */
    assert_fault(CHECK("HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", "gzip, chunked"}), 501,
                 "unsupported_transfer_coding");
    assert_fault(CHECK("HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", "chunked, chunked"}), 501,
                 "unsupported_transfer_coding");
    assert_fault(CHECK("HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", "chunked"},
                       {"Transfer-Encoding", "chunked"}),
                 501, "unsupported_transfer_coding");
    assert_fault(CHECK("HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", "gzip"},
                       {"Transfer-Encoding", " CHUNKED\t"}),
                 501, "unsupported_transfer_coding");
    /* Empty list elements count for nothing (RFC 9110 5.6.1). */
    assert_fault(CHECK("HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", ", chunked ,"}), 501,
                 "unsupported_transfer_coding");
    assert_fault(CHECK("HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", "chunked"},
                       {"Transfer-Encoding", ","}),
                 501, "unsupported_transfer_coding");
}

/* Chunked not last: nothing says where the body ends (RFC 9112 6.3, rule 4). */
static void test_chunked_not_final(void **state)
{
    (void)state;
    static const char *const endings[] = {
        "gzip", "chunked, gzip",    "identity", "xchunked", "chunkedx", "chunked;ext=1", "",
        ",",    "gzip,chunked, br",
    };
    for (size_t i = 0; i < sizeof endings / sizeof *endings; i++)
        assert_fault(CHECK("HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", endings[i]}), 400,
                     "bad_transfer_coding");
    /* The fields form one list, in order. */
    const http_framing_fault *split = CHECK(
        "HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "gzip"});
    assert_fault(split, 400, "bad_transfer_coding");
    assert_fault(CHECK("HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", NULL}), 400,
                 "bad_transfer_coding");
    /* Content-Length beside it is the older fault, and keeps its answer. */
    assert_fault(
        CHECK("HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", "gzip"}, {"Content-Length", "4"}),
        400, "conflicting_length");
}

/* Transfer-Encoding in HTTP/1.0: faulty framing, whatever its codings (RFC 9112 6.1). */
static void test_coding_in_http10(void **state)
{
    (void)state;
    const http_framing_fault *chunked = CHECK("HTTP/1.0", {"Transfer-Encoding", "chunked"});
    assert_fault(chunked, 400, "bad_transfer_coding");
    assert_fault(CHECK("HTTP/1.0", {"Host", "x"}, {"Transfer-Encoding", "gzip, chunked"}), 400,
                 "bad_transfer_coding");
    assert_fault(CHECK("HTTP/1.0", {"Transfer-Encoding", "gzip"}), 400, "bad_transfer_coding");
    /* Its own message: the codings may be sound, the version is not. */
    const http_framing_fault *unframed =
        CHECK("HTTP/1.1", {"Host", "x"}, {"Transfer-Encoding", "gzip"});
    assert_string_not_equal(chunked->message, unframed->message);
    assert_null(CHECK("HTTP/1.0", {"Content-Length", "4"}));
}

static void test_host(void **state)
{
    (void)state;
    const http_framing_fault *none = CHECK("HTTP/1.1", {"Accept", "*/*"});
    assert_fault(none, 400, "bad_host");
    const http_framing_fault *two = CHECK("HTTP/1.1", {"Host", "x"}, {"HOST", "x"});
    assert_fault(two, 400, "bad_host");
    assert_string_not_equal(none->message, two->message);
    http_framing f;
    http_framing_init(&f);
    http_framing_note(&f, "Host", "first");
    http_framing_note(&f, "Host", "second");
    assert_string_equal(f.host, "first");
}

static void test_bare_cr(void **state)
{
    (void)state;
    assert_fault(CHECK("HTTP/1.1", {"Host", "x"}, {"X-Note", "a\rb"}), 400, "bad_header");
    assert_fault(CHECK("HTTP/1.1", {"Host", "x"}, {"X-\rNote", "a"}), 400, "bad_header");
    /* A bare CR comes first: it says the most about the request. */
    assert_fault(CHECK("HTTP/1.1", {"X", "\r"}, {"Content-Length", "1"}, {"Content-Length", "2"}),
                 400, "bad_header");
    /* A field without a value is an empty one. */
    assert_null(CHECK("HTTP/1.1", {"Host", "x"}, {"X-Empty", NULL}));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sound),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_chunked_not_final),
        cmocka_unit_test(test_coding_in_http10),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_bare_cr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
