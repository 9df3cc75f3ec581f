/* lru: the caches' one list: order, eviction end, counts, and links. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/lru.h"

typedef struct item {
    int id;
    lru_link lru;
} item;

/* The ids from most to least recent, checked against the links backwards. */
static void expect_order(const lru_list *l, const int *ids, size_t n)
{
    assert_int_equal(l->count, n);
    size_t i = 0;
    for (const lru_link *k = l->head; k != NULL; k = k->next, i++) {
        assert_true(i < n);
        assert_int_equal(LRU_ENTRY(k, item, lru)->id, ids[i]);
    }
    assert_int_equal(i, n);
    for (const lru_link *k = l->tail; k != NULL; k = k->prev)
        assert_int_equal(LRU_ENTRY(k, item, lru)->id, ids[--i]);
}

static void test_order(void **state)
{
    (void)state;
    item items[4] = {{1, {0}}, {2, {0}}, {3, {0}}, {4, {0}}};
    lru_list l = {0};
    for (int i = 0; i < 4; i++)
        lru_push_front(&l, &items[i].lru);
    expect_order(&l, (int[]){4, 3, 2, 1}, 4);

    lru_touch(&l, &items[1].lru); /* 2 used */
    expect_order(&l, (int[]){2, 4, 3, 1}, 4);
    lru_touch(&l, &items[1].lru); /* already the most recent */
    expect_order(&l, (int[]){2, 4, 3, 1}, 4);

    /* Eviction takes the tail. */
    item *oldest = LRU_ENTRY(l.tail, item, lru);
    assert_int_equal(oldest->id, 1);
    lru_unlink(&l, &oldest->lru);
    assert_null(oldest->lru.prev);
    assert_null(oldest->lru.next);
    expect_order(&l, (int[]){2, 4, 3}, 3);

    lru_unlink(&l, &items[3].lru); /* from the middle */
    expect_order(&l, (int[]){2, 3}, 2);
    lru_unlink(&l, &items[1].lru); /* the head */
    lru_unlink(&l, &items[2].lru); /* the last */
    expect_order(&l, NULL, 0);
    assert_null(l.head);
    assert_null(l.tail);

    lru_push_front(&l, &items[0].lru); /* an evicted entry may come back */
    expect_order(&l, (int[]){1}, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
