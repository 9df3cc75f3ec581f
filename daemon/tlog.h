/*
 * tlog: the evidence log as the ledger writer keeps it (docs/evidence.md).
 *
 * Every ledger event that changes the ledger appends a leaf, in the same
 * transaction that makes the event durable: ledger_write_logged() calls
 * tlog's hook once the batch's outcomes are known, with the log locked. The
 * hook makes each applied event's text (tlog_event.h) and a fresh 32-byte
 * salt, appends the commitments to the tree in memory (a merkle_edge: no
 * read), signs one checkpoint for the batch, and hands the ledger what to
 * store: a row per leaf, the tiles above level 0 that changed (the partial
 * tile of a level is rewritten, only when a hash of that level is made:
 * every 256^L leaves), and the checkpoint. When the stored tree is not the
 * one in memory (another node appended), the tree is loaded again first.
 *
 * After the commit the hashes of the batch are still in memory, with the
 * edge they grew from: tlog_prove() gives a leaf of the last batch its
 * inclusion proof in the batch's checkpoint without reading the ledger.
 *
 * The log's own events: the first leaf of a log names its key (log_key);
 * a new log key (keystore_rotate()) is announced by a log_key leaf whose
 * batch's checkpoint both keys sign, at the first batch after start-up.
 * A log begun on a ledger that already holds rows records each of them
 * as it stands ("existing" events), at start-up, before anything else.
 *
 * Threads: made and loaded on the main thread, then the writer thread's
 * alone, but for tlog_latest(), which any thread may call (behind a mutex).
 */
#ifndef RECEIPT_DAEMON_TLOG_H
#define RECEIPT_DAEMON_TLOG_H

#include "common/compiler.h"
#include "daemon/keystore.h"
#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLOG_ERR_MAX 512

typedef struct tlog tlog;

/*
 * The log's origin for a public URL: its host (and port) and path followed
 * by /_receipt/log ("https://example.com/site" gives
 * "example.com/site/_receipt/log"), the host in lower case and without the
 * scheme's default port, as a URL parser gives them ("https://Example.COM:443"
 * gives "example.com/_receipt/log"), into out (NOTE_NAME_MAX + 1 bytes).
 * Returns 0, or -1 when that is no valid key name (a space or a plus sign
 * in the path, or too long).
 */
int tlog_origin(const char *public_url, char *out, size_t cap);

/*
 * A log signed with ks's log key (borrowed: it must outlive the tlog; the
 * keys must hold a log key). NULL when out of memory.
 */
WARN_UNUSED_RESULT tlog *tlog_new(const keystore *ks);
void tlog_free(tlog *t);

/*
 * Reads the stored log through lg and checks it: the newest checkpoint is
 * signed by a key the keys know, and the tree the ledger stores has its
 * root. Decides what the log must record before anything else (its first
 * key, a rotated key, the rows of a ledger kept before the log). Returns 0,
 * or -1 with err set: the log is damaged, or its key is not one of these
 * keys (the message says what to do).
 */
WARN_UNUSED_RESULT int tlog_load(tlog *t, ledger *lg, char *err, size_t errlen);

/*
 * Whether the log has announced the current key and the previous one may
 * be forgotten (keystore_forget_previous()). Valid after tlog_load().
 */
bool tlog_previous_announced(const tlog *t);

/*
 * Writes what the log must record before any new event (its first key, a
 * rotated key, the rows of a ledger kept before it), in transactions of
 * at most batch events. Returns 0, or -1 with err set.
 */
WARN_UNUSED_RESULT int tlog_catch_up(tlog *t, ledger *lg, size_t batch, char *err, size_t errlen);

/*
 * The hook ledger_write_logged() takes (owned by t). Its end moves the tree
 * in memory on with a committed batch, or leaves it where it was.
 */
const ledger_log_hook *tlog_hook(tlog *t);

/*
 * Makes ahead the leaf that ev adds when it applies (ledger_leaf): its
 * canonical text into text (cap bytes, TLOG_EVENT_MAX + 1 suffice), the
 * text packed for storage into packed (packed_cap bytes, as many as text's
 * suffice; out->packed is NULL when it did not fit), a fresh salt and the
 * commitment. Any thread; no tlog needed. Returns 0, or -1 when the event
 * cannot be written canonically (the writer then refuses it as it would
 * without the leaf) or no random bytes could be had.
 */
WARN_UNUSED_RESULT int tlog_leaf_make(const ledger_event *ev, char *text, size_t cap,
                                      uint8_t *packed, size_t packed_cap, ledger_leaf *out);

/*
 * The proof of entry i's leaf (entries as given to the last committed
 * batch) in that batch's checkpoint. Returns false when the entry added
 * no leaf.
 */
bool tlog_prove(tlog *t, size_t i, ledger_proof *out);

/*
 * Pipelined commits (ledger_sync, writer.h): after tlog_defer_publish(),
 * called before the writer starts, a batch's checkpoint is not published
 * when the batch commits but when the writer says it is durable: the
 * writer reads it with tlog_committed() after the commit and hands it to
 * tlog_publish() after the fsync. Until then neither the checkpoint nor a
 * tile that needs its leaves is served (tlog_durable()), so that nothing a
 * power cut could take back is ever seen outside. tlog_committed() is the
 * writer thread's; the others, any thread's.
 */
void tlog_defer_publish(tlog *t);
uint64_t tlog_committed(const tlog *t, char *note, size_t cap);
void tlog_publish(tlog *t, uint64_t size, const char *note);
/* False when the first `leaves` leaves include some that this node
 * committed but are not durable yet. */
bool tlog_durable(tlog *t, uint64_t leaves);

/* The newest checkpoint the writer signed or loaded, into note (cap
 * bytes); its size, or 0 with note "" when there is none yet. Any thread. */
uint64_t tlog_latest(tlog *t, char *note, size_t cap);

/*
 * On a ledger other nodes append to too (PostgreSQL), the newest
 * checkpoint may be another node's. A reader of the ledger's newest claims
 * its turn with tlog_refresh_due() (true at most once per interval_ms of
 * the monotonic now_ms, so one thread reads while the others serve what is
 * known) and hands what it read to tlog_observe(); tlog_newest() is the
 * larger of that and tlog_latest(). Any thread.
 */
bool tlog_refresh_due(tlog *t, uint64_t now_ms, uint64_t interval_ms);
void tlog_observe(tlog *t, uint64_t size, const char *note);
uint64_t tlog_newest(tlog *t, char *note, size_t cap);

/* Leaves appended by this process (for metrics). */
uint64_t tlog_appended(tlog *t);

#endif
