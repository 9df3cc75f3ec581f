/* kdf: both sides agree, and the fixed vector of docs/protocol.md (test vectors) holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/b64.h"
#include "common/kdf.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define CLIENT_D  "pmpYkLdKjQ4j23b2378479Qtj_BjbMfJYCY5dlGrq3w"
#define CLIENT_X  "Lx_xA6qdaLLN9cVYLjMjKHUf2VCJVfF6pr4hk_JwG0I"
#define CLIENT_Y  "DMCETttP-cohU3a_5tJ9JaoRXcrztfhtbgL08K6FG8Q"
#define SERVER_D  "RgW19JTZP2Dolg2VyP5UONH1hV4uyr2N_JSxunmgz80"
#define SERVER_X  "mkifm4jtaMCjOrDQlHWSHMEJ4skuVtDKMkwBvv0XlY0"
#define SERVER_Y  "EXF4z_XCtTMj8FC0gatcsajJUiKvrgWf3RmFLnz178Q"
#define CLIENT_TP "_p8c_h-lhZVQMr2M2RrlW5dVou4F02jrfVX_wGJR7rM"
#define SERVER_TP "NQYrvWcPtl5T6pdxquoOD5FQNKubNni3Lyw_jKDNuZU"
#define Z_HEX     "0efba5ab28bcd0534a63334224d1e8f8868d10878d7e24eaa4c544e38e8ead3e"
#define K_HEX     "850adaf10699e49061ab26f62aecf2ed9cd1a191c5330671845e6d40f1c0b143"

static eckey *key_of(const char *x, const char *y, const char *d)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", x, "y", y);
    eckey *k;

    if (d != NULL)
        json_object_set_new(j, "d", json_string(d));
    k = eckey_from_jwk(j);
    json_decref(j);
    assert_non_null(k);
    return k;
}

/* out holds 2 n + 1 bytes. */
static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void test_both_sides_agree(void **state)
{
    eckey *client = eckey_generate();
    eckey *server = eckey_generate();
    eckey *client_pub = eckey_from_point(eckey_point(client), ECKEY_POINT_LEN);
    eckey *server_pub = eckey_from_point(eckey_point(server), ECKEY_POINT_LEN);
    uint8_t k1[KDF_KEY_LEN], k2[KDF_KEY_LEN], k3[KDF_KEY_LEN];
    const char *cid = eckey_thumbprint(client), *skid = eckey_thumbprint(server);

    (void)state;
    assert_int_equal(kdf_derive(client, server_pub, cid, skid, k1), 0);
    assert_int_equal(kdf_derive(server, client_pub, cid, skid, k2), 0);
    assert_memory_equal(k1, k2, KDF_KEY_LEN);
    /* The info binds both ids: another kid gives another key. */
    assert_int_equal(kdf_derive(server, client_pub, cid, cid, k3), 0);
    assert_memory_not_equal(k1, k3, KDF_KEY_LEN);
    /* No private key, no derivation. */
    assert_int_equal(kdf_derive(client_pub, server_pub, cid, skid, k3), -1);
    assert_int_equal(kdf_shared_secret(server_pub, client, k3), -1);
    eckey_free(client);
    eckey_free(server);
    eckey_free(client_pub);
    eckey_free(server_pub);
}

static void test_fixed_vector(void **state)
{
    eckey *client = key_of(CLIENT_X, CLIENT_Y, CLIENT_D);
    eckey *server = key_of(SERVER_X, SERVER_Y, SERVER_D);
    uint8_t z1[32], z2[32], k1[KDF_KEY_LEN], k2[KDF_KEY_LEN];
    char text[65];

    (void)state;
    assert_string_equal(eckey_thumbprint(client), CLIENT_TP);
    assert_string_equal(eckey_thumbprint(server), SERVER_TP);
    assert_int_equal(kdf_shared_secret(client, server, z1), 0);
    assert_int_equal(kdf_shared_secret(server, client, z2), 0);
    assert_memory_equal(z1, z2, 32);
    hex(z1, 32, text);
    assert_string_equal(text, Z_HEX);
    assert_int_equal(kdf_derive(client, server, CLIENT_TP, SERVER_TP, k1), 0);
    assert_int_equal(kdf_derive(server, client, CLIENT_TP, SERVER_TP, k2), 0);
    assert_memory_equal(k1, k2, KDF_KEY_LEN);
    hex(k1, 32, text);
    assert_string_equal(text, K_HEX);
    eckey_free(client);
    eckey_free(server);
}

static void test_bad_ids(void **state)
{
    eckey *a = eckey_generate();
    eckey *b = eckey_generate();
    uint8_t k[KDF_KEY_LEN];
    char longid[80];

    (void)state;
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(kdf_derive(a, b, NULL, "x", k), -1);
    assert_int_equal(kdf_derive(a, b, longid, "x", k), -1);
    assert_int_equal(kdf_derive(a, NULL, "x", "y", k), -1);
    eckey_free(a);
    eckey_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_sides_agree),
        cmocka_unit_test(test_fixed_vector),
        cmocka_unit_test(test_bad_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
