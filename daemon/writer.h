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
 * An event that the ledger refuses on its own (invalid, see
 * LEDGER_APPLY_EVENT_FAILED) cannot succeed on a retry: its callback gets
 * ok = false, and a callback-less one is logged as lost.
 *
 * Memory stays bounded while the ledger is failing: at most queue_capacity
 * queued events plus batch_max held for retry; submits fail meanwhile.
 *
 * writer_stop() stops accepting, drains the queue, commits and joins. While
 * stopping, a ledger that keeps failing for WRITER_STOP_GRACE_MS is given
 * up on: the events still held are logged as lost, so that stop returns.
 */
#ifndef RECEIPT_DAEMON_WRITER_H
#define RECEIPT_DAEMON_WRITER_H

#include "common/compiler.h"
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

/* Commit latency, ms: 1 2 5 10 25 50 100 250 500 1000 2500 +Inf. */
#define WRITER_SLOW_COMMIT_MS  500 /* a commit this slow is logged */
#define WRITER_LINGER_MS       5   /* issuances wait this long for company */
#define WRITER_LATENCY_BUCKETS 12
/* Batch size: 1 4 16 64 256 1024 4096 +Inf. */
#define WRITER_BATCH_BUCKETS 8

#define WRITER_QUEUE_MAX     (1u << 22) /* largest queue_capacity accepted */
#define WRITER_BATCH_MAX     65536      /* largest batch_max accepted      */
#define WRITER_STOP_GRACE_MS 10000

/*
 * Counters since writer_new. Once stopped:
 * submitted == committed + failed, and the histograms sum to batches.
 */
typedef struct writer_stats {
    uint64_t queued;   /* events in the queue now */
    uint64_t retrying; /* events held for retry after a failed commit */
    uint64_t capacity;
    uint64_t submitted;      /* submits accepted */
    uint64_t committed;      /* events committed (each once, retried or not) */
    uint64_t failed;         /* events finished uncommitted: ok = false or lost */
    uint64_t batches;        /* committed batches */
    uint64_t failed_commits; /* batches that failed (begin, apply or commit) */
    uint64_t rejected;       /* submits refused: queue full or stopping */
    /* Latency of a committed batch, begin to durable commit (what a
     * confirmation waits for once the writer takes it). */
    uint64_t latency_count[WRITER_LATENCY_BUCKETS]; /* not cumulative */
    double latency_sum_ms;
    /* From a delivery's issue time to the commit of its row (same buckets). */
    uint64_t issue_lag_count[WRITER_LATENCY_BUCKETS];
    double issue_lag_sum_ms;
    uint64_t batch_count[WRITER_BATCH_BUCKETS]; /* sizes of committed batches */
    uint64_t batch_sum;
} writer_stats;

/*
 * Takes ownership of lg on success (writer_free closes it); on failure
 * (NULL) the caller still owns it. queue_capacity is 1..WRITER_QUEUE_MAX,
 * batch_max 1..WRITER_BATCH_MAX.
 */
WARN_UNUSED_RESULT writer *writer_new(ledger *lg, size_t queue_capacity, size_t batch_max);
/* Starts the thread (once); returns 0 or -1. */
WARN_UNUSED_RESULT int writer_start(writer *w);
/*
 * Stops accepting, commits what is queued and joins the thread. On a writer
 * never started, the queue is drained on the calling thread (callbacks
 * included). Idempotent.
 */
void writer_stop(writer *w);
/* Stops first if needed; NULL-safe; closes the ledger. */
void writer_free(writer *w);

/* Copies the event into the queue. Returns 0, or -1 if full or stopping. */
WARN_UNUSED_RESULT int writer_submit(writer *w, const ledger_event *event, writer_done_fn done,
                                     void *arg);

void writer_get_stats(writer *w, writer_stats *out);

#endif
