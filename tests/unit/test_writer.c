/*
 * The ledger writer: group commit, callbacks after durability, a full
 * queue, refused events, a ledger that cannot commit, and the recovery
 * file; on both backends (a lock another connection holds stands for a
 * failing ledger: SQLite's write lock, a PostgreSQL table lock).
 */
#include "daemon/writer.h"

#include "daemon/log.h"
#include "pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TEST_DIR_MAX  64
#define TEST_PATH_MAX 256
#define PRODUCERS     4
#define PER_PRODUCER  2500
#define CONFIRMS      300

#define CLIENT_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define CLIENT_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

typedef struct fixture {
    bool pg;
    char dir[TEST_DIR_MAX];
    char url[PGTEST_URL_MAX];
    char file[TEST_DIR_MAX + 32];
    char db[PGTEST_NAME_MAX];
} fixture;

static void make_id(char out[UUID7_STR_LEN + 1], unsigned n)
{
    snprintf(out, UUID7_STR_LEN + 1, "01900000-0000-7000-8000-%012x", n);
}

static void fill_issue(ledger_event *ev, unsigned n)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = LEDGER_EVENT_ISSUE;
    make_id(ev->row.id, n);
    snprintf(ev->row.path, sizeof ev->row.path, "/p/%u", n % 13);
    memset(ev->row.sha256, 0x5a, 32);
    ev->row.size = n;
    snprintf(ev->row.server, sizeof ev->row.server, "node-1");
    snprintf(ev->row.client_addr, sizeof ev->row.client_addr, "192.0.2.1");
    ev->row.issued_ms = 1764100000000ull + n;
}

static void fill_confirm(ledger_event *ev, unsigned n, const char *client)
{
    fill_issue(ev, n);
    ev->kind = LEDGER_EVENT_CONFIRM;
    ev->row.status = LEDGER_CONFIRMED;
    snprintf(ev->row.client, sizeof ev->row.client, "%s", client);
    ev->row.confirmed_ms = 1764200000000ull + n;
    snprintf(ev->row.receipt, sizeof ev->row.receipt, "receipt-%u", n);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static ledger *open_ledger(const fixture *f, bool read_only)
{
    char err[LEDGER_ERR_MAX];
    ledger *lg = ledger_open(f->url, NULL, read_only, err, sizeof err);
    if (lg == NULL)
        fail_msg("open: %s", err);
    return lg;
}

static long long count_rows(const fixture *f)
{
    ledger *lg = open_ledger(f, true);
    long long n = ledger_count(lg);
    ledger_close(lg);
    return n;
}

/* What a stopped writer's counters must satisfy, whatever happened. */
static void check_stats_add_up(const writer_stats *s)
{
    uint64_t lat = 0;
    uint64_t sizes = 0;
    assert_int_equal(s->queued, 0);
    assert_int_equal(s->retrying, 0);
    assert_int_equal(s->submitted, s->committed + s->failed + s->saved);
    assert_true(s->lost <= s->failed);
    for (int i = 0; i < WRITER_LATENCY_BUCKETS; i++)
        lat += s->latency_count[i];
    for (int i = 0; i < WRITER_BATCH_BUCKETS; i++)
        sizes += s->batch_count[i];
    assert_int_equal(lat, s->batches);
    assert_int_equal(sizes, s->batches);
    assert_true(s->batch_sum >= s->committed); /* refused events sit in batches too */
    assert_true(s->batch_sum <= s->committed + s->failed + s->saved);
}

static int setup_backend(void **state, bool pg)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->pg = pg;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_writer.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->file, sizeof f->file, "%s/ledger.sqlite", f->dir);
    if (pg)
        assert_int_equal(pgtest_create(f->db, f->url, false), 0);
    else
        snprintf(f->url, sizeof f->url, "sqlite:%s", f->file);
    *state = f;
    return 0;
}

static int setup_sqlite(void **state)
{
    return setup_backend(state, false);
}

static int setup_pg(void **state)
{
    return setup_backend(state, true);
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[TEST_PATH_MAX];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    if (f->pg && pgtest_drop(f->db) != 0)
        return -1;
    free(f);
    return 0;
}

/* ---- many producers ---- */

