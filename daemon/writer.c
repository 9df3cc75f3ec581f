#include "daemon/writer.h"

#include "daemon/log.h"
#include "daemon/thread.h"
#include "daemon/tlog_event.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * One queued event, in one allocation sized to it: first the result, for
 * events with a callback (the many issuances without one do not pay for
 * it), then the item, whose event ends with its receipt's NUL (the rest of
 * the receipt's room, most of the event and all of it for an issuance, is
 * neither allocated nor copied), then the event's log leaf text, made by
 * the submitting thread when there is a log.
 *
 * A result the callback is given is the start of the allocation, and the
 * callback's to keep: the item is freed with it (writer_result_free()).
 */
typedef struct writer_item {
    writer_done_fn done; /* NULL once called */
    void *arg;
    ledger_result *result; /* NULL without a callback */
    int status;            /* of the last ledger_apply: 0 or LEDGER_APPLY_* */
    bool has_leaf;
    ledger_leaf leaf; /* when has_leaf; its text and packed text are in this allocation */
    /* Last, and cut at the end of its receipt (the row's last member):
     * never copy it whole. */
    ledger_event event;
} writer_item;

_Static_assert(sizeof(ledger_result) % _Alignof(writer_item) == 0,
               "an item can follow a result in its allocation");

/* The bytes of an item whose event's receipt is receipt_len bytes long. */
static size_t item_size(size_t receipt_len)
{
    return offsetof(writer_item, event) + offsetof(ledger_event, row) +
           offsetof(ledger_delivery, receipt) + receipt_len + 1;
}

static writer_item *item_of(const ledger_event *event)
{
    return (writer_item *)((char *)event - offsetof(writer_item, event));
}

struct writer {
    ledger *lg;
    size_t batch_max;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* to the writer thread: events queued, or stop */

    /* Read by submitters without the lock: one load per submit. */
    atomic_bool failing; /* a commit failed and none succeeded since (or fatal) */
    _Atomic uint64_t refused[WRITER_RESULT_COUNT];

    /* Guarded by lock. */
    writer_item **ring; /* capacity pointers: events cost memory only while queued */
    size_t capacity;
    size_t head;
    size_t count;
    bool stopping;
    bool closed;         /* saved to the recovery file, or fatal: nothing is accepted any more */
    bool waiting;        /* the writer thread sleeps on wake: submits must signal */
    bool lingering;      /* it waits a little for more events: only urgent ones signal */
    bool running;        /* the writer thread runs: a full queue will have room again */
    bool started_thread; /* writer_main() runs on a thread of its own, not writer_stop()'s */
    size_t room_waiters; /* submitters waiting for room in a full queue */
    pthread_cond_t room; /* to them: the writer took a batch, or stops taking */
    size_t urgent;       /* queued events with a callback (someone waits for them) */
    double stop_deadline_ms; /* while stopping: when a failing ledger is given up on */
    bool tried_stopping;     /* a batch was taken after the stop: one attempt at least */
    writer_stats stats;

    /* Owned by the writer thread (or by writer_stop's caller when never started). */
    writer_item **batch;         /* batch_max pointers; the first `held` wait for a retry */
    ledger_batch_entry *entries; /* batch_max: the batch as ledger_write() takes it */
    size_t held;
    const ledger_event **save_list; /* writer_held_max(): for save_all() */
    char why[LEDGER_ERR_MAX];       /* the last failure */
    double failing_since_ms;
    double reported_ms;           /* the last report line */
    uint64_t failures_unreported; /* failed attempts since that line */
    uint64_t refused_reported[WRITER_RESULT_COUNT];

    /*
     * Pipelined commits (ledger_sync_begin(); SQLite): a committed batch
     * waits in a ring of UNSYNCED_MAX slots for the sync thread's fsync,
     * while the writer thread writes the next. Guarded by lock; a slot's
     * contents are the writer thread's until queued, then the sync thread's.
     */
    ledger_sync *sync;
    struct unsynced_batch *unsynced; /* UNSYNCED_MAX slots */
    size_t unsynced_tail;            /* the oldest queued slot */
    size_t unsynced_count;
    bool sync_stopping;
    bool sync_failed;              /* an fsync failed: the writer thread saves and stops */
    bool checkpoint_due;           /* to the checkpoint thread */
    char sync_why[LEDGER_ERR_MAX]; /* why the fsync failed */
    pthread_cond_t synced;         /* to the writer thread: a slot is free, or the sync failed */
    pthread_cond_t sync_wake;      /* to the sync thread: a batch is queued, or stop */
    pthread_cond_t checkpoint_wake;
    pthread_t sync_thread;
    pthread_t checkpoint_thread;
    bool sync_started;

    /* Set before the thread starts. */
    recovery_file *recovery;
    tlog *log;
    writer_fatal_fn on_fatal;
    void *fatal_arg;

    /* Owned by the controlling thread. */
    pthread_t thread;
    bool started;
    bool stopped;
};

