#include "lib/rc_client.h"

#include "common/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t rc_client_curl_once = PTHREAD_ONCE_INIT;
static CURLcode rc_client_curl_init_result = CURLE_FAILED_INIT;

/* curl_global_init() is not thread-safe in every libcurl a user may have;
 * doing it once here spares every caller from knowing. */
static void rc_client_curl_init(void)
{
    rc_client_curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

RECEIPT_API const char *receipt_strerror(receipt_result r)
{
    switch (r) {
    case RECEIPT_OK:
        return "success";
    case RECEIPT_SPOOLED:
        return "confirmation spooled for a later attempt";
    case RECEIPT_ERR_ARGUMENT:
        return "invalid argument";
    case RECEIPT_ERR_NOMEM:
        return "out of memory";
    case RECEIPT_ERR_IO:
        return "file system error";
    case RECEIPT_ERR_KEY:
        return "unusable client key";
    case RECEIPT_ERR_NO_KEY:
        return "no client key";
    case RECEIPT_ERR_EXISTS:
        return "file exists";
    case RECEIPT_ERR_NETWORK:
        return "network error";
    case RECEIPT_ERR_HTTP:
        return "unexpected HTTP status";
    case RECEIPT_ERR_PROTOCOL:
        return "protocol violation by the server";
    case RECEIPT_ERR_DIGEST:
        return "the bytes received differ from the content's digest";
    case RECEIPT_ERR_POLICY:
        return "refused by policy";
    case RECEIPT_ERR_REJECTED:
        return "confirmation rejected by the server";
    case RECEIPT_ERR_VERIFY:
        return "receipt verification failed";
    case RECEIPT_ERR_ABORTED:
        return "aborted by the caller";
    case RECEIPT_ERR_INTERNAL:
        return "internal error";
    case RECEIPT_ERR_TLS:
        return "TLS failure: the server could not be authenticated";
    case RECEIPT_ERR_INCONSISTENT:
        return "the log is not consistent with what was seen before";
    }
    return "unknown result";
}

RECEIPT_API const char *receipt_version(void)
{
    return RECEIPT_VERSION;
}

RECEIPT_API void receipt_free(void *p)
{
    free(p);
}

receipt_result rc_fail(receipt_client *c, receipt_result r, const char *fmt, ...)
{
    if (c == NULL)
        return r;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    return r;
}

void rc_log(receipt_client *c, receipt_log_level level, const char *fmt, ...)
{
    if (c == NULL || c->log == NULL)
        return;
    char line[RC_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->log(level, line, c->log_user);
}

uint64_t rc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void rc_client_set_key(receipt_client *c, eckey *key)
{
    eckey_free(c->key);
    c->key = key;
    c->client_id[0] = '\0';
    c->key_header[0] = '\0';
    /* Derived keys belong to the old client key. */
    rc_jwks_cache_forget_keys(&c->jwks);
    if (key != NULL) {
        memcpy(c->client_id, eckey_thumbprint(key), ECKEY_THUMBPRINT_LEN);
        c->client_id[ECKEY_THUMBPRINT_LEN] = '\0';
        eckey_header_value(key, c->key_header);
    }
}

RECEIPT_API receipt_result receipt_client_new(receipt_client **out)
{
    if (out == NULL)
        return RECEIPT_ERR_ARGUMENT;
    *out = NULL;
    pthread_once(&rc_client_curl_once, rc_client_curl_init);
    if (rc_client_curl_init_result != CURLE_OK)
        return RECEIPT_ERR_INTERNAL;
    receipt_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return RECEIPT_ERR_NOMEM;
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        free(c);
        return RECEIPT_ERR_NOMEM;
    }
    c->connect_ms = RC_CONNECT_MS_DEFAULT;
    c->stall_ms = RC_STALL_MS_DEFAULT;
    c->request_ms = RC_REQUEST_MS_DEFAULT;
    *out = c;
    return RECEIPT_OK;
}

RECEIPT_API void receipt_client_free(receipt_client *c)
{
    if (c == NULL)
        return;
    rc_client_set_key(c, NULL);
    rc_jwks_cache_clear(&c->jwks);
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    free(c->ca_file);
    free(c->ca_path);
    free(c->spool_dir);
    free(c->receipt_dir);
    free(c);
}

RECEIPT_API const char *receipt_errmsg(const receipt_client *c)
{
    return c == NULL ? "no client" : c->errmsg;
}

RECEIPT_API void receipt_client_set_log(receipt_client *c, receipt_log_fn fn, void *user)
{
    if (c == NULL)
        return;
    c->log = fn;
    c->log_user = user;
}

RECEIPT_API void receipt_client_set_progress(receipt_client *c, receipt_progress_fn fn, void *user)
{
    if (c == NULL)
        return;
    c->progress = fn;
    c->progress_user = user;
}

RECEIPT_API void receipt_client_set_flags(receipt_client *c, unsigned flags)
{
    if (c != NULL)
        c->flags = flags;
}

RECEIPT_API void receipt_client_set_timeouts(receipt_client *c, long connect_ms, long stall_ms,
                                             long request_ms)
{
    if (c == NULL)
        return;
    c->connect_ms = connect_ms > 0 ? connect_ms : RC_CONNECT_MS_DEFAULT;
    c->stall_ms = stall_ms > 0 ? stall_ms : RC_STALL_MS_DEFAULT;
    c->request_ms = request_ms > 0 ? request_ms : RC_REQUEST_MS_DEFAULT;
}

static receipt_result rc_client_set_string(receipt_client *c, char **slot, const char *value)
{
    char *copy = NULL;
    if (value != NULL && (copy = strdup(value)) == NULL)
        return rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
    free(*slot);
    *slot = copy;
    return RECEIPT_OK;
}

/* Whether path can be opened for reading as the kind of file wanted; a
 * mistyped name is reported now rather than as a TLS failure later. */
static receipt_result rc_client_check_readable(receipt_client *c, const char *what,
                                               const char *path, bool want_dir)
{
    if (path[0] == '\0')
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "empty %s name", what);
    int fd = open(path, O_RDONLY | O_CLOEXEC | (want_dir ? O_DIRECTORY : 0));
    if (fd < 0)
        return rc_fail(c, RECEIPT_ERR_IO, "%s %s: %s", what, path, strerror(errno));
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
    close(fd);
    if (!ok)
        return rc_fail(c, RECEIPT_ERR_IO, "%s %s: not a %s", what, path,
                       want_dir ? "directory" : "regular file");
    return RECEIPT_OK;
}

