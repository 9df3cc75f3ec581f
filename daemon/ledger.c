#include "daemon/ledger_backend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define LEDGER_SQLITE_SCHEME "sqlite:"
#define LEDGER_DEFAULT_FILE  "ledger.sqlite"

static const char *const status_names[] = {
    [LEDGER_ISSUED] = "issued",
    [LEDGER_BOUND] = "bound",
    [LEDGER_CONFIRMED] = "confirmed",
    [LEDGER_CORRUPTED] = "corrupted",
};

#define STATUS_COUNT (sizeof status_names / sizeof status_names[0])

const char *ledger_status_name(ledger_status status)
{
    if ((size_t)status >= STATUS_COUNT)
        return "unknown";
    return status_names[status];
}

int ledger_status_parse(const char *name, ledger_status *out)
{
    if (name == NULL || out == NULL)
        return -1;
    for (size_t i = 0; i < STATUS_COUNT; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (ledger_status)i;
            return 0;
        }
    }
    return -1;
}

static void set_err(char *err, size_t errlen, const char *msg, const char *detail)
{
    if (err == NULL || errlen == 0)
        return;
    snprintf(err, errlen, "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
}

/* Case-insensitive prefix test: URL schemes are case-insensitive (RFC 3986). */
static bool has_scheme(const char *url, const char *scheme)
{
    return strncasecmp(url, scheme, strlen(scheme)) == 0;
}

/* Resolves a URL to a backend and its target; returns the backend or NULL with err set. */
static const ledger_ops *resolve(const char *url, const char *state_dir, char *target, char *err,
                                 size_t errlen)
{
    if (url == NULL) {
        if (state_dir == NULL || state_dir[0] == '\0') {
            set_err(err, errlen, "ledger: no URL and no state directory", NULL);
            return NULL;
        }
        int n = snprintf(target, LEDGER_TARGET_MAX + 1, "%s/%s", state_dir, LEDGER_DEFAULT_FILE);
        if (n < 0 || (size_t)n > LEDGER_TARGET_MAX) {
            set_err(err, errlen, "ledger: state directory path too long", NULL);
            return NULL;
        }
        return &ledger_sqlite_ops;
    }
    if (has_scheme(url, LEDGER_SQLITE_SCHEME)) {
        const char *path = url + strlen(LEDGER_SQLITE_SCHEME);
        size_t n = strlen(path);
        if (n == 0) {
            set_err(err, errlen, "ledger URL: \"sqlite:\" needs a file path", NULL);
            return NULL;
        }
        if (n > LEDGER_TARGET_MAX) {
            set_err(err, errlen, "ledger URL: path too long", NULL);
            return NULL;
        }
        memcpy(target, path, n + 1);
        return &ledger_sqlite_ops;
    }
    if (has_scheme(url, "postgresql:") || has_scheme(url, "postgres:")) {
        set_err(err, errlen, "ledger URL: the PostgreSQL backend is not supported yet",
                "use sqlite:PATH");
        return NULL;
    }
    set_err(err, errlen, "ledger URL: unknown scheme (expected sqlite:PATH)", url);
    return NULL;
}

ledger *ledger_open(const char *url, const char *state_dir, bool read_only, char *err,
                    size_t errlen)
{
    char target[LEDGER_TARGET_MAX + 1];
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    const ledger_ops *ops = resolve(url, state_dir, target, err, errlen);
    if (ops == NULL)
        return NULL;
    return ops->open(target, read_only, err, errlen);
}

int ledger_exists(const char *url, const char *state_dir, char *err, size_t errlen)
{
    char target[LEDGER_TARGET_MAX + 1];
    struct stat st;
    const ledger_ops *ops = resolve(url, state_dir, target, err, errlen);
    if (ops == NULL)
        return -1;
    if (ops != &ledger_sqlite_ops)
        return 1;
    return stat(target, &st) == 0 || errno != ENOENT;
}

void ledger_close(ledger *lg)
{
    if (lg == NULL)
        return;
    lg->ops->close(lg);
}

const char *ledger_backend(const ledger *lg)
{
    return lg != NULL ? lg->ops->name : "none";
}

const char *ledger_error(const ledger *lg)
{
    return lg != NULL ? lg->ops->error(lg) : "no ledger";
}

int ledger_set_lock_timeout(ledger *lg, int timeout_ms)
{
    if (lg == NULL || timeout_ms < 0)
        return -1;
    return lg->ops->set_lock_timeout(lg, timeout_ms);
}

int ledger_begin(ledger *lg)
{
    return lg != NULL ? lg->ops->begin(lg) : -1;
}

int ledger_apply(ledger *lg, const ledger_event *event, ledger_result *result)
{
    if (lg == NULL || event == NULL)
        return LEDGER_APPLY_EVENT_FAILED;
    return lg->ops->apply(lg, event, result);
}

int ledger_commit(ledger *lg)
{
    return lg != NULL ? lg->ops->commit(lg) : -1;
}

int ledger_rollback(ledger *lg)
{
    return lg != NULL ? lg->ops->rollback(lg) : -1;
}

ledger_fault ledger_last_fault(const ledger *lg)
{
    if (lg == NULL)
        return LEDGER_FAULT_FATAL;
    /* A backend that cannot tell is retried, as every failure was before. */
    return lg->ops->fault != NULL ? lg->ops->fault(lg) : LEDGER_FAULT_RETRY;
}

int ledger_verify(ledger *lg)
{
    if (lg == NULL)
        return -1;
    return lg->ops->verify != NULL ? lg->ops->verify(lg) : 0;
}

int ledger_get(ledger *lg, const char *id, ledger_delivery *out)
{
    if (lg == NULL || id == NULL || out == NULL)
        return -1;
    return lg->ops->get(lg, id, out);
}

long long ledger_count(ledger *lg)
{
    return lg != NULL ? lg->ops->count(lg) : -1;
}

int ledger_summary_read(ledger *lg, ledger_summary *out)
{
    if (lg == NULL || out == NULL)
        return -1;
    return lg->ops->summary(lg, out);
}

int ledger_content_stats_read(ledger *lg, ledger_content_fn fn, void *arg)
{
    if (lg == NULL || fn == NULL)
        return -1;
    return lg->ops->content_stats(lg, fn, arg);
}

int ledger_client_stats_read(ledger *lg, ledger_client_fn fn, void *arg)
{
    if (lg == NULL || fn == NULL)
        return -1;
    return lg->ops->client_stats(lg, fn, arg);
}

int ledger_series_read(ledger *lg, uint64_t since_ms, uint64_t until_ms, uint64_t width_ms,
                       ledger_bucket_fn fn, void *arg)
{
    if (lg == NULL || fn == NULL || width_ms == 0 || until_ms < since_ms)
        return -1;
    return lg->ops->series(lg, since_ms, until_ms, width_ms, fn, arg);
}

ledger_cursor *ledger_query(ledger *lg, const ledger_filter *filter)
{
    static const ledger_filter all;
    if (lg == NULL)
        return NULL;
    return lg->ops->query(lg, filter != NULL ? filter : &all);
}

int ledger_cursor_next(ledger_cursor *cur, ledger_delivery *out)
{
    if (cur == NULL || out == NULL)
        return -1;
    return cur->lg->ops->cursor_next(cur, out);
}

void ledger_cursor_free(ledger_cursor *cur)
{
    if (cur == NULL)
        return;
    cur->lg->ops->cursor_free(cur);
}
