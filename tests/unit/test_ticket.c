/* ticket: sealing, tampering, secrets, expiry, epochs, size limits, binding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/b64.h"
#include "daemon/ticket.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define HOUR_MS ((uint64_t)TICKET_EPOCH_SECONDS * 1000)
#define T0      UINT64_C(1764100000000)

static const uint8_t secret_a[TICKET_SECRET_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const uint8_t secret_b[TICKET_SECRET_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12};

static void claims_for(ticket_claims *c, const char *path, uint64_t issued)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(uuid7_new_at(&c->delivery, issued), 0);
    for (int i = 0; i < 32; i++)
        c->sha256[i] = (uint8_t)(0xa0 + i);
    c->size = 123456789;
    memcpy(c->delivered_sha256, c->sha256, 32); /* sent as stored */
    c->delivered_size = c->size;
    c->kind = 3;
    c->issued_ms = issued;
    c->expires_ms = issued + 7 * 24 * HOUR_MS;
    c->path_len = strlen(path);
    memcpy(c->path, path, c->path_len + 1);
}

static void assert_same(const ticket_claims *a, const ticket_claims *b)
{
    assert_memory_equal(a->delivery.bytes, b->delivery.bytes, 16);
    assert_memory_equal(a->sha256, b->sha256, 32);
    assert_int_equal(a->size, b->size);
    assert_memory_equal(a->delivered_sha256, b->delivered_sha256, 32);
    assert_int_equal(a->delivered_size, b->delivered_size);
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->issued_ms, b->issued_ms);
    assert_int_equal(a->expires_ms, b->expires_ms);
    assert_int_equal(a->bound, b->bound);
    if (a->bound)
        assert_memory_equal(a->client_id, b->client_id, 32);
    assert_int_equal(a->path_len, b->path_len);
    assert_string_equal(a->path, b->path);
}

static void test_seal_open(void **state)
{
    ticket_sealer *s = ticket_sealer_new(secret_a);
    ticket_claims c, got;
    char t[TICKET_MAX_LEN + 1], t2[TICKET_MAX_LEN + 1];
    size_t n = 0, n2 = 0;

    (void)state;
    claims_for(&c, "/docs/terms.html", T0);
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_OK);
    assert_int_equal(strlen(t), n);
    assert_int_equal(ticket_open(s, t, n, T0 + 1000, &got), TICKET_OK);
    assert_same(&c, &got);
    /* Fresh nonce: the same claims never give the same ticket. */
    assert_int_equal(ticket_seal(s, &c, t2, &n2), TICKET_OK);
    assert_string_not_equal(t, t2);
    /* Empty path. */
    claims_for(&c, "", T0);
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_OK);
    assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_OK);
    assert_same(&c, &got);
    ticket_sealer_free(s);
    ticket_sealer_free(NULL);
}

static void test_tamper_every_byte(void **state)
{
    ticket_sealer *s = ticket_sealer_new(secret_a);
    ticket_claims c, got;
    char t[TICKET_MAX_LEN + 1];
    char e[TICKET_MAX_LEN + 1];
    uint8_t raw[TICKET_MAX_LEN];
    size_t n = 0;
    long rawlen;

    (void)state;
    claims_for(&c, "/a/b.bin", T0);
    c.bound = true;
    memset(c.client_id, 0x5a, 32);
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_OK);
    rawlen = b64url_decode(t, n, raw, sizeof(raw));
    assert_true(rawlen > 0);
    for (long i = 0; i < rawlen; i++) {
        for (int bit = 0; bit < 8; bit++) {
            size_t en;

            raw[i] ^= (uint8_t)(1 << bit);
            en = b64url_encode(raw, (size_t)rawlen, e);
            assert_int_equal(ticket_open(s, e, en, T0, &got), TICKET_INVALID);
            raw[i] ^= (uint8_t)(1 << bit);
        }
    }
    /* Truncated and extended. */
    assert_int_equal(ticket_open(s, t, n - 1, T0, &got), TICKET_INVALID);
    assert_int_equal(ticket_open(s, t, n - 4, T0, &got), TICKET_INVALID);
    assert_int_equal(ticket_open(s, t, 10, T0, &got), TICKET_INVALID);
    assert_int_equal(ticket_open(s, "", 0, T0, &got), TICKET_INVALID);
    memcpy(e, t, n);
    memcpy(e + n, "AAAA", 5);
    assert_int_equal(ticket_open(s, e, n + 4, T0, &got), TICKET_INVALID);
    /* Not base64url. */
    memcpy(e, t, n + 1);
    e[5] = '+';
    assert_int_equal(ticket_open(s, e, n, T0, &got), TICKET_INVALID);
    ticket_sealer_free(s);
}

