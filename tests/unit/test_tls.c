/* tls: loading a certificate pair, refusing bad ones, swapping on reload
 * while handshakes still hold the old pair, and the priority string. The
 * certificates are made here with GnuTLS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/tls.h"

#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct made {
    gnutls_x509_crt_t crt;
    gnutls_x509_privkey_t key;
} made;

/* A P-256 certificate with this serial, valid between the two times, signed
 * by issuer (self-signed when NULL). */
static made make_cert_dated(const char *cn, unsigned serial, const made *issuer, bool ca,
                            time_t not_before, time_t not_after)
{
    made m;
    assert_int_equal(gnutls_x509_privkey_init(&m.key), 0);
    assert_int_equal(gnutls_x509_privkey_generate(m.key, GNUTLS_PK_ECDSA,
                                                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                                  0),
                     0);
    assert_int_equal(gnutls_x509_crt_init(&m.crt), 0);
    assert_int_equal(gnutls_x509_crt_set_version(m.crt, 3), 0);
    uint8_t s[3] = {(uint8_t)(serial >> 16), (uint8_t)(serial >> 8), (uint8_t)serial};
    assert_int_equal(gnutls_x509_crt_set_serial(m.crt, s, sizeof s), 0);
    assert_int_equal(
        gnutls_x509_crt_set_dn_by_oid(m.crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)), 0);
    assert_int_equal(gnutls_x509_crt_set_activation_time(m.crt, not_before), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(m.crt, not_after), 0);
    assert_int_equal(gnutls_x509_crt_set_key(m.crt, m.key), 0);
    assert_int_equal(gnutls_x509_crt_set_basic_constraints(m.crt, ca, -1), 0);
    assert_int_equal(gnutls_x509_crt_sign2(m.crt, issuer ? issuer->crt : m.crt,
                                           issuer ? issuer->key : m.key, GNUTLS_DIG_SHA256, 0),
                     0);
    return m;
}

/* Valid from an hour ago for a day. */
static made make_cert(const char *cn, unsigned serial, const made *issuer, bool ca)
{
    time_t now = time(NULL);
    return make_cert_dated(cn, serial, issuer, ca, now - 3600, now + 86400);
}

static void made_free(made *m)
{
    gnutls_x509_crt_deinit(m->crt);
    gnutls_x509_privkey_deinit(m->key);
}

static char dir[] = "/tmp/test_tls-XXXXXX";

