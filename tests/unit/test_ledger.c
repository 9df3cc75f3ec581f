/*
 * The ledger's writes and its open/close rules. Every test of events runs
 * against both backends: SQLite, and PostgreSQL on the server of
 * tests/with-postgres; backend-specific rules have tests of their own here
 * (SQLite) and in test_ledger_pg.c.
 */
#include "daemon/ledger.h"
#include "pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEST_DIR_MAX       64
#define LEDGER_TEST_SCHEMA 8 /* the schema version this receiptd writes */
#define TEST_PATH_MAX      256

typedef struct fixture {
    bool pg;
    char dir[TEST_DIR_MAX];
    char file[TEST_DIR_MAX + 32];
    char db[PGTEST_NAME_MAX];
    char url[PGTEST_URL_MAX];
    ledger *lg;
} fixture;

/* A well-formed, time-ordered ID: n sorts as the IDs do. */
static void make_id(char out[UUID7_STR_LEN + 1], unsigned n)
{
    snprintf(out, UUID7_STR_LEN + 1, "01900000-0000-7000-8000-%012x", n);
}

static void fill_issue(ledger_event *ev, unsigned n)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = LEDGER_EVENT_ISSUE;
    make_id(ev->row.id, n);
    snprintf(ev->row.path, sizeof ev->row.path, "/docs/%u.html", n % 7);
    for (int i = 0; i < 32; i++)
        ev->row.sha256[i] = (uint8_t)(i + n);
    ev->row.size = 1000 + n;
    ev->row.kind = LEDGER_KIND_DEVICE;
    memcpy(ev->row.delivered_sha256, ev->row.sha256, 32);
    ev->row.delivered_size = ev->row.size;
    snprintf(ev->row.server, sizeof ev->row.server, "node-1");
    snprintf(ev->row.client_addr, sizeof ev->row.client_addr, "192.0.2.%u", n % 250);
    snprintf(ev->row.user_agent, sizeof ev->row.user_agent, "test/1.0");
    ev->row.issued_ms = 1764100000000ull + n;
    ev->row.status = LEDGER_ISSUED;
    snprintf(ev->row.issued_node, sizeof ev->row.issued_node, "node-a");
}

static void fill_bind(ledger_event *ev, unsigned n, const char *client)
{
    fill_issue(ev, n);
    ev->kind = LEDGER_EVENT_BIND;
    ev->row.status = LEDGER_BOUND;
    snprintf(ev->row.client, sizeof ev->row.client, "%s", client);
    snprintf(ev->row.bound_addr, sizeof ev->row.bound_addr, "198.51.100.%zu", strlen(client));
    ev->row.bound_ms = ev->row.issued_ms + 10;
    snprintf(ev->row.bound_node, sizeof ev->row.bound_node, "node-b");
}

static void fill_confirm(ledger_event *ev, unsigned n, const char *client, uint64_t at_ms)
{
    fill_bind(ev, n, client);
    ev->kind = LEDGER_EVENT_CONFIRM;
    ev->row.status = LEDGER_CONFIRMED;
    ev->row.confirmed_ms = at_ms;
    snprintf(ev->row.confirm_addr, sizeof ev->row.confirm_addr, "2001:db8::%u", n);
    ev->row.received_has_sha256 = true;
    memcpy(ev->row.received_sha256, ev->row.sha256, 32);
    ev->row.received_size = ev->row.size;
    ev->row.received_at_ms = at_ms - 5;
    snprintf(ev->row.receipt, sizeof ev->row.receipt, "eyJhbGciOiJFUzI1NiJ9.%s.%llu", client,
             (unsigned long long)at_ms);
    snprintf(ev->row.confirmed_node, sizeof ev->row.confirmed_node, "node-c");
}

/* Clients are 43-character thumbprints in real life; the ledger only compares them. */
#define CLIENT_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define CLIENT_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

static int apply_one(ledger *lg, const ledger_event *ev, ledger_result *res)
{
    if (ledger_begin(lg) != 0)
        return -100;
    int rc = ledger_apply(lg, ev, res);
    if (rc != 0)
        return ledger_rollback(lg) == 0 ? rc : -102;
    return ledger_commit(lg) == 0 ? 0 : -101;
}

static int setup_backend(void **state, bool pg)
{
    fixture *f = calloc(1, sizeof *f);
    char err[LEDGER_ERR_MAX];
    assert_non_null(f);
    f->pg = pg;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_ledger.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->file, sizeof f->file, "%s/ledger.sqlite", f->dir);
    if (pg)
        assert_int_equal(pgtest_create(f->db, f->url, false), 0);
    else
        snprintf(f->url, sizeof f->url, "sqlite:%s", f->file);
    f->lg = ledger_open(f->url, NULL, false, err, sizeof err);
    if (f->lg == NULL)
        fail_msg("open: %s", err);
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
    ledger_close(f->lg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    if (f->pg && pgtest_drop(f->db) != 0)
        return -1;
    free(f);
    return 0;
}

