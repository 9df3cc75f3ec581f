/*
 * rc_jwks: servers' JWK Sets, cached per origin, and the client-server key
 * K derived from them.
 *
 * A client fetches ORIGIN/_receipt/jwks.json once per origin and keeps at
 * most RC_JWKS_ORIGINS_MAX of them (the oldest is dropped). A kid that the
 * cached set does not know makes it fetch the set again, once, so that a
 * server's key rotation is picked up. K is derived once per server key and
 * kept beside the set; it is wiped when the client key changes or the cache
 * is cleared.
 */
#ifndef RECEIPT_LIB_RC_JWKS_H
#define RECEIPT_LIB_RC_JWKS_H

#include "receipt/receipt.h"

#include "common/eckey.h"
#include "common/jose.h"
#include "common/kdf.h"
#include "lib/rc_url.h"

#include <jansson.h>
#include <stdint.h>

#define RC_JWKS_ORIGINS_MAX 8
#define RC_JWKS_DERIVED_MAX 4 /* derived keys kept per origin */
#define RC_JWKS_TEXT_MAX    (64 * 1024)
#define RC_JWKS_KEYS_MAX    32 /* keys in one set */
#define RC_JWKS_PATH        "/_receipt/jwks.json"

typedef struct rc_jwks_derived {
    char kid[JOSE_KID_MAX + 1];
    uint8_t k[KDF_KEY_LEN];
} rc_jwks_derived;

typedef struct rc_jwks_entry {
    char origin[RC_ORIGIN_MAX];
    char *text; /* the set as the server sent it (for the spool) */
    json_t *set;
    rc_jwks_derived derived[RC_JWKS_DERIVED_MAX];
    size_t nderived;
} rc_jwks_entry;

typedef struct rc_jwks_cache {
    rc_jwks_entry *entries[RC_JWKS_ORIGINS_MAX];
    size_t next; /* the slot to reuse when full */
} rc_jwks_cache;

/* Parses a JWK Set: an object whose "keys" is an array of at most
 * RC_JWKS_KEYS_MAX objects. Returns a new reference or NULL. */
json_t *rc_jwks_parse(const char *text, size_t n, char *err, size_t errlen);

/*
 * The P-256 public key of set with this kid, whose "use", when present,
 * is use ("enc" or "sig"). Returns a new eckey or NULL.
 */
eckey *rc_jwks_find(const json_t *set, const char *kid, const char *use);

/*
 * The cached entry for origin, fetched when missing or when refresh is
 * set. Borrowed: valid until the next call that may fetch.
 */
receipt_result rc_jwks_get(receipt_client *c, const char *origin, bool refresh,
                           rc_jwks_entry **out);

/*
 * K for the server encryption key skid of origin (fetching the set again
 * once if it does not name skid), with the client's key.
 */
receipt_result rc_jwks_derive(receipt_client *c, const char *origin, const char *skid,
                              uint8_t k[KDF_KEY_LEN]);

/* Wipes the derived keys (the client key changed). */
void rc_jwks_cache_forget_keys(rc_jwks_cache *cache);

/* Frees every entry. */
void rc_jwks_cache_clear(rc_jwks_cache *cache);

#endif
