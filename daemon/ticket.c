/*
 * Claims plaintext, version 3 (all integers big-endian):
 *
 *   size  field
 *      1  flags: bit 0 bound (client_id follows); bit 1 the delivered bytes
 *         differ from the stored ones (their digest and size follow);
 *         bits 2-4 the kind (a ledger_kind); bits 5-7 zero
 *     16  delivery ID
 *     32  sha256 of the stored content (the version)
 *      8  its size
 *      8  issued_ms
 *      8  expires_ms
 *     32  client_id (raw SHA-256 thumbprint), only when bound
 *   32+8  sha256 and size of the delivered bytes, only when they differ
 *      1  path length L, 0..TICKET_PATH_MAX
 *      L  path bytes (no NUL)
 *
 * Fixed widths keep the parser trivial; the largest claims (bound,
 * injected, a 200-byte path) are 346 bytes, so a ticket is at most
 * 21 + 346 + 16 = 383 bytes, 511 characters of base64url, within
 * TICKET_MAX_LEN. A plaintext whose length does not match its own fields
 * exactly is refused.
 *
 * Versions 1 and 2, still opened for the tickets issued before: the
 * claims have no kind and no delivered digest (the flags' bit 0 only), and
 * paths of up to 240 bytes (those over TICKET_PATH_MAX no longer open).
 */
#include "daemon/ticket.h"
#include "common/rnd.h"

#include "common/b64.h"
#include "common/jose.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICKET_VERSION        3
#define TICKET_V2             2  /* the key tag, claims without kind: opened, never sealed */
#define TICKET_V1             1  /* no key tag either */
#define TICKET_HEADER_LEN     21 /* version, epoch, key tag, nonce */
#define TICKET_V1_HEADER      17 /* version, epoch, nonce */
#define TICKET_KEY_TAG_LEN    4
#define TICKET_NONCE_LEN      12
#define TICKET_TAG_LEN        16
#define TICKET_KEY_LEN        32
#define TICKET_FLAG_BOUND     0x01
#define TICKET_FLAG_DELIVERED 0x02
#define TICKET_KIND_SHIFT     2
#define TICKET_KIND_MASK      0x1c
#define TICKET_CLAIMS_FIXED   74 /* flags .. expires_ms, plus the path length byte */
#define TICKET_DELIVERED_LEN  40 /* sha256 and size of the bytes sent */
#define TICKET_CLAIMS_MAX     (TICKET_CLAIMS_FIXED + 32 + TICKET_DELIVERED_LEN + TICKET_PATH_MAX)
#define TICKET_OLD_CLAIMS_MAX (TICKET_CLAIMS_FIXED + 32 + 240) /* versions 1 and 2 */
#define TICKET_RAW_MAX        (TICKET_HEADER_LEN + TICKET_CLAIMS_MAX + TICKET_TAG_LEN)
#define TICKET_EPOCH_MS       ((uint64_t)TICKET_EPOCH_SECONDS * 1000)
#define TICKET_CACHE_SLOTS    16 /* epochs and key tags: tickets of several nodes */
#define TICKET_SALT           "receipt/v1 ticket"

_Static_assert((TICKET_RAW_MAX + 2) / 3 * 4 <= TICKET_MAX_LEN, "largest ticket must fit");
_Static_assert(TICKET_OLD_CLAIMS_MAX <= TICKET_CLAIMS_MAX,
               "one buffer holds the claims of any version");

struct ticket_sealer {
    uint64_t id;
    uint8_t key_tag[TICKET_KEY_TAG_LEN]; /* this sealer's keys, among all that share the secret */
    uint8_t secret[TICKET_SECRET_LEN];
};

/*
 * Per-thread state: a cipher context and the last few epoch keys. Entries
 * are keyed by sealer id, never by address, so a sealer freed and another
 * allocated in its place cannot inherit keys.
 */
typedef struct ticket_slot {
    uint64_t sealer_id;
    uint32_t epoch;
    bool tagged; /* version 2: key_tag is part of the derivation */
    uint8_t key_tag[TICKET_KEY_TAG_LEN];
    uint8_t key[TICKET_KEY_LEN];
} ticket_slot;

typedef struct ticket_tls {
    ticket_slot slot[TICKET_CACHE_SLOTS];
    unsigned next;
} ticket_tls;

