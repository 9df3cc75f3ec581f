#include "common/jose.h"
#include "common/rnd.h"

#include "common/b64.h"
#include "common/sjson.h"

#include <jansson.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOSE_IV_B64_LEN  16
#define JOSE_TAG_B64_LEN 22
#define JOSE_SIG_B64_LEN 86
#define JOSE_DER_SIG_MAX 80 /* a DER ECDSA P-256 signature is at most 72 bytes */
#define JOSE_MAX_PARTS   5
#define JOSE_TYP         "receipt+jwt"

typedef enum jose_shape {
    JOSE_SHAPE_JWE,
    JOSE_SHAPE_JWS,
} jose_shape;

typedef struct jose_parts {
    const char *p[JOSE_MAX_PARTS];
    size_t len[JOSE_MAX_PARTS];
    size_t count;
} jose_parts;

static pthread_once_t jose_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *jose_gcm;
static EVP_MD *jose_sha256;
static pthread_key_t jose_ctx_key;
static pthread_key_t jose_signer_key;
static bool jose_ready;

/*
 * A thread's ES256 signing context, for the key it last signed with.
 * Making one (EVP_DigestSignInit(): fetching the algorithm, a context
 * holding the key) was a sixth of a receipt's signature. The context holds
 * a reference to its key, so that no other key can take its address while
 * the context remembers it.
 */
typedef struct jose_signer {
    const EVP_PKEY *key;
    EVP_PKEY_CTX *ctx;
} jose_signer;

/*
 * A cipher context that keeps the key it was last set up with. Setting up
 * AES-256-GCM for a key (its round keys and GHASH table) costs more than
 * sealing a ticket, and a thread seals with the same key (the epoch's)
 * request after request: with the key unchanged only the IV is set.
 */
typedef struct jose_gcm_ctx {
    EVP_CIPHER_CTX *ctx;
    uint8_t key[32];
    bool keyed; /* ctx is set up for key, and no operation failed since */
} jose_gcm_ctx;

/*
 * Two contexts a direction: a request alternates between the ticket's key
 * (the epoch's, the same for every request) and a client's K (the plug-in
 * data sealed beside the ticket; the confirmation opened before its
 * ticket). With one context each of those four operations of a cycle set
 * up its key anew; with two, the epoch's key stays set up in one of them.
 */
#define JOSE_GCM_WAYS 2

typedef struct jose_gcm_set {
    jose_gcm_ctx way[JOSE_GCM_WAYS];
    unsigned last; /* the way used last: the other is replaced first */
} jose_gcm_set;

/* One set for each direction, per thread, freed when the thread ends. */
typedef struct jose_thread {
    jose_gcm_set seal;
    jose_gcm_set open;
} jose_thread;

static void jose_ctx_destroy(void *arg)
{
    jose_thread *t = arg;
    for (unsigned i = 0; i < JOSE_GCM_WAYS; i++) {
        EVP_CIPHER_CTX_free(t->seal.way[i].ctx);
        EVP_CIPHER_CTX_free(t->open.way[i].ctx);
    }
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
}

static void jose_signer_destroy(void *arg)
{
    jose_signer *s = arg;
    EVP_PKEY_CTX_free(s->ctx);
    free(s);
}

static void jose_init(void)
{
    jose_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    jose_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    jose_ready = jose_gcm != NULL && jose_sha256 != NULL &&
                 pthread_key_create(&jose_ctx_key, jose_ctx_destroy) == 0 &&
                 pthread_key_create(&jose_signer_key, jose_signer_destroy) == 0;
}

static bool jose_setup(void)
{
    pthread_once(&jose_once, jose_init);
    return jose_ready;
}

static jose_thread *jose_thread_get(void)
{
    jose_thread *t;

    if (!jose_setup())
        return NULL;
    t = pthread_getspecific(jose_ctx_key);
    if (t != NULL)
        return t;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    bool made = true;
    for (unsigned i = 0; i < JOSE_GCM_WAYS; i++) {
        t->seal.way[i].ctx = EVP_CIPHER_CTX_new();
        t->open.way[i].ctx = EVP_CIPHER_CTX_new();
        made = made && t->seal.way[i].ctx != NULL && t->open.way[i].ctx != NULL;
    }
    if (!made || pthread_setspecific(jose_ctx_key, t) != 0) {
        jose_ctx_destroy(t);
        return NULL;
    }
    return t;
}

