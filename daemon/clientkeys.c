#include "daemon/clientkeys.h"

#include "common/b64.h"
#include "daemon/hash.h"
#include "daemon/lru.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CLIENTKEYS_MIN_BUCKETS 64

typedef struct entry {
    char header[ECKEY_POINT_B64_LEN + 1];
    uint64_t hash;
    clientkey value;
    struct entry *next_in_bucket;
    lru_link lru;
} entry;

struct clientkeys {
    const eckey *server_enc;
    const char *server_kid;
    pthread_mutex_t lock;
    entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t capacity;
    lru_list lru; /* every entry, most recent first */
    uint64_t hits, misses;
};

clientkeys *clientkeys_new(const eckey *server_enc, size_t capacity)
{
    clientkeys *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    size_t nb = CLIENTKEYS_MIN_BUCKETS;
    while (nb < capacity)
        nb <<= 1;
    c->buckets = calloc(nb, sizeof *c->buckets);
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }
    c->nbuckets = nb;
    c->capacity = capacity > 0 ? capacity : 1;
    c->server_enc = server_enc;
    c->server_kid = eckey_thumbprint(server_enc);
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void clientkeys_free(clientkeys *c)
{
    if (c == NULL)
        return;
    while (c->lru.head != NULL) {
        entry *e = LRU_ENTRY(c->lru.head, entry, lru);
        lru_unlink(&c->lru, &e->lru);
        explicit_bzero(e->value.key, sizeof e->value.key);
        free(e);
    }
    pthread_mutex_destroy(&c->lock);
    free(c->buckets);
    free(c);
}

static void bucket_remove(clientkeys *c, entry *e)
{
    entry **p = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*p != NULL && *p != e)
        p = &(*p)->next_in_bucket;
    if (*p == e)
        *p = e->next_in_bucket;
}

static entry *find(clientkeys *c, const char *header, uint64_t h)
{
    for (entry *e = c->buckets[h & (c->nbuckets - 1)]; e != NULL; e = e->next_in_bucket) {
        if (e->hash == h && memcmp(e->header, header, ECKEY_POINT_B64_LEN) == 0)
            return e;
    }
    return NULL;
}

int clientkeys_get(clientkeys *c, const char *header, size_t n, clientkey *out)
{
    if (n != ECKEY_POINT_B64_LEN)
        return -1;
    uint64_t h = hash_fnv1a(header, n);

    pthread_mutex_lock(&c->lock);
    entry *e = find(c, header, h);
    if (e != NULL) {
        *out = e->value;
        lru_touch(&c->lru, &e->lru);
        c->hits++;
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    c->misses++;
    pthread_mutex_unlock(&c->lock);

    /* The expensive part runs outside the lock. */
    int rc = -1;
    clientkey value;
    eckey *client = eckey_from_header(header, n);
    if (client == NULL)
        goto done;
    memcpy(value.id, eckey_thumbprint(client), sizeof value.id);
    if (b64url_decode(value.id, ECKEY_THUMBPRINT_LEN, value.id_raw, sizeof value.id_raw) != 32)
        goto done;
    if (kdf_derive(c->server_enc, client, value.id, c->server_kid, value.key) != 0)
        goto done;
    *out = value;
    rc = 0;

    entry *fresh = malloc(sizeof *fresh);
    if (fresh == NULL)
        goto done; /* still answered, just not cached */
    memcpy(fresh->header, header, n);
    fresh->header[n] = '\0';
    fresh->hash = h;
    fresh->value = value;
    fresh->lru = (lru_link){NULL, NULL};

    pthread_mutex_lock(&c->lock);
    if (find(c, header, h) != NULL) { /* another thread got there first */
        pthread_mutex_unlock(&c->lock);
        free(fresh);
        goto done;
    }
    if (c->lru.count == c->capacity) {
        entry *old = LRU_ENTRY(c->lru.tail, entry, lru);
        lru_unlink(&c->lru, &old->lru);
        bucket_remove(c, old);
        explicit_bzero(old->value.key, sizeof old->value.key);
        free(old);
    }
    size_t b = h & (c->nbuckets - 1);
    fresh->next_in_bucket = c->buckets[b];
    c->buckets[b] = fresh;
    lru_push_front(&c->lru, &fresh->lru);
    pthread_mutex_unlock(&c->lock);
done:
    explicit_bzero(value.key, sizeof value.key);
    eckey_free(client);
    return rc;
}

int clientkeys_lookup(clientkeys *c, const char *header, clientkey *out)
{
    if (header == NULL)
        return 0;
    return clientkeys_get(c, header, strlen(header), out) == 0 ? 1 : -1;
}

void clientkey_wipe(clientkey *key)
{
    explicit_bzero(key, sizeof *key);
}

void clientkeys_stats(clientkeys *c, uint64_t *hits, uint64_t *misses, size_t *entries)
{
    pthread_mutex_lock(&c->lock);
    *hits = c->hits;
    *misses = c->misses;
    *entries = c->lru.count;
    pthread_mutex_unlock(&c->lock);
}
