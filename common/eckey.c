#include "common/eckey.h"

#include "common/b64.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ECKEY_COORD_LEN     32
#define ECKEY_COORD_B64_LEN 43
#define ECKEY_PEM_MAX       (16 * 1024)
#define ECKEY_GROUP         "prime256v1"

struct eckey {
    EVP_PKEY *pkey;
    bool has_private;
    uint8_t point[ECKEY_POINT_LEN];
    char thumbprint[ECKEY_THUMBPRINT_LEN + 1];
};

static pthread_once_t eckey_once = PTHREAD_ONCE_INIT;
static EVP_MD *eckey_sha256;

static void eckey_init(void)
{
    eckey_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

static const EVP_MD *sha256_md(void)
{
    pthread_once(&eckey_once, eckey_init);
    return eckey_sha256;
}

void eckey_thumbprint_of(const uint8_t x[32], const uint8_t y[32],
                         char out[ECKEY_THUMBPRINT_LEN + 1])
{
    char xs[ECKEY_COORD_B64_LEN + 1];
    char ys[ECKEY_COORD_B64_LEN + 1];
    char json[160];
    uint8_t digest[32];
    unsigned int dlen = 0;
    int len;

    b64url_encode(x, ECKEY_COORD_LEN, xs);
    b64url_encode(y, ECKEY_COORD_LEN, ys);
    /* RFC 7638: required members only, sorted, no whitespace. */
    len = snprintf(json, sizeof(json),
                   "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", xs, ys);
    if (len < 0 || (size_t)len >= sizeof(json) || sha256_md() == NULL ||
        EVP_Digest(json, (size_t)len, digest, &dlen, sha256_md(), NULL) != 1 || dlen != 32) {
        /* Only an exhausted or broken crypto library gets here; an empty id matches nothing. */
        out[0] = '\0';
        return;
    }
    b64url_encode(digest, sizeof(digest), out);
}

static EVP_PKEY *pkey_from_params(const uint8_t point[ECKEY_POINT_LEN], const BIGNUM *d)
{
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    int selection = d != NULL ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY;

    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, ECKEY_GROUP, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, ECKEY_POINT_LEN))
        goto out;
    if (d != NULL && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, selection, params) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

/*
 * Takes ownership of pkey. Checks that it is a valid P-256 key (and, with a
 * private part, that the two halves belong together), then caches the point
 * and the thumbprint.
 */
static eckey *eckey_adopt(EVP_PKEY *pkey)
{
    eckey *key = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    BIGNUM *x = NULL, *y = NULL, *d = NULL;
    char group[32];
    size_t glen = 0;
    int ok;

    if (pkey == NULL)
        goto fail;
    if (!EVP_PKEY_is_a(pkey, "EC") ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        &glen) ||
        strcmp(group, ECKEY_GROUP) != 0)
        goto fail;
    key = calloc(1, sizeof(*key));
    if (key == NULL)
        goto fail;
    key->has_private = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx == NULL)
        goto fail;
    /*
     * A private key gets the full check, which includes the pairwise test. For
     * a public key the on-curve check suffices: P-256 has cofactor 1, so every
     * point on the curve other than infinity is in the prime-order group, and
     * the costly order check would run on every request.
     */
    ok = key->has_private ? EVP_PKEY_check(ctx) : EVP_PKEY_public_check_quick(ctx);
    if (ok != 1)
        goto fail;
    if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
        !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y))
        goto fail;
    key->point[0] = 0x04;
    if (BN_bn2binpad(x, key->point + 1, ECKEY_COORD_LEN) != ECKEY_COORD_LEN ||
        BN_bn2binpad(y, key->point + 1 + ECKEY_COORD_LEN, ECKEY_COORD_LEN) != ECKEY_COORD_LEN)
        goto fail;
    eckey_thumbprint_of(key->point + 1, key->point + 1 + ECKEY_COORD_LEN, key->thumbprint);
    if (key->thumbprint[0] == '\0')
        goto fail;
    key->pkey = pkey;
    pkey = NULL;
    goto out;
fail:
    free(key);
    key = NULL;
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    BN_free(x);
    BN_free(y);
    BN_clear_free(d);
    /* Refused input leaves reasons on the thread's error queue; nobody reads them. */
    ERR_clear_error();
    return key;
}

