/*
 * writer: the single thread that writes the ledger (group commit).
 *
 * HTTP workers never touch the database: they submit events into a bounded
 * queue and go on. The writer thread takes up to batch_max queued events,
 * applies them in one transaction, commits (durably), then calls the
 * completion callback of every event that has one, in order.
 *
 * No answered event is lost silently. The rules, for every ledger backend:
 *
 *  - Health. A submit is accepted only while the ledger is committing. After
 *    a failed commit the writer is "failing": every submit is refused
 *    (WRITER_FAILING: the caller answers 503 with Retry-After) until a
 *    commit succeeds again. So an event is accepted, and its delivery
 *    answered 200, only if it was queued before the failure was known: at
 *    most writer_held_max() events are ever held uncommitted.
 *  - Pipelined commits. Where the ledger has them (ledger_sync_begin():
 *    SQLite), a committed batch is not yet durable: it waits in a ring of
 *    WRITER_UNSYNCED_MAX batches for a sync thread's fsync, and only then
 *    are its callbacks called and its log checkpoint published, while the
 *    writer thread writes the next batch. A failed fsync is fatal, as below,
 *    and the batches it covered are saved with the rest.
 *  - Retries. What the backend reports as LEDGER_FAULT_RETRY (a full disk,
 *    a lock timeout, a lost connection) is retried with backoff (10 ms
 *    doubling to 1 s), forever while running. Every event of a failed batch
 *    is held for the retry; an event with a callback learns of the failure
 *    at once (ok = false: its client gets 503 and retries) and is committed
 *    all the same when the ledger comes back, without a callback.
 *  - Fatal failures. LEDGER_FAULT_FATAL (SQLite: a failed fsync, a corrupt
 *    file) is never retried: the writer refuses every submit from then on,
 *    answers the callbacks, saves every event it holds or has queued to the
 *    recovery file (recovery.h), logs it, and calls the fatal handler, which
 *    stops the process with a non-zero status.
 *  - Stopping. writer_stop(grace_ms) stops accepting and commits what is
 *    queued; if the ledger fails, it is retried until grace_ms has passed,
 *    then everything still held goes to the recovery file. What neither the
 *    ledger nor the file took is counted in writer_stats.lost (the exit
 *    status says so).
 *
 * Issuances and bindings go to the recovery file before confirmations, so
 * that an issuance's row is not replaced by a confirmation's ticket-only
 * copy of it on replay; the file's reservation covers a full queue and a
 * batch of issuances, and confirmations (answered 503 already) take what
 * room is left.
 *
 * An event that the ledger refuses on its own (invalid, see
 * LEDGER_APPLY_EVENT_FAILED) cannot succeed on a retry: its callback gets
 * ok = false, and a callback-less one is logged; it counts as failed.
 *
 * Logging stays bounded whatever the load: the first failure is logged at
 * once with its reason; after that one line a second at most says why the
 * ledger is not committing, how many attempts failed and how many requests
 * were refused.
 */
#ifndef RECEIPT_DAEMON_WRITER_H
#define RECEIPT_DAEMON_WRITER_H

#include "common/compiler.h"
#include "daemon/ledger.h"
#include "daemon/recovery.h"
#include "daemon/tlog.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct writer writer;

/*
 * Called on one of the writer's threads after the event's batch is
 * durable (ok true, result set) or failed (ok false, result NULL). Must
 * not block. Called once per event, in order. The callee takes the
 * result (some 13 KB, handed over rather than copied) and releases it with
 * writer_result_free(), on any thread.
 */
typedef void (*writer_done_fn)(void *arg, bool ok, ledger_result *result);

/* Called once, on the writer thread, after a fatal ledger failure. */
typedef void (*writer_fatal_fn)(void *arg);

/* Why a submit was refused; every refusal is a 503 with Retry-After. */
typedef enum writer_result {
    WRITER_OK = 0,
    WRITER_QUEUE_FULL, /* the queue is full (or no memory): the ledger is behind */
    WRITER_FAILING,    /* the ledger is not committing (or failed for good)      */
    WRITER_STOPPING,   /* shutting down                                          */
    WRITER_RESULT_COUNT,
} writer_result;

/* Commit latency, ms: 1 2 5 10 25 50 100 250 500 1000 2500 +Inf. */
#define WRITER_SLOW_COMMIT_MS  500 /* a commit this slow is logged */
#define WRITER_LINGER_MS       5   /* issuances wait this long for company, */
#define WRITER_LINGER_ROWS     256 /* and on, while fewer are queued, */
#define WRITER_LINGER_MAX_MS   15  /* up to this long in all (batch_fill() in writer.c) */
#define WRITER_FULL_WAIT_MS    250 /* a submit to a full queue waits this long for room */
#define WRITER_LATENCY_BUCKETS 12
/* Batch size: 1 4 16 64 256 1024 4096 +Inf. */
#define WRITER_BATCH_BUCKETS 8

