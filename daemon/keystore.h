/*
 * keystore: the server's long-lived secrets in its state directory.
 *
 * STATE_DIR/server-keys.json holds the encryption key and the signing key as
 * private JWKs and the ticket secret (base64url). The file is created on first
 * start with mode 0600 through common/durable (a temporary file, fsync'd,
 * then linked into place, so that a crash leaves no half-written keys and
 * two servers starting at once end up with the same keys); the state
 * directory is created with mode 0700. Loading refuses a state
 * directory that others may access or a key file that anyone but the owner
 * may access, with a message saying which and how to fix it.
 */
#ifndef RECEIPT_DAEMON_KEYSTORE_H
#define RECEIPT_DAEMON_KEYSTORE_H

#include "common/compiler.h"
#include "common/eckey.h"
#include "daemon/ticket.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYSTORE_FILE "server-keys.json"

typedef struct keystore {
    eckey *enc; /* server encryption key (private) */
    eckey *sig; /* server signing key (private)    */
    uint8_t ticket_secret[TICKET_SECRET_LEN];
} keystore;

/*
 * Loads the keys of state_dir, creating the directory and the keys when
 * create is true and they do not exist. Returns NULL with err set on
 * failure. *created tells whether new keys were made.
 */
WARN_UNUSED_RESULT keystore *keystore_open(const char *state_dir, bool create, bool *created,
                                           char *err, size_t errlen);

/* The public JWK Set of docs/protocol.md section 3.2, compact JSON; malloc'd,
 * NULL when out of memory. */
char *keystore_jwks(const keystore *ks);

/*
 * The key file's text (private keys and the ticket secret: handle as the
 * file itself), *len bytes, malloc'd; the caller cleanses and frees it.
 * NULL when out of memory. What another node imports to share these keys.
 */
char *keystore_export(const keystore *ks, size_t *len);

/* Keys from the key file's text; name (the file's, or "-") is for messages.
 * Returns NULL with err set when the text is not such a file. */
WARN_UNUSED_RESULT keystore *keystore_parse(const char *name, const char *text, size_t n, char *err,
                                            size_t errlen);

/* Whether two key sets are the same keys and secret. */
bool keystore_same(const keystore *a, const keystore *b);

/*
 * Writes ks as STATE_DIR/server-keys.json (mode 0600, durably, the
 * directory made with mode 0700 if missing), for the nodes of one site.
 * Keys already there that differ are kept unless replace. Returns 0 written,
 * 1 the same keys were there already, or -1 with err set.
 */
WARN_UNUSED_RESULT int keystore_install(const char *state_dir, const keystore *ks, bool replace,
                                        char *err, size_t errlen);

/* A fingerprint of the ticket secret that shows whether two nodes share it
 * without showing it: the first 16 hex digits of its SHA-256. */
void keystore_secret_fingerprint(const keystore *ks, char out[17]);

void keystore_free(keystore *ks);

#endif
