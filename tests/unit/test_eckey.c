/* eckey: thumbprints, point validation, JWK, PEM and header round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/b64.h"
#include "common/eckey.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fixed client key of docs/protocol.md (test vectors). */
#define CLIENT_D  "pmpYkLdKjQ4j23b2378479Qtj_BjbMfJYCY5dlGrq3w"
#define CLIENT_X  "Lx_xA6qdaLLN9cVYLjMjKHUf2VCJVfF6pr4hk_JwG0I"
#define CLIENT_Y  "DMCETttP-cohU3a_5tJ9JaoRXcrztfhtbgL08K6FG8Q"
#define CLIENT_TP "_p8c_h-lhZVQMr2M2RrlW5dVou4F02jrfVX_wGJR7rM"
#define CLIENT_POINT                                                                               \
    "BC8f8QOqnWiyzfXFWC4zIyh1H9lQiVXxeqa-IZPycBtCDMCETttP-cohU3a_5tJ9JaoRXcrztfhtbgL08K6FG8Q"
#define SERVER_X "mkifm4jtaMCjOrDQlHWSHMEJ4skuVtDKMkwBvv0XlY0"
#define SERVER_Y "EXF4z_XCtTMj8FC0gatcsajJUiKvrgWf3RmFLnz178Q"

static json_t *jwk(const char *x, const char *y, const char *d)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", x, "y", y);

    if (d != NULL)
        json_object_set_new(j, "d", json_string(d));
    return j;
}

/* SHA-256 of the exact RFC 7638 JSON, computed here with OpenSSL directly. */
static void reference_thumbprint(const char *x, const char *y, char out[44])
{
    char json[200];
    uint8_t md[32];
    unsigned int mdlen = 0;
    int n = snprintf(json, sizeof(json),
                     "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);

    assert_int_equal(EVP_Digest(json, (size_t)n, md, &mdlen, EVP_sha256(), NULL), 1);
    b64url_encode(md, 32, out);
}

static void test_thumbprint_of(void **state)
{
    uint8_t x[32], y[32];
    char want[44], got[ECKEY_THUMBPRINT_LEN + 1];

    (void)state;
    assert_int_equal(b64url_decode(CLIENT_X, 43, x, 32), 32);
    assert_int_equal(b64url_decode(CLIENT_Y, 43, y, 32), 32);
    reference_thumbprint(CLIENT_X, CLIENT_Y, want);
    eckey_thumbprint_of(x, y, got);
    assert_string_equal(got, want);
    /* And the value computed independently for the protocol vectors. */
    assert_string_equal(got, CLIENT_TP);
}

static void test_generate(void **state)
{
    eckey *k = eckey_generate();
    char want[44], x[44], y[44];

    (void)state;
    assert_non_null(k);
    assert_true(eckey_has_private(k));
    assert_int_equal(eckey_point(k)[0], 0x04);
    assert_int_equal(strlen(eckey_thumbprint(k)), ECKEY_THUMBPRINT_LEN);
    b64url_encode(eckey_point(k) + 1, 32, x);
    b64url_encode(eckey_point(k) + 33, 32, y);
    reference_thumbprint(x, y, want);
    assert_string_equal(eckey_thumbprint(k), want);
    assert_non_null(eckey_pkey(k));
    eckey_free(k);
    eckey_free(NULL);
}

static void test_point_validation(void **state)
{
    eckey *k = eckey_generate();
    uint8_t p[ECKEY_POINT_LEN];
    eckey *q;

    (void)state;
    memcpy(p, eckey_point(k), sizeof(p));
    q = eckey_from_point(p, sizeof(p));
    assert_non_null(q);
    assert_false(eckey_has_private(q));
    assert_string_equal(eckey_thumbprint(q), eckey_thumbprint(k));
    eckey_free(q);

    p[64] ^= 1; /* off the curve */
    assert_null(eckey_from_point(p, sizeof(p)));
    p[64] ^= 1;
    p[0] = 0x02; /* compressed prefix with 65 bytes */
    assert_null(eckey_from_point(p, sizeof(p)));
    p[0] = 0x04;
    assert_null(eckey_from_point(p, 64));
    assert_null(eckey_from_point(p, 33));
    memset(p, 0, sizeof(p)); /* infinity, spelled both ways */
    assert_null(eckey_from_point(p, 1));
    p[0] = 0x04;
    assert_null(eckey_from_point(p, sizeof(p)));
    memset(p + 1, 0xff, 64); /* coordinates >= p */
    assert_null(eckey_from_point(p, sizeof(p)));
    assert_null(eckey_from_point(NULL, 65));
    eckey_free(k);
}

static void test_header_round_trip(void **state)
{
    eckey *k = eckey_generate();
    char h[ECKEY_POINT_B64_LEN + 1];
    eckey *q;

    (void)state;
    eckey_header_value(k, h);
    assert_int_equal(strlen(h), ECKEY_POINT_B64_LEN);
    q = eckey_from_header(h, strlen(h));
    assert_non_null(q);
    assert_memory_equal(eckey_point(q), eckey_point(k), ECKEY_POINT_LEN);
    assert_string_equal(eckey_thumbprint(q), eckey_thumbprint(k));
    eckey_free(q);
    assert_null(eckey_from_header(h, 86));
    h[10] = '+';
    assert_null(eckey_from_header(h, ECKEY_POINT_B64_LEN));
    eckey_free(k);

    q = eckey_from_header(CLIENT_POINT, strlen(CLIENT_POINT));
    assert_non_null(q);
    assert_string_equal(eckey_thumbprint(q), CLIENT_TP);
    eckey_free(q);
}

static void test_jwk_round_trip(void **state)
{
    eckey *k = eckey_generate();
    json_t *priv = eckey_to_jwk(k, true);
    json_t *pub = eckey_to_jwk(k, false);
    eckey *a, *b;

    (void)state;
    assert_non_null(json_object_get(priv, "d"));
    assert_null(json_object_get(pub, "d"));
    assert_int_equal(json_object_size(pub), 4);
    a = eckey_from_jwk(priv);
    b = eckey_from_jwk(pub);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(eckey_has_private(a));
    assert_false(eckey_has_private(b));
    assert_string_equal(eckey_thumbprint(a), eckey_thumbprint(k));
    assert_string_equal(eckey_thumbprint(b), eckey_thumbprint(k));
    json_decref(priv);
    priv = eckey_to_jwk(a, true);
    assert_non_null(json_object_get(priv, "d"));
    json_decref(priv);
    json_decref(pub);
    eckey_free(a);
    eckey_free(b);
    eckey_free(k);
}

static void test_jwk_fixed_and_refused(void **state)
{
    json_t *j = jwk(CLIENT_X, CLIENT_Y, CLIENT_D);
    eckey *k = eckey_from_jwk(j);

    (void)state;
    assert_non_null(k);
    assert_true(eckey_has_private(k));
    assert_string_equal(eckey_thumbprint(k), CLIENT_TP);
    eckey_free(k);
    json_decref(j);

    /* d of the client with the point of the server: halves do not match. */
    j = jwk(SERVER_X, SERVER_Y, CLIENT_D);
    assert_null(eckey_from_jwk(j));
    json_decref(j);
    /* x and y swapped: off the curve. */
    j = jwk(CLIENT_Y, CLIENT_X, NULL);
    assert_null(eckey_from_jwk(j));
    json_decref(j);
    j = jwk(CLIENT_X, CLIENT_Y, NULL);
    json_object_set_new(j, "crv", json_string("P-384"));
    assert_null(eckey_from_jwk(j));
    json_object_set_new(j, "crv", json_string("P-256"));
    json_object_set_new(j, "kty", json_string("RSA"));
    assert_null(eckey_from_jwk(j));
    json_object_set_new(j, "kty", json_string("EC"));
    json_object_set_new(j, "x", json_string("AAAA"));
    assert_null(eckey_from_jwk(j));
    json_object_set_new(j, "x", json_integer(1));
    assert_null(eckey_from_jwk(j));
    json_object_set_new(j, "x", json_string(CLIENT_X));
    json_object_set_new(j, "d", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_null(eckey_from_jwk(j)); /* d = 0 */
    json_object_del(j, "d");
    json_object_set_new(j, "use", json_string("enc"));
    k = eckey_from_jwk(j); /* other members are ignored */
    assert_non_null(k);
    eckey_free(k);
    json_decref(j);
    assert_null(eckey_from_jwk(NULL));
}

static char *pem_of(EVP_PKEY *pkey, int kind)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    char *out;
    long len;

    if (kind == 0)
        PEM_write_bio_PUBKEY(bio, pkey);
    else
        PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL);
    len = BIO_get_mem_data(bio, &data);
    out = strndup(data, (size_t)len);
    BIO_free(bio);
    return out;
}

