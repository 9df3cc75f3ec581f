/*
 * What only the PostgreSQL ledger does: connection strings and passwords,
 * migrations under a lock, monthly partitions, several connections racing
 * for one confirmation, lost connections, a batch with one bad row, an
 * issuance written with the next event of its ID as one row, and reads
 * that use indexes. On the server of tests/with-postgres.
 */
#include "daemon/ledger.h"
#include "daemon/ledger_pg.h"
#include "pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_A      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define CLIENT_B      "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define TEST_SQL_MAX  1024
#define TEST_PLAN_MAX 8192

typedef struct fixture {
    char db[PGTEST_NAME_MAX];
    char url[PGTEST_URL_MAX];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(pgtest_create(f->db, f->url, false), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int rc = pgtest_drop(f->db);
    free(f);
    return rc;
}

static ledger *open_ok(const char *url, bool read_only)
{
    char err[LEDGER_ERR_MAX];
    ledger *lg = ledger_open(url, NULL, read_only, err, sizeof err);
    if (lg == NULL)
        fail_msg("open: %s", err);
    return lg;
}

/* An ID whose UUIDv7 time is ms; n makes it unique. */
static void id_at(char out[UUID7_STR_LEN + 1], uint64_t ms, unsigned n)
{
    snprintf(out, UUID7_STR_LEN + 1, "%08x-%04x-7000-8000-%012x", (unsigned)(ms >> 16 & 0xffffffff),
             (unsigned)(ms & 0xffff), n & 0xffffff);
}

static void fill_issue(ledger_event *ev, uint64_t ms, unsigned n)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = LEDGER_EVENT_ISSUE;
    id_at(ev->row.id, ms, n);
    snprintf(ev->row.path, sizeof ev->row.path, "/p/%u.html", n % 5);
    memset(ev->row.sha256, 0x42, 32);
    ev->row.size = 10 + n;
    snprintf(ev->row.server, sizeof ev->row.server, "node-1");
    snprintf(ev->row.client_addr, sizeof ev->row.client_addr, "192.0.2.7");
    ev->row.issued_ms = ms;
    ev->row.status = LEDGER_ISSUED;
}

static void fill_confirm(ledger_event *ev, uint64_t ms, unsigned n, const char *client)
{
    fill_issue(ev, ms, n);
    ev->kind = LEDGER_EVENT_CONFIRM;
    ev->row.status = LEDGER_CONFIRMED;
    snprintf(ev->row.client, sizeof ev->row.client, "%s", client);
    ev->row.bound_ms = ms + 1;
    ev->row.confirmed_ms = ms + 2;
    snprintf(ev->row.receipt, sizeof ev->row.receipt, "receipt.%s.%u", client, n);
}

