/*
 * clientkeys: from a Receipt-Client-Key header to the client ID and the
 * client-server key K, with a bounded LRU cache in front.
 *
 * The first request of a client costs a point validation, a thumbprint and
 * an ECDH + HKDF; later requests with the same header value cost one hash
 * lookup. Entries are keyed by the exact header text (which encodes the
 * point one way only), so a cached entry was validated when it was made.
 * The server encryption key is fixed for the cache's life: a new key means
 * a new cache. Thread-safe.
 */
#ifndef RECEIPT_DAEMON_CLIENTKEYS_H
#define RECEIPT_DAEMON_CLIENTKEYS_H

#include "common/compiler.h"
#include "common/eckey.h"
#include "common/kdf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct clientkeys clientkeys;

typedef struct clientkey {
    char id[ECKEY_THUMBPRINT_LEN + 1]; /* client ID (thumbprint), text */
    uint8_t id_raw[32];                /* the same, decoded             */
    uint8_t key[KDF_KEY_LEN];          /* K                             */
} clientkey;

/* Wipes a key copied out of the cache; for __attribute__((cleanup)), so that
 * K leaves no copy on a worker's stack whichever way a handler returns. */
void clientkey_wipe(clientkey *key);
#define CLIENTKEY_SCOPED __attribute__((cleanup(clientkey_wipe)))

/* server_enc is borrowed and must outlive the cache. */
clientkeys *clientkeys_new(const eckey *server_enc, size_t capacity);
void clientkeys_free(clientkeys *cache);

/* The request header that names a client's key. */
#define CLIENTKEYS_HEADER "Receipt-Client-Key"

/* Returns 0 and fills *out, or -1 when the header value is not a valid
 * P-256 point in the form of docs/protocol.md section 3.3. */
WARN_UNUSED_RESULT int clientkeys_get(clientkeys *cache, const char *header, size_t n,
                                      clientkey *out);

/* The value of a request's CLIENTKEYS_HEADER (NULL when it has none):
 * 1 valid (out set), 0 absent, -1 not a valid key. */
WARN_UNUSED_RESULT int clientkeys_lookup(clientkeys *cache, const char *header, clientkey *out);

/* Counters for metrics. */
void clientkeys_stats(clientkeys *cache, uint64_t *hits, uint64_t *misses, size_t *entries);

#endif
