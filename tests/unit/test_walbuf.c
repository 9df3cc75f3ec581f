/*
 * walbuf: a transaction's WAL frames are in the file when its COMMIT
 * returns, for connections on SQLite's own VFS in this process, whose
 * reads go to the file; and a WAL written through it reads back whole.
 */
#include "daemon/walbuf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    char dir[64];
    char db[96];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_walbuf.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/w.sqlite", f->dir);
    assert_int_equal(walbuf_register(), SQLITE_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char path[128];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", f->db, suffixes[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static sqlite3 *open_db(const char *path, const char *vfs)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                     SQLITE_OK);
    /* As the ledger's writer: no automatic checkpoint (the frames stay in
     * the WAL, where the reader must find them), no sync in the commit. */
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                                  " PRAGMA wal_autocheckpoint = 0",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    return db;
}

static long long count_and_sum(sqlite3 *db, long long *sum)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*), total(length(b)) FROM t", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0);
    *sum = (long long)sqlite3_column_double(st, 1);
    sqlite3_finalize(st);
    return n;
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/*
 * Transactions of one frame, of a few, and of more than the buffer holds
 * (a 1 MiB row: overflow pages past 512 KiB): each seen whole at once by
 * a reader that does not go through walbuf, and the WAL's size on disk is
 * a whole number of frames after each commit.
 */
static void test_commit_is_in_the_file(void **state)
{
    fixture *f = *state;
    sqlite3 *w = open_db(f->db, WALBUF_VFS);
    assert_int_equal(
        sqlite3_exec(w, "CREATE TABLE t (a INTEGER PRIMARY KEY, b BLOB)", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3 *r = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &r, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char wal[128];
    snprintf(wal, sizeof wal, "%s-wal", f->db);

    static const int sizes[] = {10, 5000, 40000, 1 << 20, 100, 700000};
    long long rows = 0, bytes = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        sqlite3_stmt *st = NULL;
        assert_int_equal(
            sqlite3_prepare_v2(w, "INSERT INTO t (b) VALUES (zeroblob(?1))", -1, &st, NULL),
            SQLITE_OK);
        assert_int_equal(sqlite3_exec(w, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        for (int k = 0; k < 3; k++) {
            sqlite3_bind_int(st, 1, sizes[i]);
            assert_int_equal(sqlite3_step(st), SQLITE_DONE);
            sqlite3_reset(st);
        }
        sqlite3_finalize(st);
        assert_int_equal(sqlite3_exec(w, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        rows += 3;
        bytes += 3LL * sizes[i];
        /* Nothing left to write once COMMIT returned. */
        off_t size = file_size(wal);
        assert_int_equal(walbuf_flush(w), SQLITE_OK);
        assert_int_equal(file_size(wal), size);
        assert_int_equal((size - 32) % (4096 + 24), 0);
        long long sum = 0;
        assert_int_equal(count_and_sum(r, &sum), rows);
        assert_int_equal(sum, bytes);
    }
    sqlite3_close(r);
    sqlite3_close(w);
}

/* A transaction rolled back after its pages spilled into the WAL (a
 * page cache of a few pages), then one committed: the WAL reads back. */
static void test_spill_and_rollback(void **state)
{
    fixture *f = *state;
    sqlite3 *w = open_db(f->db, WALBUF_VFS);
    assert_int_equal(sqlite3_exec(w,
                                  "PRAGMA cache_size = 8;"
                                  " CREATE TABLE t (a INTEGER PRIMARY KEY, b BLOB);"
                                  " BEGIN; INSERT INTO t (b) SELECT zeroblob(3000) FROM"
                                  " (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1"
                                  "  FROM c WHERE x < 400) SELECT x FROM c);"
                                  " ROLLBACK;"
                                  " INSERT INTO t (b) VALUES (zeroblob(9000));",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3 *r = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &r, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    long long sum = 0;
    assert_int_equal(count_and_sum(r, &sum), 1);
    assert_int_equal(sum, 9000);
    sqlite3_close(r);
    sqlite3_close(w);

    /* Reopened on SQLite's own VFS: the file holds what was committed. */
    sqlite3 *again = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &again, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(count_and_sum(again, &sum), 1);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(again, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(again);
}

/* A connection on another VFS has nothing of walbuf's to write. */
static void test_flush_elsewhere(void **state)
{
    fixture *f = *state;
    sqlite3 *db = open_db(f->db, NULL);
    assert_int_equal(walbuf_flush(db), SQLITE_OK);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_is_in_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spill_and_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_elsewhere, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