static int write_one(ledger *lg, const ledger_event *ev, ledger_result *res)
{
    ledger_batch_entry e = {.event = ev, .result = res};
    if (ledger_write(lg, &e, 1) != 0)
        return -1;
    return e.status;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static long query_number(const char *db, const char *sql)
{
    char out[64];
    if (pgtest_exec(db, sql, out, sizeof out) != 0)
        fail_msg("query failed: %s", sql);
    return strtol(out, NULL, 10);
}

/* ---- connection strings and passwords ---- */

static void test_connection_strings(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    char url[PGTEST_URL_MAX + 128];
    const char *host = getenv("RECEIPT_TEST_PG_HOST");
    const char *port = getenv("RECEIPT_TEST_PG_PORT");
    const char *password = getenv("RECEIPT_TEST_PG_PASSWORD");
    assert_non_null(password);
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s OWNER TO receipt_pw", f->db);
    assert_int_equal(pgtest_exec("postgres", sql, NULL, 0), 0);

    /* A password in the URL: used, never shown. The schema is its. */
    snprintf(url, sizeof url, "postgresql://receipt_pw:%s@127.0.0.1:%s/%s", password, port, f->db);
    ledger *lg = open_ok(url, false);
    assert_null(strstr(ledger_where(lg), password));
    assert_non_null(strstr(ledger_where(lg), "receipt_pw@127.0.0.1"));
    ledger_close(lg);

    snprintf(url, sizeof url, "postgresql://receipt_pw:wrong-%s@127.0.0.1:%s/%s", password, port,
             f->db);
    assert_null(ledger_open(url, NULL, true, err, sizeof err));
    assert_non_null(strstr(err, "password authentication failed"));
    assert_null(strstr(err, password));
    assert_non_null(strstr(err, "receipt_pw@127.0.0.1"));

    /* The three forms. */
    lg = open_ok(f->url, false);
    assert_string_equal(ledger_backend(lg), "postgresql");
    assert_non_null(strstr(ledger_where(lg), f->db));
    ledger_close(lg);
    snprintf(url, sizeof url, "postgres://receipt@/%s?host=%s&port=%s", f->db, host, port);
    ledger_close(open_ok(url, true));
    snprintf(url, sizeof url, "host=%s port=%s user=receipt dbname=%s", host, port, f->db);
    ledger_close(open_ok(url, true));

    /* From the environment, and from a password file. */
    snprintf(url, sizeof url, "postgresql://receipt_pw@127.0.0.1:%s/%s", port, f->db);
    assert_null(ledger_open(url, NULL, true, err, sizeof err));
    setenv("PGPASSWORD", password, 1);
    ledger_close(open_ok(url, true));
    unsetenv("PGPASSWORD");
    char dir[] = "/tmp/test_ledger_pg.XXXXXX";
    char file[64];
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/pgpass", dir);
    FILE *pass = fopen(file, "w");
    assert_non_null(pass);
    fprintf(pass, "127.0.0.1:%s:*:receipt_pw:%s\n", port, password);
    fclose(pass);
    chmod(file, 0600);
    setenv("PGPASSFILE", file, 1);
    ledger_close(open_ok(url, false));
    unsetenv("PGPASSFILE");
    unlink(file);
    rmdir(dir);

    /* A string libpq cannot parse is not echoed: it may hold a password. */
    assert_null(ledger_open("postgresql://someone:se%zzcret@[::1/db", NULL, true, err, sizeof err));
    assert_null(strstr(err, "cret"));
    assert_null(ledger_open("host=127.0.0.1 password='s3cr3t", NULL, true, err, sizeof err));
    assert_null(strstr(err, "s3cr3t"));
    assert_non_null(strstr(err, "cannot be parsed"));

    /* Nothing listening: a clear error, soon. */
    assert_null(ledger_open("postgresql://receipt@127.0.0.1:1/none", NULL, true, err, sizeof err));
    assert_non_null(strstr(err, "127.0.0.1"));
    assert_non_null(strstr(err, "connect"));
}

/* ---- schema ---- */

typedef struct opener {
    const char *url;
    ledger *lg;
    char err[LEDGER_ERR_MAX];
} opener;

static void *open_writable(void *arg)
{
    opener *o = arg;
    o->lg = ledger_open(o->url, NULL, false, o->err, sizeof o->err);
    return NULL;
}

static void test_nodes_start_together(void **state)
{
    fixture *f = *state;
    enum { NODES = 8 };
    pthread_t threads[NODES];
    opener open[NODES];
    for (int i = 0; i < NODES; i++) {
        open[i] = (opener){.url = f->url};
        assert_int_equal(pthread_create(&threads[i], NULL, open_writable, &open[i]), 0);
    }
    for (int i = 0; i < NODES; i++) {
        pthread_join(threads[i], NULL);
        if (open[i].lg == NULL)
            fail_msg("node %d: %s", i, open[i].err);
    }
    for (int i = 0; i < NODES; i++)
        ledger_close(open[i].lg);
    /* Each step ran once. */
    assert_int_equal(query_number(f->db, "SELECT count(*) FROM ledger_schema"), 5);
    assert_int_equal(query_number(f->db, "SELECT max(version) FROM ledger_schema"), 5);
}

static void test_schema_versions(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    /* Read-only never makes the schema. */
    assert_null(ledger_open(f->url, NULL, true, err, sizeof err));
    assert_non_null(strstr(err, "migrate"));
    assert_int_equal(query_number(f->db, "SELECT count(*) FROM pg_tables WHERE tablename "
                                         "LIKE 'deliveries%'"),
                     0);
    ledger_close(open_ok(f->url, false));
    ledger_close(open_ok(f->url, true));
    assert_int_equal(pgtest_exec(f->db, "INSERT INTO ledger_schema (version) VALUES (99)", NULL, 0),
                     0);
    assert_null(ledger_open(f->url, NULL, false, err, sizeof err));
    assert_non_null(strstr(err, "newer"));
    assert_null(ledger_open(f->url, NULL, true, err, sizeof err));
    assert_non_null(strstr(err, "newer"));
}

/*
 * A ledger of schema 1 (before kinds) migrates: its rows, in every
 * partition, are tracked and delivered what they stored; new rows keep
 * their kind and the bytes they sent.
 */
static void test_migrates_to_kinds(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    ledger_event ev;
    ledger_delivery row;
    uint64_t t = now_ms();

    ledger *lg = open_ok(f->url, false);
    assert_int_equal(ledger_prepare(lg, t, t), 1);
    ledger_close(lg);
    assert_int_equal(pgtest_exec(f->db,
                                 "DROP TRIGGER deliveries_rollup_inserted ON deliveries;"
                                 "DROP TRIGGER deliveries_rollup_updated ON deliveries;"
                                 "DROP TABLE rollup_status, rollup_minutes, rollup_latest;"
                                 "DROP FUNCTION rollup_inserted(), rollup_updated(),"
                                 " rollup_compact(), rollup_detach(regclass);"
                                 "ALTER TABLE deliveries DROP COLUMN kind,"
                                 " DROP COLUMN delivered_sha256, DROP COLUMN delivered_size;"
                                 "DROP TABLE log_entries, log_tiles, log_checkpoints;"
                                 "DELETE FROM ledger_schema WHERE version >= 2;",
                                 NULL, 0),
                     0);
    char sql[TEST_SQL_MAX], old[UUID7_STR_LEN + 1];
    id_at(old, t, 1);
    snprintf(sql, sizeof sql,
             "INSERT INTO deliveries (id, path, sha256, size, server, client_addr, issued_ms,"
             " status) VALUES ('%s', '/old.bin', decode(repeat('ab', 32), 'hex'), 77, 'site',"
             " '192.0.2.1', %llu, 'issued')",
             old, (unsigned long long)t);
    assert_int_equal(pgtest_exec(f->db, sql, NULL, 0), 0);
    assert_null(ledger_open(f->url, NULL, true, err, sizeof err));
    assert_non_null(strstr(err, "migrate"));
    lg = open_ok(f->url, false);
    assert_int_equal(query_number(f->db, "SELECT max(version) FROM ledger_schema"), 5);
    assert_int_equal(query_number(f->db, "SELECT count(*) FROM deliveries WHERE kind = 'tracked'"
                                         " AND delivered_sha256 IS NULL"),
                     1);
    ledger_summary s;
    assert_int_equal(ledger_summary_read(lg, &s), 0);
    assert_int_equal(s.kinds[LEDGER_KIND_TRACKED].deliveries, 1);
    assert_int_equal(ledger_get(lg, old, &row), 1);
    assert_int_equal(row.kind, LEDGER_KIND_TRACKED);
    assert_int_equal(row.delivered_size, 77);
    assert_memory_equal(row.delivered_sha256, row.sha256, 32);

    fill_issue(&ev, t, 9);
    ev.row.kind = LEDGER_KIND_PAGE;
    memset(ev.row.delivered_sha256, 0x5d, 32);
    ev.row.delivered_size = ev.row.size + 48;
    assert_int_equal(write_one(lg, &ev, NULL), 0);
    assert_int_equal(ledger_get(lg, ev.row.id, &row), 1);
    assert_int_equal(row.kind, LEDGER_KIND_PAGE);
    assert_int_equal(row.delivered_size, ev.row.size + 48);
    assert_int_equal(row.delivered_sha256[0], 0x5d);
    ledger_close(lg);
}

/* ---- partitions ---- */

#define TABLE_NAME_MAX 64

static void month_name(uint64_t ms, char out[TABLE_NAME_MAX])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, TABLE_NAME_MAX, "deliveries_%04d_%02d", tm.tm_year + 1900, tm.tm_mon + 1);
}

