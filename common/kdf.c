#include "common/kdf.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>

#define KDF_SALT     "receipt/v1"
#define KDF_ID_MAX   64
#define KDF_INFO_MAX (2 * KDF_ID_MAX + 1)

static pthread_once_t kdf_once = PTHREAD_ONCE_INIT;
static EVP_KDF *kdf_hkdf;

static void kdf_init(void)
{
    kdf_hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
}

int kdf_shared_secret(const eckey *own, const eckey *peer, uint8_t z[32])
{
    EVP_PKEY_CTX *ctx = NULL;
    size_t zlen = 32;
    int rc = -1;

    if (own == NULL || peer == NULL || !eckey_has_private(own))
        goto out;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, eckey_pkey(own), NULL);
    /* The peer was validated when its eckey was made; do not pay for it twice. */
    if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1 ||
        EVP_PKEY_derive_set_peer_ex(ctx, eckey_pkey(peer), 0) != 1 ||
        EVP_PKEY_derive(ctx, z, &zlen) != 1 || zlen != 32)
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        OPENSSL_cleanse(z, 32);
        ERR_clear_error();
    }
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

int kdf_derive(const eckey *own, const eckey *peer, const char *client_id, const char *server_kid,
               uint8_t key[KDF_KEY_LEN])
{
    uint8_t z[32];
    char info[KDF_INFO_MAX + 1];
    size_t clen, slen;
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[5];
    int rc = -1;

    memset(z, 0, sizeof(z));
    if (client_id == NULL || server_kid == NULL)
        goto out;
    clen = strlen(client_id);
    slen = strlen(server_kid);
    if (clen > KDF_ID_MAX || slen > KDF_ID_MAX)
        goto out;
    memcpy(info, client_id, clen);
    info[clen] = '.';
    memcpy(info + clen + 1, server_kid, slen);

    pthread_once(&kdf_once, kdf_init);
    if (kdf_hkdf == NULL || kdf_shared_secret(own, peer, z) != 0)
        goto out;
    kctx = EVP_KDF_CTX_new(kdf_hkdf);
    if (kctx == NULL)
        goto out;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z, sizeof(z));
    params[2] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, KDF_SALT, sizeof(KDF_SALT) - 1);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, clen + 1 + slen);
    params[4] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, key, KDF_KEY_LEN, params) != 1)
        goto out;
    rc = 0;
out:
    OPENSSL_cleanse(z, sizeof(z));
    EVP_KDF_CTX_free(kctx);
    if (rc != 0)
        ERR_clear_error();
    return rc;
}