/* The context of set already set up for key, else the one used less
 * recently (to be set up for it). */
static jose_gcm_ctx *jose_gcm_pick(jose_gcm_set *set, const uint8_t key[32])
{
    unsigned pick = (set->last + 1) % JOSE_GCM_WAYS;
    for (unsigned i = 0; i < JOSE_GCM_WAYS; i++) {
        const jose_gcm_ctx *g = &set->way[i];
        if (g->keyed && CRYPTO_memcmp(g->key, key, sizeof g->key) == 0) {
            pick = i;
            break;
        }
    }
    set->last = pick;
    return &set->way[pick];
}

/* Sets g up for key and iv, encrypting or decrypting; keeps the key's setup
 * when g already has it. The caller sets g->keyed once the operation worked. */
static bool jose_gcm_init(jose_gcm_ctx *g, bool encrypt, const uint8_t key[32],
                          const uint8_t iv[JOSE_IV_LEN])
{
    bool same = g->keyed && CRYPTO_memcmp(g->key, key, sizeof g->key) == 0;
    const EVP_CIPHER *cipher = same ? NULL : jose_gcm;
    const uint8_t *new_key = same ? NULL : key;

    g->keyed = false;
    if ((encrypt ? EVP_EncryptInit_ex2(g->ctx, cipher, new_key, iv, NULL)
                 : EVP_DecryptInit_ex2(g->ctx, cipher, new_key, iv, NULL)) != 1)
        return false;
    if (!same)
        memcpy(g->key, key, sizeof g->key);
    return true;
}

/* The thread's signing context for pkey, made when it signed with another. */
static EVP_PKEY_CTX *jose_signer_ctx(EVP_PKEY *pkey)
{
    jose_signer *s = pthread_getspecific(jose_signer_key);
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return NULL;
        if (pthread_setspecific(jose_signer_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->ctx != NULL && s->key == pkey)
        return s->ctx;
    EVP_PKEY_CTX_free(s->ctx);
    s->ctx = EVP_PKEY_CTX_new(pkey, NULL);
    s->key = pkey;
    if (s->ctx == NULL || EVP_PKEY_sign_init(s->ctx) != 1 ||
        EVP_PKEY_CTX_set_signature_md(s->ctx, jose_sha256) != 1) {
        EVP_PKEY_CTX_free(s->ctx);
        s->ctx = NULL;
        s->key = NULL;
    }
    return s->ctx;
}

const char *jose_result_str(jose_result r)
{
    switch (r) {
    case JOSE_OK:
        return "ok";
    case JOSE_MALFORMED:
        return "malformed JOSE serialisation";
    case JOSE_BAD_HEADER:
        return "protected header not allowed";
    case JOSE_DECRYPT:
        return "authentication failed";
    case JOSE_INTERNAL:
        return "internal error";
    }
    return "unknown";
}

jose_result jose_a256gcm_seal(const uint8_t key[32], const uint8_t iv[JOSE_IV_LEN],
                              const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t n,
                              uint8_t *ct, uint8_t tag[JOSE_TAG_LEN])
{
    jose_thread *t = jose_thread_get();
    int len;

    if (t == NULL || aadlen > INT_MAX || n > INT_MAX)
        return JOSE_INTERNAL;
    jose_gcm_ctx *g = jose_gcm_pick(&t->seal, key);
    EVP_CIPHER_CTX *ctx = g->ctx;
    if (!jose_gcm_init(g, true, key, iv))
        goto fail;
    if (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        goto fail;
    if (n > 0 && (EVP_EncryptUpdate(ctx, ct, &len, pt, (int)n) != 1 || (size_t)len != n))
        goto fail;
    if (EVP_EncryptFinal_ex(ctx, ct + n, &len) != 1 || len != 0 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, JOSE_TAG_LEN, tag) != 1)
        goto fail;
    g->keyed = true;
    return JOSE_OK;
fail:
    ERR_clear_error();
    return JOSE_INTERNAL;
}

jose_result jose_a256gcm_open(const uint8_t key[32], const uint8_t iv[JOSE_IV_LEN],
                              const uint8_t *aad, size_t aadlen, const uint8_t *ct, size_t n,
                              const uint8_t tag[JOSE_TAG_LEN], uint8_t *pt)
{
    jose_thread *t = jose_thread_get();
    uint8_t tagbuf[JOSE_TAG_LEN];
    int len;

    if (t == NULL || aadlen > INT_MAX || n > INT_MAX)
        return JOSE_INTERNAL;
    jose_gcm_ctx *g = jose_gcm_pick(&t->open, key);
    EVP_CIPHER_CTX *ctx = g->ctx;
    memcpy(tagbuf, tag, sizeof(tagbuf));
    if (!jose_gcm_init(g, false, key, iv) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, JOSE_TAG_LEN, tagbuf) != 1)
        goto internal;
    if (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        goto internal;
    if (n > 0 && (EVP_DecryptUpdate(ctx, pt, &len, ct, (int)n) != 1 || (size_t)len != n))
        goto internal;
    /* A wrong tag is the input's fault, not the context's: it stays keyed. */
    g->keyed = true;
    if (EVP_DecryptFinal_ex(ctx, pt + n, &len) != 1) {
        ERR_clear_error();
        return JOSE_DECRYPT;
    }
    return JOSE_OK;
internal:
    ERR_clear_error();
    return JOSE_INTERNAL;
}

/*
 * Header members we write ourselves go into the JSON verbatim, so they are
 * limited to printable ASCII that needs no escaping. The parser holds
 * received members to the same rule, which keeps control bytes out of logs.
 */
static bool jose_ident_ok(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return false;
    }
    return true;
}