static long rows_in(const char *db, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    return query_number(db, sql);
}

static bool partition_exists(const char *db, const char *name)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_inherits WHERE inhparent = 'deliveries'::regclass"
             " AND inhrelid = to_regclass('%s')",
             name);
    return query_number(db, sql) == 1;
}

static void test_partitions(void **state)
{
    fixture *f = *state;
    char name[TABLE_NAME_MAX];
    ledger_event ev;
    ledger_delivery row;
    const uint64_t day = 86400000ull;
    const uint64_t march_2023 = 1678838400000ull; /* 2023-03-15T00:00:00Z */
    const uint64_t june_2024 = 1718409600000ull;  /* 2024-06-15T00:00:00Z */

    /* What receiptd does at start: this month and the next LEDGER_MONTHS_AHEAD. */
    ledger *lg = open_ok(f->url, false);
    uint64_t now = now_ms();
    month_name(now, name);
    assert_false(partition_exists(f->db, name)); /* opening alone makes none */
    assert_true(ledger_prepare(lg, now, now + (uint64_t)LEDGER_MONTHS_AHEAD * 31 * day) >= 3);
    for (int i = 0; i <= LEDGER_MONTHS_AHEAD; i++) {
        month_name(now + (uint64_t)i * 30 * day, name);
        assert_true(partition_exists(f->db, name));
    }
    month_name(now + (uint64_t)(LEDGER_MONTHS_AHEAD + 2) * 31 * day, name);
    assert_false(partition_exists(f->db, name));

    /* A row of a month without a partition goes to the default one... */
    fill_issue(&ev, march_2023, 1);
    assert_int_equal(write_one(lg, &ev, NULL), 0);
    assert_int_equal(rows_in(f->db, "deliveries_default"), 1);
    /* ...and moves into its month's once that is made. */
    assert_int_equal(ledger_prepare(lg, march_2023, march_2023), 1);
    assert_int_equal(ledger_prepare(lg, march_2023, march_2023), 0);
    assert_int_equal(rows_in(f->db, "deliveries_default"), 0);
    assert_int_equal(rows_in(f->db, "deliveries_2023_03"), 1);
    assert_int_equal(ledger_get(lg, ev.row.id, &row), 1);
    /* New rows of the month go there directly. */
    fill_issue(&ev, march_2023 + day, 2);
    assert_int_equal(write_one(lg, &ev, NULL), 0);
    assert_int_equal(rows_in(f->db, "deliveries_2023_03"), 2);

    /* A range: every month in it. */
    assert_int_equal(ledger_prepare(lg, june_2024, june_2024 + 70 * day), 3);
    assert_true(partition_exists(f->db, "deliveries_2024_08"));

    /* A partition of the operator's own making, overlapping a month: left alone. */
    assert_int_equal(pgtest_exec(f->db,
                                 "CREATE TABLE mine PARTITION OF deliveries FOR VALUES FROM"
                                 " ('01860000-0000-0000-0000-000000000000') TO"
                                 " ('01861000-0000-0000-0000-000000000000')",
                                 NULL, 0),
                     0);
    uint64_t in_mine = 0x01860800ull << 16;
    assert_int_equal(ledger_prepare(lg, in_mine, in_mine), 0);
    fill_issue(&ev, in_mine, 3);
    assert_int_equal(write_one(lg, &ev, NULL), 0);
    assert_int_equal(rows_in(f->db, "mine"), 1);

    /* A detached month stays detached: its name still exists. */
    assert_int_equal(
        pgtest_exec(f->db, "ALTER TABLE deliveries DETACH PARTITION deliveries_2024_07", NULL, 0),
        0);
    assert_int_equal(ledger_prepare(lg, june_2024, june_2024 + 70 * day), 0);
    assert_false(partition_exists(f->db, "deliveries_2024_07"));
    ledger_close(lg);
}

/* ---- what PostgreSQL cannot store as it is ---- */

static void test_invalid_utf8(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_delivery row;
    ledger *lg = open_ok(f->url, false);
    fill_issue(&ev, now_ms(), 1);
    snprintf(ev.row.user_agent, sizeof ev.row.user_agent, "agent/\xff\xfe 1 \xc3\xa9");
    assert_int_equal(write_one(lg, &ev, NULL), 0);
    assert_int_equal(ledger_get(lg, ev.row.id, &row), 1);
    assert_string_equal(row.user_agent, "agent/\xef\xbf\xbd\xef\xbf\xbd 1 \xc3\xa9");
    ledger_close(lg);
}

/*
 * A row the database refuses for a rule the ledger does not know (here an
 * operator's CHECK): that event alone is refused, the batch goes in.
 */
static void test_one_bad_row(void **state)
{
    fixture *f = *state;
    ledger_event ev[4];
    ledger_result res[4];
    ledger_batch_entry e[4];
    uint64_t t = now_ms();
    ledger *lg = open_ok(f->url, false);
    assert_int_equal(pgtest_exec(f->db,
                                 "ALTER TABLE deliveries ADD CONSTRAINT no_poison"
                                 " CHECK (path <> '/poison')",
                                 NULL, 0),
                     0);
    fill_issue(&ev[0], t, 1);
    fill_issue(&ev[1], t, 2);
    snprintf(ev[1].row.path, sizeof ev[1].row.path, "/poison");
    fill_confirm(&ev[2], t, 3, CLIENT_A);
    fill_issue(&ev[3], t, 4);
    ev[3].row.id[2] = 'X'; /* refused before it is sent */
    for (int i = 0; i < 4; i++)
        e[i] = (ledger_batch_entry){.event = &ev[i], .result = &res[i]};
    assert_int_equal(ledger_write(lg, e, 4), 0);
    assert_int_equal(e[0].status, 0);
    assert_int_equal(e[1].status, LEDGER_APPLY_EVENT_FAILED);
    assert_non_null(strstr(e[1].why, "no_poison"));
    assert_int_equal(e[2].status, 0);
    assert_int_equal(res[2].outcome, LEDGER_APPLIED);
    assert_string_equal(res[2].row.receipt, ev[2].row.receipt);
    assert_int_equal(e[3].status, LEDGER_APPLY_EVENT_FAILED);
    assert_non_null(strstr(e[3].why, "UUID"));
    assert_int_equal(ledger_count(lg), 2);
    ledger_close(lg);
}

