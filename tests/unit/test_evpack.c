/* evpack: the log's event texts packed and unpacked exactly, whatever the text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/evpack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_MAX 4096

/* Packs text, unpacks it, and checks that the same bytes come back;
 * returns the packed length. */
static size_t round_trip(const char *text, size_t len)
{
    static uint8_t packed[EVPACK_MAX(TEXT_MAX)];
    static char back[TEXT_MAX];
    assert_true(len <= TEXT_MAX);
    size_t n = evpack_encode(text, len, packed, EVPACK_MAX(len));
    assert_true(n >= 1 && n <= EVPACK_MAX(len));
    assert_int_equal(packed[0], EVPACK_FORMAT);
    assert_int_equal(evpack_decode(packed, n, back, len), (long)len);
    assert_memory_equal(back, text, len);
    /* One byte less room than the text needs is refused. */
    if (len > 0)
        assert_int_equal(evpack_decode(packed, n, back, len - 1), -1);
    /* Too little room to pack is refused, not overrun. */
    assert_int_equal(evpack_encode(text, len, packed, n - 1), 0);
    return n;
}

static size_t round_trip_str(const char *text)
{
    return round_trip(text, strlen(text));
}

/* Events as receiptd writes them (daemon/tlog_event.c). */
static const char *const events[] = {
    ("{\"client_addr\":\"203.0.113.7\",\"delivered_sha256\":"
     "\"bW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW0\","
     "\"delivered_size\":1073,\"delivery\":\"019a3f2e-7c41-7d2a-9b1e-0c5d2f8a6b31\","
     "\"issued_ms\":1764633600123,\"issued_node\":\"edge-1\",\"kind\":\"page\","
     "\"path\":\"/docs/page-17.html\",\"server\":\"docs.example.org\","
     "\"sha256\":\"XFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFw\",\"size\":1024,\"status\":"
     "\"issued\","
     "\"type\":\"issued\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) "
     "Gecko/20100101 Firefox/128.0\",\"v\":1}"),
    ("{\"bound_addr\":\"2001:db8::1\",\"bound_ms\":1764633600456,\"bound_node\":\"edge-2\","
     "\"client\":\"device-0042\",\"client_addr\":\"2001:db8::1\",\"confirm_addr\":\"2001:db8::1\","
     "\"confirmed_ms\":1764633601000,\"confirmed_node\":\"edge-2\","
     "\"delivery\":\"019a3f2e-7c41-7d2a-9b1e-0c5d2f8a6b31\",\"issued_ms\":1764633600123,"
     "\"kind\":\"device\",\"path\":\"/fw/\\u00e9t\\u00e9 \\\"1\\\".bin\","
     "\"receipt_sha256\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\","
     "\"received_at_ms\":1764633600999,\"received_sha256\":null,\"received_size\":0,"
     "\"server\":\"fw\",\"sha256\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\",\"size\":0,"
     "\"status\":\"corrupted\",\"type\":\"corrupted\",\"user_agent\":\"\",\"v\":1}"),
    ("{\"key\":\"example.org/_receipt/log+0a1b2c3d+AbCdEf\",\"previous\":\"x\","
     "\"time_ms\":1,\"type\":\"log_key\",\"v\":1}"),
};

static void test_events(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        size_t len = strlen(events[i]);
        size_t n = round_trip_str(events[i]);
        /* What the packing is for: an event takes well under its text's room. */
        assert_true(n * 10 < len * 7);
    }
}

