/* rc_key: client key files are private, atomic, and read back the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/durable.h"
#include "common/eckey.h"
#include "lib/rc_key.h"
#include "receipt/receipt.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    char dir[64];
    char path[256];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_rc_keys.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/client-key.pem", f->dir);
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

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* Files in dir other than . and ..; temporary ones must never be left. */
static int count_entries(const char *dir, int *temps)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    *temps = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        n++;
        if (durable_is_temp_name(de->d_name))
            (*temps)++;
    }
    closedir(d);
    return n;
}

static void test_save_load_round_trip(void **state)
{
    fixture *f = *state;
    eckey *key = eckey_generate();
    eckey *back = NULL;
    char err[256];
    assert_non_null(key);
    assert_int_equal(rc_key_save(key, f->path, false, err, sizeof(err)), RECEIPT_OK);

    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    int temps = 0;
    assert_int_equal(count_entries(f->dir, &temps), 1);
    assert_int_equal(temps, 0);

    assert_int_equal(rc_key_load(f->path, &back, err, sizeof(err)), RECEIPT_OK);
    assert_non_null(back);
    assert_true(eckey_has_private(back));
    assert_string_equal(eckey_thumbprint(back), eckey_thumbprint(key));
    assert_memory_equal(eckey_point(back), eckey_point(key), ECKEY_POINT_LEN);
    eckey_free(back);
    eckey_free(key);
}

static void test_pem_is_pkcs8(void **state)
{
    fixture *f = *state;
    eckey *key = eckey_generate();
    char err[256];
    assert_int_equal(rc_key_save(key, f->path, false, err, sizeof(err)), RECEIPT_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(durable_read(f->path, 4096, &text, &len, NULL, err, sizeof(err)), 0);
    assert_non_null(strstr(text, "-----BEGIN PRIVATE KEY-----"));
    free(text);
    eckey_free(key);
}

static void test_no_overwrite_without_asking(void **state)
{
    fixture *f = *state;
    eckey *first = eckey_generate(), *second = eckey_generate(), *back = NULL;
    char err[256];
    assert_int_equal(rc_key_save(first, f->path, false, err, sizeof(err)), RECEIPT_OK);
    assert_int_equal(rc_key_save(second, f->path, false, err, sizeof(err)), RECEIPT_ERR_EXISTS);
    assert_int_equal(rc_key_load(f->path, &back, err, sizeof(err)), RECEIPT_OK);
    assert_string_equal(eckey_thumbprint(back), eckey_thumbprint(first));
    eckey_free(back);

    assert_int_equal(rc_key_save(second, f->path, true, err, sizeof(err)), RECEIPT_OK);
    assert_int_equal(rc_key_load(f->path, &back, err, sizeof(err)), RECEIPT_OK);
    assert_string_equal(eckey_thumbprint(back), eckey_thumbprint(second));
    int temps = 0;
    assert_int_equal(count_entries(f->dir, &temps), 1);
    assert_int_equal(temps, 0);
    eckey_free(back);
    eckey_free(first);
    eckey_free(second);
}

static void test_parent_directories_made_private(void **state)
{
    fixture *f = *state;
    char path[512], sub[300];
    snprintf(sub, sizeof(sub), "%s/a/b", f->dir);
    snprintf(path, sizeof(path), "%s/key.pem", sub);
    eckey *key = eckey_generate();
    char err[256];
    assert_int_equal(rc_key_save(key, path, false, err, sizeof(err)), RECEIPT_OK);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 077, 0);
    eckey_free(key);
}

static void test_refuses_key_others_can_read(void **state)
{
    fixture *f = *state;
    eckey *key = eckey_generate(), *back = NULL;
    char err[256];
    assert_int_equal(rc_key_save(key, f->path, false, err, sizeof(err)), RECEIPT_OK);
    assert_int_equal(chmod(f->path, 0644), 0);
    assert_int_equal(rc_key_load(f->path, &back, err, sizeof(err)), RECEIPT_ERR_KEY);
    assert_null(back);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(f->path, 0620), 0);
    assert_int_equal(rc_key_load(f->path, &back, err, sizeof(err)), RECEIPT_ERR_KEY);
    assert_int_equal(chmod(f->path, 0400), 0);
    assert_int_equal(rc_key_load(f->path, &back, err, sizeof(err)), RECEIPT_OK);
    eckey_free(back);
    eckey_free(key);
}