/* ---- several nodes ---- */

enum { RACE_IDS = 200 };

/* ---- an issuance and the next event of its ID in one batch ---- */

#define MERGE_CASES 10

/*
 * Case c's events for delivery n: an issuance (issued, or bound from the
 * start as a device's), the next event (a binding or a confirmation, by the
 * same client or another), and for some cases a third; *count says how many.
 */
static void merge_case(int c, uint64_t t, unsigned n, ledger_event ev[3], size_t *count)
{
    bool issued_bound = c == 1 || c == 2 || c == 5;
    fill_issue(&ev[0], t, n);
    if (issued_bound) {
        ev[0].row.status = LEDGER_BOUND;
        snprintf(ev[0].row.client, sizeof ev[0].row.client, "%s", CLIENT_A);
        snprintf(ev[0].row.bound_addr, sizeof ev[0].row.bound_addr, "198.51.100.1");
        ev[0].row.bound_ms = t;
        snprintf(ev[0].row.bound_node, sizeof ev[0].row.bound_node, "node-1");
    }
    snprintf(ev[0].row.issued_node, sizeof ev[0].row.issued_node, "node-1");
    snprintf(ev[0].row.user_agent, sizeof ev[0].row.user_agent, "agent/%u", n);
    ev[0].row.kind = LEDGER_KIND_PAGE;
    ev[0].row.delivered_size = ev[0].row.size + 7;
    memset(ev[0].row.delivered_sha256, 0x17, 32);

    const char *client = c == 2 ? CLIENT_B : CLIENT_A;
    fill_confirm(&ev[1], t, n, client);
    /* What the later event says of the issuance is not what the row keeps. */
    snprintf(ev[1].row.path, sizeof ev[1].row.path, "/elsewhere");
    snprintf(ev[1].row.client_addr, sizeof ev[1].row.client_addr, "203.0.113.9");
    snprintf(ev[1].row.bound_addr, sizeof ev[1].row.bound_addr, "203.0.113.9");
    snprintf(ev[1].row.bound_node, sizeof ev[1].row.bound_node, "node-2");
    snprintf(ev[1].row.confirmed_node, sizeof ev[1].row.confirmed_node, "node-2");
    snprintf(ev[1].row.confirm_addr, sizeof ev[1].row.confirm_addr, "203.0.113.9");
    ev[1].row.received_has_sha256 = true;
    memset(ev[1].row.received_sha256, 0x42, 32);
    ev[1].row.received_size = ev[1].row.size;
    ev[1].row.received_at_ms = t + 3;
    if (c == 3 || c == 5) {
        ev[1].kind = LEDGER_EVENT_BIND; /* c == 5: a binding of a bound row, no merge */
        ev[1].row.status = LEDGER_BOUND;
    }
    if (c == 4) {
        ev[1].row.status = LEDGER_CORRUPTED;
        memset(ev[1].row.received_sha256, 0x43, 32);
    }
    *count = 2;
    if (c >= 6 && c <= 8) {
        /* A third event: the same client again, another client, a binding. */
        fill_confirm(&ev[2], t, n, c == 6 ? CLIENT_A : CLIENT_B);
        if (c == 8) {
            ev[2].kind = LEDGER_EVENT_BIND;
            ev[2].row.status = LEDGER_BOUND;
        }
        *count = 3;
    }
    if (c == 9) { /* a binding, then the confirmation by its client */
        ev[1].kind = LEDGER_EVENT_BIND;
        ev[1].row.status = LEDGER_BOUND;
        fill_confirm(&ev[2], t, n, CLIENT_A);
        *count = 3;
    }
}

/* Two rows alike but for their IDs. */
static void assert_rows_alike(const ledger_delivery *a, const ledger_delivery *b)
{
    ledger_delivery copy = *b;
    memcpy(copy.id, a->id, sizeof copy.id);
    if (memcmp(a, &copy, sizeof copy) != 0)
        fail_msg("rows %s and %s differ (status %d/%d, client '%s'/'%s', bound '%s'/'%s' %" PRIu64
                 "/%" PRIu64 ", receipt '%s'/'%s', path '%s'/'%s')",
                 a->id, b->id, a->status, b->status, a->client, b->client, a->bound_addr,
                 b->bound_addr, a->bound_ms, b->bound_ms, a->receipt, b->receipt, a->path, b->path);
}

/*
 * Each case written two ways: every event in a batch of its own, and all of
 * a case's events in one batch (where the issuance and the next event are
 * one row). Rows, outcomes and answers are the same either way; and so
 * when the issuance was committed already (the row is there: the merged
 * row's insert does nothing), or the delivery was confirmed already.
 */
