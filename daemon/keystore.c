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
#include <time.h>
#include <unistd.h>

#define KEYSTORE_FILE_MAX       SJSON_MAX_LEN
#define KEYSTORE_PATH_MAX       4096
#define KEYSTORE_VERSION        2
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

static uint64_t ks_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void keystore_free(keystore *ks)
{
    if (ks == NULL)
        return;
    eckey_free(ks->enc);
    eckey_free(ks->sig);
    note_signer_free(ks->log);
    note_signer_free(ks->log_previous);
    for (size_t i = 0; i < ks->old_sig_count; i++)
        eckey_free(ks->old_sig[i].key);
    for (size_t i = 0; i < ks->old_log_count; i++)
        note_verifier_free(ks->old_log[i].key);
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

static int ks_path(const char *state_dir, char path[KEYSTORE_PATH_MAX], char *err, size_t errlen)
{
    if (state_dir == NULL || state_dir[0] == '\0') {
        ks_err(err, errlen, "no state directory given");
        return -1;
    }
    if ((size_t)snprintf(path, KEYSTORE_PATH_MAX, "%s/%s", state_dir, KEYSTORE_FILE) >=
        KEYSTORE_PATH_MAX - 32) {
        ks_err(err, errlen, "state directory path too long: %s", state_dir);
        return -1;
    }
    return 0;
}

/* A signer key text as a JSON string; NULL when out of memory. Cleansed. */
static json_t *ks_signer_json(const note_signer *s)
{
    char text[NOTE_SKEY_MAX];
    note_signer_text(s, text);
    json_t *v = json_string(text);
    OPENSSL_cleanse(text, sizeof text);
    return v;
}

/* The history: retired signing keys (public JWKs) and log keys (verifier
 * key texts), each with the time it was in use. */
static json_t *ks_history_json(const keystore *ks)
{
    json_t *list = json_array();
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < ks->old_sig_count; i++) {
        const keystore_old_sig *o = &ks->old_sig[i];
        json_t *jwk = eckey_to_jwk(o->key, false);
        json_t *item = jwk != NULL ? json_pack("{s:s, s:o, s:I, s:I}", "use", "sig", "jwk", jwk,
                                               "since_ms", (json_int_t)o->since_ms, "retired_ms",
                                               (json_int_t)o->retired_ms)
                                   : NULL;
        if (item == NULL || json_array_append_new(list, item) != 0)
            goto fail;
    }
    for (size_t i = 0; i < ks->old_log_count; i++) {
        const keystore_old_log *o = &ks->old_log[i];
        char vkey[NOTE_VKEY_MAX];
        note_verifier_text(o->key, vkey);
        json_t *item = json_pack("{s:s, s:s, s:I, s:I}", "use", "log", "key", vkey, "since_ms",
                                 (json_int_t)o->since_ms, "retired_ms", (json_int_t)o->retired_ms);
        if (item == NULL || json_array_append_new(list, item) != 0)
            goto fail;
    }
    return list;
fail:
    json_decref(list);
    return NULL;
}

/*
 * The file: {"v":2, "enc":JWK, "sig":JWK, "sig_since_ms":N,
 * "ticket_secret":base64url, "log":signer key, "log_since_ms":N,
 * "log_previous":signer key, "log_previous_since_ms":N, "retired":[...]}
 * and a newline, the log members only when there is a log key; malloc'd,
 * *len bytes. The caller cleanses it.
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
    root = json_pack("{s:i, s:O, s:O, s:I, s:s}", "v", KEYSTORE_VERSION, "enc", enc, "sig", sig,
                     "sig_since_ms", (json_int_t)ks->sig_since_ms, "ticket_secret", secret);
    if (root == NULL)
        goto out;
    if (ks->log != NULL && (json_object_set_new(root, "log", ks_signer_json(ks->log)) != 0 ||
                            json_object_set_new(root, "log_since_ms",
                                                json_integer((json_int_t)ks->log_since_ms)) != 0))
        goto out;
    if (ks->log_previous != NULL &&
        (json_object_set_new(root, "log_previous", ks_signer_json(ks->log_previous)) != 0 ||
         json_object_set_new(root, "log_previous_since_ms",
                             json_integer((json_int_t)ks->log_previous_since_ms)) != 0))
        goto out;
    if (json_object_set_new(root, "retired", ks_history_json(ks)) != 0)
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
    /* jansson keeps the strings it was given: wipe the signer keys in it. */
    if (root != NULL) {
        const char *names[] = {"log", "log_previous"};
        for (size_t i = 0; i < 2; i++) {
            json_t *v = json_object_get(root, names[i]);
            if (json_is_string(v))
                OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
        }
    }
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
    ks->sig_since_ms = ks_now_ms();
    return ks;
}

