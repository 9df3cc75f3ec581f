#include "daemon/writer.h"

#include "daemon/log.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WRITER_BACKOFF_MIN_MS 10
#define WRITER_BACKOFF_MAX_MS 1000

/*
 * One queued event. Events with a callback carry room for their result in
 * the same allocation; the many issuances without one do not pay for it.
 */
typedef struct writer_item {
    ledger_event event;
    writer_done_fn done;
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

    /* Guarded by lock. */
    writer_item **ring; /* capacity pointers: events cost memory only while queued */
    size_t capacity;
    size_t head;
    size_t count;
    bool stopping;
    bool waiting;   /* the writer thread sleeps on wake: submits must signal */
    bool lingering; /* it waits a little for more events: only urgent ones signal */
    size_t urgent;  /* queued events with a callback (someone waits for them) */
    writer_stats stats;

    /* Owned by the writer thread (or by writer_stop's caller when never started). */
    writer_item **batch; /* batch_max pointers; the first `held` wait for a retry */
    size_t held;

    /* Owned by the controlling thread. */
    pthread_t thread;
    bool started;
    bool stopped;
};

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

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
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
    }
    return "unknown";
}

static void item_free(writer_item *item)
{
    free(item);
}

/* Called for an event that ends without being committed. */
static void item_fail(writer_item *item)
{
    if (item->done != NULL)
        item->done(item->arg, false, NULL);
    else
        log_error("ledger writer: %s event %s lost", kind_name(item->event.kind),
                  item->event.row.id);
    item_free(item);
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

    /* Counted before the callbacks run, so that what they observe adds up. */
    pthread_mutex_lock(&w->lock);
    w->stats.committed += n - refused;
    w->stats.failed += refused;
    w->stats.batches++;
    w->stats.retrying = 0;
    w->stats.latency_count[latency_bucket(latency)]++;
    w->stats.latency_sum_ms += latency;
    w->stats.batch_count[batch_bucket(n)]++;
    w->stats.batch_sum += n;
    for (size_t b = 0; b < WRITER_LATENCY_BUCKETS; b++)
        w->stats.issue_lag_count[b] += lag_count[b];
    w->stats.issue_lag_sum_ms += lag_sum;
    pthread_mutex_unlock(&w->lock);

    for (size_t i = 0; i < n; i++) {
        writer_item *item = w->batch[i];
        if (item->done != NULL)
            item->done(item->arg, item->status == 0, item->status == 0 ? item->result : NULL);
        item_free(item);
    }
    w->held = 0;
}

/*
 * The batch is lost: callbacks learn it now (their clients retry), events
 * the ledger refused are dropped, the rest stay at the front of the batch
 * for the next attempt.
 */
static void batch_failed(writer *w, size_t n, const char *why)
{
    size_t kept = 0;
    size_t failed = 0;

    for (size_t i = 0; i < n; i++) {
        writer_item *item = w->batch[i];
        if (item->done != NULL || item->status == LEDGER_APPLY_EVENT_FAILED) {
            item_fail(item);
            failed++;
        } else {
            w->batch[kept++] = item;
        }
    }
    w->held = kept;
    log_error("ledger writer: a batch of %zu events failed (%s); %zu kept for retry", n, why, kept);

    pthread_mutex_lock(&w->lock);
    w->stats.failed_commits++;
    w->stats.failed += failed;
    w->stats.retrying = kept;
    pthread_mutex_unlock(&w->lock);
}

/* Applies and commits w->batch[0..n); returns true once durable. */
static bool batch_run(writer *w, size_t n)
{
    char why[LEDGER_ERR_MAX];
    double start = now_ms();

    for (size_t i = 0; i < n; i++)
        w->batch[i]->status = 0;

    if (ledger_begin(w->lg) != 0)
        goto failed;
    for (size_t i = 0; i < n; i++) {
        writer_item *item = w->batch[i];
        int rc = ledger_apply(w->lg, &item->event, item->result);
        if (rc == LEDGER_APPLY_EVENT_FAILED) {
            /* This event alone; the rest of the batch goes on. */
            item->status = rc;
            log_error("ledger writer: %s event %s refused: %s", kind_name(item->event.kind),
                      item->event.row.id, ledger_error(w->lg));
        } else if (rc != 0) {
            goto failed;
        }
    }
    if (ledger_commit(w->lg) != 0)
        goto failed;
    batch_committed(w, n, now_ms() - start);
    return true;

failed:
    /* Rolling back may overwrite the message that says why. */
    snprintf(why, sizeof why, "%s", ledger_error(w->lg));
    if (ledger_rollback(w->lg) != 0)
        log_error("ledger writer: rollback failed: %s", ledger_error(w->lg));
    batch_failed(w, n, why);
    return false;
}

