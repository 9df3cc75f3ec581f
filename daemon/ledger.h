/*
 * ledger: where deliveries and their confirmations are recorded.
 *
 * An interface (a table of functions) with one file per backend:
 * ledger_sqlite.c (embedded, the default) and ledger_pg.c (PostgreSQL, one
 * ledger for several receiptd nodes); the table each of them fills is in
 * ledger_backend.h, which only backends and ledger.c include. A ledger
 * handle is one database connection and is used by one thread at a time:
 * the writer thread owns the process's writing handle; readers (admin API,
 * report) open their own.
 *
 * Writes are either one ledger_write() of a whole batch (the writer's way:
 * PostgreSQL then sends the batch as a few multi-row statements in one round
 * trip), or ledger_apply() calls between ledger_begin() and ledger_commit().
 * Either returns only when the batch is durable (SQLite: WAL with
 * synchronous=FULL; PostgreSQL: synchronous_commit on).
 */
#ifndef RECEIPT_DAEMON_LEDGER_H
#define RECEIPT_DAEMON_LEDGER_H

#include "common/compiler.h"
#include "common/eckey.h"
#include "common/uuid7.h"
#include "daemon/ticket.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEDGER_PATH_MAX    TICKET_PATH_MAX
#define LEDGER_ADDR_MAX    46 /* INET6_ADDRSTRLEN */
#define LEDGER_UA_MAX      255
#define LEDGER_SERVER_MAX  63
#define LEDGER_NODE_MAX    63
#define LEDGER_RECEIPT_MAX 4095
#define LEDGER_ERR_MAX     256

typedef enum ledger_status {
    LEDGER_ISSUED = 0,
    LEDGER_BOUND,
    LEDGER_CONFIRMED,
    LEDGER_CORRUPTED,
} ledger_status;

const char *ledger_status_name(ledger_status status);
/* Returns 0 and sets *out, or -1 for an unknown name. */
WARN_UNUSED_RESULT int ledger_status_parse(const char *name, ledger_status *out);

/*
 * What kind of delivery a row records (docs/protocol.md, "Which requests
 * are deliveries"): a page view the agent can confirm, a file fetched by the
 * agent or downloaded by the browser, a non-HTML document opened by
 * navigation (which no agent can confirm), a request without fetch metadata
 * (devices, scripts), or anything else an operator tracked. Rows recorded
 * before kinds were told apart are tracked.
 */
typedef enum ledger_kind {
    LEDGER_KIND_PAGE = 0,
    LEDGER_KIND_DOWNLOAD,
    LEDGER_KIND_VIEW,
    LEDGER_KIND_DEVICE,
    LEDGER_KIND_TRACKED,
} ledger_kind;

#define LEDGER_KIND_COUNT 5

const char *ledger_kind_name(ledger_kind kind);
/* Returns 0 and sets *out, or -1 for an unknown name. */
WARN_UNUSED_RESULT int ledger_kind_parse(const char *name, ledger_kind *out);

/* One delivery row. Strings are NUL-terminated; "" means none. */
typedef struct ledger_delivery {
    char id[UUID7_STR_LEN + 1];
    char path[LEDGER_PATH_MAX + 1];
    uint8_t sha256[32]; /* of the stored file: the version */
    uint64_t size;
    ledger_kind kind;
    uint8_t delivered_sha256[32]; /* of the bytes sent (an injected page), */
    uint64_t delivered_size;      /* or the version's again                */
    char server[LEDGER_SERVER_MAX + 1];
    char client_addr[LEDGER_ADDR_MAX + 1]; /* of the delivering request   */
    char user_agent[LEDGER_UA_MAX + 1];
    uint64_t issued_ms;
    ledger_status status;
    char client[ECKEY_THUMBPRINT_LEN + 1]; /* client ID once bound         */
    char bound_addr[LEDGER_ADDR_MAX + 1];
    uint64_t bound_ms;     /* 0: not bound                 */
    uint64_t confirmed_ms; /* 0: not confirmed             */
    char confirm_addr[LEDGER_ADDR_MAX + 1];
    bool received_has_sha256; /* false: client sent null      */
    uint8_t received_sha256[32];
    uint64_t received_size;
    uint64_t received_at_ms; /* the client's clock           */
    /* The receiptd node of each step; server is the site, the same on all.
     * "" when not known (a row made from a ticket on another node). */
    char issued_node[LEDGER_NODE_MAX + 1];
    char bound_node[LEDGER_NODE_MAX + 1];
    char confirmed_node[LEDGER_NODE_MAX + 1];
    char receipt[LEDGER_RECEIPT_MAX + 1]; /* JWS, once confirmed; last: see delivery.h */
} ledger_delivery;