#define WRITER_QUEUE_MAX      (1u << 22) /* largest queue_capacity accepted */
#define WRITER_BATCH_MAX      65536      /* largest batch_max accepted      */
#define WRITER_BACKOFF_MIN_MS 10
#define WRITER_BACKOFF_MAX_MS 1000
#define WRITER_REPORT_MS      1000 /* at most one "still failing" line per this */

/*
 * Counters since writer_new. Once stopped:
 * submitted == committed + failed + saved, and the histograms sum to batches.
 */
typedef struct writer_stats {
    uint64_t queued;   /* events in the queue now */
    uint64_t retrying; /* events held for retry after a failed commit */
    uint64_t capacity;
    uint64_t submitted;                    /* submits accepted */
    uint64_t committed;                    /* events committed (each once, retried or not) */
    uint64_t failed;                       /* events finished uncommitted and unsaved */
    uint64_t saved;                        /* events written to the recovery file instead */
    uint64_t lost;                         /* of failed: events neither committed nor saved */
    uint64_t batches;                      /* committed batches */
    uint64_t failed_commits;               /* batches that failed (begin, apply or commit) */
    uint64_t rejected;                     /* submits refused, every reason */
    uint64_t refused[WRITER_RESULT_COUNT]; /* by reason; [WRITER_OK] stays 0 */
    bool failing;                          /* the last commit failed */
    bool fatal;                            /* the ledger failed for good */
    uint64_t recovery_reserved;            /* bytes; 0 without a recovery file */
    /* Latency of a committed batch, begin to durable commit (what a
     * confirmation waits for once the writer takes it). */
    uint64_t latency_count[WRITER_LATENCY_BUCKETS]; /* not cumulative */
    double latency_sum_ms;
    /* From a delivery's issue time to the commit of its row (same buckets). */
    uint64_t issue_lag_count[WRITER_LATENCY_BUCKETS];
    double issue_lag_sum_ms;
    uint64_t batch_count[WRITER_BATCH_BUCKETS]; /* sizes of committed batches */
    uint64_t batch_sum;
    uint64_t log_leaves; /* leaves appended to the evidence log */
} writer_stats;

/*
 * The most events a writer ever holds uncommitted or not yet durable: its
 * queue, the batch it writes, and the batches whose fsync is in flight
 * (WRITER_UNSYNCED_MAX, with pipelined commits). What a recovery file must
 * be able to take.
 */
#define WRITER_UNSYNCED_MAX 4
size_t writer_held_max(size_t queue_capacity, size_t batch_max);

/*
 * Takes ownership of lg on success (writer_free closes it); on failure
 * (NULL) the caller still owns it. queue_capacity is 1..WRITER_QUEUE_MAX,
 * batch_max 1..WRITER_BATCH_MAX.
 */
WARN_UNUSED_RESULT writer *writer_new(ledger *lg, size_t queue_capacity, size_t batch_max);

/*
 * Before writer_start: where events go when the ledger cannot take them
 * (borrowed; must outlive the writer; opened for writer_held_max()
 * events), and what to call after a fatal failure. Without a recovery file
 * such events are lost (and counted).
 */
void writer_set_recovery(writer *w, recovery_file *rf);

/*
 * Before writer_start: the evidence log that every batch appends to, in its
 * transaction (borrowed; must outlive the writer). An applied confirmation's
 * result then carries its leaf's proof. NULL: no log.
 */
void writer_set_log(writer *w, tlog *log);
void writer_set_fatal_handler(writer *w, writer_fatal_fn fn, void *arg);

/* Starts the thread (once); returns 0 or -1. */
WARN_UNUSED_RESULT int writer_start(writer *w);
/*
 * Stops accepting, commits what is queued and joins the thread; a failing
 * ledger is retried for grace_ms, then what it did not take is saved to the
 * recovery file. On a writer never started, the queue is drained on the
 * calling thread (callbacks included). Idempotent.
 */
void writer_stop(writer *w, unsigned grace_ms);
/* Stops first if needed (without grace); NULL-safe; closes the ledger. */
void writer_free(writer *w);

/*
 * Copies the event into the queue (up to its receipt's end: the row's
 * receipt must be NUL-terminated within its room). Returns WRITER_OK or why it was refused.
 * When the queue is full and the writer thread runs, waits up to
 * WRITER_FULL_WAIT_MS for room first (backpressure: the caller's answer is
 * late rather than a 503).
 */
WARN_UNUSED_RESULT writer_result writer_submit(writer *w, const ledger_event *event,
                                               writer_done_fn done, void *arg);

/* Releases a result a writer_done_fn was given; NULL-safe. */
void writer_result_free(ledger_result *result);

void writer_get_stats(writer *w, writer_stats *out);

#endif