static void test_refuses_bad_files(void **state)
{
    fixture *f = *state;
    eckey *back = NULL;
    char err[256];

    assert_int_equal(rc_key_load(f->path, &back, err, sizeof(err)), RECEIPT_ERR_KEY);
    assert_null(back);

    write_file(f->path, "not a key\n", 0600);
    assert_int_equal(rc_key_load(f->path, &back, err, sizeof(err)), RECEIPT_ERR_KEY);
    assert_null(back);

    /* A public key cannot confirm anything. */
    eckey *key = eckey_generate();
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, eckey_pkey(key)), 1);
    char *pem = NULL;
    long n = BIO_get_mem_data(bio, &pem);
    char *copy = strndup(pem, (size_t)n);
    write_file(f->path, copy, 0600);
    assert_int_equal(rc_key_load(f->path, &back, err, sizeof(err)), RECEIPT_ERR_KEY);
    assert_null(back);
    free(copy);
    BIO_free(bio);
    eckey_free(key);

    /* Larger than any key file: refused before parsing. */
    char *big = malloc(RC_KEY_FILE_MAX + 2);
    memset(big, 'A', RC_KEY_FILE_MAX + 1);
    big[RC_KEY_FILE_MAX + 1] = '\0';
    write_file(f->path, big, 0600);
    assert_int_not_equal(rc_key_load(f->path, &back, err, sizeof(err)), RECEIPT_OK);
    assert_null(back);
    free(big);

    /* A directory is no key file. */
    assert_int_not_equal(rc_key_load(f->dir, &back, err, sizeof(err)), RECEIPT_OK);
}

static void test_public_api(void **state)
{
    fixture *f = *state;
    receipt_client *c = NULL;
    assert_int_equal(receipt_client_new(&c), RECEIPT_OK);
    assert_null(receipt_client_id(c));
    assert_null(receipt_client_key_header(c));
    assert_int_equal(receipt_client_save_key(c, f->path, 0), RECEIPT_ERR_NO_KEY);
    assert_string_not_equal(receipt_errmsg(c), "");

    assert_int_equal(receipt_client_generate_key(c), RECEIPT_OK);
    const char *id = receipt_client_id(c);
    assert_non_null(id);
    assert_int_equal(strlen(id), 43);
    assert_int_equal(strlen(receipt_client_key_header(c)), 87);
    char saved[44];
    snprintf(saved, sizeof(saved), "%s", id);
    assert_int_equal(receipt_client_save_key(c, f->path, 0), RECEIPT_OK);
    assert_int_equal(receipt_client_save_key(c, f->path, 0), RECEIPT_ERR_EXISTS);
    assert_int_equal(receipt_client_save_key(c, f->path, RECEIPT_SAVE_OVERWRITE), RECEIPT_OK);

    receipt_client *c2 = NULL;
    assert_int_equal(receipt_client_new(&c2), RECEIPT_OK);
    assert_int_equal(receipt_client_load_key(c2, f->path), RECEIPT_OK);
    assert_string_equal(receipt_client_id(c2), saved);
    assert_string_equal(receipt_client_key_header(c2), receipt_client_key_header(c));

    /* A failed load leaves the key it had. */
    assert_int_equal(receipt_client_load_key(c2, "/nonexistent/key.pem"), RECEIPT_ERR_KEY);
    assert_string_equal(receipt_client_id(c2), saved);
    assert_non_null(strstr(receipt_errmsg(c2), "/nonexistent/key.pem"));

    receipt_client_free(c2);
    receipt_client_free(c);
    receipt_client_free(NULL);
    assert_string_equal(receipt_strerror(RECEIPT_OK), "success");
    assert_non_null(receipt_strerror((receipt_result)999));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_save_load_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pem_is_pkcs8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_overwrite_without_asking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parent_directories_made_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_key_others_can_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_api, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
