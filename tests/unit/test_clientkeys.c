/* clientkeys: header to client ID and K, the same as kdf on both sides; LRU bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/kdf.h"
#include "daemon/clientkeys.h"

#include <string.h>

static void test_derives_what_the_client_derives(void **state)
{
    (void)state;
    eckey *server = eckey_generate();
    eckey *client = eckey_generate();
    clientkeys *cache = clientkeys_new(server, 8);
    char header[ECKEY_POINT_B64_LEN + 1];
    eckey_header_value(client, header);

    clientkey got;
    assert_int_equal(clientkeys_get(cache, header, strlen(header), &got), 0);
    assert_string_equal(got.id, eckey_thumbprint(client));
    uint8_t k[KDF_KEY_LEN];
    assert_int_equal(
        kdf_derive(client, server, eckey_thumbprint(client), eckey_thumbprint(server), k), 0);
    assert_memory_equal(got.key, k, sizeof k);

    /* The second time from the cache: the same answer. */
    clientkey again;
    assert_int_equal(clientkeys_get(cache, header, strlen(header), &again), 0);
    assert_memory_equal(&again, &got, sizeof got);
    uint64_t hits, misses;
    size_t entries;
    clientkeys_stats(cache, &hits, &misses, &entries);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 1);
    assert_int_equal(entries, 1);

    clientkeys_free(cache);
    eckey_free(client);
    eckey_free(server);
}

static void test_refuses_bad_headers(void **state)
{
    (void)state;
    eckey *server = eckey_generate();
    eckey *client = eckey_generate();
    clientkeys *cache = clientkeys_new(server, 8);
    char header[ECKEY_POINT_B64_LEN + 1];
    clientkey got;
    eckey_header_value(client, header);

    assert_int_equal(clientkeys_get(cache, header, strlen(header) - 1, &got), -1);
    assert_int_equal(clientkeys_get(cache, "", 0, &got), -1);
    header[80] = header[80] == 'A' ? 'B' : 'A'; /* y no longer on the curve */
    assert_int_equal(clientkeys_get(cache, header, strlen(header), &got), -1);
    header[2] = '*'; /* not base64url */
    assert_int_equal(clientkeys_get(cache, header, strlen(header), &got), -1);
    uint64_t hits, misses;
    size_t entries;
    clientkeys_stats(cache, &hits, &misses, &entries);
    assert_int_equal(entries, 0);

    clientkeys_free(cache);
    eckey_free(client);
    eckey_free(server);
}

static void test_lru_bound(void **state)
{
    (void)state;
    enum { CAP = 4, CLIENTS = 10 };
    eckey *server = eckey_generate();
    clientkeys *cache = clientkeys_new(server, CAP);
    char headers[CLIENTS][ECKEY_POINT_B64_LEN + 1];
    clientkey got;
    for (int i = 0; i < CLIENTS; i++) {
        eckey *c = eckey_generate();
        eckey_header_value(c, headers[i]);
        eckey_free(c);
        assert_int_equal(clientkeys_get(cache, headers[i], ECKEY_POINT_B64_LEN, &got), 0);
    }
    uint64_t hits, misses;
    size_t entries;
    clientkeys_stats(cache, &hits, &misses, &entries);
    assert_int_equal(entries, CAP);
    /* The most recent are cached, the oldest were evicted. */
    assert_int_equal(clientkeys_get(cache, headers[CLIENTS - 1], ECKEY_POINT_B64_LEN, &got), 0);
    clientkeys_stats(cache, &hits, &misses, &entries);
    assert_int_equal(hits, 1);
    assert_int_equal(clientkeys_get(cache, headers[0], ECKEY_POINT_B64_LEN, &got), 0);
    clientkeys_stats(cache, &hits, &misses, &entries);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, CLIENTS + 1);
    assert_int_equal(entries, CAP);
    clientkeys_free(cache);
    eckey_free(server);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derives_what_the_client_derives),
        cmocka_unit_test(test_refuses_bad_headers),
        cmocka_unit_test(test_lru_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