/* A committed batch waiting for its fsync. */
typedef struct unsynced_batch {
    writer_item **items; /* batch_max pointers; n used */
    size_t n;
    double start_ms;   /* when its write began: latency runs to durable */
    uint64_t log_size; /* the log's tree after it (0: no log) */
    char *note;        /* LEDGER_NOTE_MAX + 1: that tree's checkpoint, published once durable */
} unsynced_batch;

/* Batches committed and not yet durable, at most: enough to keep the
 * writer busy through one slow fsync, few enough to bound memory. */
#define UNSYNCED_MAX WRITER_UNSYNCED_MAX

typedef enum batch_outcome {
    BATCH_COMMITTED,
    BATCH_RETRY,
    BATCH_FATAL,
} batch_outcome;

static const double latency_bounds_ms[WRITER_LATENCY_BUCKETS - 1] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
};
static const size_t batch_bounds[WRITER_BATCH_BUCKETS - 1] = {1, 4, 16, 64, 256, 1024, 4096};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static struct timespec timespec_at(double ms)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static size_t latency_bucket(double ms)
{
    size_t i = 0;
    while (i < WRITER_LATENCY_BUCKETS - 1 && ms > latency_bounds_ms[i])
        i++;
    return i;
}

static size_t batch_bucket(size_t n)
{
    size_t i = 0;
    while (i < WRITER_BATCH_BUCKETS - 1 && n > batch_bounds[i])
        i++;
    return i;
}

static const char *kind_name(ledger_event_kind kind)
{
    switch (kind) {
    case LEDGER_EVENT_ISSUE:
        return "issue";
    case LEDGER_EVENT_BIND:
        return "bind";
    case LEDGER_EVENT_CONFIRM:
        return "confirm";
    case LEDGER_EVENT_COPY:
        return "copy";
    }
    return "unknown";
}

static void item_free(writer_item *item)
{
    if (item != NULL)
        free(item->result != NULL ? (void *)item->result : (void *)item);
}

void writer_result_free(ledger_result *result)
{
    free(result);
}

/* Tells a waiting client that its event is not committed (yet). */
static void item_answer_failed(writer_item *item)
{
    if (item->done != NULL) {
        item->done(item->arg, false, NULL);
        item->done = NULL;
    }
}

/* ---- reporting ---- */

static uint64_t refused_since_report(writer *w, uint64_t *full, uint64_t *failing)
{
    uint64_t total = 0;
    for (int r = WRITER_QUEUE_FULL; r < WRITER_RESULT_COUNT; r++) {
        uint64_t now = atomic_load_explicit(&w->refused[r], memory_order_relaxed);
        uint64_t delta = now - w->refused_reported[r];
        w->refused_reported[r] = now;
        total += delta;
        if (r == WRITER_QUEUE_FULL)
            *full = delta;
        if (r == WRITER_FAILING)
            *failing = delta;
    }
    return total;
}

/*
 * One line a second at most, whatever the load: why the ledger is not
 * committing and how many requests were refused meanwhile.
 */
static void report(writer *w, bool force)
{
    double now = now_ms();
    if (!force && now - w->reported_ms < WRITER_REPORT_MS)
        return;
    uint64_t full = 0, failing = 0;
    uint64_t refused = refused_since_report(w, &full, &failing);
    if (atomic_load(&w->failing)) {
        log_error("ledger writer: not committing for %.1f s (%s); since the last report: %llu "
                  "failed attempts, %llu requests answered 503; %zu events held for retry",
                  (now - w->failing_since_ms) / 1000.0, w->why,
                  (unsigned long long)w->failures_unreported, (unsigned long long)refused, w->held);
        w->failures_unreported = 0;
    } else if (full > 0) {
        log_warn("ledger queue full: %llu requests answered 503 since the last report",
                 (unsigned long long)full);
    } else if (refused == 0) {
        return; /* nothing to say: keep the last report's time */
    }
    w->reported_ms = now;
}

/* ---- the batch ---- */

