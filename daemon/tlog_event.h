/*
 * tlog_event: what the evidence log commits to for each ledger event, and
 * how a row is rebuilt from those commitments.
 *
 * Every event that changes the ledger adds one leaf to the log
 * (docs/evidence.md): SHA-256(salt || text), where text is the event as
 * canonical JSON (RFC 8785). The text names the delivery and holds every
 * column the event wrote, by the column's name, so that the row can be
 * rebuilt from its events alone: an "issued" event the issuance's columns
 * (and the binding, for a device that named its key when it fetched);
 * "bound" the binding and, because a binding makes a row that a crash lost,
 * the issuance's columns from the ticket; "confirmed" and "corrupted" the
 * confirmation, the binding it carries and the issuance's columns likewise,
 * and the receipt by its SHA-256 (receipt_sha256). "existing" records a row
 * as it stood when the log began (a ledger kept before it), and "log_key"
 * a key of the log itself.
 *
 * tlog_event_fold() applies an event to a row as the ledger backends apply
 * the ledger event it came from, so that `receiptd ledger verify` can tell
 * whether each row is what its events made it.
 *
 * Nothing here allocates but tlog_event_fold(); everything is thread-safe.
 */
#ifndef RECEIPT_DAEMON_TLOG_EVENT_H
#define RECEIPT_DAEMON_TLOG_EVENT_H

#include "common/compiler.h"
#include "common/note.h"
#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLOG_EVENT_MAX        4096 /* bytes of an event's canonical text */
#define TLOG_EVENT_VERSION    1
#define TLOG_RECEIPT_HASH_LEN 43 /* base64url of the receipt's SHA-256 */

typedef enum tlog_event_type {
    TLOG_EVENT_ISSUED = 0,
    TLOG_EVENT_BOUND,
    TLOG_EVENT_CONFIRMED,
    TLOG_EVENT_CORRUPTED,
    TLOG_EVENT_EXISTING,
    TLOG_EVENT_LOG_KEY,
} tlog_event_type;

const char *tlog_event_type_name(tlog_event_type type);

/*
 * The canonical text of the event that ev adds when it applied, into out
 * (cap bytes, TLOG_EVENT_MAX + 1 suffice), NUL-terminated; its length, or 0
 * when ev cannot be written (a number beyond 2^53 - 1, which
 * ledger_event_check() refuses first; a text longer than TLOG_EVENT_MAX).
 * Text that is not UTF-8 is written with each invalid byte replaced by
 * U+FFFD, as the PostgreSQL ledger stores it; tlog_event_row_matches()
 * compares a row's text so repaired.
 */
size_t tlog_event_text(const ledger_event *ev, char *out, size_t cap);

/*
 * tlog_event_text(), and the text packed (common/evpack.h) into packed
 * (packed_cap bytes; as many as the text's suffice, since a canonical text
 * packs into no more than its length and one): *packed_len its length, 0
 * when it did not fit. The SQLite ledger stores events so.
 */
size_t tlog_event_text_packed(const ledger_event *ev, char *out, size_t cap, uint8_t *packed,
                              size_t packed_cap, size_t *packed_len);

/* The "existing" event of a row as it stands; as tlog_event_text(). */
size_t tlog_event_existing(const ledger_delivery *row, char *out, size_t cap);

/*
 * The "log_key" event: the log's verifier key from then on, the key it
 * replaces (NULL for the first), and when. As tlog_event_text().
 */
size_t tlog_event_log_key(const char *key, const char *previous, uint64_t time_ms, char *out,
                          size_t cap);

/* The receipt's digest as events name it: base64url of its SHA-256. */
void tlog_event_receipt_hash(const char *receipt, char out[TLOG_RECEIPT_HASH_LEN + 1]);

/*
 * One parsed event: its type, the delivery it names (empty for a log_key
 * event) and, for log_key events, the keys.
 */
typedef struct tlog_event_info {
    tlog_event_type type;
    char delivery[UUID7_STR_LEN + 1];
    char key[NOTE_VKEY_MAX];
    char previous[NOTE_VKEY_MAX];
    uint64_t time_ms;
} tlog_event_info;

/*
 * The state of one delivery as its events rebuild it: no row yet, or the
 * row, whose receipt is held by its digest (receipt_hash) since that is
 * what the events carry.
 */
typedef struct tlog_event_row {
    bool exists;
    ledger_delivery row;
    char receipt_hash[TLOG_RECEIPT_HASH_LEN + 1];
} tlog_event_row;

/*
 * Parses an event's text (n bytes; it must be canonical) into *info and,
 * for a delivery's event, applies it to *state as the ledger applied it.
 * Returns 0, or -1 with err saying why the text is not an event or cannot
 * follow the state (a second "issued", a binding of a confirmed row...).
 */
WARN_UNUSED_RESULT int tlog_event_fold(const char *text, size_t n, tlog_event_info *info,
                                       tlog_event_row *state, char *err, size_t errlen);

/*
 * Compares a row of the ledger with the state its events made; returns
 * true when they agree, else false with the names of the first columns that
 * differ in diff.
 */
bool tlog_event_row_matches(const tlog_event_row *state, const ledger_delivery *row, char *diff,
                            size_t difflen);

#endif