typedef struct producer {
    writer *w;
    unsigned first;
    unsigned retries; /* submits refused because the queue was full */
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    ledger_event ev;
    for (unsigned i = 0; i < PER_PRODUCER; i++) {
        fill_issue(&ev, p->first + i);
        while (writer_submit(p->w, &ev, NULL, NULL) != WRITER_OK) {
            p->retries++;
            sleep_ms(1); /* what a client does with 503 and Retry-After */
        }
    }
    return NULL;
}

static void test_many_producers(void **state)
{
    fixture *f = *state;
    pthread_t threads[PRODUCERS];
    producer prod[PRODUCERS];
    writer_stats s;
    unsigned retries = 0;

    writer *w = writer_new(open_ledger(f, false), 1024, 256);
    assert_non_null(w);
    assert_int_equal(writer_start(w), 0);
    assert_int_equal(writer_start(w), -1); /* once */
    for (int i = 0; i < PRODUCERS; i++) {
        prod[i] = (producer){.w = w, .first = (unsigned)i * PER_PRODUCER};
        assert_int_equal(pthread_create(&threads[i], NULL, produce, &prod[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(threads[i], NULL);
        retries += prod[i].retries;
    }
    writer_stop(w, 0);
    writer_get_stats(w, &s);
    writer_free(w);

    assert_int_equal(count_rows(f), PRODUCERS * PER_PRODUCER);
    assert_int_equal(s.submitted, PRODUCERS * PER_PRODUCER);
    assert_int_equal(s.committed, PRODUCERS * PER_PRODUCER);
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.failed_commits, 0);
    assert_int_equal(s.rejected, retries);
    assert_int_equal(s.capacity, 1024);
    assert_int_equal(s.batch_sum, PRODUCERS * PER_PRODUCER);
    assert_true(s.batches >= (PRODUCERS * PER_PRODUCER) / 256);
    assert_true(s.latency_sum_ms > 0);
    check_stats_add_up(&s);
}

/*
 * A queue far smaller than what producers offer: a submit to the full
 * queue waits for the writer to take a batch instead of being refused, so
 * events go in at the first try (the 503s of a queue full for an instant
 * were what this replaced: thousands here). A refusal is left for a
 * writer that took no batch for WRITER_FULL_WAIT_MS, which a loaded
 * machine (a sanitizer build, a remote database) can cause now and then.
 */
static void test_full_queue_waits_for_room(void **state)
{
    fixture *f = *state;
    pthread_t threads[PRODUCERS];
    producer prod[PRODUCERS];
    writer_stats s;
    unsigned retries = 0;

    writer *w = writer_new(open_ledger(f, false), 8, 4);
    assert_non_null(w);
    assert_int_equal(writer_start(w), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        prod[i] = (producer){.w = w, .first = (unsigned)i * PER_PRODUCER};
        assert_int_equal(pthread_create(&threads[i], NULL, produce, &prod[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(threads[i], NULL);
        retries += prod[i].retries;
    }
    writer_stop(w, 0);
    writer_get_stats(w, &s);
    writer_free(w);
    assert_true(retries <= PRODUCERS * PER_PRODUCER / 100);
    assert_int_equal(s.refused[WRITER_QUEUE_FULL], retries);
    assert_int_equal(s.committed, PRODUCERS * PER_PRODUCER);
    assert_true(s.batches >= (PRODUCERS * PER_PRODUCER) / 4);
    check_stats_add_up(&s);
    assert_int_equal(count_rows(f), PRODUCERS * PER_PRODUCER);
}

/* ---- callbacks ---- */

typedef struct confirm_ctx {
    ledger *reader; /* used by callbacks only, which run one at a time, in order */
    atomic_int calls[CONFIRMS];
    atomic_int ok;
    atomic_int visible;
    atomic_int same;
    atomic_int conflict;
    unsigned next; /* order check: callbacks come in submission order */
    atomic_int out_of_order;
} confirm_ctx;

typedef struct confirm_arg {
    confirm_ctx *ctx;
    unsigned n;
    unsigned seq;
} confirm_arg;

static void on_confirm(void *arg, bool ok, ledger_result *result)
{
    confirm_arg *a = arg;
    confirm_ctx *ctx = a->ctx;
    ledger_delivery row;

    atomic_fetch_add(&ctx->calls[a->n], 1);
    if (a->seq != ctx->next++)
        atomic_fetch_add(&ctx->out_of_order, 1);
    if (!ok || result == NULL)
        return;
    atomic_fetch_add(&ctx->ok, 1);
    if (result->outcome == LEDGER_SAME)
        atomic_fetch_add(&ctx->same, 1);
    if (result->outcome == LEDGER_CONFLICT)
        atomic_fetch_add(&ctx->conflict, 1);
    /* Durable and visible to another connection before the callback runs. */
    if (ledger_get(ctx->reader, result->row.id, &row) == 1 && row.status == LEDGER_CONFIRMED &&
        strcmp(row.client, CLIENT_A) == 0)
        atomic_fetch_add(&ctx->visible, 1);
    writer_result_free(result); /* the callback's to keep or release */
}

static void test_callbacks_after_commit(void **state)
{
    fixture *f = *state;
    static confirm_ctx ctx;
    static confirm_arg args[CONFIRMS + 2];
    ledger_event ev;
    writer_stats s;

    memset(&ctx, 0, sizeof ctx);
    writer *w = writer_new(open_ledger(f, false), 64, 16);
    assert_non_null(w);
    ctx.reader = open_ledger(f, true); /* after the writer's open made the schema */
    assert_int_equal(writer_start(w), 0);

    for (unsigned i = 0; i < CONFIRMS; i++) {
        fill_confirm(&ev, i, CLIENT_A);
        args[i] = (confirm_arg){.ctx = &ctx, .n = i, .seq = i};
        while (writer_submit(w, &ev, on_confirm, &args[i]) != WRITER_OK)
            sleep_ms(1);
    }
    /* A repeat and a rival for the first delivery. */
    fill_confirm(&ev, 0, CLIENT_A);
    args[CONFIRMS] = (confirm_arg){.ctx = &ctx, .n = 1, .seq = CONFIRMS};
    while (writer_submit(w, &ev, on_confirm, &args[CONFIRMS]) != WRITER_OK)
        sleep_ms(1);
    fill_confirm(&ev, 0, CLIENT_B);
    args[CONFIRMS + 1] = (confirm_arg){.ctx = &ctx, .n = 2, .seq = CONFIRMS + 1};
    while (writer_submit(w, &ev, on_confirm, &args[CONFIRMS + 1]) != WRITER_OK)
        sleep_ms(1);

    writer_stop(w, 0);
    writer_get_stats(w, &s);
    writer_free(w);
    ledger_close(ctx.reader);

    for (unsigned i = 0; i < CONFIRMS; i++)
        assert_int_equal(atomic_load(&ctx.calls[i]), i == 1 || i == 2 ? 2 : 1);
    assert_int_equal(atomic_load(&ctx.out_of_order), 0);
    assert_int_equal(atomic_load(&ctx.ok), CONFIRMS + 2);
    assert_int_equal(atomic_load(&ctx.visible), CONFIRMS + 2);
    assert_int_equal(atomic_load(&ctx.same), 1);
    assert_int_equal(atomic_load(&ctx.conflict), 1);
    assert_int_equal(s.committed, CONFIRMS + 2);
    check_stats_add_up(&s);
    assert_int_equal(count_rows(f), CONFIRMS);
}

/* ---- the queue ---- */

static void test_queue_full_and_stop_drains(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    writer_stats s;

    writer *w = writer_new(open_ledger(f, false), 4, 2);
    assert_non_null(w);
    for (unsigned i = 0; i < 4; i++) {
        fill_issue(&ev, i);
        assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_OK);
    }
    fill_issue(&ev, 4);
    assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_QUEUE_FULL);
    writer_get_stats(w, &s);
    assert_int_equal(s.queued, 4);
    assert_int_equal(s.rejected, 1);

    /* Never started: stop commits what is queued all the same. */
    writer_stop(w, 0);
    assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_STOPPING);
    writer_stop(w, 0); /* idempotent */
    writer_get_stats(w, &s);
    writer_free(w);
    assert_int_equal(s.rejected, 2);
    assert_int_equal(s.refused[WRITER_QUEUE_FULL], 1);
    assert_int_equal(s.refused[WRITER_STOPPING], 1);
    assert_int_equal(s.committed, 4);
    assert_int_equal(s.batches, 2);
    check_stats_add_up(&s);
    assert_int_equal(count_rows(f), 4);
}

static void test_stop_drains_running(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    writer_stats s;
    const unsigned n = 5000;

    writer *w = writer_new(open_ledger(f, false), n, 100);
    assert_non_null(w);
    assert_int_equal(writer_start(w), 0);
    for (unsigned i = 0; i < n; i++) {
        fill_issue(&ev, i);
        assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_OK);
    }
    writer_stop(w, 0); /* at once: most events are still queued */
    writer_get_stats(w, &s);
    writer_free(w);
    assert_int_equal(s.committed, n);
    check_stats_add_up(&s);
    assert_int_equal(count_rows(f), n);
}

static void test_bad_arguments(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    writer_stats s;

    fill_issue(&ev, 1);
    assert_null(writer_new(NULL, 4, 4));
    ledger *lg = open_ledger(f, false);
    assert_null(writer_new(lg, 0, 4)); /* the ledger stays ours */
    assert_null(writer_new(lg, 4, 0));
    assert_null(writer_new(lg, WRITER_QUEUE_MAX + 1, 4));
    assert_null(writer_new(lg, 4, WRITER_BATCH_MAX + 1));
    assert_int_equal(ledger_count(lg), 0);
    ledger_close(lg);
    assert_int_equal(writer_submit(NULL, &ev, NULL, NULL), WRITER_STOPPING);
    assert_int_equal(writer_start(NULL), -1);
    writer_stop(NULL, 0);
    writer_free(NULL);
    writer_get_stats(NULL, &s);

    /* Freed without a stop: it stops (and drains) first. */
    writer *w = writer_new(open_ledger(f, false), 4, 4);
    assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_OK);
    writer_free(w);
    assert_int_equal(count_rows(f), 1);
}