static void batch_committed(writer *w, writer_item **items, size_t n, double latency)
{
    size_t refused = 0;
    uint64_t lag_count[WRITER_LATENCY_BUCKETS] = {0};
    double lag_sum = 0;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    uint64_t wall_ms = (uint64_t)wall.tv_sec * 1000 + (uint64_t)wall.tv_nsec / 1000000;
    for (size_t i = 0; i < n; i++) {
        const writer_item *item = items[i];
        refused += item->status != 0;
        /* How long a delivery went without its row: the durability target. */
        if (item->status == 0 && item->event.kind == LEDGER_EVENT_ISSUE) {
            uint64_t issued = item->event.row.issued_ms;
            double lag = wall_ms > issued ? (double)(wall_ms - issued) : 0;
            lag_count[latency_bucket(lag)]++;
            lag_sum += lag;
        }
    }
    if (latency >= WRITER_SLOW_COMMIT_MS)
        log_warn("ledger writer: a batch of %zu events took %.0f ms to commit", n, latency);
    if (atomic_load(&w->failing)) {
        report(w, true); /* the counts of the failing spell, before they reset */
        log_warn("ledger writer: committing again after %.1f s (a batch of %zu events, the %zu "
                 "held for retry among them)",
                 (now_ms() - w->failing_since_ms) / 1000.0, n, w->held);
    }

    /* Counted before the callbacks run, so that what they observe adds up. */
    pthread_mutex_lock(&w->lock);
    w->stats.committed += n - refused;
    w->stats.failed += refused;
    w->stats.batches++;
    w->stats.retrying = 0;
    w->stats.failing = false;
    w->stats.latency_count[latency_bucket(latency)]++;
    w->stats.latency_sum_ms += latency;
    w->stats.batch_count[batch_bucket(n)]++;
    w->stats.batch_sum += n;
    w->stats.log_leaves = w->log != NULL ? tlog_appended(w->log) : 0;
    for (size_t b = 0; b < WRITER_LATENCY_BUCKETS; b++)
        w->stats.issue_lag_count[b] += lag_count[b];
    w->stats.issue_lag_sum_ms += lag_sum;
    atomic_store(&w->failing, false);
    pthread_mutex_unlock(&w->lock);

    for (size_t i = 0; i < n; i++) {
        writer_item *item = items[i];
        if (item->done != NULL && item->status == 0) {
            /* The result, and the item with it, are the callback's now:
             * nothing is copied on the way to the answer. */
            item->done(item->arg, true, item->result);
            continue;
        }
        if (item->done != NULL)
            item->done(item->arg, false, NULL);
        else if (item->status != 0)
            log_error("ledger writer: %s event %s dropped: the ledger refused it",
                      kind_name(item->event.kind), item->event.row.id);
        item_free(item);
    }
}

/*
 * Pipelined: hands the committed batch w->batch[0..n) to the sync thread,
 * after waiting for a free slot. Returns false when the sync failed
 * meanwhile (the batch stays held, for save_all()).
 */
static bool batch_queue_unsynced(writer *w, size_t n, double start)
{
    pthread_mutex_lock(&w->lock);
    while (w->unsynced_count == UNSYNCED_MAX && !w->sync_failed)
        pthread_cond_wait(&w->synced, &w->lock);
    if (w->sync_failed) {
        pthread_mutex_unlock(&w->lock);
        return false;
    }
    /* The free slot is the writer thread's until it is counted in. */
    unsynced_batch *slot = &w->unsynced[(w->unsynced_tail + w->unsynced_count) % UNSYNCED_MAX];
    pthread_mutex_unlock(&w->lock);

    memcpy(slot->items, w->batch, n * sizeof *w->batch);
    slot->n = n;
    slot->start_ms = start;
    slot->log_size = w->log != NULL ? tlog_committed(w->log, slot->note, LEDGER_NOTE_MAX + 1) : 0;

    pthread_mutex_lock(&w->lock);
    w->unsynced_count++;
    w->held = 0;
    pthread_cond_signal(&w->sync_wake);
    pthread_mutex_unlock(&w->lock);
    return true;
}

/*
 * Not committed: waiting clients learn it now (they get 503 and retry);
 * every event stays at the front of the batch for the next attempt, those
 * with a callback included, so that nothing that was answered is dropped.
 */
static void batch_failed(writer *w, size_t n, const char *why)
{
    bool first = !atomic_load(&w->failing);
    snprintf(w->why, sizeof w->why, "%s", why);
    w->held = n;
    w->failures_unreported++;

    pthread_mutex_lock(&w->lock);
    w->stats.failed_commits++;
    w->stats.retrying = n;
    w->stats.failing = true;
    atomic_store(&w->failing, true);
    pthread_cond_broadcast(&w->room);
    pthread_mutex_unlock(&w->lock);

    if (first) {
        w->failing_since_ms = now_ms();
        w->reported_ms = w->failing_since_ms;
        w->failures_unreported = 0;
        log_error("ledger writer: a batch of %zu events failed (%s); held for retry, and new "
                  "deliveries and confirmations get 503 until a commit succeeds",
                  n, why);
    }
    for (size_t i = 0; i < n; i++)
        item_answer_failed(w->batch[i]);
}