static bool jose_cty_ok(const char *cty)
{
    return strcmp(cty, JOSE_CTY_PLUGIN) == 0 || strcmp(cty, JOSE_CTY_CONFIRM) == 0;
}

/* Splits on '.'; count is JOSE_MAX_PARTS + 1 when there are more parts. */
static void jose_split(const char *token, size_t n, jose_parts *parts)
{
    const char *p = token;
    const char *end = token + n;

    parts->count = 0;
    for (;;) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *stop = dot != NULL ? dot : end;

        if (parts->count == JOSE_MAX_PARTS) {
            parts->count++;
            return;
        }
        parts->p[parts->count] = p;
        parts->len[parts->count] = (size_t)(stop - p);
        parts->count++;
        if (dot == NULL)
            return;
        p = dot + 1;
    }
}

static bool jose_copy_member(const json_t *v, char *dst, size_t max)
{
    const char *s;
    size_t len;

    if (!json_is_string(v))
        return false;
    s = json_string_value(v);
    len = json_string_length(v);
    if (!jose_ident_ok(s, len, max))
        return false;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return true;
}

static bool jose_member_is(const json_t *v, const char *want)
{
    return json_is_string(v) && strlen(want) == json_string_length(v) &&
           strcmp(json_string_value(v), want) == 0;
}

/* A member value of the plain reading, checked as jose_copy_member() checks it. */
static bool jose_plain_copy(const char *v, size_t len, char *dst, size_t max)
{
    if (!jose_ident_ok(v, len, max))
        return false;
    memcpy(dst, v, len);
    dst[len] = '\0';
    return true;
}

/*
 * The header as this project's own peers write it, read without a JSON
 * tree (sjson_plain): the members of its shape, each once, as plain
 * strings, with the values the allow-list below takes. True only for a
 * header the allow-list accepts with the same *h; anything else, allowed or
 * not, is for the allow-list to read and decide.
 */
