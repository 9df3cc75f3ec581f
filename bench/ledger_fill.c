/*
 * ledger_fill: a ledger of N deliveries made through the ledger writer, as
 * receiptd would make them, without HTTP (bench/report-scale).
 *
 *   ledger_fill --ledger URL --deliveries N [--days D] [--confirmed F]
 *               [--corrupted F] [--paths N] [--clients N] [--seed S] [--json]
 *
 * Deliveries are spread evenly over the last D days (default 30), oldest
 * first, with UUIDv7 IDs of their issue time. Each is issued; a fraction F
 * (default 0.7) is bound and confirmed, a fraction --corrupted (default
 * 0.01) bound and confirmed corrupted, and a quarter of the rest only bound,
 * as browsers that fetched their plug-in data and left do. Paths are drawn
 * from --paths (default 2,000) with a skew toward the first ones, as a
 * site's traffic is; clients from --clients (default 100,000). Receipts are
 * filler of a real receipt's length (about 700 bytes): the size and the
 * read times depend on their length, not on their signature. The same
 * --seed gives the same ledger, but for the IDs' random bits.
 */
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

static const char *const user_agents[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "receipt/1.0 libreceipt/1.0",
};

typedef struct fill_options {
    uint64_t deliveries;
    double days, confirmed, corrupted;
    uint64_t paths, clients, seed;
} fill_options;

static int submit(writer *w, const ledger_event *ev)
{
    while (writer_submit(w, ev, NULL, NULL) != 0) {
        writer_stats s;
        writer_get_stats(w, &s);
        if (s.failed_commits != 0)
            return -1;
        sched_yield();
    }
    return 0;
}

/* Submits every event; returns the number of events, or -1. */
static long long fill(writer *w, const fill_options *o)
{
    uint64_t state = o->seed * 2 + 1;
    uint64_t now = wall_ms();
    uint64_t span = (uint64_t)(o->days * 86400000.0);
    uint64_t start = now - span;
    long long events = 0;
    ledger_event ev;
    for (uint64_t i = 0; i < o->deliveries; i++) {
        memset(&ev, 0, sizeof ev);
        ledger_delivery *row = &ev.row;
        uint64_t issued = start + (o->deliveries > 1 ? span * i / (o->deliveries - 1) : 0);
        uuid7 id;
        if (uuid7_new_at(&id, issued) != 0)
            return -1;
        uuid7_format(&id, row->id);
        uint64_t path = skewed(&state, o->paths);
        snprintf(row->path, sizeof row->path, "/docs/section-%llu/page-%llu.html",
                 (unsigned long long)(path % 40), (unsigned long long)path);
        for (size_t b = 0; b < sizeof row->sha256; b += 8) {
            uint64_t v = path * 0x9E3779B97F4A7C15ull + b;
            memcpy(row->sha256 + b, &v, 8);
        }
        row->size = 2048 + path % 65536;
        /* Page views: the bytes sent are the page with the agent element. */
        row->kind = LEDGER_KIND_PAGE;
        memcpy(row->delivered_sha256, row->sha256, sizeof row->sha256);
        row->delivered_sha256[31] ^= 0x5a;
        row->delivered_size = row->size + sizeof DELIVERY_ELEMENT - 1;
        snprintf(row->server, sizeof row->server, "https://docs.example.com");
        uint64_t client = skewed(&state, o->clients);
        snprintf(row->client_addr, sizeof row->client_addr, "10.%u.%u.%u",
                 (unsigned)(client >> 16) & 255, (unsigned)(client >> 8) & 255,
                 (unsigned)client & 255);
        snprintf(row->user_agent, sizeof row->user_agent, "%s",
                 user_agents[client % (sizeof user_agents / sizeof user_agents[0])]);
        row->issued_ms = issued;
        snprintf(row->issued_node, sizeof row->issued_node, "node-%u", (unsigned)(i & 1));
        row->status = LEDGER_ISSUED;
        ev.kind = LEDGER_EVENT_ISSUE;
        if (submit(w, &ev) != 0)
            return -1;
        events++;

        double u = unit_random(&state);
        bool confirm = u < o->confirmed + o->corrupted;
        bool bind = confirm || unit_random(&state) < 0.25;
        if (!bind)
            continue;
        client_id(client, row->client);
        snprintf(row->bound_addr, sizeof row->bound_addr, "%s", row->client_addr);
        row->bound_ms = issued + 150 + next_random(&state) % 500;
        snprintf(row->bound_node, sizeof row->bound_node, "%s", row->issued_node);
        ev.kind = LEDGER_EVENT_BIND;
        if (submit(w, &ev) != 0)
            return -1;
        events++;
        if (!confirm)
            continue;
        bool corrupted = u >= o->confirmed;
        row->status = corrupted ? LEDGER_CORRUPTED : LEDGER_CONFIRMED;
        row->confirmed_ms = row->bound_ms + 200 + next_random(&state) % 2000;
        snprintf(row->confirm_addr, sizeof row->confirm_addr, "%s", row->client_addr);
        row->received_has_sha256 = true;
        memcpy(row->received_sha256, row->delivered_sha256, sizeof row->delivered_sha256);
        if (corrupted)
            row->received_sha256[0] ^= 0xff;
        row->received_size = row->delivered_size;
        row->received_at_ms = row->confirmed_ms - 5;
        snprintf(row->confirmed_node, sizeof row->confirmed_node, "%s", row->issued_node);
        base64url_filler(&state, row->receipt, RECEIPT_FILLER_LEN);
        ev.kind = LEDGER_EVENT_CONFIRM;
        if (submit(w, &ev) != 0)
            return -1;
        events++;
        if ((i + 1) % 1000000 == 0)
            fprintf(stderr, "ledger_fill: %llu deliveries\n", (unsigned long long)(i + 1));
    }
    return events;
}

