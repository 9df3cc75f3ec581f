#include "daemon/recovery.h"

#include "daemon/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <openssl/sha.h>
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
    assert_int_equal(recovery_apply(f->dir, lg, 1, NULL, &rs, err, sizeof err), 0);
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
    uint8_t buf[2048]; /* the header and three short records */
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
    assert_int_equal(recovery_apply(f->dir, lg, 16, NULL, &rs, err, sizeof err), 0);
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

/* The kind and the bytes sent come back as they went in. */
static void test_kinds_and_bytes_sent(void **state)
{
    fixture *f = *state;
    char err[RECOVERY_ERR_MAX];
    ledger_event ev;
    const ledger_event *list[1] = {&ev};
    recovery_summary rs;
    ledger_delivery row;

    recovery_file *rf = recovery_open(f->dir, 10, err, sizeof err);
    assert_non_null(rf);
    fill_max(&ev, 9, LEDGER_EVENT_ISSUE);
    snprintf(ev.row.path, sizeof ev.row.path, "/page.html");
    ev.row.size = 100;
    ev.row.kind = LEDGER_KIND_PAGE;
    memset(ev.row.delivered_sha256, 0x5d, 32);
    ev.row.delivered_size = 148;
    assert_int_equal(recovery_save(rf, list, 1, err, sizeof err), 1);
    recovery_close(rf);
    ledger *lg = ledger_open(f->url, NULL, false, err, sizeof err);
    assert_non_null(lg);
    assert_int_equal(recovery_apply(f->dir, lg, 10, NULL, &rs, err, sizeof err), 0);
    assert_int_equal(ledger_get(lg, ev.row.id, &row), 1);
    assert_int_equal(row.kind, LEDGER_KIND_PAGE);
    assert_int_equal(row.delivered_size, 148);
    assert_memory_equal(row.delivered_sha256, ev.row.delivered_sha256, 32);
    ledger_close(lg);
}

/*
 * A file saved before records carried the kind (tag "RCV1") is applied: its
 * deliveries are tracked and sent what they stored. The record is made
 * here the way that version wrote it.
 */
static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static void test_first_version_records(void **state)
{
    fixture *f = *state;
    char err[RECOVERY_ERR_MAX];
    uint8_t file[1024] = "receiptd ledger recovery v1\n";
    uint8_t *rec = file + RECOVERY_HEADER_LEN;
    uint8_t *p = rec + 8;
    const char *strings[9] = {"01900000-0000-7000-8000-0000000000f1",
                              "/old.bin",
                              "edge-1",
                              "192.0.2.1",
                              "",
                              "",
                              "",
                              "",
                              ""};
    p[0] = 0; /* issue */
    p[1] = 0; /* issued */
    p[2] = 0;
    p[3] = 0;
    p += 4;
    const uint64_t numbers[6] = {4096, 1764100000000ull, 0, 0, 0, 0};
    for (int i = 0; i < 6; i++, p += 8)
        put_le(p, numbers[i], 8);
    memset(p, 0xab, 32);
    memset(p + 32, 0, 32);
    p += 64;
    for (int i = 0; i < 9; i++) {
        size_t n = strlen(strings[i]);
        put_le(p, n, 2);
        memcpy(p + 2, strings[i], n);
        p += 2 + n;
    }
    uint32_t len = (uint32_t)(p - (rec + 8));
    put_le(rec, 0x31564352u, 4); /* "RCV1" */
    put_le(rec + 4, len, 4);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(rec, 8 + len, digest);
    memcpy(p, digest, 8);
    size_t total = (size_t)(p + 8 - file);
    int fd = open(f->file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, file, total + 64), (ssize_t)(total + 64)); /* zeros end the list */
    close(fd);

    ledger *lg = ledger_open(f->url, NULL, false, err, sizeof err);
    assert_non_null(lg);
    recovery_summary rs;
    assert_int_equal(recovery_apply(f->dir, lg, 10, NULL, &rs, err, sizeof err), 0);
    assert_int_equal(rs.events, 1);
    assert_int_equal(rs.damaged_at, 0);
    ledger_delivery row;
    assert_int_equal(ledger_get(lg, strings[0], &row), 1);
    assert_int_equal(row.kind, LEDGER_KIND_TRACKED);
    assert_int_equal(row.size, 4096);
    assert_int_equal(row.delivered_size, 4096);
    assert_memory_equal(row.delivered_sha256, row.sha256, 32);
    assert_int_equal(row.sha256[0], 0xab);
    ledger_close(lg);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_and_reservation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_writes_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_is_reported_and_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_file_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kinds_and_bytes_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_version_records, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
