/*
 * content_cache: the two caches of the content store.
 *
 *  - digests: the SHA-256 of a file version, keyed by its identity
 *    (content_cache_id: device, inode, size, mtime), so that a changed file
 *    is hashed again and an unchanged one never, with the digest of its
 *    injected form when it has one; at most digest_entries, least recently
 *    used evicted.
 *  - bodies: small files in memory, keyed by canonical path, at most
 *    cache_bytes in all (each entry costing its size and its header), least
 *    recently used evicted. An entry carries its bytes and their digest
 *    together, so a response never pairs a digest with other bytes; an
 *    HTML page keeps its injected form beside them, made once per version.
 *
 * Entries are reference counted: the cache holds one while an entry is in
 * it, every content_file one more; the last release frees it, without a
 * lock and without the cache, which may be gone by then. Thread-safe (one
 * mutex per cache, held only for table and list work).
 */
#ifndef RECEIPT_DAEMON_CONTENT_CACHE_H
#define RECEIPT_DAEMON_CONTENT_CACHE_H

#include "daemon/lru.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

/* The longest path a cached body is kept under: the content store's
 * canonical paths (CONTENT_PATH_MAX) fit. */
#define CONTENT_CACHE_PATH_MAX 240

/* One version of a file, as fstat() describes it. */
typedef struct content_cache_id {
    dev_t dev;
    ino_t ino;
    uint64_t size;
    struct timespec mtime;
} content_cache_id;

void content_cache_id_of(content_cache_id *id, const struct stat *st);
bool content_cache_id_eq(const content_cache_id *a, const content_cache_id *b);
uint64_t content_cache_id_hash(const content_cache_id *id);

/*
 * A small file in memory. The content store fills everything from hash to
 * data; refs, cached and the links belong to the cache.
 */
typedef struct content_cache_body {
    atomic_uint refs;
    bool cached;                      /* in the table and the LRU list */
    struct content_cache_body *hnext; /* hash chain */
    lru_link lru;
    uint64_t hash;       /* of the path */
    uint64_t checked_ms; /* last time the file was seen to be this one */
    size_t cost;         /* against cache_bytes */
    content_cache_id id;
    const char *mime;
    bool is_html;
    uint8_t sha256[32];
    char etag[48];
    char repr_digest[64];
    char last_modified[40];
    /* HTML that the store injects: data holds the injected form too, right
     * after the file's own bytes, the element at inject_at. */
    bool injectable;
    size_t inject_at;
    size_t injected_size;
    uint8_t injected_sha256[32];
    char injected_repr_digest[64];
    size_t path_len;
    char path[CONTENT_CACHE_PATH_MAX + 1];
    /* The bytes: data, or (snapshot_fd >= 0) a read-only mapping of a
     * sealed memory file that holds them, which the kernel can send
     * without a copy and nobody can change. The body owns the mapping and
     * the descriptor, and on its last reference unmaps and closes them and
     * counts one snapshot fewer in *snapshots (when set). */
    const uint8_t *bytes;
    int snapshot_fd;
    atomic_uint *snapshots;
    uint8_t data[];
} content_cache_body;

typedef struct content_cache content_cache;

/* digest_entries 0: no digest cache. NULL when out of memory. */
content_cache *content_cache_new(size_t cache_bytes, size_t digest_entries);
/* Entries still referenced by a content_file live on until released.
 * NULL-safe. */
void content_cache_free(content_cache *c);

/* The digests of one version: of its bytes, and of its injected form (the
 * element at inject_at) when it has one. */
typedef struct content_cache_digests {
    uint8_t sha256[32];
    bool has_injected;
    uint64_t inject_at;
    uint8_t injected_sha256[32];
} content_cache_digests;

/* The digests of version id (h: content_cache_id_hash(id)): true and out
 * set, or false. */
bool content_cache_digest_get(content_cache *c, const content_cache_id *id, uint64_t h,
                              content_cache_digests *out);
/* Remembers the digests of a stable version (an entry without the injected
 * digest gains it); memory short: not remembered. */
void content_cache_digest_put(content_cache *c, const content_cache_id *id, uint64_t h,
                              const content_cache_digests *d);

/* A new body with room for size bytes of data, holding one reference (the
 * caller's), not in the cache; NULL when out of memory. */
content_cache_body *content_cache_body_new(size_t size);
/* Drops a reference; the last frees the body. NULL-safe, lock-free. */
void content_cache_body_unref(content_cache_body *e);

/*
 * The cached body of path (len bytes, h its hash) when it was checked less
 * than revalidate_ms before now_ms (0: never fresh), with a new reference;
 * else NULL. The hit path of a hot file: no system call.
 */
content_cache_body *content_cache_body_fresh(content_cache *c, uint64_t h, const char *path,
                                             size_t len, uint64_t now_ms, unsigned revalidate_ms);

/* The cached body of path when it is still version id, marked checked at
 * now_ms, with a new reference; else NULL. */
content_cache_body *content_cache_body_same(content_cache *c, uint64_t h, const char *path,
                                            size_t len, const content_cache_id *id,
                                            uint64_t now_ms);

/*
 * Puts e (its hash, path and cost set) into the cache, replacing the entry
 * of the same path and evicting the least recently used ones to stay
 * within cache_bytes; the cache takes a reference of its own, and the
 * caller keeps its one. A body larger than the whole cache stays out.
 */
void content_cache_body_put(content_cache *c, content_cache_body *e);

/* Forgets the body of path, if cached: it is gone or no longer small. */
void content_cache_body_forget(content_cache *c, uint64_t h, const char *path, size_t len);

#endif
