/* addrcount: per-address counts under a limit, a bounded table, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/addrcount.h"

#include <pthread.h>
#include <string.h>

static void addr(uint8_t out[16], unsigned n)
{
    memset(out, 0, 16);
    out[10] = out[11] = 0xff;
    out[12] = 192;
    out[13] = 0;
    out[14] = (uint8_t)(n >> 8);
    out[15] = (uint8_t)n;
}

static void test_limit(void **state)
{
    (void)state;
    addrcount *t = addrcount_new(4);
    assert_non_null(t);
    uint8_t a[16], b[16];
    addr(a, 1);
    addr(b, 2);
    assert_true(addrcount_take(t, a, 2));
    assert_true(addrcount_take(t, a, 2));
    assert_false(addrcount_take(t, a, 2)); /* at the limit */
    assert_int_equal(addrcount_get(t, a), 2);
    assert_true(addrcount_take(t, b, 2));
    assert_int_equal(addrcount_size(t), 2);
    addrcount_give_back(t, a);
    assert_true(addrcount_take(t, a, 2));
    addrcount_give_back(t, a);
    addrcount_give_back(t, a);
    assert_int_equal(addrcount_get(t, a), 0);
    assert_int_equal(addrcount_size(t), 1); /* a is gone at zero */
    /* A limit of 0 never counts a new address. */
    assert_false(addrcount_take(t, a, 0));
    assert_int_equal(addrcount_size(t), 1);
    addrcount_give_back(t, b);
    assert_int_equal(addrcount_size(t), 0);
    addrcount_free(t);
    addrcount_free(NULL);
}

static void test_full(void **state)
{
    (void)state;
    addrcount *t = addrcount_new(3);
    uint8_t a[16];
    for (unsigned i = 0; i < 3; i++) {
        addr(a, i);
        assert_true(addrcount_take(t, a, 10));
    }
    addr(a, 99);
    assert_false(addrcount_take(t, a, 10)); /* a new address, a full table */
    addr(a, 1);
    assert_true(addrcount_take(t, a, 10)); /* one it holds still counts */
    addrcount_free(t);                     /* with entries left: freed with it */
}

#define THREADS 4
#define ROUNDS  20000

static void *worker(void *arg)
{
    addrcount *t = arg;
    uint8_t a[16];
    for (unsigned i = 0; i < ROUNDS; i++) {
        addr(a, i % 64);
        if (addrcount_take(t, a, 1000000))
            addrcount_give_back(t, a);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    addrcount *t = addrcount_new(1000);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, t), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(addrcount_size(t), 0);
    addrcount_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