static int raw_user_version(const char *file)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void raw_exec(const char *file, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* The text of the deliveries table in sqlite_schema, or "" if unreadable. */
static void raw_table_sql(const char *file, char *out, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    if (sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_schema WHERE name = 'deliveries'", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Inserts a raw row with this status and kind on db; answers SQLite's code. */
static int raw_insert(sqlite3 *db, unsigned n, const char *status, const char *kind)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO deliveries (id, path, sha256, size, server, client_addr, issued_ms,"
             " status, kind) VALUES ('01900000-0000-7000-8000-%012x', '/raw.html', zeroblob(32),"
             " 1, 'raw', '192.0.2.1', 1764000000000, '%s', '%s')",
             n, status, kind);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* ---- names and URLs ---- */

static void test_status_names(void **state)
{
    ledger_status s;
    const char *names[] = {"issued", "bound", "confirmed", "corrupted"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(ledger_status_name((ledger_status)i), names[i]);
        assert_int_equal(ledger_status_parse(names[i], &s), 0);
        assert_int_equal(s, i);
    }
    assert_int_equal(ledger_status_parse("Issued", &s), -1);
    assert_int_equal(ledger_status_parse("", &s), -1);
    assert_int_equal(ledger_status_parse(NULL, &s), -1);
    assert_string_equal(ledger_status_name((ledger_status)42), "unknown");
}

static void test_url_errors(void **state)
{
    char err[LEDGER_ERR_MAX];
    assert_null(ledger_open(NULL, NULL, false, err, sizeof err));
    assert_non_null(strstr(err, "state directory"));
    assert_null(
        ledger_open("mysql://admin:hunter2@db.example/receipt", NULL, false, err, sizeof err));
    assert_non_null(strstr(err, "unknown form"));
    assert_null(strstr(err, "hunter2")); /* never echoed: it may hold a password */
    assert_null(ledger_open("sqlite:", NULL, false, err, sizeof err));
    assert_non_null(strstr(err, "path"));

    /* Which strings are PostgreSQL's: its URLs and libpq key/value strings. */
    assert_true(ledger_url_is_pg("postgresql://db.example/receipt"));
    assert_true(ledger_url_is_pg("POSTGRES://db.example/receipt"));
    assert_true(ledger_url_is_pg("host=db.example dbname=receipt"));
    assert_true(ledger_url_is_pg("  dbname = receipt"));
    assert_false(ledger_url_is_pg("sqlite:/var/lib/x=y.sqlite"));
    assert_false(ledger_url_is_pg("/var/lib/receiptd/ledger.sqlite"));
    assert_false(ledger_url_is_pg("=x"));
    assert_false(ledger_url_is_pg(NULL));
}

/* ---- opening ---- */

static void test_open_default_path(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    struct stat st;

    /* The fixture's ledger is STATE_DIR/ledger.sqlite: the default finds it. */
    ledger *lg = ledger_open(NULL, f->dir, false, err, sizeof err);
    if (lg == NULL)
        fail_msg("open: %s", err);
    assert_string_equal(ledger_backend(lg), "sqlite");
    assert_int_equal(ledger_count(lg), 0);
    ledger_close(lg);

    assert_int_equal(raw_user_version(f->file), LEDGER_TEST_SCHEMA);
    assert_int_equal(stat(f->file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* private, whatever the umask */
}

static void test_reopen_keeps_data(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    ledger_event ev;
    ledger_delivery row;

    fill_issue(&ev, 1);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    ledger_close(f->lg);
    f->lg = ledger_open(f->url, NULL, false, err, sizeof err);
    assert_non_null(f->lg);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_string_equal(row.path, ev.row.path);
    assert_int_equal(ledger_count(f->lg), 1);
    if (!f->pg)
        assert_int_equal(raw_user_version(f->file), LEDGER_TEST_SCHEMA);
}

static void test_read_only(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    ledger_event ev;
    ledger_delivery row;

    fill_issue(&ev, 2);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);

    ledger *ro = ledger_open(f->url, NULL, true, err, sizeof err);
    if (ro == NULL)
        fail_msg("read-only open: %s", err);
    assert_int_equal(ledger_get(ro, ev.row.id, &row), 1);
    assert_int_equal(ledger_count(ro), 1);
    assert_int_equal(ledger_begin(ro), -1);
    assert_non_null(strstr(ledger_error(ro), "read-only"));
    fill_issue(&ev, 3);
    assert_int_equal(ledger_apply(ro, &ev, NULL), LEDGER_APPLY_EVENT_FAILED);
    ledger_batch_entry e = {.event = &ev};
    assert_int_equal(ledger_write(ro, &e, 1), -1);
    /* SQLite has nothing to prepare; PostgreSQL's partitions need a writer. */
    assert_int_equal(ledger_prepare(ro, 0, 1), f->pg ? -1 : 0);
    ledger_close(ro);
    assert_int_equal(ledger_count(f->lg), 1);
}

static void test_read_only_sqlite(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    char path[TEST_PATH_MAX];

    /* A read-only handle never creates a ledger... */
    snprintf(path, sizeof path, "sqlite:%s/missing.sqlite", f->dir);
    assert_null(ledger_open(path, NULL, true, err, sizeof err));
    assert_non_null(strstr(err, "missing.sqlite"));
    assert_non_null(strstr(err, "No such file"));
    /* ...and never migrates one. */
    snprintf(path, sizeof path, "%s/empty.sqlite", f->dir);
    raw_exec(path, "PRAGMA application_id = 1919119476"); /* receiptd's mark, no schema */
    snprintf(path, sizeof path, "sqlite:%s/empty.sqlite", f->dir);
    assert_null(ledger_open(path, NULL, true, err, sizeof err));
    assert_non_null(strstr(err, "migrate"));
}

static void test_bad_paths(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    char path[TEST_PATH_MAX];
    FILE *junk;

    assert_null(
        ledger_open("sqlite:/nonexistent-dir/sub/ledger.sqlite", NULL, false, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent-dir/sub/ledger.sqlite"));
    assert_non_null(strstr(err, "No such file or directory"));

    snprintf(path, sizeof path, "sqlite:%s", f->dir);
    assert_null(ledger_open(path, NULL, false, err, sizeof err));
    assert_non_null(strstr(err, "Is a directory"));

    snprintf(path, sizeof path, "%s/junk.sqlite", f->dir);
    junk = fopen(path, "w");
    assert_non_null(junk);
    for (int i = 0; i < 256; i++)
        fputs("this is not a database. ", junk);
    fclose(junk);
    snprintf(path, sizeof path, "sqlite:%s/junk.sqlite", f->dir);
    assert_null(ledger_open(path, NULL, false, err, sizeof err));
    assert_non_null(strstr(err, "not an SQLite database"));
}

static void test_newer_schema_refused(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];

    ledger_close(f->lg);
    f->lg = NULL;
    raw_exec(f->file, "PRAGMA user_version = 99");
    assert_null(ledger_open(f->url, NULL, false, err, sizeof err));
    assert_non_null(strstr(err, "newer"));
    assert_null(ledger_open(f->url, NULL, true, err, sizeof err));
    assert_non_null(strstr(err, "newer"));
    assert_int_equal(raw_user_version(f->file), 99); /* and left alone */
}

/* Makes a ledger of this schema one of schema 6, as its steps left it: no
 * leaf numbers in the rows, the log's index by delivery, no rollups. */
static void to_schema_6(const char *file)
{
    raw_exec(file, "ALTER TABLE deliveries DROP COLUMN log_leaf;"
                   "ALTER TABLE deliveries DROP COLUMN log_leaf_prev;"
                   "ALTER TABLE deliveries DROP COLUMN log_leaf_prev2;"
                   "CREATE INDEX log_entries_delivery ON log_entries (delivery)"
                   " WHERE delivery IS NOT NULL;"
                   "DROP TABLE rollup_status; DROP TABLE rollup_minutes;"
                   " DROP TABLE rollup_latest;"
                   "PRAGMA user_version = 6");
}

/* A ledger of version 1 (before the node columns) migrates, rows kept; one
 * made before the application_id mark too (adopted, then migrated). */
static void test_migrates_version_1(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    ledger_event ev;
    ledger_delivery row;

    fill_issue(&ev, 5);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    ledger_close(f->lg);
    f->lg = NULL;
    raw_exec(f->file, "DROP TABLE rollup_status; DROP TABLE rollup_minutes;"
                      "DROP TABLE rollup_latest;"
                      "DROP TABLE log_entries; DROP TABLE log_tiles; DROP TABLE log_checkpoints;"
                      "DROP INDEX deliveries_status_kind;"
                      "CREATE INDEX deliveries_status ON deliveries (status);"
                      "ALTER TABLE deliveries DROP COLUMN kind;"
                      "ALTER TABLE deliveries DROP COLUMN delivered_sha256;"
                      "ALTER TABLE deliveries DROP COLUMN delivered_size;"
                      "ALTER TABLE deliveries DROP COLUMN issued_node;"
                      "ALTER TABLE deliveries DROP COLUMN bound_node;"
                      "ALTER TABLE deliveries DROP COLUMN confirmed_node;"
                      "ALTER TABLE deliveries DROP COLUMN log_leaf;"
                      "ALTER TABLE deliveries DROP COLUMN log_leaf_prev;"
                      "ALTER TABLE deliveries DROP COLUMN log_leaf_prev2;"
                      "PRAGMA user_version = 1;"
                      "PRAGMA application_id = 0");
    assert_null(ledger_open(f->url, NULL, true, err, sizeof err));
    assert_non_null(strstr(err, "migrate"));
    f->lg = ledger_open(f->url, NULL, false, err, sizeof err);
    if (f->lg == NULL)
        fail_msg("open: %s", err);
    assert_int_equal(raw_user_version(f->file), LEDGER_TEST_SCHEMA);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_string_equal(row.path, ev.row.path);
    assert_string_equal(row.issued_node, "");
    assert_int_equal(row.kind, LEDGER_KIND_TRACKED);
    fill_confirm(&ev, 5, CLIENT_A, 1764200000000ull);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_string_equal(row.confirmed_node, "node-c");
}

/*
 * A ledger of schema 5 (CHECKs of status and kind as IN lists) migrates to
 * 6: the same rows, the CHECKs as comparisons that accept and refuse the
 * same values, on this connection and on one that was open before.
 */
static void test_migrates_version_5(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    char text[2048];
    ledger_event ev;
    ledger_delivery row;

    fill_issue(&ev, 6);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    fill_confirm(&ev, 7, CLIENT_A, 1764200000000ull);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    ledger_close(f->lg);
    f->lg = NULL;

    /* Back to schema 6 (see to_schema_6()), then to schema 5's text, as
     * SQLite's documented procedure changes it. */
    to_schema_6(f->file);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(f->file, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA schema_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int cookie = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "BEGIN; PRAGMA writable_schema = ON;"
             " UPDATE sqlite_schema SET sql = replace(replace(sql,"
             " 'status = ''issued'' OR status = ''bound'' OR status = ''confirmed'' OR status ="
             " ''corrupted''', 'status IN (''issued'', ''bound'', ''confirmed'', ''corrupted'')'),"
             " 'kind = ''page'' OR kind = ''download'' OR kind = ''view'' OR kind = ''device'' OR"
             " kind = ''tracked''', 'kind IN (''page'', ''download'', ''view'', ''device'',"
             " ''tracked'')') WHERE name = 'deliveries';"
             " PRAGMA schema_version = %d; PRAGMA user_version = 5; COMMIT;"
             " PRAGMA writable_schema = RESET",
             cookie + 1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    raw_table_sql(f->file, text, sizeof text);
    assert_non_null(
        strstr(text, "CHECK (status IN ('issued', 'bound', 'confirmed', 'corrupted'))"));
    assert_non_null(
        strstr(text, "CHECK (kind IN ('page', 'download', 'view', 'device', 'tracked'))"));
    /* This connection stays open across the migration, its schema parsed. */
    assert_int_equal(raw_insert(db, 100, "issued", "page"), SQLITE_OK);

    f->lg = ledger_open(f->url, NULL, false, err, sizeof err);
    if (f->lg == NULL)
        fail_msg("open: %s", err);
    assert_int_equal(raw_user_version(f->file), LEDGER_TEST_SCHEMA);
    raw_table_sql(f->file, text, sizeof text);
    assert_null(strstr(text, " IN ("));
    assert_non_null(strstr(text, "CHECK (status = 'issued' OR status = 'bound' OR status ="
                                 " 'confirmed' OR status = 'corrupted')"));
    assert_non_null(strstr(text, "CHECK (kind = 'page' OR kind = 'download' OR kind = 'view' OR"
                                 " kind = 'device' OR kind = 'tracked')"));

    /* The rows as they were, and the ledger still writes and reads. */
    assert_int_equal(ledger_count(f->lg), 3);
    make_id(row.id, 7);
    assert_int_equal(ledger_get(f->lg, row.id, &row), 1);
    assert_int_equal(row.status, LEDGER_CONFIRMED);
    assert_int_equal(row.kind, LEDGER_KIND_DEVICE);
    fill_issue(&ev, 8);
    ev.row.kind = LEDGER_KIND_VIEW;
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    ev.row.kind = (ledger_kind)LEDGER_KIND_COUNT; /* no such kind: the CHECK refuses it */
    make_id(ev.row.id, 9);
    assert_int_equal(apply_one(f->lg, &ev, NULL), LEDGER_APPLY_EVENT_FAILED);
    ledger_summary s;
    assert_int_equal(ledger_summary_read(f->lg, &s), 0);
    assert_int_equal(s.kinds[LEDGER_KIND_DEVICE].deliveries, 2);
    assert_int_equal(s.kinds[LEDGER_KIND_PAGE].deliveries, 1);
    assert_int_equal(s.kinds[LEDGER_KIND_VIEW].deliveries, 1);
    ledger_close(f->lg);
    f->lg = NULL;

    /* The old connection and a new one: every listed value in, nothing else. */
    sqlite3 *fresh = NULL;
    assert_int_equal(sqlite3_open(f->file, &fresh), SQLITE_OK);
    sqlite3 *conns[] = {db, fresh};
    static const char *const statuses[] = {"issued", "bound", "confirmed", "corrupted"};
    static const char *const kinds[] = {"page", "download", "view", "device", "tracked"};
    unsigned n = 200;
    for (size_t c = 0; c < 2; c++) {
        for (size_t i = 0; i < 4; i++)
            assert_int_equal(raw_insert(conns[c], n++, statuses[i], "page"), SQLITE_OK);
        for (size_t i = 0; i < 5; i++)
            assert_int_equal(raw_insert(conns[c], n++, "issued", kinds[i]), SQLITE_OK);
        assert_int_equal(raw_insert(conns[c], n++, "lost", "page"), SQLITE_CONSTRAINT);
        assert_int_equal(raw_insert(conns[c], n++, "Issued", "page"), SQLITE_CONSTRAINT);
        assert_int_equal(raw_insert(conns[c], n++, "issued", "other"), SQLITE_CONSTRAINT);
        assert_int_equal(raw_insert(conns[c], n++, "issued", ""), SQLITE_CONSTRAINT);
    }
    assert_int_equal(sqlite3_prepare_v2(fresh, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(fresh);
    sqlite3_close(db);
}

/* ---- events ---- */

static void test_issue_and_duplicate(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_result res;
    ledger_delivery row;

    fill_issue(&ev, 10);
    ev.row.user_agent[0] = '\0';
    /* Fields past issuance are ignored on ISSUE. */
    snprintf(ev.row.client, sizeof ev.row.client, CLIENT_A);
    ev.row.confirmed_ms = 5;
    snprintf(ev.row.bound_node, sizeof ev.row.bound_node, "node-x");
    snprintf(ev.row.confirmed_node, sizeof ev.row.confirmed_node, "node-y");
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_APPLIED);

    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_string_equal(row.id, ev.row.id);
    assert_string_equal(row.path, ev.row.path);
    assert_memory_equal(row.sha256, ev.row.sha256, 32);
    assert_int_equal(row.size, ev.row.size);
    assert_string_equal(row.server, "node-1");
    assert_string_equal(row.client_addr, ev.row.client_addr);
    assert_string_equal(row.user_agent, "");
    assert_int_equal(row.issued_ms, ev.row.issued_ms);
    assert_int_equal(row.status, LEDGER_ISSUED);
    assert_string_equal(row.client, "");
    assert_int_equal(row.bound_ms, 0);
    assert_int_equal(row.confirmed_ms, 0);
    assert_false(row.received_has_sha256);
    assert_string_equal(row.receipt, "");
    assert_string_equal(row.issued_node, "node-a");
    assert_string_equal(row.bound_node, "");
    assert_string_equal(row.confirmed_node, "");

    ev.row.size = 1;
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_IGNORED);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_int_equal(row.size, 1010);
    assert_int_equal(ledger_count(f->lg), 1);

    char other[UUID7_STR_LEN + 1];
    make_id(other, 11);
    assert_int_equal(ledger_get(f->lg, other, &row), 0);
}

static void test_bind(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_result res;
    ledger_delivery row;

    /* On a missing row: made from the event's issuance fields. */
    fill_bind(&ev, 20, CLIENT_A);
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_APPLIED);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_int_equal(row.status, LEDGER_BOUND);
    assert_string_equal(row.client, CLIENT_A);
    assert_string_equal(row.path, ev.row.path);
    assert_int_equal(row.issued_ms, ev.row.issued_ms);
    assert_int_equal(row.bound_ms, ev.row.bound_ms);

    /* On an issued row. */
    fill_issue(&ev, 21);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    fill_bind(&ev, 21, CLIENT_A);
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_APPLIED);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_int_equal(row.status, LEDGER_BOUND);
    assert_string_equal(row.client, CLIENT_A);
    assert_string_equal(row.bound_addr, ev.row.bound_addr);
    assert_int_equal(row.bound_ms, ev.row.bound_ms);
    assert_string_equal(row.bound_node, "node-b");
    assert_string_equal(row.issued_node, "node-a");

    /* A second binding, by anyone, on any node, is not recorded. */
    fill_bind(&ev, 21, CLIENT_B);
    ev.row.bound_ms += 1000;
    snprintf(ev.row.bound_node, sizeof ev.row.bound_node, "node-z");
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_IGNORED);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_string_equal(row.client, CLIENT_A);
    assert_int_equal(row.bound_ms, ev.row.issued_ms + 10);
    assert_string_equal(row.bound_node, "node-b");

    /* Nor after a confirmation. */
    ledger_event confirm;
    fill_confirm(&confirm, 21, CLIENT_A, 1764200000000ull);
    assert_int_equal(apply_one(f->lg, &confirm, &res), 0);
    fill_bind(&ev, 21, CLIENT_A);
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_IGNORED);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_int_equal(row.status, LEDGER_CONFIRMED);
    assert_int_equal(ledger_count(f->lg), 2);
}

static void test_confirm_and_repeat(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_result res;
    ledger_delivery row;

    fill_issue(&ev, 30);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    fill_bind(&ev, 30, CLIENT_A);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);

    fill_confirm(&ev, 30, CLIENT_A, 1764200000000ull);
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_APPLIED);
    assert_int_equal(res.row.status, LEDGER_CONFIRMED);
    assert_string_equal(res.row.client, CLIENT_A);
    assert_int_equal(res.row.confirmed_ms, 1764200000000ull);
    assert_string_equal(res.row.receipt, ev.row.receipt);
    assert_string_equal(res.row.confirm_addr, "2001:db8::30");
    assert_true(res.row.received_has_sha256);
    assert_memory_equal(res.row.received_sha256, ev.row.sha256, 32);
    assert_int_equal(res.row.received_size, ev.row.size);
    assert_int_equal(res.row.received_at_ms, 1764200000000ull - 5);
    assert_int_equal(res.row.bound_ms, ev.row.bound_ms);
    assert_string_equal(res.row.confirmed_node, "node-c");
    assert_string_equal(res.row.bound_node, "node-b");
    assert_string_equal(res.row.issued_node, "node-a");
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_memory_equal(&row, &res.row, sizeof row);
    char first_receipt[LEDGER_RECEIPT_MAX + 1];
    snprintf(first_receipt, sizeof first_receipt, "%s", ev.row.receipt);

    /* The same client again, later, on another node, with a receipt of its
     * own making: the first stands. */
    fill_confirm(&ev, 30, CLIENT_A, 1764200009999ull);
    snprintf(ev.row.confirmed_node, sizeof ev.row.confirmed_node, "node-d");
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_SAME);
    assert_int_equal(res.row.status, LEDGER_CONFIRMED);
    assert_int_equal(res.row.confirmed_ms, 1764200000000ull);
    assert_string_equal(res.row.receipt, first_receipt);
    assert_memory_equal(&res.row, &row, sizeof row);

    /* Without a result pointer, too. */
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_int_equal(row.confirmed_ms, 1764200000000ull);
}

