/*
 * bench_log: the evidence log of a bench tool's ledger writer, started as
 * receiptd starts it (ledger_rows --log, ledger_fill --log).
 */
#ifndef RECEIPT_BENCH_BENCH_LOG_H
#define RECEIPT_BENCH_BENCH_LOG_H

#include "common/compiler.h"
#include "daemon/keystore.h"
#include "daemon/ledger.h"
#include "daemon/tlog.h"

#include <stddef.h>

/*
 * Opens the keys of state_dir (made when missing, with a log key named
 * "bench.invalid/_receipt/log"; a receiptd started later on the same
 * state directory and ledger keeps that name), loads the log stored in lg
 * and writes what it must record first, in transactions of at most batch
 * events. Returns 0 with *keys and *log set, for writer_set_log(); the
 * caller frees the log (tlog_free) and then the keys (keystore_free) after
 * the writer. Returns -1 with err set, and nothing to free.
 */
WARN_UNUSED_RESULT int bench_log_start(ledger *lg, const char *state_dir, size_t batch,
                                       keystore **keys, tlog **log, char *err, size_t errlen);

#endif
