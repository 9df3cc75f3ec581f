/*
 * ledger_rows: how many ISSUE rows a second the ledger writer commits, on
 * any ledger (bench/run's ledger_rows and ledger_rows_pg cases).
 *
 * Producer threads submit issuance events as fast as the writer's queue
 * takes them (a full queue: they yield and try again, as HTTP workers
 * answering 503 would make clients do); the writer commits them in batches
 * as it does in receiptd. After a warm-up, the committed count over the
 * measured seconds is the figure.
 *
 *   ledger_rows --ledger URL [--seconds N] [--warmup N] [--producers N]
 *               [--batch N] [--queue N] [--json]
 *   ledger_rows --ledger URL --rows N [--batch N]
 *
 * With --log STATE_DIR, every batch also appends its leaves to the evidence
 * log (keys made in STATE_DIR), as receiptd's writer does: the figure is
 * then also the log's leaves integrated per second (log_leaves_per_s).
 *
 * With --rows, for profiles (valgrind --tool=callgrind
 * --toggle-collect=writer_stop): N events are queued first, and the writer,
 * never started, commits them all on the main thread in writer_stop(), so
 * that the instructions of writing N rows are one function's.
 */
#include "bench/bench_log.h"
#include "common/uuid7.h"
#include "daemon/ledger.h"
#include "daemon/log.h"
#include "daemon/writer.h"

#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PRODUCERS_MAX 64

typedef struct producer {
    writer *w;
    atomic_bool *stop;
    unsigned index;
    unsigned long long submitted;
} producer;

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A delivery as receiptd records one: a page to a browser. */
static void *produce(void *arg)
{
    producer *p = arg;
    ledger_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = LEDGER_EVENT_ISSUE;
    ev.row.status = LEDGER_ISSUED;
    ev.row.size = 1024;
    memset(ev.row.sha256, 0x5c, sizeof ev.row.sha256);
    ev.row.kind = LEDGER_KIND_PAGE; /* sent with the agent element */
    memset(ev.row.delivered_sha256, 0x6d, sizeof ev.row.delivered_sha256);
    ev.row.delivered_size = ev.row.size + 49;
    snprintf(ev.row.server, sizeof ev.row.server, "bench");
    snprintf(ev.row.client_addr, sizeof ev.row.client_addr, "127.0.0.%u", p->index + 1);
    snprintf(ev.row.user_agent, sizeof ev.row.user_agent,
             "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)");
    for (unsigned long long n = 0; !atomic_load(p->stop); n++) {
        uuid7 id;
        uint64_t now = wall_ms();
        if (uuid7_new_at(&id, now) != 0)
            break;
        uuid7_format(&id, ev.row.id);
        ev.row.issued_ms = now;
        snprintf(ev.row.path, sizeof ev.row.path, "/docs/page-%llu.html", n % 500);
        while (writer_submit(p->w, &ev, NULL, NULL) != 0) {
            if (atomic_load(p->stop))
                return NULL;
            sched_yield();
        }
        p->submitted++;
    }
    return NULL;
}