static void test_wrong_version(void **state)
{
    ticket_sealer *s = ticket_sealer_new(secret_a);
    ticket_claims c, got;
    char t[TICKET_MAX_LEN + 1];
    uint8_t raw[TICKET_MAX_LEN];
    size_t n = 0;
    long rawlen;

    (void)state;
    claims_for(&c, "/v", T0);
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_OK);
    rawlen = b64url_decode(t, n, raw, sizeof(raw));
    assert_int_equal(raw[0], 3);
    for (int v = 0; v < 256; v += 1) {
        if (v == 3)
            continue;
        raw[0] = (uint8_t)v; /* 1 and 2 too: the version is authenticated */
        n = b64url_encode(raw, (size_t)rawlen, t);
        assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_INVALID);
    }
    ticket_sealer_free(s);
}

/*
 * A version 1 ticket (sealed by receiptd before key tags, with secret_a)
 * still opens: tickets issued before an upgrade stay valid until they
 * expire. Its bytes are fixed here; nothing seals version 1 any more.
 */
static void test_version_1_opens(void **state)
{
    static const char v1[] =
        "AQAHeisaWjoiHvMPqEtlLNMloa8Q1Z1h5bU4OZkdJwM0AYx2NbEAOWcdUp84uERfc-d6OJUQ-"
        "5k24N0LaKV8ArTWDYj"
        "z0pqknOBq3QVCD6RFKoN4boY2qdTuLBcoCb_uJ-23tjRNl-cPN1NzDnx51uXTmYfagDSbr3pWFD-3q30hEALfgMSfz"
        "QFMQbtUh4c9Lf-S2afzN1VZX00";
    ticket_sealer *s = ticket_sealer_new(secret_a);
    ticket_sealer *other = ticket_sealer_new(secret_b);
    ticket_claims got;
    (void)state;
    assert_int_equal(ticket_open(s, v1, strlen(v1), T0, &got), TICKET_OK);
    assert_string_equal(got.path, "/docs/terms.html");
    assert_int_equal(got.size, 123456789);
    assert_int_equal(got.issued_ms, T0);
    assert_true(got.bound);
    assert_int_equal(got.client_id[0], 0xee);
    assert_int_equal(got.delivery.bytes[0], 0x10);
    assert_int_equal(ticket_open(other, v1, strlen(v1), T0, &got), TICKET_INVALID);
    ticket_sealer_free(s);
    ticket_sealer_free(other);
}

/*
 * Two sealers of one secret (two nodes, or two starts of one): each seals
 * under keys of its own, its key tag in the header and in the derivation,
 * and each opens the other's tickets. A ticket moved to another key tag
 * does not open.
 */
