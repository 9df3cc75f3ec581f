#include "daemon/ledger_backend.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

static const char *const kind_names[LEDGER_KIND_COUNT] = {
    [LEDGER_KIND_PAGE] = "page",       [LEDGER_KIND_DOWNLOAD] = "download",
    [LEDGER_KIND_VIEW] = "view",       [LEDGER_KIND_DEVICE] = "device",
    [LEDGER_KIND_TRACKED] = "tracked",
};

/* The name of value i of a table of count names, or "unknown". */
static const char *name_of(const char *const *names, size_t count, size_t i)
{
    return i < count ? names[i] : "unknown";
}

/* The index of name in a table of count names, or -1. */
static int index_of(const char *const *names, size_t count, const char *name)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < count; i++) {
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    }
    return -1;
}

const char *ledger_status_name(ledger_status status)
{
    return name_of(status_names, STATUS_COUNT, (size_t)status);
}

int ledger_status_parse(const char *name, ledger_status *out)
{
    int i = index_of(status_names, STATUS_COUNT, name);
    if (i < 0 || out == NULL)
        return -1;
    *out = (ledger_status)i;
    return 0;
}

const char *ledger_kind_name(ledger_kind kind)
{
    return name_of(kind_names, LEDGER_KIND_COUNT, (size_t)kind);
}

int ledger_kind_parse(const char *name, ledger_kind *out)
{
    int i = index_of(kind_names, LEDGER_KIND_COUNT, name);
    if (i < 0 || out == NULL)
        return -1;
    *out = (ledger_kind)i;
    return 0;
}

