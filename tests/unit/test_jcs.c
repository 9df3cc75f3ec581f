/*
 * jcs: RFC 8785's examples (the number samples of appendix B, the sorting
 * example of section 3.2.3, the example of section 3.2.2), the reference
 * test data of its authors, and their deterministic 100,000-number
 * sequence checked against its published SHA-256.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/jcs.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static void assert_canonical(const char *input, const char *expected)
{
    char *out = NULL;
    size_t len = 0;
    jcs_result r = jcs_canonicalize(input, strlen(input), &out, &len);

    if (r != JCS_OK)
        fail_msg("%s: %s", input, jcs_result_str(r));
    assert_string_equal(out, expected);
    assert_int_equal(len, strlen(expected));
    assert_true(jcs_is_canonical(out, len));
    free(out);
}

/* RFC 8785 appendix B: IEEE 754 bits and their ECMAScript form. */
static const struct {
    uint64_t bits;
    const char *text;
} appendix_b[] = {
    {UINT64_C(0x0000000000000000), "0"},
    {UINT64_C(0x8000000000000000), "0"},
    {UINT64_C(0x0000000000000001), "5e-324"},
    {UINT64_C(0x8000000000000001), "-5e-324"},
    {UINT64_C(0x7fefffffffffffff), "1.7976931348623157e+308"},
    {UINT64_C(0xffefffffffffffff), "-1.7976931348623157e+308"},
    {UINT64_C(0x4340000000000000), "9007199254740992"},
    {UINT64_C(0xc340000000000000), "-9007199254740992"},
    {UINT64_C(0x4430000000000000), "295147905179352830000"},
    {UINT64_C(0x44b52d02c7e14af5), "9.999999999999997e+22"},
    {UINT64_C(0x44b52d02c7e14af6), "1e+23"},
    {UINT64_C(0x44b52d02c7e14af7), "1.0000000000000001e+23"},
    {UINT64_C(0x444b1ae4d6e2ef4e), "999999999999999700000"},
    {UINT64_C(0x444b1ae4d6e2ef4f), "999999999999999900000"},
    {UINT64_C(0x444b1ae4d6e2ef50), "1e+21"},
    {UINT64_C(0x3eb0c6f7a0b5ed8c), "9.999999999999997e-7"},
    {UINT64_C(0x3eb0c6f7a0b5ed8d), "0.000001"},
    {UINT64_C(0x41b3de4355555553), "333333333.3333332"},
    {UINT64_C(0x41b3de4355555554), "333333333.33333325"},
    {UINT64_C(0x41b3de4355555555), "333333333.3333333"},
    {UINT64_C(0x41b3de4355555556), "333333333.3333334"},
    {UINT64_C(0x41b3de4355555557), "333333333.33333343"},
    {UINT64_C(0xbecbf647612f3696), "-0.0000033333333333333333"},
    {UINT64_C(0x43143ff3c1cb0959), "1424953923781206.2"},
};

static void test_appendix_b_numbers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(appendix_b) / sizeof(appendix_b[0]); i++) {
        char out[JCS_NUMBER_MAX];
        size_t n = jcs_format_number(from_bits(appendix_b[i].bits), out);

        if (strcmp(out, appendix_b[i].text) != 0)
            fail_msg("%016llx: got %s, want %s", (unsigned long long)appendix_b[i].bits, out,
                     appendix_b[i].text);
        assert_int_equal(n, strlen(appendix_b[i].text));
        /* and as a member of an array, through jansson */
        {
            json_t *v = json_pack("[f]", from_bits(appendix_b[i].bits));
            char *text = NULL;
            char want[64];

            assert_int_equal(jcs_dump(v, &text, NULL), JCS_OK);
            snprintf(want, sizeof(want), "[%s]", appendix_b[i].text);
            assert_string_equal(text, want);
            free(text);
            json_decref(v);
        }
    }
}

static void test_non_finite_refused(void **state)
{
    char out[JCS_NUMBER_MAX];

    (void)state;
    assert_int_equal(jcs_format_number(from_bits(UINT64_C(0x7fffffffffffffff)), out), 0);
    assert_int_equal(jcs_format_number(from_bits(UINT64_C(0x7ff0000000000000)), out), 0);
    assert_int_equal(jcs_format_number(from_bits(UINT64_C(0xfff0000000000000)), out), 0);
    assert_int_equal(jcs_format_number(NAN, out), 0);
}