static void test_issuance_merged_with_next_event(void **state)
{
    fixture *f = *state;
    ledger *lg = open_ok(f->url, false);
    uint64_t t = now_ms();
    for (int c = 0; c < MERGE_CASES; c++) {
        for (int before = 0; before < 3; before++) {
            /* before: 0 nothing, 1 the issuance, 2 the issuance and a
             * confirmation by CLIENT_B, committed ahead of both ways. */
            ledger_event apart[3], together[3], first[3];
            ledger_result apart_res[3], together_res[3], first_res;
            ledger_batch_entry e[3];
            size_t count;
            unsigned n = (unsigned)(c * 10 + before) * 2;
            /* The same events but for the delivery's ID. */
            merge_case(c, t, n, apart, &count);
            merge_case(c, t, n, together, &count);
            for (size_t i = 0; i < count; i++)
                id_at(together[i].row.id, t, n + 1);
            for (unsigned k = 0; k < 2 && before > 0; k++) {
                size_t ignored;
                merge_case(c, t, n, first, &ignored);
                fill_confirm(&first[1], t, n, CLIENT_B);
                id_at(first[0].row.id, t, n + k);
                id_at(first[1].row.id, t, n + k);
                assert_int_equal(write_one(lg, &first[0], &first_res), 0);
                if (before == 2)
                    assert_int_equal(write_one(lg, &first[1], &first_res), 0);
            }
            for (size_t i = 0; i < count; i++)
                assert_int_equal(write_one(lg, &apart[i], &apart_res[i]), 0);
            for (size_t i = 0; i < count; i++)
                e[i] = (ledger_batch_entry){.event = &together[i], .result = &together_res[i]};
            assert_int_equal(ledger_write(lg, e, count), 0);

            ledger_delivery a, b;
            assert_int_equal(ledger_get(lg, apart[0].row.id, &a), 1);
            assert_int_equal(ledger_get(lg, together[0].row.id, &b), 1);
            assert_rows_alike(&a, &b);
            for (size_t i = 0; i < count; i++) {
                assert_int_equal(e[i].status, 0);
                if (apart_res[i].outcome != together_res[i].outcome)
                    fail_msg("case %d (before %d), event %zu: outcome %d apart, %d together", c,
                             before, i, apart_res[i].outcome, together_res[i].outcome);
                assert_int_equal(e[i].outcome, together_res[i].outcome);
                if (together[i].kind == LEDGER_EVENT_CONFIRM)
                    assert_rows_alike(&apart_res[i].row, &together_res[i].row);
            }
            /* The issuance made the row exactly when nothing was there. */
            assert_int_equal(together_res[0].outcome,
                             before == 0 ? LEDGER_APPLIED : LEDGER_IGNORED);
        }
    }
    ledger_close(lg);
}

typedef struct racer {
    ledger *lg;
    const char *client;
    pthread_barrier_t *start;
    ledger_event ev[RACE_IDS];
    ledger_result res[RACE_IDS];
    ledger_batch_entry e[RACE_IDS];
    int rc;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->start);
    r->rc = ledger_write(r->lg, r->e, RACE_IDS);
    return NULL;
}

/* Two nodes confirm the same deliveries at once: one receipt each. */
static void test_first_confirmation_wins(void **state)
{
    fixture *f = *state;
    static racer racers[2];
    pthread_t threads[2];
    pthread_barrier_t start;
    uint64_t t = now_ms();

    for (int round = 0; round < 3; round++) {
        pthread_barrier_init(&start, NULL, 2);
        for (int k = 0; k < 2; k++) {
            racer *r = &racers[k];
            r->lg = open_ok(f->url, false);
            r->client = k == 0 ? CLIENT_A : CLIENT_B;
            r->start = &start;
            for (unsigned i = 0; i < RACE_IDS; i++) {
                /* In opposite orders: the database must not care. */
                unsigned n = (unsigned)round * 1000 + (k == 0 ? i : RACE_IDS - 1 - i);
                fill_confirm(&r->ev[i], t, n, r->client);
                if (round == 2 && n % 2 == (unsigned)k)
                    r->ev[i].kind = LEDGER_EVENT_BIND; /* binds racing confirms too */
                r->e[i] = (ledger_batch_entry){.event = &r->ev[i], .result = &r->res[i]};
            }
        }
        for (int k = 0; k < 2; k++)
            assert_int_equal(pthread_create(&threads[k], NULL, race, &racers[k]), 0);
        for (int k = 0; k < 2; k++)
            pthread_join(threads[k], NULL);
        pthread_barrier_destroy(&start);

        assert_int_equal(racers[0].rc, 0);
        assert_int_equal(racers[1].rc, 0);
        for (unsigned i = 0; i < RACE_IDS; i++) {
            ledger_delivery row;
            const ledger_result *a = &racers[0].res[i];
            const ledger_result *b = &racers[1].res[RACE_IDS - 1 - i];
            assert_int_equal(racers[0].e[i].status, 0);
            assert_int_equal(racers[1].e[RACE_IDS - 1 - i].status, 0);
            assert_int_equal(ledger_get(racers[0].lg, racers[0].ev[i].row.id, &row), 1);
            if (racers[0].ev[i].kind != racers[1].ev[RACE_IDS - 1 - i].kind) {
                /* One binds, the other confirms: the confirmation stands,
                 * whichever came first, with its own client. */
                bool a_confirms = racers[0].ev[i].kind == LEDGER_EVENT_CONFIRM;
                assert_int_equal((a_confirms ? a : b)->outcome, LEDGER_APPLIED);
                assert_int_equal(row.status, LEDGER_CONFIRMED);
                assert_string_equal(row.client, a_confirms ? CLIENT_A : CLIENT_B);
                assert_string_equal(row.receipt, (a_confirms ? a : b)->row.receipt);
                continue;
            }
            bool a_won = a->outcome == LEDGER_APPLIED;
            assert_true(a_won != (b->outcome == LEDGER_APPLIED));
            assert_int_equal((a_won ? b : a)->outcome, LEDGER_CONFLICT);
            assert_string_equal(row.client, a_won ? CLIENT_A : CLIENT_B);
            assert_string_equal(row.receipt, (a_won ? a : b)->row.receipt);
            assert_string_equal((a_won ? b : a)->row.receipt, row.receipt);
        }
        ledger_close(racers[0].lg);
        ledger_close(racers[1].lg);
    }
}

/* ---- lost connections ---- */

static void kill_connections(const fixture *f)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
             " WHERE datname = '%s' AND application_name = 'receiptd'",
             f->db);
    assert_true(query_number("postgres", sql) >= 1);
}

