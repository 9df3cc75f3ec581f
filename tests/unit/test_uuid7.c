/* uuid7: layout bits, ordering within a millisecond and across threads, text form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/uuid7.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS    4
#define PER_THREAD 20000

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_version_variant(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) {
        uuid7 id;
        uint64_t before = now_ms();

        assert_int_equal(uuid7_new(&id), 0);
        assert_int_equal(id.bytes[6] >> 4, 7);
        assert_int_equal(id.bytes[8] >> 6, 2);
        /* The shared state may run ahead of the clock, never behind it. */
        assert_true(uuid7_unix_ms(&id) >= before);
    }
}

static void test_same_millisecond_order(void **state)
{
    /* Ahead of the real clock so that the shared state starts at this ms. */
    uint64_t ms = now_ms() + 60000;
    uuid7 prev, id;

    (void)state;
    assert_int_equal(uuid7_new_at(&prev, ms), 0);
    assert_int_equal(uuid7_unix_ms(&prev), ms);
    assert_int_equal(prev.bytes[6] & 0x0f, 0);
    assert_int_equal(prev.bytes[7], 0);
    /* More than the 4096 a 12-bit counter holds: the overflow borrows ms + 1. */
    for (int i = 1; i < 5000; i++) {
        assert_int_equal(uuid7_new_at(&id, ms), 0);
        assert_true(memcmp(prev.bytes, id.bytes, 16) < 0);
        assert_int_equal(id.bytes[6] >> 4, 7);
        assert_int_equal(id.bytes[8] >> 6, 2);
        prev = id;
    }
    assert_int_equal(uuid7_unix_ms(&prev), ms + 1);
    /* A clock that steps back still yields a later ID. */
    assert_int_equal(uuid7_new_at(&id, ms - 5000), 0);
    assert_true(memcmp(prev.bytes, id.bytes, 16) < 0);
}

static uuid7 made[THREADS][PER_THREAD];

static void *maker(void *arg)
{
    uuid7 *out = arg;

    for (int i = 0; i < PER_THREAD; i++) {
        if (uuid7_new(&out[i]) != 0)
            memset(&out[i], 0, sizeof(out[i]));
    }
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void test_threads(void **state)
{
    pthread_t t[THREADS];
    uuid7 *all = malloc(sizeof(made));

    (void)state;
    assert_non_null(all);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, maker, made[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        for (int j = 1; j < PER_THREAD; j++)
            assert_true(memcmp(made[i][j - 1].bytes, made[i][j].bytes, 16) < 0);
    }
    /* The counter is shared, so no two threads ever get the same ms|counter. */
    memcpy(all, made, sizeof(made));
    qsort(all, THREADS * PER_THREAD, sizeof(uuid7), cmp_id);
    for (int i = 1; i < THREADS * PER_THREAD; i++)
        assert_true(memcmp(all[i - 1].bytes, all[i].bytes, 8) < 0);
    free(all);
}

static void test_format_parse(void **state)
{
    uuid7 id, back;
    char text[UUID7_STR_LEN + 1];

    (void)state;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(uuid7_new(&id), 0);
        uuid7_format(&id, text);
        assert_int_equal(strlen(text), UUID7_STR_LEN);
        assert_int_equal(text[8], '-');
        assert_int_equal(text[14], '7');
        assert_int_equal(uuid7_parse(text, UUID7_STR_LEN, &back), 0);
        assert_memory_equal(id.bytes, back.bytes, 16);
    }
    assert_int_equal(uuid7_parse("019a6b2c-3d4e-7f00-8000-0123456789ab", 36, &back), 0);
    assert_int_equal(uuid7_unix_ms(&back), 0x019a6b2c3d4eULL);
    uuid7_format(&back, text);
    assert_string_equal(text, "019a6b2c-3d4e-7f00-8000-0123456789ab");
}

static void test_parse_rejects(void **state)
{
    static const char *bad[] = {
        "019A6B2C-3D4E-7F00-8000-0123456789AB", /* uppercase */
        "019a6b2c-3d4e-7f00-8000-0123456789aB", /* one uppercase digit */
        "019a6b2c-3d4e-4f00-8000-0123456789ab", /* version 4 */
        "019a6b2c-3d4e-8f00-8000-0123456789ab", /* version 8 */
        "019a6b2c-3d4e-7f00-c000-0123456789ab", /* variant 11 */
        "019a6b2c-3d4e-7f00-0000-0123456789ab", /* variant 0 */
        "019a6b2c3d4e-7f00-8000-0123456789ab-", /* dash misplaced */
        "019a6b2c-3d4e-7f00-8000-0123456789ag", /* not hex */
        "{19a6b2c-3d4e-7f00-8000-0123456789ab", /* brace */
        "019a6b2c-3d4e-7f00-8000-0123456789a",  /* short */
    };
    uuid7 id;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(uuid7_parse(bad[i], strlen(bad[i]), &id), -1);
    assert_int_equal(uuid7_parse("019a6b2c-3d4e-7f00-8000-0123456789abc", 37, &id), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_variant), cmocka_unit_test(test_same_millisecond_order),
        cmocka_unit_test(test_threads),         cmocka_unit_test(test_format_parse),
        cmocka_unit_test(test_parse_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
