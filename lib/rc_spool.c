#include "lib/rc_spool.h"

#include "common/durable.h"
#include "common/sjson.h"
#include "common/uuid7.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RC_SPOOL_FILE_MODE 0600

void rc_spool_entry_clear(rc_spool_entry *e)
{
    if (e == NULL)
        return;
    free(e->confirm_url);
    free(e->body);
    free(e->jwks);
    free(e->url);
    free(e->content_path);
    free(e->file);
    memset(e, 0, sizeof(*e));
}

void rc_spool_entry_name(uint64_t created_ms, const char *delivery,
                         char name[RC_SPOOL_NAME_MAX + 1])
{
    snprintf(name, RC_SPOOL_NAME_MAX + 1, "%016llu-%s%s", (unsigned long long)created_ms, delivery,
             RC_SPOOL_SUFFIX);
}

static int rc_spool_path(const char *dir, const char *name, char *out)
{
    int n = snprintf(out, DURABLE_PATH_MAX, "%s/%s", dir, name);
    return n > 0 && n < DURABLE_PATH_MAX ? 0 : -1;
}

static int rc_spool_set(json_t *obj, const char *key, json_t *value)
{
    return value == NULL ? -1 : json_object_set_new(obj, key, value);
}

static json_t *rc_spool_str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static char *rc_spool_serialise(const rc_spool_entry *e)
{
    json_t *obj = json_object();
    char *text = NULL;
    json_t *jwks = NULL;
    if (obj == NULL)
        return NULL;
    if (e->jwks != NULL) {
        jwks = sjson_parse_object(e->jwks, strlen(e->jwks), SJSON_MAX_DEPTH, NULL, 0);
        if (jwks == NULL)
            goto out;
    }
    int bad = 0;
    bad |= rc_spool_set(obj, "v", json_integer(1));
    bad |= rc_spool_set(obj, "delivery", json_string(e->delivery));
    bad |= rc_spool_set(obj, "confirm", json_string(e->confirm_url));
    bad |= rc_spool_set(obj, "body", json_string(e->body));
    bad |= rc_spool_set(obj, "client_key", json_string(e->client_key));
    bad |= rc_spool_set(obj, "client_id", json_string(e->client_id));
    bad |= rc_spool_set(obj, "jwks", jwks != NULL ? json_incref(jwks) : json_null());
    bad |= rc_spool_set(obj, "url", rc_spool_str_or_null(e->url));
    bad |= rc_spool_set(obj, "content_path", rc_spool_str_or_null(e->content_path));
    bad |= rc_spool_set(obj, "sha256", json_string(e->sha256));
    bad |= rc_spool_set(obj, "size", json_integer((json_int_t)e->size));
    bad |= rc_spool_set(obj, "expected_sha256", json_string(e->expected_sha256));
    bad |= rc_spool_set(obj, "expected_size", json_integer((json_int_t)e->expected_size));
    bad |= rc_spool_set(obj, "intact", json_boolean(e->intact));
    bad |= rc_spool_set(obj, "file", rc_spool_str_or_null(e->file));
    bad |= rc_spool_set(obj, "created_ms", json_integer((json_int_t)e->created_ms));
    bad |= rc_spool_set(obj, "attempts", json_integer((json_int_t)e->attempts));
    bad |= rc_spool_set(obj, "next_attempt_ms", json_integer((json_int_t)e->next_attempt_ms));
    bad |= rc_spool_set(obj, "last_error", json_string(e->last_error));
    if (bad == 0)
        text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
    json_decref(jwks);
    json_decref(obj);
    return text;
}

int rc_spool_stage(const char *dir, rc_spool_entry *e, char *tmp, char *final_path, char *err,
                   size_t errlen)
{
    if (e->name[0] == '\0')
        rc_spool_entry_name(e->created_ms, e->delivery, e->name);
    if (rc_spool_path(dir, e->name, final_path) != 0) {
        snprintf(err, errlen, "spool path too long");
        return -1;
    }
    char *text = rc_spool_serialise(e);
    if (text == NULL) {
        snprintf(err, errlen, "cannot serialise the spool entry of %s", e->delivery);
        return -1;
    }
    size_t n = strlen(text);
    int rc = -1;
    if (n > RC_SPOOL_ENTRY_MAX) {
        snprintf(err, errlen, "the spool entry of %s is too large", e->delivery);
        goto out;
    }
    text[n] = '\n'; /* replaces the NUL: the file ends in a newline */
    rc = durable_stage(final_path, text, n + 1, RC_SPOOL_FILE_MODE, tmp, err, errlen);
out:
    free(text);
    return rc;
}

