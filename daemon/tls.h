/*
 * tls: the certificate and key of a TLS listener, replaceable while it
 * runs.
 *
 * A tls_creds holds the pair loaded from two PEM files: the certificate
 * followed by its chain, and the private key, which is refused when others
 * may read it or group or others may write it. tls_creds_reload() reads the
 * files again (on SIGHUP): a pair that loads and matches replaces the
 * current one for new handshakes, while connections that took the old one
 * keep it until they close; a pair that fails leaves the current one in
 * place and err says why.
 *
 * Each handshake takes the current pair with tls_creds_take() (from the
 * listener's GnuTLS certificate callback) and gives it back with
 * tls_creds_give_back() once its session is gone, so that a pair is freed
 * only when nothing uses it. Both are thread-safe; reload and free are for
 * one thread (the main thread) at a time.
 *
 * For libmicrohttpd (MHD_OPTION_HTTPS_CERT_CALLBACK), tls_creds_retrieve()
 * does that for a listener whose connections' socket contexts begin with a
 * tls_conn: its connection notification calls tls_conn_start() when a
 * connection starts, and tls_conn_close() when it is closed, which the
 * library does after it has freed the TLS session.
 *
 * Session resumption: a connection that starts gets session tickets
 * (TLS 1.3 only, each resumption with a fresh ECDHE exchange), sealed with
 * keys that GnuTLS derives from the listener's ticket key and rotates every
 * six hours. The key lives in memory only: a restart, or a reload that
 * brings a new pair, makes a new one, and clients then do a full handshake.
 */
#ifndef RECEIPT_DAEMON_TLS_H
#define RECEIPT_DAEMON_TLS_H

#include "daemon/tls_io.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define TLS_CERT_FILE_MAX (256 * 1024) /* a certificate and its chain, PEM */
#define TLS_KEY_FILE_MAX  (64 * 1024)
#define TLS_CHAIN_MAX     16 /* certificates in the certificate file */
#define TLS_SUBJECT_MAX   256
#define TLS_SERIAL_MAX    (2 * 20 + 1) /* RFC 5280: at most 20 octets, in hex */

/*
 * TLS 1.2 and 1.3 only; AES-GCM and ChaCha20-Poly1305 only; ECDHE key
 * exchange only (forward secrecy, resumptions included: no TLS 1.2 session
 * tickets, which would resume without it); no SHA-1 signatures. The
 * client's preference among these decides: every one of them is strong,
 * and the client knows which its hardware seals fastest (AES-GCM with AES
 * instructions, ChaCha20 without).
 */
extern const char tls_priorities[];

typedef struct tls_creds tls_creds;
typedef struct tls_pair tls_pair;

typedef struct tls_cert_info {
    char subject[TLS_SUBJECT_MAX]; /* RFC 4514 DN of the leaf certificate */
    char serial[TLS_SERIAL_MAX];   /* hex, upper case, no leading zeros */
    time_t not_before, not_after;
    unsigned chain_length;        /* certificates in the file, the leaf included */
    char issuer[TLS_SUBJECT_MAX]; /* RFC 4514 DN of the leaf's issuer */
    bool self_issued;             /* the leaf names itself as its issuer */
} tls_cert_info;

/* Loads the pair; NULL with err naming the file and the problem, which
 * includes a certificate that has expired or is not valid yet (the error
 * names its validity dates, as a reload's does). */
tls_creds *tls_creds_load(const char *cert_file, const char *key_file, char *err, size_t errlen);

/*
 * Reads the files again. Returns 0 when a new pair is now in use, 1 when
 * the files hold the pair already in use (nothing changes), -1 when the new
 * files do not load, or hold a certificate that has expired or is not valid
 * yet while the one in use is valid (the current pair stays; err says why).
 */
int tls_creds_reload(tls_creds *t, char *err, size_t errlen);

/* Frees the creds, once no listener can start a handshake with them; pairs
 * still held by connections go when they are given back. NULL-safe. */
void tls_creds_free(tls_creds *t);

/* The certificate in use now. */
void tls_creds_info(tls_creds *t, tls_cert_info *out);

/* The files the pair comes from. */
const char *tls_creds_cert_file(const tls_creds *t);

/*
 * For a handshake: the current pair, its certificate chain and key, in the
 * form a gnutls_certificate_retrieve_function2 returns them. *held is the
 * connection's slot: a pair it held already (a renegotiation) is given
 * back. Returns 0, or -1 when t is NULL.
 */
int tls_creds_take(tls_creds *t, tls_pair **held, gnutls_pcert_st **pcert, unsigned int *count,
                   gnutls_privkey_t *key);

/* Gives back what a connection held (NULL-safe) and clears the slot. */
void tls_creds_give_back(tls_pair **held);

/* The first member of a TLS listener's per-connection socket context. */
typedef struct tls_conn {
    tls_creds *creds; /* borrowed: the listener's */
    tls_pair *held;   /* what the handshake took */
    tls_io *io;       /* the session's transport (NULL: GnuTLS's own) */
} tls_conn;

/*
 * For a connection of a listener with creds that libmicrohttpd has just
 * made (its TLS session exists, its handshake has not begun): fills tc,
 * enables session tickets and puts a tls_io under the session. Without
 * memory for the tls_io the connection uses GnuTLS's own transport.
 */
void tls_conn_start(tls_conn *tc, tls_creds *creds, struct MHD_Connection *c);

/* A gnutls_certificate_retrieve_function2 for libmicrohttpd: the current
 * pair of the connection's tls_conn. -1 (no certificate) without one. */
int tls_creds_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                       const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                       gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey);

/* Gives back the pair of a closed connection and frees its tls_io. NULL-safe. */
void tls_conn_close(tls_conn *tc);

#endif