static void test_connection_lost(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_delivery row;
    uint64_t t = now_ms();
    ledger *lg = open_ok(f->url, false);
    ledger *reader = open_ok(f->url, true);
    fill_issue(&ev, t, 1);
    assert_int_equal(write_one(lg, &ev, NULL), 0);

    /* A read is tried again on a new connection. */
    kill_connections(f);
    assert_int_equal(ledger_get(reader, ev.row.id, &row), 1);
    assert_int_equal(ledger_count(lg), 1);

    /* A write on a lost connection fails (the writer tries the batch
     * again); the next one connects anew. */
    kill_connections(f);
    fill_issue(&ev, t, 2);
    assert_int_equal(write_one(lg, &ev, NULL), -1);
    assert_non_null(strstr(ledger_error(lg), "ledger"));
    assert_int_equal(write_one(lg, &ev, NULL), 0);
    assert_int_equal(ledger_count(reader), 2);

    /* A query's cursor on a lost connection: an error, then it works again. */
    ledger_filter flt = {0};
    kill_connections(f);
    ledger_cursor *cur = ledger_query(reader, &flt);
    assert_non_null(cur);
    assert_int_equal(ledger_cursor_next(cur, &row), 1);
    ledger_cursor_free(cur);
    ledger_close(lg);
    ledger_close(reader);
}

/* A lock held elsewhere bounds the wait: the batch fails, nothing hangs. */
static void test_lock_timeout(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger *lg = open_ok(f->url, false);
    assert_int_equal(ledger_set_lock_timeout(lg, 100), 0);
    ledger *blocker = open_ok(f->url, false);
    uint64_t t = now_ms();
    assert_int_equal(ledger_begin(blocker), 0);
    fill_issue(&ev, t, 1);
    assert_int_equal(ledger_apply(blocker, &ev, NULL), 0); /* holds the row's key */
    fill_issue(&ev, t, 1);
    ev.kind = LEDGER_EVENT_CONFIRM;
    ev.row.status = LEDGER_CONFIRMED;
    snprintf(ev.row.client, sizeof ev.row.client, CLIENT_A);
    assert_int_equal(write_one(lg, &ev, NULL), -1);
    assert_non_null(strstr(ledger_error(lg), "lock timeout"));
    assert_int_equal(ledger_rollback(blocker), 0);
    assert_int_equal(write_one(lg, &ev, NULL), 0);
    ledger_close(blocker);
    ledger_close(lg);
}

/* ---- reads use indexes ---- */

/*
 * Rows in several months, many paths and clients, most issued: then every
 * filter of the admin API and exports is planned without a sequential scan,
 * paged or streamed.
 */
static void test_reads_use_indexes(void **state)
{
    fixture *f = *state;
    char plan[TEST_PLAN_MAX];
    ledger *lg = open_ok(f->url, false);
    const uint64_t t0 = 1748736000000ull; /* 2025-06-01 */
    assert_int_equal(ledger_prepare(lg, t0, t0 + 100ull * 86400000), 4);
    char sql[TEST_SQL_MAX];
    snprintf(sql, sizeof sql,
             "INSERT INTO deliveries (id, path, sha256, size, server, client_addr, issued_ms,"
             " status, client, bound_ms, confirmed_ms, kind)"
             " SELECT (lpad(to_hex(ms), 12, '0') || '7000' || '8000' || lpad(to_hex(g), 12, '0'))"
             "  ::uuid, '/doc/' || (g %% 200) || '.html', decode(repeat('ab', 32), 'hex'), 100,"
             "  's', '192.0.2.1', ms,"
             "  CASE WHEN g %% 20 = 0 THEN 'confirmed' WHEN g %% 20 = 1 THEN 'bound'"
             "   ELSE 'issued' END,"
             "  CASE WHEN g %% 20 < 2 THEN 'client-' || (g %% 500) END,"
             "  CASE WHEN g %% 20 < 2 THEN ms + 10 END,"
             "  CASE WHEN g %% 20 = 0 THEN ms + 50 END,"
             "  CASE WHEN g %% 10 = 3 THEN 'download' WHEN g %% 50 = 4 THEN 'view'"
             "   ELSE 'page' END"
             " FROM generate_series(1::int8, 60000) g, LATERAL (SELECT %llu + g * 144000 AS ms) t;"
             "ANALYZE deliveries",
             (unsigned long long)t0);
    assert_int_equal(pgtest_exec(f->db, sql, NULL, 0), 0);

    const ledger_filter filters[] = {
        {.limit = 51},
        {.path = "/doc/7.html", .limit = 51},
        {.path = "/doc/7.html"},
        {.client = "client-42", .limit = 51},
        {.client = "client-42"},
        {.statuses = LEDGER_STATUS_BIT(LEDGER_CONFIRMED), .limit = 51},
        {.statuses = LEDGER_STATUS_BIT(LEDGER_CONFIRMED)},
        {.statuses = LEDGER_STATUS_BIT(LEDGER_CORRUPTED)},
        {.statuses = LEDGER_STATUS_PENDING},
        {.statuses = LEDGER_STATUS_BIT(LEDGER_ISSUED), .limit = 51},
        {.statuses = LEDGER_STATUS_BIT(LEDGER_ISSUED)},
        {.statuses = LEDGER_STATUS_BIT(LEDGER_BOUND), .limit = 51},
        {.since_ms = t0 + 40ull * 86400000, .until_ms = t0 + 41ull * 86400000, .limit = 51},
        {.since_ms = t0 + 40ull * 86400000, .until_ms = t0 + 41ull * 86400000},
        {.before_id = "0197a000-0000-7000-8000-000000000000", .limit = 51},
        {.path = "/doc/7.html", .statuses = LEDGER_STATUS_BIT(LEDGER_CONFIRMED), .limit = 51},
        {.kinds = LEDGER_KIND_BIT(LEDGER_KIND_DOWNLOAD), .limit = 51},
        {.kinds = LEDGER_KIND_BIT(LEDGER_KIND_VIEW)},
        {.kinds = LEDGER_KIND_BIT(LEDGER_KIND_PAGE),
         .statuses = LEDGER_STATUS_PENDING,
         .limit = 51},
        {0},
    };
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
        assert_int_equal(ledger_pg_explain(lg, &filters[i], plan, sizeof plan), 0);
        if (strstr(plan, "Index") == NULL)
            fail_msg("filter %zu is not read through an index:\n%s", i, plan);
        /* Empty partitions (months ahead, the default) may be scanned: they
         * hold nothing. No partition with rows may be. */
        for (const char *p = strstr(plan, "Seq Scan on "); p != NULL;
             p = strstr(p + 1, "Seq Scan on ")) {
            char table[64];
            if (sscanf(p, "Seq Scan on %63s", table) != 1)
                fail_msg("unreadable plan line: %s", p);
            if (rows_in(f->db, table) != 0)
                fail_msg("filter %zu scans %s:\n%s", i, table, plan);
        }
    }
    /* The plan of a page by path, for the record (docs/operations.md shows one). */
    assert_int_equal(ledger_pg_explain(lg, &filters[1], plan, sizeof plan), 0);
    printf("# EXPLAIN of a page of /api/deliveries?content=/doc/7.html:\n");
    for (char *line = strtok(plan, "\n"); line != NULL; line = strtok(NULL, "\n"))
        printf("#   %s\n", line);
    ledger_close(lg);
}