/* Writes w->batch[0..n) in one transaction (ledger_write). */
static batch_outcome batch_run(writer *w, size_t n)
{
    char why[LEDGER_ERR_MAX];
    double start = now_ms();

    if (w->sync != NULL) {
        pthread_mutex_lock(&w->lock);
        bool failed = w->sync_failed;
        if (failed)
            snprintf(w->why, sizeof w->why, "%s", w->sync_why);
        pthread_mutex_unlock(&w->lock);
        if (failed) {
            w->held = n;
            return BATCH_FATAL;
        }
    }

    for (size_t i = 0; i < n; i++) {
        writer_item *item = w->batch[i];
        item->status = 0;
        w->entries[i] = (ledger_batch_entry){.event = &item->event,
                                             .result = item->result,
                                             .leaf = item->has_leaf ? &item->leaf : NULL};
    }
    if (ledger_write_logged(w->lg, w->entries, n, w->log != NULL ? tlog_hook(w->log) : NULL) != 0) {
        ledger_fault fault = ledger_last_fault(w->lg);
        snprintf(why, sizeof why, "%s", ledger_error(w->lg));
        batch_failed(w, n, why);
        return fault == LEDGER_FAULT_FATAL ? BATCH_FATAL : BATCH_RETRY;
    }
    for (size_t i = 0; i < n; i++) {
        writer_item *item = w->batch[i];
        item->status = w->entries[i].status;
        /* This event alone; the rest of the batch went on. */
        if (item->status != 0)
            log_error("ledger writer: %s event %s refused: %s", kind_name(item->event.kind),
                      item->event.row.id, w->entries[i].why ? w->entries[i].why : "refused");
        /* A confirmation that applied is answered with its leaf's proof, from
         * the hashes the batch left in memory. */
        if (item->result != NULL) {
            item->result->proof.present = false;
            if (w->log != NULL && item->status == 0 && item->event.kind == LEDGER_EVENT_CONFIRM &&
                w->entries[i].outcome == LEDGER_APPLIED &&
                !tlog_prove(w->log, i, &item->result->proof))
                log_error("ledger writer: no proof for the confirmation of %s", item->event.row.id);
        }
    }
    if (w->sync == NULL) {
        batch_committed(w, w->batch, n, now_ms() - start);
        w->held = 0;
        return BATCH_COMMITTED;
    }
    if (!batch_queue_unsynced(w, n, start)) {
        w->held = n;
        snprintf(w->why, sizeof w->why, "%s", w->sync_why);
        return BATCH_FATAL;
    }
    return BATCH_COMMITTED;
}

/* ---- giving up on the ledger ---- */

/*
 * Everything held and queued leaves the writer now: nothing is accepted any
 * more, waiting clients are answered, and the events go to the recovery
 * file, issuances and bindings first. Allocates nothing: a failing server
 * may be short of memory too.
 */
static void save_all(writer *w)
{
    size_t total = 0;
    size_t saved = 0;
    const ledger_event **list = w->save_list;
    char err[RECOVERY_ERR_MAX] = "no recovery file";

    /* Each event's item is item_of() it.
     * Issuances and bindings first, then confirmations, each in order. */
    pthread_mutex_lock(&w->lock);
    w->closed = true;
    atomic_store(&w->failing, true);
    pthread_cond_broadcast(&w->room);
    for (int confirms = 0; confirms < 2; confirms++) {
        /* Committed but not durable (an fsync failed) first: oldest. */
        for (size_t b = 0; b < w->unsynced_count; b++) {
            const unsynced_batch *slot = &w->unsynced[(w->unsynced_tail + b) % UNSYNCED_MAX];
            for (size_t i = 0; i < slot->n; i++)
                if ((slot->items[i]->event.kind == LEDGER_EVENT_CONFIRM) == (confirms == 1))
                    list[total++] = &slot->items[i]->event;
        }
        for (size_t i = 0; i < w->held + w->count; i++) {
            writer_item *item =
                i < w->held ? w->batch[i] : w->ring[(w->head + i - w->held) % w->capacity];
            if ((item->event.kind == LEDGER_EVENT_CONFIRM) == (confirms == 1))
                list[total++] = &item->event;
        }
    }
    w->head = (w->head + w->count) % w->capacity;
    w->count = 0;
    w->urgent = 0;
    w->held = 0;
    w->unsynced_tail = (w->unsynced_tail + w->unsynced_count) % UNSYNCED_MAX;
    w->unsynced_count = 0;
    pthread_mutex_unlock(&w->lock);

    for (size_t i = 0; i < total; i++)
        item_answer_failed(item_of(list[i])); /* outside the lock: it may call back */

    if (w->recovery != NULL && total > 0)
        saved = recovery_save(w->recovery, list, total, err, sizeof err);
    size_t lost = total - saved;
    if (saved > 0)
        log_error("ledger writer: %zu events the ledger could not take were saved to the "
                  "recovery file; the next start applies them",
                  saved);
    if (lost > 0)
        log_error("ledger writer: %zu events lost: the recovery file could not take them (%s)",
                  lost, err);

    pthread_mutex_lock(&w->lock);
    w->stats.saved += saved;
    w->stats.failed += lost;
    w->stats.lost += lost;
    w->stats.retrying = 0;
    pthread_mutex_unlock(&w->lock);

    for (size_t i = 0; i < total; i++)
        item_free(item_of(list[i]));
}

/* ---- the thread ---- */

static void stop_sync_threads(writer *w);