static void test_confirm_conflict(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_result res;
    ledger_delivery before;
    ledger_delivery after;

    fill_confirm(&ev, 40, CLIENT_A, 1764200000000ull);
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &before), 1);

    fill_confirm(&ev, 40, CLIENT_B, 1764200000500ull);
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_CONFLICT);
    assert_string_equal(res.row.client, CLIENT_A);
    assert_memory_equal(&res.row, &before, sizeof before);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &after), 1);
    assert_memory_equal(&after, &before, sizeof before);
}

static void test_confirm_missing_row(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_result res;
    ledger_delivery row;

    fill_confirm(&ev, 50, CLIENT_B, 1764200000000ull);
    ev.row.received_has_sha256 = false; /* a browser */
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_APPLIED);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_int_equal(row.status, LEDGER_CONFIRMED);
    assert_string_equal(row.path, ev.row.path);
    assert_memory_equal(row.sha256, ev.row.sha256, 32);
    assert_int_equal(row.issued_ms, ev.row.issued_ms);
    assert_string_equal(row.client, CLIENT_B);
    assert_string_equal(row.bound_addr, ev.row.bound_addr);
    assert_false(row.received_has_sha256);
    assert_string_equal(row.receipt, ev.row.receipt);
}

static void test_confirm_corrupted(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_result res;
    ledger_delivery row;

    fill_issue(&ev, 60);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    fill_confirm(&ev, 60, CLIENT_A, 1764200000000ull);
    ev.row.status = LEDGER_CORRUPTED;
    memset(ev.row.received_sha256, 0xee, 32);
    ev.row.received_size = 3;
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_APPLIED);
    assert_int_equal(res.row.status, LEDGER_CORRUPTED);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_int_equal(row.status, LEDGER_CORRUPTED);
    assert_true(row.received_has_sha256);
    assert_memory_equal(row.received_sha256, ev.row.received_sha256, 32);
    assert_int_equal(row.received_size, 3);

    /* Final: a repeat is SAME, another client a CONFLICT. */
    fill_confirm(&ev, 60, CLIENT_A, 1764200000100ull);
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_SAME);
    assert_int_equal(res.row.status, LEDGER_CORRUPTED);
    fill_confirm(&ev, 60, CLIENT_B, 1764200000200ull);
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_CONFLICT);
}