/* ---- refused events ---- */

static atomic_int refused_ok;
static atomic_int refused_failed;

static void on_refused(void *arg, bool ok, ledger_result *result)
{
    if (ok && result != NULL)
        atomic_fetch_add(&refused_ok, 1);
    if (!ok && result == NULL)
        atomic_fetch_add(&refused_failed, 1);
    writer_result_free(result);
}

static void test_refused_event_alone(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    writer_stats s;

    atomic_store(&refused_ok, 0);
    atomic_store(&refused_failed, 0);
    writer *w = writer_new(open_ledger(f, false), 16, 16);
    fill_issue(&ev, 1);
    assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_OK);
    fill_issue(&ev, 2);
    ev.row.id[3] = '\0'; /* invalid: the ledger refuses it */
    assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_OK);
    fill_confirm(&ev, 3, CLIENT_A);
    ev.row.status = LEDGER_ISSUED; /* invalid too, with a callback */
    assert_int_equal(writer_submit(w, &ev, on_refused, NULL), WRITER_OK);
    fill_confirm(&ev, 4, CLIENT_A);
    assert_int_equal(writer_submit(w, &ev, on_refused, NULL), WRITER_OK);
    writer_stop(w, 0); /* one batch, drained on this thread */
    writer_get_stats(w, &s);
    writer_free(w);

    assert_int_equal(atomic_load(&refused_ok), 1);
    assert_int_equal(atomic_load(&refused_failed), 1);
    assert_int_equal(s.batches, 1);
    assert_int_equal(s.committed, 2);
    assert_int_equal(s.failed, 2);
    assert_int_equal(s.failed_commits, 0);
    check_stats_add_up(&s);
    assert_int_equal(count_rows(f), 2);
}

