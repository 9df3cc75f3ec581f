/*
 * ledger_backend: what a ledger backend implements, and nothing a user of
 * the ledger needs. Only ledger.c (which dispatches) and the backends
 * (ledger_sqlite.c, ledger_pg.c) include it.
 *
 * A backend defines one ledger_ops and makes its handles and cursors start
 * with struct ledger and struct ledger_cursor, so that ledger.c can reach
 * the table from either. Each function has the contract of the ledger.h
 * function of the same name; ledger.c has checked the arguments that
 * ledger.h says may not be NULL before it calls one. A NULL write or prepare
 * is ledger.c's to do: events one by one between begin and commit, and
 * nothing to prepare.
 */
#ifndef RECEIPT_DAEMON_LEDGER_BACKEND_H
#define RECEIPT_DAEMON_LEDGER_BACKEND_H

#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A backend's pipelined-commit handle (ledger_sync_begin()) starts with this. */
typedef struct ledger_sync_ops {
    int (*now)(ledger_sync *s, char *err, size_t errlen);
    bool (*checkpoint_due)(ledger_sync *s);
    int (*checkpoint)(ledger_sync *s, char *err, size_t errlen);
    void (*free)(ledger_sync *s);
} ledger_sync_ops;

struct ledger_sync {
    const ledger_sync_ops *ops;
};

/* Every backend's cursor starts with this. */
struct ledger_cursor {
    ledger *lg;
};

/* The backend table. */
typedef struct ledger_ops {
    const char *name;
    ledger *(*open)(const char *target, bool read_only, bool *unreachable, char *err,
                    size_t errlen);
    void (*close)(ledger *lg);
    const char *(*error)(const ledger *lg);
    int (*set_lock_timeout)(ledger *lg, int timeout_ms);
    int (*begin)(ledger *lg);
    int (*apply)(ledger *lg, const ledger_event *event, ledger_result *result);
    int (*commit)(ledger *lg);
    int (*rollback)(ledger *lg);
    ledger_fault (*fault)(const ledger *lg); /* NULL: every failure is retried */
    bool (*timed_out)(const ledger *lg);     /* NULL: no time limits of its own */
    int (*verify)(ledger *lg);               /* NULL: nothing to verify */
    /* hook may be NULL; see ledger_write_logged(). */
    int (*write)(ledger *lg, ledger_batch_entry *entries, size_t n, const ledger_log_hook *hook);
    int (*prepare)(ledger *lg, uint64_t first_ms, uint64_t last_ms);
    const char *(*where)(const ledger *lg);
    int (*get)(ledger *lg, const char *id, ledger_delivery *out);
    long long (*count)(ledger *lg);
    int (*summary)(ledger *lg, ledger_summary *out);
    int (*content_stats)(ledger *lg, ledger_content_fn fn, void *arg);
    int (*client_stats)(ledger *lg, ledger_client_fn fn, void *arg);
    int (*series)(ledger *lg, uint64_t since_ms, uint64_t until_ms, uint64_t width_ms,
                  ledger_bucket_fn fn, void *arg);
    long (*rollups_check)(ledger *lg, ledger_problem_fn fn, void *arg);
    /* The evidence log: inside a transaction, storing a batch's writes
     * (ledger.c's write uses it; a backend with a write of its own may
     * leave it NULL) and locking the log; and the reads of ledger.h. */
    int (*log_store)(ledger *lg, const ledger_log_write *w);
    int (*log_lock)(ledger *lg, uint64_t *size); /* NULL: the transaction is the lock */
    /* NULL, or called by ledger.c's write right after begin when the
     * batch is logged, before its events apply: the backend may then
     * number the leaves of the events in their rows (ledger_sqlite.c). */
    int (*log_begin)(ledger *lg);
    /* NULL: no pipelined commits (ledger_sync_begin() returns NULL). */
    ledger_sync *(*sync_begin)(ledger *lg, char *err, size_t errlen);
    int (*log_entries)(ledger *lg, ledger_log_select select, uint64_t first, uint64_t count,
                       const char *delivery, bool commitments_only, ledger_log_row_fn fn,
                       void *arg);
    int (*log_deliveries)(ledger *lg, const char *after_id, const char *last_id,
                          ledger_log_row_fn fn, void *arg);
    int (*log_checkpoints)(ledger *lg, uint64_t min_size, uint64_t max_size, bool newest_first,
                           uint64_t limit, ledger_checkpoint_fn fn, void *arg);
    int (*log_tile)(ledger *lg, unsigned level, uint64_t index, uint8_t *out, unsigned *width);
    ledger_cursor *(*query)(ledger *lg, const ledger_filter *filter);
    int (*cursor_next)(ledger_cursor *cur, ledger_delivery *out);
    void (*cursor_free)(ledger_cursor *cur);
} ledger_ops;

/* Every backend's handle starts with this, so ledger.c can dispatch. */
struct ledger {
    const ledger_ops *ops;
    /* Where a batch entry without a result of its own has its outcome
     * written (ledger.c's write); made on first use, ledger_close() frees it. */
    ledger_result *scratch;
    /* The last write failed in its log hook (ledger_error() then says why). */
    bool hook_failed;
    char hook_err[LEDGER_ERR_MAX];
    /* Reasons of the events refused by the last ledger_write(), in order;
     * ledger_close() frees them. */
    char (*refusals)[LEDGER_ERR_MAX];
    size_t refusal_count;
    size_t refusal_cap;
};

/*
 * For write(): ledger_refusals_reset() before a batch; ledger_refusal_add()
 * for each refused event, in entry order (0, or -1 out of memory);
 * ledger_refusals_assign() points the refused entries' why at the reasons
 * once the batch is done.
 */
