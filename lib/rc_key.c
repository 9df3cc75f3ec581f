#include "lib/rc_key.h"

#include "common/durable.h"
#include "lib/rc_client.h"

#include <errno.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

receipt_result rc_key_load(const char *path, eckey **out, char *err, size_t errlen)
{
    *out = NULL;
    char *pem = NULL;
    size_t len = 0;
    mode_t mode = 0;
    receipt_result r = RECEIPT_ERR_KEY;
    if (durable_read(path, RC_KEY_FILE_MAX, &pem, &len, &mode, err, errlen) != 0) {
        r = errno == ENOENT ? RECEIPT_ERR_KEY : RECEIPT_ERR_IO;
        goto out;
    }
    if ((mode & 077) != 0) {
        snprintf(err, errlen,
                 "key file %s may be accessed by others (mode %04o); run: chmod 600 %s", path,
                 (unsigned)(mode & 07777), path);
        goto out;
    }
    eckey *key = eckey_from_pem(pem, len);
    if (key == NULL) {
        snprintf(err, errlen, "%s is not a PEM P-256 key", path);
        goto out;
    }
    if (!eckey_has_private(key)) {
        eckey_free(key);
        snprintf(err, errlen, "%s holds a public key; a client key must be private", path);
        goto out;
    }
    *out = key;
    r = RECEIPT_OK;
out:
    if (pem != NULL) {
        OPENSSL_cleanse(pem, len);
        free(pem);
    }
    return r;
}

receipt_result rc_key_save(const eckey *key, const char *path, bool overwrite, char *err,
                           size_t errlen)
{
    receipt_result r = RECEIPT_ERR_IO;
    char *pem = eckey_to_pem(key);
    if (pem == NULL) {
        snprintf(err, errlen, "the key cannot be written as PEM");
        return RECEIPT_ERR_KEY;
    }
    char dir[DURABLE_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *d = dirname(dir);
    if (strcmp(d, ".") != 0 && durable_mkdirs(d, RC_KEY_DIR_MODE, err, errlen) != 0)
        goto out;
    int rc = durable_write_atomic(path, pem, strlen(pem), RC_KEY_FILE_MODE, overwrite, err, errlen);
    if (rc == 1) {
        r = RECEIPT_ERR_EXISTS;
        snprintf(err, errlen, "%s exists; not overwritten", path);
        goto out;
    }
    if (rc != 0)
        goto out;
    r = RECEIPT_OK;
out:
    OPENSSL_cleanse(pem, strlen(pem));
    free(pem);
    return r;
}

RECEIPT_API receipt_result receipt_client_generate_key(receipt_client *c)
{
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    c->errmsg[0] = '\0';
    eckey *key = eckey_generate();
    if (key == NULL)
        return rc_fail(c, RECEIPT_ERR_INTERNAL, "key generation failed");
    rc_client_set_key(c, key);
    return RECEIPT_OK;
}

RECEIPT_API receipt_result receipt_client_load_key(receipt_client *c, const char *path)
{
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (path == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "no key file named");
    c->errmsg[0] = '\0';
    eckey *key = NULL;
    receipt_result r = rc_key_load(path, &key, c->errmsg, sizeof(c->errmsg));
    if (r == RECEIPT_OK)
        rc_client_set_key(c, key);
    return r;
}

RECEIPT_API receipt_result receipt_client_save_key(receipt_client *c, const char *path,
                                                   unsigned flags)
{
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (path == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "no key file named");
    if (c->key == NULL)
        return rc_fail(c, RECEIPT_ERR_NO_KEY, "the client has no key to save");
    c->errmsg[0] = '\0';
    return rc_key_save(c->key, path, (flags & RECEIPT_SAVE_OVERWRITE) != 0, c->errmsg,
                       sizeof(c->errmsg));
}