typedef enum ledger_event_kind {
    LEDGER_EVENT_ISSUE,   /* a new row, status issued (or bound, see below)  */
    LEDGER_EVENT_BIND,    /* issued -> bound; inserts the row if missing     */
    LEDGER_EVENT_CONFIRM, /* -> confirmed/corrupted; inserts the row if missing */
    LEDGER_EVENT_COPY,    /* the whole row as it is, unless the ID exists    */
} ledger_event_kind;

/*
 * An event carries a whole row. ISSUE uses the issuance fields (id, path,
 * sha256, size, kind, delivered_sha256, delivered_size, server, client_addr,
 * user_agent, issued_ms, issued_node). Its status is issued, or bound when
 * row.status is LEDGER_BOUND (a device that named its key in the delivering
 * request), which also records client, bound_addr, bound_ms and bound_node;
 * later fields are ignored. BIND and CONFIRM also carry the issuance fields
 * (from the ticket) so that a row lost in a crash before it was written is
 * created from them.
 *
 * BIND sets client, bound_addr, bound_ms and bound_node (client required).
 * The first binding is the one recorded: a BIND on a row past issued is
 * ignored.
 *
 * CONFIRM sets status (row.status must be LEDGER_CONFIRMED or
 * LEDGER_CORRUPTED), client (required), confirmed_ms, confirm_addr,
 * received_*, receipt and confirmed_node. When the event carries a binding
 * (bound_ms != 0) and the row is not bound to the confirming client, the
 * event's binding replaces the stored one, so that client, bound_addr,
 * bound_ms and bound_node always describe the same client.
 *
 * COPY writes every field as given (ledger copy moves rows between ledgers);
 * an existing ID is left alone (IGNORED).
 */
typedef struct ledger_event {
    ledger_event_kind kind;
    ledger_delivery row;
} ledger_event;

typedef enum ledger_outcome {
    LEDGER_APPLIED,  /* the event changed the row (or made it)                  */
    LEDGER_SAME,     /* CONFIRM: already confirmed by this client; row returned */
    LEDGER_CONFLICT, /* CONFIRM: already confirmed by another client            */
    LEDGER_IGNORED,  /* BIND on a row past issued, ISSUE of an existing ID      */
} ledger_outcome;

/*
 * The evidence log's proof that an event is in the log (docs/evidence.md):
 * its leaf (index, salt, canonical event text), the inclusion proof and the
 * signed checkpoint of the tree of size leaves that it is proved in.
 */
#define LEDGER_EVENT_TEXT_MAX 4096 /* bytes of an event's canonical text */
#define LEDGER_NOTE_MAX       1536 /* bytes of a signed checkpoint */
#define LEDGER_SALT_LEN       32
#define LEDGER_HASH_LEN       32
#define LEDGER_PROOF_MAX      64 /* hashes */

typedef struct ledger_proof {
    bool present; /* false: the rest is unset */
    uint64_t index;
    uint64_t size;
    uint8_t salt[LEDGER_SALT_LEN];
    size_t hash_count;
    uint8_t hashes[LEDGER_PROOF_MAX][LEDGER_HASH_LEN];
    char event[LEDGER_EVENT_TEXT_MAX + 1];
    char checkpoint[LEDGER_NOTE_MAX + 1];
} ledger_proof;

