/*
 * lru: the doubly linked list of the daemon: the least-recently-used order
 * of its caches (client keys, file digests, file bodies) and the
 * confirmations the watchdog watches. One implementation with its
 * invariants asserted, instead of one per user.
 *
 * Intrusive: an entry embeds an lru_link and LRU_ENTRY() gets back from the
 * link to the entry. The newest (most recently used) entry is at head, the
 * one to evict at tail. A list is guarded by its user's lock; nothing here
 * locks.
 */
#ifndef RECEIPT_DAEMON_LRU_H
#define RECEIPT_DAEMON_LRU_H

#include <assert.h>
#include <stddef.h>

typedef struct lru_link {
    struct lru_link *prev, *next; /* both NULL while not in a list */
} lru_link;

typedef struct lru_list {
    lru_link *head, *tail;
    size_t count;
} lru_list;

#define LRU_ENTRY(link, type, member) ((type *)(void *)((char *)(link)-offsetof(type, member)))

static inline void lru_push_front(lru_list *l, lru_link *e)
{
    assert(e->prev == NULL && e->next == NULL);
    assert(l->count == 0 ? l->head == NULL && l->tail == NULL
                         : l->head != NULL && l->head->prev == NULL && l->tail->next == NULL);
    e->next = l->head;
    if (l->head != NULL)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
    l->count++;
}

static inline void lru_unlink(lru_list *l, lru_link *e)
{
    assert(l->count > 0);
    assert((e->prev == NULL) == (l->head == e));
    assert((e->next == NULL) == (l->tail == e));
    assert(e->prev == NULL || e->prev->next == e);
    assert(e->next == NULL || e->next->prev == e);
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    l->count--;
}

/* Makes e, which is in l, the most recent. */
static inline void lru_touch(lru_list *l, lru_link *e)
{
    if (l->head == e)
        return;
    lru_unlink(l, e);
    lru_push_front(l, e);
}

#endif