/* An optional time member: absent is 0. */
static bool ks_time(const json_t *obj, const char *name, uint64_t *out)
{
    *out = 0;
    return json_object_get(obj, name) == NULL || sjson_uint(obj, name, out);
}

static note_signer *ks_signer(const json_t *root, const char *name)
{
    size_t n = 0;
    const char *text = sjson_string(root, name, &n);
    note_signer *s = NULL;
    if (text == NULL || note_signer_parse(text, n, &s) != NOTE_OK)
        return NULL;
    return s;
}

static int ks_parse_history(keystore *ks, const json_t *list, const char *path, char *err,
                            size_t errlen)
{
    size_t i;
    const json_t *item;
    if (list == NULL)
        return 0;
    if (!json_is_array(list)) {
        ks_err(err, errlen, "%s: \"retired\" must be a list", path);
        return -1;
    }
    json_array_foreach(list, i, item)
    {
        const char *use = sjson_string(item, "use", NULL);
        uint64_t since = 0, retired = 0;
        if (use == NULL || !ks_time(item, "since_ms", &since) ||
            !sjson_uint(item, "retired_ms", &retired)) {
            ks_err(err, errlen, "%s: retired key %zu needs \"use\" and \"retired_ms\"", path, i);
            return -1;
        }
        if ((strcmp(use, "sig") == 0 && ks->old_sig_count == KEYSTORE_RETIRED_MAX) ||
            (strcmp(use, "log") == 0 && ks->old_log_count == KEYSTORE_RETIRED_MAX)) {
            ks_err(err, errlen, "%s: more than %d retired %s keys", path, KEYSTORE_RETIRED_MAX,
                   use);
            return -1;
        }
        if (strcmp(use, "sig") == 0) {
            eckey *key = eckey_from_jwk(sjson_object(item, "jwk"));
            if (key == NULL) {
                ks_err(err, errlen, "%s: retired key %zu: \"jwk\" is not a P-256 JWK", path, i);
                return -1;
            }
            ks->old_sig[ks->old_sig_count++] =
                (keystore_old_sig){.key = key, .since_ms = since, .retired_ms = retired};
        } else if (strcmp(use, "log") == 0) {
            size_t n = 0;
            const char *text = sjson_string(item, "key", &n);
            note_verifier *v = NULL;
            if (text == NULL || note_verifier_parse(text, n, &v) != NOTE_OK) {
                ks_err(err, errlen, "%s: retired key %zu: \"key\" is not a verifier key", path, i);
                return -1;
            }
            ks->old_log[ks->old_log_count++] =
                (keystore_old_log){.key = v, .since_ms = since, .retired_ms = retired};
        } else {
            ks_err(err, errlen, "%s: retired key %zu: unknown use \"%s\"", path, i, use);
            return -1;
        }
    }
    return 0;
}