typedef struct ledger_result {
    ledger_outcome outcome;
    /* For CONFIRM: the row as it stands after the event (status, client,
     * confirmed_ms, receipt are what the client must be answered). Not
     * filled for ISSUE and BIND, which only set outcome. */
    ledger_delivery row;
    /* For an applied CONFIRM: its leaf's proof, set by the writer once the
     * batch committed (not by ledger_write()). */
    ledger_proof proof;
} ledger_result;

typedef struct ledger ledger;

#define LEDGER_TARGET_MAX 4095 /* longest PATH or connection string */

/*
 * Opens a ledger by URL: "sqlite:PATH" (PATH relative to the working
 * directory), NULL for STATE_DIR/ledger.sqlite, or PostgreSQL by a libpq
 * URL ("postgresql://..." or "postgres://...") or key/value string
 * ("host=... dbname=..."; any string with an '='), whose password may also
 * come from PGPASSWORD or a password file. Migrates the schema to the
 * current version when writable (a new SQLite file is created mode 0600;
 * PostgreSQL migrates under an advisory lock, so nodes may start together);
 * read_only handles never write, and need an existing ledger whose schema
 * version is this binary's. A ledger whose schema is newer than this binary
 * knows is refused either way. Returns NULL with err (LEDGER_ERR_MAX bytes)
 * set on failure; err never holds a password.
 */
WARN_UNUSED_RESULT ledger *ledger_open(const char *url, const char *state_dir, bool read_only,
                                       char *err, size_t errlen);
/*
 * The same, and *unreachable (may be NULL) tells whether the failure was
 * the database server not answering, or refusing the connection (down,
 * starting, a network gone, a password it does not take yet), which
 * waiting may cure, rather than the ledger itself.
 */
/*
 * Whether the ledger a URL names exists yet: 1 yes, 0 no (start-up will
 * create it), -1 when the URL is invalid (err set). Backends that are not
 * files answer 1: opening them says the rest.
 */
int ledger_exists(const char *url, const char *state_dir, char *err, size_t errlen);

WARN_UNUSED_RESULT ledger *ledger_open_ex(const char *url, const char *state_dir, bool read_only,
                                          bool *unreachable, char *err, size_t errlen);
void ledger_close(ledger *lg);

/* The backend's name ("sqlite", "postgresql") and the last error message
 * (borrowed). */
const char *ledger_backend(const ledger *lg);
const char *ledger_error(const ledger *lg);

/*
 * Where the ledger is, for logs: the SQLite file, or the PostgreSQL
 * connection as a URL without its password (borrowed).
 */
const char *ledger_where(const ledger *lg);

/* Whether a URL names a PostgreSQL ledger (the same test ledger_open makes). */
bool ledger_url_is_pg(const char *url);

/*
 * How long a statement waits for a lock held by another connection before it
 * fails (SQLite: busy_timeout; the default is LEDGER_LOCK_TIMEOUT_MS).
 * Returns 0 or -1.
 */
#define LEDGER_LOCK_TIMEOUT_MS 5000
WARN_UNUSED_RESULT int ledger_set_lock_timeout(ledger *lg, int timeout_ms);

/* Each returns 0 or -1 (message in ledger_error()). */
WARN_UNUSED_RESULT int ledger_begin(ledger *lg);

/*
 * One event inside a transaction; result may be NULL. Returns 0 with result
 * set, or:
 *   LEDGER_APPLY_EVENT_FAILED: this event was refused (invalid, or violates a
 *     constraint); nothing of it was written and the transaction goes on.
 *   LEDGER_APPLY_TXN_FAILED: the transaction is lost (I/O error, disk full,
 *     lock lost...); roll back, the whole batch must be tried again.
 */
#define LEDGER_APPLY_EVENT_FAILED (-1)
#define LEDGER_APPLY_TXN_FAILED   (-2)
WARN_UNUSED_RESULT int ledger_apply(ledger *lg, const ledger_event *event, ledger_result *result);
WARN_UNUSED_RESULT int ledger_commit(ledger *lg);
/* Succeeds (does nothing) when no transaction is open. */
WARN_UNUSED_RESULT int ledger_rollback(ledger *lg);