static void usage(void)
{
    fputs("usage: ledger_rows --ledger URL [--seconds N] [--warmup N] [--producers N]\n"
          "                   [--batch N] [--queue N] [--log STATE_DIR] [--json]\n"
          "       ledger_rows --ledger URL --rows N [--batch N] [--log STATE_DIR]\n",
          stderr);
    exit(2);
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * --rows: queue them all, then commit them all on this thread, whose CPU
 * time is then the writer's alone: a figure that other load on the machine
 * does not change much, unlike the wall-clock rate.
 */
static int fixed_rows(writer *w, size_t rows)
{
    ledger_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = LEDGER_EVENT_ISSUE;
    ev.row.size = 1024;
    memset(ev.row.sha256, 0x5c, sizeof ev.row.sha256);
    ev.row.kind = LEDGER_KIND_PAGE; /* sent with the agent element */
    memset(ev.row.delivered_sha256, 0x6d, sizeof ev.row.delivered_sha256);
    ev.row.delivered_size = ev.row.size + 49;
    snprintf(ev.row.server, sizeof ev.row.server, "bench");
    snprintf(ev.row.client_addr, sizeof ev.row.client_addr, "127.0.0.1");
    snprintf(ev.row.user_agent, sizeof ev.row.user_agent,
             "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)");
    for (size_t n = 0; n < rows; n++) {
        uuid7 id;
        uint64_t now = wall_ms();
        if (uuid7_new_at(&id, now) != 0)
            return 1;
        uuid7_format(&id, ev.row.id);
        ev.row.issued_ms = now;
        snprintf(ev.row.path, sizeof ev.row.path, "/docs/page-%zu.html", n % 500);
        if (writer_submit(w, &ev, NULL, NULL) != 0)
            return 1;
    }
    double t0 = mono_s();
    double cpu0 = thread_cpu_s();
    writer_stop(w, 0);
    double cpu = thread_cpu_s() - cpu0;
    double elapsed = mono_s() - t0;
    writer_stats s;
    writer_get_stats(w, &s);
    writer_free(w);
    printf("%llu rows committed in %llu batches in %.3f s (%.2f us of writer CPU a row, %llu "
           "log leaves)\n",
           (unsigned long long)s.committed, (unsigned long long)s.batches, elapsed,
           s.committed ? cpu * 1e6 / (double)s.committed : 0.0, (unsigned long long)s.log_leaves);
    return s.committed == rows ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"ledger", required_argument, NULL, 'l'}, {"seconds", required_argument, NULL, 's'},
        {"warmup", required_argument, NULL, 'w'}, {"producers", required_argument, NULL, 'p'},
        {"batch", required_argument, NULL, 'b'},  {"queue", required_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'},         {"rows", required_argument, NULL, 'r'},
        {"log", required_argument, NULL, 'g'},    {NULL, 0, NULL, 0},
    };
    const char *url = NULL;
    double seconds = 5, warmup = 1;
    unsigned producers = 2;
    size_t batch = 1024, queue = 65536;
    bool json = false;
    size_t rows_target = 0;
    const char *log_dir = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            url = optarg;
            break;
        case 's':
            seconds = strtod(optarg, NULL);
            break;
        case 'w':
            warmup = strtod(optarg, NULL);
            break;
        case 'p':
            producers = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'b':
            batch = (size_t)strtoul(optarg, NULL, 10);
            break;
        case 'q':
            queue = (size_t)strtoul(optarg, NULL, 10);
            break;
        case 'j':
            json = true;
            break;
        case 'r':
            rows_target = (size_t)strtoul(optarg, NULL, 10);
            break;
        case 'g':
            log_dir = optarg;
            break;
        default:
            usage();
        }
    }
    if (url == NULL || seconds <= 0 || warmup < 0 || producers == 0 || producers > PRODUCERS_MAX)
        usage();
    log_set_level(LOG_LEVEL_WARN);

    char err[LEDGER_ERR_MAX];
    ledger *lg = ledger_open(url, NULL, false, err, sizeof err);
    if (lg == NULL) {
        fprintf(stderr, "ledger_rows: %s\n", err);
        return 1;
    }
    /* The months ahead, as receiptd makes them at start (PostgreSQL). */
    if (ledger_prepare(lg, wall_ms(),
                       wall_ms() + (uint64_t)LEDGER_MONTHS_AHEAD * 31 * 86400000ull) < 0) {
        fprintf(stderr, "ledger_rows: %s\n", ledger_error(lg));
        return 1;
    }
    writer *w = writer_new(lg, rows_target > 0 ? rows_target : queue, batch);
    keystore *keys = NULL;
    tlog *evidence = NULL;
    if (w != NULL && log_dir != NULL) {
        if (bench_log_start(lg, log_dir, batch, &keys, &evidence, err, sizeof err) != 0) {
            fprintf(stderr, "ledger_rows: the evidence log: %s\n", err);
            return 1;
        }
        writer_set_log(w, evidence);
    }
    if (w != NULL && rows_target > 0) {
        int rc = fixed_rows(w, rows_target);
        tlog_free(evidence);
        keystore_free(keys);
        return rc;
    }
    if (w == NULL || writer_start(w) != 0) {
        fprintf(stderr, "ledger_rows: cannot start the writer\n");
        return 1;
    }

    atomic_bool stop = false;
    pthread_t threads[PRODUCERS_MAX];
    producer prod[PRODUCERS_MAX];
    for (unsigned i = 0; i < producers; i++) {
        prod[i] = (producer){.w = w, .stop = &stop, .index = i};
        if (pthread_create(&threads[i], NULL, produce, &prod[i]) != 0) {
            fprintf(stderr, "ledger_rows: cannot start a producer\n");
            return 1;
        }
    }

    writer_stats before, after;
    struct timespec pause = {.tv_sec = (time_t)warmup,
                             .tv_nsec = (long)((warmup - (double)(time_t)warmup) * 1e9)};
    nanosleep(&pause, NULL);
    writer_get_stats(w, &before);
    double t0 = mono_s();
    pause = (struct timespec){.tv_sec = (time_t)seconds,
                              .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&pause, NULL);
    writer_get_stats(w, &after);
    double elapsed = mono_s() - t0;

    atomic_store(&stop, true);
    for (unsigned i = 0; i < producers; i++)
        pthread_join(threads[i], NULL);
    writer_stop(w, 0);
    writer_stats end;
    writer_get_stats(w, &end);
    writer_free(w);
    tlog_free(evidence);
    keystore_free(keys);

    uint64_t leaves = after.log_leaves - before.log_leaves;
    uint64_t rows = after.committed - before.committed;
    uint64_t batches = after.batches - before.batches;
    double rate = (double)rows / elapsed;
    if (end.failed != 0 || end.failed_commits != 0) {
        fprintf(stderr, "ledger_rows: %llu events failed, %llu commits failed\n",
                (unsigned long long)end.failed, (unsigned long long)end.failed_commits);
        return 1;
    }
    if (json)
        printf("{\"rows_per_s\": %.1f, \"log_leaves_per_s\": %.1f, \"rows\": %llu, "
               "\"batches\": %llu, \"mean_batch\": %.1f, "
               "\"seconds\": %.3f, \"commit_ms_mean\": %.3f}\n",
               rate, (double)leaves / elapsed, (unsigned long long)rows,
               (unsigned long long)batches, batches ? (double)rows / (double)batches : 0.0, elapsed,
               batches ? (after.latency_sum_ms - before.latency_sum_ms) / (double)batches : 0.0);
    else
        printf("%.0f rows/s committed (%llu rows in %llu batches over %.1f s)\n", rate,
               (unsigned long long)rows, (unsigned long long)batches, elapsed);
    return 0;
}
