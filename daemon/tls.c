#include "daemon/tls.h"

#include "common/durable.h"

#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TLS_DIGEST_LEN 32
#define TLS_ERR_MAX    512

/* %NO_TICKETS_TLS12 came with GnuTLS 3.7.5; an older one gets no tickets
 * at all rather than TLS 1.2 ones. */
#if GNUTLS_VERSION_NUMBER >= 0x030705
#define TLS_TICKETS          1
#define TLS_NO_TICKETS_TLS12 ":%NO_TICKETS_TLS12"
#else
#define TLS_TICKETS          0
#define TLS_NO_TICKETS_TLS12 ""
#endif

const char tls_priorities[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
    ":-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"
    ":-MAC-ALL:+AEAD"
    ":-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA"
    ":-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1"
    ":-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1:-SIGN-DSA-SHA1:-SIGN-RSA-MD5" TLS_NO_TICKETS_TLS12;

struct tls_pair {
    atomic_uint refs; /* 1 while current, plus 1 per connection holding it */
    gnutls_pcert_st pcert[TLS_CHAIN_MAX];
    unsigned int count;
    gnutls_privkey_t key;
    uint8_t digest[TLS_DIGEST_LEN]; /* of both files' bytes: tells an unchanged pair */
    tls_cert_info info;
};

struct tls_creds {
    pthread_mutex_t lock; /* guards current between reading it and taking a reference,
                           * and ticket_key while a connection copies it */
    tls_pair *current;
    gnutls_datum_t ticket_key; /* the session tickets' master key (GnuTLS's size) */
    char *cert_file;
    char *key_file;
};

static void ticket_key_free(gnutls_datum_t *key)
{
    if (key->data != NULL)
        gnutls_memset(key->data, 0, key->size);
    gnutls_free(key->data);
    key->data = NULL;
    key->size = 0;
}

static void pair_free(tls_pair *p)
{
    if (p == NULL)
        return;
    for (unsigned int i = 0; i < p->count; i++)
        gnutls_pcert_deinit(&p->pcert[i]);
    gnutls_privkey_deinit(p->key);
    free(p);
}

static void pair_release(tls_pair *p)
{
    if (p != NULL && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        pair_free(p);
}

/* Reads a whole file of at most cap bytes; for the key, refuses it when
 * others may read it or group or others may change it, by the mode of the
 * file actually read (symbolic links, as certbot's live/ directory uses,
 * are followed). */
static int read_file(const char *what, const char *path, size_t cap, bool secret, uint8_t **out,
                     size_t *len, char *err, size_t errlen)
{
    char *text = NULL;
    mode_t mode = 0;
    char why[TLS_ERR_MAX];
    *out = NULL;
    if (durable_read(path, cap, &text, len, &mode, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", what, why);
        return -1;
    }
    if (secret && (mode & (S_IRWXO | S_IWGRP)) != 0) {
        snprintf(err, errlen,
                 "%s %s has mode %04o: others may %s it; make it 0600 (or 0640 with a group "
                 "of the server's user)",
                 what, path, (unsigned)(mode & 07777),
                 (mode & S_IRWXO) != 0 ? "read or change" : "change");
        explicit_bzero(text, *len);
        free(text);
        return -1;
    }
    *out = (uint8_t *)text;
    return 0;
}

static void describe(tls_pair *p)
{
    tls_cert_info *info = &p->info;
    memset(info, 0, sizeof *info);
    info->chain_length = p->count;
    gnutls_x509_crt_t crt = NULL;
    if (gnutls_x509_crt_init(&crt) < 0)
        return;
    if (gnutls_x509_crt_import(crt, &p->pcert[0].cert, GNUTLS_X509_FMT_DER) >= 0) {
        size_t n = sizeof info->subject;
        if (gnutls_x509_crt_get_dn(crt, info->subject, &n) < 0)
            info->subject[0] = '\0';
        n = sizeof info->issuer;
        if (gnutls_x509_crt_get_issuer_dn(crt, info->issuer, &n) < 0)
            info->issuer[0] = '\0';
        uint8_t serial[64];
        size_t slen = sizeof serial;
        if (gnutls_x509_crt_get_serial(crt, serial, &slen) >= 0 && slen > 0) {
            /* As openssl x509 -serial prints it, without leading zeros. */
            static const char hex[] = "0123456789ABCDEF";
            size_t o = 0;
            for (size_t i = 0; i < slen && o + 2 < sizeof info->serial; i++) {
                if (o > 0 || serial[i] >> 4)
                    info->serial[o++] = hex[serial[i] >> 4];
                if (o > 0 || (serial[i] & 15) || i + 1 == slen)
                    info->serial[o++] = hex[serial[i] & 15];
            }
            info->serial[o] = '\0';
        }
        gnutls_datum_t subject = {NULL, 0}, issuer = {NULL, 0};
        if (gnutls_x509_crt_get_raw_dn(crt, &subject) >= 0 &&
            gnutls_x509_crt_get_raw_issuer_dn(crt, &issuer) >= 0)
            info->self_issued =
                subject.size == issuer.size && memcmp(subject.data, issuer.data, subject.size) == 0;
        gnutls_free(subject.data);
        gnutls_free(issuer.data);
        info->not_before = gnutls_x509_crt_get_activation_time(crt);
        info->not_after = gnutls_x509_crt_get_expiration_time(crt);
    }
    gnutls_x509_crt_deinit(crt);
}

/* Whether key is the private half of the leaf certificate's public key. */
static bool key_matches(gnutls_pcert_st *leaf, gnutls_privkey_t key)
{
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t a = {NULL, 0}, b = {NULL, 0};
    bool same = false;
    if (gnutls_pubkey_init(&pub) < 0)
        return false;
    if (gnutls_pubkey_import_privkey(pub, key, 0, 0) >= 0 &&
        gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &a) >= 0 &&
        gnutls_pubkey_export2(leaf->pubkey, GNUTLS_X509_FMT_DER, &b) >= 0)
        same = a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
    gnutls_free(a.data);
    gnutls_free(b.data);
    gnutls_pubkey_deinit(pub);
    return same;
}

static tls_pair *pair_load(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    uint8_t *cert_pem = NULL, *key_pem = NULL;
    size_t cert_len = 0, key_len = 0;
    tls_pair *p = NULL;
    if (read_file("key file", key_file, TLS_KEY_FILE_MAX, true, &key_pem, &key_len, err, errlen) !=
            0 ||
        read_file("certificate file", cert_file, TLS_CERT_FILE_MAX, false, &cert_pem, &cert_len,
                  err, errlen) != 0)
        goto fail;
    if ((p = calloc(1, sizeof *p)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    atomic_init(&p->refs, 1);

    gnutls_datum_t cert = {cert_pem, (unsigned int)cert_len};
    p->count = TLS_CHAIN_MAX;
    int rc = gnutls_pcert_list_import_x509_raw(p->pcert, &p->count, &cert, GNUTLS_X509_FMT_PEM,
                                               GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
    if (rc < 0) {
        p->count = 0;
        if (rc == GNUTLS_E_SHORT_MEMORY_BUFFER)
            snprintf(err, errlen, "certificate file %s holds more than %d certificates", cert_file,
                     TLS_CHAIN_MAX);
        else if (rc == GNUTLS_E_CERTIFICATE_LIST_UNSORTED)
            snprintf(err, errlen,
                     "certificate file %s: the chain is out of order (the server's certificate "
                     "first, then each issuer after the certificate it signed)",
                     cert_file);
        else
            snprintf(err, errlen, "certificate file %s: no PEM certificate could be read (%s)",
                     cert_file, gnutls_strerror(rc));
        goto fail;
    }
    if (p->count == 0) {
        snprintf(err, errlen, "certificate file %s holds no certificate", cert_file);
        goto fail;
    }

    gnutls_datum_t key = {key_pem, (unsigned int)key_len};
    if ((rc = gnutls_privkey_init(&p->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(p->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(err, errlen, "key file %s: no unencrypted PEM private key could be read (%s)",
                 key_file, gnutls_strerror(rc));
        goto fail;
    }
    if (!key_matches(&p->pcert[0], p->key)) {
        snprintf(err, errlen,
                 "key file %s does not hold the private key of the first certificate in %s",
                 key_file, cert_file);
        goto fail;
    }

    gnutls_hash_hd_t hash = NULL;
    if (gnutls_hash_init(&hash, GNUTLS_DIG_SHA256) < 0 ||
        gnutls_hash(hash, cert_pem, cert_len) < 0 || gnutls_hash(hash, key_pem, key_len) < 0) {
        if (hash != NULL)
            gnutls_hash_deinit(hash, NULL);
        snprintf(err, errlen, "SHA-256 failed");
        goto fail;
    }
    gnutls_hash_deinit(hash, p->digest);
    describe(p);
    explicit_bzero(key_pem, key_len);
    free(key_pem);
    free(cert_pem);
    return p;

fail:
    pair_free(p);
    if (key_pem != NULL)
        explicit_bzero(key_pem, key_len);
    free(key_pem);
    free(cert_pem);
    return NULL;
}

static bool valid_at(const tls_cert_info *info, time_t now)
{
    return info->not_before <= now && now < info->not_after;
}

static void utc_time(time_t t, char out[32])
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, 32, "?");
}

/* Why a certificate not valid at now is refused: the file, the serial, and
 * the dates it is valid between. */
static void invalid_message(const char *cert_file, const tls_cert_info *info, time_t now, char *err,
                            size_t errlen)
{
    bool expired = info->not_after <= now;
    char from[32], until[32];
    utc_time(info->not_before, from);
    utc_time(info->not_after, until);
    snprintf(err, errlen,
             "certificate file %s: its certificate (serial %s) %s %s (valid from %s until %s)",
             cert_file, info->serial, expired ? "expired on" : "is not valid until",
             expired ? until : from, from, until);
}

tls_creds *tls_creds_load(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    tls_creds *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if ((t->cert_file = strdup(cert_file)) == NULL || (t->key_file = strdup(key_file)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if ((t->current = pair_load(cert_file, key_file, err, errlen)) == NULL)
        goto fail;
    /* With no pair in use to keep, a start (or a check before a reload)
     * refuses what a reload refuses: a certificate every client rejects. */
    time_t now = time(NULL);
    if (!valid_at(&t->current->info, now)) {
        invalid_message(cert_file, &t->current->info, now, err, errlen);
        goto fail;
    }
    if (gnutls_session_ticket_key_generate(&t->ticket_key) < 0) {
        snprintf(err, errlen, "cannot make a session ticket key");
        goto fail;
    }
    pthread_mutex_init(&t->lock, NULL);
    return t;
fail:
    pair_release(t->current);
    free(t->cert_file);
    free(t->key_file);
    free(t);
    return NULL;
}

/*
 * A reload that would put a certificate clients refuse in place of one
 * they accept (an old backup restored, a copy of the wrong file, a clock
 * ahead of the CA's) is refused: every new connection would fail until
 * the next reload. When the one in use is no longer valid either, the new
 * one is no worse, and is taken.
 */
static bool refuse_invalid(const tls_creds *t, const tls_pair *fresh, char *err, size_t errlen)
{
    time_t now = time(NULL);
    if (valid_at(&fresh->info, now) || !valid_at(&t->current->info, now))
        return false;
    invalid_message(t->cert_file, &fresh->info, now, err, errlen);
    return true;
}

int tls_creds_reload(tls_creds *t, char *err, size_t errlen)
{
    tls_pair *fresh = pair_load(t->cert_file, t->key_file, err, errlen);
    if (fresh == NULL)
        return -1;
    /* current changes only here, on this thread: read without the lock. */
    if (memcmp(t->current->digest, fresh->digest, TLS_DIGEST_LEN) == 0) {
        pair_free(fresh);
        return 1;
    }
    if (refuse_invalid(t, fresh, err, errlen)) {
        pair_free(fresh);
        return -1;
    }
    /* A new pair starts a new ticket key: no session of the old one resumes. */
    gnutls_datum_t key = {NULL, 0};
    if (gnutls_session_ticket_key_generate(&key) < 0) {
        pair_free(fresh);
        snprintf(err, errlen, "cannot make a session ticket key");
        return -1;
    }
    pthread_mutex_lock(&t->lock);
    tls_pair *old = t->current;
    t->current = fresh;
    gnutls_datum_t swap = t->ticket_key;
    t->ticket_key = key;
    key = swap;
    pthread_mutex_unlock(&t->lock);
    ticket_key_free(&key);
    pair_release(old);
    return 0;
}

void tls_creds_free(tls_creds *t)
{
    if (t == NULL)
        return;
    pair_release(t->current);
    ticket_key_free(&t->ticket_key);
    pthread_mutex_destroy(&t->lock);
    free(t->cert_file);
    free(t->key_file);
    free(t);
}

void tls_creds_info(tls_creds *t, tls_cert_info *out)
{
    pthread_mutex_lock(&t->lock);
    *out = t->current->info;
    pthread_mutex_unlock(&t->lock);
}

const char *tls_creds_cert_file(const tls_creds *t)
{
    return t->cert_file;
}

int tls_creds_take(tls_creds *t, tls_pair **held, gnutls_pcert_st **pcert, unsigned int *count,
                   gnutls_privkey_t *key)
{
    if (t == NULL)
        return -1;
    pthread_mutex_lock(&t->lock);
    tls_pair *p = t->current;
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&t->lock);
    tls_creds_give_back(held);
    *held = p;
    *pcert = p->pcert;
    *count = p->count;
    *key = p->key;
    return 0;
}

void tls_creds_give_back(tls_pair **held)
{
    if (held == NULL || *held == NULL)
        return;
    pair_release(*held);
    *held = NULL;
}

int tls_creds_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                       const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                       gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    /* libmicrohttpd keeps its connection as the session's pointer. */
    struct MHD_Connection *c = gnutls_session_get_ptr(session);
    const union MHD_ConnectionInfo *info =
        c != NULL ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
    tls_conn *tc = info != NULL ? info->socket_context : NULL;
    if (tc == NULL)
        return -1;
    return tls_creds_take(tc->creds, &tc->held, pcert, pcert_length, pkey);
}

void tls_conn_start(tls_conn *tc, tls_creds *creds, struct MHD_Connection *c)
{
    tc->creds = creds;
    const union MHD_ConnectionInfo *si =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (creds == NULL || si == NULL || fi == NULL)
        return;
    gnutls_session_t session = si->tls_session;
#if TLS_TICKETS
    /* The session keeps a copy of the key. */
    pthread_mutex_lock(&creds->lock);
    gnutls_session_ticket_enable_server(session, &creds->ticket_key);
    pthread_mutex_unlock(&creds->lock);
#endif
    tc->io = tls_io_attach(session, fi->connect_fd);
}

void tls_conn_close(tls_conn *tc)
{
    if (tc == NULL)
        return;
    tls_creds_give_back(&tc->held);
    tls_io_free(tc->io);
    tc->io = NULL;
}
