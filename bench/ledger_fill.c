/*
 * ledger_fill: a ledger of N deliveries made through the ledger writer, as
 * receiptd would make them, without HTTP (bench/report-scale).
 *
 *   ledger_fill --ledger URL --deliveries N [--log STATE_DIR] [--days D]
 *               [--confirmed F] [--corrupted F] [--paths N] [--clients N]
 *               [--seed S] [--json]
 *
 * Deliveries are spread evenly over the last D days (default 30), oldest
 * first, with UUIDv7 IDs of their issue time, in the mix of a site that
 * serves pages to browsers, files, and images to a device fleet:
 *
 *   kind      share  contents                 confirmed by
 *   page      55%    --paths HTML pages       the agent, without a digest
 *   download  10%    --paths / 10 files       the agent, with the digest
 *   view      10%    the same files, opened   nobody (no agent): issued only
 *   device    20%    --paths / 100 images     the device, with the digest
 *   tracked    5%    --paths / 20 feeds       nobody: issued only
 *
 * Of the deliveries a client can confirm, a fraction --confirmed (default
 * 0.7) is confirmed and a fraction --corrupted (default 0.01) confirmed
 * with a digest that differs (a page's agent sends none, so those pages are
 * confirmed). A browser binds before it confirms, and a quarter of the
 * browsers that do not confirm bind and leave; a device names its key in
 * the delivering request, so its row is bound at issue. Contents are drawn
 * with a skew toward the first ones, as a site's traffic is; browsers from
 * --clients (default 100,000), devices from a tenth as many. Receipts are
 * filler of a real receipt's length (about 700 bytes): the size and the
 * read times depend on their length, not on their signature (the evidence
 * log commits to a receipt's SHA-256 only).
 *
 * With --log STATE_DIR, the writer appends every event's leaf to the
 * evidence log and signs a checkpoint per batch, as receiptd's does (keys
 * made in STATE_DIR; a receiptd started with that --state-dir on the ledger
 * keeps the log). The same --seed gives the same ledger, but for the IDs'
 * random bits and the log's salts.
 */
#include "bench/bench_log.h"
#include "common/uuid7.h"
#include "daemon/delivery.h"
#include "daemon/ledger.h"
#include "daemon/log.h"
#include "daemon/writer.h"

#include <getopt.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECEIPT_FILLER_LEN 700
#define FILL_QUEUE         4096 /* receiptd's --queue and --batch defaults */
#define FILL_BATCH         1024
#define PROGRESS_EVERY     1000000 /* deliveries; a tenth of them when fewer */

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

/* xorshift64*: a reproducible stream, not a secret. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static double unit_random(uint64_t *state)
{
    return (double)(next_random(state) >> 11) / 9007199254740992.0;
}

/* Index in [0, n), skewed toward 0: the square of a uniform draw. */
static uint64_t skewed(uint64_t *state, uint64_t n)
{
    double u = unit_random(state);
    uint64_t i = (uint64_t)(u * u * (double)n);
    return i < n ? i : n - 1;
}

static void base64url_filler(uint64_t *state, char *out, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[next_random(state) & 63];
    out[len] = '\0';
}

static void client_id(uint64_t index, char out[ECKEY_THUMBPRINT_LEN + 1])
{
    uint64_t state = index * 0x9E3779B97F4A7C15ull + 1;
    base64url_filler(&state, out, ECKEY_THUMBPRINT_LEN);
}

static const char *const browsers[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
};
#define BROWSERS (sizeof browsers / sizeof browsers[0])

/* One kind of the mix: its share, and how its deliveries end. */
typedef struct kind_mix {
    ledger_kind kind;
    double share;
    unsigned contents_divisor; /* of --paths */
    bool confirmable;
    bool digest; /* the confirmation carries the digest of what arrived */
    bool device; /* bound at issue, by a device */
    const char *path_format;
    uint64_t size_base, size_spread;
} kind_mix;

static const kind_mix mix[] = {
    {LEDGER_KIND_PAGE, 0.55, 1, true, false, false, "/docs/section-%llu/page-%llu.html", 2048,
     65536},
    {LEDGER_KIND_DOWNLOAD, 0.10, 10, true, true, false, "/files/%llu/report-%llu.pdf", 100000,
     2000000},
    {LEDGER_KIND_VIEW, 0.10, 10, false, false, false, "/files/%llu/report-%llu.pdf", 100000,
     2000000},
    {LEDGER_KIND_DEVICE, 0.20, 100, true, true, true, "/firmware/model-%llu/image-%llu.bin",
     4000000, 16000000},
    {LEDGER_KIND_TRACKED, 0.05, 20, false, false, false, "/feeds/%llu/feed-%llu.json", 1000, 30000},
};
#define MIX (sizeof mix / sizeof mix[0])

