#include "daemon/recovery.h"

#include "daemon/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEST_DIR_MAX 64

typedef struct fixture {
    char dir[TEST_DIR_MAX];
    char file[TEST_DIR_MAX + 32];
    char url[TEST_DIR_MAX + 48];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_recovery.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->file, sizeof f->file, "%s/%s", f->dir, RECOVERY_FILE);
    snprintf(f->url, sizeof f->url, "sqlite:%s/ledger.sqlite", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[TEST_DIR_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* Every string at its longest, every byte value a string may hold. */
static void fill_max(ledger_event *ev, unsigned n, ledger_event_kind kind)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    ledger_delivery *r = &ev->row;
    snprintf(r->id, sizeof r->id, "01900000-0000-7000-8000-%012x", n);
    for (size_t i = 0; i < sizeof r->path - 1; i++)
        r->path[i] = (char)(1 + (i + n) % 255);
    memset(r->server, 's', sizeof r->server - 1);
    memset(r->client_addr, 'a', sizeof r->client_addr - 1);
    memset(r->user_agent, 'u', sizeof r->user_agent - 1);
    memset(r->client, 'C', sizeof r->client - 1);
    memset(r->bound_addr, 'b', sizeof r->bound_addr - 1);
    memset(r->sha256, n & 0xff, 32);
    r->size = UINT64_MAX - n;
    r->issued_ms = 1764100000000ull + n;
    r->status = kind == LEDGER_EVENT_CONFIRM ? LEDGER_CORRUPTED : LEDGER_BOUND;
    r->bound_ms = 1764100000001ull + n;
    if (kind == LEDGER_EVENT_CONFIRM) {
        memset(r->confirm_addr, 'c', sizeof r->confirm_addr - 1);
        memset(r->receipt, 'r', sizeof r->receipt - 1);
        r->confirmed_ms = 1764100000002ull + n;
        r->received_has_sha256 = true;
        memset(r->received_sha256, 0xee, 32);
        r->received_size = 7;
        r->received_at_ms = 1764100000003ull + n;
    }
}

/* Collects what the file holds, through a ledger-less replay. */
static void test_round_trip_and_reservation(void **state)
{
    fixture *f = *state;
    char err[RECOVERY_ERR_MAX];
    ledger_event evs[3];
    const ledger_event *list[3] = {&evs[0], &evs[1], &evs[2]};
    recovery_summary rs;
    struct stat st;

    recovery_file *rf = recovery_open(f->dir, 100, err, sizeof err);
    assert_non_null(rf);
    assert_int_equal(recovery_reserved(rf), recovery_size_for(100));
    assert_int_equal(stat(f->file, &st), 0);
    /* Real blocks, not a sparse promise. */
    assert_true((uint64_t)st.st_blocks * 512 >= recovery_size_for(100));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_true(recovery_record_max() < 1024);

    fill_max(&evs[0], 1, LEDGER_EVENT_ISSUE);
    fill_max(&evs[1], 2, LEDGER_EVENT_BIND);
    fill_max(&evs[2], 3, LEDGER_EVENT_CONFIRM);
    assert_int_equal(recovery_save(rf, list, 2, err, sizeof err), 2);
    assert_int_equal(recovery_save(rf, list + 2, 1, err, sizeof err), 1); /* appends */
    assert_int_equal(recovery_saved(rf), 3);
    recovery_close(rf);

    assert_int_equal(recovery_inspect(f->dir, &rs, err, sizeof err), 0);
    assert_true(rs.exists);
    assert_int_equal(rs.events, 3);
    assert_int_equal(rs.damaged_at, 0);

    /* A file with events is applied before it is opened again. */
    assert_null(recovery_open(f->dir, 100, err, sizeof err));
    assert_non_null(strstr(err, "applied first"));
}

static void test_apply_writes_rows(void **state)
{
    fixture *f = *state;
    char err[RECOVERY_ERR_MAX];
    ledger_event evs[2];
    const ledger_event *list[2] = {&evs[0], &evs[1]};
    recovery_summary rs;
    ledger_delivery row;

    recovery_file *rf = recovery_open(f->dir, 10, err, sizeof err);
    assert_non_null(rf);
    fill_max(&evs[0], 1, LEDGER_EVENT_ISSUE);
    memset(evs[0].row.path, 'p', 200); /* the ledger wants UTF-8 paths of this size */
    evs[0].row.path[200] = '\0';
    fill_max(&evs[1], 1, LEDGER_EVENT_CONFIRM);
    memcpy(evs[1].row.path, evs[0].row.path, sizeof evs[1].row.path);
    evs[0].row.size = evs[1].row.size = 12345; /* SQLite integers are signed */
    assert_int_equal(recovery_save(rf, list, 2, err, sizeof err), 2);
    recovery_close(rf);

    ledger *lg = ledger_open(f->url, NULL, false, err, sizeof err);
    assert_non_null(lg);
    assert_int_equal(recovery_apply(f->dir, lg, 1, &rs, err, sizeof err), 0);
    assert_int_equal(rs.events, 2);
    assert_int_equal(ledger_get(lg, evs[0].row.id, &row), 1);
    assert_int_equal(row.status, LEDGER_CORRUPTED);
    assert_string_equal(row.user_agent, evs[0].row.user_agent);
    assert_string_equal(row.receipt, evs[1].row.receipt);
    assert_int_equal(row.size, 12345);
    assert_memory_equal(row.received_sha256, evs[1].row.received_sha256, 32);
    ledger_close(lg);
    assert_int_equal(access(f->file, F_OK), -1);
    rf = recovery_open(f->dir, 10, err, sizeof err); /* a fresh, empty file */
    assert_non_null(rf);
    recovery_close(rf);
}

static void test_torn_tail_is_reported_and_kept(void **state)
{
    fixture *f = *state;
    char err[RECOVERY_ERR_MAX];
    ledger_event evs[3];
    const ledger_event *list[3] = {&evs[0], &evs[1], &evs[2]};
    recovery_summary rs;

    recovery_file *rf = recovery_open(f->dir, 10, err, sizeof err);
    assert_non_null(rf);
    for (unsigned i = 0; i < 3; i++) {
        memset(&evs[i], 0, sizeof evs[i]);
        evs[i].kind = LEDGER_EVENT_ISSUE;
        snprintf(evs[i].row.id, sizeof evs[i].row.id, "01900000-0000-7000-8000-%012x", i);
        snprintf(evs[i].row.path, sizeof evs[i].row.path, "/x");
        snprintf(evs[i].row.server, sizeof evs[i].row.server, "s");
        snprintf(evs[i].row.client_addr, sizeof evs[i].row.client_addr, "-");
        evs[i].row.issued_ms = 1;
    }
    assert_int_equal(recovery_save(rf, list, 3, err, sizeof err), 3);
    recovery_close(rf);

    /* A byte of the third record flipped: a save that never completed. */
    int fd = open(f->file, O_RDWR);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t buf[512];
    assert_int_equal(pread(fd, buf, sizeof buf, 0), (ssize_t)sizeof buf);
    size_t off = RECOVERY_HEADER_LEN; /* find the third record's start */
    for (int i = 0; i < 2; i++) {
        uint32_t len = (uint32_t)buf[off + 4] | (uint32_t)buf[off + 5] << 8;
        off += 8 + len + 8;
    }
    buf[off + 20] ^= 0x40;
    assert_int_equal(pwrite(fd, buf + off + 20, 1, (off_t)(off + 20)), 1);
    close(fd);

    assert_int_equal(recovery_inspect(f->dir, &rs, err, sizeof err), 0);
    assert_int_equal(rs.events, 2);
    assert_int_equal(rs.damaged_at, off);

    ledger *lg = ledger_open(f->url, NULL, false, err, sizeof err);
    assert_non_null(lg);
    assert_int_equal(recovery_apply(f->dir, lg, 16, &rs, err, sizeof err), 0);
    assert_int_equal(ledger_count(lg), 2);
    ledger_close(lg);
    /* Kept aside for a person to look at, out of the way of the next start. */
    assert_int_equal(access(f->file, F_OK), -1);
    char cmd[TEST_DIR_MAX + 64];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '^ledger-recovery.damaged-'", f->dir);
    assert_int_equal(system(cmd), 0);
}

static void test_foreign_file_is_refused(void **state)
{
    fixture *f = *state;
    char err[RECOVERY_ERR_MAX];
    recovery_summary rs;
    FILE *fp = fopen(f->file, "w");
    assert_non_null(fp);
    fputs("this is somebody's notes, not a recovery file at all\n", fp);
    fclose(fp);
    assert_int_equal(recovery_inspect(f->dir, &rs, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a receiptd recovery file"));
    assert_null(recovery_open(f->dir, 10, err, sizeof err));
    assert_non_null(strstr(err, "not a receiptd recovery file"));
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_and_reservation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_writes_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_is_reported_and_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_file_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
