/*
 * The ledger's reads (summary, content and client figures, series, filtered
 * keyset queries) and the export renderings built on them. The reads run
 * against both backends.
 */
#include "daemon/export.h"
#include "daemon/ledger.h"
#include "pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEST_DIR_MAX  64
#define TEST_ROWS     20
#define TEST_T0       1764100000000ull
#define TEST_CMD_MAX  128
#define TEST_TEXT_MAX 4096
#define CLIENT_A      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define CLIENT_B      "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

typedef struct fixture {
    bool pg;
    char dir[TEST_DIR_MAX];
    char db[PGTEST_NAME_MAX];
    char url[PGTEST_URL_MAX];
    ledger *lg;
} fixture;

static void make_id(char out[UUID7_STR_LEN + 1], unsigned n)
{
    snprintf(out, UUID7_STR_LEN + 1, "01900000-0000-7000-8000-%012x", n);
}

/*
 * Row n (1-based): /a.html for odd n, /b.html for even; issued at T0 + n s.
 * n % 4 == 1: confirmed by A after n * 100 ms; n % 4 == 2: corrupted by B
 * after n * 10 ms; n % 4 == 3: bound to A; n % 4 == 0: issued. Kinds go
 * round page, download, view, device, tracked (n % 5); pages were sent with
 * the element (48 bytes more).
 */
static void add_row(ledger *lg, unsigned n)
{
    ledger_event ev;
    memset(&ev, 0, sizeof ev);
    make_id(ev.row.id, n);
    snprintf(ev.row.path, sizeof ev.row.path, "%s", n % 2 ? "/a.html" : "/b.html");
    memset(ev.row.sha256, n % 2 ? 0xaa : 0xbb, 32);
    ev.row.size = 100;
    ev.row.kind = (ledger_kind)(n % 5);
    memcpy(ev.row.delivered_sha256, ev.row.sha256, 32);
    ev.row.delivered_size = ev.row.size;
    if (ev.row.kind == LEDGER_KIND_PAGE) {
        ev.row.delivered_sha256[0] = (uint8_t)n;
        ev.row.delivered_size += 48;
    }
    snprintf(ev.row.server, sizeof ev.row.server, "s1");
    snprintf(ev.row.client_addr, sizeof ev.row.client_addr, "192.0.2.1");
    ev.row.issued_ms = TEST_T0 + n * 1000;
    ev.kind = LEDGER_EVENT_ISSUE;
    ev.row.status = LEDGER_ISSUED;
    if (n % 4 != 0) {
        ev.kind = n % 4 == 3 ? LEDGER_EVENT_BIND : LEDGER_EVENT_CONFIRM;
        ev.row.status = n % 4 == 1   ? LEDGER_CONFIRMED
                        : n % 4 == 2 ? LEDGER_CORRUPTED
                                     : LEDGER_BOUND;
        snprintf(ev.row.client, sizeof ev.row.client, "%s", n % 4 == 2 ? CLIENT_B : CLIENT_A);
        ev.row.bound_ms = ev.row.issued_ms + 1;
        if (ev.kind == LEDGER_EVENT_CONFIRM) {
            ev.row.confirmed_ms = ev.row.issued_ms + (n % 4 == 1 ? n * 100 : n * 10);
            ev.row.received_at_ms = ev.row.confirmed_ms;
            snprintf(ev.row.receipt, sizeof ev.row.receipt, "r.%u.s", n);
        }
    }
    assert_int_equal(ledger_apply(lg, &ev, NULL), 0);
}

