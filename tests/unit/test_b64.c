/* b64: RFC 4648 section 10 vectors and the strictness of the decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/b64.h"

#include <string.h>

struct vector {
    const char *plain;
    const char *url;
    const char *std;
};

/* RFC 4648 section 10 */
static const struct vector rfc4648[] = {
    {"", "", ""},
    {"f", "Zg", "Zg=="},
    {"fo", "Zm8", "Zm8="},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg", "Zm9vYg=="},
    {"fooba", "Zm9vYmE", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const struct vector *v = &rfc4648[i];
        size_t n = strlen(v->plain);
        char out[32];
        uint8_t back[32];

        assert_int_equal(b64url_encoded_len(n), strlen(v->url));
        assert_int_equal(b64url_encode((const uint8_t *)v->plain, n, out), strlen(v->url));
        assert_string_equal(out, v->url);
        assert_int_equal(b64std_encode((const uint8_t *)v->plain, n, out), strlen(v->std));
        assert_string_equal(out, v->std);
        assert_int_equal(b64url_decode(v->url, strlen(v->url), back, sizeof(back)), (long)n);
        assert_memory_equal(back, v->plain, n);
    }
}

static void test_url_alphabet(void **state)
{
    const uint8_t in[] = {0xfb, 0xff, 0xbf};
    char out[8];
    uint8_t back[4];

    (void)state;
    b64url_encode(in, sizeof(in), out);
    assert_string_equal(out, "-_-_");
    b64std_encode(in, sizeof(in), out);
    assert_string_equal(out, "+/+/");
    b64url_encode(in, 2, out);
    assert_string_equal(out, "-_8");
    assert_int_equal(b64url_decode("-_-_", 4, back, sizeof(back)), 3);
    assert_memory_equal(back, in, 3);
}

struct bad {
    const char *text;
    size_t len; /* 0: strlen */
    const char *why;
};

static const struct bad strict[] = {
    {"Zg==", 0, "padding"},
    {"Zg=", 0, "partial padding"},
    {"Zm8=", 0, "padding after two bytes"},
    {"Z", 0, "one leftover character"},
    {"Zm9vY", 0, "five characters"},
    {"Zh", 0, "non-zero trailing bits (one byte)"},
    {"Zm9", 0, "non-zero trailing bits (two bytes)"},
    {"Zm+v", 0, "standard alphabet +"},
    {"Zm/v", 0, "standard alphabet /"},
    {"Zm9v\n", 0, "newline"},
    {"Zm 9v", 0, "space"},
    {"Zm9v.", 0, "dot"},
    {"Zm\0v", 4, "NUL"},
    {"Zm\xc3\xa9", 0, "non-ASCII"},
    {"=Zm9", 0, "leading padding"},
};

static void test_strictness(void **state)
{
    uint8_t out[16];

    (void)state;
    for (size_t i = 0; i < sizeof(strict) / sizeof(strict[0]); i++) {
        size_t n = strict[i].len ? strict[i].len : strlen(strict[i].text);
        long r = b64url_decode(strict[i].text, n, out, sizeof(out));

        if (r != -1)
            fail_msg("accepted %s", strict[i].why);
    }
}

static void test_capacity(void **state)
{
    uint8_t out[6];

    (void)state;
    assert_int_equal(b64url_decode("Zm9vYmFy", 8, out, 6), 6);
    assert_int_equal(b64url_decode("Zm9vYmFy", 8, out, 5), -1);
    assert_int_equal(b64url_decode("Zm9vYg", 6, out, 3), -1);
    assert_int_equal(b64url_decode("", 0, out, 0), 0);
}

static void test_lengths(void **state)
{
    (void)state;
    assert_int_equal(b64url_encoded_len(0), 0);
    assert_int_equal(b64url_encoded_len(1), 2);
    assert_int_equal(b64url_encoded_len(2), 3);
    assert_int_equal(b64url_encoded_len(3), 4);
    assert_int_equal(b64url_encoded_len(32), 43);
    assert_int_equal(b64url_encoded_len(65), 87);
    assert_int_equal(b64url_decoded_max(43), 32);
    assert_int_equal(b64url_decoded_max(87), 65);
    assert_int_equal(b64url_decoded_max(4), 3);
    assert_int_equal(b64url_decoded_max(5), 3);
}

/* Every byte string round-trips, and only its own spelling decodes. */
static void test_round_trip(void **state)
{
    uint8_t in[64], back[64];
    char text[100];

    (void)state;
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(in); n++) {
        size_t len = b64url_encode(in, n, text);

        assert_int_equal(len, b64url_encoded_len(n));
        assert_int_equal(b64url_decode(text, len, back, sizeof(back)), (long)n);
        assert_memory_equal(back, in, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors), cmocka_unit_test(test_url_alphabet),
        cmocka_unit_test(test_strictness),      cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_lengths),         cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
