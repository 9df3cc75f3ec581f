/*
 * jbuf: one escaping rule for every JSON string, caps that fail loudly, and
 * growth from a caller's buffer to the heap.
 *
 * Outputs that changed when three escapers became this one: the "content"
 * path of plug-in data and receipts (http.c's escaper) now has DEL as
 * \u007f where it went through raw, and bytes that are not UTF-8 as U+FFFD
 * where the whole payload was refused (test_delivery says so for that
 * member); the admin API and exports (export.c's escaper) are unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/jbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FFFD "\xef\xbf\xbd"

static void escapes_to(const char *in, size_t n, const char *want)
{
    char mem[256];
    jbuf b;
    jbuf_init(&b, mem, sizeof mem);
    jbuf_string(&b, in, n);
    assert_false(b.failed);
    assert_string_equal(mem, want);
    assert_int_equal(b.len, strlen(want));
}

#define ESCAPES_TO(in, want) escapes_to(in, sizeof in - 1, want)

static void test_escaping_rule(void **state)
{
    (void)state;
    ESCAPES_TO("", "\"\"");
    ESCAPES_TO("/notices/terms-2026.html", "\"/notices/terms-2026.html\"");
    ESCAPES_TO("q\"b\\", "\"q\\\"b\\\\\"");
    /* control characters and DEL as \u00XX, NUL included */
    ESCAPES_TO("a\nb\r\t\x01\x1f", "\"a\\u000ab\\u000d\\u0009\\u0001\\u001f\"");
    ESCAPES_TO("x\0y", "\"x\\u0000y\"");
    ESCAPES_TO("del\x7f", "\"del\\u007f\"");
    /* valid UTF-8 as it is */
    ESCAPES_TO("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x84",
               "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x84\"");
    /* every byte that is not part of valid UTF-8: U+FFFD */
    ESCAPES_TO("a\xff"
               "b",
               "\"a" FFFD "b\"");
    ESCAPES_TO("\xc0\xaf", "\"" FFFD FFFD "\"");                   /* overlong */
    ESCAPES_TO("\xed\xa0\x80", "\"" FFFD FFFD FFFD "\"");          /* surrogate */
    ESCAPES_TO("\xf4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\""); /* past U+10FFFF */
    ESCAPES_TO("\xe2\x82", "\"" FFFD FFFD "\"");                   /* cut short */
    ESCAPES_TO("\x80z", "\"" FFFD "z\"");                          /* a lone continuation */
}

/* The byte-by-byte rule jbuf_plain_len() takes eight bytes at a time. */
static size_t plain_len_slowly(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f && s[i] != '"' &&
           s[i] != '\\')
        i++;
    return i;
}

/* The escaping rule spelled out byte by byte, for the fast paths to match. */
static size_t escape_slowly(const unsigned char *s, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
            i++;
        } else if (c < 0x80) {
            out[o++] = (char)c;
            i++;
        } else {
            /* the length of a valid sequence (RFC 3629), or 0 */
            size_t len = c >= 0xc2 && c <= 0xdf   ? 2
                         : c >= 0xe0 && c <= 0xef ? 3
                         : c >= 0xf0 && c <= 0xf4 ? 4
                                                  : 0;
            if (len > n - i)
                len = 0;
            for (size_t k = 1; k < len; k++)
                if ((s[i + k] & 0xc0) != 0x80)
                    len = 0;
            if (len >= 3) {
                uint32_t cp = len == 3
                                  ? (uint32_t)(c & 0x0f) << 12 | (uint32_t)(s[i + 1] & 0x3f) << 6 |
                                        (s[i + 2] & 0x3f)
                                  : (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3f) << 12 |
                                        (uint32_t)(s[i + 2] & 0x3f) << 6 | (s[i + 3] & 0x3f);
                if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                    len = 0;
            }
            if (len == 0) {
                memcpy(out + o, FFFD, 3);
                o += 3;
                i++;
            } else {
                memcpy(out + o, s + i, len);
                o += len;
                i += len;
            }
        }
    }
    out[o] = '\0';
    return o;
}

/* Every byte value at every place of an eight-byte word, then random text
 * of the bytes that matter: the fast paths against the rule byte by byte,
 * in a buffer with room (written in place) and one that is nearly full
 * (written piece by piece). */
static void test_fast_paths(void **state)
{
    (void)state;
    char text[64];
    for (int c = 0; c < 256; c++) {
        for (size_t at = 0; at < 24; at++) {
            memset(text, 'a', sizeof text);
            text[at] = (char)c;
            assert_int_equal(jbuf_plain_len(text, 24), plain_len_slowly(text, 24));
            assert_int_equal(jbuf_plain_len(text + 1, 23), plain_len_slowly(text + 1, 23));
        }
    }
    static const unsigned char alphabet[] = {
        'a',  'Z',  ' ',  '~',  '"',  '\\', 0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xa9, 0xe2,
        0x80, 0x94, 0xed, 0xa0, 0xf0, 0x9f, 0x98, 0x80, 0xf4, 0x90, 0xff, '\n', '/',  '0'};
    unsigned seed = 12345;
    unsigned char in[300];
    static char want[6 * sizeof in + 1], roomy[8 * sizeof in], tight[6 * sizeof in + 1];
    for (int round = 0; round < 3000; round++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof in);
        for (size_t i = 0; i < n; i++) {
            /* mostly printable runs, as in real text, and the odd byte */
            in[i] = rand_r(&seed) % 4 == 0 ? alphabet[rand_r(&seed) % sizeof alphabet]
                                           : (unsigned char)('a' + rand_r(&seed) % 26);
        }
        assert_int_equal(jbuf_plain_len((const char *)in, n),
                         plain_len_slowly((const char *)in, n));
        size_t want_len = escape_slowly(in, n, want);
        jbuf b;
        jbuf_init(&b, roomy, sizeof roomy);
        jbuf_escaped(&b, (const char *)in, n);
        assert_false(b.failed);
        assert_string_equal(roomy, want);
        /* exactly the room the text needs: less than six bytes an input byte */
        jbuf_init(&b, tight, want_len + 1);
        jbuf_escaped(&b, (const char *)in, n);
        assert_false(b.failed);
        assert_string_equal(tight, want);
        if (want_len > 0) {
            jbuf_init(&b, tight, want_len);
            jbuf_escaped(&b, (const char *)in, n);
            assert_true(b.failed);
        }
        /* a growing buffer, from nothing */
        jbuf_init_growing(&b, NULL, 0, 1 << 16);
        jbuf_escaped(&b, (const char *)in, n);
        assert_false(b.failed);
        assert_string_equal(b.data, want);
        jbuf_free(&b);
    }
}