/* The first values of the number sequence of the RFC's reference test data. */
static const uint64_t es6_static[] = {
    UINT64_C(0x0000000000000000), UINT64_C(0x8000000000000000), UINT64_C(0x0000000000000001),
    UINT64_C(0x8000000000000001), UINT64_C(0xc46696695dbd1cc3), UINT64_C(0xc43211ede4974a35),
    UINT64_C(0xc3fce97ca0f21056), UINT64_C(0xc3c7213080c1a6ac), UINT64_C(0xc39280f39a348556),
    UINT64_C(0xc35d9b1f5d20d557), UINT64_C(0xc327af4c4a80aaac), UINT64_C(0xc2f2f2a36ecd5556),
    UINT64_C(0xc2be51057e155558), UINT64_C(0xc28840d131aaaaac), UINT64_C(0xc253670dc1555557),
    UINT64_C(0xc21f0b4935555557), UINT64_C(0xc1e8d5d42aaaaaac), UINT64_C(0xc1b3de4355555556),
    UINT64_C(0xc17fca0555555556), UINT64_C(0xc1496e6aaaaaaaab), UINT64_C(0xc114585555555555),
    UINT64_C(0xc0e046aaaaaaaaab), UINT64_C(0xc0aa0aaaaaaaaaaa), UINT64_C(0xc074d55555555555),
    UINT64_C(0xc040aaaaaaaaaaab), UINT64_C(0xc00aaaaaaaaaaaab), UINT64_C(0xbfd5555555555555),
    UINT64_C(0xbfa1111111111111), UINT64_C(0xbf6b4e81b4e81b4f), UINT64_C(0xbf35d867c3ece2a5),
    UINT64_C(0xbf0179ec9cbd821e), UINT64_C(0xbecbf647612f3696), UINT64_C(0xbe965e9f80f29212),
    UINT64_C(0xbe61e54c672874db), UINT64_C(0xbe2ca213d840baf8), UINT64_C(0xbdf6e80fe033c8c6),
    UINT64_C(0xbdc2533fe68fd3d2), UINT64_C(0xbd8d51ffd74c861c), UINT64_C(0xbd5774ccac3d3817),
    UINT64_C(0xbd22c3d6f030f9ac), UINT64_C(0xbcee0624b3818f79), UINT64_C(0xbcb804ea293472c7),
    UINT64_C(0xbc833721ba905bd3), UINT64_C(0xbc4ebe9c5db3c61e), UINT64_C(0xbc18987d17c304e5),
    UINT64_C(0xbbe3ad30dfcf371d), UINT64_C(0xbbaf7b816618582f), UINT64_C(0xbb792f9ab81379bf),
    UINT64_C(0xbb442615600f9499), UINT64_C(0xbb101e77800c76e1), UINT64_C(0xbad9ca58cce0be35),
    UINT64_C(0xbaa4a1e0a3e6fe90), UINT64_C(0xba708180831f320d), UINT64_C(0xba3a68cd9e985016),
    UINT64_C(0x446696695dbd1cc3), UINT64_C(0x443211ede4974a35), UINT64_C(0x43fce97ca0f21056),
    UINT64_C(0x43c7213080c1a6ac), UINT64_C(0x439280f39a348556), UINT64_C(0x435d9b1f5d20d557),
    UINT64_C(0x4327af4c4a80aaac), UINT64_C(0x42f2f2a36ecd5556), UINT64_C(0x42be51057e155558),
    UINT64_C(0x428840d131aaaaac), UINT64_C(0x4253670dc1555557), UINT64_C(0x421f0b4935555557),
    UINT64_C(0x41e8d5d42aaaaaac), UINT64_C(0x41b3de4355555556), UINT64_C(0x417fca0555555556),
    UINT64_C(0x41496e6aaaaaaaab), UINT64_C(0x4114585555555555), UINT64_C(0x40e046aaaaaaaaab),
    UINT64_C(0x40aa0aaaaaaaaaaa), UINT64_C(0x4074d55555555555), UINT64_C(0x4040aaaaaaaaaaab),
    UINT64_C(0x400aaaaaaaaaaaab), UINT64_C(0x3fd5555555555555), UINT64_C(0x3fa1111111111111),
    UINT64_C(0x3f6b4e81b4e81b4f), UINT64_C(0x3f35d867c3ece2a5), UINT64_C(0x3f0179ec9cbd821e),
    UINT64_C(0x3ecbf647612f3696), UINT64_C(0x3e965e9f80f29212), UINT64_C(0x3e61e54c672874db),
    UINT64_C(0x3e2ca213d840baf8), UINT64_C(0x3df6e80fe033c8c6), UINT64_C(0x3dc2533fe68fd3d2),
    UINT64_C(0x3d8d51ffd74c861c), UINT64_C(0x3d5774ccac3d3817), UINT64_C(0x3d22c3d6f030f9ac),
    UINT64_C(0x3cee0624b3818f79), UINT64_C(0x3cb804ea293472c7), UINT64_C(0x3c833721ba905bd3),
    UINT64_C(0x3c4ebe9c5db3c61e), UINT64_C(0x3c18987d17c304e5), UINT64_C(0x3be3ad30dfcf371d),
    UINT64_C(0x3baf7b816618582f), UINT64_C(0x3b792f9ab81379bf), UINT64_C(0x3b442615600f9499),
    UINT64_C(0x3b101e77800c76e1), UINT64_C(0x3ad9ca58cce0be35), UINT64_C(0x3aa4a1e0a3e6fe90),
    UINT64_C(0x3a708180831f320d), UINT64_C(0x3a3a68cd9e985016), UINT64_C(0x4024000000000000),
    UINT64_C(0x4014000000000000), UINT64_C(0x3fe0000000000000), UINT64_C(0x3fa999999999999a),
    UINT64_C(0x3f747ae147ae147b), UINT64_C(0x3f40624dd2f1a9fc), UINT64_C(0x3f0a36e2eb1c432d),
    UINT64_C(0x3ed4f8b588e368f1), UINT64_C(0x3ea0c6f7a0b5ed8d), UINT64_C(0x3e6ad7f29abcaf48),
    UINT64_C(0x3e35798ee2308c3a), UINT64_C(0x3ed539223589fa95), UINT64_C(0x3ed4ff26cd5a7781),
    UINT64_C(0x3ed4f95a762283ff), UINT64_C(0x3ed4f8c60703520c), UINT64_C(0x3ed4f8b72f19cd0d),
    UINT64_C(0x3ed4f8b5b31c0c8d), UINT64_C(0x3ed4f8b58d1c461a), UINT64_C(0x3ed4f8b5894f7f0e),
    UINT64_C(0x3ed4f8b588ee37f3), UINT64_C(0x3ed4f8b588e47da4), UINT64_C(0x3ed4f8b588e3849c),
    UINT64_C(0x3ed4f8b588e36bb5), UINT64_C(0x3ed4f8b588e36937), UINT64_C(0x3ed4f8b588e368f8),
    UINT64_C(0x3ed4f8b588e368f1), UINT64_C(0x3ff0000000000000), UINT64_C(0xbff0000000000000),
    UINT64_C(0xbfeffffffffffffa), UINT64_C(0xbfeffffffffffffb), UINT64_C(0x3feffffffffffffa),
    UINT64_C(0x3feffffffffffffb), UINT64_C(0x3feffffffffffffc), UINT64_C(0x3feffffffffffffe),
    UINT64_C(0xbfefffffffffffff), UINT64_C(0xbfefffffffffffff), UINT64_C(0x3fefffffffffffff),
    UINT64_C(0x3fefffffffffffff), UINT64_C(0x3fd3333333333332), UINT64_C(0x3fd3333333333333),
    UINT64_C(0x3fd3333333333334), UINT64_C(0x0010000000000000), UINT64_C(0x000ffffffffffffd),
    UINT64_C(0x000fffffffffffff), UINT64_C(0x7fefffffffffffff), UINT64_C(0xffefffffffffffff),
    UINT64_C(0x4340000000000000), UINT64_C(0xc340000000000000), UINT64_C(0x4430000000000000),
    UINT64_C(0x44b52d02c7e14af5), UINT64_C(0x44b52d02c7e14af6), UINT64_C(0x44b52d02c7e14af7),
    UINT64_C(0x444b1ae4d6e2ef4e), UINT64_C(0x444b1ae4d6e2ef4f), UINT64_C(0x444b1ae4d6e2ef50),
    UINT64_C(0x3eb0c6f7a0b5ed8c), UINT64_C(0x3eb0c6f7a0b5ed8d), UINT64_C(0x41b3de4355555553),
    UINT64_C(0x41b3de4355555554), UINT64_C(0x41b3de4355555555), UINT64_C(0x41b3de4355555556),
    UINT64_C(0x41b3de4355555557), UINT64_C(0xbecbf647612f3696), UINT64_C(0x43143ff3c1cb0959),
};