static bool jose_header_plain(char *text, size_t n, jose_shape shape, jose_header *h)
{
    const bool jwe = shape == JOSE_SHAPE_JWE;
    const unsigned all = jwe ? 0x1f : 0x07;
    sjson_plain s = {text, text + n};
    unsigned seen = 0;
    if (!sjson_plain_take(&s, '{'))
        return false;
    for (bool first = true; !sjson_plain_take(&s, '}'); first = false) {
        const char *name, *v;
        size_t name_len, len;
        if ((!first && !sjson_plain_take(&s, ',')) || !sjson_plain_string(&s, &name, &name_len) ||
            !sjson_plain_take(&s, ':') || !sjson_plain_string(&s, &v, &len))
            return false;
        unsigned bit;
        bool ok;
        if (strcmp(name, "alg") == 0) {
            bit = 0x01;
            ok = strcmp(v, jwe ? "dir" : "ES256") == 0;
        } else if (strcmp(name, "kid") == 0) {
            bit = 0x02;
            ok = jose_plain_copy(v, len, h->kid, JOSE_KID_MAX);
        } else if (!jwe && strcmp(name, "typ") == 0) {
            bit = 0x04;
            ok = strcmp(v, JOSE_TYP) == 0;
        } else if (jwe && strcmp(name, "enc") == 0) {
            bit = 0x04;
            ok = strcmp(v, "A256GCM") == 0;
        } else if (jwe && strcmp(name, "skid") == 0) {
            bit = 0x08;
            ok = jose_plain_copy(v, len, h->skid, JOSE_KID_MAX);
        } else if (jwe && strcmp(name, "cty") == 0) {
            bit = 0x10;
            ok = jose_plain_copy(v, len, h->cty, JOSE_CTY_MAX) && jose_cty_ok(h->cty);
        } else {
            return false;
        }
        if (!ok || (seen & bit) != 0)
            return false;
        seen |= bit;
    }
    return sjson_plain_end(&s) && seen == all;
}

/*
 * The allow-list: the header must be one JSON object holding exactly the
 * members of its shape, each once, with the values the protocol allows.
 */