/*
 * A queued event is copied up to its receipt's end only: receipts of every
 * length (none, one byte, the longest) reach the ledger whole, and the
 * answered row carries them.
 */
static ledger_result *kept_result;

static void on_kept(void *arg, bool ok, ledger_result *result)
{
    (void)arg;
    if (ok)
        kept_result = result; /* released by the test */
}

static void test_event_copied_to_receipt_end(void **state)
{
    fixture *f = *state;
    static const size_t lengths[] = {1, 2, 700, LEDGER_RECEIPT_MAX};
    ledger_event ev;
    ledger_delivery row;

    writer *w = writer_new(open_ledger(f, false), 16, 16);
    fill_issue(&ev, 10); /* an issuance: no receipt */
    assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_OK);
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        fill_confirm(&ev, 20 + (unsigned)i, CLIENT_A);
        memset(ev.row.receipt, 'a' + (int)i, lengths[i]);
        ev.row.receipt[lengths[i]] = '\0';
        /* what lies past the receipt's end is not the event's */
        if (lengths[i] + 1 < sizeof ev.row.receipt)
            memset(ev.row.receipt + lengths[i] + 1, 'z', sizeof ev.row.receipt - lengths[i] - 1);
        assert_int_equal(writer_submit(w, &ev, on_kept, NULL), WRITER_OK);
        writer_stop(w, 0); /* drained on this thread: the callback has run */
        writer_free(w);
        assert_non_null(kept_result);
        assert_int_equal(kept_result->outcome, LEDGER_APPLIED);
        assert_int_equal(strlen(kept_result->row.receipt), lengths[i]);
        assert_string_equal(kept_result->row.receipt, ev.row.receipt);
        writer_result_free(kept_result);
        kept_result = NULL;
        w = writer_new(open_ledger(f, false), 16, 16);
    }
    writer_free(w);

    ledger *lg = open_ledger(f, true);
    fill_issue(&ev, 10);
    assert_int_equal(ledger_get(lg, ev.row.id, &row), 1);
    assert_string_equal(row.receipt, "");
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        fill_issue(&ev, 20 + (unsigned)i);
        assert_int_equal(ledger_get(lg, ev.row.id, &row), 1);
        assert_int_equal(strlen(row.receipt), lengths[i]);
        for (size_t k = 0; k < lengths[i]; k++)
            assert_int_equal(row.receipt[k], 'a' + (int)i);
    }
    ledger_close(lg);
}