static void usage(void)
{
    fputs("usage: ledger_fill --ledger URL --deliveries N [--days D] [--confirmed F]\n"
          "                   [--corrupted F] [--paths N] [--clients N] [--seed S] [--json]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"ledger", required_argument, NULL, 'l'},
        {"deliveries", required_argument, NULL, 'n'},
        {"days", required_argument, NULL, 'd'},
        {"confirmed", required_argument, NULL, 'c'},
        {"corrupted", required_argument, NULL, 'x'},
        {"paths", required_argument, NULL, 'p'},
        {"clients", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL;
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
        default:
            usage();
        }
    }
    if (url == NULL || o.deliveries == 0 || o.days <= 0 || o.confirmed < 0 || o.corrupted < 0 ||
        o.confirmed + o.corrupted > 1 || o.paths == 0 || o.clients == 0)
        usage();
    log_set_level(LOG_LEVEL_ERROR); /* a full queue is this tool's normal state */

    char err[LEDGER_ERR_MAX];
    ledger *lg = ledger_open(url, NULL, false, err, sizeof err);
    if (lg == NULL) {
        fprintf(stderr, "ledger_fill: %s\n", err);
        return 1;
    }
    uint64_t now = wall_ms();
    uint64_t from = now - (uint64_t)(o.days * 86400000.0);
    if (ledger_prepare(lg, from, now + (uint64_t)LEDGER_MONTHS_AHEAD * 31 * 86400000ull) < 0) {
        fprintf(stderr, "ledger_fill: %s\n", ledger_error(lg));
        return 1;
    }
    writer *w = writer_new(lg, 65536, 1024);
    if (w == NULL || writer_start(w) != 0) {
        fprintf(stderr, "ledger_fill: cannot start the writer\n");
        return 1;
    }
    double t0 = mono_s();
    long long events = fill(w, &o);
    writer_stop(w, 0);
    double elapsed = mono_s() - t0;
    writer_stats s;
    writer_get_stats(w, &s);
    writer_free(w);
    if (events < 0 || s.failed != 0 || s.failed_commits != 0 ||
        s.committed != (unsigned long long)events) {
        fprintf(stderr, "ledger_fill: %llu of %lld events committed, %llu failed\n",
                (unsigned long long)s.committed, events, (unsigned long long)s.failed);
        return 1;
    }
    if (json)
        printf("{\"deliveries\": %llu, \"events\": %lld, \"seconds\": %.1f}\n",
               (unsigned long long)o.deliveries, events, elapsed);
    else
        printf("%llu deliveries, %lld events in %.1f s\n", (unsigned long long)o.deliveries, events,
               elapsed);
    return 0;
}