static inline void ledger_refusals_reset(ledger *lg)
{
    lg->refusal_count = 0;
}

static inline int ledger_refusal_add(ledger *lg, const char *why)
{
    if (lg->refusal_count == lg->refusal_cap) {
        size_t cap = lg->refusal_cap ? lg->refusal_cap * 2 : 8;
        void *grown = realloc(lg->refusals, cap * sizeof *lg->refusals);
        if (grown == NULL)
            return -1;
        lg->refusals = grown;
        lg->refusal_cap = cap;
    }
    snprintf(lg->refusals[lg->refusal_count++], LEDGER_ERR_MAX, "%s", why);
    return 0;
}

static inline void ledger_refusals_assign(ledger *lg, ledger_batch_entry *entries, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        entries[i].why = NULL;
        if (entries[i].status == LEDGER_APPLY_EVENT_FAILED)
            entries[i].why = k < lg->refusal_count ? lg->refusals[k++] : "refused";
    }
}

/* For write(): the log's hook failed, for why; the batch is rolled back. */
static inline void ledger_hook_failed(ledger *lg, const char *why)
{
    snprintf(lg->hook_err, sizeof lg->hook_err, "%s", why);
    lg->hook_failed = true;
}

/*
 * For write(), inside the batch's transaction once every entry's status and
 * outcome are set: the log's part of the batch (ledger_write_logged()):
 * log_lock (or the stored size), the hook, log_store. Returns 0, or -1 with
 * the error set; the caller rolls back.
 */
static inline int ledger_log_hook_run(ledger *lg, ledger_batch_entry *entries, size_t n,
                                      const ledger_log_hook *hook)
{
    char why[LEDGER_ERR_MAX] = "log: failed";
    uint64_t head = 0;
    const ledger_log_write *w = NULL;
    if (lg->ops->log_lock != NULL ? lg->ops->log_lock(lg, &head) != 0
                                  : ledger_log_size(lg, &head) != 0)
        return -1;
    if (hook->batch(hook->ctx, lg, head, entries, n, &w, why, sizeof why) != 0) {
        ledger_hook_failed(lg, why);
        return -1;
    }
    if (w != NULL && lg->ops->log_store(lg, w) != 0)
        return -1;
    return 0;
}

/* Appends text to sql (len bytes used of cap); -1 when it does not fit. */
static inline int ledger_sql_put(char *sql, size_t cap, size_t *len, const char *text)
{
    size_t n = strlen(text);
    if (n >= cap - *len)
        return -1;
    memcpy(sql + *len, text, n + 1);
    *len += n;
    return 0;
}

/* One " AND column IN ('a', 'b')" of the names whose bits are set. */
static inline int ledger_sql_names(char *sql, size_t cap, size_t *len, const char *column,
                                   unsigned bits, const char *const *names, unsigned count)
{
    if (ledger_sql_put(sql, cap, len, " AND ") != 0 || ledger_sql_put(sql, cap, len, column) != 0 ||
        ledger_sql_put(sql, cap, len, " IN (") != 0)
        return -1;
    const char *sep = "'";
    for (unsigned i = 0; i < count; i++) {
        if (!(bits & (1u << i)))
            continue;
        if (ledger_sql_put(sql, cap, len, sep) != 0 ||
            ledger_sql_put(sql, cap, len, names[i]) != 0 || ledger_sql_put(sql, cap, len, "'") != 0)
            return -1;
        sep = ", '";
    }
    return ledger_sql_put(sql, cap, len, ")");
}

/*
 * Appends to sql (len bytes used of cap) the filter's status and kind
 * conditions, " AND status IN ('...') AND kind IN ('...')", the same SQL on
 * both backends: the names come from the fixed tables, never from the
 * caller, so they need no parameters. status_column and kind_column are the
 * expressions compared ("status" and "kind", or SQLite's "+status" to keep a
 * term from choosing an index). Returns 0, or -1 when cap is too small.
 */
static inline int ledger_filter_names_sql_as(const ledger_filter *f, char *sql, size_t cap,
                                             size_t *len, const char *status_column,
                                             const char *kind_column)
{
    const char *statuses[LEDGER_CORRUPTED + 1];
    const char *kinds[LEDGER_KIND_COUNT];
    for (unsigned s = 0; s <= LEDGER_CORRUPTED; s++)
        statuses[s] = ledger_status_name((ledger_status)s);
    for (unsigned k = 0; k < LEDGER_KIND_COUNT; k++)
        kinds[k] = ledger_kind_name((ledger_kind)k);
    if (f->statuses != 0 && ledger_sql_names(sql, cap, len, status_column, f->statuses, statuses,
                                             LEDGER_CORRUPTED + 1) != 0)
        return -1;
    if (f->kinds != 0 &&
        ledger_sql_names(sql, cap, len, kind_column, f->kinds, kinds, LEDGER_KIND_COUNT) != 0)
        return -1;
    return 0;
}

static inline int ledger_filter_names_sql(const ledger_filter *f, char *sql, size_t cap,
                                          size_t *len)
{
    return ledger_filter_names_sql_as(f, sql, cap, len, "status", "kind");
}

/* For rollups_check(): one difference, as a sentence to fn (may be NULL). */
static inline void ledger_rollup_problem(ledger_problem_fn fn, void *arg, const char *what,
                                         const char *counted, const char *kept)
{
    char text[LEDGER_ERR_MAX];
    if (fn == NULL)
        return;
    snprintf(text, sizeof text, "rollup of %.96s: %.64s kept, the rows count %.64s", what,
             kept[0] != '\0' ? kept : "none", counted[0] != '\0' ? counted : "none");
    fn(arg, text);
}

extern const ledger_ops ledger_sqlite_ops;
extern const ledger_ops ledger_pg_ops;

#endif
