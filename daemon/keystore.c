#include "daemon/keystore.h"

#include "common/b64.h"
#include "common/durable.h"
#include "common/sjson.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYSTORE_FILE_MAX       (16 * 1024)
#define KEYSTORE_PATH_MAX       4096
#define KEYSTORE_VERSION        1
#define KEYSTORE_SECRET_B64_LEN 43

static void ks_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void keystore_free(keystore *ks)
{
    if (ks == NULL)
        return;
    eckey_free(ks->enc);
    eckey_free(ks->sig);
    OPENSSL_cleanse(ks->ticket_secret, sizeof(ks->ticket_secret));
    free(ks);
}

static int ks_check_dir(const char *dir, bool create, char *err, size_t errlen)
{
    struct stat st;

    if (stat(dir, &st) != 0) {
        if (errno != ENOENT || !create) {
            ks_err(err, errlen, "state directory %s: %s", dir, strerror(errno));
            return -1;
        }
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            ks_err(err, errlen, "cannot create state directory %s: %s", dir, strerror(errno));
            return -1;
        }
        if (stat(dir, &st) != 0) {
            ks_err(err, errlen, "state directory %s: %s", dir, strerror(errno));
            return -1;
        }
    }
    if (!S_ISDIR(st.st_mode)) {
        ks_err(err, errlen, "state directory %s is not a directory", dir);
        return -1;
    }
    if ((st.st_mode & 0007) != 0) {
        ks_err(err, errlen,
               "state directory %s has mode %04o, so other users may access it; "
               "run: chmod 700 %s",
               dir, (unsigned)(st.st_mode & 07777), dir);
        return -1;
    }
    return 0;
}

/*
 * The file: {"v":1,"enc":JWK,"sig":JWK,"ticket_secret":base64url} and a
 * newline; malloc'd, *len bytes. The caller cleanses it.
 */
static char *ks_serialise(const keystore *ks, size_t *len)
{
    char secret[KEYSTORE_SECRET_B64_LEN + 1];
    json_t *enc = eckey_to_jwk(ks->enc, true);
    json_t *sig = eckey_to_jwk(ks->sig, true);
    json_t *root = NULL;
    char *text = NULL;

    b64url_encode(ks->ticket_secret, TICKET_SECRET_LEN, secret);
    if (enc == NULL || sig == NULL)
        goto out;
    root = json_pack("{s:i, s:O, s:O, s:s}", "v", KEYSTORE_VERSION, "enc", enc, "sig", sig,
                     "ticket_secret", secret);
    if (root == NULL)
        goto out;
    /* Dumped straight into a buffer with room for the newline: no copy of
     * the secrets is left in freed memory. */
    size_t n = json_dumpb(root, NULL, 0, JSON_INDENT(2));
    if (n == 0 || (text = malloc(n + 1)) == NULL)
        goto out;
    if (json_dumpb(root, text, n, JSON_INDENT(2)) != n) {
        OPENSSL_cleanse(text, n);
        free(text);
        text = NULL;
        goto out;
    }
    text[n] = '\n';
    *len = n + 1;
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    json_decref(root);
    json_decref(enc);
    json_decref(sig);
    return text;
}

/*
 * Through a temporary file (durable.h): after a crash the key file is
 * either absent or complete, never half written. Returns 0, 1 when another
 * process made the file first (without overwrite), or -1.
 */