static keystore *ks_parse(const char *path, const char *text, size_t n, char *err, size_t errlen)
{
    char jerr[128];
    json_t *root = NULL;
    keystore *ks = NULL;
    const char *secret;
    size_t slen = 0;
    uint64_t v = 0;

    root = sjson_parse_object(text, n, 5, jerr, sizeof(jerr));
    if (root == NULL) {
        ks_err(err, errlen, "%s: %s", path, jerr);
        goto fail;
    }
    ks = calloc(1, sizeof(*ks));
    if (ks == NULL) {
        ks_err(err, errlen, "out of memory");
        goto fail;
    }
    /* Version 1 files are version 2 without a log key or history. */
    if (!sjson_uint(root, "v", &v) || v < 1 || v > KEYSTORE_VERSION) {
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
    if (!ks_time(root, "sig_since_ms", &ks->sig_since_ms) ||
        !ks_time(root, "log_since_ms", &ks->log_since_ms) ||
        !ks_time(root, "log_previous_since_ms", &ks->log_previous_since_ms)) {
        ks_err(err, errlen, "%s: a key's time must be Unix milliseconds", path);
        goto fail;
    }
    if (json_object_get(root, "log") != NULL && (ks->log = ks_signer(root, "log")) == NULL) {
        ks_err(err, errlen, "%s: \"log\" must be an Ed25519 signer key (PRIVATE+KEY+...)", path);
        goto fail;
    }
    if (json_object_get(root, "log_previous") != NULL &&
        (ks->log == NULL || (ks->log_previous = ks_signer(root, "log_previous")) == NULL)) {
        ks_err(err, errlen, "%s: \"log_previous\" must be an Ed25519 signer key, beside \"log\"",
               path);
        goto fail;
    }
    if (ks_parse_history(ks, json_object_get(root, "retired"), path, err, errlen) != 0)
        goto fail;
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
    if (ks_path(state_dir, path, err, errlen) != 0)
        return NULL;
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
    json_t *enc, *sig, *set = NULL, *keys;
    char *text = NULL;

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
    keys = set != NULL ? json_object_get(set, "keys") : NULL;
    if (keys == NULL)
        goto out;
    /* Retired signing keys verify old receipts; they sign nothing more. */
    for (size_t i = 0; i < ks->old_sig_count; i++) {
        json_t *old = ks_public_jwk(ks->old_sig[i].key, "sig");
        if (old == NULL || json_object_set_new(old, "key_ops", json_pack("[s]", "verify")) != 0 ||
            json_object_set_new(old, "retired_ms",
                                json_integer((json_int_t)ks->old_sig[i].retired_ms)) != 0 ||
            json_array_append_new(keys, old) != 0) {
            json_decref(old);
            goto out;
        }
    }
    text = json_dumps(set, JSON_COMPACT);
out:
    json_decref(set);
    return text;
}

const eckey *keystore_find_sig(const keystore *ks, const char *kid, uint64_t *since_ms,
                               uint64_t *retired_ms)
{
    if (strcmp(eckey_thumbprint(ks->sig), kid) == 0) {
        *since_ms = ks->sig_since_ms;
        *retired_ms = 0;
        return ks->sig;
    }
    for (size_t i = 0; i < ks->old_sig_count; i++) {
        if (strcmp(eckey_thumbprint(ks->old_sig[i].key), kid) == 0) {
            *since_ms = ks->old_sig[i].since_ms;
            *retired_ms = ks->old_sig[i].retired_ms;
            return ks->old_sig[i].key;
        }
    }
    return NULL;
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

static bool ks_same_signer(const note_signer *a, const note_signer *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    char ta[NOTE_SKEY_MAX], tb[NOTE_SKEY_MAX];
    size_t na = note_signer_text(a, ta), nb = note_signer_text(b, tb);
    bool same = na == nb && CRYPTO_memcmp(ta, tb, na) == 0;
    OPENSSL_cleanse(ta, sizeof ta);
    OPENSSL_cleanse(tb, sizeof tb);
    return same;
}

static bool ks_same_verifier(const note_verifier *a, const note_verifier *b)
{
    return note_verifier_id(a) == note_verifier_id(b) &&
           strcmp(note_verifier_name(a), note_verifier_name(b)) == 0 &&
           memcmp(note_verifier_public_key(a), note_verifier_public_key(b), 32) == 0;
}

/* Whether the log key s is v's private half. */
static bool ks_signer_is(const note_signer *s, const note_verifier *v)
{
    note_verifier *mine = note_signer_verifier(s);
    bool same = mine != NULL && ks_same_verifier(mine, v);
    note_verifier_free(mine);
    return same;
}

bool keystore_same(const keystore *a, const keystore *b)
{
    if (strcmp(eckey_thumbprint(a->enc), eckey_thumbprint(b->enc)) != 0 ||
        strcmp(eckey_thumbprint(a->sig), eckey_thumbprint(b->sig)) != 0 ||
        CRYPTO_memcmp(a->ticket_secret, b->ticket_secret, TICKET_SECRET_LEN) != 0 ||
        !ks_same_signer(a->log, b->log) || !ks_same_signer(a->log_previous, b->log_previous) ||
        a->old_sig_count != b->old_sig_count || a->old_log_count != b->old_log_count)
        return false;
    for (size_t i = 0; i < a->old_sig_count; i++)
        if (strcmp(eckey_thumbprint(a->old_sig[i].key), eckey_thumbprint(b->old_sig[i].key)) != 0)
            return false;
    for (size_t i = 0; i < a->old_log_count; i++)
        if (!ks_same_verifier(a->old_log[i].key, b->old_log[i].key))
            return false;
    return true;
}

/*
 * Whether next succeeds there: the same encryption key and ticket secret
 * (so nothing given out is voided), and there's signing and log keys are
 * next's own or in its history.
 */
static bool ks_succeeds(const keystore *next, const keystore *there)
{
    if (strcmp(eckey_thumbprint(next->enc), eckey_thumbprint(there->enc)) != 0 ||
        CRYPTO_memcmp(next->ticket_secret, there->ticket_secret, TICKET_SECRET_LEN) != 0)
        return false;
    uint64_t since, retired;
    if (keystore_find_sig(next, eckey_thumbprint(there->sig), &since, &retired) == NULL)
        return false;
    if (there->log == NULL || ks_same_signer(next->log, there->log) ||
        ks_same_signer(next->log_previous, there->log))
        return true;
    for (size_t i = 0; i < next->old_log_count; i++)
        if (ks_signer_is(there->log, next->old_log[i].key))
            return true;
    return false;
}

int keystore_install(const char *state_dir, const keystore *ks, bool replace, char *err,
                     size_t errlen)
{
    char path[KEYSTORE_PATH_MAX];
    if (ks_path(state_dir, path, err, errlen) != 0)
        return -1;
    if (ks_check_dir(state_dir, true, err, errlen) != 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        keystore *there = ks_load(path, fd, err, errlen);
        close(fd);
        if (there == NULL && !replace)
            return -1;
        bool same = there != NULL && keystore_same(there, ks);
        bool succeeds = there != NULL && ks_succeeds(ks, there);
        keystore_free(there);
        if (same)
            return 1;
        if (!replace && !succeeds) {
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

int keystore_add_log_key(keystore *ks, const char *state_dir, const char *origin, uint64_t now_ms,
                         char *err, size_t errlen)
{
    char path[KEYSTORE_PATH_MAX];
    if (ks->log != NULL)
        return 0;
    if (ks_path(state_dir, path, err, errlen) != 0)
        return -1;
    note_result nr = note_signer_generate(origin, strlen(origin), &ks->log);
    if (nr != NOTE_OK) {
        ks_err(err, errlen, "cannot make the log key \"%s\": %s", origin, note_result_str(nr));
        return -1;
    }
    ks->log_since_ms = now_ms;
    if (ks_store(path, ks, true, err, errlen) != 0) {
        note_signer_free(ks->log);
        ks->log = NULL;
        return -1;
    }
    return 1;
}

keystore *keystore_rotate(const char *state_dir, keystore_key which, uint64_t now_ms, char *err,
                          size_t errlen)
{
    char path[KEYSTORE_PATH_MAX];
    keystore *ks = keystore_open(state_dir, false, NULL, err, errlen);
    if (ks == NULL || ks_path(state_dir, path, err, errlen) != 0)
        goto fail;
    if (which == KEYSTORE_SIGNING) {
        if (ks->old_sig_count == KEYSTORE_RETIRED_MAX) {
            ks_err(err, errlen, "%s already holds %d retired signing keys", path,
                   KEYSTORE_RETIRED_MAX);
            goto fail;
        }
        eckey *fresh = eckey_generate();
        eckey *old = eckey_from_point(eckey_point(ks->sig), ECKEY_POINT_LEN);
        if (fresh == NULL || old == NULL) {
            eckey_free(fresh);
            eckey_free(old);
            ks_err(err, errlen, "cannot make a signing key");
            goto fail;
        }
        memmove(&ks->old_sig[1], &ks->old_sig[0], ks->old_sig_count * sizeof ks->old_sig[0]);
        ks->old_sig[0] =
            (keystore_old_sig){.key = old, .since_ms = ks->sig_since_ms, .retired_ms = now_ms};
        ks->old_sig_count++;
        eckey_free(ks->sig); /* the private half goes: nothing signs with it any more */
        ks->sig = fresh;
        ks->sig_since_ms = now_ms;
    } else {
        if (ks->log == NULL) {
            ks_err(err, errlen, "%s has no log key yet: the server makes one when it starts", path);
            goto fail;
        }
        if (ks->log_previous != NULL) {
            ks_err(err, errlen,
                   "the log has not announced the last rotation of its key yet: start the "
                   "server once (it does), then rotate again");
            goto fail;
        }
        if (ks->old_log_count == KEYSTORE_RETIRED_MAX) {
            ks_err(err, errlen, "%s already holds %d retired log keys", path, KEYSTORE_RETIRED_MAX);
            goto fail;
        }
        const char *name = note_signer_name(ks->log);
        note_signer *fresh = NULL;
        note_result nr = note_signer_generate(name, strlen(name), &fresh);
        if (nr != NOTE_OK) {
            ks_err(err, errlen, "cannot make a log key: %s", note_result_str(nr));
            goto fail;
        }
        ks->log_previous = ks->log;
        ks->log_previous_since_ms = ks->log_since_ms;
        ks->log = fresh;
        ks->log_since_ms = now_ms;
    }
    if (ks_store(path, ks, true, err, errlen) != 0)
        goto fail;
    return ks;
fail:
    keystore_free(ks);
    return NULL;
}

int keystore_forget_previous(keystore *ks, const char *state_dir, char *err, size_t errlen)
{
    char path[KEYSTORE_PATH_MAX];
    if (ks->log_previous == NULL)
        return 0;
    if (ks_path(state_dir, path, err, errlen) != 0)
        return -1;
    if (ks->old_log_count == KEYSTORE_RETIRED_MAX) {
        ks_err(err, errlen, "%s already holds %d retired log keys", path, KEYSTORE_RETIRED_MAX);
        return -1;
    }
    note_verifier *old = note_signer_verifier(ks->log_previous);
    if (old == NULL) {
        ks_err(err, errlen, "out of memory");
        return -1;
    }
    memmove(&ks->old_log[1], &ks->old_log[0], ks->old_log_count * sizeof ks->old_log[0]);
    ks->old_log[0] = (keystore_old_log){
        .key = old, .since_ms = ks->log_previous_since_ms, .retired_ms = ks->log_since_ms};
    ks->old_log_count++;
    note_signer *previous = ks->log_previous;
    ks->log_previous = NULL;
    if (ks_store(path, ks, true, err, errlen) != 0) {
        /* Kept as it was: the file still has it. */
        ks->log_previous = previous;
        ks->old_log_count--;
        memmove(&ks->old_log[0], &ks->old_log[1], ks->old_log_count * sizeof ks->old_log[0]);
        note_verifier_free(old);
        return -1;
    }
    note_signer_free(previous);
    return 0;
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