/* The next value of the sequence, as its generator defines it. */
typedef struct es6_gen {
    size_t idx;
    uint8_t block[32];
    size_t used; /* bytes of block already taken; 32 when a new one is due */
} es6_gen;

static double es6_next(es6_gen *g)
{
    const size_t nstatic = sizeof(es6_static) / sizeof(es6_static[0]);
    double f = 0;

    if (g->idx < nstatic) {
        f = from_bits(es6_static[g->idx]);
    } else if (g->idx < nstatic + 2000) {
        f = from_bits(UINT64_C(0x0010000000000000) + (g->idx - nstatic));
    } else {
        while (f == 0 || !isfinite(f)) {
            uint64_t bits = 0;
            if (g->used == 32) {
                unsigned int len;
                EVP_Digest(g->block, 32, g->block, &len, EVP_sha256(), NULL);
                g->used = 0;
            }
            for (int i = 7; i >= 0; i--) /* little-endian */
                bits = bits << 8 | g->block[g->used + (size_t)i];
            g->used += 8;
            f = from_bits(bits);
        }
    }
    g->idx++;
    return f;
}

/*
 * Lines "<hex bits>,<expected>\n" for the first 100,000 values hash to the
 * SHA-256 that the reference data publishes.
 */
static void test_es6_sequence(void **state)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    es6_gen g = {0, {0}, 32};
    uint8_t digest[32];
    char hex[65];
    unsigned int dlen;

    (void)state;
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 100000; i++) {
        double f = es6_next(&g);
        uint64_t bits;
        char line[64], num[JCS_NUMBER_MAX];
        int n;

        memcpy(&bits, &f, sizeof(bits));
        assert_true(jcs_format_number(f, num) > 0);
        n = snprintf(line, sizeof(line), "%llx,%s\n", (unsigned long long)bits, num);
        EVP_DigestUpdate(ctx, line, (size_t)n);
        /* the shortest form reads back to the same double */
        if (strtod(num, NULL) != f && !(f == 0))
            fail_msg("%s does not read back to %016llx", num, (unsigned long long)bits);
    }
    EVP_DigestFinal_ex(ctx, digest, &dlen);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    assert_string_equal(hex, "22776e6d4b49fa294a0d0f349268e5c28808fe7e0cb2bcbe28f63894e494d4c7");
}