static void test_key_tags(void **state)
{
    ticket_sealer *a = ticket_sealer_new(secret_a);
    ticket_sealer *b = ticket_sealer_new(secret_a);
    ticket_claims c, got;
    char ta[TICKET_MAX_LEN + 1], tb[TICKET_MAX_LEN + 1];
    uint8_t ra[TICKET_MAX_LEN], rb[TICKET_MAX_LEN];
    size_t na = 0, nb = 0;
    (void)state;
    claims_for(&c, "/shared", T0);
    assert_int_equal(ticket_seal(a, &c, ta, &na), TICKET_OK);
    assert_int_equal(ticket_seal(b, &c, tb, &nb), TICKET_OK);
    long la = b64url_decode(ta, na, ra, sizeof(ra));
    long lb = b64url_decode(tb, nb, rb, sizeof(rb));
    assert_int_equal(la, lb);
    assert_memory_equal(ra + 1, rb + 1, 4);     /* the same epoch */
    assert_memory_not_equal(ra + 5, rb + 5, 4); /* keys of their own */
    assert_int_equal(ticket_open(b, ta, na, T0, &got), TICKET_OK);
    assert_same(&c, &got);
    assert_int_equal(ticket_open(a, tb, nb, T0, &got), TICKET_OK);
    /* The key tag is authenticated, and names the key: another one fails. */
    memcpy(ra + 5, rb + 5, 4);
    na = b64url_encode(ra, (size_t)la, ta);
    assert_int_equal(ticket_open(a, ta, na, T0, &got), TICKET_INVALID);
    ticket_sealer_free(a);
    ticket_sealer_free(b);
}

static void test_wrong_secret(void **state)
{
    ticket_sealer *a = ticket_sealer_new(secret_a);
    ticket_sealer *b = ticket_sealer_new(secret_b);
    ticket_claims c, got;
    char t[TICKET_MAX_LEN + 1];
    size_t n = 0;

    (void)state;
    claims_for(&c, "/x", T0);
    assert_int_equal(ticket_seal(a, &c, t, &n), TICKET_OK);
    assert_int_equal(ticket_open(b, t, n, T0, &got), TICKET_INVALID);
    assert_int_equal(ticket_open(a, t, n, T0, &got), TICKET_OK);
    /* A sealer freed and made again with another secret must not reuse cached keys. */
    ticket_sealer_free(a);
    a = ticket_sealer_new(secret_b);
    assert_int_equal(ticket_open(a, t, n, T0, &got), TICKET_INVALID);
    ticket_sealer_free(a);
    ticket_sealer_free(b);
}

static void test_expiry(void **state)
{
    ticket_sealer *s = ticket_sealer_new(secret_a);
    ticket_claims c, got;
    char t[TICKET_MAX_LEN + 1];
    size_t n = 0;

    (void)state;
    claims_for(&c, "/e", T0);
    c.expires_ms = T0 + 5000;
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_OK);
    assert_int_equal(ticket_open(s, t, n, T0 + 4999, &got), TICKET_OK);
    memset(&got, 0, sizeof(got));
    assert_int_equal(ticket_open(s, t, n, T0 + 5000, &got), TICKET_EXPIRED);
    /* Authentic but late: the claims are still there for the caller. */
    assert_same(&c, &got);
    ticket_sealer_free(s);
}

