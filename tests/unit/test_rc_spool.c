/* rc_spool: atomic entries, crash safety, order, the backoff schedule, and
 * receipt_flush() on what cannot be sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/durable.h"
#include "lib/rc_spool.h"
#include "receipt/receipt.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLIENT_KEY                                                                                 \
    "BC8f8QOqnWiyzfXFWC4zIyh1H9lQiVXxeqa-IZPycBtCDMCETttP-cohU3a_5tJ9JaoRXcrztfhtbgL08K6FG8Q"
#define CLIENT_ID "_p8c_h-lhZVQMr2M2RrlW5dVou4F02jrfVX_wGJR7rM"
#define SHA       "ZkxAVQDhyw7ZRpaXS-eY_CLzIOK0ZqpVWpKfTABtQsE"
#define JWKS      "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k\",\"use\":\"sig\"}]}"

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_rc_spool.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void make_entry(rc_spool_entry *e, uint64_t created_ms, const char *delivery,
                       const char *confirm)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->delivery, sizeof(e->delivery), "%s", delivery);
    snprintf(e->client_key, sizeof(e->client_key), "%s", CLIENT_KEY);
    snprintf(e->client_id, sizeof(e->client_id), "%s", CLIENT_ID);
    snprintf(e->sha256, sizeof(e->sha256), "%s", SHA);
    snprintf(e->expected_sha256, sizeof(e->expected_sha256), "%s", SHA);
    e->confirm_url = strdup(confirm);
    e->body = strdup("eyJhbGciOiJkaXIifQ..aXY.Y3Q.dGFn");
    e->jwks = strdup(JWKS);
    e->url = strdup("http://127.0.0.1:1/a.bin");
    e->content_path = strdup("/a.bin");
    e->size = 14;
    e->expected_size = 14;
    e->intact = true;
    e->created_ms = created_ms;
}

static int count_temps(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (durable_is_temp_name(de->d_name))
            n++;
    closedir(d);
    return n;
}

static void test_write_read_round_trip(void **state)
{
    fixture *f = *state;
    rc_spool_entry e, back;
    char err[256];
    make_entry(&e, 1764100001234, "01a21563-544b-7000-8a1f-0267d50ba7e0",
               "https://example.com/_receipt/confirm");
    e.attempts = 3;
    e.next_attempt_ms = 1764100009999;
    snprintf(e.last_error, sizeof(e.last_error), "HTTP 503");
    assert_int_equal(rc_spool_write(f->dir, &e, err, sizeof(err)), 0);
    assert_string_equal(e.name, "0001764100001234-01a21563-544b-7000-8a1f-0267d50ba7e0.json");
    assert_int_equal(count_temps(f->dir), 0);

    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->dir, e.name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    assert_int_equal(rc_spool_read(f->dir, e.name, &back, err, sizeof(err)), 0);
    assert_string_equal(back.name, e.name);
    assert_string_equal(back.delivery, e.delivery);
    assert_string_equal(back.confirm_url, e.confirm_url);
    assert_string_equal(back.body, e.body);
    assert_string_equal(back.client_key, CLIENT_KEY);
    assert_string_equal(back.client_id, CLIENT_ID);
    assert_non_null(back.jwks);
    assert_non_null(strstr(back.jwks, "\"use\":\"sig\""));
    assert_string_equal(back.url, e.url);
    assert_string_equal(back.content_path, "/a.bin");
    assert_null(back.file);
    assert_string_equal(back.sha256, SHA);
    assert_string_equal(back.expected_sha256, SHA);
    assert_int_equal(back.size, 14);
    assert_int_equal(back.expected_size, 14);
    assert_true(back.intact);
    assert_int_equal(back.created_ms, 1764100001234);
    assert_int_equal(back.attempts, 3);
    assert_int_equal(back.next_attempt_ms, 1764100009999);
    assert_string_equal(back.last_error, "HTTP 503");
    rc_spool_entry_clear(&back);
    rc_spool_entry_clear(&e);
}

static void test_rewrite_is_atomic_replacement(void **state)
{
    fixture *f = *state;
    rc_spool_entry e, back;
    char err[256];
    make_entry(&e, 1000, "01a21563-544b-7000-8a1f-0267d50ba7e0", "https://x.test/c");
    assert_int_equal(rc_spool_write(f->dir, &e, err, sizeof(err)), 0);
    rc_spool_entry_failed(&e, 5000, 0, -1, "no route");
    assert_int_equal(rc_spool_write(f->dir, &e, err, sizeof(err)), 0);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(rc_spool_list(f->dir, &names, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rc_spool_read(f->dir, names[0], &back, err, sizeof(err)), 0);
    assert_int_equal(back.attempts, 1);
    assert_int_equal(back.next_attempt_ms, 5500);
    assert_string_equal(back.last_error, "no route");
    assert_int_equal(count_temps(f->dir), 0);
    rc_spool_list_free(names, n);
    rc_spool_entry_clear(&back);
    rc_spool_entry_clear(&e);
}

/* A crash after the temporary file is durable but before the rename: the
 * spool shows the old state, and the leftover is swept once stale. */