static void test_values(void **state)
{
    (void)state;
    char mem[256];
    jbuf b;
    jbuf_init(&b, mem, sizeof mem);
    jbuf_adds(&b, "{");
    jbuf_member_u64(&b, "a", 0);
    jbuf_member_u64(&b, "b", UINT64_MAX);
    jbuf_key(&b, "c");
    jbuf_i64(&b, INT64_MIN);
    jbuf_key(&b, "d");
    jbuf_opt_u64(&b, 0);
    jbuf_key(&b, "e");
    jbuf_opt_str(&b, "");
    jbuf_key(&b, "f");
    jbuf_opt_str(&b, NULL);
    jbuf_key(&b, "g");
    jbuf_adds(&b, "[");
    for (int i = 0; i < 3; i++) {
        jbuf_sep(&b);
        jbuf_i64(&b, i - 1);
    }
    jbuf_adds(&b, "]}");
    assert_false(b.failed);
    assert_string_equal(mem, "{\"a\":0,\"b\":18446744073709551615,\"c\":-9223372036854775808,"
                             "\"d\":null,\"e\":null,\"f\":null,\"g\":[-1,0,1]}");

    jbuf_reset(&b);
    jbuf_double(&b, 0.1 + 0.2);
    assert_string_equal(mem, "0.30000000000000004");
    jbuf_reset(&b);
    jbuf_double(&b, 36.0 / 61.0);
    assert_true(strtod(mem, NULL) == 36.0 / 61.0);
    jbuf_reset(&b);
    jbuf_double(&b, NAN);
    assert_string_equal(mem, "null");
    jbuf_reset(&b);
    jbuf_double(&b, 0.5);
    assert_string_equal(mem, "0.5");
}

static void test_fixed_cap(void **state)
{
    (void)state;
    char mem[8];
    jbuf b;
    jbuf_init(&b, mem, sizeof mem);
    jbuf_adds(&b, "1234567");
    assert_false(b.failed);
    assert_string_equal(mem, "1234567");
    jbuf_adds(&b, "8");
    assert_true(b.failed); /* reported, never cut silently */
    assert_string_equal(mem, "1234567");
    jbuf_adds(&b, "");
    jbuf_addf(&b, "%d", 1);
    assert_int_equal(b.len, 7); /* nothing more once failed */

    /* An escape that does not fit whole is not half written. */
    jbuf_init(&b, mem, sizeof mem);
    jbuf_adds(&b, "abc");
    jbuf_escaped(&b, "\x01", 1);
    assert_true(b.failed);
    assert_string_equal(mem, "abc");

    jbuf_init(&b, mem, sizeof mem);
    jbuf_addf(&b, "%s", "too long for it");
    assert_true(b.failed);
    assert_int_equal(strlen(mem), b.len);
    assert_null(jbuf_take(&b, NULL)); /* a failed text is not handed out */
}

static void test_growing(void **state)
{
    (void)state;
    char start[16];
    jbuf b;
    jbuf_init_growing(&b, start, sizeof start, 5000);
    jbuf_adds(&b, "[");
    for (int i = 0; i < 1000; i++) {
        jbuf_sep(&b);
        jbuf_addf(&b, "%d", i % 10);
    }
    jbuf_adds(&b, "]");
    assert_false(b.failed);
    assert_true(b.heap); /* it left the caller's buffer */
    assert_int_equal(b.len, 2000 + 1);
    size_t len = 0;
    char *text = jbuf_take(&b, &len);
    assert_non_null(text);
    assert_int_equal(len, 2001);
    assert_int_equal(text[0], '[');
    assert_int_equal(text[len - 1], ']');
    assert_int_equal(text[len], '\0');
    free(text);

    /* The cap holds on the heap too. */
    jbuf_init_growing(&b, NULL, 0, 100);
    for (int i = 0; i < 10; i++)
        jbuf_adds(&b, "0123456789");
    assert_false(b.failed);
    assert_int_equal(b.len, 100);
    jbuf_adds(&b, "x");
    assert_true(b.failed);
    jbuf_free(&b);

    /* A text that fits its start is copied out on take. */
    jbuf_init_growing(&b, start, sizeof start, 100);
    jbuf_str(&b, "hi");
    assert_false(b.heap);
    text = jbuf_take(&b, &len);
    assert_string_equal(text, "\"hi\"");
    assert_true(text != start);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping_rule), cmocka_unit_test(test_values),
        cmocka_unit_test(test_fixed_cap),     cmocka_unit_test(test_growing),
        cmocka_unit_test(test_fast_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