static void test_confirm_replaces_other_binding(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_result res;

    /* A saved page opened twice: A bound first, B confirms first. */
    fill_bind(&ev, 70, CLIENT_A);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    fill_confirm(&ev, 70, CLIENT_B, 1764200000000ull);
    snprintf(ev.row.bound_addr, sizeof ev.row.bound_addr, "203.0.113.9");
    snprintf(ev.row.bound_node, sizeof ev.row.bound_node, "node-e");
    ev.row.bound_ms = 1764100000777ull;
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_APPLIED);
    assert_string_equal(res.row.client, CLIENT_B);
    assert_string_equal(res.row.bound_addr, "203.0.113.9");
    assert_int_equal(res.row.bound_ms, 1764100000777ull);
    assert_string_equal(res.row.bound_node, "node-e");

    /* The bound client confirming keeps its recorded binding. */
    fill_bind(&ev, 71, CLIENT_A);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    uint64_t bound_ms = ev.row.bound_ms;
    fill_confirm(&ev, 71, CLIENT_A, 1764200000000ull);
    ev.row.bound_ms = 1;
    snprintf(ev.row.bound_node, sizeof ev.row.bound_node, "node-f");
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.row.bound_ms, bound_ms);
    assert_string_equal(res.row.bound_node, "node-b");
    assert_string_equal(res.row.confirmed_node, "node-c");
}

static void test_rollback(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_delivery row;

    assert_int_equal(ledger_rollback(f->lg), 0); /* nothing open: fine */
    assert_int_equal(ledger_begin(f->lg), 0);
    for (unsigned i = 0; i < 10; i++) {
        fill_issue(&ev, 80 + i);
        assert_int_equal(ledger_apply(f->lg, &ev, NULL), 0);
    }
    fill_confirm(&ev, 90, CLIENT_A, 1764200000000ull);
    assert_int_equal(ledger_apply(f->lg, &ev, NULL), 0);
    assert_int_equal(ledger_rollback(f->lg), 0);
    assert_int_equal(ledger_count(f->lg), 0);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 0);
}

static void test_invalid_events(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_event good;
    ledger_result res;

    assert_int_equal(ledger_begin(f->lg), 0);
    fill_issue(&good, 100);
    assert_int_equal(ledger_apply(f->lg, &good, NULL), 0);

    fill_issue(&ev, 101);
    ev.row.id[20] = '\0';
    assert_int_equal(ledger_apply(f->lg, &ev, NULL), LEDGER_APPLY_EVENT_FAILED);
    assert_non_null(strstr(ledger_error(f->lg), "ID"));

    fill_bind(&ev, 102, "");
    assert_int_equal(ledger_apply(f->lg, &ev, NULL), LEDGER_APPLY_EVENT_FAILED);

    fill_confirm(&ev, 103, CLIENT_A, 1);
    ev.row.status = LEDGER_BOUND;
    assert_int_equal(ledger_apply(f->lg, &ev, &res), LEDGER_APPLY_EVENT_FAILED);

    fill_issue(&ev, 104);
    ev.row.size = UINT64_MAX;
    assert_int_equal(ledger_apply(f->lg, &ev, NULL), LEDGER_APPLY_EVENT_FAILED);

    fill_issue(&ev, 105);
    ev.kind = (ledger_event_kind)9;
    assert_int_equal(ledger_apply(f->lg, &ev, NULL), LEDGER_APPLY_EVENT_FAILED);

    /* The transaction went on without them. */
    fill_issue(&ev, 106);
    assert_int_equal(ledger_apply(f->lg, &ev, NULL), 0);
    assert_int_equal(ledger_commit(f->lg), 0);
    assert_int_equal(ledger_count(f->lg), 2);
}

/* Kinds and the bytes sent: stored, NULL where they are the version's, read
 * back either way. */
static void test_kinds_and_delivered(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_delivery row;

    fill_issue(&ev, 1);
    ev.row.kind = LEDGER_KIND_PAGE;
    memset(ev.row.delivered_sha256, 0x77, 32);
    ev.row.delivered_size = ev.row.size + 48;
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    fill_issue(&ev, 2);
    ev.row.kind = LEDGER_KIND_DOWNLOAD;
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);

    assert_int_equal(ledger_get(f->lg, "01900000-0000-7000-8000-000000000001", &row), 1);
    assert_int_equal(row.kind, LEDGER_KIND_PAGE);
    assert_int_equal(row.delivered_size, 1001 + 48);
    assert_int_equal(row.delivered_sha256[0], 0x77);
    assert_int_equal(ledger_get(f->lg, "01900000-0000-7000-8000-000000000002", &row), 1);
    assert_int_equal(row.kind, LEDGER_KIND_DOWNLOAD);
    assert_int_equal(row.delivered_size, row.size);
    assert_memory_equal(row.delivered_sha256, row.sha256, 32);

    /* A confirmation keeps the kind its issuance recorded. */
    fill_confirm(&ev, 1, CLIENT_A, 1764100009999ull);
    ev.row.kind = LEDGER_KIND_TRACKED;
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    assert_int_equal(ledger_get(f->lg, "01900000-0000-7000-8000-000000000001", &row), 1);
    assert_int_equal(row.kind, LEDGER_KIND_PAGE);
    assert_int_equal(row.status, LEDGER_CONFIRMED);

    /* An unknown kind is refused. */
    fill_issue(&ev, 3);
    ev.row.kind = (ledger_kind)LEDGER_KIND_COUNT;
    assert_int_equal(apply_one(f->lg, &ev, NULL), LEDGER_APPLY_EVENT_FAILED);
}

/* A ledger of schema 1 (before kinds) migrates: its rows are tracked, and
 * delivered what they stored. */
static void test_migrate_from_1(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    ledger_close(f->lg);
    f->lg = NULL;
    unlink(f->file);
    raw_exec(f->file,
             "CREATE TABLE deliveries ("
             " id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36), path TEXT NOT NULL,"
             " sha256 BLOB NOT NULL CHECK (length(sha256) = 32), size INTEGER NOT NULL,"
             " server TEXT NOT NULL, client_addr TEXT NOT NULL, user_agent TEXT,"
             " issued_ms INTEGER NOT NULL, status TEXT NOT NULL CHECK (status IN ('issued',"
             " 'bound', 'confirmed', 'corrupted')), client TEXT, bound_addr TEXT, bound_ms INTEGER,"
             " confirmed_ms INTEGER, confirm_addr TEXT, received_sha256 BLOB CHECK"
             " (received_sha256 IS NULL OR length(received_sha256) = 32), received_size INTEGER,"
             " received_at_ms INTEGER, receipt TEXT);"
             "CREATE INDEX deliveries_path ON deliveries (path);"
             "CREATE INDEX deliveries_client ON deliveries (client) WHERE client IS NOT NULL;"
             "CREATE INDEX deliveries_status ON deliveries (status);"
             "CREATE INDEX deliveries_issued ON deliveries (issued_ms);"
             "INSERT INTO deliveries (id, path, sha256, size, server, client_addr, issued_ms,"
             " status) VALUES ('01900000-0000-7000-8000-0000000000aa', '/old.html',"
             " zeroblob(32), 77, 'old', '192.0.2.9', 1764000000000, 'issued');"
             "PRAGMA user_version = 1;");
    f->lg = ledger_open(f->url, NULL, false, err, sizeof err);
    if (f->lg == NULL)
        fail_msg("open: %s", err);
    assert_int_equal(raw_user_version(f->file), LEDGER_TEST_SCHEMA);
    char text[2048];
    raw_table_sql(f->file, text, sizeof text);
    assert_null(strstr(text, " IN ("));
    ledger_delivery row;
    assert_int_equal(ledger_get(f->lg, "01900000-0000-7000-8000-0000000000aa", &row), 1);
    assert_int_equal(row.kind, LEDGER_KIND_TRACKED);
    assert_int_equal(row.delivered_size, 77);
    ledger_summary s;
    assert_int_equal(ledger_summary_read(f->lg, &s), 0);
    assert_int_equal(s.kinds[LEDGER_KIND_TRACKED].deliveries, 1);
    assert_int_equal(s.kinds[LEDGER_KIND_TRACKED].pending, 1);
    ledger_event ev;
    fill_issue(&ev, 4);
    ev.row.kind = LEDGER_KIND_VIEW;
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    assert_int_equal(ledger_count(f->lg), 2);
}