typedef struct fill_options {
    uint64_t deliveries;
    double days, confirmed, corrupted;
    uint64_t paths, clients, seed;
} fill_options;

typedef struct fill_counts {
    long long events;
    unsigned long long kinds[LEDGER_KIND_COUNT];
    unsigned long long statuses[LEDGER_CORRUPTED + 1];
} fill_counts;

static int submit(writer *w, const ledger_event *ev, fill_counts *n)
{
    while (writer_submit(w, ev, NULL, NULL) != 0) {
        writer_stats s;
        writer_get_stats(w, &s);
        if (s.failed_commits != 0)
            return -1;
        sched_yield();
    }
    n->events++;
    return 0;
}

static const kind_mix *draw_kind(uint64_t *state)
{
    double u = unit_random(state);
    for (size_t k = 0; k < MIX; k++) {
        if (u < mix[k].share)
            return &mix[k];
        u -= mix[k].share;
    }
    return &mix[0];
}

/* The issuance's columns of delivery i, issued at issued; *client is the
 * client's index (browsers first, then devices). Returns 0, or -1 when no
 * ID could be made. */
static int make_issue(const fill_options *o, const kind_mix *m, uint64_t i, uint64_t issued,
                      uint64_t *state, ledger_delivery *row, uint64_t *client)
{
    memset(row, 0, sizeof *row);
    uuid7 id;
    if (uuid7_new_at(&id, issued) != 0)
        return -1;
    uuid7_format(&id, row->id);
    uint64_t contents = o->paths / m->contents_divisor > 0 ? o->paths / m->contents_divisor : 1;
    uint64_t content = skewed(state, contents);
    snprintf(row->path, sizeof row->path, m->path_format, (unsigned long long)(content % 40),
             (unsigned long long)content);
    /* A version per path (what a view and a download of one file share),
     * its digest as random-looking as a real one. */
    uint64_t version = content * 0x9E3779B97F4A7C15ull + (uint64_t)m->contents_divisor;
    uint64_t digest_state = version | 1;
    for (size_t b = 0; b < sizeof row->sha256; b += 8) {
        uint64_t v = next_random(&digest_state);
        memcpy(row->sha256 + b, &v, 8);
    }
    row->size = m->size_base + version % m->size_spread;
    row->kind = m->kind;
    memcpy(row->delivered_sha256, row->sha256, sizeof row->sha256);
    row->delivered_size = row->size;
    if (m->kind == LEDGER_KIND_PAGE) {
        /* The bytes sent are the page with the agent element. */
        row->delivered_sha256[31] ^= 0x5a;
        row->delivered_size += sizeof DELIVERY_ELEMENT - 1;
    }
    snprintf(row->server, sizeof row->server, "docs.example.com");
    uint64_t devices = o->clients / 10 > 0 ? o->clients / 10 : 1;
    *client = m->device ? o->clients + skewed(state, devices) : skewed(state, o->clients);
    snprintf(row->client_addr, sizeof row->client_addr, "10.%u.%u.%u",
             (unsigned)(*client >> 16) & 255, (unsigned)(*client >> 8) & 255,
             (unsigned)*client & 255);
    snprintf(row->user_agent, sizeof row->user_agent, "%s",
             m->device ? "receipt/1.0 libreceipt/1.0" : browsers[*client % BROWSERS]);
    row->issued_ms = issued;
    snprintf(row->issued_node, sizeof row->issued_node, "node-%u", (unsigned)(i & 1));
    row->status = LEDGER_ISSUED;
    return 0;
}

static void bind_row(ledger_delivery *row, uint64_t client, uint64_t bound_ms)
{
    row->status = LEDGER_BOUND;
    client_id(client, row->client);
    snprintf(row->bound_addr, sizeof row->bound_addr, "%s", row->client_addr);
    row->bound_ms = bound_ms;
    snprintf(row->bound_node, sizeof row->bound_node, "%s", row->issued_node);
}

