/*
 * The SQLite ledger backend.
 *
 * WAL with synchronous=FULL: a commit returns once the WAL is fsync'd, and
 * readers (their own connections) never block the one writer. Every
 * statement is prepared once per handle and bound with SQLITE_STATIC, since
 * the event outlives the step.
 */
#include "daemon/ledger_backend.h"

#include "common/evpack.h"
#include "daemon/walbuf.h"

#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SQLITE_CACHE_KIB     16384              /* page cache of a handle          */
#define SQLITE_JOURNAL_LIMIT (64 * 1024 * 1024) /* WAL size kept after checkpoints */
#define SQLITE_FILE_MODE     0600               /* client addresses are personal data */
/*
 * WAL pages between automatic checkpoints (SQLite's default is 1000). Hot
 * index pages rewritten by many batches are then copied to the database once,
 * not once per 4 MB: measured about 25% more ISSUE rows per second.
 */
#define SQLITE_CHECKPOINT_PAGES 10000

/*
 * Schema steps: step i takes user_version i to i + 1. Append only: a released
 * step is never edited, since ledgers in the field already ran it.
 *
 * A rowid table, not WITHOUT ROWID: measured 20-25% faster for batches of
 * ISSUE rows here, since the four secondary indexes then carry an 8-byte
 * rowid instead of the 36-byte ID. UUIDv7 IDs are issued in order, so both
 * the rowids and the ID index grow at their right edge. The client index is
 * partial: issued rows have no client and cost it nothing.
 */
static const char *const migrations[] = {
    "CREATE TABLE deliveries ("
    " id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),"
    " path TEXT NOT NULL,"
    " sha256 BLOB NOT NULL CHECK (length(sha256) = 32),"
    " size INTEGER NOT NULL,"
    " server TEXT NOT NULL,"
    " client_addr TEXT NOT NULL,"
    " user_agent TEXT,"
    " issued_ms INTEGER NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('issued', 'bound', 'confirmed', 'corrupted')),"
    " client TEXT,"
    " bound_addr TEXT,"
    " bound_ms INTEGER,"
    " confirmed_ms INTEGER,"
    " confirm_addr TEXT,"
    " received_sha256 BLOB CHECK (received_sha256 IS NULL OR length(received_sha256) = 32),"
    " received_size INTEGER,"
    " received_at_ms INTEGER,"
    " receipt TEXT"
    ");"
    "CREATE INDEX deliveries_path ON deliveries (path);"
    "CREATE INDEX deliveries_client ON deliveries (client) WHERE client IS NOT NULL;"
    "CREATE INDEX deliveries_status ON deliveries (status);"
    "CREATE INDEX deliveries_issued ON deliveries (issued_ms);",
    /* 2: the receiptd node of each step (several nodes, one site). */
    "ALTER TABLE deliveries ADD COLUMN issued_node TEXT;"
    "ALTER TABLE deliveries ADD COLUMN bound_node TEXT;"
    "ALTER TABLE deliveries ADD COLUMN confirmed_node TEXT;",
    /*
     * 3: kinds, and the digest and size of the bytes sent where they differ
     * from the version's (an injected page): NULL otherwise. Rows from
     * before are tracked, as every 200 was. Counts by status and kind come
     * from one covering index, which replaces the one by status.
     */
    "ALTER TABLE deliveries ADD COLUMN kind TEXT NOT NULL DEFAULT 'tracked'"
    " CHECK (kind IN ('page', 'download', 'view', 'device', 'tracked'));"
    "ALTER TABLE deliveries ADD COLUMN delivered_sha256 BLOB"
    " CHECK (delivered_sha256 IS NULL OR length(delivered_sha256) = 32);"
    "ALTER TABLE deliveries ADD COLUMN delivered_size INTEGER;"
    "DROP INDEX deliveries_status;"
    "CREATE INDEX deliveries_status_kind ON deliveries (status, kind);",
    /*
     * 4: the evidence log (docs/evidence.md): a row per leaf, the tiles of
     * hashes above level 0 (level 0 is the commitments), a checkpoint per
     * batch. A leaf's number is its rowid.
     */
    "CREATE TABLE log_entries ("
    " leaf INTEGER PRIMARY KEY,"
    " delivery TEXT CHECK (delivery IS NULL OR length(delivery) = 36),"
    " salt BLOB NOT NULL CHECK (length(salt) = 32),"
    " commitment BLOB NOT NULL CHECK (length(commitment) = 32),"
    " event TEXT NOT NULL"
    ");"
    "CREATE INDEX log_entries_delivery ON log_entries (delivery) WHERE delivery IS NOT NULL;"
    "CREATE INDEX log_entries_own ON log_entries (leaf) WHERE delivery IS NULL;"
    "CREATE TABLE log_tiles ("
    " level INTEGER NOT NULL CHECK (level BETWEEN 1 AND 7),"
    " idx INTEGER NOT NULL CHECK (idx >= 0),"
    " hashes BLOB NOT NULL"
    "  CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),"
    " PRIMARY KEY (level, idx)"
    ");"
    "CREATE TABLE log_checkpoints ("
    " size INTEGER PRIMARY KEY,"
    " time_ms INTEGER NOT NULL,"
    " note TEXT NOT NULL"
    ");",
    /*
     * 5: no index by path. Rows arrive in time order across all paths, so
     * every batch wrote into the right edge of each path it named: with 500
     * paths, a batch of 1,024 issuances dirtied about 500 index pages, five
     * times the table's own (measured: a quarter of the writer's time a
     * row). The per-content aggregates scan anyway; a report of one path
     * (`receiptd report --content`) now reads the table.
     */
    "DROP INDEX IF EXISTS deliveries_path;",
    /*
     * 6: the CHECKs of status and kind as comparisons. SQLite evaluates a
     * constant IN list of more than two values through a temporary b-tree
     * that each run of a statement builds afresh: two of them for every
     * row written, a third of the writer's instructions a row (callgrind,
     * bench/ledger_rows --rows). The rewritten CHECKs accept exactly the
     * same values (NULL included, which NOT NULL refuses anyway), and a
     * CHECK is not part of the stored rows, so the table's text is
     * rewritten in place: SQLite documents this for changing constraints
     * without rebuilding the table (see schema_text_changed()). A table
     * whose text differs from receiptd's keeps its CHECKs as they are.
     */
    "PRAGMA writable_schema = ON;"
    "UPDATE sqlite_schema SET sql = replace(replace(sql,"
    " 'CHECK (status IN (''issued'', ''bound'', ''confirmed'', ''corrupted''))',"
    " 'CHECK (status = ''issued'' OR status = ''bound'' OR status = ''confirmed''"
    " OR status = ''corrupted'')'),"
    " 'CHECK (kind IN (''page'', ''download'', ''view'', ''device'', ''tracked''))',"
    " 'CHECK (kind = ''page'' OR kind = ''download'' OR kind = ''view'' OR kind = ''device''"
    " OR kind = ''tracked'')')"
    " WHERE type = 'table' AND name = 'deliveries';"
    "PRAGMA writable_schema = OFF;",
    /*
     * 7: a delivery's leaves found from its row, not by an index of the
     * log by delivery. Every event that changes a row adds one leaf, and
     * a row takes at most three (issued or existing, bound, confirmed or
     * corrupted: each status is left once), so the row keeps their numbers
     * itself, newest first: the statement that writes the row writes the
     * number its leaf gets, and the index's entry a leaf (bindings and
     * confirmations go into the middle of a b-tree keyed by delivery ID)
     * is gone: 2,670 fewer instructions a leaf, 3 WAL pages fewer a batch
     * of 24 (docs/performance.md). Filled from that index here, then it
     * goes. See docs/evidence.md, "Storage".
     */
    "ALTER TABLE deliveries ADD COLUMN log_leaf INTEGER;"
    "ALTER TABLE deliveries ADD COLUMN log_leaf_prev INTEGER;"
    "ALTER TABLE deliveries ADD COLUMN log_leaf_prev2 INTEGER;"
    "UPDATE deliveries SET log_leaf = c.l0, log_leaf_prev = c.l1, log_leaf_prev2 = c.l2"
    " FROM (SELECT delivery, max(CASE WHEN n = 1 THEN leaf END) AS l0,"
    "   max(CASE WHEN n = 2 THEN leaf END) AS l1, max(CASE WHEN n = 3 THEN leaf END) AS l2"
    "  FROM (SELECT delivery, leaf,"
    "    row_number() OVER (PARTITION BY delivery ORDER BY leaf DESC) AS n"
    "   FROM log_entries WHERE delivery IS NOT NULL)"
    "  GROUP BY delivery) AS c"
    " WHERE deliveries.id = c.delivery;"
    "DROP INDEX log_entries_delivery;",
    /*
     * 8: the rollups that the summary and the series read instead of the
     * rows (docs/performance.md, "The summary and the series from rollups"):
     * rows by status and kind, rows issued and confirmed per minute (of
     * issued_ms, and of confirmed_ms for rows whose status is final), and
     * the latest confirmation. The
     * writer keeps them with each batch's net changes, in the batch's
     * transaction (rollup_apply()); this step builds them from the rows.
     */
    "CREATE TABLE rollup_status ("
    " status TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY (status, kind)"
    ") WITHOUT ROWID;"
    "CREATE TABLE rollup_minutes ("
    " minute INTEGER PRIMARY KEY,"
    " issued INTEGER NOT NULL, confirmed INTEGER NOT NULL, corrupted INTEGER NOT NULL"
    ");"
    "CREATE TABLE rollup_latest ("
    " one INTEGER PRIMARY KEY CHECK (one = 1), confirmed_ms INTEGER"
    ");"
    "INSERT INTO rollup_status (status, kind, n)"
    " SELECT status, kind, count(*) FROM deliveries GROUP BY status, kind;"
    "INSERT INTO rollup_minutes (minute, issued, confirmed, corrupted)"
    " SELECT m, sum(i), sum(c), sum(x) FROM ("
    "  SELECT issued_ms / 60000 AS m, 1 AS i, 0 AS c, 0 AS x FROM deliveries"
    "  UNION ALL SELECT confirmed_ms / 60000, 0, status = 'confirmed', status = 'corrupted'"
    "  FROM deliveries WHERE confirmed_ms IS NOT NULL"
    "  AND (status = 'confirmed' OR status = 'corrupted')"
    " ) GROUP BY m;"
    "INSERT INTO rollup_latest (one, confirmed_ms) SELECT 1, max(confirmed_ms) FROM deliveries"
    " WHERE status = 'confirmed' OR status = 'corrupted';",
};

/* The first schema version with the rollups. */
#define SCHEMA_ROLLUP_VERSION 8

/* The step that rewrites the schema's text (see schema_text_changed()). */
#define SCHEMA_CHECKS_VERSION 6

/* The first schema version with the evidence log's tables. */
#define SCHEMA_LOG_VERSION 4

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/*
 * Marks a ledger as receiptd's (SQLite's application_id, the 32-bit number
 * at offset 68 of the file header, "rcpt"), so that a database of another
 * program at the ledger path is refused rather than altered. Ledgers made
 * before the mark existed are adopted when their schema is receiptd's.
 */
#define LEDGER_APPLICATION_ID 0x72637074

/* The tables of a ledger, for adopting an unmarked one, in name order:
 * the first one before SCHEMA_LOG_VERSION, all from it on. */
static const char *const schema_tables[] = {"deliveries", "log_checkpoints", "log_entries",
                                            "log_tiles"};
static const char *const rollup_tables[] = {"rollup_latest", "rollup_minutes", "rollup_status"};

/* Column order of every INSERT and SELECT; the enum is the 0-based index. */
#define COLUMNS                                                                                    \
    "id, path, sha256, size, server, client_addr, user_agent, issued_ms, status, client, "         \
    "bound_addr, bound_ms, confirmed_ms, confirm_addr, received_sha256, received_size, "           \
    "received_at_ms, receipt, issued_node, bound_node, confirmed_node, kind, delivered_sha256, "   \
    "delivered_size"
#define PLACEHOLDERS                                                                               \
    "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, "  \
    "?21, ?22, ?23, ?24"

enum column {
    COL_ID,
    COL_PATH,
    COL_SHA256,
    COL_SIZE,
    COL_SERVER,
    COL_CLIENT_ADDR,
    COL_USER_AGENT,
    COL_ISSUED_MS,
    COL_STATUS,
    COL_CLIENT,
    COL_BOUND_ADDR,
    COL_BOUND_MS,
    COL_CONFIRMED_MS,
    COL_CONFIRM_ADDR,
    COL_RECEIVED_SHA256,
    COL_RECEIVED_SIZE,
    COL_RECEIVED_AT_MS,
    COL_RECEIPT,
    COL_ISSUED_NODE,
    COL_BOUND_NODE,
    COL_CONFIRMED_NODE,
    COL_KIND,
    COL_DELIVERED_SHA256,
    COL_DELIVERED_SIZE,
};

/*
 * The leaf the event adds to the evidence log, when it changes the row, is
 * the last parameter: NULL when the batch is not logged. An update puts it
 * first in the row's leaves and moves the others down (schema step 7);
 * without one it leaves them as they are.
 */
#define LEAF_PARAM 25
#define INSERT_ROW                                                                                 \
    "INSERT INTO deliveries (" COLUMNS ", log_leaf) VALUES (" PLACEHOLDERS                         \
    ", ?25) ON CONFLICT (id) "
#define SHIFT_LEAVES                                                                               \
    " log_leaf = coalesce(excluded.log_leaf, deliveries.log_leaf),"                                \
    " log_leaf_prev = CASE WHEN excluded.log_leaf IS NULL THEN deliveries.log_leaf_prev"           \
    "  ELSE deliveries.log_leaf END,"                                                              \
    " log_leaf_prev2 = CASE WHEN excluded.log_leaf IS NULL THEN deliveries.log_leaf_prev2"         \
    "  ELSE deliveries.log_leaf_prev END,"