static pthread_once_t ticket_once = PTHREAD_ONCE_INIT;
static EVP_KDF *ticket_hkdf;
static pthread_key_t ticket_tls_key;
static bool ticket_ready;
static _Atomic uint64_t ticket_next_id = 1;

static void ticket_tls_destroy(void *p)
{
    ticket_tls *tls = p;

    OPENSSL_cleanse(tls, sizeof(*tls));
    free(tls);
}

static void ticket_init(void)
{
    ticket_hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    ticket_ready =
        ticket_hkdf != NULL && pthread_key_create(&ticket_tls_key, ticket_tls_destroy) == 0;
}

static ticket_tls *ticket_thread(void)
{
    ticket_tls *tls;

    pthread_once(&ticket_once, ticket_init);
    if (!ticket_ready)
        return NULL;
    tls = pthread_getspecific(ticket_tls_key);
    if (tls != NULL)
        return tls;
    tls = calloc(1, sizeof(*tls));
    if (tls == NULL)
        return NULL;
    if (pthread_setspecific(ticket_tls_key, tls) != 0) {
        free(tls);
        return NULL;
    }
    return tls;
}

/* The key of an epoch and key tag (NULL: a version 1 ticket, which has none). */
static int ticket_derive(const ticket_sealer *sealer, uint32_t epoch, const uint8_t *key_tag,
                         uint8_t key[TICKET_KEY_LEN])
{
    char info[48];
    int ilen = key_tag == NULL
                   ? snprintf(info, sizeof(info), "epoch %u", (unsigned)epoch)
                   : snprintf(info, sizeof(info), "epoch %u key %02x%02x%02x%02x", (unsigned)epoch,
                              key_tag[0], key_tag[1], key_tag[2], key_tag[3]);
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[5];
    int rc = -1;

    if (ilen < 0 || (size_t)ilen >= sizeof(info))
        return -1;
    kctx = EVP_KDF_CTX_new(ticket_hkdf);
    if (kctx == NULL)
        goto out;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)sealer->secret,
                                                  TICKET_SECRET_LEN);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, TICKET_SALT,
                                                  sizeof(TICKET_SALT) - 1);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, (size_t)ilen);
    params[4] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, key, TICKET_KEY_LEN, params) == 1)
        rc = 0;
out:
    EVP_KDF_CTX_free(kctx);
    if (rc != 0)
        ERR_clear_error();
    return rc;
}

/* The key of an epoch and key tag (NULL: version 1) from this thread's
 * cache, derived on a miss. */
static const uint8_t *ticket_key(ticket_tls *tls, const ticket_sealer *sealer, uint32_t epoch,
                                 const uint8_t *key_tag)
{
    ticket_slot *slot;

    for (unsigned i = 0; i < TICKET_CACHE_SLOTS; i++) {
        slot = &tls->slot[i];
        if (slot->sealer_id == sealer->id && slot->epoch == epoch &&
            slot->tagged == (key_tag != NULL) &&
            (key_tag == NULL || memcmp(slot->key_tag, key_tag, TICKET_KEY_TAG_LEN) == 0))
            return slot->key;
    }
    slot = &tls->slot[tls->next];
    tls->next = (tls->next + 1) % TICKET_CACHE_SLOTS;
    slot->sealer_id = 0;
    if (ticket_derive(sealer, epoch, key_tag, slot->key) != 0)
        return NULL;
    slot->sealer_id = sealer->id;
    slot->epoch = epoch;
    slot->tagged = key_tag != NULL;
    if (key_tag != NULL)
        memcpy(slot->key_tag, key_tag, TICKET_KEY_TAG_LEN);
    return slot->key;
}

ticket_sealer *ticket_sealer_new(const uint8_t secret[TICKET_SECRET_LEN])
{
    ticket_sealer *sealer;

    if (secret == NULL)
        return NULL;
    sealer = calloc(1, sizeof(*sealer));
    if (sealer == NULL)
        return NULL;
    sealer->id = atomic_fetch_add(&ticket_next_id, 1);
    if (rnd_bytes(sealer->key_tag, TICKET_KEY_TAG_LEN) != 0) {
        free(sealer);
        return NULL;
    }
    memcpy(sealer->secret, secret, TICKET_SECRET_LEN);
    return sealer;
}