static void test_null_safety(void **state)
{
    ledger_delivery row;
    ledger_close(NULL);
    assert_int_equal(ledger_begin(NULL), -1);
    assert_int_equal(ledger_commit(NULL), -1);
    assert_int_equal(ledger_get(NULL, "x", &row), -1);
    assert_int_equal(ledger_count(NULL), -1);
    assert_int_equal(ledger_apply(NULL, NULL, NULL), LEDGER_APPLY_EVENT_FAILED);
}

/* ---- batches, as the writer sends them ---- */

static void test_write_batch(void **state)
{
    fixture *f = *state;
    enum { N = 13 };
    ledger_event ev[N];
    ledger_result res[N];
    ledger_batch_entry e[N];
    ledger_delivery row;

    /* One ID through every step in one batch, and repeats of each step. */
    fill_issue(&ev[0], 200);
    fill_bind(&ev[1], 200, CLIENT_A);
    fill_confirm(&ev[2], 200, CLIENT_A, 1764200000000ull);
    fill_confirm(&ev[3], 200, CLIENT_B, 1764200000100ull);
    fill_confirm(&ev[4], 200, CLIENT_A, 1764200000200ull);
    fill_issue(&ev[5], 201);
    fill_issue(&ev[6], 999);
    ev[6].row.id[30] = '\0'; /* refused, alone */
    fill_issue(&ev[7], 201);
    ev[7].row.size = 7;
    fill_confirm(&ev[8], 202, CLIENT_B, 1764200000300ull); /* no row yet */
    fill_bind(&ev[9], 203, CLIENT_A);
    fill_bind(&ev[10], 203, CLIENT_B);
    fill_issue(&ev[11], 204);
    ev[11].row.status = LEDGER_BOUND; /* a device named its key */
    snprintf(ev[11].row.client, sizeof ev[11].row.client, CLIENT_B);
    snprintf(ev[11].row.bound_addr, sizeof ev[11].row.bound_addr, "192.0.2.44");
    ev[11].row.bound_ms = ev[11].row.issued_ms;
    fill_confirm(&ev[12], 204, CLIENT_B, 1764200000400ull);
    for (int i = 0; i < N; i++)
        e[i] = (ledger_batch_entry){.event = &ev[i], .result = i % 3 == 1 ? NULL : &res[i]};
    e[2].result = &res[2];
    e[4].result = &res[4];

    assert_int_equal(ledger_write(f->lg, e, N), 0);
    for (int i = 0; i < N; i++) {
        if (i == 6) {
            assert_int_equal(e[i].status, LEDGER_APPLY_EVENT_FAILED);
            assert_non_null(e[i].why);
            assert_non_null(strstr(e[i].why, "ID"));
        } else {
            assert_int_equal(e[i].status, 0);
            assert_null(e[i].why);
        }
    }
    assert_int_equal(res[0].outcome, LEDGER_APPLIED);
    assert_int_equal(res[2].outcome, LEDGER_APPLIED);
    assert_int_equal(res[2].row.status, LEDGER_CONFIRMED);
    assert_string_equal(res[2].row.client, CLIENT_A);
    assert_string_equal(res[2].row.receipt, ev[2].row.receipt);
    assert_int_equal(res[3].outcome, LEDGER_CONFLICT);
    assert_string_equal(res[3].row.client, CLIENT_A);
    assert_int_equal(res[4].outcome, LEDGER_SAME);
    assert_string_equal(res[4].row.receipt, ev[2].row.receipt); /* the first stands */
    assert_int_equal(res[4].row.confirmed_ms, 1764200000000ull);
    assert_int_equal(res[5].outcome, LEDGER_APPLIED);
    assert_int_equal(res[8].outcome, LEDGER_APPLIED);
    assert_string_equal(res[8].row.client, CLIENT_B);
    assert_int_equal(res[9].outcome, LEDGER_APPLIED);
    assert_int_equal(res[11].outcome, LEDGER_APPLIED);
    assert_int_equal(res[12].outcome, LEDGER_APPLIED);
    assert_int_equal(res[12].row.bound_ms, ev[11].row.issued_ms); /* its own binding kept */

    assert_int_equal(ledger_count(f->lg), 5);
    assert_int_equal(ledger_get(f->lg, ev[0].row.id, &row), 1);
    assert_memory_equal(&row, &res[2].row, sizeof row);
    assert_int_equal(ledger_get(f->lg, ev[5].row.id, &row), 1);
    assert_int_equal(row.size, ev[5].row.size); /* the second ISSUE changed nothing */
    assert_int_equal(ledger_get(f->lg, ev[9].row.id, &row), 1);
    assert_string_equal(row.client, CLIENT_A); /* the first binding */
    assert_int_equal(row.status, LEDGER_BOUND);
    assert_int_equal(ledger_get(f->lg, ev[11].row.id, &row), 1);
    assert_string_equal(row.bound_addr, "192.0.2.44");

    /* The same batch again: nothing new, the same answers. */
    assert_int_equal(ledger_write(f->lg, e, N), 0);
    assert_int_equal(res[0].outcome, LEDGER_IGNORED);
    assert_int_equal(res[2].outcome, LEDGER_SAME);
    assert_int_equal(res[3].outcome, LEDGER_CONFLICT);
    assert_int_equal(res[8].outcome, LEDGER_SAME);
    assert_int_equal(ledger_count(f->lg), 5);

    /* Only refusals: committed as nothing. An empty batch too. */
    assert_int_equal(ledger_write(f->lg, &e[6], 1), 0);
    assert_int_equal(e[6].status, LEDGER_APPLY_EVENT_FAILED);
    assert_int_equal(ledger_write(f->lg, e, 0), 0);

    /* Not inside a transaction of the caller's. */
    assert_int_equal(ledger_begin(f->lg), 0);
    assert_int_equal(ledger_write(f->lg, e, 1), -1);
    assert_int_equal(ledger_rollback(f->lg), 0);
}

/* A batch bigger than anything the other tests send, in one transaction. */
static void test_write_large_batch(void **state)
{
    fixture *f = *state;
    enum { N = 3000 };
    ledger_event *ev = calloc(N, sizeof *ev);
    ledger_batch_entry *e = calloc(N, sizeof *e);
    ledger_result *res = calloc(N, sizeof *res);
    assert_non_null(ev);
    assert_non_null(e);
    assert_non_null(res);
    for (unsigned i = 0; i < N; i++) {
        /* Thirds: issued, then bound, then confirmed, each ID thrice. */
        unsigned id = 1000 + i % (N / 3);
        if (i < N / 3)
            fill_issue(&ev[i], id);
        else if (i < 2 * N / 3)
            fill_bind(&ev[i], id, CLIENT_A);
        else
            fill_confirm(&ev[i], id, CLIENT_A, 1764200000000ull + i);
        e[i] = (ledger_batch_entry){.event = &ev[i], .result = i >= 2 * N / 3 ? &res[i] : NULL};
    }
    assert_int_equal(ledger_write(f->lg, e, N), 0);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(e[i].status, 0);
    for (unsigned i = 2 * N / 3; i < N; i++) {
        assert_int_equal(res[i].outcome, LEDGER_APPLIED);
        assert_string_equal(res[i].row.receipt, ev[i].row.receipt);
    }
    assert_int_equal(ledger_count(f->lg), N / 3);
    ledger_summary s;
    assert_int_equal(ledger_summary_read(f->lg, &s), 0);
    assert_int_equal(s.confirmed, N / 3);
    free(ev);
    free(e);
    free(res);
}