int rc_spool_write(const char *dir, rc_spool_entry *e, char *err, size_t errlen)
{
    char tmp[DURABLE_PATH_MAX], path[DURABLE_PATH_MAX];
    if (rc_spool_stage(dir, e, tmp, path, err, errlen) != 0)
        return -1;
    return durable_commit(tmp, path, true, err, errlen) == 0 ? 0 : -1;
}

static int rc_spool_dup(const json_t *obj, const char *key, bool nullable, char **out)
{
    const json_t *v = json_object_get(obj, key);
    if (nullable && (v == NULL || json_is_null(v))) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return -1;
    *out = strdup(json_string_value(v));
    return *out == NULL ? -1 : 0;
}

static int rc_spool_copy(const json_t *obj, const char *key, char *out, size_t exact_len)
{
    size_t len = 0;
    const char *s = sjson_string(obj, key, &len);
    if (s == NULL || len != exact_len)
        return -1;
    memcpy(out, s, len + 1);
    return 0;
}

int rc_spool_read(const char *dir, const char *name, rc_spool_entry *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    char path[DURABLE_PATH_MAX];
    if (strlen(name) > RC_SPOOL_NAME_MAX || rc_spool_path(dir, name, path) != 0) {
        snprintf(err, errlen, "bad spool entry name %s", name);
        return -2;
    }
    char *text = NULL;
    size_t len = 0;
    if (durable_read(path, RC_SPOOL_ENTRY_MAX, &text, &len, NULL, err, errlen) != 0)
        return errno == EFBIG ? -2 : -1;
    int rc = -2;
    json_t *obj = sjson_parse_object(text, len, SJSON_MAX_DEPTH, err, errlen);
    if (obj == NULL)
        goto out;
    uint64_t v = 0, size = 0, expected_size = 0, created = 0, attempts = 0, next = 0;
    const json_t *jwks = json_object_get(obj, "jwks");
    const json_t *intact = json_object_get(obj, "intact");
    const char *last_error = sjson_string(obj, "last_error", NULL);
    if (!sjson_uint(obj, "v", &v) || v != 1 || !sjson_uint(obj, "size", &size) ||
        !sjson_uint(obj, "created_ms", &created) || !sjson_uint(obj, "attempts", &attempts) ||
        attempts > 1000000 || !sjson_uint(obj, "next_attempt_ms", &next) ||
        !json_is_boolean(intact) ||
        rc_spool_copy(obj, "delivery", e->delivery, UUID7_STR_LEN) != 0 ||
        /* it names the receipt file: nothing but a delivery ID */
        uuid7_parse(e->delivery, strlen(e->delivery), &(uuid7){0}) != 0 ||
        rc_spool_copy(obj, "client_key", e->client_key, ECKEY_POINT_B64_LEN) != 0 ||
        rc_spool_copy(obj, "client_id", e->client_id, ECKEY_THUMBPRINT_LEN) != 0 ||
        rc_spool_copy(obj, "sha256", e->sha256, RC_SHA256_B64_LEN) != 0 ||
        rc_spool_copy(obj, "expected_sha256", e->expected_sha256, RC_SHA256_B64_LEN) != 0 ||
        !sjson_uint(obj, "expected_size", &expected_size) ||
        rc_spool_dup(obj, "confirm", false, &e->confirm_url) != 0 ||
        rc_spool_dup(obj, "body", false, &e->body) != 0 ||
        rc_spool_dup(obj, "url", true, &e->url) != 0 ||
        rc_spool_dup(obj, "content_path", true, &e->content_path) != 0 ||
        rc_spool_dup(obj, "file", true, &e->file) != 0 ||
        (jwks != NULL && !json_is_null(jwks) && !json_is_object(jwks))) {
        snprintf(err, errlen, "spool entry %s lacks a member or has a bad one", name);
        goto out;
    }
    if (json_is_object(jwks) &&
        (e->jwks = json_dumps(jwks, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL) {
        rc = -1;
        goto out;
    }
    snprintf(e->name, sizeof(e->name), "%s", name);
    snprintf(e->last_error, sizeof(e->last_error), "%s", last_error ? last_error : "");
    e->size = size;
    e->expected_size = expected_size;
    e->intact = json_is_true(intact);
    e->created_ms = created;
    e->attempts = (unsigned)attempts;
    e->next_attempt_ms = next;
    rc = 0;
out:
    if (rc != 0)
        rc_spool_entry_clear(e);
    json_decref(obj);
    free(text);
    return rc;
}

int rc_spool_remove(const char *dir, const char *name, char *err, size_t errlen)
{
    char path[DURABLE_PATH_MAX];
    if (rc_spool_path(dir, name, path) != 0)
        return -1;
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
        return -1;
    }
    /* Should the removal not survive a crash, the entry is sent again and
     * the server answers it as it did: nothing worth failing for. */
    int synced = durable_sync_parent(path);
    (void)synced;
    return 0;
}

int rc_spool_quarantine(const char *dir, const char *name)
{
    char path[DURABLE_PATH_MAX], bad[DURABLE_PATH_MAX];
    if (rc_spool_path(dir, name, path) != 0 ||
        snprintf(bad, sizeof(bad), "%s%s", path, RC_SPOOL_BAD_SUFFIX) >= (int)sizeof(bad))
        return -1;
    if (rename(path, bad) != 0)
        return -1;
    return durable_sync_parent(bad);
}

static bool rc_spool_is_entry_name(const char *name)
{
    size_t n = strlen(name);
    size_t sl = sizeof(RC_SPOOL_SUFFIX) - 1;
    return name[0] != '.' && n > sl && n <= RC_SPOOL_NAME_MAX &&
           strcmp(name + n - sl, RC_SPOOL_SUFFIX) == 0;
}

static int rc_spool_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void rc_spool_list_free(char **names, size_t count)
{
    if (names == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

int rc_spool_list(const char *dir, char ***names, size_t *count, char *err, size_t errlen)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "cannot open spool directory %s: %s", dir, strerror(errno));
        return -1;
    }
    char **list = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (!rc_spool_is_entry_name(de->d_name))
            continue;
        if (n == RC_SPOOL_LIST_MAX)
            break; /* the rest waits for the next flush */
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **grown = realloc(list, ncap * sizeof(*grown));
            if (grown == NULL)
                goto nomem;
            list = grown;
            cap = ncap;
        }
        if ((list[n] = strdup(de->d_name)) == NULL)
            goto nomem;
        n++;
    }
    if (errno != 0) {
        snprintf(err, errlen, "cannot read spool directory %s: %s", dir, strerror(errno));
        goto out;
    }
    if (n > 0)
        qsort(list, n, sizeof(*list), rc_spool_cmp);
    *names = list;
    *count = n;
    list = NULL;
    rc = 0;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    rc_spool_list_free(list, n);
    closedir(d);
    return rc;
}

