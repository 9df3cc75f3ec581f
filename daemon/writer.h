/*
 * writer: the single thread that writes the ledger (group commit).
 *
 * HTTP workers never touch the database: they submit events into a bounded
 * queue and go on. The writer thread takes up to batch_max queued events,
 * applies them in one transaction, commits (durably), then calls the
 * completion callback of every event that has one, in order. A submit to a
 * full queue fails at once (the caller answers 503 with Retry-After), so
 * nothing is ever dropped silently. When a commit fails, the batch is rolled
 * back, callbacks get ok = false, and the writer retries the batch's events
 * that have no callback (issuances, bindings) with backoff, so that they
 * are not lost either.
 *
 * writer_stop() stops accepting, drains the queue, commits and joins.
 */
#ifndef RECEIPT_DAEMON_WRITER_H
#define RECEIPT_DAEMON_WRITER_H

#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct writer writer;

/*
 * Called on the writer thread after the event's batch committed (ok true,
 * result set) or failed (ok false, result NULL). Must not block.
 */
typedef void (*writer_done_fn)(void *arg, bool ok, const ledger_result *result);

#define WRITER_LATENCY_BUCKETS 12 /* commit latency, ms: 1 2 5 10 25 50 100 250 500 1000 2500 +Inf */
#define WRITER_BATCH_BUCKETS 8    /* batch size: 1 4 16 64 256 1024 4096 +Inf */

typedef struct writer_stats {
    uint64_t queued;         /* events in the queue now */
    uint64_t capacity;
    uint64_t committed;      /* events committed        */
    uint64_t batches;
    uint64_t failed_commits;
    uint64_t rejected;       /* submits refused: queue full */
    uint64_t latency_count[WRITER_LATENCY_BUCKETS]; /* not cumulative */
    double latency_sum_ms;
    uint64_t batch_count[WRITER_BATCH_BUCKETS];
    uint64_t batch_sum;
} writer_stats;

/* Takes ownership of lg. */
writer *writer_new(ledger *lg, size_t queue_capacity, size_t batch_max);
int writer_start(writer *w);
void writer_stop(writer *w);
void writer_free(writer *w);

/* Copies the event into the queue. Returns 0, or -1 if full or stopping. */
int writer_submit(writer *w, const ledger_event *event, writer_done_fn done, void *arg);

void writer_get_stats(writer *w, writer_stats *out);

#endif