/* ---- the rollups, written by two nodes at once ---- */

#define ROLLUP_NODE_BATCHES 40
#define ROLLUP_NODE_BATCH   64
#define ROLLUP_NODE_IDS     2000

typedef struct rollup_node {
    const char *url;
    unsigned seed;
    uint64_t t0;
    pthread_barrier_t *start;
    int failures; /* batches that failed (retried, as the writer does) */
    int lost;     /* batches that never went in */
} rollup_node;

/* One event of a mix over IDs both nodes use: issues, bindings and
 * confirmations of the same deliveries, racing. */
static void node_event(ledger_event *ev, rollup_node *node)
{
    unsigned n = (unsigned)rand_r(&node->seed) % ROLLUP_NODE_IDS;
    unsigned pick = (unsigned)rand_r(&node->seed) % 4;
    const char *client = rand_r(&node->seed) % 2 ? CLIENT_A : CLIENT_B;
    uint64_t t = node->t0 + n * 1000ull;
    if (pick == 0) {
        fill_issue(ev, t, n);
    } else {
        fill_confirm(ev, t, n, client);
        ev->row.confirmed_ms = t + (uint64_t)(rand_r(&node->seed) % 600) * 1000;
        if (pick == 1) {
            ev->kind = LEDGER_EVENT_BIND;
            ev->row.status = LEDGER_BOUND;
        } else if (pick == 2 && rand_r(&node->seed) % 4 == 0) {
            ev->row.status = LEDGER_CORRUPTED;
        }
    }
    ev->row.kind = (ledger_kind)(n % LEDGER_KIND_COUNT);
}

static void *rollup_node_run(void *arg)
{
    rollup_node *node = arg;
    static _Thread_local ledger_event ev[ROLLUP_NODE_BATCH];
    ledger_batch_entry e[ROLLUP_NODE_BATCH];
    char err[LEDGER_ERR_MAX];
    ledger *lg = ledger_open(node->url, NULL, false, err, sizeof err);
    if (lg == NULL) {
        node->lost = -1;
        return NULL;
    }
    pthread_barrier_wait(node->start);
    for (int b = 0; b < ROLLUP_NODE_BATCHES; b++) {
        size_t n = 1 + (size_t)rand_r(&node->seed) % ROLLUP_NODE_BATCH;
        for (size_t i = 0; i < n; i++) {
            node_event(&ev[i], node);
            e[i] = (ledger_batch_entry){.event = &ev[i]};
        }
        int tries = 0;
        while (ledger_write(lg, e, n) != 0 && ++tries < 10)
            node->failures++;
        if (tries == 10)
            node->lost++;
    }
    ledger_close(lg);
    return NULL;
}

/*
 * Two nodes write one ledger at once, over the same deliveries: the
 * rollups the triggers keep equal a recount of the rows, and the summary
 * equals the recount.
 */