#define UPSERT_ROW INSERT_ROW "DO UPDATE SET" SHIFT_LEAVES

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_ISSUE,
    ST_BIND,
    ST_CONFIRM,
    ST_GET,
    ST_COUNT,
    ST_SUMMARY,
    ST_CONTENT_STATS,
    ST_CLIENT_STATS,
    ST_SERIES,
    ST_LOG_ENTRY,
    ST_LOG_ENTRIES, /* LOG_ENTRY_ROWS of them */
    ST_LOG_TILE,
    ST_LOG_CHECKPOINT,
    ST_LOG_RANGE,
    ST_LOG_RANGE_COMMITMENTS,
    ST_LOG_DELIVERY,
    ST_LOG_OWN,
    ST_LOG_DELIVERIES,
    ST_LOG_CHECKPOINTS_UP,
    ST_LOG_CHECKPOINTS_DOWN,
    ST_LOG_TILE_GET,
    ST_LOG_LINK,
    ST_LOG_RENUMBER,
    ST_ROLLUP_STATUS,
    ST_ROLLUP_MINUTE,
    ST_ROLLUP_LATEST,
    ST_SERIES_MINUTES,
    ST_ROLLUP_CHECK,
    ST_COUNT_ALL, /* number of statements, not one */
};

/*
 * A batch's leaves go in LOG_ENTRY_ROWS to a statement: each statement that
 * may fail a CHECK runs as a sub-transaction of its own, whose opening and
 * closing cost about as much as the row (callgrind: a fifth fewer
 * instructions a row, the commit included, with eight).
 */
#define LOG_ENTRY_ROWS   8
#define LOG_ENTRY_INSERT "INSERT INTO log_entries (leaf, delivery, salt, commitment, event) VALUES "
#define LOG_ENTRY_VALUES "(?, ?, ?, ?, ?)"

static const char *const stmt_sql[ST_COUNT_ALL] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_ISSUE] = INSERT_ROW "DO NOTHING",
    /* The first binding is recorded: later ones leave the row as it is. */
    [ST_BIND] = UPSERT_ROW " status = excluded.status, client = excluded.client,"
                           " bound_addr = excluded.bound_addr, bound_ms = excluded.bound_ms,"
                           " bound_node = excluded.bound_node"
                           " WHERE deliveries.status = 'issued' RETURNING kind",
    /*
     * The caller has read the row and knows it is not confirmed yet; the
     * WHERE keeps a final status final even so. A binding of another client
     * is replaced by the confirming client's, when the event has one.
     */
    [ST_CONFIRM] =
        UPSERT_ROW " status = excluded.status, client = excluded.client,"
                   " bound_addr = CASE WHEN excluded.bound_ms IS NOT NULL AND"
                   "   deliveries.client IS NOT excluded.client"
                   "   THEN excluded.bound_addr ELSE deliveries.bound_addr END,"
                   " bound_ms = CASE WHEN excluded.bound_ms IS NOT NULL AND"
                   "   deliveries.client IS NOT excluded.client"
                   "   THEN excluded.bound_ms ELSE deliveries.bound_ms END,"
                   " bound_node = CASE WHEN excluded.bound_ms IS NOT NULL AND"
                   "   deliveries.client IS NOT excluded.client"
                   "   THEN excluded.bound_node ELSE deliveries.bound_node END,"
                   " confirmed_node = excluded.confirmed_node,"
                   " confirmed_ms = excluded.confirmed_ms, confirm_addr = excluded.confirm_addr,"
                   " received_sha256 = excluded.received_sha256,"
                   " received_size = excluded.received_size,"
                   " received_at_ms = excluded.received_at_ms, receipt = excluded.receipt"
                   " WHERE deliveries.status IN ('issued', 'bound')",
    [ST_GET] = "SELECT " COLUMNS " FROM deliveries WHERE id = ?1",
    [ST_COUNT] = "SELECT count(*) FROM deliveries",
    /*
     * One statement, so one snapshot: the counts and the latest
     * confirmation from the rollups, the issue times from the ends of the
     * issued index. No rows: no counts.
     */
    [ST_SUMMARY] = "SELECT status, kind, n,"
                   " (SELECT min(issued_ms) FROM deliveries),"
                   " (SELECT max(issued_ms) FROM deliveries),"
                   " (SELECT confirmed_ms FROM rollup_latest)"
                   " FROM rollup_status WHERE n <> 0",
    /*
     * Per content version. Nearest-rank percentiles in integers: of n sorted
     * latencies the median is number (n + 1) / 2 = ceil(n / 2) and p95 is
     * number (95 n + 99) / 100 = ceil(0.95 n), counting from 1.
     */
    [ST_CONTENT_STATS] =
        "WITH c AS (SELECT path, sha256, max(size) AS size, count(*) AS n,"
        "   total(status = 'confirmed') AS confirmed, total(status = 'corrupted') AS corrupted,"
        "   total(status IN ('issued', 'bound')) AS pending,"
        "   min(issued_ms) AS first_ms, max(issued_ms) AS last_ms"
        "  FROM deliveries GROUP BY path, sha256),"
        " t AS (SELECT path, sha256, confirmed_ms - issued_ms AS d,"
        "   row_number() OVER (PARTITION BY path, sha256 ORDER BY confirmed_ms - issued_ms) AS rn,"
        "   count(*) OVER (PARTITION BY path, sha256) AS k"
        "  FROM deliveries"
        "  WHERE status IN ('confirmed', 'corrupted') AND confirmed_ms IS NOT NULL),"
        " p AS (SELECT path, sha256, max(CASE WHEN rn = (k + 1) / 2 THEN d END) AS median,"
        "   max(CASE WHEN rn = (95 * k + 99) / 100 THEN d END) AS p95"
        "  FROM t GROUP BY path, sha256)"
        " SELECT c.path, c.sha256, c.size, c.n, c.confirmed, c.corrupted, c.pending, c.first_ms,"
        "  c.last_ms, p.median, p.p95"
        " FROM c LEFT JOIN p ON p.path = c.path AND p.sha256 = c.sha256"
        " ORDER BY c.path, c.first_ms, c.sha256",
    [ST_CLIENT_STATS] =
        "SELECT client, count(*), total(status = 'confirmed'), total(status = 'corrupted'),"
        " total(status IN ('issued', 'bound')),"
        " max(max(issued_ms, coalesce(bound_ms, 0), coalesce(confirmed_ms, 0))) AS seen"
        " FROM deliveries WHERE client IS NOT NULL GROUP BY client ORDER BY seen DESC, client",
    /* ?1 since, ?2 until (exclusive), ?3 bucket width. */
    [ST_SERIES] = "SELECT b, sum(d), sum(c), sum(x) FROM ("
                  " SELECT (issued_ms - ?1) / ?3 AS b, 1 AS d, 0 AS c, 0 AS x FROM deliveries"
                  "  WHERE issued_ms >= ?1 AND issued_ms < ?2"
                  " UNION ALL"
                  " SELECT (confirmed_ms - ?1) / ?3, 0, status = 'confirmed', status = 'corrupted'"
                  "  FROM deliveries WHERE confirmed_ms >= ?1 AND confirmed_ms < ?2"
                  ") GROUP BY b ORDER BY b",
    [ST_LOG_ENTRY] = LOG_ENTRY_INSERT LOG_ENTRY_VALUES,
    [ST_LOG_ENTRIES] = LOG_ENTRY_INSERT LOG_ENTRY_VALUES
    "," LOG_ENTRY_VALUES "," LOG_ENTRY_VALUES "," LOG_ENTRY_VALUES "," LOG_ENTRY_VALUES
    "," LOG_ENTRY_VALUES "," LOG_ENTRY_VALUES "," LOG_ENTRY_VALUES,
    [ST_LOG_TILE] = "INSERT INTO log_tiles (level, idx, hashes) VALUES (?1, ?2, ?3)"
                    " ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes",
    [ST_LOG_CHECKPOINT] = "INSERT INTO log_checkpoints (size, time_ms, note) VALUES (?1, ?2, ?3)",
#define LOG_ENTRY_COLUMNS "leaf, delivery, salt, commitment"
    [ST_LOG_RANGE] = "SELECT " LOG_ENTRY_COLUMNS ", event FROM log_entries"
                     " WHERE leaf >= ?1 AND leaf < ?2 ORDER BY leaf",
    [ST_LOG_RANGE_COMMITMENTS] = "SELECT " LOG_ENTRY_COLUMNS ", NULL FROM log_entries"
                                 " WHERE leaf >= ?1 AND leaf < ?2 ORDER BY leaf",
/*
 * A delivery's entries, from the leaf numbers its row keeps (schema step
 * 7), and only from a row whose numbers are as the writer keeps them:
 * descending, and each that of an entry naming the delivery. A row whose
 * numbers were edited then finds none, fewer than the log holds for it,
 * which `receiptd ledger verify` counts (daemon/tlog_verify.c).
 */
#define LOG_DELIVERY_LEAVES "(d.log_leaf, d.log_leaf_prev, d.log_leaf_prev2)"
#define LOG_DELIVERY_JOIN                                                                          \
    " FROM deliveries AS d JOIN log_entries AS e ON e.leaf IN " LOG_DELIVERY_LEAVES                \
    " WHERE e.delivery = d.id AND (d.log_leaf_prev IS NULL AND d.log_leaf_prev2 IS NULL"           \
    "  OR d.log_leaf_prev < d.log_leaf"                                                            \
    "   AND (d.log_leaf_prev2 IS NULL OR d.log_leaf_prev2 < d.log_leaf_prev))"                     \
    " AND (SELECT count(*) FROM log_entries AS x WHERE x.leaf IN " LOG_DELIVERY_LEAVES             \
    "  AND x.delivery = d.id) = (d.log_leaf IS NOT NULL) + (d.log_leaf_prev IS NOT NULL)"          \
    "  + (d.log_leaf_prev2 IS NOT NULL)"
    [ST_LOG_DELIVERY] =
        "SELECT " LOG_ENTRY_COLUMNS ", event" LOG_DELIVERY_JOIN " AND d.id = ?1 ORDER BY e.leaf",
    [ST_LOG_OWN] = "SELECT " LOG_ENTRY_COLUMNS ", event FROM log_entries"
                   " WHERE delivery IS NULL ORDER BY leaf",
    [ST_LOG_DELIVERIES] = "SELECT " LOG_ENTRY_COLUMNS ", event" LOG_DELIVERY_JOIN
                          " AND d.id > ?1 AND (?2 IS NULL OR d.id <= ?2) ORDER BY d.id, e.leaf",
    [ST_LOG_CHECKPOINTS_UP] = "SELECT size, time_ms, note FROM log_checkpoints"
                              " WHERE size >= ?1 AND size <= ?2 ORDER BY size LIMIT ?3",
    [ST_LOG_CHECKPOINTS_DOWN] = "SELECT size, time_ms, note FROM log_checkpoints"
                                " WHERE size >= ?1 AND size <= ?2 ORDER BY size DESC LIMIT ?3",
    [ST_LOG_TILE_GET] = "SELECT hashes FROM log_tiles WHERE level = ?1 AND idx = ?2",
    /* A leaf written apart from its row's event (a row recorded as it
     * stands, a copied log): first in the row's leaves. */
    [ST_LOG_LINK] = "UPDATE deliveries SET log_leaf = ?2, log_leaf_prev = log_leaf,"
                    " log_leaf_prev2 = log_leaf_prev WHERE id = ?1",
    /* A leaf the row was given under another number than the log's. */
    [ST_LOG_RENUMBER] =
        "UPDATE deliveries SET log_leaf = CASE WHEN log_leaf = ?2 THEN ?3 ELSE log_leaf END,"
        " log_leaf_prev = CASE WHEN log_leaf_prev = ?2 THEN ?3 ELSE log_leaf_prev END,"
        " log_leaf_prev2 = CASE WHEN log_leaf_prev2 = ?2 THEN ?3 ELSE log_leaf_prev2 END"
        " WHERE id = ?1 AND ?2 IN (log_leaf, log_leaf_prev, log_leaf_prev2)",
    /* A batch's net changes to the rollups (rollup_apply()). */
    [ST_ROLLUP_STATUS] = "INSERT INTO rollup_status (status, kind, n) VALUES (?1, ?2, ?3)"
                         " ON CONFLICT (status, kind) DO UPDATE SET n = n + excluded.n",
    [ST_ROLLUP_MINUTE] = "INSERT INTO rollup_minutes (minute, issued, confirmed, corrupted)"
                         " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (minute) DO UPDATE SET"
                         " issued = issued + excluded.issued,"
                         " confirmed = confirmed + excluded.confirmed,"
                         " corrupted = corrupted + excluded.corrupted",
    [ST_ROLLUP_LATEST] = "INSERT INTO rollup_latest (one, confirmed_ms) VALUES (1, ?1)"
                         " ON CONFLICT (one) DO UPDATE SET"
                         " confirmed_ms = max(coalesce(confirmed_ms, 0), excluded.confirmed_ms)",
    /* ?1 since, ?2 until (exclusive), ?3 bucket width, in whole minutes. */
    [ST_SERIES_MINUTES] = "SELECT (minute - ?1) / ?3, sum(issued), sum(confirmed), sum(corrupted)"
                          " FROM rollup_minutes WHERE minute >= ?1 AND minute < ?2"
                          " GROUP BY 1 ORDER BY 1",
    /*
     * The rollups against a recount of the rows: each difference as what
     * differs, the recount and the rollup's figure (ledger_rollups_check()).
     * Reads the whole table.
     */
    [ST_ROLLUP_CHECK] =
        "WITH c(status, kind, n) AS (SELECT status, kind, count(*) FROM deliveries"
        "  GROUP BY status, kind),"
        " r(status, kind, n) AS (SELECT status, kind, n FROM rollup_status WHERE n <> 0),"
        " cm(m, v) AS (SELECT m, sum(i) || '/' || sum(c) || '/' || sum(x) FROM ("
        "  SELECT issued_ms / 60000 AS m, 1 AS i, 0 AS c, 0 AS x FROM deliveries"
        "  UNION ALL SELECT confirmed_ms / 60000, 0, status = 'confirmed', status = 'corrupted'"
        "  FROM deliveries WHERE confirmed_ms IS NOT NULL"
        "  AND (status = 'confirmed' OR status = 'corrupted')) GROUP BY m),"
        " rm(m, v) AS (SELECT minute, issued || '/' || confirmed || '/' || corrupted"
        "  FROM rollup_minutes WHERE issued <> 0 OR confirmed <> 0 OR corrupted <> 0)"
        " SELECT 'deliveries ' || status || ' ' || kind, n,"
        "  (SELECT r.n FROM r WHERE r.status = c.status AND r.kind = c.kind) AS kept"
        "  FROM c WHERE kept IS NOT n"
        " UNION ALL SELECT 'deliveries ' || status || ' ' || kind, 0, n FROM r"
        "  WHERE NOT EXISTS (SELECT 1 FROM c WHERE c.status = r.status AND c.kind = r.kind)"
        " UNION ALL SELECT 'minute ' || m || ' issued/confirmed/corrupted', v,"
        "  (SELECT rm.v FROM rm WHERE rm.m = cm.m) AS kept FROM cm WHERE kept IS NOT v"
        " UNION ALL SELECT 'minute ' || m || ' issued/confirmed/corrupted', NULL, v FROM rm"
        "  WHERE NOT EXISTS (SELECT 1 FROM cm WHERE cm.m = rm.m)"
        " UNION ALL SELECT 'latest confirmation', c, r FROM ("
        "  SELECT (SELECT max(confirmed_ms) FROM deliveries"
        "   WHERE status = 'confirmed' OR status = 'corrupted') AS c,"
        "  (SELECT confirmed_ms FROM rollup_latest) AS r) WHERE c IS NOT r",
};

