/*
 * tlog_verify: `receiptd ledger verify`, the operator's side of the
 * evidence log's audit (docs/evidence.md): that the ledger and its log
 * agree, so that a row edited, deleted or inserted behind the server's back
 * is found, and so is a log whose stored leaves, tiles or checkpoints were
 * altered.
 *
 * It reads the whole log once, in leaf order: every leaf's commitment is
 * SHA-256(salt || event), the tree they make has, at each stored
 * checkpoint's size, the root that checkpoint signs (with one of the site's
 * log keys), and every stored tile holds the hashes of that tree. Then every
 * delivery row is compared with the state its logged events make
 * (tlog_event_fold()), and every delivery the log names must have a row.
 *
 * Reads go through the handle given, on the caller's thread. Memory is
 * bounded: the log and the rows are read in chunks.
 */
#ifndef RECEIPT_DAEMON_TLOG_VERIFY_H
#define RECEIPT_DAEMON_TLOG_VERIFY_H

#include "common/compiler.h"
#include "daemon/keystore.h"
#include "daemon/ledger.h"

#include <stdint.h>

#define TLOG_VERIFY_REPORT_MAX 20 /* problems of each kind told one by one */

typedef struct tlog_verify_result {
    uint64_t leaves;
    uint64_t checkpoints;
    uint64_t tiles;
    uint64_t rows;
    uint64_t problems; /* 0: the ledger and its log agree */
} tlog_verify_result;

/* Called with each problem found, for a person (at most
 * TLOG_VERIFY_REPORT_MAX of each kind; the rest are counted). */
typedef void (*tlog_verify_report_fn)(void *arg, const char *problem);

/*
 * Checks lg against its log, with ks's log keys. Returns 0 when everything
 * could be read (out says what was found), or -1 with err set.
 */
WARN_UNUSED_RESULT int tlog_verify_run(ledger *lg, const keystore *ks, tlog_verify_report_fn fn,
                                       void *arg, tlog_verify_result *out, char *err,
                                       size_t errlen);

/*
 * `receiptd ledger verify [--state-dir DIR] [--ledger URL]`; argv[0] is
 * "verify". Returns the exit status: 0 they agree, 1 failed, 2 usage, 5 a
 * problem found.
 */
int tlog_verify_main(int argc, char **argv);

#endif