/* ---- a ledger that cannot commit ---- */

static atomic_int failure_calls;
static atomic_int failure_ok;

static void on_failure_test(void *arg, bool ok, ledger_result *result)
{
    atomic_fetch_add(&failure_calls, 1);
    /* No cmocka asserts here: they may not jump out of the writer thread. */
    if (ok || result != NULL)
        atomic_fetch_add(&failure_ok, 1);
    writer_result_free(result);
}

static void wait_for(writer *w, uint64_t failed_commits)
{
    writer_stats s;
    for (int i = 0; i < 5000; i++) {
        writer_get_stats(w, &s);
        if (s.failed_commits >= failed_commits)
            return;
        sleep_ms(1);
    }
    fail_msg("the writer never failed %llu times", (unsigned long long)failed_commits);
}

/* Another connection holds a lock every writer waits for, as a long admin
 * job might: SQLite's write lock, or a PostgreSQL table lock. */
typedef struct ledger_lock {
    sqlite3 *db;
    PGconn *pg;
} ledger_lock;

static ledger_lock *lock_ledger(const fixture *f)
{
    ledger_lock *b = calloc(1, sizeof *b);
    assert_non_null(b);
    if (f->pg) {
        ledger_close(open_ledger(f, false)); /* the table, before it can be locked */
        b->pg = PQconnectdb(f->url);
        assert_int_equal(PQstatus(b->pg), CONNECTION_OK);
        PGresult *res = PQexec(b->pg, "BEGIN; LOCK TABLE deliveries IN EXCLUSIVE MODE");
        assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
        PQclear(res);
        return b;
    }
    assert_int_equal(sqlite3_open(f->file, &b->db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(b->db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    return b;
}

static void unlock_ledger(ledger_lock *b)
{
    if (b->pg != NULL) {
        PGresult *res = PQexec(b->pg, "COMMIT");
        assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
        PQclear(res);
        PQfinish(b->pg);
    } else {
        assert_int_equal(sqlite3_exec(b->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(b->db);
    }
    free(b);
}

/* A writer whose ledger gives up on a held lock quickly (not after 5 s). */
static writer *impatient_writer(const fixture *f, size_t capacity, size_t batch)
{
    ledger *lg = open_ledger(f, false);
    assert_int_equal(ledger_set_lock_timeout(lg, 20), 0);
    writer *w = writer_new(lg, capacity, batch);
    assert_non_null(w);
    return w;
}

static void wait_committed(writer *w, uint64_t committed)
{
    writer_stats s;
    for (int i = 0; i < 5000; i++) {
        writer_get_stats(w, &s);
        if (s.committed >= committed)
            return;
        sleep_ms(1);
    }
    fail_msg("the writer never committed %llu events", (unsigned long long)committed);
}

static void test_commit_failure_retries(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    writer_stats s;
    const unsigned issues = 50;

    atomic_store(&failure_calls, 0);
    atomic_store(&failure_ok, 0);
    writer *w = impatient_writer(f, 1024, 16);
    ledger_lock *blocker = lock_ledger(f);

    /* Queued before anyone knows that the ledger fails: accepted. */
    fill_confirm(&ev, 1000, CLIENT_A);
    assert_int_equal(writer_submit(w, &ev, on_failure_test, NULL), WRITER_OK);
    for (unsigned i = 0; i < issues; i++) {
        fill_issue(&ev, i);
        assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_OK);
    }
    assert_int_equal(writer_start(w), 0);
    wait_for(w, 4); /* failed, and was retried more than once */
    for (int i = 0; i < 2000 && atomic_load(&failure_calls) == 0; i++)
        sleep_ms(1);
    assert_int_equal(atomic_load(&failure_calls), 1); /* the client was told at once */
    assert_int_equal(atomic_load(&failure_ok), 0);

    /* Failing: nothing new is accepted, so nothing new is answered 200. */
    fill_issue(&ev, 5000);
    assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_FAILING);
    fill_confirm(&ev, 5001, CLIENT_A);
    assert_int_equal(writer_submit(w, &ev, on_failure_test, NULL), WRITER_FAILING);
    writer_get_stats(w, &s);
    assert_true(s.failing);
    assert_false(s.fatal);
    assert_true(s.retrying > 0);
    assert_int_equal(s.committed, 0);
    assert_int_equal(s.refused[WRITER_FAILING], 2);

    /* The lock goes away: everything held lands, the confirmation too
     * (its client, answered 503, gets the row back on its retry). */
    unlock_ledger(blocker);
    wait_committed(w, issues + 1);
    writer_get_stats(w, &s);
    assert_false(s.failing);
    fill_issue(&ev, 6000);
    assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_OK);
    writer_stop(w, 0);
    writer_get_stats(w, &s);
    writer_free(w);

    assert_int_equal(count_rows(f), issues + 2);
    assert_int_equal(atomic_load(&failure_calls), 1); /* once, and never again */
    assert_int_equal(s.committed, issues + 2);
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.saved, 0);
    assert_true(s.failed_commits >= 4);
    check_stats_add_up(&s);
}

/* ---- giving up: the recovery file ---- */

static void queue_mixed(writer *w, unsigned issues)
{
    ledger_event ev;
    for (unsigned i = 0; i < issues; i++) {
        if (i % 10 == 3) {
            fill_confirm(&ev, i, CLIENT_A);
            assert_int_equal(writer_submit(w, &ev, on_failure_test, NULL), WRITER_OK);
        } else {
            fill_issue(&ev, i);
            assert_int_equal(writer_submit(w, &ev, NULL, NULL), WRITER_OK);
        }
    }
}

static void test_stop_saves_what_the_ledger_refuses(void **state)
{
    fixture *f = *state;
    char err[RECOVERY_ERR_MAX];
    writer_stats s;
    recovery_summary rs;
    const unsigned n = 200; /* more than a batch: held and queued events alike */

    atomic_store(&failure_calls, 0);
    atomic_store(&failure_ok, 0);
    writer *w = impatient_writer(f, 256, 16);
    recovery_file *rf = recovery_open(f->dir, 256 + 16, err, sizeof err);
    assert_non_null(rf);
    writer_set_recovery(w, rf);
    ledger_lock *blocker = lock_ledger(f);
    queue_mixed(w, n);
    assert_int_equal(writer_start(w), 0);
    wait_for(w, 1);
    writer_stop(w, 300); /* the ledger stays locked through the grace */
    writer_get_stats(w, &s);
    writer_free(w);
    recovery_close(rf);
    unlock_ledger(blocker);

    assert_int_equal(atomic_load(&failure_calls), n / 10); /* every confirmation: 503 */
    assert_int_equal(atomic_load(&failure_ok), 0);
    assert_int_equal(s.saved, n);
    assert_int_equal(s.lost, 0);
    assert_int_equal(s.committed, 0);
    check_stats_add_up(&s);
    assert_int_equal(count_rows(f), 0);

    /* The next start applies the file first. */
    ledger *lg = open_ledger(f, false);
    assert_int_equal(recovery_apply(f->dir, lg, 64, NULL, &rs, err, sizeof err), 0);
    assert_true(rs.exists);
    assert_int_equal(rs.events, n);
    assert_int_equal(rs.damaged_at, 0);
    ledger_delivery row;
    char id[UUID7_STR_LEN + 1];
    make_id(id, 13);
    assert_int_equal(ledger_get(lg, id, &row), 1);
    assert_int_equal(row.status, LEDGER_CONFIRMED);
    /* The issuance went in first: the row keeps its client address. */
    assert_string_equal(row.client_addr, "192.0.2.1");
    ledger_close(lg);
    assert_int_equal(count_rows(f), n);
    /* Applied and removed: a second start finds nothing. */
    assert_int_equal(recovery_inspect(f->dir, &rs, err, sizeof err), 0);
    assert_false(rs.exists);
}

static void test_stop_without_recovery_counts_the_lost(void **state)
{
    fixture *f = *state;
    writer_stats s;

    atomic_store(&failure_calls, 0);
    writer *w = impatient_writer(f, 64, 8);
    ledger_lock *blocker = lock_ledger(f);
    queue_mixed(w, 20);
    assert_int_equal(writer_start(w), 0);
    wait_for(w, 1);
    writer_stop(w, 0);
    writer_get_stats(w, &s);
    writer_free(w);
    unlock_ledger(blocker);
    assert_int_equal(s.lost, 20);
    assert_int_equal(s.saved, 0);
    assert_int_equal(atomic_load(&failure_calls), 2);
    check_stats_add_up(&s);
}

/* A grace long enough for the ledger to come back: nothing is saved. */
static void *unlock_later(void *arg)
{
    sleep_ms(150);
    unlock_ledger(arg);
    return NULL;
}

static void test_stop_grace_waits_for_the_ledger(void **state)
{
    fixture *f = *state;
    char err[RECOVERY_ERR_MAX];
    writer_stats s;
    pthread_t t;

    writer *w = impatient_writer(f, 64, 8);
    recovery_file *rf = recovery_open(f->dir, 64 + 8, err, sizeof err);
    assert_non_null(rf);
    writer_set_recovery(w, rf);
    ledger_lock *blocker = lock_ledger(f);
    queue_mixed(w, 30);
    assert_int_equal(writer_start(w), 0);
    wait_for(w, 1);
    assert_int_equal(pthread_create(&t, NULL, unlock_later, blocker), 0);
    writer_stop(w, 10000);
    pthread_join(t, NULL);
    writer_get_stats(w, &s);
    writer_free(w);
    recovery_close(rf);
    assert_int_equal(s.committed, 30);
    assert_int_equal(s.saved, 0);
    check_stats_add_up(&s);
    assert_int_equal(count_rows(f), 30);
}

static void test_pg_unavailable(void **state)
{
    (void)state;
    printf("# %s\n", pgtest_unavailable());
    skip();
}

#define BACKEND_TESTS(setup)                                                                       \
    cmocka_unit_test_setup_teardown(test_many_producers, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(test_full_queue_waits_for_room, setup, teardown),          \
        cmocka_unit_test_setup_teardown(test_callbacks_after_commit, setup, teardown),             \
        cmocka_unit_test_setup_teardown(test_queue_full_and_stop_drains, setup, teardown),         \
        cmocka_unit_test_setup_teardown(test_stop_drains_running, setup, teardown),                \
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(test_refused_event_alone, setup, teardown),                \
        cmocka_unit_test_setup_teardown(test_event_copied_to_receipt_end, setup, teardown),        \
        cmocka_unit_test_setup_teardown(test_commit_failure_retries, setup, teardown),             \
        cmocka_unit_test_setup_teardown(test_stop_saves_what_the_ledger_refuses, setup, teardown), \
        cmocka_unit_test_setup_teardown(test_stop_without_recovery_counts_the_lost, setup,         \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_stop_grace_waits_for_the_ledger, setup, teardown)

int main(void)
{
    /* Failures are expected below; only errors should show. */
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest sqlite[] = {BACKEND_TESTS(setup_sqlite)};
    const struct CMUnitTest pg[] = {BACKEND_TESTS(setup_pg)};
    const struct CMUnitTest pg_missing[] = {cmocka_unit_test(test_pg_unavailable)};
    int failed = cmocka_run_group_tests_name("writer_sqlite", sqlite, NULL, NULL);
    if (pgtest_unavailable() == NULL)
        failed += cmocka_run_group_tests_name("writer_postgresql", pg, NULL, NULL);
    else
        failed += cmocka_run_group_tests_name("writer_postgresql", pg_missing, NULL, NULL);
    return failed;
}