static void test_pem_round_trip(void **state)
{
    eckey *k = eckey_generate();
    char *pem = eckey_to_pem(k);
    eckey *a, *b, *c;
    char *pub, *trad;
    EVP_PKEY *p384;
    char *p384pem;

    (void)state;
    assert_non_null(pem);
    assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
    a = eckey_from_pem(pem, strlen(pem));
    assert_non_null(a);
    assert_true(eckey_has_private(a));
    assert_string_equal(eckey_thumbprint(a), eckey_thumbprint(k));

    pub = pem_of(eckey_pkey(k), 0);
    b = eckey_from_pem(pub, strlen(pub));
    assert_non_null(b);
    assert_false(eckey_has_private(b));
    assert_null(eckey_to_pem(b));
    assert_string_equal(eckey_thumbprint(b), eckey_thumbprint(k));

    trad = pem_of(eckey_pkey(k), 1);
    assert_non_null(strstr(trad, "-----BEGIN EC PRIVATE KEY-----"));
    c = eckey_from_pem(trad, strlen(trad));
    assert_non_null(c);
    assert_true(eckey_has_private(c));
    assert_string_equal(eckey_thumbprint(c), eckey_thumbprint(k));

    p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    p384pem = pem_of(p384, 1);
    assert_null(eckey_from_pem(p384pem, strlen(p384pem)));
    assert_null(eckey_from_pem("garbage", 7));
    assert_null(eckey_from_pem(pem, 20));

    free(p384pem);
    EVP_PKEY_free(p384);
    free(trad);
    free(pub);
    free(pem);
    eckey_free(a);
    eckey_free(b);
    eckey_free(c);
    eckey_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thumbprint_of),    cmocka_unit_test(test_generate),
        cmocka_unit_test(test_point_validation), cmocka_unit_test(test_header_round_trip),
        cmocka_unit_test(test_jwk_round_trip),   cmocka_unit_test(test_jwk_fixed_and_refused),
        cmocka_unit_test(test_pem_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