/* Takes queued events behind the held ones; returns false when done for good. */
static bool batch_fill(writer *w, size_t *n)
{
    bool more = true;

    pthread_mutex_lock(&w->lock);
    while (w->count == 0 && w->held == 0 && !w->stopping && !w->sync_failed) {
        w->waiting = true;
        pthread_cond_wait(&w->wake, &w->lock);
        w->waiting = false;
    }
    if (w->sync_failed) {
        *n = 0;
        pthread_mutex_unlock(&w->lock);
        return true; /* batch_run() finds out */
    }
    /* Issuances wait for nobody: linger a moment so that one commit and one
     * wake-up serve many of them. A confirmation (urgent) or a full batch
     * ends the wait at once. Past WRITER_LINGER_MS, a batch of fewer than
     * WRITER_LINGER_ROWS waits on, up to WRITER_LINGER_MAX_MS in all: a
     * commit has a fixed cost (the WAL pages it writes whatever its size,
     * the log's signed checkpoint, an fsync), which a few dozen rows share
     * badly and a few hundred well. */
    if (!w->stopping && w->urgent == 0 && w->held + w->count < w->batch_max) {
        double start = now_ms();
        struct timespec until = timespec_at(start + WRITER_LINGER_MS);
        struct timespec until_max = timespec_at(start + WRITER_LINGER_MAX_MS);
        bool past_linger = false;
        w->lingering = true;
        while (!w->stopping && w->urgent == 0 && w->held + w->count < w->batch_max) {
            if (past_linger && w->held + w->count >= WRITER_LINGER_ROWS)
                break;
            if (pthread_cond_timedwait(&w->wake, &w->lock, past_linger ? &until_max : &until) ==
                ETIMEDOUT) {
                if (past_linger)
                    break;
                past_linger = true;
            }
        }
        w->lingering = false;
    }
    if (w->count == 0 && w->held == 0 && w->stopping) {
        more = false;
    } else {
        assert(w->held <= w->batch_max && w->count <= w->capacity && w->head < w->capacity);
        assert(w->urgent <= w->count);
        w->tried_stopping = w->stopping;
        size_t take = w->batch_max - w->held;
        if (take > w->count)
            take = w->count;
        for (size_t i = 0; i < take; i++) {
            w->batch[w->held + i] = w->ring[w->head];
            w->urgent -= w->ring[w->head]->done != NULL;
            w->head = (w->head + 1) % w->capacity;
        }
        w->count -= take;
        *n = w->held + take;
        if (take > 0 && w->room_waiters > 0)
            pthread_cond_broadcast(&w->room);
    }
    pthread_mutex_unlock(&w->lock);
    return more;
}

/*
 * Waits before the next attempt; returns true when it is time to give up
 * instead (stopping, and the grace is over). Not woken by submits: the
 * queue fills meanwhile, and bounds memory.
 */
static bool pause_or_give_up(writer *w, unsigned backoff_ms)
{
    bool give_up = false;
    pthread_mutex_lock(&w->lock);
    double until = now_ms() + backoff_ms;
    for (;;) {
        double now = now_ms();
        if (w->stopping && now >= w->stop_deadline_ms) {
            give_up = w->tried_stopping; /* else one more attempt first, at once */
            break;
        }
        if (now >= until)
            break;
        double wake_at = w->stopping && w->stop_deadline_ms < until ? w->stop_deadline_ms : until;
        struct timespec ts = timespec_at(wake_at);
        w->waiting = true; /* writer_stop wakes it, to shorten the wait to the grace */
        pthread_cond_timedwait(&w->wake, &w->lock, &ts);
        w->waiting = false;
    }
    pthread_mutex_unlock(&w->lock);
    return give_up;
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    if (w->started_thread)
        pthread_setname_np(pthread_self(), "ledger-writer"); /* for top -H, perf */
    unsigned backoff = 0;                                    /* ms; 0 while the ledger works */
    size_t n = 0;

    while (batch_fill(w, &n)) {
        batch_outcome outcome = batch_run(w, n);
        report(w, false);
        if (outcome == BATCH_COMMITTED) {
            backoff = 0;
            continue;
        }
        if (outcome == BATCH_FATAL) {
            log_error("ledger writer: the ledger failed in a way that a retry cannot mend (%s); "
                      "refusing every event and stopping",
                      w->why);
            pthread_mutex_lock(&w->lock);
            w->stats.fatal = true;
            pthread_mutex_unlock(&w->lock);
            stop_sync_threads(w); /* what it still holds is saved with the rest */
            save_all(w);
            if (w->on_fatal != NULL)
                w->on_fatal(w->fatal_arg);
            break;
        }
        backoff = backoff == 0 ? WRITER_BACKOFF_MIN_MS : backoff * 2;
        if (backoff > WRITER_BACKOFF_MAX_MS)
            backoff = WRITER_BACKOFF_MAX_MS;
        if (pause_or_give_up(w, backoff)) {
            report(w, true);
            log_error("ledger writer: still failing at the end of the shutdown grace (%s)", w->why);
            save_all(w);
            break;
        }
    }
    return NULL;
}

/* ---- pipelined commits: the sync and checkpoint threads ---- */