eckey *eckey_generate(void)
{
    return eckey_adopt(EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
}

eckey *eckey_from_point(const uint8_t *point, size_t n)
{
    /* Uncompressed only: 0x00 (infinity) and compressed forms are refused here. */
    if (point == NULL || n != ECKEY_POINT_LEN || point[0] != 0x04)
        return NULL;
    return eckey_adopt(pkey_from_params(point, NULL));
}

eckey *eckey_from_header(const char *value, size_t n)
{
    uint8_t point[ECKEY_POINT_LEN];

    if (value == NULL || n != ECKEY_POINT_B64_LEN ||
        b64url_decode(value, n, point, sizeof(point)) != ECKEY_POINT_LEN)
        return NULL;
    return eckey_from_point(point, sizeof(point));
}

static bool jwk_coord(const json_t *jwk, const char *name, uint8_t out[ECKEY_COORD_LEN])
{
    const json_t *v = json_object_get(jwk, name);

    return json_is_string(v) && json_string_length(v) == ECKEY_COORD_B64_LEN &&
           b64url_decode(json_string_value(v), ECKEY_COORD_B64_LEN, out, ECKEY_COORD_LEN) ==
               ECKEY_COORD_LEN;
}

eckey *eckey_from_jwk(const json_t *jwk)
{
    uint8_t point[ECKEY_POINT_LEN];
    uint8_t dbytes[ECKEY_COORD_LEN];
    BIGNUM *d = NULL;
    const json_t *kty, *crv;
    eckey *key = NULL;

    if (!json_is_object(jwk))
        goto out;
    kty = json_object_get(jwk, "kty");
    crv = json_object_get(jwk, "crv");
    if (!json_is_string(kty) || strcmp(json_string_value(kty), "EC") != 0 || !json_is_string(crv) ||
        strcmp(json_string_value(crv), "P-256") != 0)
        goto out;
    point[0] = 0x04;
    if (!jwk_coord(jwk, "x", point + 1) || !jwk_coord(jwk, "y", point + 1 + ECKEY_COORD_LEN))
        goto out;
    if (json_object_get(jwk, "d") != NULL) {
        if (!jwk_coord(jwk, "d", dbytes))
            goto out;
        d = BN_secure_new();
        if (d == NULL || BN_bin2bn(dbytes, ECKEY_COORD_LEN, d) == NULL)
            goto out;
    }
    key = eckey_adopt(pkey_from_params(point, d));
out:
    OPENSSL_cleanse(dbytes, sizeof(dbytes));
    BN_clear_free(d);
    return key;
}

eckey *eckey_from_pem(const char *pem, size_t n)
{
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;

    if (pem == NULL || n == 0 || n > ECKEY_PEM_MAX)
        return NULL;
    bio = BIO_new_mem_buf(pem, (int)n);
    if (bio == NULL)
        return NULL;
    pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (pkey == NULL) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(pem, (int)n);
        if (bio == NULL)
            return NULL;
        pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    }
    BIO_free(bio);
    return eckey_adopt(pkey);
}

char *eckey_to_pem(const eckey *key)
{
    BIO *bio = NULL;
    char *pem = NULL;
    char *data = NULL;
    long len;

    if (key == NULL || !key->has_private)
        return NULL;
    bio = BIO_new(BIO_s_secmem());
    if (bio == NULL || PEM_write_bio_PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL, NULL) != 1)
        goto out;
    len = BIO_get_mem_data(bio, &data);
    if (len <= 0)
        goto out;
    pem = malloc((size_t)len + 1);
    if (pem == NULL)
        goto out;
    memcpy(pem, data, (size_t)len);
    pem[len] = '\0';
out:
    BIO_free(bio);
    return pem;
}

json_t *eckey_to_jwk(const eckey *key, bool with_private)
{
    char x[ECKEY_COORD_B64_LEN + 1];
    char y[ECKEY_COORD_B64_LEN + 1];
    char ds[ECKEY_COORD_B64_LEN + 1];
    uint8_t dbytes[ECKEY_COORD_LEN];
    BIGNUM *d = NULL;
    json_t *jwk = NULL;

    if (key == NULL)
        return NULL;
    b64url_encode(key->point + 1, ECKEY_COORD_LEN, x);
    b64url_encode(key->point + 1 + ECKEY_COORD_LEN, ECKEY_COORD_LEN, y);
    jwk = json_pack("{s:s, s:s, s:s, s:s}", "crv", "P-256", "kty", "EC", "x", x, "y", y);
    if (jwk == NULL || !with_private || !key->has_private)
        goto out;
    if (EVP_PKEY_get_bn_param(key->pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1 ||
        BN_bn2binpad(d, dbytes, ECKEY_COORD_LEN) != ECKEY_COORD_LEN) {
        json_decref(jwk);
        jwk = NULL;
        goto out;
    }
    b64url_encode(dbytes, ECKEY_COORD_LEN, ds);
    if (json_object_set_new(jwk, "d", json_string(ds)) != 0) {
        json_decref(jwk);
        jwk = NULL;
    }
out:
    OPENSSL_cleanse(dbytes, sizeof(dbytes));
    OPENSSL_cleanse(ds, sizeof(ds));
    BN_clear_free(d);
    return jwk;
}

bool eckey_has_private(const eckey *key)
{
    return key != NULL && key->has_private;
}

const uint8_t *eckey_point(const eckey *key)
{
    return key->point;
}

const char *eckey_thumbprint(const eckey *key)
{
    return key->thumbprint;
}

void eckey_header_value(const eckey *key, char out[ECKEY_POINT_B64_LEN + 1])
{
    b64url_encode(key->point, ECKEY_POINT_LEN, out);
}

EVP_PKEY *eckey_pkey(const eckey *key)
{
    return key->pkey;
}

void eckey_free(eckey *key)
{
    if (key == NULL)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}