/*
 * A transaction's net changes to the rollups, written once before its
 * COMMIT (rollup_apply()), so that a batch rolled back or tried again
 * counts nothing. The minutes a batch touches are few (a batch spans a
 * minute or two; a copied ledger's rows come in time order); when they
 * fill ROLLUP_MINUTES_MAX they are written ahead, in the same transaction.
 */
#define ROLLUP_MINUTES_MAX 64
#define ROLLUP_MINUTE_MS   60000

typedef struct rollup_minute {
    int64_t minute;
    int64_t issued, confirmed, corrupted;
} rollup_minute;

typedef struct rollup_delta {
    int64_t rows[LEDGER_CORRUPTED + 1][LEDGER_KIND_COUNT];
    uint64_t latest_confirmed_ms; /* 0: no confirmation */
    rollup_minute minutes[ROLLUP_MINUTES_MAX];
    size_t minute_count;
} rollup_delta;

typedef struct ledger_sqlite {
    ledger base; /* first: ledger.c dispatches through it */
    rollup_delta rollup;
    sqlite3 *db;
    bool read_only;
    char where[LEDGER_TARGET_MAX + 1];
    sqlite3_stmt *stmt[ST_COUNT_ALL];
    int fault_rc;       /* result code of the last failed write step */
    bool wal_unwritten; /* a commit's WAL frames failed to write (walbuf_flush()) */
    /*
     * A logged batch (sqlite_log_begin()): each event that changes its row
     * writes there the number of the leaf it adds, log_head (the log's size
     * when the batch began) plus the events before it that changed theirs,
     * which is the number the log's hook gives it unless the hook puts
     * leaves of its own first (sqlite_log_store() then renumbers). The IDs
     * are the events' (borrowed for the batch).
     */
    bool log_planned;
    bool log_stored;
    uint64_t log_head;
    size_t log_applied;
    const char **log_ids;
    size_t log_ids_cap;
    char err[LEDGER_ERR_MAX];
    /* The event texts of a statement's leaves, packed (common/evpack.h),
     * and a read leaf's text unpacked. */
    uint8_t packed[LOG_ENTRY_ROWS][EVPACK_MAX(LEDGER_EVENT_TEXT_MAX)];
    char unpacked[LEDGER_EVENT_TEXT_MAX + 1];
} ledger_sqlite;

static ledger_sqlite *impl(ledger *lg)
{
    return (ledger_sqlite *)lg;
}

static void fail(ledger_sqlite *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(ledger_sqlite *lg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lg->err, sizeof lg->err, fmt, ap);
    va_end(ap);
}

/* ---- binding and reading rows ---- */

static size_t field_len(const char *s, size_t cap)
{
    return strnlen(s, cap);
}

#define BIND_TEXT(st, col, field) bind_text(st, col, field, sizeof(field))

/* Binds a NUL-terminated field; "" as NULL when nullable. */
static int bind_text(sqlite3_stmt *st, int col, const char *s, size_t cap)
{
    return sqlite3_bind_text(st, col + 1, s, (int)field_len(s, cap), SQLITE_STATIC);
}

static int bind_opt_text(sqlite3_stmt *st, int col, const char *s, size_t cap)
{
    if (s[0] == '\0')
        return sqlite3_bind_null(st, col + 1);
    return bind_text(st, col, s, cap);
}

static int bind_int(sqlite3_stmt *st, int col, uint64_t v)
{
    return sqlite3_bind_int64(st, col + 1, (sqlite3_int64)v);
}

/* 0 means "none" for the optional times. */
static int bind_opt_int(sqlite3_stmt *st, int col, uint64_t v)
{
    if (v == 0)
        return sqlite3_bind_null(st, col + 1);
    return bind_int(st, col, v);
}

static int bind_row(sqlite3_stmt *st, const ledger_event *ev)
{
    int rc = SQLITE_OK;
    const ledger_delivery *row = &ev->row;
    ledger_event_kind kind = ev->kind;
    ledger_event_columns cols;
    ledger_event_columns_of(ev, &cols);
    const char *status = cols.status;
    bool bound = cols.binding;
    bool confirmed = cols.confirmation;

    /* Any error sticks to the statement; the first one is reported. */
    rc |= bind_text(st, COL_ID, row->id, sizeof row->id);
    rc |= bind_text(st, COL_PATH, row->path, sizeof row->path);
    rc |= sqlite3_bind_blob(st, COL_SHA256 + 1, row->sha256, sizeof row->sha256, SQLITE_STATIC);
    rc |= bind_int(st, COL_SIZE, row->size);
    rc |= bind_text(st, COL_SERVER, row->server, sizeof row->server);
    rc |= bind_text(st, COL_CLIENT_ADDR, row->client_addr, sizeof row->client_addr);
    rc |= bind_opt_text(st, COL_USER_AGENT, row->user_agent, sizeof row->user_agent);
    rc |= bind_int(st, COL_ISSUED_MS, row->issued_ms);
    rc |= sqlite3_bind_text(st, COL_STATUS + 1, status, -1, SQLITE_STATIC);
    rc |= bind_opt_text(st, COL_ISSUED_NODE, row->issued_node, sizeof row->issued_node);
    if (bound) {
        rc |= bind_opt_text(st, COL_CLIENT, row->client, sizeof row->client);
        rc |= bind_opt_text(st, COL_BOUND_ADDR, row->bound_addr, sizeof row->bound_addr);
        rc |= bind_opt_int(st, COL_BOUND_MS, row->bound_ms);
        rc |= bind_opt_text(st, COL_BOUND_NODE, row->bound_node, sizeof row->bound_node);
    } else {
        rc |= sqlite3_bind_null(st, COL_CLIENT + 1);
        rc |= sqlite3_bind_null(st, COL_BOUND_ADDR + 1);
        rc |= sqlite3_bind_null(st, COL_BOUND_MS + 1);
        rc |= sqlite3_bind_null(st, COL_BOUND_NODE + 1);
    }
    if (confirmed) {
        rc |= bind_opt_int(st, COL_CONFIRMED_MS, row->confirmed_ms);
        rc |= bind_opt_text(st, COL_CONFIRM_ADDR, row->confirm_addr, sizeof row->confirm_addr);
        if (row->received_has_sha256)
            rc |= sqlite3_bind_blob(st, COL_RECEIVED_SHA256 + 1, row->received_sha256,
                                    sizeof row->received_sha256, SQLITE_STATIC);
        else
            rc |= sqlite3_bind_null(st, COL_RECEIVED_SHA256 + 1);
        if (kind == LEDGER_EVENT_COPY && row->confirmed_ms == 0) {
            /* A row never confirmed has no received fields. */
            rc |= bind_opt_int(st, COL_RECEIVED_SIZE, row->received_size);
            rc |= bind_opt_int(st, COL_RECEIVED_AT_MS, row->received_at_ms);
        } else {
            rc |= bind_int(st, COL_RECEIVED_SIZE, row->received_size);
            rc |= bind_int(st, COL_RECEIVED_AT_MS, row->received_at_ms);
        }
        rc |= bind_opt_text(st, COL_RECEIPT, row->receipt, sizeof row->receipt);
        rc |=
            bind_opt_text(st, COL_CONFIRMED_NODE, row->confirmed_node, sizeof row->confirmed_node);
    } else {
        for (int col = COL_CONFIRMED_MS; col <= COL_RECEIPT; col++)
            rc |= sqlite3_bind_null(st, col + 1);
        rc |= sqlite3_bind_null(st, COL_CONFIRMED_NODE + 1);
    }
    rc |= sqlite3_bind_text(st, COL_KIND + 1, ledger_kind_name(row->kind), -1, SQLITE_STATIC);
    /* The bytes sent are recorded where they are not the version's. */
    if (row->delivered_size != row->size || memcmp(row->delivered_sha256, row->sha256, 32) != 0) {
        rc |= sqlite3_bind_blob(st, COL_DELIVERED_SHA256 + 1, row->delivered_sha256,
                                sizeof row->delivered_sha256, SQLITE_STATIC);
        rc |= bind_int(st, COL_DELIVERED_SIZE, row->delivered_size);
    } else {
        rc |= sqlite3_bind_null(st, COL_DELIVERED_SHA256 + 1);
        rc |= sqlite3_bind_null(st, COL_DELIVERED_SIZE + 1);
    }
    return rc == SQLITE_OK ? 0 : -1;
}

/* Copies a text column into a field, truncating what cannot fit. */
static void column_text(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    size_t n = text != NULL ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n > 0)
        memcpy(dst, text, n);
    dst[n] = '\0';
}

static bool column_sha256(sqlite3_stmt *st, int col, uint8_t out[32])
{
    const void *blob = sqlite3_column_blob(st, col);
    if (blob == NULL || sqlite3_column_bytes(st, col) != 32)
        return false;
    memcpy(out, blob, 32);
    return true;
}

static uint64_t column_u64(sqlite3_stmt *st, int col)
{
    return (uint64_t)sqlite3_column_int64(st, col); /* NULL reads as 0: "none" */
}

static int read_row(ledger_sqlite *lg, sqlite3_stmt *st, ledger_delivery *out)
{
    memset(out, 0, sizeof *out);
    column_text(st, COL_ID, out->id, sizeof out->id);
    column_text(st, COL_PATH, out->path, sizeof out->path);
    column_sha256(st, COL_SHA256, out->sha256);
    out->size = column_u64(st, COL_SIZE);
    column_text(st, COL_SERVER, out->server, sizeof out->server);
    column_text(st, COL_CLIENT_ADDR, out->client_addr, sizeof out->client_addr);
    column_text(st, COL_USER_AGENT, out->user_agent, sizeof out->user_agent);
    out->issued_ms = column_u64(st, COL_ISSUED_MS);
    const char *status = (const char *)sqlite3_column_text(st, COL_STATUS);
    if (status == NULL || ledger_status_parse(status, &out->status) != 0) {
        fail(lg, "ledger row %s: unknown status '%s'", out->id, status ? status : "(null)");
        return -1;
    }
    column_text(st, COL_CLIENT, out->client, sizeof out->client);
    column_text(st, COL_BOUND_ADDR, out->bound_addr, sizeof out->bound_addr);
    out->bound_ms = column_u64(st, COL_BOUND_MS);
    out->confirmed_ms = column_u64(st, COL_CONFIRMED_MS);
    column_text(st, COL_CONFIRM_ADDR, out->confirm_addr, sizeof out->confirm_addr);
    out->received_has_sha256 = column_sha256(st, COL_RECEIVED_SHA256, out->received_sha256);
    out->received_size = column_u64(st, COL_RECEIVED_SIZE);
    out->received_at_ms = column_u64(st, COL_RECEIVED_AT_MS);
    column_text(st, COL_RECEIPT, out->receipt, sizeof out->receipt);
    column_text(st, COL_ISSUED_NODE, out->issued_node, sizeof out->issued_node);
    column_text(st, COL_BOUND_NODE, out->bound_node, sizeof out->bound_node);
    column_text(st, COL_CONFIRMED_NODE, out->confirmed_node, sizeof out->confirmed_node);
    const char *kind = (const char *)sqlite3_column_text(st, COL_KIND);
    if (kind == NULL || ledger_kind_parse(kind, &out->kind) != 0) {
        fail(lg, "ledger row %s: unknown kind '%s'", out->id, kind ? kind : "(null)");
        return -1;
    }
    if (column_sha256(st, COL_DELIVERED_SHA256, out->delivered_sha256)) {
        out->delivered_size = column_u64(st, COL_DELIVERED_SIZE);
    } else {
        memcpy(out->delivered_sha256, out->sha256, 32);
        out->delivered_size = out->size;
    }
    return 0;
}

/* ---- statements ---- */

/*
 * Sorts a failed write: errors of the event's own making leave the
 * transaction open; anything else (I/O, full disk, lost lock, or SQLite
 * having rolled back on its own) loses it.
 */
static int write_error(ledger_sqlite *lg, int rc, const char *what, const char *id)
{
    fail(lg, "ledger %s %s: %s", what, id, sqlite3_errmsg(lg->db));
    lg->fault_rc = rc;
    int primary = rc & 0xff;
    bool event_fault = primary == SQLITE_CONSTRAINT || primary == SQLITE_MISMATCH ||
                       primary == SQLITE_TOOBIG || primary == SQLITE_RANGE;
    if (event_fault && !sqlite3_get_autocommit(lg->db))
        return LEDGER_APPLY_EVENT_FAILED;
    return LEDGER_APPLY_TXN_FAILED;
}

/* Beyond what a signed 64-bit column holds: read as the largest. */
static sqlite3_int64 clamp_i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

/* Runs a statement that returns no row; returns the step's result code. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The row's columns and, in a logged batch, the number of the leaf the
 * row takes if the statement changes it (NULL otherwise). */
static int bind_write(ledger_sqlite *lg, sqlite3_stmt *st, const ledger_event *ev)
{
    int leaf_rc = lg->log_planned ? sqlite3_bind_int64(st, LEAF_PARAM,
                                                       clamp_i64(lg->log_head + lg->log_applied))
                                  : sqlite3_bind_null(st, LEAF_PARAM);
    if (bind_row(st, ev) != 0 || leaf_rc != SQLITE_OK) {
        fail(lg, "ledger bind %s: %s", ev->row.id, sqlite3_errmsg(lg->db));
        return -1;
    }
    return 0;
}