static void test_epochs(void **state)
{
    ticket_sealer *s = ticket_sealer_new(secret_a);
    ticket_claims c1, c2, got;
    char t1[TICKET_MAX_LEN + 1], t2[TICKET_MAX_LEN + 1];
    uint8_t r1[TICKET_MAX_LEN], r2[TICKET_MAX_LEN];
    size_t n1 = 0, n2 = 0;
    uint64_t e0 = T0 / HOUR_MS * HOUR_MS;

    (void)state;
    /* Last millisecond of one epoch and first of the next. */
    claims_for(&c1, "/same", e0 + HOUR_MS - 1);
    claims_for(&c2, "/same", e0 + HOUR_MS);
    memcpy(c2.delivery.bytes, c1.delivery.bytes, 16);
    assert_int_equal(ticket_seal(s, &c1, t1, &n1), TICKET_OK);
    assert_int_equal(ticket_seal(s, &c2, t2, &n2), TICKET_OK);
    b64url_decode(t1, n1, r1, sizeof(r1));
    b64url_decode(t2, n2, r2, sizeof(r2));
    assert_int_equal((r1[1] << 24 | r1[2] << 16 | r1[3] << 8 | r1[4]) + 1,
                     r2[1] << 24 | r2[2] << 16 | r2[3] << 8 | r2[4]);
    /* Opened many epochs later, while not expired. */
    assert_int_equal(ticket_open(s, t1, n1, e0 + 100 * HOUR_MS, &got), TICKET_OK);
    assert_same(&c1, &got);
    assert_int_equal(ticket_open(s, t2, n2, e0 + 100 * HOUR_MS, &got), TICKET_OK);
    /* Two epochs give two keys: moving a ticket to the next epoch breaks it. */
    r1[4] = (uint8_t)(r1[4] + 1);
    n1 = b64url_encode(r1, (size_t)b64url_decoded_max(n1), t1);
    assert_int_equal(ticket_open(s, t1, n1, e0, &got), TICKET_INVALID);
    /* More epochs than the per-thread cache holds, then back to the first. */
    for (uint64_t i = 0; i < 10; i++) {
        claims_for(&c1, "/cache", e0 + i * HOUR_MS);
        assert_int_equal(ticket_seal(s, &c1, t1, &n1), TICKET_OK);
        assert_int_equal(ticket_open(s, t1, n1, e0 + i * HOUR_MS, &got), TICKET_OK);
    }
    assert_int_equal(ticket_open(s, t2, n2, e0 + 10 * HOUR_MS, &got), TICKET_OK);
    /* An epoch from the future is forged: refused before any key is made. */
    claims_for(&c1, "/future", e0 + 5 * HOUR_MS);
    assert_int_equal(ticket_seal(s, &c1, t1, &n1), TICKET_OK);
    assert_int_equal(ticket_open(s, t1, n1, e0 + 4 * HOUR_MS, &got), TICKET_OK);
    assert_int_equal(ticket_open(s, t1, n1, e0 + 3 * HOUR_MS, &got), TICKET_INVALID);
    ticket_sealer_free(s);
}

static void test_path_limits(void **state)
{
    ticket_sealer *s = ticket_sealer_new(secret_a);
    ticket_claims c, got;
    char t[TICKET_MAX_LEN + 1];
    char path[TICKET_PATH_MAX + 2];
    char longer[TICKET_MAX_LEN + 5];
    size_t n = 0;

    (void)state;
    memset(path, 'p', sizeof(path));
    path[0] = '/';
    path[TICKET_PATH_MAX] = '\0';
    claims_for(&c, path, T0);
    c.bound = true; /* the largest claims: bound, injected, longest path */
    memset(c.client_id, 0xee, 32);
    memset(c.delivered_sha256, 0xdd, 32);
    c.delivered_size = UINT64_MAX;
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_OK);
    assert_true(n <= TICKET_MAX_LEN);
    assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_OK);
    assert_same(&c, &got);

    c.path_len = TICKET_PATH_MAX + 1;
    c.path[TICKET_PATH_MAX] = '\0'; /* the field cannot hold more; the length says it all */
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_TOO_LONG);

    /* A NUL inside the path is not a path. */
    claims_for(&c, "/abc", T0);
    c.path[2] = '\0';
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_INVALID);

    /* Anything longer than TICKET_MAX_LEN is refused before decoding. */
    memset(longer, 'A', sizeof(longer));
    assert_int_equal(ticket_open(s, longer, TICKET_MAX_LEN + 4, T0, &got), TICKET_INVALID);
    ticket_sealer_free(s);
}

static void test_bound_client(void **state)
{
    ticket_sealer *s = ticket_sealer_new(secret_a);
    ticket_claims c, got;
    char t[TICKET_MAX_LEN + 1];
    size_t n = 0;

    (void)state;
    claims_for(&c, "/bound", T0);
    c.bound = true;
    for (int i = 0; i < 32; i++)
        c.client_id[i] = (uint8_t)(255 - i);
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_OK);
    assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_OK);
    assert_true(got.bound);
    assert_same(&c, &got);
    c.bound = false;
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_OK);
    assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_OK);
    assert_false(got.bound);
    ticket_sealer_free(s);
}