/*
 * After a failed ledger_begin(), ledger_apply() (LEDGER_APPLY_TXN_FAILED),
 * ledger_commit() or ledger_write(): may the transaction's events be tried
 * again? Each backend sorts its own errors:
 *   LEDGER_FAULT_RETRY: nothing of the transaction is durable and the store
 *     is sound; the same events can be applied again later (SQLite: full
 *     disk, lock timeout, an I/O error on a write; PostgreSQL: every failure,
 *     since its events are idempotent and the server keeps what it
 *     committed).
 *   LEDGER_FAULT_FATAL: the handle can no longer tell what is durable, or
 *     the store is damaged: stop writing through it (SQLite: fsync failed,
 *     since the kernel may have dropped the dirty pages and a later fsync
 *     would succeed without them; a corrupt or foreign file).
 */
typedef enum ledger_fault {
    LEDGER_FAULT_RETRY = 0,
    LEDGER_FAULT_FATAL,
} ledger_fault;

ledger_fault ledger_last_fault(const ledger *lg);

/*
 * Did the last failure come from one of the ledger's own time limits (a
 * statement or lock timeout: PostgreSQL's statement_timeout and
 * lock_timeout) rather than from a fault? Such a read may succeed when
 * retried, or narrowed. False for a backend without such limits.
 */
bool ledger_timed_out(const ledger *lg);

/*
 * A full check of the store, which reads all of it (SQLite: PRAGMA
 * integrity_check); slow on a large ledger, so start-up does not run it and
 * --check does; then the rollups against a recount of the rows
 * (ledger_rollups_check()). Returns 0 sound, or -1 with the first problems
 * in ledger_error().
 */
int ledger_verify(ledger *lg);

/*
 * One batch as one durable transaction: the entries' events in order, with
 * the same effects and results as ledger_begin(), ledger_apply() of each and
 * ledger_commit(). Returns 0 once durable, with every entry's status (0 or
 * LEDGER_APPLY_EVENT_FAILED, with why saying why, valid until the next call
 * on lg) and result (when not NULL) set; or -1 when the transaction failed
 * and nothing of it was written (message in ledger_error()). No transaction
 * may be open. The entries and what they point to are the caller's.
 */
typedef struct ledger_leaf ledger_leaf;

typedef struct ledger_batch_entry {
    const ledger_event *event;
    ledger_result *result;   /* may be NULL */
    const ledger_leaf *leaf; /* may be NULL: the event's log leaf, made ahead (see below) */
    int status;              /* out */
    ledger_outcome outcome;  /* out: when status is 0, also without a result */
    const char *why;         /* out: for LEDGER_APPLY_EVENT_FAILED, else NULL */
} ledger_batch_entry;

WARN_UNUSED_RESULT int ledger_write(ledger *lg, ledger_batch_entry *entries, size_t n);

/* ---- pipelined commits ---- */

/*
 * A commit made durable apart from the commit itself, so that one thread
 * writes the next batch while another waits for the previous one's fsync
 * (the ledger writer's pipeline, writer.h). Only the SQLite backend has
 * it: its WAL's fsync is then taken into the caller's hands.
 *
 * ledger_sync_begin() switches lg, the process's writing handle, to it:
 * from then on a commit returns once the batch is in the WAL (written, not
 * fsync'd), and the batch is durable once a ledger_sync_now() that began
 * after the commit returned 0. It is as durable as synchronous=FULL for
 * every batch that is answered only then (docs/internals.md, "Pipelined
 * commits", says why). The checkpoints that copy the WAL into the database
 * move to their own connection, with synchronous=FULL: ledger_sync_checkpoint().
 *
 * Returns NULL when the backend has no such mode (PostgreSQL: a commit is
 * durable when it returns) with err "", or on failure with err set. The
 * ledger_sync belongs to the caller, is used by threads other than lg's
 * (each function by one thread at a time) and must be freed before lg is
 * closed.
 */
typedef struct ledger_sync ledger_sync;