/* COPY: a row from another ledger, field for field. */
static void test_copy_rows(void **state)
{
    fixture *f = *state;
    ledger_event ev;
    ledger_result res;
    ledger_delivery rows[3];
    ledger_delivery back;

    fill_confirm(&ev, 300, CLIENT_A, 1764200000000ull);
    ev.row.status = LEDGER_CORRUPTED;
    memset(ev.row.received_sha256, 0x11, 32);
    ev.row.received_size = 0;
    rows[0] = ev.row;
    fill_bind(&ev, 301, CLIENT_B);
    ev.row.user_agent[0] = '\0';
    rows[1] = ev.row;
    fill_issue(&ev, 302);
    rows[2] = ev.row;

    for (int i = 0; i < 3; i++) {
        memset(&ev, 0, sizeof ev);
        ev.kind = LEDGER_EVENT_COPY;
        ev.row = rows[i];
        assert_int_equal(apply_one(f->lg, &ev, &res), 0);
        assert_int_equal(res.outcome, LEDGER_APPLIED);
        assert_int_equal(ledger_get(f->lg, rows[i].id, &back), 1);
        assert_string_equal(back.id, rows[i].id);
        assert_int_equal(back.status, rows[i].status);
        assert_string_equal(back.client, rows[i].client);
        assert_string_equal(back.user_agent, rows[i].user_agent);
        assert_int_equal(back.bound_ms, rows[i].bound_ms);
        assert_int_equal(back.confirmed_ms, rows[i].confirmed_ms);
        assert_int_equal(back.received_has_sha256, rows[i].received_has_sha256);
        assert_int_equal(back.received_size, rows[i].received_size);
        assert_string_equal(back.receipt, rows[i].receipt);
        assert_string_equal(back.issued_node, rows[i].issued_node);
        assert_string_equal(back.bound_node, rows[i].bound_node);
        assert_string_equal(back.confirmed_node, rows[i].confirmed_node);
        /* A second copy leaves the row alone. */
        ev.row.size = 1;
        assert_int_equal(apply_one(f->lg, &ev, &res), 0);
        assert_int_equal(res.outcome, LEDGER_IGNORED);
    }
    memset(&ev, 0, sizeof ev);
    ev.kind = LEDGER_EVENT_COPY;
    ev.row = rows[0];
    ev.row.status = (ledger_status)7;
    assert_int_equal(apply_one(f->lg, &ev, &res), LEDGER_APPLY_EVENT_FAILED);
    assert_int_equal(ledger_count(f->lg), 3);
}

/* ---- the evidence log's leaves, as the rows number them ---- */

#define TEST_LEAVES_MAX 16

/*
 * A log hook of the test's own: a leaf for each event that changed its
 * row, after `own` leaves of its own (naming own_delivery, or none), as
 * daemon/tlog.c orders them; swapped, it gives the last two events each
 * other's leaf, which the ledger must refuse.
 */
typedef struct test_log {
    size_t own;
    const char *own_delivery;
    bool swap;
    ledger_log_entry rows[TEST_LEAVES_MAX];
    uint8_t salt[LEDGER_SALT_LEN];
    uint8_t commitment[LEDGER_HASH_LEN];
    char note[64];
    ledger_log_write w;
} test_log;

static int test_log_batch(void *ctx, ledger *lg, uint64_t head, ledger_batch_entry *entries,
                          size_t n, const ledger_log_write **out, char *err, size_t errlen)
{
    (void)lg;
    (void)err;
    (void)errlen;
    test_log *t = ctx;
    size_t k = 0;
    *out = NULL;
    for (size_t i = 0; i < t->own + n && k < TEST_LEAVES_MAX; i++) {
        const char *delivery = t->own_delivery;
        if (i >= t->own) {
            const ledger_batch_entry *e = &entries[i - t->own];
            if (e->status != 0 || e->outcome != LEDGER_APPLIED)
                continue;
            delivery = e->event->row.id;
        }
        t->rows[k] = (ledger_log_entry){.leaf = head + k,
                                        .delivery = delivery,
                                        .salt = t->salt,
                                        .commitment = t->commitment,
                                        .event = "{}",
                                        .event_len = 2};
        k++;
    }
    if (t->swap && k >= 2) {
        const char *d = t->rows[k - 1].delivery;
        t->rows[k - 1].delivery = t->rows[k - 2].delivery;
        t->rows[k - 2].delivery = d;
    }
    if (k == 0)
        return 0;
    snprintf(t->note, sizeof t->note, "test checkpoint %llu\n", (unsigned long long)(head + k));
    t->w = (ledger_log_write){.entries = t->rows,
                              .entry_count = k,
                              .size = head + k,
                              .time_ms = 1,
                              .checkpoint = t->note};
    *out = &t->w;
    return 0;
}

static int write_logged(ledger *lg, test_log *t, ledger_event *ev, size_t n)
{
    ledger_batch_entry entries[8];
    ledger_result res[8];
    ledger_log_hook hook = {.batch = test_log_batch, .ctx = t};
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++)
        entries[i] = (ledger_batch_entry){.event = &ev[i], .result = &res[i]};
    return ledger_write_logged(lg, entries, n, &hook);
}

typedef struct found_leaves {
    uint64_t leaf[TEST_LEAVES_MAX];
    size_t count;
} found_leaves;

static int take_found(void *arg, const ledger_log_row *row)
{
    found_leaves *f = arg;
    if (f->count < TEST_LEAVES_MAX)
        f->leaf[f->count++] = row->leaf;
    return 0;
}

/* Asserts that delivery n's leaves are the count given, in order. */
static void assert_leaves(ledger *lg, unsigned n, size_t count, ...)
{
    char id[UUID7_STR_LEN + 1];
    found_leaves got = {.count = 0};
    va_list ap;
    make_id(id, n);
    assert_int_equal(ledger_log_entries(lg, LEDGER_LOG_DELIVERY, 0, 0, id, true, take_found, &got),
                     0);
    assert_int_equal(got.count, count);
    va_start(ap, count);
    for (size_t i = 0; i < count; i++)
        assert_int_equal(got.leaf[i], va_arg(ap, int));
    va_end(ap);
}

/*
 * A delivery's leaves are found from its row: numbered as the log's hook
 * numbers them, also when the hook puts leaves of its own first (renumbered
 * then, two events of one delivery in the batch among them), when a leaf
 * of the log's own names a row (a row recorded as it stands), and left as
 * they are by an event written without the log. On SQLite a hook whose
 * leaves are not the batch's events in order is refused, and nothing of
 * the batch is written.
 */
static void test_log_leaves_of_rows(void **state)
{
    fixture *f = *state;
    test_log t = {.own = 0};
    ledger_event ev[4];
    uint64_t size = 0;

    fill_issue(&ev[0], 1);
    fill_issue(&ev[1], 2);
    assert_int_equal(write_logged(f->lg, &t, ev, 2), 0);
    assert_leaves(f->lg, 1, 1, 0);
    assert_leaves(f->lg, 2, 1, 1);

    t.own = 1; /* a key change first: leaf 2 */
    fill_bind(&ev[0], 1, CLIENT_A);
    fill_issue(&ev[1], 2); /* again: ignored, no leaf */
    fill_issue(&ev[2], 3);
    fill_confirm(&ev[3], 1, CLIENT_A, 1764200000000ull);
    assert_int_equal(write_logged(f->lg, &t, ev, 4), 0);
    assert_leaves(f->lg, 1, 3, 0, 3, 5);
    assert_leaves(f->lg, 2, 1, 1);
    assert_leaves(f->lg, 3, 1, 4);

    /* A row written without the log, then recorded as it stands. */
    fill_issue(&ev[0], 4);
    assert_int_equal(apply_one(f->lg, &ev[0], NULL), 0);
    assert_leaves(f->lg, 4, 0);
    char four[UUID7_STR_LEN + 1];
    make_id(four, 4);
    t.own_delivery = four;
    assert_int_equal(write_logged(f->lg, &t, NULL, 0), 0);
    assert_leaves(f->lg, 4, 1, 6);
    t.own = 0;
    t.own_delivery = NULL;

    /* Without the log, a binding leaves the row's leaves alone. */
    fill_bind(&ev[0], 2, CLIENT_B);
    assert_int_equal(apply_one(f->lg, &ev[0], NULL), 0);
    assert_leaves(f->lg, 2, 1, 1);

    /* Every leaf naming a delivery, by delivery then leaf. */
    found_leaves all = {.count = 0};
    assert_int_equal(ledger_log_deliveries(f->lg, NULL, NULL, take_found, &all), 0);
    assert_int_equal(all.count, 6);
    static const uint64_t by_delivery[] = {0, 3, 5, 1, 4, 6};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(all.leaf[i], by_delivery[i]);
    assert_int_equal(ledger_log_size(f->lg, &size), 0);
    assert_int_equal(size, 7);
    if (f->pg)
        return; /* PostgreSQL finds a delivery's leaves by an index */

    t.swap = true;
    fill_issue(&ev[0], 5);
    fill_issue(&ev[1], 6);
    assert_int_equal(write_logged(f->lg, &t, ev, 2), -1);
    assert_non_null(strstr(ledger_error(f->lg), "is not the event of delivery"));
    ledger_delivery row;
    assert_int_equal(ledger_get(f->lg, ev[0].row.id, &row), 0);
    assert_int_equal(ledger_log_size(f->lg, &size), 0);
    assert_int_equal(size, 7);
}