static void confirm_row(ledger_delivery *row, const kind_mix *m, bool corrupted, uint64_t *state)
{
    row->status = corrupted ? LEDGER_CORRUPTED : LEDGER_CONFIRMED;
    row->confirmed_ms = row->bound_ms + 200 + next_random(state) % 2000;
    snprintf(row->confirm_addr, sizeof row->confirm_addr, "%s", row->client_addr);
    row->received_has_sha256 = m->digest;
    if (m->digest) {
        memcpy(row->received_sha256, row->delivered_sha256, sizeof row->delivered_sha256);
        if (corrupted)
            row->received_sha256[0] ^= 0xff;
    }
    row->received_size = row->delivered_size;
    row->received_at_ms = row->confirmed_ms - 5;
    snprintf(row->confirmed_node, sizeof row->confirmed_node, "%s", row->issued_node);
    base64url_filler(state, row->receipt, RECEIPT_FILLER_LEN);
}

/* Submits every event; returns 0, or -1 when the ledger failed. */
static int fill(writer *w, const fill_options *o, fill_counts *n)
{
    uint64_t state = o->seed * 2 + 1;
    uint64_t span = (uint64_t)(o->days * 86400000.0);
    uint64_t start = wall_ms() - span;
    double t0 = mono_s();
    uint64_t progress_every =
        o->deliveries / 10 < PROGRESS_EVERY ? o->deliveries / 10 : PROGRESS_EVERY;
    if (progress_every == 0)
        progress_every = 1;
    ledger_event ev;
    for (uint64_t i = 0; i < o->deliveries; i++) {
        ledger_delivery *row = &ev.row;
        uint64_t issued = start + (o->deliveries > 1 ? span * i / (o->deliveries - 1) : 0);
        const kind_mix *m = draw_kind(&state);
        uint64_t client = 0;
        if (make_issue(o, m, i, issued, &state, row, &client) != 0)
            return -1;
        double u = unit_random(&state);
        bool confirm = m->confirmable && u < o->confirmed + o->corrupted;
        bool corrupted = confirm && m->digest && u >= o->confirmed;
        bool bind = m->device || confirm || (m->confirmable && unit_random(&state) < 0.25);

        if (m->device)
            bind_row(row, client, issued);
        ev.kind = LEDGER_EVENT_ISSUE;
        if (submit(w, &ev, n) != 0)
            return -1;
        if (bind && !m->device) {
            bind_row(row, client, issued + 150 + next_random(&state) % 500);
            ev.kind = LEDGER_EVENT_BIND;
            if (submit(w, &ev, n) != 0)
                return -1;
        }
        if (confirm) {
            confirm_row(row, m, corrupted, &state);
            ev.kind = LEDGER_EVENT_CONFIRM;
            if (submit(w, &ev, n) != 0)
                return -1;
        }
        n->kinds[m->kind]++;
        n->statuses[row->status]++;
        if ((i + 1) % progress_every == 0) {
            double t = mono_s() - t0;
            fprintf(stderr, "ledger_fill: %llu deliveries, %lld events in %.0f s (%.0f events/s)\n",
                    (unsigned long long)(i + 1), n->events, t, (double)n->events / t);
        }
    }
    return 0;
}

static void usage(FILE *out, int status)
{
    fputs("usage: ledger_fill --ledger URL --deliveries N [--log STATE_DIR] [--days D]\n"
          "                   [--confirmed F] [--corrupted F] [--paths N] [--clients N]\n"
          "                   [--seed S] [--json]\n"
          "\n"
          "Fills the ledger at URL with N deliveries through the ledger writer\n"
          "(bench/README.md, \"The ledger at scale\").\n"
          "\n"
          "  --log STATE_DIR  keep the evidence log, its keys in STATE_DIR (made if missing)\n"
          "  --days D         issue times spread over the last D days (default 30)\n"
          "  --confirmed F    of the deliveries a client can confirm, the fraction confirmed\n"
          "                   (default 0.7)\n"
          "  --corrupted F    the fraction confirmed with a digest that differs (default 0.01)\n"
          "  --paths N        HTML pages; files, images and feeds are fewer (default 2000)\n"
          "  --clients N      browsers; devices are a tenth as many (default 100000)\n"
          "  --seed S         the same seed, the same ledger but for random bits (default 1)\n"
          "  --json           print the counts as one JSON object\n",
          out);
    exit(status);
}

