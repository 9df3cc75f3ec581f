/*
 * ledger_backend: what a ledger backend implements, and nothing a user of
 * the ledger needs. Only ledger.c (which dispatches) and the backends
 * (ledger_sqlite.c, ledger_pg.c) include it.
 *
 * A backend defines one ledger_ops and makes its handles and cursors start
 * with struct ledger and struct ledger_cursor, so that ledger.c can reach
 * the table from either. Each function has the contract of the ledger.h
 * function of the same name; ledger.c has checked the arguments that
 * ledger.h says may not be NULL before it calls one.
 */
#ifndef RECEIPT_DAEMON_LEDGER_BACKEND_H
#define RECEIPT_DAEMON_LEDGER_BACKEND_H

#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every backend's cursor starts with this. */
struct ledger_cursor {
    ledger *lg;
};

/* The backend table. */
typedef struct ledger_ops {
    const char *name;
    ledger *(*open)(const char *target, bool read_only, char *err, size_t errlen);
    void (*close)(ledger *lg);
    const char *(*error)(const ledger *lg);
    int (*set_lock_timeout)(ledger *lg, int timeout_ms);
    int (*begin)(ledger *lg);
    int (*apply)(ledger *lg, const ledger_event *event, ledger_result *result);
    int (*commit)(ledger *lg);
    int (*rollback)(ledger *lg);
    ledger_fault (*fault)(const ledger *lg); /* NULL: every failure is retried */
    int (*verify)(ledger *lg);               /* NULL: nothing to verify */
    int (*get)(ledger *lg, const char *id, ledger_delivery *out);
    long long (*count)(ledger *lg);
    int (*summary)(ledger *lg, ledger_summary *out);
    int (*content_stats)(ledger *lg, ledger_content_fn fn, void *arg);
    int (*client_stats)(ledger *lg, ledger_client_fn fn, void *arg);
    int (*series)(ledger *lg, uint64_t since_ms, uint64_t until_ms, uint64_t width_ms,
                  ledger_bucket_fn fn, void *arg);
    ledger_cursor *(*query)(ledger *lg, const ledger_filter *filter);
    int (*cursor_next)(ledger_cursor *cur, ledger_delivery *out);
    void (*cursor_free)(ledger_cursor *cur);
} ledger_ops;

/* Every backend's handle starts with this, so ledger.c can dispatch. */
struct ledger {
    const ledger_ops *ops;
};

extern const ledger_ops ledger_sqlite_ops;

#endif