static const char *path_of(const char *name)
{
    static char paths[32][256];
    static int next;
    char *p = paths[next++ % 32];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static void append(const char *path, const gnutls_datum_t *d, bool truncate)
{
    FILE *f = fopen(path, truncate ? "w" : "a");
    assert_non_null(f);
    assert_int_equal(fwrite(d->data, 1, d->size, f), d->size);
    fclose(f);
}

static void write_cert(const char *path, const made *m, bool truncate)
{
    gnutls_datum_t d;
    assert_int_equal(gnutls_x509_crt_export2(m->crt, GNUTLS_X509_FMT_PEM, &d), 0);
    append(path, &d, truncate);
    gnutls_free(d.data);
}

static void write_key(const char *path, const made *m, mode_t mode)
{
    gnutls_datum_t d;
    assert_int_equal(gnutls_x509_privkey_export2(m->key, GNUTLS_X509_FMT_PEM, &d), 0);
    unlink(path);
    append(path, &d, true);
    gnutls_free(d.data);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_load(void **state)
{
    (void)state;
    made ca = make_cert("test CA", 1, NULL, true);
    made leaf = make_cert("127.0.0.1", 0x0abcde, &ca, false);
    const char *cert = path_of("chain.pem"), *key = path_of("leaf.key");
    write_cert(cert, &leaf, true);
    write_cert(cert, &ca, false);
    write_key(key, &leaf, 0600);
    char err[512] = "";
    tls_creds *t = tls_creds_load(cert, key, err, sizeof err);
    if (t == NULL)
        fail_msg("%s", err);
    tls_cert_info info;
    tls_creds_info(t, &info);
    assert_string_equal(info.serial, "ABCDE");
    assert_string_equal(info.subject, "CN=127.0.0.1");
    assert_int_equal(info.chain_length, 2);
    assert_true(info.not_after > time(NULL));
    assert_string_equal(tls_creds_cert_file(t), cert);

    gnutls_pcert_st *pcert = NULL;
    unsigned int n = 0;
    gnutls_privkey_t k = NULL;
    tls_pair *held = NULL;
    assert_int_equal(tls_creds_take(t, &held, &pcert, &n, &k), 0);
    assert_int_equal(n, 2);
    assert_non_null(k);
    tls_creds_give_back(&held);
    assert_null(held);
    assert_int_equal(tls_creds_take(NULL, &held, &pcert, &n, &k), -1);
    tls_creds_free(t);

    /* A key a group may read is the Debian way (ssl-cert); it loads. */
    write_key(key, &leaf, 0640);
    t = tls_creds_load(cert, key, err, sizeof err);
    assert_non_null(t);
    tls_creds_free(t);
    made_free(&leaf);
    made_free(&ca);
}

static void expect_refused(const char *cert, const char *key, const char *words)
{
    char err[512] = "";
    tls_creds *t = tls_creds_load(cert, key, err, sizeof err);
    if (t != NULL || strstr(err, words) == NULL) {
        tls_creds_free(t);
        fail_msg("expected a refusal with '%s', got '%s'", words, err);
    }
}

static void test_refused(void **state)
{
    (void)state;
    made ca = make_cert("test CA", 1, NULL, true);
    made leaf = make_cert("127.0.0.1", 2, &ca, false);
    made other = make_cert("127.0.0.1", 3, &ca, false);
    const char *cert = path_of("c.pem"), *key = path_of("k.pem");
    write_cert(cert, &leaf, true);

    write_key(key, &leaf, 0644);
    expect_refused(cert, key, "has mode 0644: others may read or change it");
    write_key(key, &leaf, 0620);
    expect_refused(cert, key, "others may change it");
    write_key(key, &leaf, 0604);
    expect_refused(cert, key, "0604");

    write_key(key, &other, 0600);
    expect_refused(cert, key, "does not hold the private key of the first certificate");

    write_key(key, &leaf, 0600);
    expect_refused(path_of("missing.pem"), key, "No such file or directory");
    expect_refused(cert, path_of("missing.key"), "No such file or directory");
    expect_refused(dir, key, "not a regular file");

    const char *junk = path_of("junk.pem");
    FILE *f = fopen(junk, "w");
    fputs("not a certificate\n", f);
    fclose(f);
    expect_refused(junk, key, "no PEM certificate could be read");
    chmod(junk, 0600);
    expect_refused(cert, junk, "no unencrypted PEM private key could be read");

    /* Issuer before the certificate it signed. */
    const char *unsorted = path_of("unsorted.pem");
    write_cert(unsorted, &ca, true);
    write_cert(unsorted, &leaf, false);
    expect_refused(unsorted, key, "out of order");

    /* A key where the certificate should be. */
    expect_refused(key, key, "no PEM certificate");

    made_free(&other);
    made_free(&leaf);
    made_free(&ca);
}

/* No pair in use to keep: a certificate that is not valid now is refused
 * at load, with the words a reload uses and its validity dates. */
static void test_refused_dates(void **state)
{
    (void)state;
    made ca = make_cert("test CA", 1, NULL, true);
    time_t day = 86400;
    /* 2020-01-01 00:00:00 UTC to 2020-03-01 00:00:00 UTC */
    made old = make_cert_dated("127.0.0.1", 0x2a, &ca, false, 1577836800, 1583020800);
    time_t now = time(NULL);
    made early = make_cert_dated("127.0.0.1", 0x2b, &ca, false, now + day, now + 60 * day);
    const char *cert = path_of("dated.pem"), *key = path_of("dated.key");
    write_cert(cert, &old, true);
    write_key(key, &old, 0600);
    char words[512];
    snprintf(words, sizeof words,
             "certificate file %s: its certificate (serial 2A) expired on 2020-03-01 00:00:00 UTC "
             "(valid from 2020-01-01 00:00:00 UTC until 2020-03-01 00:00:00 UTC)",
             cert);
    expect_refused(cert, key, words);
    write_cert(cert, &early, true);
    write_key(key, &early, 0600);
    expect_refused(cert, key, "its certificate (serial 2B) is not valid until ");
    expect_refused(cert, key, " (valid from ");
    made_free(&early);
    made_free(&old);
    made_free(&ca);
}

static void test_reload(void **state)
{
    (void)state;
    made ca = make_cert("test CA", 1, NULL, true);
    made first = make_cert("127.0.0.1", 0x100, &ca, false);
    made second = make_cert("127.0.0.1", 0x200, &ca, false);
    const char *cert = path_of("r.pem"), *key = path_of("r.key");
    write_cert(cert, &first, true);
    write_key(key, &first, 0600);
    char err[512] = "";
    tls_creds *t = tls_creds_load(cert, key, err, sizeof err);
    assert_non_null(t);

    /* Unchanged files: nothing to do. */
    assert_int_equal(tls_creds_reload(t, err, sizeof err), 1);

    /* A handshake in progress holds the first pair across the swap. */
    tls_pair *held = NULL;
    gnutls_pcert_st *pcert = NULL;
    unsigned int n = 0;
    gnutls_privkey_t k = NULL;
    assert_int_equal(tls_creds_take(t, &held, &pcert, &n, &k), 0);

    write_cert(cert, &second, true);
    write_key(key, &second, 0600);
    assert_int_equal(tls_creds_reload(t, err, sizeof err), 0);
    tls_cert_info info;
    tls_creds_info(t, &info);
    assert_string_equal(info.serial, "200");

    /* Still usable (a sanitizer build would see a use after free). */
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_import(crt, &pcert[0].cert, GNUTLS_X509_FMT_DER), 0);
    uint8_t serial[8];
    size_t slen = sizeof serial;
    assert_int_equal(gnutls_x509_crt_get_serial(crt, serial, &slen), 0);
    assert_int_equal(serial[slen - 2], 0x01);
    gnutls_x509_crt_deinit(crt);

    /* A renegotiation takes the new pair and gives the old one back. */
    assert_int_equal(tls_creds_take(t, &held, &pcert, &n, &k), 0);
    tls_pair *second_held = held;

    /* A broken pair is refused and the current one kept. */
    write_key(key, &first, 0600);
    assert_int_equal(tls_creds_reload(t, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not hold the private key"));
    tls_creds_info(t, &info);
    assert_string_equal(info.serial, "200");
    write_key(key, &second, 0644);
    assert_int_equal(tls_creds_reload(t, err, sizeof err), -1);
    assert_non_null(strstr(err, "0644"));
    tls_creds_info(t, &info);
    assert_string_equal(info.serial, "200");

    /* Freed while a connection holds a pair: that pair goes with it. */
    tls_creds_free(t);
    assert_ptr_equal(held, second_held);
    tls_creds_give_back(&held);
    made_free(&second);
    made_free(&first);
    made_free(&ca);
}

static void test_priorities(void **state)
{
    (void)state;
    gnutls_priority_t prio;
    const char *where = NULL;
    int rc = gnutls_priority_init(&prio, tls_priorities, &where);
    if (rc != 0)
        fail_msg("%s at '%s'", gnutls_strerror(rc), where ? where : "?");
    const unsigned int *list = NULL;
    int n = gnutls_priority_protocol_list(prio, &list);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++)
        assert_true(list[i] == GNUTLS_TLS1_2 || list[i] == GNUTLS_TLS1_3);
    n = gnutls_priority_cipher_list(prio, &list);
    assert_true(n >= 3);
    for (int i = 0; i < n; i++)
        assert_true(list[i] == GNUTLS_CIPHER_AES_128_GCM || list[i] == GNUTLS_CIPHER_AES_256_GCM ||
                    list[i] == GNUTLS_CIPHER_CHACHA20_POLY1305);
    n = gnutls_priority_kx_list(prio, &list);
    for (int i = 0; i < n; i++)
        assert_true(list[i] == GNUTLS_KX_ECDHE_ECDSA || list[i] == GNUTLS_KX_ECDHE_RSA);
    gnutls_priority_deinit(prio);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),          cmocka_unit_test(test_refused),
        cmocka_unit_test(test_refused_dates), cmocka_unit_test(test_reload),
        cmocka_unit_test(test_priorities),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
