/* keystore: creation, reload, file modes, refusals, and the JWK Set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/keystore.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[256];

static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof(base), "/tmp/receipt-keystore-XXXXXX");
    return mkdtemp(base) == NULL ? -1 : 0;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    (void)state;
    rm_tree(base);
    return 0;
}

static void sub(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", base, name);
}

static void test_create_and_reload(void **state)
{
    char dir[300], file[400], err[512] = "";
    bool created = false;
    keystore *a, *b;
    struct stat st;

    (void)state;
    sub(dir, sizeof(dir), "state1");
    snprintf(file, sizeof(file), "%s/%s", dir, KEYSTORE_FILE);
    a = keystore_open(dir, true, &created, err, sizeof(err));
    assert_non_null(a);
    assert_true(created);
    assert_true(eckey_has_private(a->enc));
    assert_true(eckey_has_private(a->sig));
    assert_string_not_equal(eckey_thumbprint(a->enc), eckey_thumbprint(a->sig));

    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    b = keystore_open(dir, true, &created, err, sizeof(err));
    assert_non_null(b);
    assert_false(created);
    assert_string_equal(eckey_thumbprint(a->enc), eckey_thumbprint(b->enc));
    assert_string_equal(eckey_thumbprint(a->sig), eckey_thumbprint(b->sig));
    assert_memory_equal(a->ticket_secret, b->ticket_secret, TICKET_SECRET_LEN);
    keystore_free(b);
    /* create false also loads what exists */
    b = keystore_open(dir, false, NULL, err, sizeof(err));
    assert_non_null(b);
    keystore_free(b);
    keystore_free(a);
    keystore_free(NULL);
}

static void test_missing_without_create(void **state)
{
    char dir[300], err[512] = "";

    (void)state;
    sub(dir, sizeof(dir), "absent");
    assert_null(keystore_open(dir, false, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, dir));
    assert_int_equal(mkdir(dir, 0700), 0);
    err[0] = '\0';
    assert_null(keystore_open(dir, false, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, KEYSTORE_FILE));
}

static void test_refuses_open_dir(void **state)
{
    char dir[300], err[512] = "";
    keystore *ks;

    (void)state;
    sub(dir, sizeof(dir), "state2");
    ks = keystore_open(dir, true, NULL, err, sizeof(err));
    assert_non_null(ks);
    keystore_free(ks);
    assert_int_equal(chmod(dir, 0755), 0);
    assert_null(keystore_open(dir, true, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, dir));
    assert_non_null(strstr(err, "0755"));
    assert_non_null(strstr(err, "chmod 700"));
    /* Group access alone is the operator's choice. */
    assert_int_equal(chmod(dir, 0750), 0);
    ks = keystore_open(dir, true, NULL, err, sizeof(err));
    assert_non_null(ks);
    keystore_free(ks);
}

static void test_refuses_readable_file(void **state)
{
    char dir[300], file[400], err[512] = "";
    keystore *ks;

    (void)state;
    sub(dir, sizeof(dir), "state3");
    snprintf(file, sizeof(file), "%s/%s", dir, KEYSTORE_FILE);
    ks = keystore_open(dir, true, NULL, err, sizeof(err));
    assert_non_null(ks);
    keystore_free(ks);
    assert_int_equal(chmod(file, 0644), 0);
    assert_null(keystore_open(dir, true, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, file));
    assert_non_null(strstr(err, "0644"));
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(file, 0640), 0);
    assert_null(keystore_open(dir, true, NULL, err, sizeof(err)));
    assert_int_equal(chmod(file, 0400), 0);
    ks = keystore_open(dir, true, NULL, err, sizeof(err));
    assert_non_null(ks);
    keystore_free(ks);
}

static void test_refuses_bad_content(void **state)
{
    char dir[300], file[400], err[512] = "";
    FILE *f;

    (void)state;
    sub(dir, sizeof(dir), "state4");
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(file, sizeof(file), "%s/%s", dir, KEYSTORE_FILE);
    f = fopen(file, "w");
    fputs("{\"v\":1,\"enc\":{},\"sig\":{},\"ticket_secret\":\"AA\"}", f);
    fclose(f);
    assert_int_equal(chmod(file, 0600), 0);
    assert_null(keystore_open(dir, true, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, file));
}