static int ks_store(const char *path, const keystore *ks, bool overwrite, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = ks_serialise(ks, &len);
    if (text == NULL) {
        ks_err(err, errlen, "cannot serialise server keys");
        return -1;
    }
    int rc = durable_write_atomic(path, text, len, 0600, overwrite, err, errlen);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

static keystore *ks_generate(char *err, size_t errlen)
{
    keystore *ks = calloc(1, sizeof(*ks));

    if (ks == NULL) {
        ks_err(err, errlen, "out of memory");
        return NULL;
    }
    ks->enc = eckey_generate();
    ks->sig = eckey_generate();
    if (ks->enc == NULL || ks->sig == NULL ||
        RAND_bytes(ks->ticket_secret, sizeof(ks->ticket_secret)) != 1) {
        ks_err(err, errlen, "cannot generate server keys");
        keystore_free(ks);
        return NULL;
    }
    return ks;
}

static keystore *ks_parse(const char *path, const char *text, size_t n, char *err, size_t errlen)
{
    char jerr[128];
    json_t *root = NULL;
    keystore *ks = NULL;
    const char *secret;
    size_t slen = 0;
    uint64_t v = 0;

    root = sjson_parse_object(text, n, 4, jerr, sizeof(jerr));
    if (root == NULL) {
        ks_err(err, errlen, "%s: %s", path, jerr);
        goto fail;
    }
    ks = calloc(1, sizeof(*ks));
    if (ks == NULL) {
        ks_err(err, errlen, "out of memory");
        goto fail;
    }
    if (!sjson_uint(root, "v", &v) || v != KEYSTORE_VERSION) {
        ks_err(err, errlen, "%s: unknown version (want \"v\": %d)", path, KEYSTORE_VERSION);
        goto fail;
    }
    ks->enc = eckey_from_jwk(sjson_object(root, "enc"));
    ks->sig = eckey_from_jwk(sjson_object(root, "sig"));
    if (!eckey_has_private(ks->enc) || !eckey_has_private(ks->sig)) {
        ks_err(err, errlen, "%s: \"enc\" and \"sig\" must be valid private P-256 JWKs", path);
        goto fail;
    }
    secret = sjson_string(root, "ticket_secret", &slen);
    if (secret == NULL || b64url_decode(secret, slen, ks->ticket_secret,
                                        sizeof(ks->ticket_secret)) != TICKET_SECRET_LEN) {
        ks_err(err, errlen, "%s: \"ticket_secret\" must be %d bytes in base64url", path,
               TICKET_SECRET_LEN);
        goto fail;
    }
    json_decref(root);
    return ks;
fail:
    json_decref(root);
    keystore_free(ks);
    return NULL;
}

static keystore *ks_load(const char *path, int fd, char *err, size_t errlen)
{
    struct stat st;
    char *text = NULL;
    size_t n = 0;
    keystore *ks = NULL;

    if (fstat(fd, &st) != 0) {
        ks_err(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ks_err(err, errlen, "%s is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & 0077) != 0) {
        ks_err(err, errlen,
               "key file %s has mode %04o, so users other than its owner may read it; "
               "run: chmod 600 %s",
               path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    if (st.st_size > KEYSTORE_FILE_MAX) {
        ks_err(err, errlen, "%s is larger than %d bytes", path, KEYSTORE_FILE_MAX);
        goto out;
    }
    text = malloc(KEYSTORE_FILE_MAX + 1);
    if (text == NULL) {
        ks_err(err, errlen, "out of memory");
        goto out;
    }
    while (n < KEYSTORE_FILE_MAX) {
        ssize_t r = read(fd, text + n, KEYSTORE_FILE_MAX - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ks_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    ks = ks_parse(path, text, n, err, errlen);
out:
    if (text != NULL) {
        OPENSSL_cleanse(text, KEYSTORE_FILE_MAX + 1);
        free(text);
    }
    return ks;
}

keystore *keystore_open(const char *state_dir, bool create, bool *created, char *err, size_t errlen)
{
    char path[KEYSTORE_PATH_MAX];
    keystore *ks = NULL;
    int fd = -1;

    if (created != NULL)
        *created = false;
    if (state_dir == NULL || state_dir[0] == '\0') {
        ks_err(err, errlen, "no state directory given");
        return NULL;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", state_dir, KEYSTORE_FILE) >=
        sizeof(path) - 32) {
        ks_err(err, errlen, "state directory path too long: %s", state_dir);
        return NULL;
    }
    if (ks_check_dir(state_dir, create, err, errlen) != 0)
        return NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        ks = ks_load(path, fd, err, errlen);
        close(fd);
        return ks;
    }
    if (errno != ENOENT || !create) {
        ks_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    ks = ks_generate(err, errlen);
    if (ks == NULL)
        return NULL;
    int stored = ks_store(path, ks, false, err, errlen);
    if (stored != 0) {
        keystore_free(ks);
        if (stored < 0)
            return NULL;
        /* Another process made the keys meanwhile: use those. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            ks_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
            return NULL;
        }
        ks = ks_load(path, fd, err, errlen);
        close(fd);
        return ks;
    }
    if (created != NULL)
        *created = true;
    return ks;
}

static json_t *ks_public_jwk(const eckey *key, const char *use)
{
    json_t *jwk = eckey_to_jwk(key, false);

    if (jwk == NULL)
        return NULL;
    if (json_object_set_new(jwk, "kid", json_string(eckey_thumbprint(key))) != 0 ||
        json_object_set_new(jwk, "use", json_string(use)) != 0 ||
        (strcmp(use, "sig") == 0 && json_object_set_new(jwk, "alg", json_string("ES256")) != 0)) {
        json_decref(jwk);
        return NULL;
    }
    return jwk;
}

char *keystore_jwks(const keystore *ks)
{
    json_t *enc, *sig, *set;
    char *text;

    if (ks == NULL)
        return NULL;
    enc = ks_public_jwk(ks->enc, "enc");
    sig = ks_public_jwk(ks->sig, "sig");
    if (enc == NULL || sig == NULL) {
        json_decref(enc);
        json_decref(sig);
        return NULL;
    }
    set = json_pack("{s:[o, o]}", "keys", enc, sig);
    text = set != NULL ? json_dumps(set, JSON_COMPACT) : NULL;
    json_decref(set);
    return text;
}

char *keystore_export(const keystore *ks, size_t *len)
{
    return ks_serialise(ks, len);
}

keystore *keystore_parse(const char *name, const char *text, size_t n, char *err, size_t errlen)
{
    if (n > KEYSTORE_FILE_MAX) {
        ks_err(err, errlen, "%s is larger than %d bytes", name, KEYSTORE_FILE_MAX);
        return NULL;
    }
    return ks_parse(name, text, n, err, errlen);
}

bool keystore_same(const keystore *a, const keystore *b)
{
    return strcmp(eckey_thumbprint(a->enc), eckey_thumbprint(b->enc)) == 0 &&
           strcmp(eckey_thumbprint(a->sig), eckey_thumbprint(b->sig)) == 0 &&
           CRYPTO_memcmp(a->ticket_secret, b->ticket_secret, TICKET_SECRET_LEN) == 0;
}

int keystore_install(const char *state_dir, const keystore *ks, bool replace, char *err,
                     size_t errlen)
{
    char path[KEYSTORE_PATH_MAX];
    if (state_dir == NULL || state_dir[0] == '\0') {
        ks_err(err, errlen, "no state directory given");
        return -1;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", state_dir, KEYSTORE_FILE) >=
        sizeof(path) - 32) {
        ks_err(err, errlen, "state directory path too long: %s", state_dir);
        return -1;
    }
    if (ks_check_dir(state_dir, true, err, errlen) != 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        keystore *there = ks_load(path, fd, err, errlen);
        close(fd);
        if (there == NULL && !replace)
            return -1;
        bool same = there != NULL && keystore_same(there, ks);
        keystore_free(there);
        if (same)
            return 1;
        if (!replace) {
            ks_err(err, errlen,
                   "%s holds other keys; replacing them makes every ticket, plug-in data and "
                   "key set this node gave out unusable, so it takes --replace",
                   path);
            return -1;
        }
    } else if (errno != ENOENT) {
        ks_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    return ks_store(path, ks, true, err, errlen) == 0 ? 0 : -1;
}

void keystore_secret_fingerprint(const keystore *ks, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(ks->ticket_secret, TICKET_SECRET_LEN, digest);
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[16] = '\0';
    OPENSSL_cleanse(digest, sizeof digest);
}