static int setup_backend(void **state, bool pg)
{
    fixture *f = calloc(1, sizeof *f);
    char err[LEDGER_ERR_MAX];
    assert_non_null(f);
    f->pg = pg;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_ledger_query.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    if (pg) {
        assert_int_equal(pgtest_create(f->db, f->url, true), 0);
        f->lg = ledger_open(f->url, NULL, false, err, sizeof err);
    } else {
        f->lg = ledger_open(NULL, f->dir, false, err, sizeof err);
    }
    if (f->lg == NULL)
        fail_msg("open: %s", err);
    assert_int_equal(ledger_begin(f->lg), 0);
    for (unsigned n = 1; n <= TEST_ROWS; n++)
        add_row(f->lg, n);
    assert_int_equal(ledger_commit(f->lg), 0);
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
    char cmd[TEST_CMD_MAX];
    ledger_close(f->lg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    if (f->pg && pgtest_drop(f->db) != 0)
        return -1;
    free(f);
    return 0;
}

static void test_summary(void **state)
{
    fixture *f = *state;
    ledger_summary s;
    assert_int_equal(ledger_summary_read(f->lg, &s), 0);
    assert_int_equal(s.deliveries, TEST_ROWS);
    assert_int_equal(s.confirmed, 5);
    assert_int_equal(s.corrupted, 5);
    assert_int_equal(s.bound, 5);
    assert_int_equal(s.pending, 10);
    assert_int_equal(s.first_ms, TEST_T0 + 1000);
    assert_int_equal(s.last_ms, TEST_T0 + 20000); /* row 20 issued after every confirmation */
    /* By kind: rows n with n % 5 == k; statuses by n % 4. */
    for (unsigned k = 0; k < LEDGER_KIND_COUNT; k++) {
        ledger_kind_counts want = {0};
        for (unsigned n = 1; n <= TEST_ROWS; n++) {
            if (n % 5 != k)
                continue;
            want.deliveries++;
            want.confirmed += n % 4 == 1;
            want.corrupted += n % 4 == 2;
            want.pending += n % 4 == 3 || n % 4 == 0;
        }
        assert_int_equal(s.kinds[k].deliveries, want.deliveries);
        assert_int_equal(s.kinds[k].confirmed, want.confirmed);
        assert_int_equal(s.kinds[k].corrupted, want.corrupted);
        assert_int_equal(s.kinds[k].pending, want.pending);
    }
}

typedef struct contents_seen {
    ledger_content_stats rows[4];
    size_t n;
} contents_seen;

static int collect_content(void *arg, const ledger_content_stats *row)
{
    contents_seen *seen = arg;
    if (seen->n < 4)
        seen->rows[seen->n++] = *row;
    return 0;
}

static void test_content_stats(void **state)
{
    fixture *f = *state;
    contents_seen seen = {0};
    assert_int_equal(ledger_content_stats_read(f->lg, collect_content, &seen), 0);
    assert_int_equal(seen.n, 2);
    /* /a.html: odd rows; confirmed 1, 5, 9, 13, 17 after n * 100 ms; the rest bound. */
    const ledger_content_stats *a = &seen.rows[0];
    assert_string_equal(a->path, "/a.html");
    assert_int_equal(a->deliveries, 10);
    assert_int_equal(a->confirmed, 5);
    assert_int_equal(a->corrupted, 0);
    assert_int_equal(a->pending, 5);
    assert_true(a->has_latency);
    assert_int_equal(a->median_ms, 900); /* ceil(5 / 2) = 3rd of 100 500 900 1300 1700 */
    assert_int_equal(a->p95_ms, 1700);   /* ceil(4.75) = 5th */
    /* /b.html: even rows; corrupted 2, 6, 10, 14, 18 after n * 10 ms; the rest issued. */
    const ledger_content_stats *b = &seen.rows[1];
    assert_string_equal(b->path, "/b.html");
    assert_int_equal(b->corrupted, 5);
    assert_int_equal(b->median_ms, 100);
    assert_int_equal(b->p95_ms, 180);
    assert_int_equal(b->first_ms, TEST_T0 + 2000);
    assert_int_equal(b->last_ms, TEST_T0 + 20000);
}

static int stop_after_one(void *arg, const ledger_client_stats *row)
{
    ledger_client_stats *out = arg;
    *out = *row;
    return 1;
}

static void test_client_stats(void **state)
{
    fixture *f = *state;
    ledger_client_stats first;
    memset(&first, 0, sizeof first);
    assert_int_equal(ledger_client_stats_read(f->lg, stop_after_one, &first), 0);
    /* A was seen last: row 19 bound at T0 + 19001 ms, after B's last (18180). */
    assert_string_equal(first.client, CLIENT_A);
    assert_int_equal(first.deliveries, 10);
    assert_int_equal(first.confirmed, 5);
    assert_int_equal(first.pending, 5);
    assert_int_equal(first.last_seen_ms, TEST_T0 + 19001);
}

typedef struct series_seen {
    uint64_t deliveries, confirmed, corrupted;
    size_t buckets;
} series_seen;

static int collect_bucket(void *arg, const ledger_bucket *row)
{
    series_seen *seen = arg;
    seen->deliveries += row->deliveries;
    seen->confirmed += row->confirmed;
    seen->corrupted += row->corrupted;
    seen->buckets++;
    return 0;
}

static void test_series(void **state)
{
    fixture *f = *state;
    series_seen all = {0}, part = {0};
    assert_int_equal(
        ledger_series_read(f->lg, TEST_T0, TEST_T0 + 60000, 5000, collect_bucket, &all), 0);
    assert_int_equal(all.deliveries, TEST_ROWS);
    assert_int_equal(all.confirmed, 5);
    assert_int_equal(all.corrupted, 5);
    assert_int_equal(all.buckets, 5);
    /* [T0 + 1 s, T0 + 5 s): rows 1-4; confirmations of 1 (at 1.1 s) and 2 (2.02 s) */
    assert_int_equal(
        ledger_series_read(f->lg, TEST_T0 + 1000, TEST_T0 + 5000, 1000, collect_bucket, &part), 0);
    assert_int_equal(part.deliveries, 4);
    assert_int_equal(part.confirmed, 1);
    assert_int_equal(part.corrupted, 1);
}

/* Reads a query to the end; returns the row count and the first and last IDs' numbers. */
static size_t run_query(ledger *lg, const ledger_filter *flt, unsigned *first, unsigned *last)
{
    ledger_delivery row;
    size_t n = 0;
    ledger_cursor *cur = ledger_query(lg, flt);
    assert_non_null(cur);
    int rc;
    while ((rc = ledger_cursor_next(cur, &row)) == 1) {
        unsigned num = (unsigned)strtoul(row.id + 24, NULL, 16);
        if (n == 0)
            *first = num;
        *last = num;
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(ledger_cursor_next(cur, &row), 0); /* stays ended */
    ledger_cursor_free(cur);
    return n;
}

static void test_query(void **state)
{
    fixture *f = *state;
    unsigned first = 0, last = 0;
    char before[UUID7_STR_LEN + 1];
    ledger_filter flt;

    memset(&flt, 0, sizeof flt);
    assert_int_equal(run_query(f->lg, &flt, &first, &last), TEST_ROWS);
    assert_int_equal(first, 20); /* newest first */
    assert_int_equal(last, 1);

    make_id(before, 11);
    flt.before_id = before;
    assert_int_equal(run_query(f->lg, &flt, &first, &last), 10);
    assert_int_equal(first, 10);

    memset(&flt, 0, sizeof flt);
    flt.path = "/a.html";
    flt.statuses = LEDGER_STATUS_PENDING;
    assert_int_equal(run_query(f->lg, &flt, &first, &last), 5);
    assert_int_equal(first, 19);
    assert_int_equal(last, 3);

    memset(&flt, 0, sizeof flt);
    flt.client = CLIENT_B;
    flt.since_ms = TEST_T0 + 6000;  /* inclusive */
    flt.until_ms = TEST_T0 + 14000; /* exclusive */
    assert_int_equal(run_query(f->lg, &flt, &first, &last), 2);
    assert_int_equal(first, 10);
    assert_int_equal(last, 6);

    flt.statuses = 1u << 7; /* no such status */
    assert_null(ledger_query(f->lg, &flt));

    /* By kind: n % 5 == 0 (pages) and 3 (devices), with a status. */
    memset(&flt, 0, sizeof flt);
    flt.kinds = LEDGER_KIND_BIT(LEDGER_KIND_PAGE) | LEDGER_KIND_BIT(LEDGER_KIND_DEVICE);
    assert_int_equal(run_query(f->lg, &flt, &first, &last), 8);
    assert_int_equal(first, 20);
    assert_int_equal(last, 3);
    flt.statuses = LEDGER_STATUS_BIT(LEDGER_CONFIRMED); /* n % 4 == 1: 5, 13 */
    assert_int_equal(run_query(f->lg, &flt, &first, &last), 2);
    assert_int_equal(first, 13);
    assert_int_equal(last, 5);
    flt.kinds = LEDGER_KIND_BIT(LEDGER_KIND_COUNT); /* no such kind */
    assert_null(ledger_query(f->lg, &flt));

    /* The rows come back with their kind and the bytes they sent. */
    memset(&flt, 0, sizeof flt);
    ledger_cursor *cur = ledger_query(f->lg, &flt);
    assert_non_null(cur);
    ledger_delivery row;
    while (ledger_cursor_next(cur, &row) == 1) {
        unsigned n = (unsigned)(row.issued_ms - TEST_T0) / 1000;
        assert_int_equal(row.kind, n % 5);
        assert_int_equal(row.delivered_size, n % 5 == 0 ? 148 : 100);
        assert_int_equal(row.delivered_sha256[0] == row.sha256[0], n % 5 != 0);
    }
    ledger_cursor_free(cur);

    /* Oldest first, after an ID, and a limit. */
    char after[UUID7_STR_LEN + 1];
    memset(&flt, 0, sizeof flt);
    flt.oldest_first = true;
    assert_int_equal(run_query(f->lg, &flt, &first, &last), TEST_ROWS);
    assert_int_equal(first, 1);
    assert_int_equal(last, 20);
    make_id(after, 4);
    flt.after_id = after;
    flt.limit = 3;
    assert_int_equal(run_query(f->lg, &flt, &first, &last), 3);
    assert_int_equal(first, 5);
    assert_int_equal(last, 7);
    memset(&flt, 0, sizeof flt);
    flt.limit = 2;
    flt.path = "/b.html";
    assert_int_equal(run_query(f->lg, &flt, &first, &last), 2);
    assert_int_equal(first, 20);
    assert_int_equal(last, 18);
    make_id(before, 18);
    flt.before_id = before;
    flt.after_id = after;
    flt.limit = 100;
    assert_int_equal(run_query(f->lg, &flt, &first, &last), 6); /* 16 down to 6 */
    assert_int_equal(first, 16);
    assert_int_equal(last, 6);
}

/*
 * More rows than a cursor fetches at once, read to the end, and a query
 * left half read: the next query on the handle still works, and sees rows
 * written since.
 */
static void test_long_query(void **state)
{
    fixture *f = *state;
    unsigned first = 0, last = 0;
    ledger_filter flt;
    ledger_delivery row;
    enum { MORE = 1000 };

    assert_int_equal(ledger_begin(f->lg), 0);
    for (unsigned n = TEST_ROWS + 1; n <= TEST_ROWS + MORE; n++)
        add_row(f->lg, n);
    assert_int_equal(ledger_commit(f->lg), 0);

    memset(&flt, 0, sizeof flt);
    assert_int_equal(run_query(f->lg, &flt, &first, &last), TEST_ROWS + MORE);
    assert_int_equal(first, TEST_ROWS + MORE);
    assert_int_equal(last, 1);

    ledger_cursor *cur = ledger_query(f->lg, &flt);
    assert_non_null(cur);
    for (int i = 0; i < 300; i++)
        assert_int_equal(ledger_cursor_next(cur, &row), 1);
    ledger_cursor_free(cur);

    ledger_summary s;
    assert_int_equal(ledger_summary_read(f->lg, &s), 0);
    assert_int_equal(s.deliveries, TEST_ROWS + MORE);
    flt.path = "/a.html";
    assert_int_equal(run_query(f->lg, &flt, &first, &last), (TEST_ROWS + MORE) / 2);
}

/* What a filter looks at, of one row. */
typedef struct row_key {
    unsigned num; /* make_id()'s number */
    bool odd_path;
    ledger_status status;
    ledger_kind kind;
    bool client_a;
    uint64_t issued_ms;
} row_key;

static bool key_matches(const row_key *k, const ledger_filter *flt)
{
    return (flt->path == NULL || k->odd_path == (strcmp(flt->path, "/a.html") == 0)) &&
           (flt->client == NULL || k->client_a) &&
           (flt->statuses == 0 || (flt->statuses & LEDGER_STATUS_BIT(k->status)) != 0) &&
           (flt->kinds == 0 || (flt->kinds & LEDGER_KIND_BIT(k->kind)) != 0) &&
           (flt->since_ms == 0 || k->issued_ms >= flt->since_ms) &&
           (flt->until_ms == 0 || k->issued_ms < flt->until_ms);
}

/*
 * Every combination of filters returns what reading the whole ledger and
 * filtering it returns, in the same order: the statement each filter makes
 * chooses its index (the SQLite backend's depends on the filter), and no
 * choice may change the rows.
 */
static void test_query_plans_keep_rows(void **state)
{
    fixture *f = *state;
    enum { ROWS = 240, LIMIT = 7 };
    static row_key all[ROWS];
    ledger_delivery row;
    ledger_filter flt;

    assert_int_equal(ledger_begin(f->lg), 0);
    for (unsigned n = TEST_ROWS + 1; n <= ROWS; n++)
        add_row(f->lg, n);
    assert_int_equal(ledger_commit(f->lg), 0);

    /* Oldest first: all[i] is row i + 1. */
    memset(&flt, 0, sizeof flt);
    flt.oldest_first = true;
    ledger_cursor *cur = ledger_query(f->lg, &flt);
    assert_non_null(cur);
    size_t count = 0;
    while (ledger_cursor_next(cur, &row) == 1) {
        assert_true(count < ROWS);
        row_key *k = &all[count++];
        k->num = (unsigned)strtoul(row.id + 24, NULL, 16);
        k->odd_path = strcmp(row.path, "/a.html") == 0;
        k->status = row.status;
        k->kind = row.kind;
        k->client_a = strcmp(row.client, CLIENT_A) == 0;
        k->issued_ms = row.issued_ms;
    }
    ledger_cursor_free(cur);
    assert_int_equal(count, ROWS);

    const unsigned statuses[] = {
        0,
        LEDGER_STATUS_PENDING,
        LEDGER_STATUS_BIT(LEDGER_CONFIRMED),
        LEDGER_STATUS_BIT(LEDGER_CORRUPTED),
        LEDGER_STATUS_BIT(LEDGER_CONFIRMED) | LEDGER_STATUS_BIT(LEDGER_CORRUPTED),
    };
    const unsigned kinds[] = {0, LEDGER_KIND_BIT(LEDGER_KIND_DEVICE) |
                                     LEDGER_KIND_BIT(LEDGER_KIND_PAGE)};
    const uint64_t windows[][2] = {
        {0, 0},
        {TEST_T0 + 100 * 1000, 0},
        {0, TEST_T0 + 60 * 1000},
        {TEST_T0 + 50 * 1000, TEST_T0 + 200 * 1000},
    };
    unsigned checked = 0;
    for (size_t si = 0; si < sizeof statuses / sizeof statuses[0]; si++)
        for (size_t ki = 0; ki < sizeof kinds / sizeof kinds[0]; ki++)
            for (size_t wi = 0; wi < sizeof windows / sizeof windows[0]; wi++)
                for (unsigned other = 0; other < 16; other++) {
                    memset(&flt, 0, sizeof flt);
                    flt.statuses = statuses[si];
                    flt.kinds = kinds[ki];
                    flt.since_ms = windows[wi][0];
                    flt.until_ms = windows[wi][1];
                    flt.path = other & 1 ? "/a.html" : NULL;
                    flt.client = other & 2 ? CLIENT_A : NULL;
                    flt.limit = other & 4 ? LIMIT : 0;
                    flt.oldest_first = (other & 8) != 0;

                    cur = ledger_query(f->lg, &flt);
                    assert_non_null(cur);
                    size_t got = 0;
                    for (size_t j = 0; j < ROWS; j++) {
                        const row_key *k = &all[flt.oldest_first ? j : ROWS - 1 - j];
                        if (!key_matches(k, &flt))
                            continue;
                        if (flt.limit != 0 && got == flt.limit)
                            break;
                        if (ledger_cursor_next(cur, &row) != 1)
                            fail_msg("filter %zu/%zu/%zu/%u: row %u missing", si, ki, wi, other,
                                     k->num);
                        unsigned num = (unsigned)strtoul(row.id + 24, NULL, 16);
                        if (num != k->num)
                            fail_msg("filter %zu/%zu/%zu/%u: row %u where %u was due", si, ki, wi,
                                     other, num, k->num);
                        got++;
                    }
                    if (ledger_cursor_next(cur, &row) != 0)
                        fail_msg("filter %zu/%zu/%zu/%u: a row too many", si, ki, wi, other);
                    ledger_cursor_free(cur);
                    checked++;
                }
    assert_int_equal(checked, 5 * 2 * 4 * 16);
}

static void test_parse_time(void **state)
{
    uint64_t ms = 0;
    (void)state;
    assert_int_equal(export_parse_time("1764100000123", &ms), 0);
    assert_int_equal(ms, 1764100000123ull);
    assert_int_equal(export_parse_time("2025-11-25", &ms), 0);
    assert_int_equal(ms, 1764028800000ull);
    assert_int_equal(export_parse_time("2025-11-25T19:46:40.5Z", &ms), 0);
    assert_int_equal(ms, 1764100000500ull);
    assert_int_equal(export_parse_time("2025-11-25T20:46:40+01:00", &ms), 0);
    assert_int_equal(ms, 1764100000000ull);
    assert_int_equal(export_parse_time("2025-11-25T19:46Z", &ms), 0);
    assert_int_equal(ms, 1764099960000ull);
    const char *bad[] = {"",
                         "x",
                         "2025-02-29",
                         "2025-11-25T19:46:40",
                         "2025-11-25T24:00:00Z",
                         "2025-11-25T19:46:40+0100",
                         "1234567890123456",
                         "2025-1-25",
                         "-5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(export_parse_time(bad[i], &ms), -1);
    char text[EXPORT_TIME_MAX];
    export_format_time(1764100000123ull, text);
    assert_string_equal(text, "2025-11-25T19:46:40.123Z");
}

static void test_renderings(void **state)
{
    char text[TEST_TEXT_MAX];
    jbuf b;
    ledger_delivery d;
    (void)state;
    memset(&d, 0, sizeof d);
    make_id(d.id, 1);
    snprintf(d.path, sizeof d.path, "/a,\"b\"\n\x01\xff.html");
    snprintf(d.server, sizeof d.server, "s1");
    snprintf(d.client_addr, sizeof d.client_addr, "::1");
    d.issued_ms = 5;
    d.kind = LEDGER_KIND_VIEW;
    d.delivered_size = 7;
    jbuf_init(&b, text, sizeof text);
    export_item_csv(&b, &d);
    assert_false(b.failed);
    assert_non_null(strstr(text, ",\"/a,\"\"b\"\"\n\x01\xff.html\","));
    assert_non_null(
        strstr(text, ",issued,,::1,5,,s1,view,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,7\r\n"));

    jbuf_init(&b, text, sizeof text);
    export_item_json(&b, &d, false);
    assert_false(b.failed);
    assert_non_null(strstr(text, "\"content\":\"/a,\\\"b\\\"\\u000a\\u0001\xef\xbf\xbd.html\""));
    assert_non_null(strstr(text, "\"client\":null"));
    assert_non_null(strstr(text, "\"confirmed_at_ms\":null"));
    assert_non_null(strstr(text, "\"kind\":\"view\",\"delivered\":{\"sha256\":"
                                 "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"size\":7}"));

    char small[16];
    jbuf_init(&b, small, sizeof small);
    export_item_json(&b, &d, true);
    assert_true(b.failed); /* reported, never cut silently */

    unsigned st = 0;
    assert_int_equal(export_parse_status("pending,corrupted", &st), 0);
    assert_int_equal(st, LEDGER_STATUS_PENDING | LEDGER_STATUS_BIT(LEDGER_CORRUPTED));
    assert_int_equal(export_parse_status("done", &st), -1);
    assert_int_equal(export_parse_status(",", &st), -1);
    unsigned kinds = 0;
    assert_int_equal(export_parse_kind("page,download", &kinds), 0);
    assert_int_equal(kinds,
                     LEDGER_KIND_BIT(LEDGER_KIND_PAGE) | LEDGER_KIND_BIT(LEDGER_KIND_DOWNLOAD));
    assert_int_equal(export_parse_kind("tracked", &kinds), 0);
    assert_int_equal(kinds, LEDGER_KIND_BIT(LEDGER_KIND_TRACKED));
    assert_int_equal(export_parse_kind("pages", &kinds), -1);
    assert_int_equal(export_parse_kind(",", &kinds), -1);
    assert_int_equal(export_parse_kind("", &kinds), -1);
}

static void test_pg_unavailable(void **state)
{
    (void)state;
    printf("# %s\n", pgtest_unavailable());
    skip();
}

#define BACKEND_TESTS(setup)                                                                       \
    cmocka_unit_test_setup_teardown(test_summary, setup, teardown),                                \
        cmocka_unit_test_setup_teardown(test_content_stats, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(test_client_stats, setup, teardown),                       \
        cmocka_unit_test_setup_teardown(test_series, setup, teardown),                             \
        cmocka_unit_test_setup_teardown(test_query, setup, teardown),                              \
        cmocka_unit_test_setup_teardown(test_long_query, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(test_query_plans_keep_rows, setup, teardown)

int main(void)
{
    const struct CMUnitTest common[] = {
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_renderings),
    };
    const struct CMUnitTest sqlite[] = {BACKEND_TESTS(setup_sqlite)};
    const struct CMUnitTest pg[] = {BACKEND_TESTS(setup_pg)};
    const struct CMUnitTest pg_missing[] = {cmocka_unit_test(test_pg_unavailable)};
    int failed = cmocka_run_group_tests_name("export", common, NULL, NULL);
    failed += cmocka_run_group_tests_name("ledger_query_sqlite", sqlite, NULL, NULL);
    if (pgtest_unavailable() == NULL)
        failed += cmocka_run_group_tests_name("ledger_query_postgresql", pg, NULL, NULL);
    else
        failed += cmocka_run_group_tests_name("ledger_query_postgresql", pg_missing, NULL, NULL);
    return failed;
}
