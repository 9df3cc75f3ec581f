/*
 * rc_client: the inside of a receipt_client, shared by the library's
 * modules, and the helpers they all use to fail and to log.
 *
 * The client owns everything it points to. Its curl handle is reused for
 * every request so that connections are kept alive between a fetch, its
 * key-set request and its confirmation.
 */
#ifndef RECEIPT_LIB_RC_CLIENT_H
#define RECEIPT_LIB_RC_CLIENT_H

#include "receipt/receipt.h"

#include "common/eckey.h"
#include "lib/rc_jwks.h"

#include <curl/curl.h>
#include <stdint.h>

#define RC_ERRMSG_MAX 512

#define RC_CONNECT_MS_DEFAULT 10000
#define RC_STALL_MS_DEFAULT   30000
#define RC_REQUEST_MS_DEFAULT 30000

struct receipt_client {
    eckey *key;
    char client_id[ECKEY_THUMBPRINT_LEN + 1];
    char key_header[ECKEY_POINT_B64_LEN + 1];

    CURL *curl;
    char *ca_file; /* both NULL: the system's CAs */
    char *ca_path;
    char *spool_dir;
    char *receipt_dir;
    unsigned flags;
    long connect_ms;
    long stall_ms;
    long request_ms;

    receipt_log_fn log;
    void *log_user;
    receipt_progress_fn progress;
    void *progress_user;

    rc_jwks_cache jwks;

    char errmsg[RC_ERRMSG_MAX];
};

/* Sets the client's message and returns r, so that callers can write
 * "return rc_fail(c, RECEIPT_ERR_IO, ...)". */
receipt_result rc_fail(receipt_client *c, receipt_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void rc_log(receipt_client *c, receipt_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Wall-clock Unix milliseconds. */
uint64_t rc_now_ms(void);

/* The key-dependent half of the client (ID, header, derived keys) is reset
 * whenever the key changes; takes ownership of key. */
void rc_client_set_key(receipt_client *c, eckey *key);

#endif