static void test_jwks_shape(void **state)
{
    char dir[300], err[512] = "";
    keystore *ks;
    json_t *set, *keys;
    const char *uses[2] = {"enc", "sig"};

    (void)state;
    sub(dir, sizeof(dir), "state5");
    ks = keystore_open(dir, true, NULL, err, sizeof(err));
    assert_non_null(ks);
    char *text = keystore_jwks(ks);
    assert_non_null(text);
    assert_null(strchr(text, '\n')); /* compact: served as it is */
    set = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(set);
    assert_int_equal(json_object_size(set), 1);
    keys = json_object_get(set, "keys");
    assert_true(json_is_array(keys));
    assert_int_equal(json_array_size(keys), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *k = json_array_get(keys, i);
        const eckey *want = i == 0 ? ks->enc : ks->sig;
        eckey *back;

        assert_string_equal(json_string_value(json_object_get(k, "kty")), "EC");
        assert_string_equal(json_string_value(json_object_get(k, "crv")), "P-256");
        assert_string_equal(json_string_value(json_object_get(k, "use")), uses[i]);
        assert_string_equal(json_string_value(json_object_get(k, "kid")), eckey_thumbprint(want));
        assert_null(json_object_get(k, "d"));
        back = eckey_from_jwk(k);
        assert_non_null(back);
        assert_false(eckey_has_private(back));
        assert_string_equal(eckey_thumbprint(back), eckey_thumbprint(want));
        eckey_free(back);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 1), "alg")),
                        "ES256");
    assert_null(json_object_get(json_array_get(keys, 0), "alg"));
    json_decref(set);
    keystore_free(ks);
}