WARN_UNUSED_RESULT ledger_sync *ledger_sync_begin(ledger *lg, char *err, size_t errlen);
/*
 * Makes every batch committed before the call durable. Returns 0, or -1
 * with err set: the fsync failed, and what was committed since the last
 * good one may be lost (treat it as the ledger's fatal failure).
 */
WARN_UNUSED_RESULT int ledger_sync_now(ledger_sync *s, char *err, size_t errlen);
/* Whether the WAL has grown enough since the last checkpoint to need one. */
bool ledger_sync_checkpoint_due(ledger_sync *s);
/*
 * Copies what the WAL holds into the database (a passive checkpoint: never
 * waits for the writer, takes what readers allow) and fsyncs both files.
 * Returns 0, or -1 with err set (retried at the next due time).
 */
int ledger_sync_checkpoint(ledger_sync *s, char *err, size_t errlen);
void ledger_sync_free(ledger_sync *s);

/* ---- the evidence log (docs/evidence.md; daemon/tlog.h keeps it) ---- */

/*
 * Stored per leaf: its number, the delivery its event names (NULL for the
 * log's own events), the salt, the commitment SHA-256(salt || event) and
 * the event's canonical text. Stored per tile level L >= 1: tiles of the
 * hashes (8 L, n) (level 0 is the entries' commitments, hashed). Stored per
 * batch: the signed checkpoint of the tree it made and when.
 */
typedef struct ledger_log_entry {
    uint64_t leaf;
    const char *delivery; /* NULL, or a delivery ID */
    const uint8_t *salt;  /* LEDGER_SALT_LEN bytes */
    const uint8_t *commitment;
    const char *event;
    size_t event_len;
    /* The event packed for storage (common/evpack.h), made ahead with its
     * text, or NULL: the SQLite ledger stores it so (and packs the text
     * itself without it); PostgreSQL stores the text. */
    const uint8_t *packed;
    size_t packed_len;
} ledger_log_entry;

/*
 * The leaf an event adds to the log when it applies, made ahead of the
 * write by the thread that submits the event (tlog_leaf_make()), so that
 * the one thread every event waits for only appends it: the salt, the
 * commitment SHA-256(salt || text) and the event's canonical text
 * (borrowed). An event that does not apply leaves its leaf unused.
 */
struct ledger_leaf {
    uint8_t salt[LEDGER_SALT_LEN];
    uint8_t commitment[LEDGER_HASH_LEN];
    const char *text;
    size_t text_len;
    const uint8_t *packed; /* the text packed for storage (borrowed), or NULL */
    size_t packed_len;
};

typedef struct ledger_log_tile {
    unsigned level; /* 1 .. 7 */
    uint64_t index;
    const uint8_t *hashes; /* width * LEDGER_HASH_LEN bytes */
    unsigned width;        /* 1 .. 256 */
} ledger_log_tile;

typedef struct ledger_log_write {
    const ledger_log_entry *entries;
    size_t entry_count;
    const ledger_log_tile *tiles; /* each replaces the stored tile of its level and index */
    size_t tile_count;
    uint64_t size; /* the tree's, after the entries */
    uint64_t time_ms;
    const char *checkpoint; /* the signed note of the tree of size leaves (NULL: none, for
                               ledger_log_import() alone) */
} ledger_log_write;

/*
 * Called by ledger_write_logged() inside the batch's transaction once every
 * entry's status and outcome are known, with the log locked (no other
 * handle appends until the commit): head is the size of the stored tree
 * (its newest checkpoint's, 0 for none). Returns 0 with *out the log's
 * writes for the batch (NULL: nothing to write; borrowed until the write
 * returns), or -1 with err set, which rolls the batch back (retried). May
 * read the log through lg. The writes' entries are the log's own first,
 * then one for each entry whose status is 0 and outcome LEDGER_APPLIED, in
 * the batch's order, naming its delivery: the SQLite ledger numbers the
 * leaves in the rows as it writes them, and refuses a batch whose entries
 * are not so.
 */