static void test_rollups_two_nodes(void **state)
{
    fixture *f = *state;
    pthread_barrier_t start;
    pthread_t threads[2];
    rollup_node nodes[2];
    uint64_t t0 = now_ms() / 60000 * 60000;
    ledger *lg = open_ok(f->url, false);
    assert_true(ledger_prepare(lg, t0, t0 + 3 * 3600000ull) >= 0);
    pthread_barrier_init(&start, NULL, 2);
    for (int i = 0; i < 2; i++) {
        nodes[i] =
            (rollup_node){.url = f->url, .seed = 100u + (unsigned)i, .t0 = t0, .start = &start};
        assert_int_equal(pthread_create(&threads[i], NULL, rollup_node_run, &nodes[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 2; i++)
        assert_int_equal(nodes[i].lost, 0);
    printf("# batches retried: %d and %d\n", nodes[0].failures, nodes[1].failures);

    assert_int_equal(ledger_rollups_check(lg, NULL, NULL), 0);
    ledger_summary s;
    assert_int_equal(ledger_summary_read(lg, &s), 0);
    assert_int_equal(s.deliveries,
                     (uint64_t)query_number(f->db, "SELECT count(*) FROM deliveries"));
    assert_int_equal(s.confirmed, (uint64_t)query_number(f->db, "SELECT count(*) FROM deliveries"
                                                                " WHERE status = 'confirmed'"));
    assert_int_equal(s.corrupted, (uint64_t)query_number(f->db, "SELECT count(*) FROM deliveries"
                                                                " WHERE status = 'corrupted'"));
    assert_int_equal(s.bound, (uint64_t)query_number(f->db, "SELECT count(*) FROM deliveries"
                                                            " WHERE status = 'bound'"));
    assert_true(s.confirmed > 0 && s.bound > 0 && s.pending > s.bound);
    /* The nodes' connections are gone: their slots fold into slot 0, and
     * the figures stay. */
    assert_true(query_number(f->db, "SELECT count(DISTINCT slot) FROM rollup_status") >= 2);
    for (int i = 0; i < 200 && query_number(f->db, "SELECT count(*) FROM rollup_status WHERE"
                                                   " slot IN (SELECT pid FROM pg_stat_activity)");
         i++)
        usleep(25000); /* until the servers' processes of the closed connections ended */
    assert_int_equal(pgtest_exec(f->db, "SELECT rollup_compact()", NULL, 0), 0);
    assert_int_equal(query_number(f->db, "SELECT count(*) FROM rollup_status WHERE slot <> 0"), 0);
    assert_int_equal(query_number(f->db, "SELECT count(*) FROM rollup_minutes WHERE slot <> 0"), 0);
    assert_int_equal(query_number(f->db, "SELECT count(*) FROM rollup_latest WHERE slot <> 0"), 0);
    assert_int_equal(ledger_rollups_check(lg, NULL, NULL), 0);
    ledger_close(lg);
}

/*
 * A transaction left open on one connection, having written rows of every
 * figure the rollups keep (a status and kind, a minute, the latest
 * confirmation), holds up no other connection's batch: each connection
 * adds to the rollups' rows of its own slot, never to a row another holds.
 */
static void test_rollups_open_transaction(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    uint64_t t = now_ms() / 60000 * 60000 + 1000;
    ledger *lg = open_ok(f->url, false);
    assert_true(ledger_prepare(lg, t, t) >= 0);
    assert_int_equal(ledger_set_lock_timeout(lg, 100), 0);
    ledger *other = open_ok(f->url, false);
    assert_int_equal(ledger_begin(other), 0);
    fill_issue(&ev, t, 1);
    assert_int_equal(ledger_apply(other, &ev, NULL), 0);
    fill_confirm(&ev, t, 2, CLIENT_A);
    ev.row.confirmed_ms = t + 500;
    assert_int_equal(ledger_apply(other, &ev, NULL), 0);

    fill_issue(&ev, t, 3);
    assert_int_equal(write_one(lg, &ev, NULL), 0);
    fill_confirm(&ev, t, 4, CLIENT_A);
    ev.row.confirmed_ms = t + 900;
    assert_int_equal(write_one(lg, &ev, NULL), 0);
    fill_confirm(&ev, t, 3, CLIENT_B);
    ev.row.confirmed_ms = t + 700;
    assert_int_equal(write_one(lg, &ev, NULL), 0);

    assert_int_equal(ledger_commit(other), 0);
    assert_int_equal(ledger_rollups_check(lg, NULL, NULL), 0);
    ledger_summary s;
    assert_int_equal(ledger_summary_read(lg, &s), 0);
    assert_int_equal(s.deliveries, 4);
    assert_int_equal(s.confirmed, 3);
    assert_int_equal(s.last_ms, t + 900);
    ledger_close(other);
    ledger_close(lg);
}

/*
 * A month detached as docs/operations.md says leaves the rollups: they
 * equal the rows still attached, the latest confirmation among them too.
 */
static void test_rollups_detach_month(void **state)
{
    fixture *f = *state;
    const uint64_t day = 86400000;
    uint64_t now = now_ms();
    uint64_t old = now - 70 * day;
    char name[TABLE_NAME_MAX], sql[TEST_SQL_MAX];
    ledger_event ev[12];
    ledger_batch_entry e[12];
    ledger *lg = open_ok(f->url, false);
    assert_true(ledger_prepare(lg, old, now) >= 2);
    for (unsigned i = 0; i < 12; i++) {
        uint64_t t = i < 6 ? old : now - 60000;
        if (i % 3 == 0)
            fill_issue(&ev[i], t, i);
        else
            fill_confirm(&ev[i], t, i, CLIENT_A);
        /* The old month's confirmations are the latest. */
        if (i % 3 != 0)
            ev[i].row.confirmed_ms = i < 6 ? now + 1000 + i : now - 30000;
        ev[i].row.kind = (ledger_kind)(i % LEDGER_KIND_COUNT);
        e[i] = (ledger_batch_entry){.event = &ev[i]};
    }
    assert_int_equal(ledger_write(lg, e, 12), 0);
    for (unsigned i = 0; i < 12; i++)
        assert_int_equal(e[i].status, 0);
    assert_int_equal(ledger_rollups_check(lg, NULL, NULL), 0);

    month_name(old, name);
    snprintf(sql, sizeof sql, "SELECT rollup_detach('%s')", name);
    assert_int_equal(pgtest_exec(f->db, sql, NULL, 0), 0);
    assert_int_equal(query_number(f->db, "SELECT count(*) FROM deliveries"), 6);
    assert_int_equal(ledger_rollups_check(lg, NULL, NULL), 0);
    ledger_summary s;
    assert_int_equal(ledger_summary_read(lg, &s), 0);
    assert_int_equal(s.deliveries, 6);
    assert_int_equal(s.confirmed, 4);
    assert_int_equal(s.last_ms, now - 30000);
    /* Not a partition (any more): refused, nothing changed. */
    assert_int_not_equal(pgtest_exec(f->db, sql, NULL, 0), 0);
    assert_int_equal(ledger_rollups_check(lg, NULL, NULL), 0);
    ledger_close(lg);
}

static void test_pg_unavailable(void **state)
{
    (void)state;
    printf("# %s\n", pgtest_unavailable());
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connection_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nodes_start_together, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_to_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_bad_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issuance_merged_with_next_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_confirmation_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollups_open_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_use_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollups_two_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollups_detach_month, setup, teardown),
    };
    const struct CMUnitTest missing[] = {cmocka_unit_test(test_pg_unavailable)};
    if (pgtest_unavailable() != NULL)
        return cmocka_run_group_tests_name("ledger_pg", missing, NULL, NULL);
    return cmocka_run_group_tests_name("ledger_pg", tests, NULL, NULL);
}