/* RFC 8785 section 3.2.2: the example input and its canonical form. */
static void test_rfc_example(void **state)
{
    (void)state;
    assert_canonical("{\n"
                     "  \"numbers\": [333333333.33333329, 1E30, 4.50,\n"
                     "              2e-3, 0.000000000000000000000000001],\n"
                     "  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
                     "  \"literals\": [null, true, false]\n"
                     "}",
                     "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,"
                     "0.002,1e-27],\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

/* RFC 8785 section 3.2.3: members sorted by UTF-16 code units. */
static void test_rfc_sorting(void **state)
{
    (void)state;
    assert_canonical("{\n"
                     "  \"\\u20ac\": \"Euro Sign\",\n"
                     "  \"\\r\": \"Carriage Return\",\n"
                     "  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n"
                     "  \"1\": \"One\",\n"
                     "  \"\\ud83d\\ude00\": \"Emoji: Grinning Face\",\n"
                     "  \"\\u0080\": \"Control\",\n"
                     "  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\"\n"
                     "}",
                     "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
                     "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\","
                     "\"\xe2\x82\xac\":\"Euro Sign\","
                     "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
                     "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

/* The reference test data of RFC 8785's authors: input and expected output. */
static void test_reference_data(void **state)
{
    (void)state;
    /* arrays */
    assert_canonical("[\n  56,\n  {\n    \"d\": true,\n    \"10\": null,\n    \"1\": [ ]\n  }\n]",
                     "[56,{\"1\":[],\"10\":null,\"d\":true}]");
    /* french */
    assert_canonical("{\n  \"peach\": \"This sorting order\",\n"
                     "  \"p\xc3\xa9"
                     "ch\xc3\xa9\": \"is wrong according to French\",\n"
                     "  \"p\xc3\xaa"
                     "che\": \"but canonicalization MUST\",\n"
                     "  \"sin\":   \"ignore locale\"\n}",
                     "{\"peach\":\"This sorting order\",\"p\xc3\xa9"
                     "ch\xc3\xa9\":\"is wrong "
                     "according to French\",\"p\xc3\xaa"
                     "che\":\"but canonicalization MUST\","
                     "\"sin\":\"ignore locale\"}");
    /* structures */
    assert_canonical("{\n  \"1\": {\"f\": {\"f\": \"hi\",\"F\": 5} ,\"\\n\": 56.0},\n"
                     "  \"10\": { },\n  \"\": \"empty\",\n  \"a\": { },\n"
                     "  \"111\": [ {\"e\": \"yes\",\"E\": \"no\" } ],\n  \"A\": { }\n}",
                     "{\"\":\"empty\",\"1\":{\"\\n\":56,\"f\":{\"F\":5,\"f\":\"hi\"}},\"10\":{},"
                     "\"111\":[{\"E\":\"no\",\"e\":\"yes\"}],\"A\":{},\"a\":{}}");
    /* unicode: no normalisation */
    assert_canonical("{\n  \"Unnormalized Unicode\":\"A\\u030a\"\n}",
                     "{\"Unnormalized Unicode\":\"A\xcc\x8a\"}");
    /* weird */
    assert_canonical("{\n  \"\\u20ac\": \"Euro Sign\",\n  \"\\r\": \"Carriage Return\",\n"
                     "  \"\\u000a\": \"Newline\",\n  \"1\": \"One\",\n"
                     "  \"\\u0080\": \"Control\\u007f\",\n  \"\\ud83d\\ude02\": \"Smiley\",\n"
                     "  \"\\u00f6\": \"Latin Small Letter O With Diaeresis\",\n"
                     "  \"\\ufb33\": \"Hebrew Letter Dalet With Dagesh\",\n"
                     "  \"</script>\": \"Browser Challenge\"\n}",
                     "{\"\\n\":\"Newline\",\"\\r\":\"Carriage Return\",\"1\":\"One\","
                     "\"</script>\":\"Browser Challenge\",\"\xc2\x80\":\"Control\x7f\","
                     "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\","
                     "\"\xe2\x82\xac\":\"Euro Sign\",\"\xf0\x9f\x98\x82\":\"Smiley\","
                     "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

static void test_escapes(void **state)
{
    (void)state;
    assert_canonical("[\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\"\\\\\\/\\u007f\"]",
                     "[\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\"\\\\/\x7f\"]");
    /* U+2028 and U+2029 stay as they are: JSON does not need them escaped */
    assert_canonical("[\"\\u2028\\u2029\"]", "[\"\xe2\x80\xa8\xe2\x80\xa9\"]");
    /* A member name with U+0000 cannot be parsed (jansson), but is written. */
    {
        json_t *v;
        char *out;

        assert_int_equal(jcs_parse("{\"a\\u0000b\":1}", 14, &v), JCS_SYNTAX);
        v = json_object();
        json_object_setn_new(v, "a\0b", 3, json_integer(1));
        json_object_set_new(v, "a", json_integer(2));
        assert_int_equal(jcs_dump(v, &out, NULL), JCS_OK);
        assert_string_equal(out, "{\"a\":2,\"a\\u0000b\":1}");
        free(out);
        json_decref(v);
    }
}

static void test_numbers_in_documents(void **state)
{
    (void)state;
    assert_canonical("[-0, 0.0, -0.0, 1, -1, 1.5e3, 1E-7, 123456789012345678901234567890]",
                     "[0,0,0,1,-1,1500,1e-7,1.2345678901234568e+29]");
    assert_canonical("[9007199254740993]", "[9007199254740992]"); /* doubles, as parsed */
}

static void test_refusals(void **state)
{
    json_t *v;
    char *out = (char *)"untouched";

    (void)state;
    assert_int_equal(jcs_parse("{\"a\":1,\"a\":2}", 13, &v), JCS_DUPLICATE);
    assert_null(v);
    assert_int_equal(jcs_parse("[1e400]", 7, &v), JCS_NUMBER);
    assert_int_equal(jcs_parse("[\"\\ud800\"]", 10, &v), JCS_SYNTAX); /* lone surrogate */
    assert_int_equal(jcs_parse("[\"\xc3\x28\"]", 6, &v), JCS_UTF8);
    assert_int_equal(jcs_parse("[NaN]", 5, &v), JCS_SYNTAX);
    assert_int_equal(jcs_parse("[1,]", 4, &v), JCS_SYNTAX);
    assert_int_equal(jcs_parse("", 0, &v), JCS_SYNTAX);

    /* Values made in C: integers beyond 2^53 - 1 and invalid UTF-8. */
    v = json_pack("{s:I}", "n", (json_int_t)9007199254740992LL);
    assert_int_equal(jcs_dump(v, &out, NULL), JCS_NUMBER);
    assert_null(out);
    json_decref(v);
    v = json_pack("{s:I}", "n", (json_int_t)-9007199254740991LL);
    assert_int_equal(jcs_dump(v, &out, NULL), JCS_OK);
    assert_string_equal(out, "{\"n\":-9007199254740991}");
    free(out);
    json_decref(v);
    v = json_array();
    json_array_append_new(v, json_stringn_nocheck("\xff", 1));
    assert_int_equal(jcs_dump(v, &out, NULL), JCS_UTF8);
    json_decref(v);
    v = json_object();
    json_object_setn_new_nocheck(v, "\xed\xa0\x80", 3, json_null()); /* a surrogate */
    assert_int_equal(jcs_dump(v, &out, NULL), JCS_UTF8);
    json_decref(v);
}

static void test_depth(void **state)
{
    char text[2 * (JCS_MAX_DEPTH + 1) + 1];
    char *out;
    json_t *v;

    (void)state;
    for (int d = JCS_MAX_DEPTH; d <= JCS_MAX_DEPTH + 1; d++) {
        memset(text, '[', (size_t)d);
        memset(text + d, ']', (size_t)d);
        assert_int_equal(jcs_parse(text, 2 * (size_t)d, &v), JCS_OK);
        assert_int_equal(jcs_dump(v, &out, NULL), d <= JCS_MAX_DEPTH ? JCS_OK : JCS_TOO_DEEP);
        if (d <= JCS_MAX_DEPTH)
            free(out);
        json_decref(v);
    }
}

static void test_is_canonical(void **state)
{
    (void)state;
    assert_true(jcs_is_canonical("{\"a\":1,\"b\":[true]}", 18));
    assert_false(jcs_is_canonical("{\"b\":[true],\"a\":1}", 18));
    assert_false(jcs_is_canonical("{\"a\": 1}", 8));
    assert_false(jcs_is_canonical("{\"a\":1.0}", 9));
    assert_false(jcs_is_canonical("{\"a\":\"\\u00e9\"}", 14));
    assert_false(jcs_is_canonical("{\"a\":1,\"a\":1}", 13));
    assert_true(jcs_is_canonical("\"x\"", 3));
}

/* Many members: the heap path of the sort, and a stable, total order. */
static void test_large_object(void **state)
{
    json_t *v = json_object();
    char *out;
    char key[16];

    (void)state;
    for (int i = 99; i >= 0; i--) {
        snprintf(key, sizeof(key), "k%03d", i);
        json_object_set_new(v, key, json_integer(i));
    }
    assert_int_equal(jcs_dump(v, &out, NULL), JCS_OK);
    assert_true(strncmp(out, "{\"k000\":0,\"k001\":1,", 19) == 0);
    assert_non_null(strstr(out, "\"k099\":99}"));
    free(out);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appendix_b_numbers),
        cmocka_unit_test(test_non_finite_refused),
        cmocka_unit_test(test_es6_sequence),
        cmocka_unit_test(test_rfc_example),
        cmocka_unit_test(test_rfc_sorting),
        cmocka_unit_test(test_reference_data),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_numbers_in_documents),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_is_canonical),
        cmocka_unit_test(test_large_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
