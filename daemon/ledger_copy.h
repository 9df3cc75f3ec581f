/*
 * ledger_copy: `receiptd ledger copy FROM TO`, every row of one ledger into
 * another (SQLite to PostgreSQL and back), resumable, and verified.
 *
 * Rows go oldest first, in batches that are each one transaction, as COPY
 * events (a row that exists already is left alone). A copy cut short is
 * taken up after the newest row the destination holds, once that row is
 * found equal in the source. At the end both ledgers are read side by side
 * in ID order: the counts must match and so must the digests of the rows
 * (ledger_copy_digest_row), or the first difference is named.
 */
#ifndef RECEIPT_DAEMON_LEDGER_COPY_H
#define RECEIPT_DAEMON_LEDGER_COPY_H

#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEDGER_COPY_BATCH_DEFAULT   1000
#define LEDGER_COPY_BATCH_MAX       10000
#define LEDGER_COPY_MSG_MAX         512
#define LEDGER_COPY_LOG_CHECKPOINTS 256 /* checkpoints read at a time */

typedef struct ledger_copy_result {
    uint64_t source_rows;               /* rows in FROM when the copy started */
    uint64_t copied;                    /* rows written by this run */
    uint64_t resumed_after;             /* rows skipped: an earlier run copied them */
    uint64_t rows;                      /* rows compared (each ledger's count) */
    uint8_t digest[32];                 /* of FROM's rows; TO's matched when verified */
    uint64_t log_leaves;                /* evidence log leaves written by this run */
    uint64_t log_checkpoints;           /* and checkpoints */
    uint64_t log_size;                  /* the log's leaves, compared */
    bool verified;                      /* counts, digests and logs equal */
    char mismatch[LEDGER_COPY_MSG_MAX]; /* the first difference when not verified */
} ledger_copy_result;

/* Called now and then while rows are copied; done of total. */
typedef void (*ledger_copy_progress_fn)(void *arg, uint64_t done, uint64_t total);

/*
 * Copies from -> to (to writable), the rows and then the evidence log as it
 * is (its leaves, each checkpoint with its own leaves in a transaction, then
 * its tiles), and verifies. Returns 0 (out->verified
 * says whether the ledgers agree), or -1 when reading or writing failed or
 * to holds rows that are not a copy of from's oldest ones (err says which).
 * progress may be NULL.
 */
int ledger_copy_run(ledger *from, ledger *to, size_t batch, ledger_copy_progress_fn progress,
                    void *arg, ledger_copy_result *out, char *err, size_t errlen);

/*
 * Compares the ledgers row by row in ID order without writing, and their
 * evidence logs (the same newest checkpoint, which the destination's stored
 * tree makes): what the copy's verification does. Returns 0 (out->verified, out->rows, out->digest,
 * out->mismatch set) or -1 when one cannot be read.
 */
int ledger_copy_compare(ledger *a, ledger *b, ledger_copy_result *out, char *err, size_t errlen);

/*
 * Adds one row to a running SHA-256 digest (an EVP_MD_CTX): every field in
 * the order of ledger_delivery, text as a 4-byte big-endian length and its
 * bytes, numbers as 8 bytes big-endian, digests as 32 bytes (or a 0 byte
 * when absent), the status by name.
 */
void ledger_copy_digest_row(void *md_ctx, const ledger_delivery *row);

/* `receiptd ledger ...`: argv[0] is "ledger". Returns the exit status. */
int ledger_copy_main(int argc, char **argv);

#endif