/*
 * Takes every queued slot, makes them durable with one fsync, then answers
 * them in order and publishes the log's checkpoint of the last. On a failed
 * fsync the slots stay queued, the writer refuses everything from then on,
 * and the writer thread saves them with the rest (save_all()).
 */
static void *sync_main(void *arg)
{
    writer *w = arg;
    char why[LEDGER_ERR_MAX];
    pthread_setname_np(pthread_self(), "ledger-sync");

    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (w->unsynced_count == 0 && !w->sync_stopping)
            pthread_cond_wait(&w->sync_wake, &w->lock);
        size_t taken = w->unsynced_count;
        size_t first = w->unsynced_tail;
        pthread_mutex_unlock(&w->lock);
        if (taken == 0)
            break; /* stopping, and nothing left */

        if (ledger_sync_now(w->sync, why, sizeof why) != 0) {
            log_error("ledger writer: %s: what was committed since the last fsync may be lost; "
                      "refusing every event and stopping",
                      why);
            pthread_mutex_lock(&w->lock);
            snprintf(w->sync_why, sizeof w->sync_why, "%s", why);
            w->sync_failed = true;
            w->closed = true;
            atomic_store(&w->failing, true);
            pthread_cond_broadcast(&w->room);
            pthread_cond_broadcast(&w->synced);
            pthread_cond_signal(&w->wake);
            pthread_mutex_unlock(&w->lock);
            break;
        }
        double now = now_ms();
        /* Published before anyone is answered, so that a client that reads
         * the log's checkpoint after its 200 finds its leaf in it. */
        const unsynced_batch *last = &w->unsynced[(first + taken - 1) % UNSYNCED_MAX];
        if (w->log != NULL && last->log_size > 0)
            tlog_publish(w->log, last->log_size, last->note);
        for (size_t b = 0; b < taken; b++) {
            unsynced_batch *slot = &w->unsynced[(first + b) % UNSYNCED_MAX];
            batch_committed(w, slot->items, slot->n, now - slot->start_ms);
        }

        pthread_mutex_lock(&w->lock);
        w->unsynced_tail = (first + taken) % UNSYNCED_MAX;
        w->unsynced_count -= taken;
        if (!w->checkpoint_due && ledger_sync_checkpoint_due(w->sync)) {
            w->checkpoint_due = true;
            pthread_cond_signal(&w->checkpoint_wake);
        }
        pthread_cond_broadcast(&w->synced);
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

/* Copies the WAL into the database when it has grown: apart from the
 * fsyncs that answers wait for, since it takes tens of milliseconds. */
static void *checkpoint_main(void *arg)
{
    writer *w = arg;
    char why[LEDGER_ERR_MAX];
    pthread_setname_np(pthread_self(), "ledger-checkpt");

    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->checkpoint_due && !w->sync_stopping)
            pthread_cond_wait(&w->checkpoint_wake, &w->lock);
        if (!w->checkpoint_due)
            break;
        pthread_mutex_unlock(&w->lock);
        int rc = ledger_sync_checkpoint(w->sync, why, sizeof why);
        if (rc != 0)
            log_warn("ledger writer: %s (tried again when the WAL has grown)", why);
        pthread_mutex_lock(&w->lock);
        w->checkpoint_due = false;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Lets the sync thread finish what is queued (or give up on a failed
 * fsync), then joins both threads. Idempotent. */
static void stop_sync_threads(writer *w)
{
    if (!w->sync_started)
        return;
    pthread_mutex_lock(&w->lock);
    w->sync_stopping = true;
    pthread_cond_signal(&w->sync_wake);
    pthread_cond_signal(&w->checkpoint_wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->sync_thread, NULL);
    pthread_join(w->checkpoint_thread, NULL);
    w->sync_started = false;
}

size_t writer_held_max(size_t queue_capacity, size_t batch_max)
{
    return queue_capacity + (1 + (size_t)WRITER_UNSYNCED_MAX) * batch_max;
}

/* ---- the interface ---- */

static void free_unsynced(writer *w)
{
    if (w->unsynced == NULL)
        return;
    for (size_t i = 0; i < UNSYNCED_MAX; i++) {
        free(w->unsynced[i].items);
        free(w->unsynced[i].note);
    }
    free(w->unsynced);
    w->unsynced = NULL;
}

writer *writer_new(ledger *lg, size_t queue_capacity, size_t batch_max)
{
    writer *w = NULL;

    if (lg == NULL)
        return NULL;
    if (queue_capacity == 0 || queue_capacity > WRITER_QUEUE_MAX || batch_max == 0 ||
        batch_max > WRITER_BATCH_MAX) {
        log_error("ledger writer: queue capacity %zu or batch size %zu out of range",
                  queue_capacity, batch_max);
        goto fail;
    }
    w = calloc(1, sizeof *w);
    if (w == NULL)
        goto fail;
    w->ring = calloc(queue_capacity, sizeof *w->ring);
    w->batch = calloc(batch_max, sizeof *w->batch);
    w->save_list = calloc(writer_held_max(queue_capacity, batch_max), sizeof *w->save_list);
    w->entries = calloc(batch_max, sizeof *w->entries);
    w->unsynced = calloc(UNSYNCED_MAX, sizeof *w->unsynced);
    if (w->ring == NULL || w->batch == NULL || w->save_list == NULL || w->entries == NULL ||
        w->unsynced == NULL)
        goto fail;
    for (size_t i = 0; i < UNSYNCED_MAX; i++) {
        w->unsynced[i].items = calloc(batch_max, sizeof *w->unsynced[i].items);
        w->unsynced[i].note = calloc(1, LEDGER_NOTE_MAX + 1);
        if (w->unsynced[i].items == NULL || w->unsynced[i].note == NULL)
            goto fail;
    }
    if (pthread_mutex_init(&w->lock, NULL) != 0)
        goto fail;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int cond_rc = pthread_cond_init(&w->wake, &attr);
    if (cond_rc == 0 && (cond_rc = pthread_cond_init(&w->room, &attr)) != 0)
        pthread_cond_destroy(&w->wake);
    pthread_condattr_destroy(&attr);
    if (cond_rc != 0) {
        pthread_mutex_destroy(&w->lock);
        goto fail;
    }
    pthread_cond_t *conds[] = {&w->synced, &w->sync_wake, &w->checkpoint_wake};
    for (size_t i = 0; i < sizeof conds / sizeof conds[0]; i++) {
        if (pthread_cond_init(conds[i], NULL) != 0) {
            while (i-- > 0)
                pthread_cond_destroy(conds[i]);
            pthread_cond_destroy(&w->room);
            pthread_cond_destroy(&w->wake);
            pthread_mutex_destroy(&w->lock);
            goto fail;
        }
    }
    atomic_init(&w->failing, false);
    for (int r = 0; r < WRITER_RESULT_COUNT; r++)
        atomic_init(&w->refused[r], 0);
    w->lg = lg;
    w->capacity = queue_capacity;
    w->batch_max = batch_max;
    w->stats.capacity = queue_capacity;
    return w;

fail:
    if (w != NULL) {
        free(w->ring);
        free(w->batch);
        free(w->save_list);
        free(w->entries);
        free_unsynced(w);
        free(w);
    }
    return NULL; /* lg stays the caller's */
}

void writer_set_recovery(writer *w, recovery_file *rf)
{
    if (w != NULL && !w->started) {
        w->recovery = rf;
        w->stats.recovery_reserved = recovery_reserved(rf);
    }
}

void writer_set_log(writer *w, tlog *log)
{
    if (w != NULL && !w->started)
        w->log = log;
}

void writer_set_fatal_handler(writer *w, writer_fatal_fn fn, void *arg)
{
    if (w != NULL && !w->started) {
        w->on_fatal = fn;
        w->fatal_arg = arg;
    }
}

int writer_start(writer *w)
{
    if (w == NULL || w->started || w->stopped)
        return -1;
    /* Pipelined commits where the ledger has them (SQLite). */
    char err[LEDGER_ERR_MAX];
    w->sync = ledger_sync_begin(w->lg, err, sizeof err);
    if (w->sync == NULL && err[0] != '\0')
        log_warn("ledger writer: commits not pipelined: %s", err);
    if (w->sync != NULL) {
        if (w->log != NULL)
            tlog_defer_publish(w->log);
        int rc = thread_start(&w->sync_thread, sync_main, w);
        if (rc == 0) {
            rc = thread_start(&w->checkpoint_thread, checkpoint_main, w);
            if (rc != 0) {
                pthread_mutex_lock(&w->lock);
                w->sync_stopping = true;
                pthread_cond_signal(&w->sync_wake);
                pthread_mutex_unlock(&w->lock);
                pthread_join(w->sync_thread, NULL);
            }
        }
        if (rc != 0) {
            log_error("ledger writer: cannot start the sync thread: %s", strerror(rc));
            return -1;
        }
        w->sync_started = true;
    }
    w->started_thread = true;
    int rc = thread_start(&w->thread, writer_main, w);
    if (rc != 0) {
        w->started_thread = false;
        log_error("ledger writer: cannot start the thread: %s", strerror(rc));
        stop_sync_threads(w);
        return -1;
    }
    w->started = true;
    pthread_mutex_lock(&w->lock);
    w->running = true;
    pthread_mutex_unlock(&w->lock);
    return 0;
}

void writer_stop(writer *w, unsigned grace_ms)
{
    if (w == NULL || w->stopped)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    w->stop_deadline_ms = now_ms() + grace_ms;
    pthread_cond_signal(&w->wake);
    pthread_cond_broadcast(&w->room);
    pthread_mutex_unlock(&w->lock);

    if (w->started)
        pthread_join(w->thread, NULL);
    else
        writer_main(w);   /* nobody else will commit what is queued */
    stop_sync_threads(w); /* what is committed becomes durable, and is answered */
    /* A thread that ended early (fatal) left nothing queued: submits were refused. */
    w->stopped = true;
}

void writer_free(writer *w)
{
    if (w == NULL)
        return;
    writer_stop(w, 0);
    /* The drain leaves nothing behind; this is for a failed start only. */
    for (size_t i = 0; i < w->count; i++)
        item_free(w->ring[(w->head + i) % w->capacity]);
    for (size_t i = 0; i < w->held; i++)
        item_free(w->batch[i]);
    ledger_sync_free(w->sync);
    ledger_close(w->lg);
    free_unsynced(w);
    pthread_cond_destroy(&w->synced);
    pthread_cond_destroy(&w->sync_wake);
    pthread_cond_destroy(&w->checkpoint_wake);
    pthread_cond_destroy(&w->room);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->ring);
    free(w->batch);
    free(w->save_list);
    free(w->entries);
    free(w);
}

