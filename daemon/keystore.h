/*
 * keystore: the server's long-lived secrets in its state directory.
 *
 * STATE_DIR/server-keys.json holds the encryption key and the signing key as
 * private JWKs, the ticket secret (base64url), the evidence log's Ed25519
 * key (a signer key text, note.h) and the keys that signed before them,
 * public only, with the time each stopped signing (see "Key history"). The
 * file is created on first start with mode 0600 through common/durable (a
 * temporary file, fsync'd, then linked into place, so that a crash leaves
 * no half-written keys and two servers starting at once end up with the
 * same keys); the state directory is created with mode 0700. Loading
 * refuses a state directory that others may access or a key file that
 * anyone but the owner may access, with a message saying which and how to
 * fix it.
 *
 * Key history. keystore_rotate() makes a new signing key or log key; the
 * old signing key keeps its public half in the file (and in the JWK Set,
 * verify-only, with the time it stopped signing), so that old receipts stay
 * verifiable. The old log key keeps its private half too, as "previous",
 * until the log has announced the new key in a checkpoint signed by both
 * (evlog.h); keystore_forget_previous() then drops it, leaving the public
 * half in the history.
 *
 * A keystore is made on the main thread and read-only afterwards.
 */
#ifndef RECEIPT_DAEMON_KEYSTORE_H
#define RECEIPT_DAEMON_KEYSTORE_H

#include "common/compiler.h"
#include "common/eckey.h"
#include "common/note_sign.h"
#include "daemon/ticket.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYSTORE_FILE        "server-keys.json"
#define KEYSTORE_RETIRED_MAX 32 /* keys of each use kept in the history */

/* A signing key that no longer signs: its public half, and when it was in use. */
typedef struct keystore_old_sig {
    eckey *key;          /* public */
    uint64_t since_ms;   /* 0: not known (made before the history was kept) */
    uint64_t retired_ms; /* when it stopped signing */
} keystore_old_sig;

/* A log key that no longer signs. */
typedef struct keystore_old_log {
    note_verifier *key;
    uint64_t since_ms;
    uint64_t retired_ms;
} keystore_old_log;

typedef struct keystore {
    eckey *enc; /* server encryption key (private) */
    eckey *sig; /* server signing key (private)    */
    uint64_t sig_since_ms;
    uint8_t ticket_secret[TICKET_SECRET_LEN];
    /* The evidence log's key; NULL until keystore_add_log_key(). Its name
     * is the log's origin. */
    note_signer *log;
    uint64_t log_since_ms;
    /* The log key it replaced, while the log has not announced the change
     * yet; NULL otherwise. Its retired_ms is log_since_ms. */
    note_signer *log_previous;
    uint64_t log_previous_since_ms;
    keystore_old_sig old_sig[KEYSTORE_RETIRED_MAX]; /* newest first */
    size_t old_sig_count;
    keystore_old_log old_log[KEYSTORE_RETIRED_MAX]; /* newest first */
    size_t old_log_count;
} keystore;

/*
 * Loads the keys of state_dir, creating the directory and the keys when
 * create is true and they do not exist. Returns NULL with err set on
 * failure. *created tells whether new keys were made.
 */
WARN_UNUSED_RESULT keystore *keystore_open(const char *state_dir, bool create, bool *created,
                                           char *err, size_t errlen);

/*
 * Gives the keys a log key named origin (a valid key name) when they have
 * none, and writes the file. Returns 1 made, 0 there already (whatever its
 * name: the log keeps the origin it began with), or -1 with err set.
 */
WARN_UNUSED_RESULT int keystore_add_log_key(keystore *ks, const char *state_dir, const char *origin,
                                            uint64_t now_ms, char *err, size_t errlen);

typedef enum keystore_key {
    KEYSTORE_SIGNING,
    KEYSTORE_LOG,
} keystore_key;

/*
 * Replaces the signing key or the log key of state_dir's keys by a new one
 * and writes the file; the old one goes to the history as above. A log key
 * is rotated only when the log has announced the last rotation (no
 * previous key is held). Returns the new keys, or NULL with err set.
 */
WARN_UNUSED_RESULT keystore *keystore_rotate(const char *state_dir, keystore_key which,
                                             uint64_t now_ms, char *err, size_t errlen);

/*
 * Drops the previous log key's private half (the log announced its
 * successor): it stays in the history, public. Writes the file. Returns 0
 * or -1 with err set.
 */
WARN_UNUSED_RESULT int keystore_forget_previous(keystore *ks, const char *state_dir, char *err,
                                                size_t errlen);

/*
 * The public JWK Set of docs/protocol.md section 3.2: the encryption key and the
 * signing key, then every retired signing key with "key_ops" ["verify"]
 * and "retired_ms"; compact JSON, malloc'd, NULL when out of memory.
 */
char *keystore_jwks(const keystore *ks);

/* The public signing key whose kid is kid, current or retired, with the
 * time it was in use (retired_ms 0: it still signs); NULL if none. */
const eckey *keystore_find_sig(const keystore *ks, const char *kid, uint64_t *since_ms,
                               uint64_t *retired_ms);

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

/* Whether two key sets are the same keys and secret, history included. */
bool keystore_same(const keystore *a, const keystore *b);

/*
 * Writes ks as STATE_DIR/server-keys.json (mode 0600, durably, the
 * directory made with mode 0700 if missing), for the nodes of one site.
 * Keys already there that differ are kept unless replace, or unless ks
 * succeeds them: the same encryption key and ticket secret, and the keys
 * there are ks's own or in its history (a rotation made on another node).
 * Returns 0 written, 1 the same keys were there already, or -1 with err
 * set.
 */
WARN_UNUSED_RESULT int keystore_install(const char *state_dir, const keystore *ks, bool replace,
                                        char *err, size_t errlen);

/* A fingerprint of the ticket secret that shows whether two nodes share it
 * without showing it: the first 16 hex digits of its SHA-256. */
void keystore_secret_fingerprint(const keystore *ks, char out[17]);

void keystore_free(keystore *ks);

#endif