/* Inserts or upserts; *changed tells whether a row was written. */
static int write_row(ledger_sqlite *lg, enum stmt_id id, const ledger_event *ev, bool *changed)
{
    sqlite3_stmt *st = lg->stmt[id];
    if (bind_write(lg, st, ev) != 0)
        return LEDGER_APPLY_EVENT_FAILED;
    int rc = run(st);
    if (rc != SQLITE_OK)
        return write_error(lg, rc, "write", ev->row.id);
    *changed = sqlite3_changes(lg->db) > 0;
    return 0;
}

/* ---- the rollups ---- */

static void rollup_reset(ledger_sqlite *lg)
{
    memset(lg->rollup.rows, 0, sizeof lg->rollup.rows);
    lg->rollup.latest_confirmed_ms = 0;
    lg->rollup.minute_count = 0;
}

/* Writes the minutes held so far; 0, or an SQLite result code. */
static int rollup_write_minutes(ledger_sqlite *lg)
{
    sqlite3_stmt *st = lg->stmt[ST_ROLLUP_MINUTE];
    for (size_t i = 0; i < lg->rollup.minute_count; i++) {
        const rollup_minute *m = &lg->rollup.minutes[i];
        int rc = sqlite3_bind_int64(st, 1, m->minute);
        rc |= sqlite3_bind_int64(st, 2, m->issued);
        rc |= sqlite3_bind_int64(st, 3, m->confirmed);
        rc |= sqlite3_bind_int64(st, 4, m->corrupted);
        if (rc != SQLITE_OK || (rc = run(st)) != SQLITE_OK)
            return rc != SQLITE_OK ? rc : SQLITE_ERROR;
    }
    lg->rollup.minute_count = 0;
    return SQLITE_OK;
}

/* Adds to the minute of ms; 0, or an SQLite result code. */
static int rollup_minute_add(ledger_sqlite *lg, uint64_t ms, int issued, int confirmed,
                             int corrupted)
{
    int64_t minute = (int64_t)(ms / ROLLUP_MINUTE_MS);
    rollup_delta *d = &lg->rollup;
    rollup_minute *m = NULL;
    for (size_t i = d->minute_count; i-- > 0;) {
        if (d->minutes[i].minute == minute) {
            m = &d->minutes[i];
            break;
        }
    }
    if (m == NULL) {
        if (d->minute_count == ROLLUP_MINUTES_MAX) {
            int rc = rollup_write_minutes(lg);
            if (rc != SQLITE_OK)
                return rc;
        }
        m = &d->minutes[d->minute_count++];
        memset(m, 0, sizeof *m);
        m->minute = minute;
    }
    m->issued += issued;
    m->confirmed += confirmed;
    m->corrupted += corrupted;
    return SQLITE_OK;
}

/* The confirmation of a row that reached a final status, if it has one. */
static int rollup_final(ledger_sqlite *lg, ledger_status status, uint64_t confirmed_ms)
{
    if ((status != LEDGER_CONFIRMED && status != LEDGER_CORRUPTED) || confirmed_ms == 0)
        return SQLITE_OK;
    if (confirmed_ms > lg->rollup.latest_confirmed_ms)
        lg->rollup.latest_confirmed_ms = confirmed_ms;
    return rollup_minute_add(lg, confirmed_ms, 0, status == LEDGER_CONFIRMED,
                             status == LEDGER_CORRUPTED);
}

/*
 * A row inserted at status (confirmed_ms 0: none), or one moved from
 * (from, kind) to (status, kind). Returns 0, or LEDGER_APPLY_TXN_FAILED.
 */
static int rollup_inserted(ledger_sqlite *lg, ledger_status status, ledger_kind kind,
                           uint64_t issued_ms, uint64_t confirmed_ms)
{
    lg->rollup.rows[status][kind]++;
    int rc = rollup_minute_add(lg, issued_ms, 1, 0, 0);
    if (rc == SQLITE_OK)
        rc = rollup_final(lg, status, confirmed_ms);
    return rc == SQLITE_OK ? 0 : write_error(lg, rc, "rollup", "minutes");
}

static int rollup_moved(ledger_sqlite *lg, ledger_status from, ledger_kind from_kind,
                        ledger_status status, ledger_kind kind, uint64_t confirmed_ms)
{
    lg->rollup.rows[from][from_kind]--;
    lg->rollup.rows[status][kind]++;
    int rc = rollup_final(lg, status, confirmed_ms);
    return rc == SQLITE_OK ? 0 : write_error(lg, rc, "rollup", "minutes");
}

/* The transaction's net changes, in the transaction: 0, or -1 (fault_rc set). */
static int rollup_apply(ledger_sqlite *lg)
{
    const rollup_delta *d = &lg->rollup;
    sqlite3_stmt *st = lg->stmt[ST_ROLLUP_STATUS];
    int rc = SQLITE_OK;
    for (unsigned s = 0; s <= LEDGER_CORRUPTED && rc == SQLITE_OK; s++) {
        for (unsigned k = 0; k < LEDGER_KIND_COUNT && rc == SQLITE_OK; k++) {
            if (d->rows[s][k] == 0)
                continue;
            rc = sqlite3_bind_text(st, 1, ledger_status_name((ledger_status)s), -1, SQLITE_STATIC);
            rc |= sqlite3_bind_text(st, 2, ledger_kind_name((ledger_kind)k), -1, SQLITE_STATIC);
            rc |= sqlite3_bind_int64(st, 3, d->rows[s][k]);
            if (rc == SQLITE_OK)
                rc = run(st);
        }
    }
    if (rc == SQLITE_OK)
        rc = rollup_write_minutes(lg);
    if (rc == SQLITE_OK && d->latest_confirmed_ms != 0) {
        st = lg->stmt[ST_ROLLUP_LATEST];
        rc = sqlite3_bind_int64(st, 1, (sqlite3_int64)d->latest_confirmed_ms);
        if (rc == SQLITE_OK)
            rc = run(st);
    }
    if (rc != SQLITE_OK) {
        fail(lg, "ledger rollups: %s", sqlite3_errmsg(lg->db));
        lg->fault_rc = rc;
        return -1;
    }
    rollup_reset(lg);
    return 0;
}

static int get_row(ledger_sqlite *lg, const char *id, ledger_delivery *out)
{
    sqlite3_stmt *st = lg->stmt[ST_GET];
    int found = -1;
    int rc = sqlite3_bind_text(st, 1, id, (int)strnlen(id, UUID7_STR_LEN + 1), SQLITE_STATIC);
    if (rc != SQLITE_OK)
        goto out;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        found = read_row(lg, st, out) == 0 ? 1 : -1;
    else if (rc == SQLITE_DONE)
        found = 0;
out:
    if (found < 0 && lg->err[0] == '\0') {
        fail(lg, "ledger read %.*s: %s", UUID7_STR_LEN, id, sqlite3_errmsg(lg->db));
        lg->fault_rc = rc;
    }
    sqlite3_reset(st);
    return found;
}

/* ---- events ---- */

static bool fits_int64(uint64_t v)
{
    return v <= (uint64_t)INT64_MAX;
}

/* Refuses events that could never be written correctly. */
static bool event_valid(ledger_sqlite *lg, const ledger_event *ev)
{
    return ledger_event_check(ev, lg->err, sizeof lg->err) == 0;
}

static int apply_confirm(ledger_sqlite *lg, const ledger_event *ev, ledger_result *result)
{
    ledger_delivery stored;
    bool changed = false;
    int found = get_row(lg, ev->row.id, &stored);
    if (found < 0)
        return LEDGER_APPLY_TXN_FAILED;

    if (found == 1 && (stored.status == LEDGER_CONFIRMED || stored.status == LEDGER_CORRUPTED)) {
        /* Final: answer from the row so that a repeat gets the same receipt. */
        result->outcome =
            strcmp(stored.client, ev->row.client) == 0 ? LEDGER_SAME : LEDGER_CONFLICT;
        memcpy(&result->row, &stored, sizeof stored); /* padding too: rows compare bytewise */
        return 0;
    }

    int rc = write_row(lg, ST_CONFIRM, ev, &changed);
    if (rc != 0)
        return rc;
    if (!changed) {
        fail(lg, "ledger confirm %s: the row did not change", ev->row.id);
        return LEDGER_APPLY_EVENT_FAILED;
    }
    bool inserted = found == 0;
    found = get_row(lg, ev->row.id, &result->row);
    if (found != 1) {
        if (found == 0)
            fail(lg, "ledger confirm %s: the row vanished", ev->row.id);
        return LEDGER_APPLY_TXN_FAILED;
    }
    const ledger_delivery *now = &result->row;
    rc = inserted ? rollup_inserted(lg, now->status, now->kind, now->issued_ms, now->confirmed_ms)
                  : rollup_moved(lg, stored.status, stored.kind, now->status, now->kind,
                                 now->confirmed_ms);
    if (rc != 0)
        return rc;
    result->outcome = LEDGER_APPLIED;
    return 0;
}

/* In a logged batch: the event changed its row, which took the next leaf. */
static int leaf_taken(ledger_sqlite *lg, const ledger_event *ev)
{
    if (!lg->log_planned)
        return 0;
    if (lg->log_applied == lg->log_ids_cap) {
        size_t cap = lg->log_ids_cap ? 2 * lg->log_ids_cap : 256;
        const char **grown = realloc(lg->log_ids, cap * sizeof *grown);
        if (grown == NULL) {
            fail(lg, "ledger write %s: out of memory", ev->row.id);
            return LEDGER_APPLY_TXN_FAILED;
        }
        lg->log_ids = grown;
        lg->log_ids_cap = cap;
    }
    lg->log_ids[lg->log_applied++] = ev->row.id;
    return 0;
}

static int apply_event(ledger_sqlite *lg, const ledger_event *ev, ledger_result *result);

/* An event, and in a logged batch the leaf it takes when it changes its row. */
static int apply_logged(ledger_sqlite *lg, const ledger_event *ev, ledger_result *result)
{
    ledger_result *scratch = NULL;
    if (lg->log_planned && result == NULL) {
        /* Whether the event changed its row decides its leaf. */
        scratch = malloc(sizeof *scratch);
        if (scratch == NULL) {
            fail(lg, "ledger write %s: out of memory", ev->row.id);
            return LEDGER_APPLY_TXN_FAILED;
        }
        result = scratch;
    }
    int rc = apply_event(lg, ev, result);
    if (rc == 0 && lg->log_planned && result->outcome == LEDGER_APPLIED)
        rc = leaf_taken(lg, ev);
    free(scratch);
    return rc;
}

/*
 * A binding: the upsert answers the row's kind when it wrote the row, and
 * leaves SQLite's last inserted rowid alone when it updated one (cleared
 * here first), which tells an issued row bound from a row made by the
 * binding of an issuance never written.
 */
static int apply_bind(ledger_sqlite *lg, const ledger_event *ev, bool *changed)
{
    sqlite3_stmt *st = lg->stmt[ST_BIND];
    ledger_kind kind = ev->row.kind;
    if (bind_write(lg, st, ev) != 0)
        return LEDGER_APPLY_EVENT_FAILED;
    sqlite3_set_last_insert_rowid(lg->db, 0);
    int rc = sqlite3_step(st);
    *changed = rc == SQLITE_ROW;
    if (*changed) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (name == NULL || ledger_kind_parse(name, &kind) != 0)
            kind = ev->row.kind; /* the CHECK allows no other */
        rc = sqlite3_step(st);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return write_error(lg, rc, "write", ev->row.id);
    if (!*changed)
        return 0;
    if (sqlite3_last_insert_rowid(lg->db) != 0)
        return rollup_inserted(lg, LEDGER_BOUND, kind, ev->row.issued_ms, 0);
    return rollup_moved(lg, LEDGER_ISSUED, kind, LEDGER_BOUND, kind, 0);
}

static int apply_event(ledger_sqlite *lg, const ledger_event *ev, ledger_result *result)
{
    bool changed = false;
    int rc;

    lg->err[0] = '\0';
    if (lg->read_only) {
        fail(lg, "ledger: read-only handle");
        return LEDGER_APPLY_EVENT_FAILED;
    }
    if (!event_valid(lg, ev))
        return LEDGER_APPLY_EVENT_FAILED;

    switch (ev->kind) {
    case LEDGER_EVENT_ISSUE:
    case LEDGER_EVENT_COPY: { /* the same INSERT; bind_row binds the whole row */
        rc = write_row(lg, ST_ISSUE, ev, &changed);
        if (rc != 0 || !changed)
            break;
        /* The status ledger_event_columns_of() gives the row; only a copy
         * carries a confirmation. */
        bool copy = ev->kind == LEDGER_EVENT_COPY;
        ledger_status status =
            copy || ev->row.status == LEDGER_BOUND ? ev->row.status : LEDGER_ISSUED;
        rc = rollup_inserted(lg, status, ev->row.kind, ev->row.issued_ms,
                             copy ? ev->row.confirmed_ms : 0);
        break;
    }
    case LEDGER_EVENT_BIND:
        rc = apply_bind(lg, ev, &changed);
        break;
    case LEDGER_EVENT_CONFIRM:
    default: {
        if (result != NULL)
            return apply_confirm(lg, ev, result);
        /* The caller wants no answer, but the row must still be read. */
        ledger_result *scratch = malloc(sizeof *scratch);
        if (scratch == NULL) {
            fail(lg, "ledger confirm %s: out of memory", ev->row.id);
            return LEDGER_APPLY_TXN_FAILED;
        }
        rc = apply_confirm(lg, ev, scratch);
        free(scratch);
        return rc;
    }
    }
    if (rc == 0 && result != NULL)
        result->outcome = changed ? LEDGER_APPLIED : LEDGER_IGNORED;
    return rc;
}

static int sqlite_begin(ledger *base);
static int sqlite_commit(ledger *base);
static int sqlite_rollback(ledger *base);