static jose_result jose_parse_header(const char *b64, size_t len, jose_shape shape,
                                     jose_header *out)
{
    uint8_t buf[JOSE_HEADER_MAX];
    jose_header h;
    json_error_t err;
    json_t *obj = NULL;
    const char *name;
    json_t *v;
    long dlen;
    size_t want = shape == JOSE_SHAPE_JWE ? 5 : 3;
    jose_result r = JOSE_BAD_HEADER;

    memset(&h, 0, sizeof(h));
    if (len > b64url_encoded_len(sizeof(buf)))
        return JOSE_BAD_HEADER;
    dlen = b64url_decode(b64, len, buf, sizeof(buf));
    if (dlen <= 0)
        return JOSE_MALFORMED;
    /* The plain reading writes into its text: it reads a copy. */
    char plain[JOSE_HEADER_MAX];
    memcpy(plain, buf, (size_t)dlen);
    if (jose_header_plain(plain, (size_t)dlen, shape, &h)) {
        if (out != NULL)
            *out = h;
        return JOSE_OK;
    }
    memset(&h, 0, sizeof(h));
    obj =
        json_loadb((const char *)buf, (size_t)dlen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (obj == NULL) {
        r = json_error_code(&err) == json_error_duplicate_key ? JOSE_BAD_HEADER : JOSE_MALFORMED;
        goto out;
    }
    if (!json_is_object(obj) || json_object_size(obj) != want)
        goto out;
    json_object_foreach(obj, name, v)
    {
        bool ok;

        if (strcmp(name, "alg") == 0)
            ok = jose_member_is(v, shape == JOSE_SHAPE_JWE ? "dir" : "ES256");
        else if (strcmp(name, "kid") == 0)
            ok = jose_copy_member(v, h.kid, JOSE_KID_MAX);
        else if (shape == JOSE_SHAPE_JWE && strcmp(name, "enc") == 0)
            ok = jose_member_is(v, "A256GCM");
        else if (shape == JOSE_SHAPE_JWE && strcmp(name, "skid") == 0)
            ok = jose_copy_member(v, h.skid, JOSE_KID_MAX);
        else if (shape == JOSE_SHAPE_JWE && strcmp(name, "cty") == 0)
            ok = jose_copy_member(v, h.cty, JOSE_CTY_MAX) && jose_cty_ok(h.cty);
        else if (shape == JOSE_SHAPE_JWS && strcmp(name, "typ") == 0)
            ok = jose_member_is(v, JOSE_TYP);
        else
            ok = false;
        if (!ok)
            goto out;
    }
    /* Exactly `want` members, no duplicates, each one known: all are present. */
    if (out != NULL)
        *out = h;
    r = JOSE_OK;
out:
    json_decref(obj);
    return r;
}

/* Splits a JWE and checks its shape; its header too unless header is NULL
 * (jwe_decrypt_peeked(): jwe_peek() checked it). */
static jose_result jwe_parse(const char *token, size_t n, jose_parts *parts, jose_header *header)
{
    jose_result r;

    if (token == NULL || n == 0 || n > JOSE_TOKEN_MAX)
        return JOSE_MALFORMED;
    jose_split(token, n, parts);
    if (parts->count != 5)
        return JOSE_MALFORMED;
    if (header != NULL) {
        r = jose_parse_header(parts->p[0], parts->len[0], JOSE_SHAPE_JWE, header);
        if (r != JOSE_OK)
            return r;
    }
    /* "dir": the key is K itself, so the encrypted key must be empty. */
    if (parts->len[1] != 0 || parts->len[2] != JOSE_IV_B64_LEN || parts->len[4] != JOSE_TAG_B64_LEN)
        return JOSE_MALFORMED;
    return JOSE_OK;
}

jose_result jwe_encrypt(const uint8_t key[32], const char *kid, const char *skid, const char *cty,
                        const uint8_t *plaintext, size_t n, const uint8_t *iv, char **out)
{
    char header[JOSE_HEADER_MAX];
    uint8_t ivbuf[JOSE_IV_LEN];
    uint8_t tag[JOSE_TAG_LEN];
    uint8_t *ct = NULL;
    char *token = NULL;
    size_t hb, total, o;
    int hlen;
    jose_result r = JOSE_INTERNAL;

    *out = NULL;
    if (kid == NULL || skid == NULL || cty == NULL || (plaintext == NULL && n > 0) ||
        !jose_ident_ok(kid, strlen(kid), JOSE_KID_MAX) ||
        !jose_ident_ok(skid, strlen(skid), JOSE_KID_MAX) || !jose_cty_ok(cty))
        return JOSE_BAD_HEADER;
    if (n > JOSE_TOKEN_MAX)
        return JOSE_MALFORMED;
    hlen = snprintf(header, sizeof(header),
                    "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"%s\",\"skid\":\"%s\","
                    "\"cty\":\"%s\"}",
                    kid, skid, cty);
    if (hlen < 0 || (size_t)hlen >= sizeof(header))
        return JOSE_BAD_HEADER;
    hb = b64url_encoded_len((size_t)hlen);
    total = hb + 2 + JOSE_IV_B64_LEN + 1 + b64url_encoded_len(n) + 1 + JOSE_TAG_B64_LEN;
    if (total > JOSE_TOKEN_MAX)
        return JOSE_MALFORMED;

    if (iv == NULL) {
        if (rnd_bytes(ivbuf, sizeof(ivbuf)) != 0)
            goto out;
        iv = ivbuf;
    }
    token = malloc(total + 1);
    ct = malloc(n > 0 ? n : 1);
    if (token == NULL || ct == NULL)
        goto out;
    o = b64url_encode((const uint8_t *)header, (size_t)hlen, token);
    r = jose_a256gcm_seal(key, iv, (const uint8_t *)token, o, plaintext, n, ct, tag);
    if (r != JOSE_OK)
        goto out;
    token[o++] = '.';
    token[o++] = '.';
    o += b64url_encode(iv, JOSE_IV_LEN, token + o);
    token[o++] = '.';
    o += b64url_encode(ct, n, token + o);
    token[o++] = '.';
    o += b64url_encode(tag, JOSE_TAG_LEN, token + o);
    *out = token;
    token = NULL;
out:
    free(token);
    free(ct);
    return r;
}

jose_result jwe_peek(const char *token, size_t n, jose_header *header)
{
    jose_parts parts;

    return jwe_parse(token, n, &parts, header);
}

static jose_result jwe_open(const uint8_t key[32], const char *token, size_t n, jose_header *header,
                            uint8_t **plaintext, size_t *plaintext_len);

jose_result jwe_decrypt(const uint8_t key[32], const char *token, size_t n, jose_header *header,
                        uint8_t **plaintext, size_t *plaintext_len)
{
    jose_header scratch;
    return jwe_open(key, token, n, header != NULL ? header : &scratch, plaintext, plaintext_len);
}

jose_result jwe_decrypt_peeked(const uint8_t key[32], const char *token, size_t n,
                               uint8_t **plaintext, size_t *plaintext_len)
{
    return jwe_open(key, token, n, NULL, plaintext, plaintext_len);
}

/* jwe_decrypt(), the header left unparsed when header is NULL. */
static jose_result jwe_open(const uint8_t key[32], const char *token, size_t n, jose_header *header,
                            uint8_t **plaintext, size_t *plaintext_len)
{
    jose_parts parts;
    uint8_t iv[JOSE_IV_LEN];
    uint8_t tag[JOSE_TAG_LEN];
    uint8_t *ct = NULL;
    uint8_t *pt = NULL;
    long ctlen = 0;
    jose_result r;

    *plaintext = NULL;
    *plaintext_len = 0;
    r = jwe_parse(token, n, &parts, header);
    if (r != JOSE_OK)
        return r;
    r = JOSE_MALFORMED;
    if (b64url_decode(parts.p[2], parts.len[2], iv, sizeof(iv)) != JOSE_IV_LEN ||
        b64url_decode(parts.p[4], parts.len[4], tag, sizeof(tag)) != JOSE_TAG_LEN)
        goto out;
    ct = malloc(b64url_decoded_max(parts.len[3]) + 1);
    if (ct == NULL) {
        r = JOSE_INTERNAL;
        goto out;
    }
    ctlen = b64url_decode(parts.p[3], parts.len[3], ct, b64url_decoded_max(parts.len[3]));
    if (ctlen < 0)
        goto out;
    pt = malloc((size_t)ctlen + 1);
    if (pt == NULL) {
        r = JOSE_INTERNAL;
        goto out;
    }
    r = jose_a256gcm_open(key, iv, (const uint8_t *)parts.p[0], parts.len[0], ct, (size_t)ctlen,
                          tag, pt);
    if (r != JOSE_OK)
        goto out;
    pt[ctlen] = '\0';
    *plaintext = pt;
    *plaintext_len = (size_t)ctlen;
    pt = NULL;
out:
    if (pt != NULL) {
        /* Unauthenticated plaintext must not linger. */
        OPENSSL_cleanse(pt, (size_t)ctlen);
        free(pt);
    }
    free(ct);
    return r;
}

jose_result jose_es256_sign(const eckey *key, const uint8_t *msg, size_t n,
                            uint8_t sig[JOSE_SIG_LEN])
{
    ECDSA_SIG *esig = NULL;
    uint8_t digest[32];
    unsigned int digest_len = 0;
    uint8_t der[JOSE_DER_SIG_MAX];
    const unsigned char *p = der;
    size_t derlen = sizeof(der);
    const BIGNUM *r, *s;
    EVP_PKEY_CTX *ctx;
    jose_result rc = JOSE_INTERNAL;

    if (!jose_setup() || !eckey_has_private(key))
        goto out;
    ctx = jose_signer_ctx(eckey_pkey(key));
    if (ctx == NULL || EVP_Digest(msg, n, digest, &digest_len, jose_sha256, NULL) != 1 ||
        digest_len != sizeof(digest) ||
        EVP_PKEY_sign(ctx, der, &derlen, digest, sizeof(digest)) != 1)
        goto out;
    esig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    if (esig == NULL)
        goto out;
    ECDSA_SIG_get0(esig, &r, &s);
    if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32)
        goto out;
    rc = JOSE_OK;
out:
    if (rc != JOSE_OK)
        ERR_clear_error();
    ECDSA_SIG_free(esig);
    return rc;
}

