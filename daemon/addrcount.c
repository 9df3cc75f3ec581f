#include "daemon/addrcount.h"

#include <assert.h>
#include <pthread.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

typedef struct addrcount_entry {
    uint8_t addr[16];
    unsigned count;
} addrcount_entry;

struct addrcount {
    pthread_mutex_t lock;
    void *root; /* tsearch tree of addrcount_entry */
    size_t size, max_entries;
};

static int compare(const void *a, const void *b)
{
    return memcmp(((const addrcount_entry *)a)->addr, ((const addrcount_entry *)b)->addr, 16);
}

addrcount *addrcount_new(size_t max_entries)
{
    addrcount *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    t->max_entries = max_entries;
    return t;
}

void addrcount_free(addrcount *t)
{
    if (t == NULL)
        return;
    tdestroy(t->root, free);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

bool addrcount_take(addrcount *t, const uint8_t addr[16], unsigned limit)
{
    addrcount_entry key;
    memcpy(key.addr, addr, 16);
    bool taken = false;
    pthread_mutex_lock(&t->lock);
    addrcount_entry **found = tfind(&key, &t->root, compare);
    if (found != NULL) {
        if ((*found)->count < limit) {
            (*found)->count++;
            taken = true;
        }
    } else if (limit > 0 && t->size < t->max_entries) {
        addrcount_entry *e = malloc(sizeof *e);
        if (e != NULL) {
            memcpy(e->addr, addr, 16);
            e->count = 1;
            if (tsearch(e, &t->root, compare) != NULL) {
                t->size++;
                taken = true;
            } else {
                free(e);
            }
        }
    }
    pthread_mutex_unlock(&t->lock);
    return taken;
}

void addrcount_give_back(addrcount *t, const uint8_t addr[16])
{
    addrcount_entry key;
    memcpy(key.addr, addr, 16);
    pthread_mutex_lock(&t->lock);
    addrcount_entry **found = tfind(&key, &t->root, compare);
    assert(found != NULL && (*found)->count > 0);
    if (found != NULL && --(*found)->count == 0) {
        addrcount_entry *e = *found;
        tdelete(e, &t->root, compare);
        free(e);
        t->size--;
    }
    pthread_mutex_unlock(&t->lock);
}

unsigned addrcount_get(addrcount *t, const uint8_t addr[16])
{
    addrcount_entry key;
    memcpy(key.addr, addr, 16);
    pthread_mutex_lock(&t->lock);
    addrcount_entry **found = tfind(&key, &t->root, compare);
    unsigned n = found != NULL ? (*found)->count : 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}

size_t addrcount_size(addrcount *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->size;
    pthread_mutex_unlock(&t->lock);
    return n;
}