size_t rc_spool_sweep(const char *dir, uint64_t now_ms, uint64_t max_age_ms)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    size_t removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!durable_is_temp_name(de->d_name))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        uint64_t mtime_ms =
            (uint64_t)st.st_mtim.tv_sec * 1000u + (uint64_t)st.st_mtim.tv_nsec / 1000000u;
        if (mtime_ms + max_age_ms <= now_ms && unlinkat(dirfd(d), de->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

uint64_t rc_spool_backoff_ms(unsigned attempts, uint64_t random)
{
    if (attempts == 0)
        return 0;
    uint64_t d = RC_SPOOL_BACKOFF_CAP_MS;
    /* 2^12 s already exceeds the cap; larger shifts would overflow. */
    if (attempts - 1 < 12)
        d = RC_SPOOL_BACKOFF_BASE_MS << (attempts - 1);
    if (d > RC_SPOOL_BACKOFF_CAP_MS)
        d = RC_SPOOL_BACKOFF_CAP_MS;
    uint64_t half = d / 2;
    return half + random % (d - half + 1);
}

void rc_spool_entry_failed(rc_spool_entry *e, uint64_t now_ms, uint64_t random, long retry_after_s,
                           const char *why)
{
    if (e->attempts < UINT32_MAX)
        e->attempts++;
    uint64_t wait = rc_spool_backoff_ms(e->attempts, random);
    if (retry_after_s >= 0) {
        uint64_t ra = (uint64_t)retry_after_s * 1000u;
        if (ra > RC_SPOOL_RETRY_AFTER_MAX_MS)
            ra = RC_SPOOL_RETRY_AFTER_MAX_MS;
        if (ra > wait)
            wait = ra;
    }
    e->next_attempt_ms = now_ms + wait;
    snprintf(e->last_error, sizeof(e->last_error), "%s", why ? why : "");
}

bool rc_spool_due(const rc_spool_entry *e, uint64_t now_ms)
{
    return e->next_attempt_ms <= now_ms;
}
