#include "daemon/writer.h"

#include "daemon/log.h"
#include "daemon/thread.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * One queued event. Events with a callback carry room for their result in
 * the same allocation; the many issuances without one do not pay for it.
 */
typedef struct writer_item {
    ledger_event event;
    writer_done_fn done; /* NULL once called */
    void *arg;
    ledger_result *result; /* NULL without a callback */
    int status;            /* of the last ledger_apply: 0 or LEDGER_APPLY_* */
} writer_item;

typedef struct writer_item_with_result {
    writer_item item;
    ledger_result result;
} writer_item_with_result;

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
    bool closed;    /* saved to the recovery file, or fatal: nothing is accepted any more */
    bool waiting;   /* the writer thread sleeps on wake: submits must signal */
    bool lingering; /* it waits a little for more events: only urgent ones signal */
    size_t urgent;  /* queued events with a callback (someone waits for them) */
    double stop_deadline_ms; /* while stopping: when a failing ledger is given up on */
    bool tried_stopping;     /* a batch was taken after the stop: one attempt at least */
    writer_stats stats;

    /* Owned by the writer thread (or by writer_stop's caller when never started). */
    writer_item **batch;         /* batch_max pointers; the first `held` wait for a retry */
    ledger_batch_entry *entries; /* batch_max: the batch as ledger_write() takes it */
    size_t held;
    const ledger_event **save_list; /* capacity + batch_max: for save_all() */
    char why[LEDGER_ERR_MAX];       /* the last failure */
    double failing_since_ms;
    double reported_ms;           /* the last report line */
    uint64_t failures_unreported; /* failed attempts since that line */
    uint64_t refused_reported[WRITER_RESULT_COUNT];

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
    free(item);
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

static void batch_committed(writer *w, size_t n, double latency)
{
    size_t refused = 0;
    uint64_t lag_count[WRITER_LATENCY_BUCKETS] = {0};
    double lag_sum = 0;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    uint64_t wall_ms = (uint64_t)wall.tv_sec * 1000 + (uint64_t)wall.tv_nsec / 1000000;
    for (size_t i = 0; i < n; i++) {
        const writer_item *item = w->batch[i];
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
        writer_item *item = w->batch[i];
        if (item->done != NULL)
            item->done(item->arg, item->status == 0, item->status == 0 ? item->result : NULL);
        else if (item->status != 0)
            log_error("ledger writer: %s event %s dropped: the ledger refused it",
                      kind_name(item->event.kind), item->event.row.id);
        item_free(item);
    }
    w->held = 0;
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

    for (size_t i = 0; i < n; i++) {
        writer_item *item = w->batch[i];
        item->status = 0;
        w->entries[i] = (ledger_batch_entry){.event = &item->event, .result = item->result};
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
    batch_committed(w, n, now_ms() - start);
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

    /* The event is an item's first member: list[i] is the item too.
     * Issuances and bindings first, then confirmations, each in order. */
    pthread_mutex_lock(&w->lock);
    w->closed = true;
    atomic_store(&w->failing, true);
    for (int confirms = 0; confirms < 2; confirms++) {
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
    pthread_mutex_unlock(&w->lock);

    for (size_t i = 0; i < total; i++)
        item_answer_failed((writer_item *)list[i]); /* outside the lock: it may call back */

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
        item_free((writer_item *)list[i]);
}

/* ---- the thread ---- */

/* Takes queued events behind the held ones; returns false when done for good. */
static bool batch_fill(writer *w, size_t *n)
{
    bool more = true;

    pthread_mutex_lock(&w->lock);
    while (w->count == 0 && w->held == 0 && !w->stopping) {
        w->waiting = true;
        pthread_cond_wait(&w->wake, &w->lock);
        w->waiting = false;
    }
    /* Issuances wait for nobody: linger a moment so that one commit and one
     * wake-up serve many of them. A confirmation (urgent) or a full batch
     * ends the wait at once. */
    if (!w->stopping && w->urgent == 0 && w->held + w->count < w->batch_max) {
        struct timespec until = timespec_at(now_ms() + WRITER_LINGER_MS);
        w->lingering = true;
        while (!w->stopping && w->urgent == 0 && w->held + w->count < w->batch_max) {
            if (pthread_cond_timedwait(&w->wake, &w->lock, &until) == ETIMEDOUT)
                break;
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
    unsigned backoff = 0; /* ms; 0 while the ledger works */
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

/* ---- the interface ---- */

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
    w->save_list = calloc(queue_capacity + batch_max, sizeof *w->save_list);
    w->entries = calloc(batch_max, sizeof *w->entries);
    if (w->ring == NULL || w->batch == NULL || w->save_list == NULL || w->entries == NULL)
        goto fail;
    if (pthread_mutex_init(&w->lock, NULL) != 0)
        goto fail;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int cond_rc = pthread_cond_init(&w->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (cond_rc != 0) {
        pthread_mutex_destroy(&w->lock);
        goto fail;
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
    int rc = thread_start(&w->thread, writer_main, w);
    if (rc != 0) {
        log_error("ledger writer: cannot start the thread: %s", strerror(rc));
        return -1;
    }
    w->started = true;
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
    pthread_mutex_unlock(&w->lock);

    if (w->started)
        pthread_join(w->thread, NULL);
    else
        writer_main(w); /* nobody else will commit what is queued */
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
    ledger_close(w->lg);
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
    /* Copied outside the lock: the event is big, and submitters are many. */
    if (done != NULL) {
        writer_item_with_result *both = malloc(sizeof *both);
        if (both == NULL)
            return refuse(w, WRITER_QUEUE_FULL);
        item = &both->item;
        item->result = &both->result;
    } else {
        item = malloc(sizeof *item);
        if (item == NULL)
            return refuse(w, WRITER_QUEUE_FULL);
        item->result = NULL;
    }
    memcpy(&item->event, event, sizeof item->event);
    item->done = done;
    item->arg = arg;
    item->status = 0;

    pthread_mutex_lock(&w->lock);
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
    if (w->waiting || (w->lingering && (done != NULL || w->held + w->count >= w->batch_max)))
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