static int sqlite_apply(ledger *base, const ledger_event *ev, ledger_result *result)
{
    ledger_sqlite *lg = impl(base);
    if (lg->read_only || !sqlite3_get_autocommit(lg->db))
        return apply_logged(lg, ev, result);
    /* Outside a transaction: one of its own, so that the rollups are
     * written with the row. */
    if (sqlite_begin(base) != 0)
        return LEDGER_APPLY_TXN_FAILED;
    int rc = apply_logged(lg, ev, result);
    if (rc == 0 && sqlite_commit(base) != 0)
        rc = LEDGER_APPLY_TXN_FAILED;
    if (rc != 0) {
        char why[LEDGER_ERR_MAX];
        snprintf(why, sizeof why, "%s", lg->err);
        (void)sqlite_rollback(base);
        snprintf(lg->err, sizeof lg->err, "%s", why);
    }
    return rc;
}

static int sqlite_begin(ledger *base)
{
    ledger_sqlite *lg = impl(base);
    if (lg->read_only) {
        fail(lg, "ledger: read-only handle");
        return -1;
    }
    lg->fault_rc = SQLITE_OK;
    lg->log_planned = false;
    rollup_reset(lg);
    int rc = run(lg->stmt[ST_BEGIN]);
    if (rc != SQLITE_OK) {
        fail(lg, "ledger begin: %s", sqlite3_errmsg(lg->db));
        lg->fault_rc = rc;
        return -1;
    }
    return 0;
}

static int sqlite_commit(ledger *base)
{
    ledger_sqlite *lg = impl(base);
    if (sqlite3_get_autocommit(lg->db)) {
        /* SQLite rolled the transaction back on an earlier error. */
        fail(lg, "ledger commit: no transaction is open (rolled back after an error)");
        return -1;
    }
    if (lg->log_planned && lg->log_applied > 0 && !lg->log_stored) {
        /* Rows name leaves that the log did not write. */
        fail(lg, "ledger commit: %zu events took leaves that the log did not write",
             lg->log_applied);
        return -1;
    }
    lg->log_planned = false;
    if (rollup_apply(lg) != 0)
        return -1;
    int rc = run(lg->stmt[ST_COMMIT]);
    if (rc != SQLITE_OK) {
        fail(lg, "ledger commit: %s", sqlite3_errmsg(lg->db));
        lg->fault_rc = rc;
        return -1;
    }
    /* The commit wrote its frames (walbuf writes them with the frame that
     * commits); this makes sure, before the caller asks for an fsync. */
    if ((rc = walbuf_flush(lg->db)) != SQLITE_OK) {
        fail(lg, "ledger commit: writing the WAL: %s", sqlite3_errstr(rc));
        lg->fault_rc = rc;
        lg->wal_unwritten = true;
        return -1;
    }
    return 0;
}

static ledger_fault sqlite_fault(const ledger *base)
{
    int rc = ((const ledger_sqlite *)base)->fault_rc;
    /* Committed, yet the WAL lacks its frames: a retry cannot mend that. */
    if (((const ledger_sqlite *)base)->wal_unwritten)
        return LEDGER_FAULT_FATAL;
    /* After a failed fsync the kernel may have dropped the dirty pages and
     * marked them clean: a retry could "succeed" without them. */
    if (rc == SQLITE_IOERR_FSYNC || rc == SQLITE_IOERR_DIR_FSYNC)
        return LEDGER_FAULT_FATAL;
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return LEDGER_FAULT_FATAL;
    default:
        /* SQLITE_FULL, SQLITE_BUSY, write errors...: rolled back, retryable. */
        return LEDGER_FAULT_RETRY;
    }
}

static int sqlite_rollback(ledger *base)
{
    ledger_sqlite *lg = impl(base);
    lg->log_planned = false;
    rollup_reset(lg);
    if (sqlite3_get_autocommit(lg->db))
        return 0;
    int rc = run(lg->stmt[ST_ROLLBACK]);
    if (rc != SQLITE_OK) {
        fail(lg, "ledger rollback: %s", sqlite3_errmsg(lg->db));
        return -1;
    }
    return 0;
}

static int sqlite_get(ledger *base, const char *id, ledger_delivery *out)
{
    ledger_sqlite *lg = impl(base);
    lg->err[0] = '\0';
    return get_row(lg, id, out);
}

static long long sqlite_count(ledger *base)
{
    ledger_sqlite *lg = impl(base);
    sqlite3_stmt *st = lg->stmt[ST_COUNT];
    long long n = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    else
        fail(lg, "ledger count: %s", sqlite3_errmsg(lg->db));
    sqlite3_reset(st);
    return n;
}

/* ---- reads for the admin API and report ---- */

static uint64_t column_count(sqlite3_stmt *st, int col)
{
    sqlite3_int64 v = sqlite3_column_int64(st, col); /* total() is a float; it converts */
    return v > 0 ? (uint64_t)v : 0;
}

static int sqlite_summary(ledger *base, ledger_summary *out)
{
    ledger_sqlite *lg = impl(base);
    sqlite3_stmt *st = lg->stmt[ST_SUMMARY];
    int ret = -1;
    lg->err[0] = '\0';
    memset(out, 0, sizeof *out);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *status_name = (const char *)sqlite3_column_text(st, 0);
        const char *kind_name = (const char *)sqlite3_column_text(st, 1);
        ledger_status status;
        ledger_kind kind;
        if (status_name == NULL || ledger_status_parse(status_name, &status) != 0 ||
            kind_name == NULL || ledger_kind_parse(kind_name, &kind) != 0) {
            fail(lg, "ledger summary: a row of unknown status or kind");
            goto out;
        }
        ledger_summary_count(out, status, kind, column_count(st, 2));
        out->first_ms = column_count(st, 3);
        out->last_ms = column_count(st, 4);
        if (column_count(st, 5) > out->last_ms)
            out->last_ms = column_count(st, 5);
    }
    if (rc == SQLITE_DONE)
        ret = 0;
    else
        fail(lg, "ledger summary: %s", sqlite3_errmsg(lg->db));
out:
    sqlite3_reset(st);
    return ret;
}

/* Steps st to the end, handing each row to row_fn; resets st either way. */
static int for_each_row(ledger_sqlite *lg, sqlite3_stmt *st, const char *what,
                        int (*row_fn)(sqlite3_stmt *st, void *fn, void *arg), void *fn, void *arg)
{
    int ret = 0;
    int rc;
    lg->err[0] = '\0';
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (row_fn(st, fn, arg) != 0)
            goto out; /* the caller stopped: not an error */
    }
    if (rc != SQLITE_DONE) {
        fail(lg, "ledger %s: %s", what, sqlite3_errmsg(lg->db));
        ret = -1;
    }
out:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

static int content_row(sqlite3_stmt *st, void *fn, void *arg)
{
    ledger_content_stats row;
    memset(&row, 0, sizeof row);
    column_text(st, 0, row.path, sizeof row.path);
    column_sha256(st, 1, row.sha256);
    row.size = column_count(st, 2);
    row.deliveries = column_count(st, 3);
    row.confirmed = column_count(st, 4);
    row.corrupted = column_count(st, 5);
    row.pending = column_count(st, 6);
    row.first_ms = column_count(st, 7);
    row.last_ms = column_count(st, 8);
    row.has_latency = sqlite3_column_type(st, 9) != SQLITE_NULL;
    row.median_ms = sqlite3_column_int64(st, 9);
    row.p95_ms = sqlite3_column_int64(st, 10);
    return (*(ledger_content_fn *)fn)(arg, &row);
}

static int sqlite_content_stats(ledger *base, ledger_content_fn fn, void *arg)
{
    ledger_sqlite *lg = impl(base);
    return for_each_row(lg, lg->stmt[ST_CONTENT_STATS], "contents", content_row, &fn, arg);
}

static int client_row(sqlite3_stmt *st, void *fn, void *arg)
{
    ledger_client_stats row;
    memset(&row, 0, sizeof row);
    column_text(st, 0, row.client, sizeof row.client);
    row.deliveries = column_count(st, 1);
    row.confirmed = column_count(st, 2);
    row.corrupted = column_count(st, 3);
    row.pending = column_count(st, 4);
    row.last_seen_ms = column_count(st, 5);
    return (*(ledger_client_fn *)fn)(arg, &row);
}

static int sqlite_client_stats(ledger *base, ledger_client_fn fn, void *arg)
{
    ledger_sqlite *lg = impl(base);
    return for_each_row(lg, lg->stmt[ST_CLIENT_STATS], "clients", client_row, &fn, arg);
}

typedef struct series_ctx {
    ledger_bucket_fn fn;
    uint64_t since_ms;
    uint64_t width_ms;
} series_ctx;

static int series_row(sqlite3_stmt *st, void *fn, void *arg)
{
    const series_ctx *ctx = fn;
    ledger_bucket row = {
        .start_ms = ctx->since_ms + column_count(st, 0) * ctx->width_ms,
        .deliveries = column_count(st, 1),
        .confirmed = column_count(st, 2),
        .corrupted = column_count(st, 3),
    };
    return ctx->fn(arg, &row);
}

/*
 * Whole minutes (what the dashboard asks for any range over 48 minutes)
 * are read from the per-minute rollup, whatever the ledger's size; other
 * widths from the rows in the range.
 */
static int sqlite_series(ledger *base, uint64_t since_ms, uint64_t until_ms, uint64_t width_ms,
                         ledger_bucket_fn fn, void *arg)
{
    ledger_sqlite *lg = impl(base);
    sqlite3_stmt *st = lg->stmt[ST_SERIES];
    series_ctx ctx = {.fn = fn, .since_ms = since_ms, .width_ms = width_ms};
    uint64_t unit = 1;
    if (!fits_int64(since_ms) || !fits_int64(until_ms) || !fits_int64(width_ms)) {
        fail(lg, "ledger series: a time is out of range");
        return -1;
    }
    if (since_ms % ROLLUP_MINUTE_MS == 0 && until_ms % ROLLUP_MINUTE_MS == 0 &&
        width_ms % ROLLUP_MINUTE_MS == 0) {
        st = lg->stmt[ST_SERIES_MINUTES];
        unit = ROLLUP_MINUTE_MS;
    }
    if (sqlite3_bind_int64(st, 1, (sqlite3_int64)(since_ms / unit)) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, (sqlite3_int64)(until_ms / unit)) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, (sqlite3_int64)(width_ms / unit)) != SQLITE_OK) {
        fail(lg, "ledger series: %s", sqlite3_errmsg(lg->db));
        sqlite3_clear_bindings(st);
        return -1;
    }
    return for_each_row(lg, st, "series", series_row, &ctx, arg);
}

static long sqlite_rollups_check(ledger *base, ledger_problem_fn fn, void *arg)
{
    ledger_sqlite *lg = impl(base);
    sqlite3_stmt *st = lg->stmt[ST_ROLLUP_CHECK];
    long differences = 0;
    int rc;
    lg->err[0] = '\0';
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char what[96], counted[64], kept[64];
        column_text(st, 0, what, sizeof what);
        column_text(st, 1, counted, sizeof counted);
        column_text(st, 2, kept, sizeof kept);
        ledger_rollup_problem(fn, arg, what, counted, kept);
        differences++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        fail(lg, "ledger rollups: %s", sqlite3_errmsg(lg->db));
        return -1;
    }
    return differences;
}

/*
 * The query's statement is made for its filter, and says which index reads
 * the rows. SQLite keeps no statistics of the ledger (nothing runs ANALYZE),
 * so it takes any equality for selective: given a status it reads the
 * (status, kind) index and then sorts what it found by ID. Only corrupted
 * rows are few by nature; issued, bound and confirmed rows are each a large
 * share of a ledger, and reading them through that index reads much of the
 * table out of order and sorts it, for a page of 50 as for a whole export
 * (at 1 million deliveries, 0.6 s for the first page of the last day's
 * pending deliveries, which walking the IDs answers in under a millisecond).
 * So the (status, kind) index serves corrupted rows only; otherwise a unary
 * + keeps the status and kind terms from choosing an index (SQLite's
 * documented way), and the rest of the filter chooses:
 *  - a client: its index;
 *  - a page (a limit): the ID index from the newest end (UUIDv7: issue
 *    order), which stops at the page's last row;
 *  - a whole read bounded in time: the issued_ms index over the window, its
 *    rows then sorted by ID (ORDER BY +id, for the same reason);
 *  - any other whole read: the ID index, in order, with no sort.
 * Only the plan changes: the rows and their order are the same.
 */
static bool status_index_fits(const ledger_filter *f)
{
    return f->statuses != 0 && (f->statuses & ~LEDGER_STATUS_BIT(LEDGER_CORRUPTED)) == 0;
}
typedef struct sqlite_cursor {
    ledger_cursor base; /* first: ledger.c dispatches through it */
    sqlite3_stmt *st;
    bool done;
} sqlite_cursor;

#define QUERY_SQL_MAX 1024

enum query_param {
    QP_PATH = 1,
    QP_CLIENT,
    QP_SINCE,
    QP_UNTIL,
    QP_BEFORE,
    QP_AFTER,
    QP_LIMIT,
};

static int build_query(const ledger_filter *f, char *sql, size_t cap)
{
    size_t len = 0;
    int n = snprintf(sql, cap, "SELECT " COLUMNS " FROM deliveries WHERE 1");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    len = (size_t)n;
#define APPEND(...)                                                                                \
    do {                                                                                           \
        n = snprintf(sql + len, cap - len, __VA_ARGS__);                                           \
        if (n < 0 || (size_t)n >= cap - len)                                                       \
            return -1;                                                                             \
        len += (size_t)n;                                                                          \
    } while (0)
    if (f->path != NULL)
        APPEND(" AND path = ?%d", QP_PATH);
    if (f->client != NULL)
        APPEND(" AND client = ?%d", QP_CLIENT);
    if (f->since_ms != 0)
        APPEND(" AND issued_ms >= ?%d", QP_SINCE);
    if (f->until_ms != 0)
        APPEND(" AND issued_ms < ?%d", QP_UNTIL);
    if (f->before_id != NULL && f->before_id[0] != '\0')
        APPEND(" AND id < ?%d", QP_BEFORE);
    if (f->after_id != NULL && f->after_id[0] != '\0')
        APPEND(" AND id > ?%d", QP_AFTER);
    bool by_status = status_index_fits(f);
    if (ledger_filter_names_sql_as(f, sql, cap, &len, by_status ? "status" : "+status",
                                   by_status ? "kind" : "+kind") != 0)
        return -1;
    bool window_then_sort =
        !by_status && f->client == NULL && f->limit == 0 && (f->since_ms != 0 || f->until_ms != 0);
    APPEND(" ORDER BY %sid %s", window_then_sort ? "+" : "", f->oldest_first ? "ASC" : "DESC");
    if (f->limit != 0)
        APPEND(" LIMIT ?%d", QP_LIMIT);
#undef APPEND
    return 0;
}