void ticket_sealer_free(ticket_sealer *sealer)
{
    if (sealer == NULL)
        return;
    OPENSSL_cleanse(sealer, sizeof(*sealer));
    free(sealer);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static bool delivered_differs(const ticket_claims *c)
{
    return c->delivered_size != c->size || memcmp(c->delivered_sha256, c->sha256, 32) != 0;
}

static size_t encode_claims(const ticket_claims *c, uint8_t *out)
{
    size_t o = 0;
    bool delivered = delivered_differs(c);

    out[o++] = (uint8_t)((c->bound ? TICKET_FLAG_BOUND : 0) |
                         (delivered ? TICKET_FLAG_DELIVERED : 0) | c->kind << TICKET_KIND_SHIFT);
    memcpy(out + o, c->delivery.bytes, 16);
    o += 16;
    memcpy(out + o, c->sha256, 32);
    o += 32;
    put_u64(out + o, c->size);
    o += 8;
    put_u64(out + o, c->issued_ms);
    o += 8;
    put_u64(out + o, c->expires_ms);
    o += 8;
    if (c->bound) {
        memcpy(out + o, c->client_id, 32);
        o += 32;
    }
    if (delivered) {
        memcpy(out + o, c->delivered_sha256, 32);
        o += 32;
        put_u64(out + o, c->delivered_size);
        o += 8;
    }
    out[o++] = (uint8_t)c->path_len;
    memcpy(out + o, c->path, c->path_len);
    return o + c->path_len;
}

static bool decode_claims(uint8_t version, const uint8_t *in, size_t n, ticket_claims *c)
{
    size_t o = 0;
    size_t plen;
    bool current = version == TICKET_VERSION;
    uint8_t known =
        current ? TICKET_FLAG_BOUND | TICKET_FLAG_DELIVERED | TICKET_KIND_MASK : TICKET_FLAG_BOUND;

    memset(c, 0, sizeof(*c));
    if (n < TICKET_CLAIMS_FIXED || (in[0] & ~known) != 0)
        return false;
    uint8_t flags = in[o++];
    c->bound = (flags & TICKET_FLAG_BOUND) != 0;
    c->kind =
        current ? (uint8_t)((flags & TICKET_KIND_MASK) >> TICKET_KIND_SHIFT) : TICKET_KIND_NONE;
    memcpy(c->delivery.bytes, in + o, 16);
    o += 16;
    memcpy(c->sha256, in + o, 32);
    o += 32;
    c->size = get_u64(in + o);
    o += 8;
    c->issued_ms = get_u64(in + o);
    o += 8;
    c->expires_ms = get_u64(in + o);
    o += 8;
    if (c->bound) {
        if (n < o + 32 + 1)
            return false;
        memcpy(c->client_id, in + o, 32);
        o += 32;
    }
    if (flags & TICKET_FLAG_DELIVERED) {
        if (n < o + TICKET_DELIVERED_LEN + 1)
            return false;
        memcpy(c->delivered_sha256, in + o, 32);
        o += 32;
        c->delivered_size = get_u64(in + o);
        o += 8;
    } else {
        memcpy(c->delivered_sha256, c->sha256, 32);
        c->delivered_size = c->size;
    }
    plen = in[o++];
    if (plen > TICKET_PATH_MAX || n != o + plen || memchr(in + o, '\0', plen) != NULL)
        return false;
    memcpy(c->path, in + o, plen);
    c->path[plen] = '\0';
    c->path_len = plen;
    return true;
}

ticket_result ticket_seal(ticket_sealer *sealer, const ticket_claims *claims,
                          char out[TICKET_MAX_LEN + 1], size_t *out_len)
{
    uint8_t raw[TICKET_RAW_MAX];
    uint8_t pt[TICKET_CLAIMS_MAX];
    ticket_tls *tls;
    const uint8_t *key;
    uint64_t epoch64;
    uint32_t epoch;
    size_t ptlen = 0; /* bytes of pt that hold claims */
    ticket_result r = TICKET_INTERNAL;

    if (sealer == NULL || claims == NULL)
        return TICKET_INVALID;
    if (claims->path_len > TICKET_PATH_MAX)
        return TICKET_TOO_LONG;
    if (claims->kind > TICKET_KIND_MASK >> TICKET_KIND_SHIFT)
        return TICKET_INVALID;
    epoch64 = claims->issued_ms / TICKET_EPOCH_MS;
    if (epoch64 > UINT32_MAX || memchr(claims->path, '\0', claims->path_len) != NULL)
        return TICKET_INVALID;
    epoch = (uint32_t)epoch64;
    tls = ticket_thread();
    if (tls == NULL)
        return TICKET_INTERNAL;
    key = ticket_key(tls, sealer, epoch, sealer->key_tag);
    if (key == NULL)
        return TICKET_INTERNAL;

    raw[0] = TICKET_VERSION;
    raw[1] = (uint8_t)(epoch >> 24);
    raw[2] = (uint8_t)(epoch >> 16);
    raw[3] = (uint8_t)(epoch >> 8);
    raw[4] = (uint8_t)epoch;
    memcpy(raw + 5, sealer->key_tag, TICKET_KEY_TAG_LEN);
    uint8_t *nonce = raw + 5 + TICKET_KEY_TAG_LEN;
    if (rnd_bytes(nonce, TICKET_NONCE_LEN) != 0)
        goto out;
    ptlen = encode_claims(claims, pt);
    /* The header (version, epoch, key tag, nonce) is the additional data. */
    if (jose_a256gcm_seal(key, nonce, raw, TICKET_HEADER_LEN, pt, ptlen, raw + TICKET_HEADER_LEN,
                          raw + TICKET_HEADER_LEN + ptlen) != JOSE_OK)
        goto out;
    *out_len = b64url_encode(raw, TICKET_HEADER_LEN + ptlen + TICKET_TAG_LEN, out);
    r = TICKET_OK;
out:
    if (r != TICKET_OK)
        ERR_clear_error();
    OPENSSL_cleanse(pt, ptlen);
    return r;
}

ticket_result ticket_open(ticket_sealer *sealer, const char *text, size_t n, uint64_t now_ms,
                          ticket_claims *claims)
{
    uint8_t raw[TICKET_RAW_MAX];
    uint8_t pt[TICKET_CLAIMS_MAX];
    ticket_tls *tls;
    const uint8_t *key;
    uint32_t epoch;
    size_t ctlen;
    long rawlen;
    ticket_result r = TICKET_INVALID;

    if (sealer == NULL || text == NULL || claims == NULL || n > TICKET_MAX_LEN)
        return TICKET_INVALID;
    rawlen = b64url_decode(text, n, raw, sizeof(raw));
    if (rawlen < 1 || (raw[0] != TICKET_VERSION && raw[0] != TICKET_V2 && raw[0] != TICKET_V1))
        return TICKET_INVALID;
    size_t header = raw[0] != TICKET_V1 ? TICKET_HEADER_LEN : TICKET_V1_HEADER;
    const uint8_t *key_tag = raw[0] != TICKET_V1 ? raw + 5 : NULL;
    if ((size_t)rawlen < header + TICKET_CLAIMS_FIXED + TICKET_TAG_LEN)
        return TICKET_INVALID;
    ctlen = (size_t)rawlen - header - TICKET_TAG_LEN;
    epoch = (uint32_t)raw[1] << 24 | (uint32_t)raw[2] << 16 | (uint32_t)raw[3] << 8 | raw[4];
    /* The epoch is not authenticated yet: one from the future is forged,
     * and must not cost a key derivation or evict a real key. */
    if ((uint64_t)epoch > now_ms / TICKET_EPOCH_MS + 1)
        return TICKET_INVALID;
    tls = ticket_thread();
    if (tls == NULL)
        return TICKET_INTERNAL;
    key = ticket_key(tls, sealer, epoch, key_tag);
    if (key == NULL)
        return TICKET_INTERNAL;
    switch (jose_a256gcm_open(key, raw + header - TICKET_NONCE_LEN, raw, header, raw + header,
                              ctlen, raw + header + ctlen, pt)) {
    case JOSE_OK:
        break;
    case JOSE_DECRYPT:
        goto out; /* TICKET_INVALID: tampered, or another secret */
    default:
        r = TICKET_INTERNAL;
        goto out;
    }
    /* Authentic from here on; the checks below guard against our own bugs. */
    if (!decode_claims(raw[0], pt, ctlen, claims) || claims->issued_ms / TICKET_EPOCH_MS != epoch)
        goto out;
    r = now_ms >= claims->expires_ms ? TICKET_EXPIRED : TICKET_OK;
out:
    if (r != TICKET_OK && r != TICKET_EXPIRED) {
        memset(claims, 0, sizeof(*claims));
        ERR_clear_error();
    }
    OPENSSL_cleanse(pt, sizeof(pt));
    return r;
}