/*
 * A ledger of schema 6 (the log indexed by delivery) migrates: each row
 * gets the numbers of its leaves from that index, which goes; the ledger
 * then finds the same leaves and numbers new ones after them.
 */
static void test_migrates_version_6(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    test_log t = {.own = 0};
    ledger_event ev[4];

    fill_issue(&ev[0], 1);
    fill_issue(&ev[1], 2);
    fill_issue(&ev[2], 3);
    assert_int_equal(write_logged(f->lg, &t, ev, 3), 0);
    fill_bind(&ev[0], 1, CLIENT_A);
    fill_confirm(&ev[1], 1, CLIENT_A, 1764200000000ull);
    fill_confirm(&ev[2], 3, CLIENT_B, 1764200000000ull);
    assert_int_equal(write_logged(f->lg, &t, ev, 3), 0);
    ledger_close(f->lg);
    f->lg = NULL;
    to_schema_6(f->file);

    f->lg = ledger_open(f->url, NULL, false, err, sizeof err);
    if (f->lg == NULL)
        fail_msg("open: %s", err);
    assert_int_equal(raw_user_version(f->file), LEDGER_TEST_SCHEMA);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(f->file, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM sqlite_schema"
                                        " WHERE name = 'log_entries_delivery'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_leaves(f->lg, 1, 3, 0, 3, 4);
    assert_leaves(f->lg, 2, 1, 1);
    assert_leaves(f->lg, 3, 2, 2, 5);

    fill_bind(&ev[0], 2, CLIENT_A);
    fill_confirm(&ev[1], 2, CLIENT_A, 1764200000000ull);
    assert_int_equal(write_logged(f->lg, &t, ev, 2), 0);
    assert_leaves(f->lg, 2, 3, 1, 6, 7);
}

/* ---- the rollups ---- */

#define ROLLUP_IDS     240
#define ROLLUP_MINUTES 600              /* issue times over 4 hours, confirmations up to 6 later */
#define ROLLUP_BASE_MS 1764100020000ull /* a whole minute */
#define ROLLUP_MIN_MS  60000ull

/* What the rollups must say, recounted from the rows through a cursor. */
typedef struct recount {
    ledger_summary s;
    uint64_t issued[ROLLUP_MINUTES], confirmed[ROLLUP_MINUTES], corrupted[ROLLUP_MINUTES];
} recount;

static void recount_rows(ledger *lg, recount *r)
{
    ledger_delivery row;
    memset(r, 0, sizeof *r);
    ledger_cursor *cur = ledger_query(lg, NULL);
    assert_non_null(cur);
    int rc;
    while ((rc = ledger_cursor_next(cur, &row)) == 1) {
        ledger_summary_count(&r->s, row.status, row.kind, 1);
        if (r->s.first_ms == 0 || row.issued_ms < r->s.first_ms)
            r->s.first_ms = row.issued_ms;
        if (row.issued_ms > r->s.last_ms)
            r->s.last_ms = row.issued_ms;
        uint64_t m = (row.issued_ms - ROLLUP_BASE_MS) / ROLLUP_MIN_MS;
        assert_true(m < ROLLUP_MINUTES);
        r->issued[m]++;
        bool final = row.status == LEDGER_CONFIRMED || row.status == LEDGER_CORRUPTED;
        if (!final || row.confirmed_ms == 0)
            continue;
        if (row.confirmed_ms > r->s.last_ms)
            r->s.last_ms = row.confirmed_ms;
        m = (row.confirmed_ms - ROLLUP_BASE_MS) / ROLLUP_MIN_MS;
        assert_true(m < ROLLUP_MINUTES);
        if (row.status == LEDGER_CONFIRMED)
            r->confirmed[m]++;
        else
            r->corrupted[m]++;
    }
    assert_int_equal(rc, 0);
    ledger_cursor_free(cur);
}

typedef struct series_seen {
    const recount *r;
    uint64_t since_ms, width_ms, next_ms;
    unsigned buckets;
} series_seen;

/* Each bucket against the recount's minutes (or milliseconds) in it. */
static int series_check(void *arg, const ledger_bucket *b)
{
    series_seen *seen = arg;
    uint64_t d = 0, c = 0, x = 0;
    assert_true(b->start_ms >= seen->next_ms);
    assert_int_equal((b->start_ms - seen->since_ms) % seen->width_ms, 0);
    for (uint64_t m = 0; m < ROLLUP_MINUTES; m++) {
        uint64_t start = ROLLUP_BASE_MS + m * ROLLUP_MIN_MS;
        if (start >= b->start_ms && start < b->start_ms + seen->width_ms) {
            d += seen->r->issued[m];
            c += seen->r->confirmed[m];
            x += seen->r->corrupted[m];
        }
    }
    assert_int_equal(b->deliveries, d);
    assert_int_equal(b->confirmed, c);
    assert_int_equal(b->corrupted, x);
    assert_true(d + c + x > 0); /* only non-empty buckets */
    seen->next_ms = b->start_ms + seen->width_ms;
    seen->buckets++;
    return 0;
}

static int series_sum(void *arg, const ledger_bucket *b)
{
    *(uint64_t *)arg += b->deliveries + b->confirmed + b->corrupted;
    return 0;
}

static unsigned series_total(const recount *r, uint64_t width_ms)
{
    unsigned buckets = 0;
    uint64_t last = UINT64_MAX;
    for (uint64_t m = 0; m < ROLLUP_MINUTES; m++) {
        uint64_t bucket = m * ROLLUP_MIN_MS / width_ms;
        if (r->issued[m] + r->confirmed[m] + r->corrupted[m] > 0 && bucket != last) {
            buckets++;
            last = bucket;
        }
    }
    return buckets;
}

/*
 * The summary and the series (minute widths from the rollups, a width of
 * seconds from the rows) equal the recount, and the ledger's own check of
 * its rollups against SQL over the rows finds nothing.
 */
static void assert_rollups_agree(ledger *lg)
{
    recount r;
    ledger_summary s;
    recount_rows(lg, &r);
    assert_int_equal(ledger_rollups_check(lg, NULL, NULL), 0);
    assert_int_equal(ledger_verify(lg), 0);
    assert_int_equal(ledger_summary_read(lg, &s), 0);
    assert_memory_equal(&s, &r.s, sizeof s);
    static const uint64_t widths[] = {ROLLUP_MIN_MS, 5 * ROLLUP_MIN_MS, 60 * ROLLUP_MIN_MS};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        series_seen seen = {.r = &r, .since_ms = ROLLUP_BASE_MS, .width_ms = widths[i]};
        seen.next_ms = seen.since_ms;
        assert_int_equal(ledger_series_read(lg, ROLLUP_BASE_MS,
                                            ROLLUP_BASE_MS + ROLLUP_MINUTES * ROLLUP_MIN_MS,
                                            widths[i], series_check, &seen),
                         0);
        assert_int_equal(seen.buckets, series_total(&r, widths[i]));
    }
    /* Not whole minutes: from the rows, as before. */
    uint64_t d = 0;
    assert_int_equal(ledger_series_read(lg, ROLLUP_BASE_MS,
                                        ROLLUP_BASE_MS + ROLLUP_MINUTES * ROLLUP_MIN_MS, 30000,
                                        series_sum, &d),
                     0);
    assert_int_equal(d, r.s.deliveries + r.s.confirmed + r.s.corrupted);
}

/* A random event of the mix: every kind of event, repeats, conflicts,
 * refusals, kinds that differ from the row's. */