typedef struct ledger_log_hook {
    int (*batch)(void *ctx, ledger *lg, uint64_t head, ledger_batch_entry *entries, size_t n,
                 const ledger_log_write **out, char *err, size_t errlen);
    /* Called once ledger_write_logged() is done: committed or not. */
    void (*end)(void *ctx, bool committed);
    void *ctx;
} ledger_log_hook;

/*
 * ledger_write() with the evidence log: the hook's writes go into the same
 * transaction. With a hook the transaction runs even when no event is
 * valid (n may be 0), for the log's own events.
 */
WARN_UNUSED_RESULT int ledger_write_logged(ledger *lg, ledger_batch_entry *entries, size_t n,
                                           const ledger_log_hook *hook);

/* One stored entry, as the reads below give it (borrowed for the call). */
typedef struct ledger_log_row {
    uint64_t leaf;
    char delivery[UUID7_STR_LEN + 1]; /* "" for the log's own events */
    uint8_t salt[LEDGER_SALT_LEN];
    uint8_t commitment[LEDGER_HASH_LEN];
    const char *event;
    size_t event_len;
} ledger_log_row;

/* Callbacks of the log's reads: 0 to go on, non-zero to stop. */
typedef int (*ledger_log_row_fn)(void *arg, const ledger_log_row *row);
typedef int (*ledger_checkpoint_fn)(void *arg, uint64_t size, uint64_t time_ms, const char *note);

typedef enum ledger_log_select {
    LEDGER_LOG_RANGE,    /* leaves first .. first + count - 1, in order */
    LEDGER_LOG_DELIVERY, /* the entries of one delivery, in order (below) */
    LEDGER_LOG_OWN,      /* the log's own entries (key changes), in order */
} ledger_log_select;

/*
 * Each returns 0, or -1 (message in ledger_error()); a callback's stop is 0.
 * Entries come in leaf order. Commitments alone (for tiles and hashes)
 * skip the events: row->event is then NULL. A delivery's entries are those
 * naming it; SQLite finds them from its row (the leaf numbers the row
 * keeps), so a delivery without a row, or whose row's numbers were edited,
 * has none there, where PostgreSQL finds them by an index of the log.
 */
WARN_UNUSED_RESULT int ledger_log_entries(ledger *lg, ledger_log_select select, uint64_t first,
                                          uint64_t count, const char *delivery,
                                          bool commitments_only, ledger_log_row_fn fn, void *arg);
/*
 * The entries of the deliveries whose IDs sort after after_id (NULL: from
 * the first) and up to last_id (inclusive; NULL: to the last), as
 * LEDGER_LOG_DELIVERY finds them, by delivery then leaf: the events of a
 * page of rows in one read, for a merge with the rows read in ID order.
 * 0, or -1 as above.
 */
WARN_UNUSED_RESULT int ledger_log_deliveries(ledger *lg, const char *after_id, const char *last_id,
                                             ledger_log_row_fn fn, void *arg);
/* Checkpoints of sizes min_size .. max_size, ascending or newest first, at
 * most limit (0: all). */
WARN_UNUSED_RESULT int ledger_log_checkpoints(ledger *lg, uint64_t min_size, uint64_t max_size,
                                              bool newest_first, uint64_t limit,
                                              ledger_checkpoint_fn fn, void *arg);
/* The stored tile (level >= 1, index) into out (256 hashes); *width 0 when none. */
WARN_UNUSED_RESULT int ledger_log_read_tile(ledger *lg, unsigned level, uint64_t index,
                                            uint8_t out[256 * LEDGER_HASH_LEN], unsigned *width);
/* The size of the stored tree: its newest checkpoint's, 0 for none. */
WARN_UNUSED_RESULT int ledger_log_size(ledger *lg, uint64_t *size);

/*
 * For ledger copy: stores part of a log copied from another ledger as it
 * was there (its entries, its tiles, and its checkpoint unless NULL), in a
 * transaction of its own. Returns 0, or -1 (message in ledger_error()).
 */
WARN_UNUSED_RESULT int ledger_log_import(ledger *lg, const ledger_log_write *w);