/* Export, parse, install: the keys another node of the site gets. */
static void test_export_install(void **state)
{
    char a_dir[300], b_dir[300], c_dir[300], file[400], err[512] = "";
    char fa[17], fb[17];
    struct stat st;
    (void)state;
    sub(a_dir, sizeof(a_dir), "node-a");
    sub(b_dir, sizeof(b_dir), "node-b");
    sub(c_dir, sizeof(c_dir), "node-c");
    keystore *a = keystore_open(a_dir, true, NULL, err, sizeof(err));
    keystore *c = keystore_open(c_dir, true, NULL, err, sizeof(err));
    assert_non_null(a);
    assert_non_null(c);
    assert_false(keystore_same(a, c));

    size_t len = 0;
    char *text = keystore_export(a, &len);
    assert_non_null(text);
    keystore *parsed = keystore_parse("-", text, len, err, sizeof(err));
    assert_non_null(parsed);
    assert_true(keystore_same(a, parsed));
    assert_null(keystore_parse("-", text, len / 2, err, sizeof(err)));
    assert_non_null(strstr(err, "-:"));

    assert_int_equal(keystore_install(b_dir, parsed, false, err, sizeof(err)), 0);
    snprintf(file, sizeof(file), "%s/%s", b_dir, KEYSTORE_FILE);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    keystore *b = keystore_open(b_dir, false, NULL, err, sizeof(err));
    assert_non_null(b);
    assert_true(keystore_same(a, b));
    keystore_secret_fingerprint(a, fa);
    keystore_secret_fingerprint(b, fb);
    assert_string_equal(fa, fb);
    assert_int_equal(strlen(fa), 16);
    assert_int_equal(keystore_install(b_dir, parsed, false, err, sizeof(err)), 1);

    /* Other keys stay, unless replaced on purpose. */
    assert_int_equal(keystore_install(c_dir, parsed, false, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--replace"));
    keystore *still = keystore_open(c_dir, false, NULL, err, sizeof(err));
    assert_true(keystore_same(still, c));
    assert_int_equal(keystore_install(c_dir, parsed, true, err, sizeof(err)), 0);
    keystore_free(still);
    still = keystore_open(c_dir, false, NULL, err, sizeof(err));
    assert_true(keystore_same(still, a));

    keystore_free(still);
    keystore_free(b);
    keystore_free(parsed);
    keystore_free(c);
    keystore_free(a);
    free(text);
}

/* The log key: made once, named by its origin, kept in the file. */
static void test_log_key(void **state)
{
    char dir[300], err[512] = "";
    (void)state;
    sub(dir, sizeof(dir), "log-key");
    keystore *ks = keystore_open(dir, true, NULL, err, sizeof(err));
    assert_non_null(ks);
    assert_null(ks->log);
    assert_int_equal(
        keystore_add_log_key(ks, dir, "example.com/_receipt/log", 1000, err, sizeof(err)), 1);
    assert_non_null(ks->log);
    assert_string_equal(note_signer_name(ks->log), "example.com/_receipt/log");
    assert_int_equal(keystore_add_log_key(ks, dir, "other/_receipt/log", 2000, err, sizeof(err)),
                     0);
    assert_string_equal(note_signer_name(ks->log), "example.com/_receipt/log");
    keystore *again = keystore_open(dir, false, NULL, err, sizeof(err));
    assert_non_null(again);
    assert_true(keystore_same(ks, again));
    assert_int_equal(again->log_since_ms, 1000);
    /* A name a note cannot carry is refused. */
    keystore *none = keystore_open(dir, false, NULL, err, sizeof(err));
    note_signer_free(none->log);
    none->log = NULL;
    assert_int_equal(keystore_add_log_key(none, dir, "has space", 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "has space"));
    keystore_free(none);
    keystore_free(again);
    keystore_free(ks);
}

/* A version 1 file (no log key, no history) still loads. */
static void test_version_1(void **state)
{
    char dir[300], file[400], err[512] = "";
    (void)state;
    sub(dir, sizeof(dir), "v1");
    keystore *ks = keystore_open(dir, true, NULL, err, sizeof(err));
    assert_non_null(ks);
    json_t *enc = eckey_to_jwk(ks->enc, true), *sig = eckey_to_jwk(ks->sig, true);
    json_t *root = json_pack("{s:i, s:o, s:o, s:s}", "v", 1, "enc", enc, "sig", sig,
                             "ticket_secret", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
    snprintf(file, sizeof(file), "%s/%s", dir, KEYSTORE_FILE);
    assert_int_equal(json_dump_file(root, file, 0), 0);
    json_decref(root);
    assert_int_equal(chmod(file, 0600), 0);
    keystore *v1 = keystore_open(dir, false, NULL, err, sizeof(err));
    assert_non_null(v1);
    assert_null(v1->log);
    assert_int_equal(v1->old_sig_count, 0);
    assert_string_equal(eckey_thumbprint(v1->sig), eckey_thumbprint(ks->sig));
    keystore_free(v1);
    keystore_free(ks);
}

static json_t *jwks_of(const keystore *ks)
{
    char *text = keystore_jwks(ks);
    assert_non_null(text);
    json_t *set = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(set);
    return set;
}

/* Rotating the signing key: the old one verifies only, in the JWK Set. */
static void test_rotate_signing(void **state)
{
    char dir[300], err[512] = "";
    (void)state;
    sub(dir, sizeof(dir), "rotate-sig");
    keystore *before = keystore_open(dir, true, NULL, err, sizeof(err));
    assert_non_null(before);
    keystore *after = keystore_rotate(dir, KEYSTORE_SIGNING, 5000, err, sizeof(err));
    assert_non_null(after);
    assert_string_not_equal(eckey_thumbprint(after->sig), eckey_thumbprint(before->sig));
    assert_string_equal(eckey_thumbprint(after->enc), eckey_thumbprint(before->enc));
    assert_int_equal(after->old_sig_count, 1);
    assert_false(eckey_has_private(after->old_sig[0].key));
    assert_int_equal(after->old_sig[0].retired_ms, 5000);
    assert_int_equal(after->sig_since_ms, 5000);
    uint64_t since = 1, retired = 1;
    assert_ptr_equal(keystore_find_sig(after, eckey_thumbprint(before->sig), &since, &retired),
                     after->old_sig[0].key);
    assert_int_equal(retired, 5000);
    assert_ptr_equal(keystore_find_sig(after, eckey_thumbprint(after->sig), &since, &retired),
                     after->sig);
    assert_int_equal(retired, 0);
    assert_null(keystore_find_sig(after, "nope", &since, &retired));

    json_t *set = jwks_of(after);
    json_t *keys = json_object_get(set, "keys");
    assert_int_equal(json_array_size(keys), 3);
    json_t *old = json_array_get(keys, 2);
    assert_string_equal(json_string_value(json_object_get(old, "kid")),
                        eckey_thumbprint(before->sig));
    assert_string_equal(json_string_value(json_object_get(old, "use")), "sig");
    assert_string_equal(json_string_value(json_array_get(json_object_get(old, "key_ops"), 0)),
                        "verify");
    assert_int_equal(json_integer_value(json_object_get(old, "retired_ms")), 5000);
    assert_null(json_object_get(old, "d"));
    json_decref(set);

    /* Reloaded the same; installed on a node with the keys before, it
     * needs no --replace: nothing given out is voided. */
    keystore *reloaded = keystore_open(dir, false, NULL, err, sizeof(err));
    assert_true(keystore_same(reloaded, after));
    char other[300];
    sub(other, sizeof(other), "rotate-sig-node2");
    assert_int_equal(keystore_install(other, before, false, err, sizeof(err)), 0);
    assert_int_equal(keystore_install(other, after, false, err, sizeof(err)), 0);
    /* Back to the older keys is no succession. */
    assert_int_equal(keystore_install(other, before, false, err, sizeof(err)), -1);
    keystore_free(reloaded);
    keystore_free(after);
    keystore_free(before);
}

/* Rotating the log key keeps the previous one until the log announced it. */
static void test_rotate_log(void **state)
{
    char dir[300], err[512] = "";
    (void)state;
    sub(dir, sizeof(dir), "rotate-log");
    keystore *ks = keystore_open(dir, true, NULL, err, sizeof(err));
    assert_non_null(ks);
    keystore_free(keystore_rotate(dir, KEYSTORE_LOG, 10, err, sizeof(err)));
    assert_non_null(strstr(err, "no log key yet"));
    assert_int_equal(keystore_add_log_key(ks, dir, "site/_receipt/log", 100, err, sizeof(err)), 1);
    keystore *r = keystore_rotate(dir, KEYSTORE_LOG, 200, err, sizeof(err));
    assert_non_null(r);
    assert_non_null(r->log_previous);
    assert_string_equal(note_signer_name(r->log), "site/_receipt/log");
    assert_int_not_equal(note_signer_id(r->log), note_signer_id(ks->log));
    assert_int_equal(note_signer_id(r->log_previous), note_signer_id(ks->log));
    assert_int_equal(r->log_since_ms, 200);
    assert_int_equal(r->log_previous_since_ms, 100);
    /* Not twice before the log has announced the first. */
    assert_null(keystore_rotate(dir, KEYSTORE_LOG, 300, err, sizeof(err)));
    assert_non_null(strstr(err, "announced"));
    assert_int_equal(keystore_forget_previous(r, dir, err, sizeof(err)), 0);
    assert_null(r->log_previous);
    assert_int_equal(r->old_log_count, 1);
    assert_int_equal(note_verifier_id(r->old_log[0].key), note_signer_id(ks->log));
    assert_int_equal(r->old_log[0].since_ms, 100);
    assert_int_equal(r->old_log[0].retired_ms, 200);
    keystore *reloaded = keystore_open(dir, false, NULL, err, sizeof(err));
    assert_true(keystore_same(reloaded, r));
    keystore *r2 = keystore_rotate(dir, KEYSTORE_LOG, 300, err, sizeof(err));
    assert_non_null(r2);
    keystore_free(r2);
    keystore_free(reloaded);
    keystore_free(r);
    keystore_free(ks);
}

/* The history is bounded, and a file over the bound is refused. */
static void test_history_bound(void **state)
{
    char dir[300], err[512] = "";
    (void)state;
    sub(dir, sizeof(dir), "bound");
    keystore_free(keystore_open(dir, true, NULL, err, sizeof(err)));
    for (int i = 0; i < KEYSTORE_RETIRED_MAX; i++) {
        keystore *ks = keystore_rotate(dir, KEYSTORE_SIGNING, (uint64_t)i + 1, err, sizeof(err));
        assert_non_null(ks);
        keystore_free(ks);
    }
    assert_null(keystore_rotate(dir, KEYSTORE_SIGNING, 99, err, sizeof(err)));
    assert_non_null(strstr(err, "retired signing keys"));
    keystore *ks = keystore_open(dir, false, NULL, err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(ks->old_sig_count, KEYSTORE_RETIRED_MAX);
    assert_int_equal(ks->old_sig[0].retired_ms, KEYSTORE_RETIRED_MAX);
    char *text = keystore_jwks(ks);
    assert_non_null(text);
    free(text);
    keystore_free(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_reload),   cmocka_unit_test(test_missing_without_create),
        cmocka_unit_test(test_refuses_open_dir),    cmocka_unit_test(test_refuses_readable_file),
        cmocka_unit_test(test_refuses_bad_content), cmocka_unit_test(test_jwks_shape),
        cmocka_unit_test(test_export_install),      cmocka_unit_test(test_log_key),
        cmocka_unit_test(test_version_1),           cmocka_unit_test(test_rotate_signing),
        cmocka_unit_test(test_rotate_log),          cmocka_unit_test(test_history_bound),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