/* ---- the thread ---- */

/*
 * Stopping, and the ledger has failed for the whole grace period: everything
 * still here ends now, held and queued alike (nothing can be queued any
 * more), rather than one failing batch per backoff.
 */
static void give_up(writer *w)
{
    size_t held = w->held;
    size_t queued;

    pthread_mutex_lock(&w->lock);
    queued = w->count;
    w->stats.failed += held + queued;
    w->stats.retrying = 0;
    pthread_mutex_unlock(&w->lock);

    log_error("ledger writer: the ledger kept failing while stopping; %zu events lost",
              held + queued);
    for (size_t i = 0; i < held; i++)
        item_fail(w->batch[i]);
    w->held = 0;
    for (;;) {
        writer_item *item = NULL;
        pthread_mutex_lock(&w->lock);
        if (w->count > 0) {
            assert(w->head < w->capacity);
            item = w->ring[w->head];
            w->head = (w->head + 1) % w->capacity;
            w->count--;
            w->urgent -= item->done != NULL;
        }
        pthread_mutex_unlock(&w->lock);
        if (item == NULL)
            break;
        item_fail(item); /* outside the lock: it may call back */
    }
}

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
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += WRITER_LINGER_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
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

static bool is_stopping(writer *w)
{
    pthread_mutex_lock(&w->lock);
    bool stopping = w->stopping;
    pthread_mutex_unlock(&w->lock);
    return stopping;
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    unsigned backoff = 0;   /* ms; 0 while the ledger works */
    double give_up_at = -1; /* while stopping: when failures win */
    size_t n = 0;

    while (batch_fill(w, &n)) {
        if (batch_run(w, n)) {
            backoff = 0;
            give_up_at = -1;
            continue;
        }
        backoff = backoff == 0 ? WRITER_BACKOFF_MIN_MS : backoff * 2;
        if (backoff > WRITER_BACKOFF_MAX_MS)
            backoff = WRITER_BACKOFF_MAX_MS;
        if (is_stopping(w)) {
            if (give_up_at < 0)
                give_up_at = now_ms() + WRITER_STOP_GRACE_MS;
            else if (now_ms() >= give_up_at) {
                give_up(w);
                continue; /* nothing left: batch_fill ends the loop */
            }
        }
        /* Not woken by submits: the queue fills meanwhile, and bounds memory. */
        sleep_ms(backoff);
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
    if (w->ring == NULL || w->batch == NULL)
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
    w->lg = lg;
    w->capacity = queue_capacity;
    w->batch_max = batch_max;
    w->stats.capacity = queue_capacity;
    return w;

fail:
    if (w != NULL) {
        free(w->ring);
        free(w->batch);
        free(w);
    }
    return NULL; /* lg stays the caller's */
}

int writer_start(writer *w)
{
    sigset_t all;
    sigset_t old;

    if (w == NULL || w->started || w->stopped)
        return -1;
    /* Signals belong to the main thread; the writer must not take them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error("ledger writer: cannot start the thread: %s", strerror(rc));
        return -1;
    }
    w->started = true;
    return 0;
}

void writer_stop(writer *w)
{
    if (w == NULL || w->stopped)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);

    if (w->started)
        pthread_join(w->thread, NULL);
    else
        writer_main(w); /* nobody else will commit what is queued */
    w->stopped = true;
}

void writer_free(writer *w)
{
    if (w == NULL)
        return;
    writer_stop(w);
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
    free(w);
}

int writer_submit(writer *w, const ledger_event *event, writer_done_fn done, void *arg)
{
    writer_item *item;

    if (w == NULL || event == NULL)
        return -1;
    /* Copied outside the lock: the event is big, and submitters are many. */
    if (done != NULL) {
        writer_item_with_result *both = malloc(sizeof *both);
        if (both == NULL)
            return -1;
        item = &both->item;
        item->result = &both->result;
    } else {
        item = malloc(sizeof *item);
        if (item == NULL)
            return -1;
        item->result = NULL;
    }
    memcpy(&item->event, event, sizeof item->event);
    item->done = done;
    item->arg = arg;
    item->status = 0;

    pthread_mutex_lock(&w->lock);
    if (w->stopping || w->count == w->capacity) {
        w->stats.rejected++;
        pthread_mutex_unlock(&w->lock);
        item_free(item);
        return -1;
    }
    assert(w->count < w->capacity && w->head < w->capacity);
    w->ring[(w->head + w->count) % w->capacity] = item;
    w->count++;
    w->urgent += done != NULL;
    w->stats.submitted++;
    if (w->waiting || (w->lingering && (done != NULL || w->held + w->count >= w->batch_max)))
        pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    return 0;
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
}