static writer_result refuse(writer *w, writer_result why)
{
    atomic_fetch_add_explicit(&w->refused[why], 1, memory_order_relaxed);
    return why;
}

writer_result writer_submit(writer *w, const ledger_event *event, writer_done_fn done, void *arg)
{
    writer_item *item;

    if (w == NULL || event == NULL)
        return WRITER_STOPPING;
    /* A failing ledger refuses before anything is copied. */
    if (atomic_load_explicit(&w->failing, memory_order_relaxed))
        return refuse(w, WRITER_FAILING);
    /*
     * Copied, and its log leaf made, outside the lock and off the writer
     * thread: the event is big, submitters are many, and the writer is the
     * one thread that every event waits for.
     */
    char text[TLOG_EVENT_MAX + 1];
    uint8_t packed[TLOG_EVENT_MAX + 1];
    ledger_leaf leaf;
    bool has_leaf = w->log != NULL &&
                    tlog_leaf_make(event, text, sizeof text, packed, sizeof packed, &leaf) == 0;
    size_t result_size = done != NULL ? sizeof(ledger_result) : 0;
    size_t receipt_len = strnlen(event->row.receipt, sizeof event->row.receipt - 1);
    size_t item_bytes = item_size(receipt_len);
    size_t text_size = has_leaf ? leaf.text_len + 1 : 0;
    size_t packed_size = has_leaf && leaf.packed != NULL ? leaf.packed_len : 0;
    char *block = malloc(result_size + item_bytes + text_size + packed_size);
    if (block == NULL)
        return refuse(w, WRITER_QUEUE_FULL);
    item = (writer_item *)(block + result_size);
    item->result = done != NULL ? (ledger_result *)block : NULL;
    item->has_leaf = has_leaf;
    if (has_leaf) {
        item->leaf = leaf;
        item->leaf.text = memcpy((char *)item + item_bytes, text, text_size);
        if (packed_size > 0)
            item->leaf.packed = memcpy((char *)item + item_bytes + text_size, packed, packed_size);
    }
    memcpy(&item->event, event, item_bytes - offsetof(writer_item, event) - 1);
    item->event.row.receipt[receipt_len] = '\0';
    item->done = done;
    item->arg = arg;
    item->status = 0;

    pthread_mutex_lock(&w->lock);
    /*
     * A full queue is a burst the writer is taking its time over: wait a
     * little for room (the writer takes a whole batch at once) rather than
     * answer 503 at once. Only a ledger that stays behind is refused.
     */
    if (w->count == w->capacity && w->running && !w->stopping && !w->closed) {
        struct timespec until = timespec_at(now_ms() + WRITER_FULL_WAIT_MS);
        w->room_waiters++;
        while (w->count == w->capacity && !w->stopping && !w->closed && !atomic_load(&w->failing) &&
               pthread_cond_timedwait(&w->room, &w->lock, &until) != ETIMEDOUT) {
        }
        w->room_waiters--;
    }
    writer_result why = w->stopping                             ? WRITER_STOPPING
                        : w->closed || atomic_load(&w->failing) ? WRITER_FAILING
                        : w->count == w->capacity               ? WRITER_QUEUE_FULL
                                                                : WRITER_OK;
    if (why != WRITER_OK) {
        pthread_mutex_unlock(&w->lock);
        item_free(item);
        return refuse(w, why);
    }
    assert(w->count < w->capacity && w->head < w->capacity);
    w->ring[(w->head + w->count) % w->capacity] = item;
    w->count++;
    w->urgent += done != NULL;
    w->stats.submitted++;
    if (w->waiting || (w->lingering && (done != NULL || w->held + w->count >= w->batch_max ||
                                        w->held + w->count == WRITER_LINGER_ROWS)))
        pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    return WRITER_OK;
}

void writer_get_stats(writer *w, writer_stats *out)
{
    if (w == NULL || out == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    out->queued = w->count;
    out->capacity = w->capacity;
    pthread_mutex_unlock(&w->lock);
    out->rejected = 0;
    for (int r = 0; r < WRITER_RESULT_COUNT; r++) {
        out->refused[r] = atomic_load_explicit(&w->refused[r], memory_order_relaxed);
        out->rejected += out->refused[r];
    }
}