static int bind_filter(sqlite3_stmt *st, const ledger_filter *f)
{
    int rc = SQLITE_OK;
    if (f->path != NULL)
        rc |= sqlite3_bind_text(st, QP_PATH, f->path, -1, SQLITE_TRANSIENT);
    if (f->client != NULL)
        rc |= sqlite3_bind_text(st, QP_CLIENT, f->client, -1, SQLITE_TRANSIENT);
    if (f->since_ms != 0)
        rc |= sqlite3_bind_int64(st, QP_SINCE, (sqlite3_int64)f->since_ms);
    if (f->until_ms != 0)
        rc |= sqlite3_bind_int64(st, QP_UNTIL, (sqlite3_int64)f->until_ms);
    if (f->before_id != NULL && f->before_id[0] != '\0')
        rc |= sqlite3_bind_text(st, QP_BEFORE, f->before_id, -1, SQLITE_TRANSIENT);
    if (f->after_id != NULL && f->after_id[0] != '\0')
        rc |= sqlite3_bind_text(st, QP_AFTER, f->after_id, -1, SQLITE_TRANSIENT);
    if (f->limit != 0)
        rc |= sqlite3_bind_int64(st, QP_LIMIT, (sqlite3_int64)f->limit);
    return rc == SQLITE_OK ? 0 : -1;
}

static ledger_cursor *sqlite_query(ledger *base, const ledger_filter *f)
{
    ledger_sqlite *lg = impl(base);
    char sql[QUERY_SQL_MAX];
    sqlite_cursor *cur = NULL;
    lg->err[0] = '\0';
    if (!fits_int64(f->since_ms) || !fits_int64(f->until_ms) || !fits_int64(f->limit) ||
        (f->statuses & ~(LEDGER_STATUS_BIT(LEDGER_CORRUPTED + 1) - 1)) != 0 ||
        (f->kinds & ~(LEDGER_KIND_BIT(LEDGER_KIND_COUNT) - 1)) != 0) {
        fail(lg, "ledger query: a filter is out of range");
        return NULL;
    }
    if (build_query(f, sql, sizeof sql) != 0) {
        fail(lg, "ledger query: too many conditions");
        return NULL;
    }
    cur = calloc(1, sizeof *cur);
    if (cur == NULL) {
        fail(lg, "ledger query: out of memory");
        return NULL;
    }
    cur->base.lg = base;
    if (sqlite3_prepare_v2(lg->db, sql, -1, &cur->st, NULL) != SQLITE_OK ||
        bind_filter(cur->st, f) != 0) {
        fail(lg, "ledger query: %s", sqlite3_errmsg(lg->db));
        sqlite3_finalize(cur->st);
        free(cur);
        return NULL;
    }
    return &cur->base;
}

static int sqlite_cursor_next(ledger_cursor *base, ledger_delivery *out)
{
    sqlite_cursor *cur = (sqlite_cursor *)base;
    ledger_sqlite *lg = impl(base->lg);
    if (cur->done)
        return 0;
    int rc = sqlite3_step(cur->st);
    if (rc == SQLITE_ROW)
        return read_row(lg, cur->st, out) == 0 ? 1 : -1;
    cur->done = true;
    /* Ends the read transaction now rather than when the cursor is freed. */
    sqlite3_reset(cur->st);
    if (rc == SQLITE_DONE)
        return 0;
    fail(lg, "ledger query: %s", sqlite3_errmsg(lg->db));
    return -1;
}

static void sqlite_cursor_free(ledger_cursor *base)
{
    sqlite_cursor *cur = (sqlite_cursor *)base;
    sqlite3_finalize(cur->st);
    free(cur);
}

static int sqlite_set_lock_timeout(ledger *base, int timeout_ms)
{
    ledger_sqlite *lg = impl(base);
    if (sqlite3_busy_timeout(lg->db, timeout_ms) != SQLITE_OK) {
        fail(lg, "ledger: %s", sqlite3_errmsg(lg->db));
        return -1;
    }
    return 0;
}

static const char *sqlite_error(const ledger *base)
{
    return ((const ledger_sqlite *)base)->err;
}

static const char *sqlite_where(const ledger *base)
{
    return ((const ledger_sqlite *)base)->where;
}

/* ---- the evidence log ---- */

/*
 * Binds entry e to the five parameters of st from first on. The event is
 * stored packed (common/evpack.h) as a BLOB, about half the bytes of its
 * text, which the WAL, the database, its checkpoints and the page cache
 * all carry (docs/performance.md): as made ahead with the text (e->packed),
 * or packed here into room (EVPACK_MAX(LEDGER_EVENT_TEXT_MAX) bytes) for
 * the log's own events and copied logs. A TEXT (rows stored before, or a
 * text too long to pack here) is read as it is: the column's type tells
 * the two apart.
 */
static int bind_log_entry(sqlite3_stmt *st, int first, const ledger_log_entry *e, uint8_t *room)
{
    int rc = sqlite3_bind_int64(st, first, clamp_i64(e->leaf));
    rc |= e->delivery != NULL ? sqlite3_bind_text(st, first + 1, e->delivery, -1, SQLITE_STATIC)
                              : sqlite3_bind_null(st, first + 1);
    rc |= sqlite3_bind_blob(st, first + 2, e->salt, LEDGER_SALT_LEN, SQLITE_STATIC);
    rc |= sqlite3_bind_blob(st, first + 3, e->commitment, LEDGER_HASH_LEN, SQLITE_STATIC);
    const uint8_t *packed = e->packed;
    size_t n = e->packed_len;
    if (packed == NULL || n == 0 || n > INT_MAX) {
        packed = room;
        n = e->event_len <= LEDGER_EVENT_TEXT_MAX
                ? evpack_encode(e->event, e->event_len, room, EVPACK_MAX(LEDGER_EVENT_TEXT_MAX))
                : 0;
    }
    if (n > 0)
        rc |= sqlite3_bind_blob(st, first + 4, packed, (int)n, SQLITE_STATIC);
    else
        rc |= sqlite3_bind_text(st, first + 4, e->event, (int)e->event_len, SQLITE_STATIC);
    return rc;
}

/* A logged batch begins (ledger_backend.h): its rows take leaf numbers. */
static int sqlite_log_begin(ledger *base)
{
    ledger_sqlite *lg = impl(base);
    uint64_t head = 0;
    if (ledger_log_size(base, &head) != 0) {
        /* The first read of the batch: a damaged file shows here first. */
        lg->fault_rc = sqlite3_extended_errcode(lg->db);
        return -1;
    }
    lg->log_head = head;
    lg->log_applied = 0;
    lg->log_stored = false;
    lg->log_planned = true;
    return 0;
}

/* BEGIN IMMEDIATE holds the write lock: the size read when the batch began
 * is the log's. */
static int sqlite_log_lock(ledger *base, uint64_t *size)
{
    ledger_sqlite *lg = impl(base);
    if (lg->log_planned) {
        *size = lg->log_head;
        return 0;
    }
    return ledger_log_size(base, size);
}

/* Runs ST_LOG_LINK or ST_LOG_RENUMBER for delivery id; *changed: a row was. */
static int relink(ledger_sqlite *lg, enum stmt_id which, const char *id, uint64_t from, uint64_t to,
                  bool *changed)
{
    sqlite3_stmt *st = lg->stmt[which];
    int rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc |= sqlite3_bind_int64(st, 2, clamp_i64(which == ST_LOG_LINK ? to : from));
    if (which == ST_LOG_RENUMBER)
        rc |= sqlite3_bind_int64(st, 3, clamp_i64(to));
    if (rc == SQLITE_OK)
        rc = run(st);
    *changed = rc == SQLITE_OK && sqlite3_changes(lg->db) > 0;
    return rc;
}

/*
 * After the batch's entries are stored: the leaves the rows do not number
 * yet go into them. The log's writes list its own leaves first (ledger.h),
 * then one for each event that changed its row, in order. Its own leaves
 * that name a delivery (a row recorded as it stands, or every leaf of a
 * copied log) are put first in that row's leaves; the events' leaves were
 * numbered by their rows, from log_head, and are renumbered when own
 * leaves came before them. Returns 0, or -1 with err set.
 */
static int number_leaves(ledger_sqlite *lg, const ledger_log_write *w)
{
    size_t applied = lg->log_planned ? lg->log_applied : 0;
    bool changed;
    int rc;
    if (w->entry_count < applied) {
        fail(lg, "ledger log: %zu leaves for %zu events that changed their rows", w->entry_count,
             applied);
        return -1;
    }
    size_t own = w->entry_count - applied;
    for (size_t i = 0; i < own; i++) {
        const ledger_log_entry *e = &w->entries[i];
        if (e->delivery != NULL &&
            (rc = relink(lg, ST_LOG_LINK, e->delivery, 0, e->leaf, &changed)) != SQLITE_OK)
            goto fail;
        /* No row (a copied log whose row was deleted): ledger verify says so. */
    }
    /* From the last, so that a number is never moved onto one still to move. */
    for (size_t j = applied; j-- > 0;) {
        const ledger_log_entry *e = &w->entries[own + j];
        uint64_t given = lg->log_head + j;
        if (e->delivery == NULL || strcmp(e->delivery, lg->log_ids[j]) != 0) {
            fail(lg, "ledger log: leaf %llu is not the event of delivery %s",
                 (unsigned long long)e->leaf, lg->log_ids[j]);
            return -1;
        }
        if (e->leaf == given)
            continue;
        if ((rc = relink(lg, ST_LOG_RENUMBER, e->delivery, given, e->leaf, &changed)) != SQLITE_OK)
            goto fail;
        if (!changed) {
            fail(lg, "ledger log: delivery %s lost its leaf %llu", e->delivery,
                 (unsigned long long)given);
            return -1;
        }
    }
    lg->log_stored = true;
    return 0;
fail:
    fail(lg, "ledger log: %s", sqlite3_errmsg(lg->db));
    lg->fault_rc = rc;
    return -1;
}

static int sqlite_log_store(ledger *base, const ledger_log_write *w)
{
    ledger_sqlite *lg = impl(base);
    sqlite3_stmt *st;
    int rc;
    size_t stored = 0;
    while (stored < w->entry_count) {
        size_t rows = w->entry_count - stored >= LOG_ENTRY_ROWS ? LOG_ENTRY_ROWS : 1;
        st = lg->stmt[rows == 1 ? ST_LOG_ENTRY : ST_LOG_ENTRIES];
        rc = SQLITE_OK;
        for (size_t r = 0; r < rows; r++)
            rc |= bind_log_entry(st, (int)(5 * r + 1), &w->entries[stored + r], lg->packed[r]);
        if (rc != SQLITE_OK || (rc = run(st)) != SQLITE_OK)
            goto fail;
        stored += rows;
    }
    if (w->entry_count > 0 && number_leaves(lg, w) != 0)
        return -1;
    for (size_t i = 0; i < w->tile_count; i++) {
        const ledger_log_tile *t = &w->tiles[i];
        st = lg->stmt[ST_LOG_TILE];
        rc = sqlite3_bind_int(st, 1, (int)t->level);
        rc |= sqlite3_bind_int64(st, 2, clamp_i64(t->index));
        rc |= sqlite3_bind_blob(st, 3, t->hashes, (int)(t->width * LEDGER_HASH_LEN), SQLITE_STATIC);
        if (rc != SQLITE_OK || (rc = run(st)) != SQLITE_OK)
            goto fail;
    }
    if (w->checkpoint == NULL)
        return 0;
    st = lg->stmt[ST_LOG_CHECKPOINT];
    rc = sqlite3_bind_int64(st, 1, clamp_i64(w->size));
    rc |= sqlite3_bind_int64(st, 2, clamp_i64(w->time_ms));
    rc |= sqlite3_bind_text(st, 3, w->checkpoint, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK || (rc = run(st)) != SQLITE_OK)
        goto fail;
    return 0;
fail:
    fail(lg, "ledger log: %s", sqlite3_errmsg(lg->db));
    lg->fault_rc = rc;
    return -1;
}

typedef struct log_rows {
    ledger_sqlite *lg;
    ledger_log_row_fn fn;
    void *arg;
} log_rows;

static int log_entry_row(sqlite3_stmt *st, void *fn, void *arg)
{
    (void)fn;
    log_rows *rows = arg;
    ledger_log_row row;
    memset(&row, 0, sizeof row);
    row.leaf = (uint64_t)sqlite3_column_int64(st, 0);
    column_text(st, 1, row.delivery, sizeof row.delivery);
    const void *salt = sqlite3_column_blob(st, 2);
    if (salt != NULL && sqlite3_column_bytes(st, 2) == LEDGER_SALT_LEN)
        memcpy(row.salt, salt, LEDGER_SALT_LEN);
    column_sha256(st, 3, row.commitment);
    if (sqlite3_column_type(st, 4) == SQLITE_BLOB) {
        /* Packed. One that does not unpack (an edited row) goes to the
         * reader as its stored bytes, which its commitment then refuses. */
        const uint8_t *packed = sqlite3_column_blob(st, 4);
        size_t len = (size_t)sqlite3_column_bytes(st, 4);
        long n = evpack_decode(packed, len, rows->lg->unpacked, LEDGER_EVENT_TEXT_MAX);
        if (n >= 0) {
            rows->lg->unpacked[n] = '\0';
            row.event = rows->lg->unpacked;
            row.event_len = (size_t)n;
        } else {
            row.event = (const char *)sqlite3_column_text(st, 4);
            row.event_len = row.event != NULL ? (size_t)sqlite3_column_bytes(st, 4) : 0;
        }
    } else {
        row.event = (const char *)sqlite3_column_text(st, 4);
        row.event_len = row.event != NULL ? (size_t)sqlite3_column_bytes(st, 4) : 0;
    }
    return rows->fn(rows->arg, &row);
}