static void test_edges(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "",
        "\"",
        ",",
        "{",
        ",\"",
        ",\"delivery\"",  /* a piece cut short */
        ",\"delivery\":", /* a piece at the very end */
        ",\"v\":1",       /* the longer piece's start only */
        ",\"v\":1}",
        ",\"v\":2}",
        "\"issued",                                 /* a value without its closing quote */
        "\"019A3F2E-7C41-7D2A-9B1E-0C5D2F8A6B31\"", /* UUID in capitals: kept as is */
        "\"019a3f2e-7c41-7d2a-9b1e-0c5d2f8a6b3\"",  /* one digit short */
        "\"019a3f2e-7c41-7d2a-9b1e-0c5d2f8a6b31",   /* no closing quote */
        "\"019a3f2e+7c41-7d2a-9b1e-0c5d2f8a6b31\"",
        "\"019a3f2e-7c41-7d2a-9b1e-0c5d2f8a6b31\"\"019a3f2e-7c41-7d2a-9b1e-0c5d2f8a6b31\"",
        "\"XFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFx\"", /* non-zero trailing bits */
        "\"XFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXF+\"", /* outside base64url */
        "\"XFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFw",   /* no closing quote */
        "0",
        "0000",
        "0123456789",
        "999",
        "1000",
        "9999999999999999999",  /* 19 digits: the largest run packed whole */
        "18446744073709551615", /* 2^64 - 1 in 20 digits: 19 and 1 */
        "18446744073709551616",
        "100000000000000000000000000000000000000001",
        "1234\x01",
        "\x01\x1a\x1b\x1c\x1d\x1e\x1f",
        "a\x1b",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        round_trip_str(texts[i]);
    /* Every byte value, NUL included, alone and in a run. */
    char all[256];
    for (unsigned b = 0; b < 256; b++) {
        all[b] = (char)b;
        char one = (char)b;
        round_trip(&one, 1);
    }
    round_trip(all, sizeof all);
    /* The worst case takes EVPACK_MAX() and no more. */
    char controls[TEXT_MAX];
    memset(controls, 0x01, sizeof controls);
    assert_int_equal(round_trip(controls, sizeof controls), EVPACK_MAX(sizeof controls));
}

/* Texts made of the pieces the packer looks for, cut and joined at random. */
static void test_random(void **state)
{
    (void)state;
    static const char *const parts[] = {
        ",\"delivery\":",
        "\"issued\"",
        ",\"v\":1}",
        "{\"client_addr\":",
        "\"",
        ",",
        "{",
        ":",
        "019a3f2e-7c41-7d2a-9b1e-0c5d2f8a6b31",
        "XFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFw",
        "1764633600123",
        "0",
        "9",
        "\\u0000",
        "é",
        "\x1f",
        "\x00",
        "null",
        ",\"v\":",
    };
    char text[TEXT_MAX];
    srand(20261202);
    for (int round = 0; round < 20000; round++) {
        size_t len = 0;
        size_t want = (size_t)rand() % 300;
        while (len < want) {
            if (rand() % 4 == 0) {
                text[len++] = (char)(rand() % 256);
                continue;
            }
            const char *p = parts[(size_t)rand() % (sizeof parts / sizeof parts[0])];
            size_t n = p[0] == '\0' ? 1 : strlen(p);
            size_t cut = (size_t)rand() % (n + 1); /* often a piece in part */
            if (rand() % 2 == 0)
                cut = n;
            if (len + cut > sizeof text)
                break;
            memcpy(text + len, p, cut);
            len += cut;
        }
        round_trip(text, len);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    char out[256];
    static const struct {
        const char *packed;
        size_t len;
    } bad[] = {
        {"", 0}, /* no format byte */
        {"\x02"
         "abc",
         4},      /* another format */
        {"a", 1}, /* a text, not a packed one */
        {"\x01"
         "a\x00"
         "b",
         4},                 /* 0x00 is never a code */
        {"\x01\x1b", 2},     /* extended piece without its number */
        {"\x01\x1b\xff", 3}, /* a piece past the table */
        {"\x01\x1c"
         "0123456789abcde",
         17}, /* a UUID cut short */
        {"\x01\x1d"
         "0123456789abcdef0123456789abcde",
         33},                                                     /* a digest cut short */
        {"\x01\x1e", 2},                                          /* a number without its bytes */
        {"\x01\x1e\x80", 3},                                      /* a number cut short */
        {"\x01\x1e\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 12}, /* 65 bits */
        {"\x01\x1e\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81\x00", 13}, /* too long */
        {"\x01\x1f", 2}, /* an escape without its byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(evpack_decode((const uint8_t *)bad[i].packed, bad[i].len, out, sizeof out),
                         -1);
    /* 2^64 - 1, the largest number, in ten bytes. */
    static const uint8_t max[] = {0x01, 0x1e, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(evpack_decode(max, sizeof max, out, sizeof out), 20);
    assert_memory_equal(out, "18446744073709551615", 20);
    /* A format byte alone is the empty text. */
    static const uint8_t empty[] = {EVPACK_FORMAT};
    assert_int_equal(evpack_decode(empty, 1, out, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