RECEIPT_API receipt_result receipt_client_set_ca(receipt_client *c, const char *ca_file,
                                                 const char *ca_path)
{
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    c->errmsg[0] = '\0';
    receipt_result r;
    if (ca_file != NULL &&
        (r = rc_client_check_readable(c, "CA file", ca_file, false)) != RECEIPT_OK)
        return r;
    if (ca_path != NULL &&
        (r = rc_client_check_readable(c, "CA directory", ca_path, true)) != RECEIPT_OK)
        return r;
    char *file = NULL;
    if (ca_file != NULL && (file = strdup(ca_file)) == NULL)
        return rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
    if ((r = rc_client_set_string(c, &c->ca_path, ca_path)) != RECEIPT_OK) {
        free(file);
        return r;
    }
    free(c->ca_file);
    c->ca_file = file;
    return RECEIPT_OK;
}

RECEIPT_API receipt_result receipt_client_set_ca_file(receipt_client *c, const char *path)
{
    return receipt_client_set_ca(c, path, NULL);
}

static receipt_result rc_client_set_dir(receipt_client *c, char **slot, const char *dir)
{
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    c->errmsg[0] = '\0';
    if (dir != NULL) {
        if (dir[0] == '\0')
            return rc_fail(c, RECEIPT_ERR_ARGUMENT, "empty directory name");
        char err[RC_ERRMSG_MAX];
        if (durable_mkdirs(dir, 0700, err, sizeof(err)) != 0)
            return rc_fail(c, RECEIPT_ERR_IO, "%s", err);
    }
    return rc_client_set_string(c, slot, dir);
}

RECEIPT_API receipt_result receipt_client_set_spool_dir(receipt_client *c, const char *dir)
{
    return rc_client_set_dir(c, c == NULL ? NULL : &c->spool_dir, dir);
}

RECEIPT_API receipt_result receipt_client_set_receipt_dir(receipt_client *c, const char *dir)
{
    return rc_client_set_dir(c, c == NULL ? NULL : &c->receipt_dir, dir);
}

RECEIPT_API const char *receipt_client_id(const receipt_client *c)
{
    return c == NULL || c->key == NULL ? NULL : c->client_id;
}

RECEIPT_API const char *receipt_client_key_header(const receipt_client *c)
{
    return c == NULL || c->key == NULL ? NULL : c->key_header;
}