static void test_crash_between_write_and_rename(void **state)
{
    fixture *f = *state;
    rc_spool_entry e, back;
    char err[256], tmp[DURABLE_PATH_MAX], final_path[DURABLE_PATH_MAX];
    make_entry(&e, 2000, "01a21563-544b-7000-8a1f-0267d50ba7e1", "https://x.test/c");

    /* A new entry: nothing visible at all. */
    assert_int_equal(rc_spool_stage(f->dir, &e, tmp, final_path, err, sizeof(err)), 0);
    assert_int_equal(access(tmp, F_OK), 0);
    assert_int_not_equal(access(final_path, F_OK), 0);
    char **names = NULL;
    size_t n = 99;
    assert_int_equal(rc_spool_list(f->dir, &names, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    rc_spool_list_free(names, n);

    /* A young temporary file may belong to a live writer: kept. */
    struct stat st;
    assert_int_equal(stat(tmp, &st), 0);
    uint64_t mtime_ms = (uint64_t)st.st_mtim.tv_sec * 1000u;
    assert_int_equal(rc_spool_sweep(f->dir, mtime_ms + 10, RC_SPOOL_TEMP_MAX_AGE_MS), 0);
    assert_int_equal(access(tmp, F_OK), 0);
    /* A stale one is swept. */
    assert_int_equal(rc_spool_sweep(f->dir, mtime_ms + RC_SPOOL_TEMP_MAX_AGE_MS + 1000,
                                    RC_SPOOL_TEMP_MAX_AGE_MS),
                     1);
    assert_int_not_equal(access(tmp, F_OK), 0);

    /* An update that crashes: the old entry stays whole. */
    assert_int_equal(rc_spool_write(f->dir, &e, err, sizeof(err)), 0);
    rc_spool_entry_failed(&e, 9000, 0, -1, "second");
    assert_int_equal(rc_spool_stage(f->dir, &e, tmp, final_path, err, sizeof(err)), 0);
    assert_int_equal(rc_spool_read(f->dir, e.name, &back, err, sizeof(err)), 0);
    assert_int_equal(back.attempts, 0);
    rc_spool_entry_clear(&back);
    assert_int_equal(rc_spool_list(f->dir, &names, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    rc_spool_list_free(names, n);

    /* Recovery is the commit that did not happen, or the next write. */
    assert_int_equal(durable_commit(tmp, final_path, true, err, sizeof(err)), 0);
    assert_int_equal(rc_spool_read(f->dir, e.name, &back, err, sizeof(err)), 0);
    assert_int_equal(back.attempts, 1);
    assert_int_equal(count_temps(f->dir), 0);
    rc_spool_entry_clear(&back);
    rc_spool_entry_clear(&e);
}

static void test_order_is_creation_order(void **state)
{
    fixture *f = *state;
    static const struct {
        uint64_t created;
        const char *delivery;
    } entries[] = {
        {1000, "01a21563-544b-7000-8a1f-0267d50ba7e3"},
        {999, "01a21563-544b-7000-8a1f-0267d50ba7e9"},
        {1764100000000, "01a21563-544b-7000-8a1f-0267d50ba7e0"},
        {1000, "01a21563-544b-7000-8a1f-0267d50ba7e2"},
        {5, "01a21563-544b-7000-8a1f-0267d50ba7e5"},
    };
    static const char *expected[] = {
        "0000000000000005-01a21563-544b-7000-8a1f-0267d50ba7e5.json",
        "0000000000000999-01a21563-544b-7000-8a1f-0267d50ba7e9.json",
        "0000000000001000-01a21563-544b-7000-8a1f-0267d50ba7e2.json",
        "0000000000001000-01a21563-544b-7000-8a1f-0267d50ba7e3.json",
        "0001764100000000-01a21563-544b-7000-8a1f-0267d50ba7e0.json",
    };
    char err[256];
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        rc_spool_entry e;
        make_entry(&e, entries[i].created, entries[i].delivery, "https://x.test/c");
        assert_int_equal(rc_spool_write(f->dir, &e, err, sizeof(err)), 0);
        rc_spool_entry_clear(&e);
    }
    /* Files that are not entries are not listed. */
    char path[256];
    snprintf(path, sizeof(path), "%s/.0000000000000001-x.json.tmp-abcdef", f->dir);
    close(open(path, O_CREAT | O_WRONLY, 0600));
    snprintf(path, sizeof(path), "%s/0000000000000001-x.json.bad", f->dir);
    close(open(path, O_CREAT | O_WRONLY, 0600));
    snprintf(path, sizeof(path), "%s/.lock", f->dir);
    close(open(path, O_CREAT | O_WRONLY, 0600));

    char **names = NULL;
    size_t n = 0;
    assert_int_equal(rc_spool_list(f->dir, &names, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(names[i], expected[i]);
    rc_spool_list_free(names, n);
}

static void test_corrupt_entry_is_set_aside(void **state)
{
    fixture *f = *state;
    char err[256], path[256];
    const char *name = "0000000000000001-01a21563-544b-7000-8a1f-0267d50ba7e0.json";
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_int_equal(write(fd, "{\"v\":1,\"deliv", 13), 13);
    close(fd);
    rc_spool_entry e;
    assert_int_equal(rc_spool_read(f->dir, name, &e, err, sizeof(err)), -2);
    assert_int_equal(rc_spool_quarantine(f->dir, name), 0);
    char **names = NULL;
    size_t n = 9;
    assert_int_equal(rc_spool_list(f->dir, &names, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    rc_spool_list_free(names, n);
    size_t path_len = strlen(path);
    snprintf(path + path_len, sizeof(path) - path_len, "%s", RC_SPOOL_BAD_SUFFIX);
    assert_int_equal(access(path, F_OK), 0);
    /* A missing entry reads as an I/O error, and removing it is no error. */
    assert_int_equal(rc_spool_read(f->dir, name, &e, err, sizeof(err)), -1);
    assert_int_equal(rc_spool_remove(f->dir, name, err, sizeof(err)), 0);
}

static void test_backoff_schedule(void **state)
{
    (void)state;
    assert_int_equal(rc_spool_backoff_ms(0, 12345), 0);
    /* Equal jitter: between half and all of base * 2^(n-1). */
    uint64_t d = 1000;
    for (unsigned n = 1; n <= 12; n++) {
        uint64_t full = d < RC_SPOOL_BACKOFF_CAP_MS ? d : RC_SPOOL_BACKOFF_CAP_MS;
        assert_int_equal(rc_spool_backoff_ms(n, 0), full / 2);
        assert_int_equal(rc_spool_backoff_ms(n, full - full / 2), full);
        for (uint64_t r = 1; r < 2000000; r = r * 7 + 3) {
            uint64_t w = rc_spool_backoff_ms(n, r * 0x9e3779b97f4a7c15ull);
            assert_true(w >= full / 2);
            assert_true(w <= full);
        }
        d *= 2;
    }
    assert_int_equal(rc_spool_backoff_ms(1, 0), 500);
    assert_int_equal(rc_spool_backoff_ms(1, 500), 1000);
    assert_int_equal(rc_spool_backoff_ms(2, 0), 1000);
    assert_int_equal(rc_spool_backoff_ms(3, 0), 2000);
    /* 2^12 s > 1 h: capped from the 13th attempt on, without overflow. */
    assert_int_equal(rc_spool_backoff_ms(13, 0), RC_SPOOL_BACKOFF_CAP_MS / 2);
    assert_int_equal(rc_spool_backoff_ms(64, UINT64_MAX),
                     RC_SPOOL_BACKOFF_CAP_MS / 2 + UINT64_MAX % (RC_SPOOL_BACKOFF_CAP_MS / 2 + 1));
    assert_true(rc_spool_backoff_ms(1000000, UINT64_MAX) <= RC_SPOOL_BACKOFF_CAP_MS);
    assert_true(rc_spool_backoff_ms(UINT32_MAX, 7) >= RC_SPOOL_BACKOFF_CAP_MS / 2);
    /* Pure: the same arguments, the same wait. */
    assert_int_equal(rc_spool_backoff_ms(5, 424242), rc_spool_backoff_ms(5, 424242));
}

static void test_failed_attempts_and_retry_after(void **state)
{
    (void)state;
    rc_spool_entry e;
    make_entry(&e, 0, "01a21563-544b-7000-8a1f-0267d50ba7e0", "https://x.test/c");
    rc_spool_entry_failed(&e, 10000, 0, -1, "a");
    assert_int_equal(e.attempts, 1);
    assert_int_equal(e.next_attempt_ms, 10500);
    assert_false(rc_spool_due(&e, 10499));
    assert_true(rc_spool_due(&e, 10500));
    rc_spool_entry_failed(&e, 20000, 0, -1, "b");
    assert_int_equal(e.attempts, 2);
    assert_int_equal(e.next_attempt_ms, 21000);
    /* A longer Retry-After wins; a shorter one does not shorten the wait. */
    rc_spool_entry_failed(&e, 30000, 0, 120, "429");
    assert_int_equal(e.next_attempt_ms, 30000 + 120000);
    rc_spool_entry_failed(&e, 40000, 0, 1, "503");
    assert_int_equal(e.next_attempt_ms, 40000 + 4000);
    /* An absurd Retry-After is capped. */
    rc_spool_entry_failed(&e, 0, 0, 10L * 24 * 3600, "429");
    assert_int_equal(e.next_attempt_ms, RC_SPOOL_RETRY_AFTER_MAX_MS);
    assert_string_equal(e.last_error, "429");
    rc_spool_entry_clear(&e);
}

typedef struct flushed {
    int calls;
    receipt_result last;
    char id[64];
} flushed;

static void on_flushed(const receipt_delivery *d, receipt_result r, const char *message, void *user)
{
    flushed *f = user;
    f->calls++;
    f->last = r;
    snprintf(f->id, sizeof(f->id), "%s", receipt_delivery_id(d));
    assert_non_null(message);
}

static void test_flush_keeps_what_cannot_be_sent(void **state)
{
    fixture *f = *state;
    char err[256];
    rc_spool_entry e, back;
    /* Port 1 on loopback: refused at once. */
    make_entry(&e, 1000, "01a21563-544b-7000-8a1f-0267d50ba7e0",
               "http://127.0.0.1:1/_receipt/confirm");
    assert_int_equal(rc_spool_write(f->dir, &e, err, sizeof(err)), 0);

    receipt_client *c = NULL;
    assert_int_equal(receipt_client_new(&c), RECEIPT_OK);
    assert_int_equal(receipt_flush(c, 0, NULL, NULL), RECEIPT_ERR_ARGUMENT);
    assert_int_equal(receipt_client_set_spool_dir(c, f->dir), RECEIPT_OK);
    size_t count = 0;
    assert_int_equal(receipt_spool_count(c, &count), RECEIPT_OK);
    assert_int_equal(count, 1);

    flushed seen = {0};
    assert_int_equal(receipt_flush(c, 0, on_flushed, &seen), RECEIPT_SPOOLED);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.last, RECEIPT_SPOOLED);
    assert_string_equal(seen.id, e.delivery);
    assert_int_equal(rc_spool_read(f->dir, e.name, &back, err, sizeof(err)), 0);
    assert_int_equal(back.attempts, 1);
    assert_true(back.next_attempt_ms > 1000);
    assert_non_null(strstr(back.last_error, "127.0.0.1:1"));
    rc_spool_entry_clear(&back);

    /* Not due yet: nothing is tried, it still waits. */
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(receipt_flush(c, 0, on_flushed, &seen), RECEIPT_SPOOLED);
    assert_int_equal(seen.calls, 0);
    /* Unless everything is asked for. */
    assert_int_equal(receipt_flush(c, RECEIPT_FLUSH_ALL, on_flushed, &seen), RECEIPT_SPOOLED);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(rc_spool_read(f->dir, e.name, &back, err, sizeof(err)), 0);
    assert_int_equal(back.attempts, 2);
    rc_spool_entry_clear(&back);

    /* Another client's key: its confirmations are not this client's to send. */
    assert_int_equal(receipt_client_generate_key(c), RECEIPT_OK);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(receipt_flush(c, RECEIPT_FLUSH_ALL, on_flushed, &seen), RECEIPT_OK);
    assert_int_equal(seen.calls, 0);
    assert_int_equal(receipt_spool_count(c, &count), RECEIPT_OK);
    assert_int_equal(count, 1);

    receipt_client_free(c);
    rc_spool_entry_clear(&e);
}

static void test_flush_refuses_insecure_confirm_url(void **state)
{
    fixture *f = *state;
    char err[256];
    rc_spool_entry e;
    make_entry(&e, 1000, "01a21563-544b-7000-8a1f-0267d50ba7e0",
               "http://receipt.invalid/_receipt/confirm");
    assert_int_equal(rc_spool_write(f->dir, &e, err, sizeof(err)), 0);
    receipt_client *c = NULL;
    assert_int_equal(receipt_client_new(&c), RECEIPT_OK);
    assert_int_equal(receipt_client_set_spool_dir(c, f->dir), RECEIPT_OK);
    flushed seen = {0};
    assert_int_equal(receipt_flush(c, RECEIPT_FLUSH_ALL, on_flushed, &seen), RECEIPT_ERR_POLICY);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.last, RECEIPT_ERR_POLICY);
    /* Kept, untouched: allowing insecure confirmation later can send it. */
    size_t count = 0;
    assert_int_equal(receipt_spool_count(c, &count), RECEIPT_OK);
    assert_int_equal(count, 1);
    receipt_client_free(c);
    rc_spool_entry_clear(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_read_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrite_is_atomic_replacement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_between_write_and_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_is_creation_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_entry_is_set_aside, setup, teardown),
        cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test(test_failed_attempts_and_retry_after),
        cmocka_unit_test_setup_teardown(test_flush_keeps_what_cannot_be_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_refuses_insecure_confirm_url, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
