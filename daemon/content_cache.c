#include "daemon/content_cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CONTENT_CACHE_DIGEST_ENTRIES_MAX (1u << 24)
#define CONTENT_CACHE_BODY_BUCKETS_MIN   256
#define CONTENT_CACHE_BODY_BUCKETS_MAX   (1u << 20)

typedef struct digest_entry {
    struct digest_entry *hnext;
    lru_link lru;
    uint64_t hash;
    content_cache_id id;
    content_cache_digests digests;
} digest_entry;

struct content_cache {
    size_t cache_bytes;
    size_t digest_entries;

    pthread_mutex_t body_lock;
    content_cache_body **body_buckets;
    size_t body_nbuckets; /* a power of two */
    size_t body_bytes;
    lru_list bodies;

    pthread_mutex_t digest_lock;
    digest_entry **digest_buckets;
    size_t digest_nbuckets; /* a power of two */
    lru_list digests;
};

static size_t pow2_at_least(size_t n, size_t min)
{
    size_t p = min;
    while (p < n)
        p <<= 1;
    return p;
}

void content_cache_id_of(content_cache_id *id, const struct stat *st)
{
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = (uint64_t)st->st_size;
    id->mtime = st->st_mtim;
}

bool content_cache_id_eq(const content_cache_id *a, const content_cache_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static uint64_t mix64(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15u + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9u;
    return h ^ (h >> 29);
}

uint64_t content_cache_id_hash(const content_cache_id *id)
{
    uint64_t h = mix64(0, (uint64_t)id->dev);
    h = mix64(h, (uint64_t)id->ino);
    h = mix64(h, id->size);
    h = mix64(h, (uint64_t)id->mtime.tv_sec);
    return mix64(h, (uint64_t)id->mtime.tv_nsec);
}

/* ---------------------------------------------------------- the digests */

bool content_cache_digest_get(content_cache *s, const content_cache_id *id, uint64_t h,
                              content_cache_digests *out)
{
    bool found = false;
    if (!s->digest_buckets)
        return false;
    pthread_mutex_lock(&s->digest_lock);
    digest_entry *e = s->digest_buckets[h & (s->digest_nbuckets - 1)];
    for (; e; e = e->hnext) {
        if (e->hash == h && content_cache_id_eq(&e->id, id))
            break;
    }
    if (e) {
        *out = e->digests;
        lru_touch(&s->digests, &e->lru);
        found = true;
    }
    pthread_mutex_unlock(&s->digest_lock);
    return found;
}

static void digest_unlink(content_cache *s, digest_entry *e)
{
    digest_entry **pp = &s->digest_buckets[e->hash & (s->digest_nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(&s->digests, &e->lru);
}

void content_cache_digest_put(content_cache *s, const content_cache_id *id, uint64_t h,
                              const content_cache_digests *d)
{
    digest_entry *victim = NULL;
    if (!s->digest_buckets)
        return;
    digest_entry *e = malloc(sizeof *e);
    if (!e)
        return; /* the cache is an optimisation; hashing again next time is correct */
    e->hash = h;
    e->id = *id;
    e->lru = (lru_link){NULL, NULL};
    e->digests = *d;

    pthread_mutex_lock(&s->digest_lock);
    digest_entry *old = s->digest_buckets[h & (s->digest_nbuckets - 1)];
    for (; old; old = old->hnext) {
        if (old->hash == h && content_cache_id_eq(&old->id, id))
            break;
    }
    if (old) {
        /* Another thread hashed the same version meanwhile, or this one
         * adds the injected form's digest. */
        if (d->has_injected && !old->digests.has_injected)
            old->digests = *d;
        victim = e;
    } else {
        if (s->digests.count >= s->digest_entries) {
            victim = LRU_ENTRY(s->digests.tail, digest_entry, lru);
            digest_unlink(s, victim);
        }
        size_t b = h & (s->digest_nbuckets - 1);
        e->hnext = s->digest_buckets[b];
        s->digest_buckets[b] = e;
        lru_push_front(&s->digests, &e->lru);
    }
    pthread_mutex_unlock(&s->digest_lock);
    free(victim);
}

/* ----------------------------------------------------------- the bodies */

/* A reference more on a body someone holds one of already. */
static void take_ref(content_cache_body *e)
{
    unsigned before = atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    assert(before > 0);
    (void)before;
}

void content_cache_body_unref(content_cache_body *e)
{
    if (e == NULL)
        return;
    unsigned before = atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel);
    assert(before > 0);
    if (before == 1) {
        assert(!e->cached); /* the cache holds a reference while it has it */
        if (e->snapshot_fd >= 0) {
            munmap((void *)e->bytes, (size_t)e->id.size);
            close(e->snapshot_fd);
            if (e->snapshots != NULL)
                atomic_fetch_sub_explicit(e->snapshots, 1, memory_order_relaxed);
        }
        free(e);
    }
}

static content_cache_body *body_find(content_cache *s, uint64_t h, const char *path, size_t len)
{
    content_cache_body *e = s->body_buckets[h & (s->body_nbuckets - 1)];
    for (; e; e = e->hnext) {
        if (e->hash == h && e->path_len == len && memcmp(e->path, path, len) == 0)
            return e;
    }
    return NULL;
}

/* Takes e out of the table; the cache's reference goes onto *drop (freed unlocked). */
static void body_unlink(content_cache *s, content_cache_body *e, content_cache_body **drop)
{
    content_cache_body **pp = &s->body_buckets[e->hash & (s->body_nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(&s->bodies, &e->lru);
    e->cached = false;
    assert(s->body_bytes >= e->cost);
    s->body_bytes -= e->cost;
    e->hnext = *drop;
    *drop = e;
}

static void body_drop_all(content_cache_body *drop)
{
    while (drop) {
        content_cache_body *next = drop->hnext;
        content_cache_body_unref(drop);
        drop = next;
    }
}

static void body_grow(content_cache *s)
{
    size_t n = s->body_nbuckets * 2;
    if (n > CONTENT_CACHE_BODY_BUCKETS_MAX)
        return;
    content_cache_body **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->body_nbuckets; i++) {
        content_cache_body *e = s->body_buckets[i];
        while (e) {
            content_cache_body *next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(s->body_buckets);
    s->body_buckets = b;
    s->body_nbuckets = n;
}

void content_cache_body_forget(content_cache *s, uint64_t h, const char *path, size_t len)
{
    content_cache_body *drop = NULL;
    pthread_mutex_lock(&s->body_lock);
    content_cache_body *e = body_find(s, h, path, len);
    if (e)
        body_unlink(s, e, &drop);
    pthread_mutex_unlock(&s->body_lock);
    body_drop_all(drop);
}

void content_cache_body_put(content_cache *s, content_cache_body *e)
{
    content_cache_body *drop = NULL;
    pthread_mutex_lock(&s->body_lock);
    content_cache_body *old = body_find(s, e->hash, e->path, e->path_len);
    if (old)
        body_unlink(s, old, &drop);
    if (e->cost <= s->cache_bytes) {
        while (s->bodies.tail != NULL && s->body_bytes + e->cost > s->cache_bytes)
            body_unlink(s, LRU_ENTRY(s->bodies.tail, content_cache_body, lru), &drop);
        if (s->bodies.count >= s->body_nbuckets)
            body_grow(s);
        take_ref(e);
        e->cached = true;
        size_t b = e->hash & (s->body_nbuckets - 1);
        e->hnext = s->body_buckets[b];
        s->body_buckets[b] = e;
        lru_push_front(&s->bodies, &e->lru);
        s->body_bytes += e->cost;
    }
    pthread_mutex_unlock(&s->body_lock);
    body_drop_all(drop);
}

content_cache_body *content_cache_body_new(size_t size)
{
    content_cache_body *e = malloc(sizeof *e + size);
    if (e == NULL)
        return NULL;
    atomic_init(&e->refs, 1);
    e->cached = false;
    e->hnext = NULL;
    e->lru = (lru_link){NULL, NULL};
    e->cost = sizeof *e + size;
    e->bytes = e->data;
    e->snapshot_fd = -1;
    e->snapshots = NULL;
    return e;
}

content_cache_body *content_cache_body_fresh(content_cache *s, uint64_t h, const char *path,
                                             size_t len, uint64_t now_ms, unsigned revalidate_ms)
{
    pthread_mutex_lock(&s->body_lock);
    content_cache_body *e = body_find(s, h, path, len);
    /* checked_ms may be a little ahead when another thread just revalidated. */
    if (e != NULL && revalidate_ms > 0 &&
        (now_ms <= e->checked_ms || now_ms - e->checked_ms < revalidate_ms)) {
        take_ref(e);
        lru_touch(&s->bodies, &e->lru);
    } else {
        e = NULL;
    }
    pthread_mutex_unlock(&s->body_lock);
    return e;
}

content_cache_body *content_cache_body_same(content_cache *s, uint64_t h, const char *path,
                                            size_t len, const content_cache_id *id, uint64_t now_ms)
{
    pthread_mutex_lock(&s->body_lock);
    content_cache_body *e = body_find(s, h, path, len);
    if (e != NULL && content_cache_id_eq(&e->id, id)) {
        e->checked_ms = now_ms;
        take_ref(e);
        lru_touch(&s->bodies, &e->lru);
    } else {
        e = NULL;
    }
    pthread_mutex_unlock(&s->body_lock);
    return e;
}

/* ------------------------------------------------------ life and death */

content_cache *content_cache_new(size_t cache_bytes, size_t digest_entries)
{
    content_cache *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    if (digest_entries > CONTENT_CACHE_DIGEST_ENTRIES_MAX)
        digest_entries = CONTENT_CACHE_DIGEST_ENTRIES_MAX;
    s->cache_bytes = cache_bytes;
    s->digest_entries = digest_entries;
    s->body_nbuckets = CONTENT_CACHE_BODY_BUCKETS_MIN;
    s->body_buckets = calloc(s->body_nbuckets, sizeof *s->body_buckets);
    if (digest_entries > 0) {
        s->digest_nbuckets = pow2_at_least(digest_entries, 16);
        s->digest_buckets = calloc(s->digest_nbuckets, sizeof *s->digest_buckets);
    }
    if (s->body_buckets == NULL || (digest_entries > 0 && s->digest_buckets == NULL)) {
        free(s->body_buckets);
        free(s->digest_buckets);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->body_lock, NULL);
    pthread_mutex_init(&s->digest_lock, NULL);
    return s;
}

void content_cache_free(content_cache *s)
{
    if (s == NULL)
        return;
    /* Entries still held by a content_file live on until released. */
    content_cache_body *drop = NULL;
    while (s->bodies.head != NULL)
        body_unlink(s, LRU_ENTRY(s->bodies.head, content_cache_body, lru), &drop);
    body_drop_all(drop);
    free(s->body_buckets);
    if (s->digest_buckets) {
        while (s->digests.head != NULL) {
            digest_entry *e = LRU_ENTRY(s->digests.head, digest_entry, lru);
            digest_unlink(s, e);
            free(e);
        }
    }
    free(s->digest_buckets);
    pthread_mutex_destroy(&s->body_lock);
    pthread_mutex_destroy(&s->digest_lock);
    free(s);
}