static void random_event(ledger_event *ev, unsigned *seed)
{
    unsigned n = (unsigned)rand_r(seed) % ROLLUP_IDS;
    unsigned pick = (unsigned)rand_r(seed) % 100;
    const char *client = rand_r(seed) % 3 == 0 ? CLIENT_B : CLIENT_A;
    uint64_t issued = ROLLUP_BASE_MS + (uint64_t)n * 4 * ROLLUP_MIN_MS / ROLLUP_IDS * 60;
    uint64_t later = issued + 1 + (uint64_t)(rand_r(seed) % (6 * 3600)) * 1000;
    if (pick < 30) {
        fill_issue(ev, n);
        if (rand_r(seed) % 5 == 0) { /* a device that named its key */
            ev->row.status = LEDGER_BOUND;
            snprintf(ev->row.client, sizeof ev->row.client, "%s", client);
            ev->row.bound_ms = issued;
        }
    } else if (pick < 55) {
        fill_bind(ev, n, client);
    } else if (pick < 85) {
        fill_confirm(ev, n, client, later);
        if (rand_r(seed) % 5 == 0)
            ev->row.status = LEDGER_CORRUPTED;
        if (rand_r(seed) % 2 == 0)
            ev->row.bound_ms = 0; /* no binding of its own */
    } else if (pick < 95) {
        fill_confirm(ev, n, client, later);
        ev->kind = LEDGER_EVENT_COPY;
        ev->row.status = (ledger_status)(rand_r(seed) % 4);
        if (ev->row.status == LEDGER_ISSUED || ev->row.status == LEDGER_BOUND) {
            ev->row.confirmed_ms = 0;
            ev->row.receipt[0] = '\0';
        }
        if (ev->row.status == LEDGER_ISSUED)
            ev->row.client[0] = '\0';
    } else {
        fill_confirm(ev, n, client, later);
        ev->row.status = LEDGER_ISSUED; /* refused: a confirmation must be final */
    }
    ev->row.issued_ms = issued;
    if (ev->row.bound_ms != 0)
        ev->row.bound_ms = issued + 1;
    ev->row.kind = (ledger_kind)(rand_r(seed) % LEDGER_KIND_COUNT);
}

/*
 * Random batches of the mix, written the writer's way (one ledger_write),
 * event by event, rolled back, and written twice (a retried batch): after
 * each, the rollups agree with the rows.
 */
static void test_rollups_random_mix(void **state)
{
    fixture *f = *state;
    enum { BATCH_MAX = 48, BATCHES = 70 };
    static ledger_event ev[BATCH_MAX];
    static ledger_result res[BATCH_MAX];
    ledger_batch_entry e[BATCH_MAX];
    unsigned seed = 16;

    assert_rollups_agree(f->lg); /* empty */
    for (int b = 0; b < BATCHES; b++) {
        size_t n = 1 + (size_t)rand_r(&seed) % BATCH_MAX;
        for (size_t i = 0; i < n; i++) {
            random_event(&ev[i], &seed);
            e[i] = (ledger_batch_entry){.event = &ev[i], .result = i % 2 ? &res[i] : NULL};
        }
        switch (b % 5) {
        case 0: /* applied one by one, then rolled back: nothing counts */
            assert_int_equal(ledger_begin(f->lg), 0);
            for (size_t i = 0; i < n; i++) {
                int rc = ledger_apply(f->lg, &ev[i], &res[i]);
                assert_true(rc == 0 || rc == LEDGER_APPLY_EVENT_FAILED);
            }
            assert_int_equal(ledger_rollback(f->lg), 0);
            break;
        case 1: /* one by one, committed */
            assert_int_equal(ledger_begin(f->lg), 0);
            for (size_t i = 0; i < n; i++) {
                int rc = ledger_apply(f->lg, &ev[i], &res[i]);
                assert_true(rc == 0 || rc == LEDGER_APPLY_EVENT_FAILED);
            }
            assert_int_equal(ledger_commit(f->lg), 0);
            break;
        case 2: /* the writer's batch, written again as a retry would */
            assert_int_equal(ledger_write(f->lg, e, n), 0);
            assert_int_equal(ledger_write(f->lg, e, n), 0);
            break;
        default:
            assert_int_equal(ledger_write(f->lg, e, n), 0);
            break;
        }
        assert_rollups_agree(f->lg);
    }
    recount r;
    recount_rows(f->lg, &r);
    /* The mix reached every status. */
    assert_true(r.s.confirmed > 0 && r.s.corrupted > 0 && r.s.bound > 0);
    assert_true(r.s.pending > r.s.bound);
}

static void problem_count(void *arg, const char *text)
{
    assert_non_null(strstr(text, "rollup of "));
    (*(unsigned *)arg)++;
}

/* Runs sql on the fixture's ledger behind the ledger's back. */
static void behind(fixture *f, const char *sqlite_sql, const char *pg_sql)
{
    if (f->pg)
        assert_int_equal(pgtest_exec(f->db, pg_sql, NULL, 0), 0);
    else
        raw_exec(f->file, sqlite_sql);
}

/*
 * A ledger of the schema before the rollups migrates: they are built from
 * its rows. A row changed behind the ledger's back is then named by the
 * check, and refused by --check's verify.
 */
static void test_rollups_migrate_and_check(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    static ledger_event ev[200];
    ledger_batch_entry e[200];
    unsigned seed = 7;

    for (size_t i = 0; i < 200; i++) {
        random_event(&ev[i], &seed);
        e[i] = (ledger_batch_entry){.event = &ev[i]};
    }
    assert_int_equal(ledger_write(f->lg, e, 200), 0);
    ledger_close(f->lg);
    f->lg = NULL;
    behind(f,
           "DROP TABLE rollup_status; DROP TABLE rollup_minutes; DROP TABLE rollup_latest;"
           "PRAGMA user_version = 7",
           "DROP TRIGGER deliveries_rollup_inserted ON deliveries;"
           "DROP TRIGGER deliveries_rollup_updated ON deliveries;"
           "DROP TABLE rollup_status, rollup_minutes, rollup_latest;"
           "DROP FUNCTION rollup_inserted(), rollup_updated(), rollup_compact(),"
           " rollup_detach(regclass);"
           "DELETE FROM ledger_schema WHERE version = 5");
    f->lg = ledger_open(f->url, NULL, false, err, sizeof err);
    if (f->lg == NULL)
        fail_msg("open: %s", err);
    assert_rollups_agree(f->lg);

    /* More of the mix on the migrated ledger. */
    for (size_t i = 0; i < 200; i++)
        random_event(&ev[i], &seed);
    assert_int_equal(ledger_write(f->lg, e, 200), 0);
    assert_rollups_agree(f->lg);

    /* One row's status changed behind the ledger: two counts and a
     * minute's confirmations no longer hold. */
    behind(f,
           "UPDATE deliveries SET status = 'corrupted' WHERE status = 'confirmed'"
           " AND rowid = (SELECT min(rowid) FROM deliveries WHERE status = 'confirmed')",
           "SET session_replication_role = replica;"
           "UPDATE deliveries SET status = 'corrupted' WHERE id ="
           " (SELECT min(id::text)::uuid FROM deliveries WHERE status = 'confirmed')");
    unsigned problems = 0;
    assert_int_equal(ledger_rollups_check(f->lg, problem_count, &problems), 3);
    assert_int_equal(problems, 3);
    assert_int_equal(ledger_verify(f->lg), -1);
    assert_non_null(strstr(ledger_error(f->lg), "rollup"));
}

static void test_pg_unavailable(void **state)
{
    (void)state;
    printf("# %s\n", pgtest_unavailable());
    skip();
}

/* The tests every backend passes. */
#define BACKEND_TESTS(setup)                                                                       \
    cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(test_issue_and_duplicate, setup, teardown),                \
        cmocka_unit_test_setup_teardown(test_bind, setup, teardown),                               \
        cmocka_unit_test_setup_teardown(test_confirm_and_repeat, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_confirm_conflict, setup, teardown),                   \
        cmocka_unit_test_setup_teardown(test_confirm_missing_row, setup, teardown),                \
        cmocka_unit_test_setup_teardown(test_confirm_corrupted, setup, teardown),                  \
        cmocka_unit_test_setup_teardown(test_confirm_replaces_other_binding, setup, teardown),     \
        cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(test_invalid_events, setup, teardown),                     \
        cmocka_unit_test_setup_teardown(test_write_batch, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_write_large_batch, setup, teardown),                  \
        cmocka_unit_test_setup_teardown(test_copy_rows, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(test_log_leaves_of_rows, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_kinds_and_delivered, setup, teardown),                \
        cmocka_unit_test_setup_teardown(test_rollups_random_mix, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_rollups_migrate_and_check, setup, teardown)

int main(void)
{
    const struct CMUnitTest common[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_null_safety),
    };
    const struct CMUnitTest sqlite[] = {
        cmocka_unit_test_setup_teardown(test_open_default_path, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_sqlite, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_version_1, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_from_1, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_version_5, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_version_6, setup_sqlite, teardown),
        BACKEND_TESTS(setup_sqlite),
    };
    const struct CMUnitTest pg[] = {BACKEND_TESTS(setup_pg)};
    const struct CMUnitTest pg_missing[] = {cmocka_unit_test(test_pg_unavailable)};
    int failed = cmocka_run_group_tests_name("ledger", common, NULL, NULL);
    failed += cmocka_run_group_tests_name("ledger_sqlite", sqlite, NULL, NULL);
    if (pgtest_unavailable() == NULL)
        failed += cmocka_run_group_tests_name("ledger_postgresql", pg, NULL, NULL);
    else
        failed += cmocka_run_group_tests_name("ledger_postgresql", pg_missing, NULL, NULL);
    return failed;
}