static void print_json(const fill_options *o, const fill_counts *n, const writer_stats *s,
                       double elapsed)
{
    printf("{\"deliveries\": %llu, \"events\": %lld, \"log_leaves\": %llu, \"seconds\": %.1f, "
           "\"kinds\": {",
           (unsigned long long)o->deliveries, n->events, (unsigned long long)s->log_leaves,
           elapsed);
    for (int k = 0; k < LEDGER_KIND_COUNT; k++)
        printf("%s\"%s\": %llu", k ? ", " : "", ledger_kind_name((ledger_kind)k), n->kinds[k]);
    printf("}, \"statuses\": {");
    for (int st = 0; st <= LEDGER_CORRUPTED; st++)
        printf("%s\"%s\": %llu", st ? ", " : "", ledger_status_name((ledger_status)st),
               n->statuses[st]);
    printf("}}\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"ledger", required_argument, NULL, 'l'},
        {"deliveries", required_argument, NULL, 'n'},
        {"log", required_argument, NULL, 'g'},
        {"days", required_argument, NULL, 'd'},
        {"confirmed", required_argument, NULL, 'c'},
        {"corrupted", required_argument, NULL, 'x'},
        {"paths", required_argument, NULL, 'p'},
        {"clients", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL;
    const char *log_dir = NULL;
    fill_options o = {.days = 30,
                      .confirmed = 0.7,
                      .corrupted = 0.01,
                      .paths = 2000,
                      .clients = 100000,
                      .seed = 1};
    bool json = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            url = optarg;
            break;
        case 'n':
            o.deliveries = strtoull(optarg, NULL, 10);
            break;
        case 'g':
            log_dir = optarg;
            break;
        case 'd':
            o.days = strtod(optarg, NULL);
            break;
        case 'c':
            o.confirmed = strtod(optarg, NULL);
            break;
        case 'x':
            o.corrupted = strtod(optarg, NULL);
            break;
        case 'p':
            o.paths = strtoull(optarg, NULL, 10);
            break;
        case 'k':
            o.clients = strtoull(optarg, NULL, 10);
            break;
        case 's':
            o.seed = strtoull(optarg, NULL, 10);
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout, 0);
            break;
        default:
            usage(stderr, 2);
        }
    }
    if (url == NULL || o.deliveries == 0 || !(o.days > 0 && o.days <= 3650) ||
        !(o.confirmed >= 0) || !(o.corrupted >= 0) || o.confirmed + o.corrupted > 1 ||
        o.paths == 0 || o.clients == 0 || o.clients > (1ull << 24))
        usage(stderr, 2);
    log_set_level(LOG_LEVEL_ERROR); /* a full queue is this tool's normal state */

    int rc = 1;
    char err[LEDGER_ERR_MAX];
    keystore *keys = NULL;
    tlog *evidence = NULL;
    writer *w = NULL;
    ledger *lg = ledger_open(url, NULL, false, err, sizeof err);
    if (lg == NULL) {
        fprintf(stderr, "ledger_fill: %s\n", err);
        return 1;
    }
    uint64_t now = wall_ms();
    uint64_t from = now - (uint64_t)(o.days * 86400000.0);
    if (ledger_prepare(lg, from, now + (uint64_t)LEDGER_MONTHS_AHEAD * 31 * 86400000ull) < 0) {
        fprintf(stderr, "ledger_fill: %s\n", ledger_error(lg));
        ledger_close(lg);
        return 1;
    }
    w = writer_new(lg, FILL_QUEUE, FILL_BATCH);
    if (w == NULL) {
        fprintf(stderr, "ledger_fill: out of memory\n");
        ledger_close(lg);
        return 1;
    }
    /* From here the writer owns the ledger. */
    if (log_dir != NULL) {
        if (bench_log_start(lg, log_dir, FILL_BATCH, &keys, &evidence, err, sizeof err) != 0) {
            fprintf(stderr, "ledger_fill: the evidence log: %s\n", err);
            goto cleanup;
        }
        writer_set_log(w, evidence);
    }
    if (writer_start(w) != 0) {
        fprintf(stderr, "ledger_fill: cannot start the writer\n");
        goto cleanup;
    }
    fill_counts n = {0};
    double t0 = mono_s();
    int filled = fill(w, &o, &n);
    writer_stop(w, 0);
    double elapsed = mono_s() - t0;
    writer_stats s;
    writer_get_stats(w, &s);
    if (filled != 0 || s.failed != 0 || s.failed_commits != 0 ||
        s.committed != (unsigned long long)n.events) {
        fprintf(stderr, "ledger_fill: %llu of %lld events committed, %llu failed\n",
                (unsigned long long)s.committed, n.events, (unsigned long long)s.failed);
        goto cleanup;
    }
    if (json)
        print_json(&o, &n, &s, elapsed);
    else
        printf("%llu deliveries, %lld events, %llu log leaves in %.1f s\n",
               (unsigned long long)o.deliveries, n.events, (unsigned long long)s.log_leaves,
               elapsed);
    rc = 0;
cleanup:
    writer_free(w);
    tlog_free(evidence);
    keystore_free(keys);
    return rc;
}