/*
 * Makes room for rows whose IDs carry times from first_ms to last_ms (Unix
 * milliseconds): PostgreSQL creates the monthly partitions of the deliveries
 * table that do not exist yet (receiptd keeps LEDGER_MONTHS_AHEAD months
 * ready); SQLite has nothing to do. Needs a writable handle and no open
 * transaction. Returns the number of partitions made, or -1.
 */
#define LEDGER_MONTHS_AHEAD 2
WARN_UNUSED_RESULT int ledger_prepare(ledger *lg, uint64_t first_ms, uint64_t last_ms);

/*
 * Whether an event can be written at all, the same rules for every backend,
 * which check it first: an ID of 36 characters, a known kind (and for COPY a
 * known status), a client for BIND and CONFIRM, a final status for CONFIRM,
 * numbers up to LEDGER_NUMBER_MAX. Returns 0, or -1 with err
 * (LEDGER_ERR_MAX bytes) saying what is wrong.
 */
WARN_UNUSED_RESULT int ledger_event_check(const ledger_event *ev, char *err, size_t errlen);

/* The largest number a ledger event may hold: 2^53 - 1, the largest integer
 * a JSON number carries exactly. */
#define LEDGER_NUMBER_MAX ((UINT64_C(1) << 53) - 1)

/*
 * The columns an event writes, the same for every backend: the status the
 * row gets, and whether the binding (client, bound_addr, bound_ms,
 * bound_node) and the confirmation (confirmed_ms to receipt, confirmed_node)
 * come from the event or stay empty. insert_only: ISSUE and COPY, which make
 * a row or leave an existing one alone; BIND and CONFIRM update one.
 */
typedef struct ledger_event_columns {
    const char *status;
    bool binding;
    bool confirmation;
    bool insert_only;
} ledger_event_columns;

void ledger_event_columns_of(const ledger_event *ev, ledger_event_columns *out);

/* Reads one row; returns 1 found, 0 not found, -1 error. */
WARN_UNUSED_RESULT int ledger_get(ledger *lg, const char *id, ledger_delivery *out);

/* Number of rows (all statuses); -1 on error. */
WARN_UNUSED_RESULT long long ledger_count(ledger *lg);

/* ---- reading: admin API, dashboard and report ---- */

/*
 * Which rows a query returns. Every member narrows the set; a zero member
 * (NULL, 0, false) does not. Rows come newest first, ordered by ID (UUIDv7:
 * issue time, then random bits), which is stable across pages; oldest first
 * with oldest_first.
 */
#define LEDGER_STATUS_BIT(s)  (1u << (unsigned)(s))
#define LEDGER_STATUS_PENDING (LEDGER_STATUS_BIT(LEDGER_ISSUED) | LEDGER_STATUS_BIT(LEDGER_BOUND))
#define LEDGER_KIND_BIT(k)    (1u << (unsigned)(k))

typedef struct ledger_filter {
    const char *path;      /* exact content path                      */
    const char *client;    /* exact client ID                         */
    unsigned statuses;     /* LEDGER_STATUS_BIT()s; 0: every status   */
    unsigned kinds;        /* LEDGER_KIND_BIT()s; 0: every kind       */
    uint64_t since_ms;     /* issued_ms >= since_ms                   */
    uint64_t until_ms;     /* issued_ms < until_ms; 0: no upper bound */
    const char *before_id; /* keyset page: rows with id < before_id   */
    const char *after_id;  /* rows with id > after_id                 */
    bool oldest_first;     /* ascending IDs instead of descending     */
    uint64_t limit;        /* at most this many rows; 0: no limit     */
} ledger_filter;

/* The rows of one kind, by status. */
typedef struct ledger_kind_counts {
    uint64_t deliveries;
    uint64_t confirmed;
    uint64_t corrupted;
    uint64_t pending; /* issued or bound */
} ledger_kind_counts;

