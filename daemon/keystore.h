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

/* The public JWK Set of PROTOCOL.md section 2, compact JSON; malloc'd,
 * NULL when out of memory. */
char *keystore_jwks(const keystore *ks);

void keystore_free(keystore *ks);

#endif