/* Kinds and the delivered digest: carried when they differ from the
 * stored file's, and what the flags say matches what follows. */
static void test_kind_and_delivered(void **state)
{
    ticket_sealer *s = ticket_sealer_new(secret_a);
    ticket_claims c, got;
    char t[TICKET_MAX_LEN + 1], same[TICKET_MAX_LEN + 1];
    size_t n = 0, n_same = 0;

    (void)state;
    for (uint8_t kind = 0; kind < 8; kind++) {
        claims_for(&c, "/kind.html", T0);
        c.kind = kind;
        assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_OK);
        assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_OK);
        assert_same(&c, &got);
    }
    claims_for(&c, "/kind.html", T0);
    c.kind = 8; /* three bits */
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_INVALID);

    claims_for(&c, "/page.html", T0);
    assert_int_equal(ticket_seal(s, &c, same, &n_same), TICKET_OK);
    c.delivered_sha256[0] ^= 1;
    c.delivered_size = c.size + 48;
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_OK);
    uint8_t raw[TICKET_MAX_LEN], raw_same[TICKET_MAX_LEN];
    assert_int_equal(b64url_decode(t, n, raw, sizeof raw),
                     b64url_decode(same, n_same, raw_same, sizeof raw_same) + 40);
    assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_OK);
    assert_same(&c, &got);
    /* The same digest, another size: still carried. */
    claims_for(&c, "/page.html", T0);
    c.delivered_size = 1;
    assert_int_equal(ticket_seal(s, &c, t, &n), TICKET_OK);
    assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_OK);
    assert_same(&c, &got);
    ticket_sealer_free(s);
}

/*
 * Tickets of versions 1 and 2, sealed here the way the servers before
 * version 3 sealed them (version 2 with a key tag in the header and the
 * derivation), still open: no kind, and the stored digest is the delivered
 * one.
 */