typedef struct ledger_summary {
    uint64_t deliveries;
    uint64_t confirmed;
    uint64_t corrupted;
    uint64_t bound;    /* status bound now (not yet confirmed) */
    uint64_t pending;  /* issued or bound                      */
    uint64_t first_ms; /* earliest issued_ms; 0: no rows       */
    uint64_t last_ms;  /* latest issued_ms or confirmed_ms     */
    ledger_kind_counts kinds[LEDGER_KIND_COUNT];
} ledger_summary;

/* Adds n rows of status and kind to a summary (for the backends). */
void ledger_summary_count(ledger_summary *s, ledger_status status, ledger_kind kind, uint64_t n);

/*
 * One content version (path and sha256). Latencies are confirmed_ms -
 * issued_ms over its confirmed and corrupted rows, nearest rank: of n
 * values sorted ascending, the median is the ceil(n/2)-th and p95 the
 * ceil(0.95 n)-th.
 */
typedef struct ledger_content_stats {
    char path[LEDGER_PATH_MAX + 1];
    uint8_t sha256[32];
    uint64_t size;
    uint64_t deliveries, confirmed, corrupted, pending;
    uint64_t first_ms, last_ms; /* issued_ms range */
    bool has_latency;           /* false: nothing confirmed yet */
    int64_t median_ms, p95_ms;
} ledger_content_stats;

/* One client: every row bound to or confirmed by it. */
typedef struct ledger_client_stats {
    char client[ECKEY_THUMBPRINT_LEN + 1];
    uint64_t deliveries, confirmed, corrupted, pending;
    uint64_t last_seen_ms; /* latest of issued, bound and confirmed times */
} ledger_client_stats;

/* Deliveries issued, and confirmations made, in [start_ms, start_ms + width). */
typedef struct ledger_bucket {
    uint64_t start_ms;
    uint64_t deliveries, confirmed, corrupted;
} ledger_bucket;

/* Callbacks of the aggregate reads: return 0 to go on, non-zero to stop. */
typedef int (*ledger_content_fn)(void *arg, const ledger_content_stats *row);
typedef int (*ledger_client_fn)(void *arg, const ledger_client_stats *row);
typedef int (*ledger_bucket_fn)(void *arg, const ledger_bucket *row);

/* Each returns 0, or -1 (message in ledger_error()); a callback's stop is 0. */
WARN_UNUSED_RESULT int ledger_summary_read(ledger *lg, ledger_summary *out);
WARN_UNUSED_RESULT int ledger_content_stats_read(ledger *lg, ledger_content_fn fn, void *arg);
WARN_UNUSED_RESULT int ledger_client_stats_read(ledger *lg, ledger_client_fn fn, void *arg);
/* Buckets of width_ms from since_ms up to until_ms; only non-empty ones. */
WARN_UNUSED_RESULT int ledger_series_read(ledger *lg, uint64_t since_ms, uint64_t until_ms,
                                          uint64_t width_ms, ledger_bucket_fn fn, void *arg);

/*
 * The rollups that the summary and the series read (counts by status and
 * kind, per minute, and the latest confirmation, kept by the writer in each
 * batch's transaction) against a recount of the rows, which reads them all.
 * Each difference goes to fn (may be NULL) as a sentence. Returns the
 * number of differences, or -1 (message in ledger_error()).
 */
typedef void (*ledger_problem_fn)(void *arg, const char *text);
WARN_UNUSED_RESULT long ledger_rollups_check(ledger *lg, ledger_problem_fn fn, void *arg);

/*
 * A query's rows, one at a time: memory stays constant however many rows
 * match. The cursor borrows the filter's strings only during ledger_query()
 * and must be freed before its ledger is closed. A cursor holds a read
 * snapshot (SQLite: an open read transaction) until it ends or is freed.
 */
typedef struct ledger_cursor ledger_cursor;

WARN_UNUSED_RESULT ledger_cursor *ledger_query(ledger *lg,
                                               const ledger_filter *filter); /* NULL: error */
/* Returns 1 with *out set, 0 after the last row, -1 on error. */
WARN_UNUSED_RESULT int ledger_cursor_next(ledger_cursor *cur, ledger_delivery *out);
void ledger_cursor_free(ledger_cursor *cur); /* NULL-safe */

#endif
