#include "daemon/ledger.h"

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

#define TEST_DIR_MAX  64
#define TEST_PATH_MAX 256

typedef struct fixture {
    char dir[TEST_DIR_MAX];
    char file[TEST_DIR_MAX + 32];
    char url[TEST_DIR_MAX + 48];
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
    snprintf(ev->row.server, sizeof ev->row.server, "node-1");
    snprintf(ev->row.client_addr, sizeof ev->row.client_addr, "192.0.2.%u", n % 250);
    snprintf(ev->row.user_agent, sizeof ev->row.user_agent, "test/1.0");
    ev->row.issued_ms = 1764100000000ull + n;
    ev->row.status = LEDGER_ISSUED;
}

static void fill_bind(ledger_event *ev, unsigned n, const char *client)
{
    fill_issue(ev, n);
    ev->kind = LEDGER_EVENT_BIND;
    ev->row.status = LEDGER_BOUND;
    snprintf(ev->row.client, sizeof ev->row.client, "%s", client);
    snprintf(ev->row.bound_addr, sizeof ev->row.bound_addr, "198.51.100.%zu", strlen(client));
    ev->row.bound_ms = ev->row.issued_ms + 10;
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

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[LEDGER_ERR_MAX];
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_ledger.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->file, sizeof f->file, "%s/ledger.sqlite", f->dir);
    snprintf(f->url, sizeof f->url, "sqlite:%s", f->file);
    f->lg = ledger_open(f->url, NULL, false, err, sizeof err);
    if (f->lg == NULL)
        fail_msg("open: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[TEST_PATH_MAX];
    ledger_close(f->lg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
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
    assert_null(ledger_open("postgresql://db.example/receipt", NULL, false, err, sizeof err));
    assert_non_null(strstr(err, "not supported yet"));
    assert_null(ledger_open("mysql://db.example/receipt", NULL, false, err, sizeof err));
    assert_non_null(strstr(err, "unknown scheme"));
    assert_null(ledger_open("sqlite:", NULL, false, err, sizeof err));
    assert_non_null(strstr(err, "path"));
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

    assert_int_equal(raw_user_version(f->file), 1);
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
    assert_int_equal(raw_user_version(f->file), 1);
}

static void test_read_only(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    char path[TEST_PATH_MAX];
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
    ledger_close(ro);
    assert_int_equal(ledger_count(f->lg), 1);

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

    /* A second binding, by anyone, is not recorded. */
    fill_bind(&ev, 21, CLIENT_B);
    ev.row.bound_ms += 1000;
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_IGNORED);
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_string_equal(row.client, CLIENT_A);
    assert_int_equal(row.bound_ms, ev.row.issued_ms + 10);

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
    assert_int_equal(ledger_get(f->lg, ev.row.id, &row), 1);
    assert_memory_equal(&row, &res.row, sizeof row);
    char first_receipt[LEDGER_RECEIPT_MAX + 1];
    snprintf(first_receipt, sizeof first_receipt, "%s", ev.row.receipt);

    /* The same client again, later, with a receipt of its own making: the first stands. */
    fill_confirm(&ev, 30, CLIENT_A, 1764200009999ull);
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
    ev.row.bound_ms = 1764100000777ull;
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.outcome, LEDGER_APPLIED);
    assert_string_equal(res.row.client, CLIENT_B);
    assert_string_equal(res.row.bound_addr, "203.0.113.9");
    assert_int_equal(res.row.bound_ms, 1764100000777ull);

    /* The bound client confirming keeps its recorded binding. */
    fill_bind(&ev, 71, CLIENT_A);
    assert_int_equal(apply_one(f->lg, &ev, NULL), 0);
    uint64_t bound_ms = ev.row.bound_ms;
    fill_confirm(&ev, 71, CLIENT_A, 1764200000000ull);
    ev.row.bound_ms = 1;
    assert_int_equal(apply_one(f->lg, &ev, &res), 0);
    assert_int_equal(res.row.bound_ms, bound_ms);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_null_safety),
        cmocka_unit_test_setup_teardown(test_open_default_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issue_and_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_and_repeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_missing_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_corrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_replaces_other_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_events, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