void ledger_summary_count(ledger_summary *s, ledger_status status, ledger_kind kind, uint64_t n)
{
    if ((size_t)kind >= LEDGER_KIND_COUNT)
        return;
    ledger_kind_counts *k = &s->kinds[kind];
    s->deliveries += n;
    k->deliveries += n;
    switch (status) {
    case LEDGER_CONFIRMED:
        s->confirmed += n;
        k->confirmed += n;
        break;
    case LEDGER_CORRUPTED:
        s->corrupted += n;
        k->corrupted += n;
        break;
    case LEDGER_BOUND:
    case LEDGER_ISSUED:
    default:
        if (status == LEDGER_BOUND)
            s->bound += n;
        s->pending += n;
        k->pending += n;
        break;
    }
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

bool ledger_url_is_pg(const char *url)
{
    if (url == NULL)
        return false;
    if (has_scheme(url, "postgresql://") || has_scheme(url, "postgres://"))
        return true;
    /* A libpq key/value string starts with a keyword and '='. */
    const char *p = url;
    while (isspace((unsigned char)*p))
        p++;
    const char *word = p;
    while (islower((unsigned char)*p) || *p == '_')
        p++;
    if (p == word)
        return false;
    while (isspace((unsigned char)*p))
        p++;
    return *p == '=';
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
    if (ledger_url_is_pg(url)) {
        size_t n = strlen(url);
        if (n > LEDGER_TARGET_MAX) {
            set_err(err, errlen, "ledger URL: too long", NULL);
            return NULL;
        }
        memcpy(target, url, n + 1);
        return &ledger_pg_ops;
    }
    /* Not echoed: it may be a connection string with a password in it. */
    set_err(err, errlen,
            "ledger URL: unknown form (expected sqlite:PATH, postgresql://... or a PostgreSQL "
            "key=value string)",
            NULL);
    return NULL;
}

ledger *ledger_open(const char *url, const char *state_dir, bool read_only, char *err,
                    size_t errlen)
{
    return ledger_open_ex(url, state_dir, read_only, NULL, err, errlen);
}

ledger *ledger_open_ex(const char *url, const char *state_dir, bool read_only, bool *unreachable,
                       char *err, size_t errlen)
{
    char target[LEDGER_TARGET_MAX + 1];
    bool scratch = false;
    if (unreachable == NULL)
        unreachable = &scratch;
    *unreachable = false;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    const ledger_ops *ops = resolve(url, state_dir, target, err, errlen);
    if (ops == NULL)
        return NULL;
    return ops->open(target, read_only, unreachable, err, errlen);
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
    free(lg->refusals);
    lg->refusals = NULL;
    free(lg->scratch);
    lg->scratch = NULL;
    lg->ops->close(lg);
}

const char *ledger_where(const ledger *lg)
{
    return lg != NULL ? lg->ops->where(lg) : "none";
}

const char *ledger_backend(const ledger *lg)
{
    return lg != NULL ? lg->ops->name : "none";
}

const char *ledger_error(const ledger *lg)
{
    if (lg == NULL)
        return "no ledger";
    /* The log's hook failed: its reason, not the rollback's. */
    if (lg->hook_failed)
        return lg->hook_err;
    return lg->ops->error(lg);
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

int ledger_event_check(const ledger_event *ev, char *err, size_t errlen)
{
    const ledger_delivery *r = &ev->row;
    /* Every number is one that JSON carries exactly (the evidence log's
     * events, RFC 8785), which also keeps signed columns positive. */
    const uint64_t max = LEDGER_NUMBER_MAX;
    const char *why = NULL;
    if (strnlen(r->id, sizeof r->id) != UUID7_STR_LEN) {
        snprintf(err, errlen, "ledger event: the delivery ID must be %d characters", UUID7_STR_LEN);
        return -1;
    }
    if (ev->kind != LEDGER_EVENT_ISSUE && ev->kind != LEDGER_EVENT_BIND &&
        ev->kind != LEDGER_EVENT_CONFIRM && ev->kind != LEDGER_EVENT_COPY)
        why = "unknown kind";
    else if (ev->kind == LEDGER_EVENT_COPY && (unsigned)r->status > LEDGER_CORRUPTED)
        why = "unknown status";
    else if (ev->kind != LEDGER_EVENT_ISSUE && ev->kind != LEDGER_EVENT_COPY &&
             r->client[0] == '\0')
        why = "no client";
    else if (ev->kind == LEDGER_EVENT_CONFIRM && r->status != LEDGER_CONFIRMED &&
             r->status != LEDGER_CORRUPTED)
        why = "a confirmation must be confirmed or corrupted";
    else if ((size_t)r->kind >= LEDGER_KIND_COUNT)
        why = "unknown delivery kind";
    else if (r->size > max || r->delivered_size > max || r->issued_ms > max || r->bound_ms > max ||
             r->confirmed_ms > max || r->received_size > max || r->received_at_ms > max)
        why = "a number is out of range";
    if (why == NULL)
        return 0;
    snprintf(err, errlen, "ledger event %s: %s", r->id, why);
    return -1;
}

void ledger_event_columns_of(const ledger_event *ev, ledger_event_columns *out)
{
    ledger_event_kind kind = ev->kind;
    /* A device names its key in the delivering request: its ISSUE is bound
     * from the start. */
    bool issued_bound = kind == LEDGER_EVENT_ISSUE && ev->row.status == LEDGER_BOUND;
    out->status = kind == LEDGER_EVENT_ISSUE  ? (issued_bound ? "bound" : "issued")
                  : kind == LEDGER_EVENT_BIND ? "bound"
                                              : ledger_status_name(ev->row.status);
    out->binding = kind != LEDGER_EVENT_ISSUE || issued_bound;
    out->confirmation = kind == LEDGER_EVENT_CONFIRM || kind == LEDGER_EVENT_COPY;
    out->insert_only = kind == LEDGER_EVENT_ISSUE || kind == LEDGER_EVENT_COPY;
}

static int size_of_checkpoint(void *arg, uint64_t size, uint64_t time_ms, const char *note)
{
    (void)time_ms;
    (void)note;
    *(uint64_t *)arg = size;
    return 1;
}

int ledger_log_size(ledger *lg, uint64_t *size)
{
    *size = 0;
    return ledger_log_checkpoints(lg, 0, UINT64_MAX, true, 1, size_of_checkpoint, size);
}

/* The way of backends without a batch statement of their own. */
static int write_one_by_one(ledger *lg, ledger_batch_entry *entries, size_t n,
                            const ledger_log_hook *hook)
{
    ledger_refusals_reset(lg);
    if (lg->ops->begin(lg) != 0)
        return -1;
    if (hook != NULL && lg->ops->log_begin != NULL && lg->ops->log_begin(lg) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        ledger_result *result = entries[i].result;
        if (result == NULL && hook != NULL) {
            /* The log needs every event's outcome. */
            if (lg->scratch == NULL && (lg->scratch = malloc(sizeof *lg->scratch)) == NULL)
                goto fail;
            result = lg->scratch;
        }
        int rc = lg->ops->apply(lg, entries[i].event, result);
        entries[i].status = rc;
        entries[i].outcome = rc == 0 && result != NULL ? result->outcome : LEDGER_APPLIED;
        if (rc == LEDGER_APPLY_EVENT_FAILED) {
            if (ledger_refusal_add(lg, lg->ops->error(lg)) != 0)
                goto fail;
        } else if (rc != 0) {
            goto fail;
        }
    }
    if (hook != NULL && ledger_log_hook_run(lg, entries, n, hook) != 0)
        goto fail;
    if (lg->ops->commit(lg) != 0)
        goto fail;
    ledger_refusals_assign(lg, entries, n);
    return 0;
fail:
    /* A rollback that succeeds leaves the reason in ledger_error(). */
    lg->ops->rollback(lg);
    return -1;
}

int ledger_write(ledger *lg, ledger_batch_entry *entries, size_t n)
{
    return ledger_write_logged(lg, entries, n, NULL);
}

int ledger_write_logged(ledger *lg, ledger_batch_entry *entries, size_t n,
                        const ledger_log_hook *hook)
{
    if (lg == NULL || (entries == NULL && n > 0))
        return -1;
    lg->hook_failed = false;
    int rc = lg->ops->write != NULL ? lg->ops->write(lg, entries, n, hook)
                                    : write_one_by_one(lg, entries, n, hook);
    if (hook != NULL && hook->end != NULL)
        hook->end(hook->ctx, rc == 0);
    return rc;
}

ledger_sync *ledger_sync_begin(ledger *lg, char *err, size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    if (lg == NULL || lg->ops->sync_begin == NULL)
        return NULL;
    return lg->ops->sync_begin(lg, err, errlen);
}

int ledger_sync_now(ledger_sync *s, char *err, size_t errlen)
{
    return s->ops->now(s, err, errlen);
}

bool ledger_sync_checkpoint_due(ledger_sync *s)
{
    return s->ops->checkpoint_due(s);
}

int ledger_sync_checkpoint(ledger_sync *s, char *err, size_t errlen)
{
    return s->ops->checkpoint(s, err, errlen);
}

void ledger_sync_free(ledger_sync *s)
{
    if (s != NULL)
        s->ops->free(s);
}

int ledger_log_entries(ledger *lg, ledger_log_select select, uint64_t first, uint64_t count,
                       const char *delivery, bool commitments_only, ledger_log_row_fn fn, void *arg)
{
    if (lg == NULL || fn == NULL || (select == LEDGER_LOG_DELIVERY && delivery == NULL) ||
        lg->ops->log_entries == NULL)
        return -1;
    return lg->ops->log_entries(lg, select, first, count, delivery, commitments_only, fn, arg);
}

int ledger_log_deliveries(ledger *lg, const char *after_id, const char *last_id,
                          ledger_log_row_fn fn, void *arg)
{
    if (lg == NULL || fn == NULL || lg->ops->log_deliveries == NULL)
        return -1;
    return lg->ops->log_deliveries(lg, after_id, last_id, fn, arg);
}

int ledger_log_checkpoints(ledger *lg, uint64_t min_size, uint64_t max_size, bool newest_first,
                           uint64_t limit, ledger_checkpoint_fn fn, void *arg)
{
    if (lg == NULL || fn == NULL || max_size < min_size || lg->ops->log_checkpoints == NULL)
        return -1;
    return lg->ops->log_checkpoints(lg, min_size, max_size, newest_first, limit, fn, arg);
}

int ledger_log_import(ledger *lg, const ledger_log_write *w)
{
    if (lg == NULL || w == NULL || lg->ops->log_store == NULL)
        return -1;
    lg->hook_failed = false;
    if (lg->ops->begin(lg) != 0)
        return -1;
    if (lg->ops->log_store(lg, w) != 0 || lg->ops->commit(lg) != 0) {
        char why[LEDGER_ERR_MAX];
        snprintf(why, sizeof why, "%s", lg->ops->error(lg));
        (void)lg->ops->rollback(lg);
        ledger_hook_failed(lg, why); /* the store's reason, not the rollback's */
        return -1;
    }
    return 0;
}

int ledger_log_read_tile(ledger *lg, unsigned level, uint64_t index,
                         uint8_t out[256 * LEDGER_HASH_LEN], unsigned *width)
{
    if (lg == NULL || out == NULL || width == NULL || level == 0 || lg->ops->log_tile == NULL)
        return -1;
    return lg->ops->log_tile(lg, level, index, out, width);
}

int ledger_prepare(ledger *lg, uint64_t first_ms, uint64_t last_ms)
{
    if (lg == NULL || last_ms < first_ms)
        return -1;
    if (lg->ops->prepare == NULL)
        return 0;
    return lg->ops->prepare(lg, first_ms, last_ms);
}

ledger_fault ledger_last_fault(const ledger *lg)
{
    if (lg == NULL)
        return LEDGER_FAULT_FATAL;
    /* A backend that cannot tell is retried, as every failure was before. */
    return lg->ops->fault != NULL ? lg->ops->fault(lg) : LEDGER_FAULT_RETRY;
}

bool ledger_timed_out(const ledger *lg)
{
    return lg != NULL && lg->ops->timed_out != NULL && lg->ops->timed_out(lg);
}

long ledger_rollups_check(ledger *lg, ledger_problem_fn fn, void *arg)
{
    if (lg == NULL || lg->ops->rollups_check == NULL)
        return -1;
    lg->hook_failed = false;
    return lg->ops->rollups_check(lg, fn, arg);
}

static void first_problem(void *arg, const char *text)
{
    char *first = arg;
    if (first[0] == '\0')
        snprintf(first, LEDGER_ERR_MAX, "%s", text);
}

int ledger_verify(ledger *lg)
{
    char first[LEDGER_ERR_MAX] = "";
    if (lg == NULL)
        return -1;
    lg->hook_failed = false;
    if (lg->ops->verify != NULL && lg->ops->verify(lg) != 0)
        return -1;
    /* An auditor must not be shown counts that the rows do not support. */
    long differences = ledger_rollups_check(lg, first_problem, first);
    if (differences < 0)
        return -1;
    if (differences > 0) {
        char why[LEDGER_ERR_MAX];
        int n = snprintf(why, sizeof why,
                         "%ld rollup figures differ from the rows; the first: ", differences);
        if (n > 0 && (size_t)n < sizeof why) { /* the first, cut to the room left */
            size_t len = strnlen(first, sizeof why - (size_t)n - 1);
            memcpy(why + n, first, len);
            why[(size_t)n + len] = '\0';
        }
        ledger_hook_failed(lg, why); /* the reason ledger_error() gives */
        return -1;
    }
    return 0;
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