/* The log entries of st, bound with status rc, to fn. */
static int log_rows_run(ledger_sqlite *lg, sqlite3_stmt *st, int rc, ledger_log_row_fn fn,
                        void *arg)
{
    if (rc != SQLITE_OK) {
        fail(lg, "ledger log: %s", sqlite3_errmsg(lg->db));
        sqlite3_reset(st);
        return -1;
    }
    log_rows rows = {.lg = lg, .fn = fn, .arg = arg};
    return for_each_row(lg, st, "log", log_entry_row, NULL, &rows);
}

static int sqlite_log_entries(ledger *base, ledger_log_select select, uint64_t first,
                              uint64_t count, const char *delivery, bool commitments_only,
                              ledger_log_row_fn fn, void *arg)
{
    ledger_sqlite *lg = impl(base);
    sqlite3_stmt *st;
    int rc = SQLITE_OK;
    switch (select) {
    case LEDGER_LOG_RANGE:
        st = lg->stmt[commitments_only ? ST_LOG_RANGE_COMMITMENTS : ST_LOG_RANGE];
        rc |= sqlite3_bind_int64(st, 1, clamp_i64(first));
        rc |= sqlite3_bind_int64(st, 2,
                                 clamp_i64(first + count < first ? UINT64_MAX : first + count));
        break;
    case LEDGER_LOG_DELIVERY:
        st = lg->stmt[ST_LOG_DELIVERY];
        rc |= sqlite3_bind_text(st, 1, delivery, (int)strnlen(delivery, UUID7_STR_LEN + 1),
                                SQLITE_STATIC);
        break;
    case LEDGER_LOG_OWN:
    default:
        st = lg->stmt[ST_LOG_OWN];
        break;
    }
    return log_rows_run(lg, st, rc, fn, arg);
}

static int sqlite_log_deliveries(ledger *base, const char *after_id, const char *last_id,
                                 ledger_log_row_fn fn, void *arg)
{
    ledger_sqlite *lg = impl(base);
    sqlite3_stmt *st = lg->stmt[ST_LOG_DELIVERIES];
    /* Every stored ID (36 characters) sorts after "". */
    const char *after = after_id != NULL ? after_id : "";
    int rc = sqlite3_bind_text(st, 1, after, (int)strnlen(after, UUID7_STR_LEN + 1), SQLITE_STATIC);
    if (last_id != NULL)
        rc |= sqlite3_bind_text(st, 2, last_id, (int)strnlen(last_id, UUID7_STR_LEN + 1),
                                SQLITE_STATIC);
    else
        rc |= sqlite3_bind_null(st, 2);
    return log_rows_run(lg, st, rc, fn, arg);
}

static int log_checkpoint_row(sqlite3_stmt *st, void *fn, void *arg)
{
    const char *note = (const char *)sqlite3_column_text(st, 2);
    return ((ledger_checkpoint_fn)fn)(arg, (uint64_t)sqlite3_column_int64(st, 0),
                                      (uint64_t)sqlite3_column_int64(st, 1),
                                      note != NULL ? note : "");
}

static int sqlite_log_checkpoints(ledger *base, uint64_t min_size, uint64_t max_size,
                                  bool newest_first, uint64_t limit, ledger_checkpoint_fn fn,
                                  void *arg)
{
    ledger_sqlite *lg = impl(base);
    sqlite3_stmt *st = lg->stmt[newest_first ? ST_LOG_CHECKPOINTS_DOWN : ST_LOG_CHECKPOINTS_UP];
    int rc = sqlite3_bind_int64(st, 1, clamp_i64(min_size));
    rc |= sqlite3_bind_int64(st, 2, clamp_i64(max_size));
    rc |= sqlite3_bind_int64(st, 3, limit == 0 ? -1 : clamp_i64(limit));
    if (rc != SQLITE_OK) {
        fail(lg, "ledger log: %s", sqlite3_errmsg(lg->db));
        sqlite3_reset(st);
        return -1;
    }
    return for_each_row(lg, st, "log checkpoints", log_checkpoint_row, (void *)fn, arg);
}

static int sqlite_log_tile(ledger *base, unsigned level, uint64_t index, uint8_t *out,
                           unsigned *width)
{
    ledger_sqlite *lg = impl(base);
    sqlite3_stmt *st = lg->stmt[ST_LOG_TILE_GET];
    int ret = -1;
    *width = 0;
    lg->err[0] = '\0';
    int rc = sqlite3_bind_int(st, 1, (int)level);
    rc |= sqlite3_bind_int64(st, 2, clamp_i64(index));
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *blob = sqlite3_column_blob(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        if (blob == NULL || n <= 0 || n > 256 * LEDGER_HASH_LEN || n % LEDGER_HASH_LEN != 0) {
            fail(lg, "ledger log: tile %u/%llu is damaged", level, (unsigned long long)index);
        } else {
            memcpy(out, blob, (size_t)n);
            *width = (unsigned)(n / LEDGER_HASH_LEN);
            ret = 0;
        }
    } else if (rc == SQLITE_DONE) {
        ret = 0;
    } else {
        fail(lg, "ledger log: %s", sqlite3_errmsg(lg->db));
    }
    sqlite3_reset(st);
    return ret;
}

/* ---- opening ---- */

static void sqlite_close(ledger *base)
{
    ledger_sqlite *lg = impl(base);
    if (lg == NULL)
        return;
    for (int i = 0; i < ST_COUNT_ALL; i++)
        sqlite3_finalize(lg->stmt[i]);
    sqlite3_close(lg->db);
    free(lg->log_ids);
    free(lg);
}