jose_result jose_es256_verify(const eckey *key, const uint8_t *msg, size_t n,
                              const uint8_t sig[JOSE_SIG_LEN])
{
    EVP_MD_CTX *mctx = NULL;
    ECDSA_SIG *esig = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *der = NULL;
    int derlen;
    jose_result rc = JOSE_INTERNAL;

    if (!jose_setup() || key == NULL)
        goto out;
    esig = ECDSA_SIG_new();
    r = BN_bin2bn(sig, 32, NULL);
    s = BN_bin2bn(sig + 32, 32, NULL);
    if (esig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(esig, r, s) != 1)
        goto out;
    r = s = NULL;
    derlen = i2d_ECDSA_SIG(esig, &der);
    if (derlen <= 0)
        goto out;
    mctx = EVP_MD_CTX_new();
    if (mctx == NULL || EVP_DigestVerifyInit(mctx, NULL, jose_sha256, NULL, eckey_pkey(key)) != 1)
        goto out;
    rc = EVP_DigestVerify(mctx, der, (size_t)derlen, msg, n) == 1 ? JOSE_OK : JOSE_DECRYPT;
out:
    ERR_clear_error();
    BN_free(r);
    BN_free(s);
    OPENSSL_free(der);
    ECDSA_SIG_free(esig);
    EVP_MD_CTX_free(mctx);
    return rc;
}