static void seal_old(int version, const uint8_t secret[TICKET_SECRET_LEN], const uint8_t *pt,
                     size_t ptlen, uint64_t issued, char *out, size_t *out_len)
{
    static const uint8_t key_tag[4] = {0xde, 0xad, 0xbe, 0xef};
    uint8_t raw[400], key[32];
    uint32_t epoch = (uint32_t)(issued / HOUR_MS);
    char info[48];
    int ilen = version == 1 ? snprintf(info, sizeof info, "epoch %u", (unsigned)epoch)
                            : snprintf(info, sizeof info, "epoch %u key deadbeef", (unsigned)epoch);
    size_t header = version == 1 ? 17 : 21;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, TICKET_SECRET_LEN),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, "receipt/v1 ticket", 17),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, (size_t)ilen),
        OSSL_PARAM_construct_end(),
    };
    assert_int_equal(EVP_KDF_derive(kctx, key, sizeof key, params), 1);
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    raw[0] = (uint8_t)version;
    raw[1] = (uint8_t)(epoch >> 24);
    raw[2] = (uint8_t)(epoch >> 16);
    raw[3] = (uint8_t)(epoch >> 8);
    raw[4] = (uint8_t)epoch;
    if (version == 2)
        memcpy(raw + 5, key_tag, 4);
    memset(raw + header - 12, 0x42, 12);
    EVP_CIPHER_CTX *cctx = EVP_CIPHER_CTX_new();
    int len = 0;
    assert_int_equal(EVP_EncryptInit_ex(cctx, EVP_aes_256_gcm(), NULL, key, raw + header - 12), 1);
    assert_int_equal(EVP_EncryptUpdate(cctx, NULL, &len, raw, (int)header), 1);
    assert_int_equal(EVP_EncryptUpdate(cctx, raw + header, &len, pt, (int)ptlen), 1);
    assert_int_equal(EVP_EncryptFinal_ex(cctx, raw + header + len, &len), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG, 16, raw + header + ptlen), 1);
    EVP_CIPHER_CTX_free(cctx);
    *out_len = b64url_encode(raw, header + ptlen + 16, out);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void test_old_versions(void **state)
{
    ticket_sealer *s = ticket_sealer_new(secret_a);
    ticket_claims c, got;
    uint8_t pt[400];
    char t[TICKET_MAX_LEN + 1];
    size_t n = 0, o = 0;

    (void)state;
    claims_for(&c, "/old.html", T0);
    pt[o++] = 1; /* bound */
    memcpy(pt + o, c.delivery.bytes, 16);
    o += 16;
    memcpy(pt + o, c.sha256, 32);
    o += 32;
    put_be64(pt + o, c.size);
    put_be64(pt + o + 8, c.issued_ms);
    put_be64(pt + o + 16, c.expires_ms);
    o += 24;
    memset(pt + o, 0xcc, 32);
    o += 32;
    pt[o++] = (uint8_t)c.path_len;
    memcpy(pt + o, c.path, c.path_len);
    o += c.path_len;
    for (int version = 1; version <= 2; version++) {
        pt[0] = 1;
        seal_old(version, secret_a, pt, o, T0, t, &n);
        assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_OK);
        assert_int_equal(got.kind, TICKET_KIND_NONE);
        assert_true(got.bound);
        assert_memory_equal(got.sha256, c.sha256, 32);
        assert_memory_equal(got.delivered_sha256, c.sha256, 32);
        assert_int_equal(got.delivered_size, c.size);
        assert_string_equal(got.path, "/old.html");

        /* They knew bit 0 of the flags only. */
        pt[0] = 1 | 2;
        seal_old(version, secret_a, pt, o, T0, t, &n);
        assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_INVALID);
    }
    /* Their paths were up to 240 bytes; those over today's limit no longer open. */
    pt[0] = 0;
    uint8_t *len_at = pt + 73;
    size_t plen = TICKET_PATH_MAX + 1;
    *len_at = (uint8_t)plen;
    memset(len_at + 1, 'p', plen);
    seal_old(2, secret_a, pt, 74 + plen, T0, t, &n);
    assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_INVALID);
    *len_at = (uint8_t)(plen - 1);
    seal_old(2, secret_a, pt, 74 + plen - 1, T0, t, &n);
    assert_int_equal(ticket_open(s, t, n, T0, &got), TICKET_OK);
    assert_int_equal(got.path_len, TICKET_PATH_MAX);
    ticket_sealer_free(s);
}

#define THREADS 4

struct job {
    ticket_sealer *s;
    int failures;
};

static void *worker(void *arg)
{
    struct job *j = arg;

    for (int i = 0; i < 500; i++) {
        ticket_claims c, got;
        char t[TICKET_MAX_LEN + 1];
        size_t n = 0;
        uint64_t issued = T0 + (uint64_t)(i % 7) * HOUR_MS;

        memset(&c, 0, sizeof(c));
        c.issued_ms = issued;
        c.expires_ms = issued + HOUR_MS * 24;
        c.size = (uint64_t)i;
        if (ticket_seal(j->s, &c, t, &n) != TICKET_OK ||
            ticket_open(j->s, t, n, issued, &got) != TICKET_OK || got.size != (uint64_t)i)
            j->failures++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    ticket_sealer *s = ticket_sealer_new(secret_a);
    pthread_t t[THREADS];
    struct job jobs[THREADS];

    (void)state;
    for (int i = 0; i < THREADS; i++) {
        jobs[i].s = s;
        jobs[i].failures = 0;
        assert_int_equal(pthread_create(&t[i], NULL, worker, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].failures, 0);
    }
    ticket_sealer_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_open),       cmocka_unit_test(test_tamper_every_byte),
        cmocka_unit_test(test_wrong_version),   cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_version_1_opens), cmocka_unit_test(test_key_tags),
        cmocka_unit_test(test_expiry),          cmocka_unit_test(test_epochs),
        cmocka_unit_test(test_path_limits),     cmocka_unit_test(test_bound_client),
        cmocka_unit_test(test_threads),         cmocka_unit_test(test_kind_and_delivered),
        cmocka_unit_test(test_old_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