static int exec(ledger_sqlite *lg, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(lg->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fail(lg, "%s", msg != NULL ? msg : sqlite3_errmsg(lg->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Runs a PRAGMA that answers one value; copies it as text into out. */
static int pragma_value(ledger_sqlite *lg, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int ret = -1;
    if (sqlite3_prepare_v2(lg->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW)
        goto out;
    column_text(st, 0, out, cap);
    ret = 0;
out:
    if (ret != 0)
        fail(lg, "%s", sqlite3_errmsg(lg->db));
    sqlite3_finalize(st);
    return ret;
}

/* An integer pragma's value (what names it in messages). */
static int pragma_int(ledger_sqlite *lg, const char *pragma, const char *what, int *out)
{
    char value[32];
    if (pragma_value(lg, pragma, value, sizeof value) != 0)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < INT_MIN || v > INT_MAX) {
        fail(lg, "the %s '%s' is not a number", what, value);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int schema_version(ledger_sqlite *lg, int *out)
{
    return pragma_int(lg, "PRAGMA user_version", "schema version", out);
}

static int configure(ledger_sqlite *lg)
{
    char mode[16];
    char sql[256];
    if (sqlite3_busy_timeout(lg->db, LEDGER_LOCK_TIMEOUT_MS) != SQLITE_OK)
        return -1;
    if (lg->read_only)
        return exec(lg, "PRAGMA foreign_keys = ON; PRAGMA query_only = ON");

    if (pragma_value(lg, "PRAGMA journal_mode = WAL", mode, sizeof mode) != 0)
        return -1;
    if (strcmp(mode, "wal") != 0) {
        fail(lg, "cannot use WAL (journal mode stays %s)", mode);
        return -1;
    }
    snprintf(sql, sizeof sql,
             "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
             " PRAGMA cache_size = -%d; PRAGMA journal_size_limit = %d;"
             " PRAGMA wal_autocheckpoint = %d",
             SQLITE_CACHE_KIB, SQLITE_JOURNAL_LIMIT, SQLITE_CHECKPOINT_PAGES);
    return exec(lg, sql);
}

/*
 * After a step rewrote table text in sqlite_schema: SQLite's procedure for
 * such changes (lang_altertable.html, "Making Other Kinds Of Table Schema
 * Changes") increments the schema cookie in the same transaction, so that
 * every other connection, of this process or another, parses the schema
 * again before its next statement.
 */
static int schema_text_changed(ledger_sqlite *lg)
{
    int cookie;
    char sql[64];
    if (pragma_int(lg, "PRAGMA schema_version", "schema cookie", &cookie) != 0)
        return -1;
    if (cookie < 0 || cookie == INT_MAX) {
        fail(lg, "the schema cookie %d cannot be incremented", cookie);
        return -1;
    }
    snprintf(sql, sizeof sql, "PRAGMA schema_version = %d", cookie + 1);
    return exec(lg, sql);
}

/* Brings the schema up to SCHEMA_VERSION in one transaction (see migrate()). */
static int migrate_steps(ledger_sqlite *lg)
{
    int version = 0;
    char sql[64];

    if (exec(lg, "BEGIN IMMEDIATE") != 0)
        return -1;
    if (schema_version(lg, &version) != 0)
        goto fail;
    if (version > SCHEMA_VERSION) {
        fail(lg, "schema version %d is newer than this receiptd knows (%d): upgrade receiptd",
             version, SCHEMA_VERSION);
        goto fail;
    }
    for (int i = version; i < SCHEMA_VERSION; i++) {
        if (exec(lg, migrations[i]) != 0)
            goto fail;
        /* The steps after it parse the table again (ALTER TABLE edits its
         * text at the offsets of this connection's parse): reloaded now. */
        if (i + 1 == SCHEMA_CHECKS_VERSION &&
            (schema_text_changed(lg) != 0 || exec(lg, "PRAGMA writable_schema = RESET") != 0))
            goto fail;
    }
    bool text_changed = version < SCHEMA_CHECKS_VERSION;
    if (version < SCHEMA_VERSION) {
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        if (exec(lg, sql) != 0)
            goto fail;
    }
    /* New, or adopted (ownership_check() said its schema is receiptd's). */
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d", LEDGER_APPLICATION_ID);
    if (exec(lg, sql) != 0)
        goto fail;
    if (exec(lg, "COMMIT") != 0)
        goto fail;
    /* This connection wrote the cookie, so it would keep its parse: reload. */
    if (text_changed && exec(lg, "PRAGMA writable_schema = RESET") != 0)
        return -1;
    return 0;
fail:
    sqlite3_exec(lg->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_exec(lg->db, "PRAGMA writable_schema = OFF", NULL, NULL, NULL);
    return -1;
}

/* Brings the schema up to SCHEMA_VERSION, with the schema writable. */
static int migrate(ledger_sqlite *lg)
{
    /* A build of SQLite that defends its schema by default would refuse
     * step SCHEMA_CHECKS_VERSION: allowed for the migration, and only then. */
    int defensive = 0;
    if (sqlite3_db_config(lg->db, SQLITE_DBCONFIG_DEFENSIVE, -1, &defensive) != SQLITE_OK)
        defensive = 0;
    if (defensive)
        sqlite3_db_config(lg->db, SQLITE_DBCONFIG_DEFENSIVE, 0, NULL);
    int ret = migrate_steps(lg);
    if (defensive)
        sqlite3_db_config(lg->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    return ret;
}

static int check_version(ledger_sqlite *lg)
{
    int version = 0;
    if (schema_version(lg, &version) != 0)
        return -1;
    if (version > SCHEMA_VERSION) {
        fail(lg, "schema version %d is newer than this receiptd knows (%d): upgrade receiptd",
             version, SCHEMA_VERSION);
        return -1;
    }
    if (version < SCHEMA_VERSION) {
        fail(lg, "schema version %d, this receiptd needs %d: open it writable once to migrate",
             version, SCHEMA_VERSION);
        return -1;
    }
    return 0;
}

/* ---- whose file is it ---- */

/* Reads the first column of each row of sql into names[0..cap); returns the count or -1. */
static int read_names(ledger_sqlite *lg, const char *sql, char names[][64], int cap)
{
    sqlite3_stmt *st = NULL;
    int n = 0;
    int rc;
    if (sqlite3_prepare_v2(lg->db, sql, -1, &st, NULL) != SQLITE_OK) {
        fail(lg, "%s", sqlite3_errmsg(lg->db));
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n < cap)
            column_text(st, 0, names[n], sizeof names[n]);
        n++;
    }
    if (rc != SQLITE_DONE) {
        fail(lg, "%s", sqlite3_errmsg(lg->db));
        n = -1;
    }
    sqlite3_finalize(st);
    return n;
}

#define SCHEMA_NAMES_MAX 32

/* Whether an unmarked database at schema version holds receiptd's tables
 * and the columns of that version. */
static int schema_is_ours(ledger_sqlite *lg, int version, bool *ours)
{
    static const char *const columns[] = {
        "id",
        "path",
        "sha256",
        "size",
        "server",
        "client_addr",
        "user_agent",
        "issued_ms",
        "status",
        "client",
        "bound_addr",
        "bound_ms",
        "confirmed_ms",
        "confirm_addr",
        "received_sha256",
        "received_size",
        "received_at_ms",
        "receipt",
        /* 2 */
        "issued_node",
        "bound_node",
        "confirmed_node",
        /* 3 */
        "kind",
        "delivered_sha256",
        "delivered_size",
        /* 7 */
        "log_leaf",
        "log_leaf_prev",
        "log_leaf_prev2",
    };
    /* How many of them each schema version has (version 1 first). */
    static const int columns_of_version[] = {18, 21, 24, 24, 24, 24, 27, 27};
    _Static_assert(sizeof columns_of_version / sizeof columns_of_version[0] == SCHEMA_VERSION,
                   "a column count for every schema version");
    char names[SCHEMA_NAMES_MAX][64];
    const char *tables[sizeof schema_tables / sizeof schema_tables[0] +
                       sizeof rollup_tables / sizeof rollup_tables[0]];
    int ntables = 0;
    for (size_t i = 0; i < sizeof schema_tables / sizeof schema_tables[0]; i++)
        if (i == 0 || version >= SCHEMA_LOG_VERSION)
            tables[ntables++] = schema_tables[i];
    for (size_t i = 0; i < sizeof rollup_tables / sizeof rollup_tables[0]; i++)
        if (version >= SCHEMA_ROLLUP_VERSION)
            tables[ntables++] = rollup_tables[i];
    int ncolumns = columns_of_version[version - 1];
    *ours = false;
    int n = read_names(lg,
                       "SELECT name FROM sqlite_schema WHERE type = 'table'"
                       " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                       names, SCHEMA_NAMES_MAX);
    if (n < 0)
        return -1;
    if (n != ntables)
        return 0;
    for (int i = 0; i < ntables; i++)
        if (strcmp(names[i], tables[i]) != 0)
            return 0;
    n = read_names(lg, "SELECT name FROM pragma_table_info('deliveries') ORDER BY cid", names,
                   SCHEMA_NAMES_MAX);
    if (n < 0)
        return -1;
    if (n != ncolumns)
        return 0;
    for (int i = 0; i < ncolumns; i++)
        if (strcmp(names[i], columns[i]) != 0)
            return 0;
    *ours = true;
    return 0;
}

/*
 * Refuses a database that is not a receiptd ledger before anything is
 * written to it (even the switch to WAL writes to the header): another
 * program's application_id, or no mark and tables that are not receiptd's.
 * An empty database is a new ledger; an unmarked one with receiptd's schema
 * at a known version is adopted (marked by migrate()).
 */
static int ownership_check(ledger_sqlite *lg, const char *path)
{
    char value[32];
    int version = 0;
    char names[1][64];
    if (pragma_value(lg, "PRAGMA application_id", value, sizeof value) != 0) {
        if (sqlite3_errcode(lg->db) == SQLITE_NOTADB)
            fail(lg,
                 "%s is not an SQLite database: receiptd will neither use nor alter it; "
                 "restore the ledger from a backup or give --ledger another path",
                 path);
        else if (sqlite3_errcode(lg->db) == SQLITE_CORRUPT)
            /* SQLite checks that the file is as long as its header says. */
            fail(lg,
                 "%s is damaged (%s: cut short or overwritten); restore the ledger from a "
                 "backup",
                 path, sqlite3_errmsg(lg->db));
        return -1;
    }
    long long app_id = strtoll(value, NULL, 10);
    if (app_id == LEDGER_APPLICATION_ID)
        return 0;
    if (app_id != 0) {
        fail(lg,
             "%s belongs to another program (SQLite application_id 0x%08llx): receiptd will "
             "neither use nor alter it; give --ledger another path",
             path, (unsigned long long)(uint32_t)app_id);
        return -1;
    }
    if (schema_version(lg, &version) != 0)
        return -1;
    int objects = read_names(lg, "SELECT name FROM sqlite_schema", names, 1);
    if (objects < 0)
        return -1;
    if (objects == 0 && version == 0)
        return 0; /* empty: a new ledger */
    bool ours = false;
    if (version >= 1 && version <= SCHEMA_VERSION && schema_is_ours(lg, version, &ours) != 0)
        return -1;
    if (!ours) {
        fail(lg,
             "%s is an SQLite database of another program (its tables are not a receiptd "
             "ledger): receiptd will neither use nor alter it; give --ledger another path",
             path);
        return -1;
    }
    return 0;
}

#define VERIFY_LINES_MAX 4

static int sqlite_verify(ledger *base)
{
    ledger_sqlite *lg = impl(base);
    sqlite3_stmt *st = NULL;
    char lines[VERIFY_LINES_MAX][64];
    int n = 0;
    int rc;
    lg->err[0] = '\0';
    if (sqlite3_prepare_v2(lg->db, "PRAGMA integrity_check(4)", -1, &st, NULL) != SQLITE_OK) {
        fail(lg, "integrity check failed: %s", sqlite3_errmsg(lg->db));
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < VERIFY_LINES_MAX)
        column_text(st, 0, lines[n++], sizeof lines[0]);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        fail(lg, "integrity check failed: %s", sqlite3_errmsg(lg->db));
        return -1;
    }
    if (n == 1 && strcmp(lines[0], "ok") == 0)
        return 0;
    fail(lg, "integrity check failed: %s%s%s%s%s%s%s", n > 0 ? lines[0] : "no answer",
         n > 1 ? "; " : "", n > 1 ? lines[1] : "", n > 2 ? "; " : "", n > 2 ? lines[2] : "",
         n > 3 ? "; " : "", n > 3 ? lines[3] : "");
    return -1;
}

static int prepare_all(ledger_sqlite *lg)
{
    for (int i = 0; i < ST_COUNT_ALL; i++) {
        if (sqlite3_prepare_v3(lg->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &lg->stmt[i],
                               NULL) != SQLITE_OK) {
            fail(lg, "prepare: %s", sqlite3_errmsg(lg->db));
            return -1;
        }
    }
    return 0;
}

/*
 * Makes the file ourselves, so that it (and the -wal and -shm files, which
 * SQLite creates with the database's mode) is private from the start, and so
 * that a bad path gets the system's own reason.
 */
static int create_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, SQLITE_FILE_MODE);
    if (fd < 0) {
        snprintf(err, errlen, "ledger %s: %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

/* ---- pipelined commits (ledger.h) ---- */

static const char *sqlite_vfs(void);

/*
 * The writing handle commits with synchronous=NORMAL: a commit appends its
 * frames to the WAL and returns, unsynced. Durability comes from
 * ledger_sync_now(): fdatasync() of the WAL through a descriptor of our own
 * (the kernel flushes a file's dirty pages whichever descriptor asks), so
 * every frame written before the call is on disk when it returns, which is
 * what synchronous=FULL does inside the commit. The writer's own connection
 * never checkpoints (its WAL hook replaces the automatic checkpoint); the
 * checkpoints run on a connection of their own with synchronous=FULL, which
 * fsyncs the WAL before it copies frames into the database and the database
 * before it lets the WAL start over, so a restart of the WAL never
 * overwrites a frame whose pages are not durable in the database.
 */
typedef struct sqlite_sync {
    ledger_sync base;  /* first: ledger.c dispatches through it */
    ledger_sqlite *lg; /* the writing handle: touched by free() alone */
    char db_path[PATH_MAX];
    char wal_path[PATH_MAX];
    int wal_fd;
    dev_t wal_dev;
    ino_t wal_ino;
    sqlite3 *checkpointer; /* opened by the first checkpoint */
    atomic_int frames;     /* in the WAL after the last commit (the WAL hook) */
    int checkpointed;      /* frames when the last checkpoint began */
} sqlite_sync;

static const ledger_sync_ops sqlite_sync_ops;

static int wal_frames_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    sqlite_sync *s = arg;
    atomic_store_explicit(&s->frames, frames, memory_order_relaxed);
    return SQLITE_OK;
}

static int open_wal(sqlite_sync *s, char *err, size_t errlen)
{
    int fd = open(s->wal_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", s->wal_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    s->wal_fd = fd;
    s->wal_dev = st.st_dev;
    s->wal_ino = st.st_ino;
    return 0;
}

static ledger_sync *sqlite_sync_begin(ledger *base, char *err, size_t errlen)
{
    ledger_sqlite *lg = impl(base);
    sqlite_sync *s = NULL;
    if (lg->read_only || !sqlite3_get_autocommit(lg->db)) {
        snprintf(err, errlen, "ledger %s: pipelined commits need the writing handle, idle",
                 lg->where);
        return NULL;
    }
    const char *db_path = sqlite3_db_filename(lg->db, "main");
    const char *wal_path = db_path != NULL ? sqlite3_filename_wal(db_path) : NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL || wal_path == NULL || strlen(db_path) >= sizeof s->db_path ||
        strlen(wal_path) >= sizeof s->wal_path) {
        snprintf(err, errlen, "ledger %s: cannot find its WAL", lg->where);
        free(s);
        return NULL;
    }
    s->base.ops = &sqlite_sync_ops;
    s->lg = lg;
    s->wal_fd = -1;
    atomic_init(&s->frames, 0);
    memcpy(s->db_path, db_path, strlen(db_path) + 1);
    memcpy(s->wal_path, wal_path, strlen(wal_path) + 1);
    /* The WAL exists once a transaction ran (migrate() did). */
    if (open_wal(s, err, errlen) != 0)
        goto fail;
    if (exec(lg, "PRAGMA synchronous = NORMAL") != 0) {
        snprintf(err, errlen, "ledger %s: %s", lg->where, lg->err);
        goto fail;
    }
    sqlite3_wal_hook(lg->db, wal_frames_hook, s); /* and no automatic checkpoint */
    return &s->base;

fail:
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    free(s);
    return NULL;
}

static int sync_now(ledger_sync *base, char *err, size_t errlen)
{
    sqlite_sync *s = (sqlite_sync *)base;
    struct stat st;
    /* SQLite deletes the WAL only once it is checkpointed whole: a new file
     * there holds every frame not yet made durable. */
    if (stat(s->wal_path, &st) == 0 && (st.st_dev != s->wal_dev || st.st_ino != s->wal_ino) &&
        open_wal(s, err, errlen) != 0)
        return -1;
    if (fdatasync(s->wal_fd) != 0) {
        snprintf(err, errlen, "fsync of %s: %s", s->wal_path, strerror(errno));
        return -1;
    }
    return 0;
}

static bool sync_checkpoint_due(ledger_sync *base)
{
    sqlite_sync *s = (sqlite_sync *)base;
    int frames = atomic_load_explicit(&s->frames, memory_order_relaxed);
    return frames >= SQLITE_CHECKPOINT_PAGES && frames != s->checkpointed;
}

static int sync_checkpoint(ledger_sync *base, char *err, size_t errlen)
{
    sqlite_sync *s = (sqlite_sync *)base;
    int frames = atomic_load_explicit(&s->frames, memory_order_relaxed);
    if (s->checkpointer == NULL) {
        sqlite3 *db = NULL;
        if (sqlite3_open_v2(s->db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                            sqlite_vfs()) != SQLITE_OK ||
            sqlite3_exec(db, "PRAGMA synchronous = FULL", NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, errlen, "checkpoint of %s: %s", s->db_path,
                     db != NULL ? sqlite3_errmsg(db) : "out of memory");
            sqlite3_close(db);
            return -1;
        }
        sqlite3_busy_timeout(db, LEDGER_LOCK_TIMEOUT_MS);
        s->checkpointer = db;
    }
    int wal = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->checkpointer, "main", SQLITE_CHECKPOINT_PASSIVE, &wal,
                                       &copied);
    s->checkpointed = frames;
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        snprintf(err, errlen, "checkpoint of %s: %s", s->db_path, sqlite3_errmsg(s->checkpointer));
        return -1;
    }
    return 0;
}

static void sync_free(ledger_sync *base)
{
    sqlite_sync *s = (sqlite_sync *)base;
    /* Freed just before the handle closes (writer_free()), which commits
     * nothing more: its last checkpoint, on close, syncs (NORMAL does). */
    sqlite3_wal_autocheckpoint(s->lg->db, SQLITE_CHECKPOINT_PAGES);
    sqlite3_close(s->checkpointer);
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    free(s);
}

static const ledger_sync_ops sqlite_sync_ops = {
    .now = sync_now,
    .checkpoint_due = sync_checkpoint_due,
    .checkpoint = sync_checkpoint,
    .free = sync_free,
};

/*
 * SQLite counts every allocation under one global mutex unless told not to;
 * the writer allocates per row, and the counts are never read here. Must run
 * before the library initialises, hence once, before the first open.
 */
static pthread_once_t sqlite_setup_once = PTHREAD_ONCE_INIT;

static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* The WAL's frames written a transaction at a time (daemon/walbuf.h), or
 * by SQLite's own VFS if that one cannot be set up. */
static const char *sqlite_vfs(void)
{
    return walbuf_register() == SQLITE_OK ? WALBUF_VFS : NULL;
}

static ledger *sqlite_open(const char *target, bool read_only, bool *unreachable, char *err,
                           size_t errlen)
{
    (void)unreachable; /* a file is there or not: waiting cures nothing */
    ledger_sqlite *lg = NULL;
    int flags = SQLITE_OPEN_NOMUTEX; /* one thread at a time, by contract */

    pthread_once(&sqlite_setup_once, sqlite_setup);

    if (!read_only && create_file(target, err, errlen) != 0)
        return NULL;

    lg = calloc(1, sizeof *lg);
    if (lg == NULL) {
        snprintf(err, errlen, "ledger %s: out of memory", target);
        return NULL;
    }
    lg->base.ops = &ledger_sqlite_ops;
    lg->read_only = read_only;
    snprintf(lg->where, sizeof lg->where, "%s", target);

    flags |= read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    int rc = sqlite3_open_v2(target, &lg->db, flags, sqlite_vfs());
    if (rc != SQLITE_OK) {
        int sys = lg->db != NULL ? sqlite3_system_errno(lg->db) : 0;
        fail(lg, "%s%s%s%s", lg->db != NULL ? sqlite3_errmsg(lg->db) : sqlite3_errstr(rc),
             sys ? " (" : "", sys ? strerror(sys) : "", sys ? ")" : "");
        goto fail;
    }
    sqlite3_extended_result_codes(lg->db, 1);
    sqlite3_busy_timeout(lg->db, LEDGER_LOCK_TIMEOUT_MS);

    if (ownership_check(lg, target) != 0)
        goto fail;
    if (configure(lg) != 0)
        goto fail;
    if ((read_only ? check_version(lg) : migrate(lg)) != 0)
        goto fail;
    if (prepare_all(lg) != 0)
        goto fail;
    lg->err[0] = '\0';
    return &lg->base;

fail:
    snprintf(err, errlen, "ledger %s: %s", target, lg->err);
    sqlite_close(&lg->base);
    return NULL;
}

const ledger_ops ledger_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .error = sqlite_error,
    .set_lock_timeout = sqlite_set_lock_timeout,
    .begin = sqlite_begin,
    .apply = sqlite_apply,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .fault = sqlite_fault,
    .verify = sqlite_verify,
    .write = NULL, /* one by one: SQLite statements cost no round trip */
    .log_store = sqlite_log_store,
    .log_lock = sqlite_log_lock,
    .log_begin = sqlite_log_begin,
    .sync_begin = sqlite_sync_begin,
    .log_entries = sqlite_log_entries,
    .log_deliveries = sqlite_log_deliveries,
    .log_checkpoints = sqlite_log_checkpoints,
    .log_tile = sqlite_log_tile,
    .prepare = NULL,
    .where = sqlite_where,
    .get = sqlite_get,
    .count = sqlite_count,
    .summary = sqlite_summary,
    .content_stats = sqlite_content_stats,
    .client_stats = sqlite_client_stats,
    .series = sqlite_series,
    .rollups_check = sqlite_rollups_check,
    .query = sqlite_query,
    .cursor_next = sqlite_cursor_next,
    .cursor_free = sqlite_cursor_free,
};