jose_result jws_sign(const eckey *key, const char *kid, const uint8_t *payload, size_t n,
                     char **out)
{
    char header[JOSE_HEADER_MAX];
    uint8_t sig[JOSE_SIG_LEN];
    char *token = NULL;
    size_t total, o;
    int hlen;
    jose_result r;

    *out = NULL;
    if (kid == NULL || !jose_ident_ok(kid, strlen(kid), JOSE_KID_MAX))
        return JOSE_BAD_HEADER;
    if ((payload == NULL && n > 0) || n > JOSE_TOKEN_MAX)
        return JOSE_MALFORMED;
    hlen = snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"%s\"}",
                    kid, JOSE_TYP);
    if (hlen < 0 || (size_t)hlen >= sizeof(header))
        return JOSE_BAD_HEADER;
    total = b64url_encoded_len((size_t)hlen) + 1 + b64url_encoded_len(n) + 1 + JOSE_SIG_B64_LEN;
    if (total > JOSE_TOKEN_MAX)
        return JOSE_MALFORMED;
    token = malloc(total + 1);
    if (token == NULL)
        return JOSE_INTERNAL;
    o = b64url_encode((const uint8_t *)header, (size_t)hlen, token);
    token[o++] = '.';
    o += b64url_encode(payload, n, token + o);
    r = jose_es256_sign(key, (const uint8_t *)token, o, sig);
    if (r != JOSE_OK) {
        free(token);
        return r;
    }
    token[o++] = '.';
    b64url_encode(sig, sizeof(sig), token + o);
    *out = token;
    return JOSE_OK;
}

static jose_result jws_parse(const char *token, size_t n, jose_parts *parts, jose_header *header)
{
    jose_result r;

    if (token == NULL || n == 0 || n > JOSE_TOKEN_MAX)
        return JOSE_MALFORMED;
    jose_split(token, n, parts);
    if (parts->count != 3)
        return JOSE_MALFORMED;
    r = jose_parse_header(parts->p[0], parts->len[0], JOSE_SHAPE_JWS, header);
    if (r != JOSE_OK)
        return r;
    if (parts->len[2] != JOSE_SIG_B64_LEN)
        return JOSE_MALFORMED;
    return JOSE_OK;
}

jose_result jws_peek(const char *token, size_t n, jose_header *header)
{
    jose_parts parts;

    return jws_parse(token, n, &parts, header);
}

jose_result jws_verify(const eckey *key, const char *token, size_t n, jose_header *header,
                       uint8_t **payload, size_t *payload_len)
{
    jose_parts parts;
    uint8_t sig[JOSE_SIG_LEN];
    uint8_t *body = NULL;
    long blen;
    jose_result r;

    *payload = NULL;
    *payload_len = 0;
    r = jws_parse(token, n, &parts, header);
    if (r != JOSE_OK)
        return r;
    if (b64url_decode(parts.p[2], parts.len[2], sig, sizeof(sig)) != JOSE_SIG_LEN)
        return JOSE_MALFORMED;
    body = malloc(b64url_decoded_max(parts.len[1]) + 1);
    if (body == NULL)
        return JOSE_INTERNAL;
    blen = b64url_decode(parts.p[1], parts.len[1], body, b64url_decoded_max(parts.len[1]));
    if (blen < 0) {
        free(body);
        return JOSE_MALFORMED;
    }
    r = jose_es256_verify(key, (const uint8_t *)token, parts.len[0] + 1 + parts.len[1], sig);
    if (r != JOSE_OK) {
        free(body);
        return r;
    }
    body[blen] = '\0';
    *payload = body;
    *payload_len = (size_t)blen;
    return JOSE_OK;
}
