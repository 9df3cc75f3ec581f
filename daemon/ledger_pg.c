/*
 * The PostgreSQL ledger backend (libpq): one ledger for several receiptd
 * nodes.
 *
 * Writing. The writer's batch goes out as one pipeline, one round trip
 * however many events it holds: BEGIN, one statement per round, COMMIT. A
 * round is a run of events with distinct IDs (the second event of an ID in
 * a batch goes to the next round, and so on: a batch is rarely more than
 * three rounds deep); its statement is one INSERT ... SELECT FROM unnest()
 * of binary arrays, one array per column. The database decides what wins:
 * issuances insert or do nothing; bindings and confirmations are
 * conditional upserts (ON CONFLICT ... DO UPDATE ... WHERE the row is not
 * final yet), which lock the row, so that a second node confirming the same
 * delivery waits for the first and then finds the row final. A confirmation
 * that changed nothing is answered from the row, read after the commit:
 * final rows never change again. synchronous_commit is on (raised from off),
 * so COMMIT returns once the WAL is flushed.
 *
 * A deadlock or serialisation failure between nodes retries the batch. A
 * batch that the database refuses for the data of one event (a class 22 or
 * 23 error that the checks here did not foresee) is run again event by
 * event under savepoints, so that only that event is refused.
 *
 * Schema. Migrations are versioned in ledger_schema and run under a
 * transaction-level advisory lock, so nodes may start together. The
 * deliveries table is partitioned by range of its UUIDv7 ID (the issue
 * time is its first 48 bits), one partition a month (deliveries_YYYY_MM),
 * with a default partition for rows outside them; ledger_prepare() makes
 * months ahead of time (see docs/operations.md).
 *
 * Connections. Every statement and lock wait has a timeout (unless one was
 * chosen for the connection, role or database) and TCP keepalives bound a
 * silent network. A
 * connection found broken is reset on the next use; reads retry once after a
 * reset, writes report the batch failed and the writer retries it.
 */
#include "common/unicode.h"
#include "daemon/clock.h"
#include "daemon/ledger_backend.h"
#include "daemon/ledger_pg.h"

#include <libpq-fe.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- limits and settings ---- */

#define PG_STATEMENT_TIMEOUT_MS      30000 /* unless the connection string sets one */
#define PG_CONNECT_TIMEOUT_S         "10"
#define PG_IO_TIMEOUT_MS             120000 /* a pipeline's whole round trip, at most */
#define PG_TXN_TRIES                 3      /* a batch lost to a deadlock is tried again */
#define PG_FETCH_ROWS                256    /* rows a cursor fetches at a time */
#define PG_QUERY_SQL_MAX             1024
#define PG_PARTITION_LOCK_TIMEOUT_MS 1000
#define PG_WHERE_MAX                 512
#define PG_ROLLUP_MINUTE_MS          60000 /* the rollups' minute (migration 5) */

/* Advisory lock keys: "receipt" and a number. */
#define PG_LOCK_MIGRATE   INT64_C(0x7265636569707401)
#define PG_LOCK_PARTITION INT64_C(0x7265636569707402)
#define PG_LOCK_LOG       INT64_C(0x7265636569707403) /* appending to the evidence log */
#define PG_LOCK_ROLLUP    INT64_C(0x7265636569707404) /* rollup_compact() (migration 5) */

/* Built-in type OIDs (pg_type.dat; fixed since they were assigned). */
#define OID_BYTEA 17
#define OID_INT8  20
#define OID_INT2  21
#define OID_TEXT  25
#define OID_UUID  2950

/*
 * Schema steps: step i takes version i to i + 1. Append only: a released
 * step is never edited, since ledgers in the field already ran it.
 *
 * Text that is ordered or compared (paths, clients) uses the "C" collation:
 * bytewise, as SQLite compares, whatever the database's locale. The
 * secondary indexes end with the ID so that a filtered page is read in ID
 * order without sorting. The status index leaves out issued rows, most of
 * the table: an issuance then costs one index entry less (measured: 17%
 * fewer WAL records a row), and a page of issued rows is the newest rows
 * that are issued, read from the primary key. confirmed_ms has an index of
 * its own: the series of confirmations is a filter by time.
 */
/* Both row triggers raise the connection's latest confirmation the same
 * way, from the statement's new rows. */
#define ROLLUP_LATEST_FROM_NEW                                                                     \
    "  INSERT INTO rollup_latest AS r (slot, confirmed_ms)"                                        \
    "   SELECT pg_backend_pid(), max(confirmed_ms) FROM rollup_new"                                \
    "   WHERE status IN ('confirmed', 'corrupted') HAVING max(confirmed_ms) IS NOT NULL"           \
    "   ON CONFLICT (slot) DO UPDATE SET confirmed_ms = greatest(r.confirmed_ms,"                  \
    " excluded.confirmed_ms);"

static const char *const migrations[] = {
    "CREATE TABLE deliveries ("
    " id uuid NOT NULL,"
    " path text COLLATE \"C\" NOT NULL,"
    " sha256 bytea NOT NULL CHECK (length(sha256) = 32),"
    " size bigint NOT NULL,"
    " server text COLLATE \"C\" NOT NULL,"
    " client_addr text COLLATE \"C\" NOT NULL,"
    " user_agent text COLLATE \"C\","
    " issued_ms bigint NOT NULL,"
    " status text COLLATE \"C\" NOT NULL"
    "  CHECK (status IN ('issued', 'bound', 'confirmed', 'corrupted')),"
    " client text COLLATE \"C\","
    " bound_addr text COLLATE \"C\","
    " bound_ms bigint,"
    " confirmed_ms bigint,"
    " confirm_addr text COLLATE \"C\","
    " received_sha256 bytea CHECK (received_sha256 IS NULL OR length(received_sha256) = 32),"
    " received_size bigint,"
    " received_at_ms bigint,"
    " receipt text COLLATE \"C\","
    " issued_node text COLLATE \"C\","
    " bound_node text COLLATE \"C\","
    " confirmed_node text COLLATE \"C\","
    " PRIMARY KEY (id)"
    ") PARTITION BY RANGE (id);"
    "CREATE TABLE deliveries_default PARTITION OF deliveries DEFAULT;"
    "CREATE INDEX deliveries_path ON deliveries (path, id);"
    "CREATE INDEX deliveries_client ON deliveries (client, id) WHERE client IS NOT NULL;"
    "CREATE INDEX deliveries_status ON deliveries (status, id) WHERE status <> 'issued';"
    "CREATE INDEX deliveries_issued ON deliveries (issued_ms);"
    "CREATE INDEX deliveries_confirmed ON deliveries (confirmed_ms)"
    " WHERE confirmed_ms IS NOT NULL;",
    /*
     * 2: kinds, and the digest and size of the bytes sent where they differ
     * from the version's (an injected page): NULL otherwise. Rows from
     * before are tracked, as every 200 was. A constant default costs no
     * rewrite of the table.
     */
    "ALTER TABLE deliveries ADD COLUMN kind text COLLATE \"C\" NOT NULL DEFAULT 'tracked'"
    " CHECK (kind IN ('page', 'download', 'view', 'device', 'tracked'));"
    "ALTER TABLE deliveries ADD COLUMN delivered_sha256 bytea"
    " CHECK (delivered_sha256 IS NULL OR length(delivered_sha256) = 32);"
    "ALTER TABLE deliveries ADD COLUMN delivered_size bigint;",
    /*
     * 3: the evidence log (docs/evidence.md), as in ledger_sqlite.c: a row
     * per leaf, the tiles of hashes above level 0, a checkpoint per batch.
     * Not partitioned: detaching an old month of deliveries never takes a
     * leaf out of the log, whose tree needs every one.
     */
    "CREATE TABLE log_entries ("
    " leaf bigint NOT NULL CHECK (leaf >= 0),"
    " delivery uuid,"
    " salt bytea NOT NULL CHECK (length(salt) = 32),"
    " commitment bytea NOT NULL CHECK (length(commitment) = 32),"
    " event text COLLATE \"C\" NOT NULL,"
    " PRIMARY KEY (leaf)"
    ");"
    "CREATE INDEX log_entries_delivery ON log_entries (delivery, leaf) WHERE delivery IS NOT NULL;"
    "CREATE INDEX log_entries_own ON log_entries (leaf) WHERE delivery IS NULL;"
    "CREATE TABLE log_tiles ("
    " level int2 NOT NULL CHECK (level BETWEEN 1 AND 7),"
    " idx bigint NOT NULL CHECK (idx >= 0),"
    " hashes bytea NOT NULL"
    "  CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),"
    " PRIMARY KEY (level, idx)"
    ");"
    "CREATE TABLE log_checkpoints ("
    " size bigint NOT NULL CHECK (size > 0),"
    " time_ms bigint NOT NULL,"
    " note text COLLATE \"C\" NOT NULL,"
    " PRIMARY KEY (size)"
    ");",
    /*
     * 4: no index by path, as in ledger_sqlite.c (step 5): rows arrive in
     * time order across all paths, so each batch dirtied an index page per
     * path it named. A report of one path reads the table.
     */
    "DROP INDEX IF EXISTS deliveries_path;",
    /*
     * 5: the rollups that the summary and the series read instead of the
     * rows, as in ledger_sqlite.c (step 7): rows by status and kind, rows
     * issued and confirmed per minute, the latest confirmation. Several
     * nodes write one ledger, and a binding or confirmation must move the
     * row from the status it had when it changed, which only the database
     * sees: statement triggers take each statement's net change from its
     * transition tables (the rows before and after) and add it, in the
     * statement, to the rollups' rows of the writing connection's own slot
     * (its backend's pid). No two open transactions write one slot, so a
     * writer never waits for another node's rollups, nor holds a row that
     * another waits for: the rows are counters kept in shards, and a
     * figure is the sum over the slots. A statement or savepoint rolled
     * back takes its additions with it. rollup_compact() folds the slots
     * of connections that are gone into slot 0, so the rollups stay as
     * small as the connections are few. Writers are held off while the
     * rollups are built from the rows.
     */
    "LOCK TABLE deliveries IN EXCLUSIVE MODE;"
    "CREATE TABLE rollup_status ("
    " status text COLLATE \"C\" NOT NULL, kind text COLLATE \"C\" NOT NULL, slot int4 NOT NULL,"
    " n bigint NOT NULL, PRIMARY KEY (status, kind, slot));"
    "CREATE TABLE rollup_minutes (minute bigint NOT NULL, slot int4 NOT NULL,"
    " issued bigint NOT NULL, confirmed bigint NOT NULL, corrupted bigint NOT NULL,"
    " PRIMARY KEY (minute, slot));"
    "CREATE TABLE rollup_latest (slot int4 NOT NULL PRIMARY KEY, confirmed_ms bigint NOT NULL);"
    "CREATE FUNCTION rollup_inserted() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    "  IF NOT EXISTS (SELECT 1 FROM rollup_new) THEN RETURN NULL; END IF;"
    "  INSERT INTO rollup_status AS r (status, kind, slot, n)"
    "   SELECT status, kind, pg_backend_pid(), count(*) FROM rollup_new GROUP BY status, kind"
    "   ORDER BY status, kind ON CONFLICT (status, kind, slot) DO UPDATE SET n = r.n + excluded.n;"
    "  INSERT INTO rollup_minutes AS r (minute, slot, issued, confirmed, corrupted)"
    "   SELECT m, pg_backend_pid(), sum(i), sum(c), sum(x) FROM ("
    "    SELECT issued_ms / 60000 AS m, 1 AS i, 0 AS c, 0 AS x FROM rollup_new"
    "    UNION ALL SELECT confirmed_ms / 60000, 0, (status = 'confirmed')::int,"
    "     (status = 'corrupted')::int FROM rollup_new"
    "     WHERE confirmed_ms IS NOT NULL AND status IN ('confirmed', 'corrupted')) s"
    "   GROUP BY m ORDER BY m ON CONFLICT (minute, slot) DO UPDATE SET"
    "   issued = r.issued + excluded.issued, confirmed = r.confirmed + excluded.confirmed,"
    "   corrupted = r.corrupted + excluded.corrupted;" ROLLUP_LATEST_FROM_NEW "  RETURN NULL;"
    " END $f$;"
    /* A binding or confirmation changes a row only from issued or bound:
     * never a final row, so the latest confirmation only grows. */
    "CREATE FUNCTION rollup_updated() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    "  IF NOT EXISTS (SELECT 1 FROM rollup_new) THEN RETURN NULL; END IF;"
    "  INSERT INTO rollup_status AS r (status, kind, slot, n)"
    "   SELECT status, kind, pg_backend_pid(), sum(n) FROM ("
    "    SELECT status, kind, 1 AS n FROM rollup_new"
    "    UNION ALL SELECT status, kind, -1 FROM rollup_old) s"
    "   GROUP BY status, kind HAVING sum(n) <> 0 ORDER BY status, kind"
    "   ON CONFLICT (status, kind, slot) DO UPDATE SET n = r.n + excluded.n;"
    "  INSERT INTO rollup_minutes AS r (minute, slot, issued, confirmed, corrupted)"
    "   SELECT m, pg_backend_pid(), sum(i), sum(c), sum(x) FROM ("
    "    SELECT confirmed_ms / 60000 AS m, 0 AS i, (status = 'confirmed')::int AS c,"
    "     (status = 'corrupted')::int AS x FROM rollup_new"
    "     WHERE confirmed_ms IS NOT NULL AND status IN ('confirmed', 'corrupted')"
    "    UNION ALL SELECT confirmed_ms / 60000, 0, -(status = 'confirmed')::int,"
    "     -(status = 'corrupted')::int FROM rollup_old"
    "     WHERE confirmed_ms IS NOT NULL AND status IN ('confirmed', 'corrupted')"
    "    UNION ALL SELECT issued_ms / 60000, 1, 0, 0 FROM rollup_new"
    "    UNION ALL SELECT issued_ms / 60000, -1, 0, 0 FROM rollup_old) s"
    "   GROUP BY m HAVING sum(i) <> 0 OR sum(c) <> 0 OR sum(x) <> 0 ORDER BY m"
    "   ON CONFLICT (minute, slot) DO UPDATE SET"
    "   issued = r.issued + excluded.issued, confirmed = r.confirmed + excluded.confirmed,"
    "   corrupted = r.corrupted + excluded.corrupted;" ROLLUP_LATEST_FROM_NEW "  RETURN NULL;"
    " END $f$;"
    /*
     * The slots of connections that are gone, folded into slot 0: one
     * folding at a time (an advisory lock), and a slot whose pid a new
     * connection took meanwhile is folded as it stands, which moves its
     * figures without changing their sum.
     */
    "CREATE FUNCTION rollup_compact() RETURNS void LANGUAGE plpgsql AS $f$"
    " BEGIN"
    "  PERFORM pg_advisory_xact_lock(8243103980183385092);"
    "  WITH gone AS (DELETE FROM rollup_status WHERE slot <> 0"
    "   AND slot NOT IN (SELECT pid FROM pg_stat_activity) RETURNING status, kind, n)"
    "  INSERT INTO rollup_status AS r (status, kind, slot, n)"
    "   SELECT status, kind, 0, sum(n) FROM gone GROUP BY status, kind ORDER BY status, kind"
    "   ON CONFLICT (status, kind, slot) DO UPDATE SET n = r.n + excluded.n;"
    "  WITH gone AS (DELETE FROM rollup_minutes WHERE slot <> 0"
    "   AND slot NOT IN (SELECT pid FROM pg_stat_activity)"
    "   RETURNING minute, issued, confirmed, corrupted)"
    "  INSERT INTO rollup_minutes AS r (minute, slot, issued, confirmed, corrupted)"
    "   SELECT minute, 0, sum(issued), sum(confirmed), sum(corrupted) FROM gone"
    "   GROUP BY minute ORDER BY minute ON CONFLICT (minute, slot) DO UPDATE SET"
    "   issued = r.issued + excluded.issued, confirmed = r.confirmed + excluded.confirmed,"
    "   corrupted = r.corrupted + excluded.corrupted;"
    "  DELETE FROM rollup_minutes WHERE slot = 0 AND issued = 0 AND confirmed = 0"
    "   AND corrupted = 0;"
    "  WITH gone AS (DELETE FROM rollup_latest WHERE slot <> 0"
    "   AND slot NOT IN (SELECT pid FROM pg_stat_activity) RETURNING confirmed_ms)"
    "  INSERT INTO rollup_latest AS r (slot, confirmed_ms)"
    "   SELECT 0, max(confirmed_ms) FROM gone HAVING max(confirmed_ms) IS NOT NULL"
    "   ON CONFLICT (slot) DO UPDATE SET confirmed_ms = greatest(r.confirmed_ms,"
    " excluded.confirmed_ms);"
    " END $f$;"
    /*
     * Detaching a month (docs/operations.md) takes its rows out of the
     * rollups in the same transaction: writers wait while its rows are
     * counted, so that none changes between the count and the detach; the
     * latest confirmation is then the latest of the rows left, with no
     * rollup_compact() folding one in meanwhile.
     */
    "CREATE FUNCTION rollup_detach(month regclass) RETURNS void LANGUAGE plpgsql AS $f$"
    " BEGIN"
    "  PERFORM pg_advisory_xact_lock(8243103980183385092);"
    "  LOCK TABLE deliveries IN SHARE ROW EXCLUSIVE MODE;"
    "  IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = month"
    "   AND inhparent = 'deliveries'::regclass) THEN"
    "   RAISE EXCEPTION '% is not a partition of deliveries', month;"
    "  END IF;"
    "  EXECUTE format('INSERT INTO rollup_status AS r (status, kind, slot, n)"
    "   SELECT status, kind, pg_backend_pid(), -count(*) FROM %s GROUP BY status, kind"
    "   ORDER BY status, kind"
    "   ON CONFLICT (status, kind, slot) DO UPDATE SET n = r.n + excluded.n', month);"
    "  EXECUTE format('INSERT INTO rollup_minutes AS r (minute, slot, issued, confirmed,"
    " corrupted)"
    "   SELECT m, pg_backend_pid(), -sum(i), -sum(c), -sum(x) FROM ("
    "    SELECT issued_ms / 60000 AS m, 1 AS i, 0 AS c, 0 AS x FROM %s"
    "    UNION ALL SELECT confirmed_ms / 60000, 0, (status = ''confirmed'')::int,"
    "     (status = ''corrupted'')::int FROM %s WHERE confirmed_ms IS NOT NULL"
    "     AND status IN (''confirmed'', ''corrupted'')) s GROUP BY m ORDER BY m"
    "   ON CONFLICT (minute, slot) DO UPDATE SET issued = r.issued + excluded.issued,"
    "   confirmed = r.confirmed + excluded.confirmed,"
    "   corrupted = r.corrupted + excluded.corrupted', month, month);"
    "  EXECUTE format('ALTER TABLE deliveries DETACH PARTITION %s', month);"
    "  DELETE FROM rollup_latest;"
    "  INSERT INTO rollup_latest (slot, confirmed_ms) SELECT 0, max(confirmed_ms)"
    "   FROM deliveries WHERE status IN ('confirmed', 'corrupted')"
    "   HAVING max(confirmed_ms) IS NOT NULL;"
    " END $f$;"
    "CREATE TRIGGER deliveries_rollup_inserted AFTER INSERT ON deliveries"
    " REFERENCING NEW TABLE AS rollup_new FOR EACH STATEMENT EXECUTE FUNCTION rollup_inserted();"
    "CREATE TRIGGER deliveries_rollup_updated AFTER UPDATE ON deliveries"
    " REFERENCING OLD TABLE AS rollup_old NEW TABLE AS rollup_new"
    " FOR EACH STATEMENT EXECUTE FUNCTION rollup_updated();"
    "INSERT INTO rollup_status (status, kind, slot, n)"
    " SELECT status, kind, 0, count(*) FROM deliveries GROUP BY status, kind;"
    "INSERT INTO rollup_minutes (minute, slot, issued, confirmed, corrupted)"
    " SELECT m, 0, sum(i), sum(c), sum(x) FROM ("
    "  SELECT issued_ms / 60000 AS m, 1 AS i, 0 AS c, 0 AS x FROM deliveries"
    "  UNION ALL SELECT confirmed_ms / 60000, 0, (status = 'confirmed')::int,"
    "  (status = 'corrupted')::int FROM deliveries"
    "  WHERE confirmed_ms IS NOT NULL AND status IN ('confirmed', 'corrupted')) s GROUP BY m;"
    "INSERT INTO rollup_latest (slot, confirmed_ms) SELECT 0, max(confirmed_ms) FROM deliveries"
    " WHERE status IN ('confirmed', 'corrupted') HAVING max(confirmed_ms) IS NOT NULL;",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* rollup_compact() and rollup_detach() take this advisory lock by its number. */
#define ROLLUP_COMPACT_SQL "SELECT rollup_compact()"
_Static_assert(PG_LOCK_ROLLUP == INT64_C(8243103980183385092),
               "rollup_compact() names PG_LOCK_ROLLUP");

/* Column order of every INSERT and SELECT, as in ledger_sqlite.c. */
#define COLUMNS                                                                                    \
    "id, path, sha256, size, server, client_addr, user_agent, issued_ms, status, client, "         \
    "bound_addr, bound_ms, confirmed_ms, confirm_addr, received_sha256, received_size, "           \
    "received_at_ms, receipt, issued_node, bound_node, confirmed_node, kind, delivered_sha256, "   \
    "delivered_size"
#define NULL_COLUMNS                                                                               \
    "NULL::uuid, NULL::text, NULL::bytea, NULL::int8, NULL::text, NULL::text, NULL::text, "        \
    "NULL::int8, NULL::text, NULL::text, NULL::text, NULL::int8, NULL::int8, NULL::text, "         \
    "NULL::bytea, NULL::int8, NULL::int8, NULL::text, NULL::text, NULL::text, NULL::text, "        \
    "NULL::text, NULL::bytea, NULL::int8"

/* The parameters of the write statement: the kind, then the columns. */
enum param {
    P_KIND,
    P_ID,
    P_PATH,
    P_SHA256,
    P_SIZE,
    P_SERVER,
    P_CLIENT_ADDR,
    P_USER_AGENT,
    P_ISSUED_MS,
    P_STATUS,
    P_CLIENT,
    P_BOUND_ADDR,
    P_BOUND_MS,
    P_CONFIRMED_MS,
    P_CONFIRM_ADDR,
    P_RECEIVED_SHA256,
    P_RECEIVED_SIZE,
    P_RECEIVED_AT_MS,
    P_RECEIPT,
    P_ISSUED_NODE,
    P_BOUND_NODE,
    P_CONFIRMED_NODE,
    P_DELIVERY_KIND,
    P_DELIVERED_SHA256,
    P_DELIVERED_SIZE,
    /* A merged row's issuance's binding (NULL in other rows). */
    P_ISSUE_CLIENT,
    P_ISSUE_BOUND_ADDR,
    P_ISSUE_BOUND_MS,
    P_ISSUE_BOUND_NODE,
    P_WANT_INSERTS, /* not an array: whether inserted rows are answered too */
    PARAM_COUNT,
};
#define ARRAY_PARAMS P_WANT_INSERTS

static const unsigned param_elem_oid[ARRAY_PARAMS] = {
    [P_KIND] = OID_INT2,
    [P_ID] = OID_UUID,
    [P_PATH] = OID_TEXT,
    [P_SHA256] = OID_BYTEA,
    [P_SIZE] = OID_INT8,
    [P_SERVER] = OID_TEXT,
    [P_CLIENT_ADDR] = OID_TEXT,
    [P_USER_AGENT] = OID_TEXT,
    [P_ISSUED_MS] = OID_INT8,
    [P_STATUS] = OID_TEXT,
    [P_CLIENT] = OID_TEXT,
    [P_BOUND_ADDR] = OID_TEXT,
    [P_BOUND_MS] = OID_INT8,
    [P_CONFIRMED_MS] = OID_INT8,
    [P_CONFIRM_ADDR] = OID_TEXT,
    [P_RECEIVED_SHA256] = OID_BYTEA,
    [P_RECEIVED_SIZE] = OID_INT8,
    [P_RECEIVED_AT_MS] = OID_INT8,
    [P_RECEIPT] = OID_TEXT,
    [P_ISSUED_NODE] = OID_TEXT,
    [P_BOUND_NODE] = OID_TEXT,
    [P_CONFIRMED_NODE] = OID_TEXT,
    [P_DELIVERY_KIND] = OID_TEXT,
    [P_DELIVERED_SHA256] = OID_BYTEA,
    [P_DELIVERED_SIZE] = OID_INT8,
    [P_ISSUE_CLIENT] = OID_TEXT,
    [P_ISSUE_BOUND_ADDR] = OID_TEXT,
    [P_ISSUE_BOUND_MS] = OID_INT8,
    [P_ISSUE_BOUND_NODE] = OID_TEXT,
};

/* Every parameter and every result in the binary format. */
static const int binary_formats[PARAM_COUNT] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                                1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
_Static_assert(PARAM_COUNT == 30, "binary_formats has one 1 per parameter");

/*
 * How a round's row is written: insert or nothing, a conditional upsert,
 * or an issuance merged with the binding or confirmation that follows it in
 * the batch (merge_pairs()): inserted as the upsert would have left the
 * row, or, when the row was there already (the issuance changes nothing
 * then), upserted as the later event alone.
 */
enum write_kind { WRITE_INSERT = 0, WRITE_UPSERT = 1, WRITE_MERGED = 2 };

/*
 * One round: $1..$29 are arrays (kind, the columns, a merged row's
 * issuance's binding), $30 says whether inserted rows are answered (their
 * ord only). Upserted rows, and merged rows either way, are answered with
 * the row they made, for the results of confirmations, and whether they
 * were inserted. Rows are written in ID order, so that two nodes lock
 * common rows in one order.
 *
 * A merged row is inserted with the values the issuance's insert and the
 * later event's update would have left (the update's CASE for the binding,
 * with the issuance's row as d); where the row existed already, the
 * insert does nothing and the upsert takes it, as the later event alone,
 * exactly as two rounds would have.
 */
#define MERGED_KEEPS_BINDING                                                                       \
    "write_kind = 2 AND NOT (status = 'bound' OR (bound_ms IS NOT NULL"                            \
    " AND issue_client IS DISTINCT FROM client))"
#define RETURNED_COLUMNS                                                                           \
    "d.id, d.path, d.sha256, d.size, d.server, d.client_addr, d.user_agent, d.issued_ms,"          \
    " d.status, d.client, d.bound_addr, d.bound_ms, d.confirmed_ms, d.confirm_addr,"               \
    " d.received_sha256, d.received_size, d.received_at_ms, d.receipt, d.issued_node,"             \
    " d.bound_node, d.confirmed_node, d.kind, d.delivered_sha256, d.delivered_size"
#define WRITE_SQL                                                                                  \
    "WITH ev AS (SELECT * FROM unnest($1::int2[], $2::uuid[], $3::text[], $4::bytea[],"            \
    "   $5::int8[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::text[], $11::text[],"     \
    "   $12::text[], $13::int8[], $14::int8[], $15::text[], $16::bytea[], $17::int8[],"            \
    "   $18::int8[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[],"             \
    "   $24::bytea[], $25::int8[], $26::text[], $27::text[], $28::int8[], $29::text[])"            \
    "   WITH ORDINALITY AS e(write_kind, " COLUMNS ", issue_client, issue_bound_addr,"             \
    "   issue_bound_ms, issue_bound_node, ord)),"                                                  \
    " ins AS (INSERT INTO deliveries AS d (" COLUMNS ") SELECT id, path, sha256, size, server,"    \
    "   client_addr, user_agent, issued_ms, status, client,"                                       \
    "   CASE WHEN " MERGED_KEEPS_BINDING " THEN issue_bound_addr ELSE bound_addr END,"             \
    "   CASE WHEN " MERGED_KEEPS_BINDING " THEN issue_bound_ms ELSE bound_ms END,"                 \
    "   confirmed_ms, confirm_addr, received_sha256, received_size, received_at_ms, receipt,"      \
    "   issued_node,"                                                                              \
    "   CASE WHEN " MERGED_KEEPS_BINDING " THEN issue_bound_node ELSE bound_node END,"             \
    "   confirmed_node, kind, delivered_sha256, delivered_size"                                    \
    " FROM ev WHERE write_kind <> 1"                                                               \
    "   ORDER BY id ON CONFLICT (id) DO NOTHING RETURNING " RETURNED_COLUMNS "),"                  \
    " ups AS (INSERT INTO deliveries AS d (" COLUMNS ") SELECT " COLUMNS                           \
    " FROM ev WHERE write_kind = 1 OR (write_kind = 2 AND id NOT IN (SELECT id FROM ins))"         \
    "   ORDER BY id ON CONFLICT (id) DO UPDATE SET status = excluded.status,"                      \
    "   client = excluded.client,"                                                                 \
    "   bound_addr = CASE WHEN excluded.status = 'bound' OR (excluded.bound_ms IS NOT NULL"        \
    "     AND d.client IS DISTINCT FROM excluded.client) THEN excluded.bound_addr"                 \
    "     ELSE d.bound_addr END,"                                                                  \
    "   bound_ms = CASE WHEN excluded.status = 'bound' OR (excluded.bound_ms IS NOT NULL"          \
    "     AND d.client IS DISTINCT FROM excluded.client) THEN excluded.bound_ms"                   \
    "     ELSE d.bound_ms END,"                                                                    \
    "   bound_node = CASE WHEN excluded.status = 'bound' OR (excluded.bound_ms IS NOT NULL"        \
    "     AND d.client IS DISTINCT FROM excluded.client) THEN excluded.bound_node"                 \
    "     ELSE d.bound_node END,"                                                                  \
    "   confirmed_node = excluded.confirmed_node,"                                                 \
    "   confirmed_ms = excluded.confirmed_ms, confirm_addr = excluded.confirm_addr,"               \
    "   received_sha256 = excluded.received_sha256, received_size = excluded.received_size,"       \
    "   received_at_ms = excluded.received_at_ms, receipt = excluded.receipt"                      \
    "   WHERE (excluded.status = 'bound' AND d.status = 'issued')"                                 \
    "     OR (excluded.status IN ('confirmed', 'corrupted') AND d.status IN ('issued', 'bound'))"  \
    "   RETURNING " RETURNED_COLUMNS ")"                                                           \
    " SELECT ev.ord, false, u.* FROM ups u JOIN ev ON ev.id = u.id"                                \
    " UNION ALL SELECT ev.ord, true, i.* FROM ins i JOIN ev ON ev.id = i.id"                       \
    "   WHERE ev.write_kind = 2"                                                                   \
    " UNION ALL SELECT ev.ord, true, " NULL_COLUMNS " FROM ev WHERE $30::bool"                     \
    "   AND ev.write_kind = 0 AND ev.id IN (SELECT id FROM ins)"

#define GET_SQL  "SELECT " COLUMNS " FROM deliveries WHERE id = $1::uuid"
#define GETS_SQL "SELECT " COLUMNS " FROM deliveries WHERE id = ANY($1::uuid[])"

/* The evidence log's part of a write: its lock, the stored tree's size
 * (read after the lock, in a statement of its own), and its rows. */
#define LOG_LOCK_SQL "SELECT pg_advisory_xact_lock(8243103980183385091)" /* PG_LOCK_LOG */
#define LOG_HEAD_SQL "SELECT coalesce(max(size), 0)::int8 FROM log_checkpoints"
_Static_assert(PG_LOCK_LOG == INT64_C(8243103980183385091), "LOG_LOCK_SQL names PG_LOCK_LOG");
#define LOG_STORE_ENTRIES_SQL                                                                      \
    "INSERT INTO log_entries (leaf, delivery, salt, commitment, event)"                            \
    " SELECT * FROM unnest($1::int8[], $2::uuid[], $3::bytea[], $4::bytea[], $5::text[])"
#define LOG_STORE_TILE_SQL                                                                         \
    "INSERT INTO log_tiles (level, idx, hashes) VALUES ($1::int2, $2::int8, $3::bytea)"            \
    " ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes"
#define LOG_STORE_CHECKPOINT_SQL                                                                   \
    "INSERT INTO log_checkpoints (size, time_ms, note) VALUES ($1::int8, $2::int8, $3::text)"

/*
 * Prepared once per connection (and again after a reset). Every statement
 * of a batch is here: parsing and planning them again for each batch cost
 * the server more than the small batches' rows in the log's statements.
 */
static const struct {
    const char *name;
    const char *sql;
    bool writer; /* prepared on writable handles only */
} prepared[] = {
    {"ledger_write", WRITE_SQL, true},
    {"ledger_get", GET_SQL, false},
    {"ledger_gets", GETS_SQL, false},
    {"ledger_log_lock", LOG_LOCK_SQL, true},
    {"ledger_log_head", LOG_HEAD_SQL, true},
    {"ledger_log_entries", LOG_STORE_ENTRIES_SQL, true},
    {"ledger_log_tile", LOG_STORE_TILE_SQL, true},
    {"ledger_log_checkpoint", LOG_STORE_CHECKPOINT_SQL, true},
};

/* Rows by status and kind and the latest confirmation from the rollups, the
 * issue times from the ends of the issued index; no rows: no counts. */
#define SUMMARY_SQL                                                                                \
    "SELECT status, kind, n, (SELECT min(issued_ms) FROM deliveries),"                             \
    " (SELECT max(issued_ms) FROM deliveries), (SELECT max(confirmed_ms) FROM rollup_latest)"      \
    " FROM (SELECT status, kind, sum(n)::int8 AS n FROM rollup_status GROUP BY status, kind) r"    \
    " WHERE n <> 0"

/* $1 since, $2 until (exclusive), $3 bucket width, in whole minutes. */
#define SERIES_MINUTES_SQL                                                                         \
    "SELECT (minute - $1::int8) / $3::int8, sum(issued)::int8, sum(confirmed)::int8,"              \
    " sum(corrupted)::int8 FROM rollup_minutes WHERE minute >= $1::int8 AND minute < $2::int8"     \
    " GROUP BY 1 ORDER BY 1"

/*
 * The rollups against a recount of the rows, as in ledger_sqlite.c: each
 * difference as what differs, the recount and the rollup's figure.
 */
#define ROLLUP_CHECK_SQL                                                                           \
    "WITH c AS (SELECT status, kind, count(*) AS n FROM deliveries GROUP BY status, kind),"        \
    " r AS (SELECT status, kind, sum(n) AS n FROM rollup_status GROUP BY status, kind"             \
    "  HAVING sum(n) <> 0),"                                                                       \
    " cm AS (SELECT m, sum(i) || '/' || sum(c) || '/' || sum(x) AS v FROM ("                       \
    "  SELECT issued_ms / 60000 AS m, 1 AS i, 0 AS c, 0 AS x FROM deliveries"                      \
    "  UNION ALL SELECT confirmed_ms / 60000, 0, (status = 'confirmed')::int,"                     \
    "  (status = 'corrupted')::int FROM deliveries"                                                \
    "  WHERE confirmed_ms IS NOT NULL AND status IN ('confirmed', 'corrupted')) s GROUP BY m),"    \
    " rm AS (SELECT minute AS m, sum(issued) || '/' || sum(confirmed) || '/' || sum(corrupted)"    \
    "  AS v FROM rollup_minutes GROUP BY minute"                                                   \
    "  HAVING sum(issued) <> 0 OR sum(confirmed) <> 0 OR sum(corrupted) <> 0)"                     \
    " SELECT 'deliveries ' || coalesce(c.status, r.status) || ' ' || coalesce(c.kind, r.kind),"    \
    "  coalesce(c.n, 0)::text, r.n::text"                                                          \
    " FROM c FULL JOIN r ON r.status = c.status AND r.kind = c.kind"                               \
    " WHERE c.n IS DISTINCT FROM r.n"                                                              \
    " UNION ALL SELECT 'minute ' || coalesce(cm.m, rm.m) || ' issued/confirmed/corrupted',"        \
    "  cm.v, rm.v FROM cm FULL JOIN rm ON rm.m = cm.m WHERE cm.v IS DISTINCT FROM rm.v"            \
    " UNION ALL SELECT 'latest confirmation', c::text, r::text FROM ("                             \
    "  SELECT (SELECT max(confirmed_ms) FROM deliveries"                                           \
    "   WHERE status IN ('confirmed', 'corrupted')) AS c,"                                         \
    "  (SELECT max(confirmed_ms) FROM rollup_latest) AS r) t WHERE c IS DISTINCT FROM r"

/* Nearest-rank percentiles in integers, as in ledger_sqlite.c. */
#define CONTENT_STATS_SQL                                                                          \
    "WITH c AS (SELECT path, sha256, max(size) AS size, count(*) AS n,"                            \
    "   count(*) FILTER (WHERE status = 'confirmed') AS confirmed,"                                \
    "   count(*) FILTER (WHERE status = 'corrupted') AS corrupted,"                                \
    "   count(*) FILTER (WHERE status IN ('issued', 'bound')) AS pending,"                         \
    "   min(issued_ms) AS first_ms, max(issued_ms) AS last_ms"                                     \
    "  FROM deliveries GROUP BY path, sha256),"                                                    \
    " t AS (SELECT path, sha256, confirmed_ms - issued_ms AS d,"                                   \
    "   row_number() OVER (PARTITION BY path, sha256 ORDER BY confirmed_ms - issued_ms) AS rn,"    \
    "   count(*) OVER (PARTITION BY path, sha256) AS k"                                            \
    "  FROM deliveries"                                                                            \
    "  WHERE status IN ('confirmed', 'corrupted') AND confirmed_ms IS NOT NULL),"                  \
    " p AS (SELECT path, sha256, max(CASE WHEN rn = (k + 1) / 2 THEN d END) AS median,"            \
    "   max(CASE WHEN rn = (95 * k + 99) / 100 THEN d END) AS p95"                                 \
    "  FROM t GROUP BY path, sha256)"                                                              \
    " SELECT c.path, c.sha256, c.size, c.n, c.confirmed, c.corrupted, c.pending, c.first_ms,"      \
    "  c.last_ms, p.median, p.p95"                                                                 \
    " FROM c LEFT JOIN p ON p.path = c.path AND p.sha256 = c.sha256"                               \
    " ORDER BY c.path, c.first_ms, c.sha256"

#define CLIENT_STATS_SQL                                                                           \
    "SELECT client, count(*), count(*) FILTER (WHERE status = 'confirmed'),"                       \
    " count(*) FILTER (WHERE status = 'corrupted'),"                                               \
    " count(*) FILTER (WHERE status IN ('issued', 'bound')),"                                      \
    " max(greatest(issued_ms, coalesce(bound_ms, 0), coalesce(confirmed_ms, 0))) AS seen"          \
    " FROM deliveries WHERE client IS NOT NULL GROUP BY client ORDER BY seen DESC, client"

/* $1 since, $2 until (exclusive), $3 bucket width. */
#define SERIES_SQL                                                                                 \
    "SELECT b, sum(d)::int8, sum(c)::int8, sum(x)::int8 FROM ("                                    \
    " SELECT (issued_ms - $1::int8) / $3::int8 AS b, 1 AS d, 0 AS c, 0 AS x FROM deliveries"       \
    "  WHERE issued_ms >= $1::int8 AND issued_ms < $2::int8"                                       \
    " UNION ALL"                                                                                   \
    " SELECT (confirmed_ms - $1::int8) / $3::int8, 0, (status = 'confirmed')::int,"                \
    "  (status = 'corrupted')::int"                                                                \
    "  FROM deliveries WHERE confirmed_ms >= $1::int8 AND confirmed_ms < $2::int8"                 \
    ") s GROUP BY b ORDER BY b"

/* ---- the handle ---- */

typedef struct pg_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} pg_buf;

/* One event of the transaction being written. */
typedef struct pg_item {
    const ledger_event *event;
    ledger_result *result; /* may be NULL */
    size_t entry;          /* its ledger_batch_entry, for write() */
    bool answered;         /* its round's statement returned its row */
    bool changed;          /* ... because the event changed it (not answer_unchanged()) */
} pg_item;

typedef struct pg_round {
    pg_buf col[ARRAY_PARAMS]; /* binary arrays, the header written last */
    bool has_null[ARRAY_PARAMS];
    size_t n;
    size_t *items;    /* the round's events, in array order */
    size_t *partners; /* a merged row's issuance (else NO_PARTNER), in array order */
    size_t items_cap;
} pg_round;

#define NO_PARTNER SIZE_MAX

/* ID -> how many events of the transaction had it (its next round). */
typedef struct pg_slot {
    uint8_t id[16];
    uint32_t generation;
    uint32_t count;
    size_t first; /* merge_pairs(): the entry of the ID's first event */
} pg_slot;

typedef struct ledger_pg {
    ledger base; /* first: ledger.c dispatches through it */
    PGconn *conn;
    bool read_only;
    bool broken;         /* a timeout left the connection unusable: reset it */
    bool in_txn;         /* begin() was called */
    bool cursor_open;    /* a cursor holds the connection's transaction */
    int lock_timeout_ms; /* ledger_set_lock_timeout()'s, kept across resets; -1: none */
    char where[PG_WHERE_MAX];
    char err[LEDGER_ERR_MAX];
    char sqlstate[6];

    pg_item *items;
    size_t item_count;
    size_t item_cap;
    pg_round *rounds;
    size_t round_count; /* in use */
    size_t round_cap;   /* allocated (kept between batches) */
    pg_slot *slots;
    size_t slot_cap; /* a power of two */
    size_t slot_used;
    uint32_t generation;
    pg_buf scratch; /* UTF-8 repairs */
    /* write(): each entry's ID, and its merge (merge_pairs()). */
    uint8_t (*entry_ids)[16];
    size_t *merge;
    size_t entry_cap;

    /* The evidence log's part of a write (ledger_write_logged()). */
    bool logging;      /* the write has a hook: inserts answered, no COMMIT */
    bool log_locked;   /* the transaction holds PG_LOCK_LOG */
    uint64_t log_head; /* the stored tree's size, read under the lock */
    pg_buf log_col[5]; /* the entries' arrays */
    bool log_pipeline; /* log_store() sends into the open pipeline (commit_logged()) */
    size_t log_sent;   /* statements it sent there */
} ledger_pg;

static ledger_pg *impl(ledger *lg)
{
    return (ledger_pg *)lg;
}

static void fail(ledger_pg *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(ledger_pg *lg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lg->err, sizeof lg->err, fmt, ap);
    va_end(ap);
}

/* libpq messages end in newlines and may span lines: one line for logs,
 * its lines joined with "; ". */
static void one_line(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    char *out = s;
    for (const char *p = s; *p; p++) {
        if (*p == '\n') {
            while (p[1] == '\t' || p[1] == ' ' || p[1] == '\n')
                p++;
            if (out + 2 <= p + 1) { /* "; " fits where the whitespace was */
                *out++ = ';';
                *out++ = ' ';
            } else {
                *out++ = ' ';
            }
        } else {
            *out++ = *p == '\t' ? ' ' : *p;
        }
    }
    *out = '\0';
}

static void fail_conn(ledger_pg *lg, const char *what)
{
    char msg[LEDGER_ERR_MAX];
    lg->sqlstate[0] = '\0'; /* not the server's answer: no SQLSTATE */
    snprintf(msg, sizeof msg, "%s", lg->conn != NULL ? PQerrorMessage(lg->conn) : "no connection");
    one_line(msg);
    fail(lg, "ledger %s: %s", what, msg[0] ? msg : "the connection failed");
}

/* Records a failed result's message and SQLSTATE. */
static void fail_result(ledger_pg *lg, const char *what, const PGresult *res)
{
    char msg[LEDGER_ERR_MAX];
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(lg->sqlstate, sizeof lg->sqlstate, "%s", state != NULL ? state : "");
    if (primary != NULL) {
        snprintf(msg, sizeof msg, "%s", primary);
        one_line(msg);
        fail(lg, "ledger %s: %s (SQLSTATE %s)", what, msg, lg->sqlstate);
        return;
    }
    /* No answer from the server: the connection's own message. */
    snprintf(msg, sizeof msg, "%s", lg->conn != NULL ? PQerrorMessage(lg->conn) : "");
    one_line(msg);
    fail(lg, "ledger %s: %s", what, msg[0] ? msg : "the statement failed");
}

/* ---- buffers and binary values ---- */

static int buf_reserve(pg_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    uint8_t *grown = realloc(b->data, cap);
    if (grown == NULL)
        return -1;
    b->data = grown;
    b->cap = cap;
    return 0;
}

static int buf_put(pg_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return -1;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* An array element: its length (-1: NULL), then its bytes. */
static int elem_bytes(pg_buf *b, const void *p, size_t n)
{
    uint8_t len[4];
    if (n > INT32_MAX)
        return -1;
    put_be32(len, (uint32_t)n);
    return buf_put(b, len, 4) | buf_put(b, p, n);
}

static int elem_null(pg_buf *b)
{
    uint8_t len[4];
    put_be32(len, UINT32_MAX);
    return buf_put(b, len, 4);
}

static int elem_i64(pg_buf *b, uint64_t v)
{
    uint8_t be[8];
    put_be64(be, v);
    return elem_bytes(b, be, 8);
}

static int elem_i16(pg_buf *b, uint16_t v)
{
    uint8_t be[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return elem_bytes(b, be, 2);
}

/*
 * Text must be valid UTF-8 in PostgreSQL; a user agent is whatever a client
 * sent. Invalid bytes become U+FFFD, which is what a JSON export shows of
 * them either way.
 */
static int elem_text(ledger_pg *lg, pg_buf *b, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (unicode_valid(s, n))
        return elem_bytes(b, s, n);
    pg_buf *fix = &lg->scratch;
    fix->len = 0;
    if (n > SIZE_MAX / 3 || buf_reserve(fix, 3 * n) != 0)
        return -1;
    fix->len = unicode_repair(s, n, (char *)fix->data);
    return elem_bytes(b, fix->data, fix->len);
}

/* The parsed bytes of an ID: 36 lowercase characters, 8-4-4-4-12. */
static bool id_parse(const char *text, uint8_t out[16])
{
    static const int8_t hexval[256] = {
        ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
        ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
        ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    };
    if (text == NULL || strnlen(text, UUID7_STR_LEN + 1) != UUID7_STR_LEN)
        return false;
    size_t k = 0;
    for (size_t i = 0; i < UUID7_STR_LEN;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return false;
            i++;
            continue;
        }
        int hi = hexval[(unsigned char)text[i]];
        int lo = hexval[(unsigned char)text[i + 1]];
        if (hi == 0 || lo == 0)
            return false;
        out[k++] = (uint8_t)((hi - 1) << 4 | (lo - 1));
        i += 2;
    }
    return true;
}

static void id_format(const uint8_t id[16], char out[UUID7_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[id[i] >> 4];
        out[k++] = hex[id[i] & 15];
    }
    out[k] = '\0';
}

/* ---- reading binary results ---- */

static bool is_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) != 0;
}

static uint64_t get_i64(const PGresult *res, int row, int col)
{
    if (is_null(res, row, col) || PQgetlength(res, row, col) != 8)
        return 0; /* NULL reads as 0: "none" */
    return get_be64((const uint8_t *)PQgetvalue(res, row, col));
}

static uint64_t get_count(const PGresult *res, int row, int col)
{
    uint64_t v = get_i64(res, row, col);
    return v > (uint64_t)INT64_MAX ? 0 : v; /* never negative */
}

/*
 * A text column into dst (cap bytes). The ledger stores text that was no
 * UTF-8 with U+FFFD for each bad byte (elem_text()), up to three times the
 * bytes of the row's field: such a text that does not fit is read with each
 * U+FFFD as the single byte 0xFF, never UTF-8, which every reader repairs
 * back to U+FFFD (as it does SQLite's stored bytes), so that it fits as the
 * field it was written from did.
 */
static void get_text(const PGresult *res, int row, int col, char *dst, size_t cap)
{
    size_t n = is_null(res, row, col) ? 0 : (size_t)PQgetlength(res, row, col);
    const char *s = PQgetvalue(res, row, col);
    if (n < cap) {
        if (n > 0)
            memcpy(dst, s, n);
        dst[n] = '\0';
        return;
    }
    if (unicode_fold_repaired(s, n, dst, cap) == SIZE_MAX) {
        /* Not written by this ledger: cut, as any text too long is. */
        memcpy(dst, s, cap - 1);
        dst[cap - 1] = '\0';
    }
}

static bool get_sha256(const PGresult *res, int row, int col, uint8_t out[32])
{
    if (is_null(res, row, col) || PQgetlength(res, row, col) != 32)
        return false;
    memcpy(out, PQgetvalue(res, row, col), 32);
    return true;
}

/* A row of COLUMNS from column first on. */
static int read_row(ledger_pg *lg, const PGresult *res, int row, int first, ledger_delivery *out)
{
    char status[16];
    memset(out, 0, sizeof *out);
    if (is_null(res, row, first) || PQgetlength(res, row, first) != 16) {
        fail(lg, "ledger row: no ID");
        return -1;
    }
    id_format((const uint8_t *)PQgetvalue(res, row, first), out->id);
    get_text(res, row, first + 1, out->path, sizeof out->path);
    get_sha256(res, row, first + 2, out->sha256);
    out->size = get_i64(res, row, first + 3);
    get_text(res, row, first + 4, out->server, sizeof out->server);
    get_text(res, row, first + 5, out->client_addr, sizeof out->client_addr);
    get_text(res, row, first + 6, out->user_agent, sizeof out->user_agent);
    out->issued_ms = get_i64(res, row, first + 7);
    get_text(res, row, first + 8, status, sizeof status);
    if (ledger_status_parse(status, &out->status) != 0) {
        fail(lg, "ledger row %s: unknown status '%s'", out->id, status);
        return -1;
    }
    get_text(res, row, first + 9, out->client, sizeof out->client);
    get_text(res, row, first + 10, out->bound_addr, sizeof out->bound_addr);
    out->bound_ms = get_i64(res, row, first + 11);
    out->confirmed_ms = get_i64(res, row, first + 12);
    get_text(res, row, first + 13, out->confirm_addr, sizeof out->confirm_addr);
    out->received_has_sha256 = get_sha256(res, row, first + 14, out->received_sha256);
    out->received_size = get_i64(res, row, first + 15);
    out->received_at_ms = get_i64(res, row, first + 16);
    get_text(res, row, first + 17, out->receipt, sizeof out->receipt);
    get_text(res, row, first + 18, out->issued_node, sizeof out->issued_node);
    get_text(res, row, first + 19, out->bound_node, sizeof out->bound_node);
    get_text(res, row, first + 20, out->confirmed_node, sizeof out->confirmed_node);
    char kind[16];
    get_text(res, row, first + 21, kind, sizeof kind);
    if (ledger_kind_parse(kind, &out->kind) != 0) {
        fail(lg, "ledger row %s: unknown kind '%s'", out->id, kind);
        return -1;
    }
    if (get_sha256(res, row, first + 22, out->delivered_sha256)) {
        out->delivered_size = get_i64(res, row, first + 23);
    } else {
        memcpy(out->delivered_sha256, out->sha256, 32);
        out->delivered_size = out->size;
    }
    return 0;
}

/* ---- running statements ---- */

/*
 * Waits until the connection has a whole result to give, or the deadline
 * passes (the connection is then given up: the next use resets it).
 */
static int wait_ready(ledger_pg *lg, double deadline)
{
    while (PQisBusy(lg->conn)) {
        if (PQsocket(lg->conn) < 0) {
            fail_conn(lg, "connection (receiving)");
            lg->broken = true;
            return -1;
        }
        double left = deadline - (double)clock_mono_ms();
        if (left <= 0) {
            fail(lg, "ledger: no answer from PostgreSQL within %d s", PG_IO_TIMEOUT_MS / 1000);
            lg->broken = true;
            return -1;
        }
        struct pollfd pfd = {.fd = PQsocket(lg->conn), .events = POLLIN};
        int rc = poll(&pfd, 1, left > 1000 ? 1000 : (int)left + 1);
        if (rc < 0 && errno != EINTR) {
            fail(lg, "ledger: poll: %s", strerror(errno));
            lg->broken = true;
            return -1;
        }
        if (rc > 0 && PQconsumeInput(lg->conn) == 0) {
            fail_conn(lg, "connection (receiving)");
            return -1;
        }
    }
    return 0;
}

/* Sends what libpq holds, reading meanwhile so that the server never
 * blocks on us while we block on it. */
static int flush_all(ledger_pg *lg, double deadline)
{
    for (;;) {
        int rc = PQflush(lg->conn);
        if (rc == 0)
            return 0;
        if (rc < 0 || PQsocket(lg->conn) < 0) {
            fail_conn(lg, "connection (sending)");
            lg->broken = true;
            return -1;
        }
        double left = deadline - (double)clock_mono_ms();
        if (left <= 0) {
            fail(lg, "ledger: PostgreSQL took nothing for %d s", PG_IO_TIMEOUT_MS / 1000);
            lg->broken = true;
            return -1;
        }
        struct pollfd pfd = {.fd = PQsocket(lg->conn), .events = POLLIN | POLLOUT};
        int prc = poll(&pfd, 1, left > 1000 ? 1000 : (int)left + 1);
        if (prc < 0 && errno != EINTR) {
            fail(lg, "ledger: poll: %s", strerror(errno));
            lg->broken = true;
            return -1;
        }
        if (prc > 0 && (pfd.revents & POLLIN) && PQconsumeInput(lg->conn) == 0) {
            fail_conn(lg, "connection (receiving)");
            return -1;
        }
    }
}

/* The next result, waiting at most until the deadline; NULL: none or failed. */
static PGresult *next_result(ledger_pg *lg, double deadline, bool *failed)
{
    *failed = false;
    if (wait_ready(lg, deadline) != 0) {
        *failed = true;
        return NULL;
    }
    return PQgetResult(lg->conn);
}

/* Reads results until the end of one query; returns the last one. */
static PGresult *finish_query(ledger_pg *lg, double deadline, bool *failed)
{
    PGresult *last = NULL;
    for (;;) {
        PGresult *res = next_result(lg, deadline, failed);
        if (*failed || res == NULL)
            break;
        PQclear(last);
        last = res;
    }
    return last;
}

/*
 * Runs one statement outside pipeline mode: sql (with params, binary in and
 * out) or a prepared one (name). Returns the result; on failure NULL with
 * the error set, unless the result is of another status than expected.
 */
static PGresult *run(ledger_pg *lg, const char *what, const char *name, const char *sql,
                     int nparams, const char *const *values, const int *lengths,
                     ExecStatusType expect)
{
    bool failed = false;
    double deadline = (double)clock_mono_ms() + PG_IO_TIMEOUT_MS;
    int sent =
        name != NULL
            ? PQsendQueryPrepared(lg->conn, name, nparams, values, lengths, binary_formats, 1)
            : PQsendQueryParams(lg->conn, sql, nparams, NULL, values, lengths, binary_formats, 1);
    if (!sent) {
        fail_conn(lg, what);
        return NULL;
    }
    if (flush_all(lg, deadline) != 0)
        return NULL;
    PGresult *res = finish_query(lg, deadline, &failed);
    if (failed) {
        PQclear(res);
        return NULL;
    }
    if (res == NULL || PQresultStatus(res) != expect) {
        fail_result(lg, what, res);
        PQclear(res);
        return NULL;
    }
    lg->sqlstate[0] = '\0';
    return res;
}

/* A statement without parameters or rows; returns 0 or -1. */
static int exec(ledger_pg *lg, const char *what, const char *sql)
{
    PGresult *res = run(lg, what, NULL, sql, 0, NULL, NULL, PGRES_COMMAND_OK);
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

/*
 * Several statements in one string (a migration step, a partition): the
 * simple protocol. Returns 0 or -1; reads every result either way.
 */
static int exec_script(ledger_pg *lg, const char *what, const char *sql)
{
    double deadline = (double)clock_mono_ms() + PG_IO_TIMEOUT_MS;
    bool failed = false;
    int rc = 0;
    if (!PQsendQuery(lg->conn, sql)) {
        fail_conn(lg, what);
        return -1;
    }
    if (flush_all(lg, deadline) != 0)
        return -1;
    for (;;) {
        PGresult *res = next_result(lg, deadline, &failed);
        if (failed)
            return -1;
        if (res == NULL)
            break;
        ExecStatusType st = PQresultStatus(res);
        if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            fail_result(lg, what, res);
            rc = -1;
        }
        PQclear(res);
    }
    return rc;
}

/* A statement answering rows, without parameters. */
static PGresult *query(ledger_pg *lg, const char *what, const char *sql)
{
    return run(lg, what, NULL, sql, 0, NULL, NULL, PGRES_TUPLES_OK);
}

/* rollup_compact(): the rollups' slots of connections gone, into slot 0. */
static int compact_rollups(ledger_pg *lg, const char *what)
{
    PGresult *res = query(lg, what, ROLLUP_COMPACT_SQL);
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

/* ---- connecting ---- */

/*
 * The connection as a URL without its password, from what libpq made of
 * the string (environment and service file included).
 */
static void describe(ledger_pg *lg)
{
    const char *host = PQhost(lg->conn);
    const char *port = PQport(lg->conn);
    const char *db = PQdb(lg->conn);
    const char *user = PQuser(lg->conn);
    snprintf(lg->where, sizeof lg->where, "postgresql://%s%s%s%s%s/%s", user ? user : "",
             user && user[0] ? "@" : "", host ? host : "", port && port[0] ? ":" : "",
             port ? port : "", db ? db : "");
}

/*
 * libpq's complaint about a string it cannot parse quotes the string, or
 * part of it, which may be the password: the quoted parts go.
 */
static void redact_quoted(char *msg, size_t cap)
{
    char out[LEDGER_ERR_MAX];
    size_t len = 0;
    bool quoted = false;
    for (const char *p = msg; *p && len + 6 < sizeof out; p++) {
        if (*p == '"') {
            if (!quoted) {
                memcpy(out + len, "\"...\"", 5);
                len += 5;
            }
            quoted = !quoted;
        } else if (!quoted) {
            out[len++] = *p;
        }
    }
    out[len] = '\0';
    snprintf(msg, cap, "%s", out);
    one_line(msg);
}

/*
 * For messages about a string that did not connect: the connection as a
 * URL without its password, from the parsed string. Returns -1, with err
 * set, for a string libpq cannot parse.
 */
static int describe_unconnected(const char *target, char *out, size_t cap, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(target, &perr);
    const char *host = "", *port = "", *db = "", *user = "";
    if (opts == NULL) {
        char msg[LEDGER_ERR_MAX];
        snprintf(msg, sizeof msg, "%s", perr != NULL ? perr : "out of memory");
        PQfreemem(perr);
        redact_quoted(msg, sizeof msg);
        snprintf(err, errlen, "ledger: the PostgreSQL connection string cannot be parsed: %s", msg);
        return -1;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL)
            continue;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            user = o->val;
    }
    snprintf(out, cap, "postgresql://%s%s%s%s%s/%s", user, user[0] ? "@" : "", host,
             port[0] ? ":" : "", port, db);
    PQconninfoFree(opts);
    return 0;
}

/*
 * A setting's source (pg_settings.source) that says someone set it for
 * these connections: the connection string's options, ALTER ROLE ... SET,
 * ALTER DATABASE ... SET. receiptd's own default yields to those.
 */
static bool chosen_for_us(const char *source)
{
    return strcmp(source, "client") == 0 || strcmp(source, "user") == 0 ||
           strcmp(source, "database") == 0 || strcmp(source, "database user") == 0;
}

/* The session's settings, at connect and after every reset. */
static int configure_session(ledger_pg *lg)
{
    char sql[256];
    PGresult *res = query(lg, "settings",
                          "SELECT current_setting('server_encoding'),"
                          " current_setting('synchronous_commit'),"
                          " (SELECT source FROM pg_settings WHERE name = 'statement_timeout'),"
                          " (SELECT source FROM pg_settings WHERE name = 'lock_timeout')");
    if (res == NULL)
        return -1;
    char encoding[32], sync[32], source[32], lock_source[32];
    get_text(res, 0, 0, encoding, sizeof encoding);
    get_text(res, 0, 1, sync, sizeof sync);
    get_text(res, 0, 2, source, sizeof source);
    get_text(res, 0, 3, lock_source, sizeof lock_source);
    int version = PQserverVersion(lg->conn);
    PQclear(res);
    if (strcmp(encoding, "UTF8") != 0) {
        fail(lg,
             "the database's encoding is %s; the ledger needs UTF8 (CREATE DATABASE ... "
             "ENCODING 'UTF8')",
             encoding);
        return -1;
    }
    if (version < 120000) {
        fail(lg, "PostgreSQL %d.%d is too old: the ledger needs 12 or later", version / 10000,
             version % 10000 / 100);
        return -1;
    }
    /* A commit must be durable before a confirmation is answered. */
    if (strcmp(sync, "off") == 0 && exec(lg, "settings", "SET synchronous_commit = on") != 0)
        return -1;
    /* Every statement and every lock wait is bounded, unless the operator
     * chose a bound for this connection, role or database. */
    if (!chosen_for_us(source)) {
        snprintf(sql, sizeof sql, "SET statement_timeout = %d", PG_STATEMENT_TIMEOUT_MS);
        if (exec(lg, "settings", sql) != 0)
            return -1;
    }
    if (!chosen_for_us(lock_source)) {
        snprintf(sql, sizeof sql, "SET lock_timeout = %d",
                 lg->lock_timeout_ms >= 0 ? lg->lock_timeout_ms : LEDGER_LOCK_TIMEOUT_MS);
        if (exec(lg, "settings", sql) != 0)
            return -1;
    }
    if (lg->read_only && exec(lg, "settings", "SET default_transaction_read_only = on") != 0)
        return -1;
    /* A batch's arrays hold 1 to 1,024 events. A generic plan takes each
     * unnest() for 10 rows and joined a batch's events with its inserted
     * rows in a nested loop: for 1,024 issuances, 84 ms of an 88 ms
     * statement (auto_explain), against 21 ms planned for the arrays. */
    if (!lg->read_only && exec(lg, "settings", "SET plan_cache_mode = force_custom_plan") != 0)
        return -1;
    return 0;
}

static int prepare_statements(ledger_pg *lg)
{
    for (size_t i = 0; i < sizeof prepared / sizeof prepared[0]; i++) {
        if (prepared[i].writer && lg->read_only)
            continue;
        PGresult *res = PQprepare(lg->conn, prepared[i].name, prepared[i].sql, 0, NULL);
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
            fail_result(lg, "prepare", res);
            PQclear(res);
            return -1;
        }
        PQclear(res);
    }
    return 0;
}

/* A usable connection, reset if it broke since the last use. */
static int ensure_connected(ledger_pg *lg)
{
    if (!lg->broken && PQstatus(lg->conn) == CONNECTION_OK)
        return 0;
    lg->broken = false;
    lg->in_txn = false;
    lg->cursor_open = false;
    if (PQisnonblocking(lg->conn))
        PQsetnonblocking(lg->conn, 0);
    PQreset(lg->conn);
    if (PQstatus(lg->conn) != CONNECTION_OK) {
        fail_conn(lg, "reconnect");
        return -1;
    }
    if (configure_session(lg) != 0 || prepare_statements(lg) != 0) {
        lg->broken = true;
        return -1;
    }
    return 0;
}

/* Whether a failure was the connection's (a read may then be tried again). */
static bool connection_lost(ledger_pg *lg)
{
    return lg->broken || PQstatus(lg->conn) != CONNECTION_OK;
}

/* ---- schema ---- */

static int schema_version(ledger_pg *lg, int *out, bool *exists)
{
    PGresult *res = query(lg, "schema", "SELECT to_regclass('ledger_schema') IS NOT NULL");
    if (res == NULL)
        return -1;
    *exists = PQgetlength(res, 0, 0) == 1 && PQgetvalue(res, 0, 0)[0] == 1;
    PQclear(res);
    *out = 0;
    if (!*exists)
        return 0;
    res = query(lg, "schema", "SELECT coalesce(max(version), 0)::int8 FROM ledger_schema");
    if (res == NULL)
        return -1;
    *out = (int)get_i64(res, 0, 0);
    PQclear(res);
    return 0;
}

static int newer_schema(ledger_pg *lg, int version)
{
    fail(lg, "schema version %d is newer than this receiptd knows (%d): upgrade receiptd", version,
         SCHEMA_VERSION);
    return -1;
}

/*
 * Brings the schema up to SCHEMA_VERSION in one transaction, under an
 * advisory lock that every migrating node takes first: a node that waited
 * finds the work done.
 */
static int migrate(ledger_pg *lg)
{
    char sql[128];
    int version = 0;
    bool exists = false;

    if (exec(lg, "migrate", "BEGIN") != 0)
        return -1;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%" PRId64 ")", PG_LOCK_MIGRATE);
    PGresult *res = query(lg, "migrate", sql);
    if (res == NULL)
        goto fail;
    PQclear(res);
    /* Made only when missing: a role that may write the tables but not
     * create any works with a schema someone else made. */
    if (schema_version(lg, &version, &exists) != 0)
        goto fail;
    if (!exists && exec(lg, "migrate",
                        "CREATE TABLE ledger_schema (version integer PRIMARY KEY,"
                        " applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL"
                        " DEFAULT current_user)") != 0)
        goto fail;
    if (version > SCHEMA_VERSION) {
        newer_schema(lg, version);
        goto fail;
    }
    for (int i = version; i < SCHEMA_VERSION; i++) {
        if (exec_script(lg, "migrate", migrations[i]) != 0)
            goto fail;
        snprintf(sql, sizeof sql, "INSERT INTO ledger_schema (version) VALUES (%d)", i + 1);
        if (exec(lg, "migrate", sql) != 0)
            goto fail;
    }
    /* The rollups' slots of connections gone since (migration 5). */
    if (compact_rollups(lg, "migrate") != 0)
        goto fail;
    if (exec(lg, "migrate", "COMMIT") != 0)
        goto fail;
    return 0;
fail:
    if (PQtransactionStatus(lg->conn) != PQTRANS_IDLE) {
        PGresult *rb = PQexec(lg->conn, "ROLLBACK");
        PQclear(rb);
    }
    return -1;
}

static int check_version(ledger_pg *lg)
{
    int version = 0;
    bool exists = false;
    if (schema_version(lg, &version, &exists) != 0)
        return -1;
    if (version > SCHEMA_VERSION)
        return newer_schema(lg, version);
    if (!exists || version < SCHEMA_VERSION) {
        fail(lg,
             "schema version %d, this receiptd needs %d: start receiptd (or open it writable) "
             "once to migrate",
             version, SCHEMA_VERSION);
        return -1;
    }
    return 0;
}

/* ---- partitions ---- */

static void month_of(uint64_t ms, int *year, int *month)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    *year = tm.tm_year + 1900;
    *month = tm.tm_mon + 1;
}

static uint64_t month_start_ms(int year, int month)
{
    struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = 1};
    return (uint64_t)timegm(&tm) * 1000;
}

/* The lowest UUID of a millisecond: its time, then zeros. */
static void bound_uuid(uint64_t ms, char out[UUID7_STR_LEN + 1])
{
    uint8_t id[16] = {0};
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)(ms >> (40 - 8 * i));
    id_format(id, out);
}

/*
 * One month's partition, unless a partition already covers part of it (one
 * of the operator's own making, or a detached month's table still named
 * so). Rows of the month that went to the default partition move into it.
 * Returns 1 made, 0 not needed, -1 failed (the transaction is rolled back).
 */
static int prepare_month(ledger_pg *lg, int year, int month)
{
    char lo[UUID7_STR_LEN + 1], hi[UUID7_STR_LEN + 1];
    char name[32];
    char sql[1024];
    int next_year = month == 12 ? year + 1 : year;
    int next_month = month == 12 ? 1 : month + 1;
    bound_uuid(month_start_ms(year, month), lo);
    bound_uuid(month_start_ms(next_year, next_month), hi);
    snprintf(name, sizeof name, "deliveries_%04d_%02d", year, month);

    if (exec(lg, "partition", "BEGIN") != 0)
        return -1;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%" PRId64 ")", PG_LOCK_PARTITION);
    PGresult *res = query(lg, "partition", sql);
    if (res == NULL)
        goto fail;
    PQclear(res);
    /* Bounds of the attached range partitions, from the catalogue. */
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM (SELECT"
             "  substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([0-9a-f-]+)''\\)')"
             "   ::uuid AS lo,"
             "  substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([0-9a-f-]+)''\\)')"
             "   ::uuid AS hi"
             " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
             " WHERE i.inhparent = 'deliveries'::regclass) b"
             " WHERE b.lo < '%s'::uuid AND b.hi > '%s'::uuid)"
             " + (to_regclass('%s') IS NOT NULL)::int",
             hi, lo, name);
    res = query(lg, "partition", sql);
    if (res == NULL)
        goto fail;
    uint64_t overlapping = get_i64(res, 0, 0);
    PQclear(res);
    if (overlapping > 0) {
        exec(lg, "partition", "ROLLBACK");
        return 0;
    }
    /*
     * A short lock wait: attaching needs the default partition to itself
     * for a moment, and a long export may hold it; the next day tries again.
     */
    snprintf(sql, sizeof sql,
             "SET LOCAL lock_timeout = %d;"
             "CREATE TABLE %s (LIKE deliveries INCLUDING DEFAULTS INCLUDING CONSTRAINTS);"
             "LOCK TABLE deliveries_default IN SHARE ROW EXCLUSIVE MODE;"
             "WITH moved AS (DELETE FROM deliveries_default WHERE id >= '%s' AND id < '%s'"
             " RETURNING *) INSERT INTO %s SELECT * FROM moved;"
             "ALTER TABLE deliveries ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')",
             PG_PARTITION_LOCK_TIMEOUT_MS, name, lo, hi, name, name, lo, hi);
    if (exec_script(lg, "partition", sql) != 0)
        goto fail;
    if (exec(lg, "partition", "COMMIT") != 0)
        goto fail;
    return 1;
fail:
    if (!connection_lost(lg) && PQtransactionStatus(lg->conn) != PQTRANS_IDLE) {
        char keep[LEDGER_ERR_MAX];
        snprintf(keep, sizeof keep, "%s", lg->err);
        exec(lg, "partition", "ROLLBACK");
        snprintf(lg->err, sizeof lg->err, "%s", keep);
    }
    return -1;
}

static int pg_prepare(ledger *base, uint64_t first_ms, uint64_t last_ms)
{
    ledger_pg *lg = impl(base);
    int year, month, last_year, last_month;
    int made = 0;
    lg->err[0] = '\0';
    if (lg->read_only || lg->in_txn) {
        fail(lg, "ledger partitions: %s", lg->read_only ? "read-only handle" : "in a transaction");
        return -1;
    }
    if (ensure_connected(lg) != 0)
        return -1;
    month_of(first_ms, &year, &month);
    month_of(last_ms, &last_year, &last_month);
    /* A bound on the work, whatever the range asked for: 100 years. */
    for (int i = 0; i < 1200; i++) {
        int rc = prepare_month(lg, year, month);
        if (rc < 0)
            return -1;
        made += rc;
        if (year == last_year && month == last_month)
            break;
        if (++month == 13) {
            month = 1;
            year++;
        }
    }
    /* Upkeep's other task: the rollups' slots of connections gone. */
    if (compact_rollups(lg, "rollups") != 0)
        return -1;
    return made;
}

/* ---- the write statement's rounds ---- */

/* Forgets every ID the slots hold. */
static void slots_forget(ledger_pg *lg)
{
    lg->slot_used = 0;
    if (++lg->generation == 0) { /* wrapped: forget every slot for real */
        if (lg->slots != NULL)
            memset(lg->slots, 0, lg->slot_cap * sizeof *lg->slots);
        lg->generation = 1;
    }
}

static void txn_reset(ledger_pg *lg)
{
    lg->item_count = 0;
    for (size_t r = 0; r < lg->round_count; r++) {
        pg_round *round = &lg->rounds[r];
        round->n = 0;
        for (int c = 0; c < ARRAY_PARAMS; c++) {
            round->col[c].len = 0;
            round->has_null[c] = false;
        }
    }
    lg->round_count = 0;
    slots_forget(lg);
}

static uint32_t id_hash(const uint8_t id[16])
{
    /* The last 8 bytes of a UUIDv7 are random. */
    uint32_t h = 2166136261u;
    for (int i = 8; i < 16; i++)
        h = (h ^ id[i]) * 16777619u;
    return h;
}

/* The ID's slot, made (count 0) if the ID has none; NULL out of memory. */
static pg_slot *id_slot(ledger_pg *lg, const uint8_t id[16])
{
    if ((lg->slot_used + 1) * 2 > lg->slot_cap) {
        size_t cap = lg->slot_cap ? lg->slot_cap * 2 : 1024;
        pg_slot *grown = calloc(cap, sizeof *grown);
        if (grown == NULL)
            return NULL;
        for (size_t i = 0; i < lg->slot_cap; i++) {
            pg_slot *s = &lg->slots[i];
            if (s->generation != lg->generation)
                continue;
            size_t j = id_hash(s->id) & (cap - 1);
            while (grown[j].generation == lg->generation)
                j = (j + 1) & (cap - 1);
            grown[j] = *s;
        }
        free(lg->slots);
        lg->slots = grown;
        lg->slot_cap = cap;
    }
    size_t j = id_hash(id) & (lg->slot_cap - 1);
    while (lg->slots[j].generation == lg->generation) {
        if (memcmp(lg->slots[j].id, id, 16) == 0)
            return &lg->slots[j];
        j = (j + 1) & (lg->slot_cap - 1);
    }
    memcpy(lg->slots[j].id, id, 16);
    lg->slots[j].generation = lg->generation;
    lg->slots[j].count = 0;
    lg->slot_used++;
    return &lg->slots[j];
}

/* Which round the ID's next event goes to; -1 out of memory. */
static long id_round(ledger_pg *lg, const uint8_t id[16])
{
    pg_slot *slot = id_slot(lg, id);
    return slot != NULL ? (long)slot->count++ : -1;
}

static pg_round *round_get(ledger_pg *lg, size_t r)
{
    while (lg->round_count <= r) {
        if (lg->round_count == lg->round_cap) {
            size_t cap = lg->round_cap ? lg->round_cap * 2 : 4;
            pg_round *grown = realloc(lg->rounds, cap * sizeof *grown);
            if (grown == NULL)
                return NULL;
            memset(grown + lg->round_cap, 0, (cap - lg->round_cap) * sizeof *grown);
            lg->rounds = grown;
            lg->round_cap = cap;
        }
        pg_round *round = &lg->rounds[lg->round_count++];
        round->n = 0;
        for (int c = 0; c < ARRAY_PARAMS; c++) {
            round->col[c].len = 0;
            round->has_null[c] = false;
            /* Room for the array header, written when the round is sent. */
            if (buf_reserve(&round->col[c], 20) != 0)
                return NULL;
            round->col[c].len = 20;
        }
    }
    return &lg->rounds[r];
}

/* Refuses events that could never be written correctly: the common rules,
 * and an ID that is a UUID (the column's type), whose bytes go to id. */
static bool event_valid(ledger_pg *lg, const ledger_event *ev, uint8_t id[16])
{
    if (ledger_event_check(ev, lg->err, sizeof lg->err) != 0)
        return false;
    if (!id_parse(ev->row.id, id)) {
        fail(lg, "ledger event %s: the delivery ID is not a lowercase UUID", ev->row.id);
        return false;
    }
    return true;
}

#define PUT(expr)                                                                                  \
    do {                                                                                           \
        if ((expr) != 0)                                                                           \
            return -1;                                                                             \
    } while (0)

static int put_opt_text(ledger_pg *lg, pg_round *rd, int p, const char *s, size_t cap)
{
    if (s[0] == '\0') {
        rd->has_null[p] = true;
        return elem_null(&rd->col[p]);
    }
    return elem_text(lg, &rd->col[p], s, cap);
}

static int put_opt_i64(pg_round *rd, int p, uint64_t v)
{
    if (v == 0) {
        rd->has_null[p] = true;
        return elem_null(&rd->col[p]);
    }
    return elem_i64(&rd->col[p], v);
}

static int put_null(pg_round *rd, int p)
{
    rd->has_null[p] = true;
    return elem_null(&rd->col[p]);
}

/* The binding's columns of ev's row (client, bound_addr, bound_ms,
 * bound_node, from p_client on), or NULLs where the event binds nothing. */
static int encode_binding(ledger_pg *lg, pg_round *rd, const ledger_event *ev, int p_client,
                          int p_addr, int p_ms, int p_node)
{
    const ledger_delivery *row = &ev->row;
    ledger_event_columns cols;
    ledger_event_columns_of(ev, &cols);
    if (!cols.binding) {
        PUT(put_null(rd, p_client));
        PUT(put_null(rd, p_addr));
        PUT(put_null(rd, p_ms));
        return put_null(rd, p_node);
    }
    PUT(put_opt_text(lg, rd, p_client, row->client, sizeof row->client));
    PUT(put_opt_text(lg, rd, p_addr, row->bound_addr, sizeof row->bound_addr));
    PUT(put_opt_i64(rd, p_ms, row->bound_ms));
    return put_opt_text(lg, rd, p_node, row->bound_node, sizeof row->bound_node);
}

/*
 * Appends a row to the round's arrays (what bind_row binds in
 * ledger_sqlite.c, the same way): ev's, or for a merged row (issue not
 * NULL) the issuance's columns of issue with the status, binding and
 * confirmation of ev, and the issuance's binding apart.
 */
static int encode_event(ledger_pg *lg, pg_round *rd, const ledger_event *ev,
                        const ledger_event *issue, const uint8_t id[16])
{
    const ledger_delivery *row = &ev->row;
    const ledger_delivery *first = issue != NULL ? &issue->row : row;
    ledger_event_kind kind = ev->kind;
    ledger_event_columns cols;
    ledger_event_columns_of(ev, &cols);
    const char *status = cols.status;
    bool confirmed = cols.confirmation;
    int write_kind = issue != NULL ? WRITE_MERGED : cols.insert_only ? WRITE_INSERT : WRITE_UPSERT;

    PUT(elem_i16(&rd->col[P_KIND], (uint16_t)write_kind));
    PUT(elem_bytes(&rd->col[P_ID], id, 16));
    PUT(elem_text(lg, &rd->col[P_PATH], first->path, sizeof first->path));
    PUT(elem_bytes(&rd->col[P_SHA256], first->sha256, 32));
    PUT(elem_i64(&rd->col[P_SIZE], first->size));
    PUT(elem_text(lg, &rd->col[P_SERVER], first->server, sizeof first->server));
    PUT(elem_text(lg, &rd->col[P_CLIENT_ADDR], first->client_addr, sizeof first->client_addr));
    PUT(put_opt_text(lg, rd, P_USER_AGENT, first->user_agent, sizeof first->user_agent));
    PUT(elem_i64(&rd->col[P_ISSUED_MS], first->issued_ms));
    PUT(elem_bytes(&rd->col[P_STATUS], status, strlen(status)));
    PUT(put_opt_text(lg, rd, P_ISSUED_NODE, first->issued_node, sizeof first->issued_node));
    PUT(encode_binding(lg, rd, ev, P_CLIENT, P_BOUND_ADDR, P_BOUND_MS, P_BOUND_NODE));
    if (confirmed) {
        PUT(put_opt_i64(rd, P_CONFIRMED_MS, row->confirmed_ms));
        PUT(put_opt_text(lg, rd, P_CONFIRM_ADDR, row->confirm_addr, sizeof row->confirm_addr));
        if (row->received_has_sha256)
            PUT(elem_bytes(&rd->col[P_RECEIVED_SHA256], row->received_sha256, 32));
        else
            PUT(put_null(rd, P_RECEIVED_SHA256));
        if (kind == LEDGER_EVENT_COPY && row->confirmed_ms == 0) {
            /* A row never confirmed has no received fields. */
            PUT(put_opt_i64(rd, P_RECEIVED_SIZE, row->received_size));
            PUT(put_opt_i64(rd, P_RECEIVED_AT_MS, row->received_at_ms));
        } else {
            PUT(elem_i64(&rd->col[P_RECEIVED_SIZE], row->received_size));
            PUT(elem_i64(&rd->col[P_RECEIVED_AT_MS], row->received_at_ms));
        }
        PUT(put_opt_text(lg, rd, P_RECEIPT, row->receipt, sizeof row->receipt));
        PUT(put_opt_text(lg, rd, P_CONFIRMED_NODE, row->confirmed_node,
                         sizeof row->confirmed_node));
    } else {
        for (int p = P_CONFIRMED_MS; p <= P_RECEIPT; p++)
            PUT(put_null(rd, p));
        PUT(put_null(rd, P_CONFIRMED_NODE));
    }
    const char *delivery_kind = ledger_kind_name(first->kind);
    PUT(elem_bytes(&rd->col[P_DELIVERY_KIND], delivery_kind, strlen(delivery_kind)));
    /* The bytes sent are recorded where they are not the version's. */
    if (first->delivered_size != first->size ||
        memcmp(first->delivered_sha256, first->sha256, 32) != 0) {
        PUT(elem_bytes(&rd->col[P_DELIVERED_SHA256], first->delivered_sha256, 32));
        PUT(elem_i64(&rd->col[P_DELIVERED_SIZE], first->delivered_size));
    } else {
        PUT(put_null(rd, P_DELIVERED_SHA256));
        PUT(put_null(rd, P_DELIVERED_SIZE));
    }
    if (issue != NULL) {
        PUT(encode_binding(lg, rd, issue, P_ISSUE_CLIENT, P_ISSUE_BOUND_ADDR, P_ISSUE_BOUND_MS,
                           P_ISSUE_BOUND_NODE));
    } else {
        for (int p = P_ISSUE_CLIENT; p <= P_ISSUE_BOUND_NODE; p++)
            PUT(put_null(rd, p));
    }
    rd->n++;
    return 0;
}

#undef PUT

/* A new item for ev (entry, result) in rd's array row n - 1 (main) or as
 * its merged issuance; returns its index. The caller made room. */
static size_t item_add(ledger_pg *lg, const ledger_event *ev, ledger_result *result, size_t entry)
{
    pg_item *item = &lg->items[lg->item_count];
    item->event = ev;
    item->result = result;
    item->entry = entry;
    item->answered = false;
    item->changed = false;
    if (result != NULL)
        result->outcome = LEDGER_IGNORED; /* until its round says otherwise */
    return lg->item_count++;
}

/*
 * Queues a validated event into its round; with issue (its entry
 * issue_entry), the issuance merged into it (merge_pairs()). Returns 0 or
 * -1 (out of memory).
 */
static int add_event(ledger_pg *lg, const ledger_event *ev, const uint8_t id[16],
                     ledger_result *result, size_t entry, const ledger_batch_entry *issue,
                     size_t issue_entry)
{
    long r = id_round(lg, id);
    pg_round *rd = r >= 0 ? round_get(lg, (size_t)r) : NULL;
    if (rd == NULL)
        goto oom;
    while (lg->item_count + 2 > lg->item_cap) {
        size_t cap = lg->item_cap ? lg->item_cap * 2 : 64;
        pg_item *grown = realloc(lg->items, cap * sizeof *grown);
        if (grown == NULL)
            goto oom;
        lg->items = grown;
        lg->item_cap = cap;
    }
    if (rd->n == rd->items_cap) {
        size_t cap = rd->items_cap ? rd->items_cap * 2 : 64;
        size_t *grown = realloc(rd->items, cap * sizeof *grown);
        if (grown == NULL)
            goto oom;
        rd->items = grown;
        grown = realloc(rd->partners, cap * sizeof *grown);
        if (grown == NULL)
            goto oom;
        rd->partners = grown;
        rd->items_cap = cap;
    }
    if (encode_event(lg, rd, ev, issue != NULL ? issue->event : NULL, id) != 0)
        goto oom;
    rd->items[rd->n - 1] = item_add(lg, ev, result, entry);
    rd->partners[rd->n - 1] =
        issue != NULL ? item_add(lg, issue->event, issue->result, issue_entry) : NO_PARTNER;
    return 0;
oom:
    fail(lg, "ledger event %s: out of memory", ev->row.id);
    return -1;
}

/* Writes the array headers; fills the statement's parameters. */
static void round_params(pg_round *rd, bool want_inserts, const char *values[PARAM_COUNT],
                         int lengths[PARAM_COUNT])
{
    static const char yes = 1, no = 0;
    for (int c = 0; c < ARRAY_PARAMS; c++) {
        uint8_t *h = rd->col[c].data;
        put_be32(h, 1); /* dimensions */
        put_be32(h + 4, rd->has_null[c] ? 1 : 0);
        put_be32(h + 8, param_elem_oid[c]);
        put_be32(h + 12, (uint32_t)rd->n);
        put_be32(h + 16, 1); /* lower bound */
        values[c] = (const char *)rd->col[c].data;
        lengths[c] = (int)rd->col[c].len;
    }
    values[P_WANT_INSERTS] = want_inserts ? &yes : &no;
    lengths[P_WANT_INSERTS] = 1;
}

static bool want_inserts(const ledger_pg *lg, const pg_round *rd)
{
    if (lg->logging)
        return true; /* the log needs every event's outcome */
    for (size_t i = 0; i < rd->n; i++) {
        const pg_item *item = &lg->items[rd->items[i]];
        if (item->result != NULL && item->event->kind != LEDGER_EVENT_BIND &&
            item->event->kind != LEDGER_EVENT_CONFIRM)
            return true;
    }
    return false;
}

/* Takes a round's answer: the events it changed. */
static int take_round(ledger_pg *lg, pg_round *rd, const PGresult *res)
{
    int rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
        uint64_t ord = get_i64(res, i, 0);
        if (ord == 0 || ord > rd->n || PQgetlength(res, i, 1) != 1) {
            fail(lg, "ledger write: an answer for event %" PRIu64 " of %zu", ord, rd->n);
            return -1;
        }
        /* A merged row that was inserted applied its issuance too; one
         * that was upserted found the row there, and its issuance did
         * nothing. */
        bool inserted = PQgetvalue(res, i, 1)[0] != 0;
        size_t partner = rd->partners[ord - 1];
        if (inserted && partner != NO_PARTNER) {
            pg_item *issue = &lg->items[partner];
            issue->answered = true;
            issue->changed = true;
            if (issue->result != NULL)
                issue->result->outcome = LEDGER_APPLIED;
        }
        pg_item *item = &lg->items[rd->items[ord - 1]];
        item->answered = true;
        item->changed = true;
        if (item->result == NULL)
            continue;
        item->result->outcome = LEDGER_APPLIED;
        if (item->event->kind == LEDGER_EVENT_CONFIRM &&
            read_row(lg, res, i, 2, &item->result->row) != 0)
            return -1;
    }
    return 0;
}

/*
 * The answer of each confirmation that changed nothing: the row was final
 * already, and stays so. Same client: the first receipt again; another:
 * a conflict. Reads what is committed (and, inside a transaction, what it
 * wrote). Sets *refused for events with no final row to answer from.
 */
static int answer_unchanged(ledger_pg *lg, ledger_batch_entry *entries)
{
    size_t pending = 0;
    for (size_t i = 0; i < lg->item_count; i++) {
        const pg_item *item = &lg->items[i];
        pending += !item->answered && item->event->kind == LEDGER_EVENT_CONFIRM;
    }
    if (pending == 0)
        return 0;

    pg_buf ids = {0};
    int rc = -1;
    PGresult *res = NULL;
    uint8_t head[20];
    put_be32(head, 1);
    put_be32(head + 4, 0);
    put_be32(head + 8, OID_UUID);
    put_be32(head + 12, (uint32_t)pending);
    put_be32(head + 16, 1);
    if (buf_put(&ids, head, sizeof head) != 0)
        goto oom;
    for (size_t i = 0; i < lg->item_count; i++) {
        const pg_item *item = &lg->items[i];
        uint8_t id[16];
        if (item->answered || item->event->kind != LEDGER_EVENT_CONFIRM)
            continue;
        id_parse(item->event->row.id, id);
        if (elem_bytes(&ids, id, 16) != 0)
            goto oom;
    }
    const char *values[1] = {(const char *)ids.data};
    int lengths[1] = {(int)ids.len};
    res = run(lg, "confirm", "ledger_gets", NULL, 1, values, lengths, PGRES_TUPLES_OK);
    if (res == NULL)
        goto out;
    ledger_delivery *stored = malloc(sizeof *stored);
    if (stored == NULL)
        goto oom;
    int rows = PQntuples(res);
    for (size_t i = 0; i < lg->item_count; i++) {
        pg_item *item = &lg->items[i];
        if (item->answered || item->event->kind != LEDGER_EVENT_CONFIRM)
            continue;
        bool found = false;
        for (int r = 0; r < rows && !found; r++) {
            if (read_row(lg, res, r, 0, stored) != 0) {
                free(stored);
                goto out;
            }
            found = strcmp(stored->id, item->event->row.id) == 0;
        }
        if (!found || (stored->status != LEDGER_CONFIRMED && stored->status != LEDGER_CORRUPTED)) {
            /* Nothing final to answer from: refuse this one, keep the rest. */
            char why[LEDGER_ERR_MAX];
            snprintf(why, sizeof why, "ledger confirm %s: the row did not change",
                     item->event->row.id);
            if (entries == NULL) {
                free(stored);
                snprintf(lg->err, sizeof lg->err, "%s", why);
                goto out;
            }
            entries[item->entry].status = LEDGER_APPLY_EVENT_FAILED;
            continue;
        }
        item->answered = true;
        if (item->result != NULL) {
            item->result->outcome = strcmp(stored->client, item->event->row.client) == 0
                                        ? LEDGER_SAME
                                        : LEDGER_CONFLICT;
            memcpy(&item->result->row, stored, sizeof *stored);
        }
    }
    free(stored);
    rc = 0;
    goto out;
oom:
    fail(lg, "ledger confirm: out of memory");
out:
    PQclear(res);
    free(ids.data);
    return rc;
}

/* Classes of SQLSTATE. */
static bool sqlstate_retry(const char *state)
{
    /* serialization_failure, deadlock_detected */
    return strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0;
}

static bool sqlstate_data(const char *state)
{
    return strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0;
}

static bool pg_timed_out(const ledger *base)
{
    const char *state = ((const ledger_pg *)base)->sqlstate;
    /* query_canceled (statement_timeout), lock_not_available (lock_timeout) */
    return strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0;
}

/*
 * The whole transaction in one pipeline: BEGIN, the rounds, COMMIT. Returns
 * 0 once committed (rounds' answers taken), -1 otherwise (lg->sqlstate says
 * why when the database refused). With the log (lg->logging), the pipeline
 * ends with the log's lock and head instead of COMMIT, and returns 0 with
 * the transaction open.
 */
static int run_pipeline(ledger_pg *lg)
{
    const char *values[PARAM_COUNT];
    int lengths[PARAM_COUNT];
    double deadline = (double)clock_mono_ms() + PG_IO_TIMEOUT_MS;
    PGconn *c = lg->conn;
    int rc = -1;
    bool failed = false;
    bool seen_error = false;

    lg->sqlstate[0] = '\0';
    if (PQsetnonblocking(c, 1) != 0 || PQenterPipelineMode(c) != 1) {
        fail_conn(lg, "pipeline");
        PQsetnonblocking(c, 0);
        return -1;
    }
    bool sent = PQsendQueryParams(c, "BEGIN ISOLATION LEVEL READ COMMITTED", 0, NULL, NULL, NULL,
                                  NULL, 1) == 1;
    for (size_t r = 0; sent && r < lg->round_count; r++) {
        pg_round *rd = &lg->rounds[r];
        round_params(rd, want_inserts(lg, rd), values, lengths);
        sent = PQsendQueryPrepared(c, "ledger_write", PARAM_COUNT, values, lengths, binary_formats,
                                   1) == 1;
    }
    /* With the log: its lock, then (a statement of its own, so that it
     * sees what the lock waited for) the stored tree's size; no COMMIT,
     * which comes once the log's writes are in. */
    if (lg->logging) {
        sent = sent && PQsendQueryPrepared(c, "ledger_log_lock", 0, NULL, NULL, NULL, 1) == 1;
        sent = sent && PQsendQueryPrepared(c, "ledger_log_head", 0, NULL, NULL, NULL, 1) == 1;
    } else {
        sent = sent && PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 1) == 1;
    }
    sent = sent && PQpipelineSync(c) == 1;
    if (!sent) {
        fail_conn(lg, "write");
        lg->broken = true;
        goto out;
    }
    if (flush_all(lg, deadline) != 0)
        goto out;

    /*
     * Results come query by query, each ending with NULL: BEGIN (query 0),
     * the rounds (1..round_count), COMMIT, then the sync point. After an
     * error, the queries up to the sync point come back aborted.
     */
    size_t commit_q = lg->round_count + 1; /* or the log's lock */
    size_t last_q = commit_q + (lg->logging ? 1 : 0);
    size_t q = 0;
    for (;;) {
        PGresult *res = next_result(lg, deadline, &failed);
        if (failed)
            goto out;
        if (res == NULL) {
            if (++q > last_q + 1) {
                fail(lg, "ledger write: the pipeline's answers are out of step");
                lg->broken = true;
                goto out;
            }
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if (st == PGRES_FATAL_ERROR) {
            if (!seen_error)
                fail_result(lg, "write", res);
            seen_error = true;
        } else if (st == PGRES_PIPELINE_ABORTED) {
            seen_error = true;
        } else if (!seen_error && q >= 1 && q < commit_q) {
            if (st != PGRES_TUPLES_OK || take_round(lg, &lg->rounds[q - 1], res) != 0) {
                if (st != PGRES_TUPLES_OK)
                    fail_result(lg, "write", res);
                seen_error = true;
            }
        } else if (!seen_error && lg->logging && q == commit_q) {
            lg->log_locked = st == PGRES_TUPLES_OK;
        } else if (!seen_error && lg->logging && q == last_q) {
            if (st != PGRES_TUPLES_OK || PQntuples(res) != 1) {
                fail_result(lg, "log", res);
                seen_error = true;
            } else {
                lg->log_head = get_count(res, 0, 0);
            }
        } else if (!seen_error && q == commit_q && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
            fail(lg, "ledger commit: the transaction was rolled back");
            seen_error = true;
        }
        PQclear(res);
    }
    rc = seen_error ? -1 : 0;
out:
    if (!lg->broken && PQpipelineStatus(c) != PQ_PIPELINE_OFF && PQexitPipelineMode(c) != 1) {
        /* Results left unread: the connection cannot be trusted any more. */
        lg->broken = true;
        rc = -1;
    }
    if (!lg->broken)
        PQsetnonblocking(c, 0);
    return rc;
}

static void rollback_quietly(ledger_pg *lg)
{
    if (connection_lost(lg) || PQtransactionStatus(lg->conn) == PQTRANS_IDLE)
        return;
    char keep[LEDGER_ERR_MAX];
    char state[6];
    snprintf(keep, sizeof keep, "%s", lg->err);
    memcpy(state, lg->sqlstate, sizeof state);
    if (exec(lg, "rollback", "ROLLBACK") != 0)
        lg->broken = true;
    snprintf(lg->err, sizeof lg->err, "%s", keep);
    memcpy(lg->sqlstate, state, sizeof state);
}

static int apply_isolated(ledger_pg *lg, const ledger_event *ev, ledger_result *result);

/*
 * A batch refused for one event's data: event by event, each under a
 * savepoint, so that the refused ones are known (their reasons recorded in
 * entry order) and the rest committed.
 */
static int write_isolated(ledger_pg *lg, ledger_batch_entry *entries, size_t n,
                          const ledger_log_hook *hook)
{
    ledger_refusals_reset(&lg->base);
    if (exec(lg, "write", "BEGIN ISOLATION LEVEL READ COMMITTED") != 0)
        return -1;
    lg->log_locked = false;
    for (size_t i = 0; i < n; i++) {
        int rc = apply_isolated(lg, entries[i].event, entries[i].result);
        if (rc == LEDGER_APPLY_TXN_FAILED)
            goto fail;
        entries[i].status = rc;
        entries[i].outcome = LEDGER_IGNORED;
        if (rc == 0 && lg->item_count == 1) /* apply_isolated() leaves its item */
            entries[i].outcome = lg->items[0].changed        ? LEDGER_APPLIED
                                 : entries[i].result != NULL ? entries[i].result->outcome
                                                             : LEDGER_IGNORED;
    }
    if (hook != NULL) {
        lg->in_txn = true;
        int rc = ledger_log_hook_run(&lg->base, entries, n, hook);
        lg->in_txn = false;
        if (rc != 0)
            goto fail;
    }
    if (exec(lg, "commit", "COMMIT") != 0)
        goto fail;
    ledger_refusals_assign(&lg->base, entries, n);
    lg->err[0] = '\0';
    return 0;
fail:
    rollback_quietly(lg);
    return -1;
}

/* After a committed pipeline: the reasons of the refused entries, in order. */
static void record_refusals(ledger_pg *lg, ledger_batch_entry *entries, size_t n)
{
    ledger_refusals_reset(&lg->base);
    for (size_t i = 0; i < n; i++) {
        uint8_t id[16];
        if (entries[i].status != LEDGER_APPLY_EVENT_FAILED)
            continue;
        if (!event_valid(lg, entries[i].event, id))
            ledger_refusal_add(&lg->base, lg->err);
        else
            ledger_refusal_add(&lg->base, "committed, but its answer could not be read back");
    }
    ledger_refusals_assign(&lg->base, entries, n);
    lg->err[0] = '\0';
}

static int pg_commit(ledger *base);

/*
 * The outcome of each entry's event in the transaction's items: applied
 * when its round changed the row, else what the answer says (ignored,
 * same, conflict).
 */
static void set_outcomes(ledger_pg *lg, ledger_batch_entry *entries)
{
    for (size_t i = 0; i < lg->item_count; i++) {
        const pg_item *item = &lg->items[i];
        ledger_batch_entry *e = &entries[item->entry];
        if (item->changed)
            e->outcome = LEDGER_APPLIED;
        else
            e->outcome = item->result != NULL ? item->result->outcome : LEDGER_IGNORED;
    }
}

/*
 * A logged write whose events are in (the transaction open, the log
 * locked): the answers of unchanged confirmations, the log's part, COMMIT.
 * Returns 0 committed, or -1 rolled back.
 */
static int pg_log_store(ledger *base, const ledger_log_write *w);
static int pg_log_lock(ledger *base, uint64_t *size);

/*
 * The log's writes and the COMMIT in one pipeline: one round trip. Returns
 * 0 committed, or -1 (the caller rolls back).
 */
static int commit_logged(ledger_pg *lg, const ledger_log_write *w)
{
    PGconn *c = lg->conn;
    double deadline = (double)clock_mono_ms() + PG_IO_TIMEOUT_MS;
    bool seen_error = false, failed = false;
    int rc = -1;
    if (PQsetnonblocking(c, 1) != 0 || PQenterPipelineMode(c) != 1) {
        fail_conn(lg, "log");
        PQsetnonblocking(c, 0);
        return -1;
    }
    lg->log_pipeline = true;
    lg->log_sent = 0;
    bool sent = w == NULL || pg_log_store(&lg->base, w) == 0;
    lg->log_pipeline = false;
    size_t commit_q = lg->log_sent;
    sent = sent && PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 1) == 1 &&
           PQpipelineSync(c) == 1;
    if (!sent) {
        if (lg->err[0] == '\0')
            fail_conn(lg, "log");
        lg->broken = true;
        goto out;
    }
    if (flush_all(lg, deadline) != 0)
        goto out;
    size_t q = 0;
    for (;;) {
        PGresult *res = next_result(lg, deadline, &failed);
        if (failed)
            goto out;
        if (res == NULL) {
            if (++q > commit_q + 1) {
                fail(lg, "ledger log: the pipeline's answers are out of step");
                lg->broken = true;
                goto out;
            }
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if (st == PGRES_FATAL_ERROR) {
            if (!seen_error)
                fail_result(lg, "log", res);
            seen_error = true;
        } else if (st == PGRES_PIPELINE_ABORTED) {
            seen_error = true;
        } else if (!seen_error && q == commit_q && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
            fail(lg, "ledger commit: the transaction was rolled back");
            seen_error = true;
        }
        PQclear(res);
    }
    rc = seen_error ? -1 : 0;
out:
    if (!lg->broken && PQpipelineStatus(c) != PQ_PIPELINE_OFF && PQexitPipelineMode(c) != 1) {
        lg->broken = true;
        rc = -1;
    }
    if (!lg->broken)
        PQsetnonblocking(c, 0);
    return rc;
}

static int finish_logged(ledger_pg *lg, ledger_batch_entry *entries, size_t n,
                         const ledger_log_hook *hook)
{
    char why[LEDGER_ERR_MAX] = "log: failed";
    const ledger_log_write *w = NULL;
    uint64_t head = 0;
    lg->in_txn = true; /* the hook reads the log inside the transaction */
    if (answer_unchanged(lg, entries) != 0)
        goto fail;
    set_outcomes(lg, entries);
    if (pg_log_lock(&lg->base, &head) != 0)
        goto fail;
    if (hook->batch(hook->ctx, &lg->base, head, entries, n, &w, why, sizeof why) != 0) {
        ledger_hook_failed(&lg->base, why);
        goto fail;
    }
    lg->in_txn = false;
    if (commit_logged(lg, w) == 0)
        return 0;
fail:
    lg->in_txn = false;
    rollback_quietly(lg);
    return -1;
}

#define NOT_MERGED          SIZE_MAX
#define MERGED_INTO_EARLIER (SIZE_MAX - 1)

/*
 * Whether an issuance and the next event of its ID can be written as one
 * row: a binding or confirmation that the upsert would apply to the row
 * the issuance makes (its WHERE, with the issuance's status as d.status).
 */
static bool mergeable(const ledger_event *issue, const ledger_event *next)
{
    if (issue->kind != LEDGER_EVENT_ISSUE ||
        (next->kind != LEDGER_EVENT_BIND && next->kind != LEDGER_EVENT_CONFIRM))
        return false;
    ledger_event_columns first, then;
    ledger_event_columns_of(issue, &first);
    ledger_event_columns_of(next, &then);
    bool issued = strcmp(first.status, "issued") == 0;
    bool pending = issued || strcmp(first.status, "bound") == 0;
    if (strcmp(then.status, "bound") == 0)
        return issued;
    return pending &&
           (strcmp(then.status, "confirmed") == 0 || strcmp(then.status, "corrupted") == 0);
}

/*
 * Validates the entries (a refused one gets its status) and pairs each
 * issuance with its ID's next event in the batch where they merge: the full
 * cycle's issuance and confirmation often share a batch, and one row
 * inserted as it ends up costs the database about half of an insert and an
 * update of every index. lg->merge[i] is then that event's entry for the
 * issuance, MERGED_INTO_EARLIER for the event, NOT_MERGED otherwise; an ID's
 * third event is not merged. Returns 0, or -1 out of memory.
 */
static int merge_pairs(ledger_pg *lg, ledger_batch_entry *entries, size_t n)
{
    if (n > lg->entry_cap) {
        uint8_t(*ids)[16] = realloc(lg->entry_ids, n * sizeof *ids);
        if (ids != NULL)
            lg->entry_ids = ids;
        size_t *merge = ids != NULL ? realloc(lg->merge, n * sizeof *merge) : NULL;
        if (merge == NULL) {
            fail(lg, "ledger write: out of memory");
            return -1;
        }
        lg->merge = merge;
        lg->entry_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        entries[i].status = 0;
        entries[i].why = NULL;
        entries[i].outcome = LEDGER_IGNORED;
        lg->merge[i] = NOT_MERGED;
        if (!event_valid(lg, entries[i].event, lg->entry_ids[i])) {
            entries[i].status = LEDGER_APPLY_EVENT_FAILED;
            continue;
        }
        pg_slot *slot = id_slot(lg, lg->entry_ids[i]);
        if (slot == NULL) {
            fail(lg, "ledger write: out of memory");
            return -1;
        }
        if (slot->count == 0)
            slot->first = i;
        else if (slot->count == 1 && mergeable(entries[slot->first].event, entries[i].event)) {
            lg->merge[slot->first] = i;
            lg->merge[i] = MERGED_INTO_EARLIER;
        }
        slot->count++;
    }
    return 0;
}

static int write_batch(ledger_pg *lg, ledger_batch_entry *entries, size_t n,
                       const ledger_log_hook *hook)
{
    if (lg->read_only || lg->in_txn) {
        fail(lg, "ledger write: %s", lg->read_only ? "read-only handle" : "a transaction is open");
        return -1;
    }
    for (int attempt = 1;; attempt++) {
        if (ensure_connected(lg) != 0)
            return -1;
        txn_reset(lg);
        lg->log_locked = false;
        if (merge_pairs(lg, entries, n) != 0)
            return -1;
        slots_forget(lg); /* the rounds count IDs afresh */
        for (size_t i = 0; i < n; i++) {
            size_t m = lg->merge[i];
            if (entries[i].status != 0 || m == MERGED_INTO_EARLIER)
                continue;
            if (add_event(lg, entries[m == NOT_MERGED ? i : m].event, lg->entry_ids[i],
                          entries[m == NOT_MERGED ? i : m].result, m == NOT_MERGED ? i : m,
                          m == NOT_MERGED ? NULL : &entries[i], i) != 0)
                return -1;
        }
        lg->err[0] = '\0';
        if (lg->item_count == 0 && hook == NULL) {
            record_refusals(lg, entries, n);
            return 0; /* nothing valid: nothing to commit */
        }
        int piped = run_pipeline(lg);
        if (piped == 0 && hook != NULL) {
            if (finish_logged(lg, entries, n, hook) == 0) {
                record_refusals(lg, entries, n);
                return 0;
            }
            if (lg->base.hook_failed)
                return -1; /* the log's own failure: the writer retries the batch */
        } else if (piped == 0) {
            /* Committed. An answer that cannot be read refuses its event
             * alone: its client retries, and is answered then. */
            if (answer_unchanged(lg, entries) != 0) {
                for (size_t i = 0; i < lg->item_count; i++) {
                    const pg_item *item = &lg->items[i];
                    if (!item->answered && item->event->kind == LEDGER_EVENT_CONFIRM)
                        entries[item->entry].status = LEDGER_APPLY_EVENT_FAILED;
                }
            }
            set_outcomes(lg, entries);
            record_refusals(lg, entries, n);
            return 0;
        }
        rollback_quietly(lg);
        if (sqlstate_retry(lg->sqlstate) && attempt < PG_TXN_TRIES)
            continue;
        if (sqlstate_data(lg->sqlstate) && !connection_lost(lg))
            return write_isolated(lg, entries, n, hook);
        return -1;
    }
}

static int pg_write(ledger *base, ledger_batch_entry *entries, size_t n,
                    const ledger_log_hook *hook)
{
    ledger_pg *lg = impl(base);
    lg->err[0] = '\0';
    lg->logging = hook != NULL;
    int rc = write_batch(lg, entries, n, hook);
    lg->logging = false;
    lg->log_locked = false;
    return rc;
}

/* ---- one event at a time: begin, apply, commit ---- */

/* Runs the one round the handle holds, synchronously. */
static int run_round(ledger_pg *lg)
{
    const char *values[PARAM_COUNT];
    int lengths[PARAM_COUNT];
    pg_round *rd = &lg->rounds[0];
    round_params(rd, want_inserts(lg, rd), values, lengths);
    PGresult *res =
        run(lg, "write", "ledger_write", NULL, PARAM_COUNT, values, lengths, PGRES_TUPLES_OK);
    if (res == NULL)
        return -1;
    int rc = take_round(lg, rd, res);
    PQclear(res);
    return rc;
}

/*
 * One event under a savepoint (inside a transaction), so that a refusal
 * leaves the transaction going, as in SQLite. The caller validated it.
 */
static int apply_isolated(ledger_pg *lg, const ledger_event *ev, ledger_result *result)
{
    uint8_t id[16];
    ledger_result *scratch = NULL;
    int rc = LEDGER_APPLY_TXN_FAILED;
    if (!event_valid(lg, ev, id)) {
        ledger_refusal_add(&lg->base, lg->err);
        return LEDGER_APPLY_EVENT_FAILED;
    }
    /* A confirmation is answered from a row even when nobody asks. */
    if (result == NULL && ev->kind == LEDGER_EVENT_CONFIRM) {
        scratch = malloc(sizeof *scratch);
        if (scratch == NULL) {
            fail(lg, "ledger confirm %s: out of memory", ev->row.id);
            return LEDGER_APPLY_TXN_FAILED;
        }
        result = scratch;
    }
    txn_reset(lg);
    if (add_event(lg, ev, id, result, 0, NULL, 0) != 0)
        goto out;
    if (exec(lg, "write", "SAVEPOINT ledger_event") != 0)
        goto out;
    if (run_round(lg) != 0) {
        if (!sqlstate_data(lg->sqlstate) || connection_lost(lg))
            goto out;
        char why[LEDGER_ERR_MAX];
        snprintf(why, sizeof why, "%s", lg->err);
        if (exec(lg, "write", "ROLLBACK TO SAVEPOINT ledger_event") != 0)
            goto out;
        snprintf(lg->err, sizeof lg->err, "%s", why);
        ledger_refusal_add(&lg->base, why);
        rc = LEDGER_APPLY_EVENT_FAILED;
        goto out;
    }
    if (answer_unchanged(lg, NULL) != 0) {
        char why[LEDGER_ERR_MAX];
        snprintf(why, sizeof why, "%s", lg->err);
        if (connection_lost(lg) || exec(lg, "write", "ROLLBACK TO SAVEPOINT ledger_event") != 0)
            goto out;
        snprintf(lg->err, sizeof lg->err, "%s", why);
        ledger_refusal_add(&lg->base, why);
        rc = LEDGER_APPLY_EVENT_FAILED;
        goto out;
    }
    if (exec(lg, "write", "RELEASE SAVEPOINT ledger_event") != 0)
        goto out;
    rc = 0;
out:
    free(scratch);
    return rc;
}

static int pg_begin(ledger *base)
{
    ledger_pg *lg = impl(base);
    lg->err[0] = '\0';
    if (lg->read_only) {
        fail(lg, "ledger: read-only handle");
        return -1;
    }
    if (lg->in_txn) {
        fail(lg, "ledger begin: a transaction is open");
        return -1;
    }
    if (ensure_connected(lg) != 0)
        return -1;
    if (exec(lg, "begin", "BEGIN ISOLATION LEVEL READ COMMITTED") != 0)
        return -1;
    lg->in_txn = true;
    return 0;
}

static int pg_apply(ledger *base, const ledger_event *ev, ledger_result *result)
{
    ledger_pg *lg = impl(base);
    uint8_t id[16];
    lg->err[0] = '\0';
    if (lg->read_only) {
        fail(lg, "ledger: read-only handle");
        return LEDGER_APPLY_EVENT_FAILED;
    }
    if (!event_valid(lg, ev, id))
        return LEDGER_APPLY_EVENT_FAILED;
    if (lg->in_txn) {
        ledger_refusals_reset(base);
        return apply_isolated(lg, ev, result);
    }
    /* Outside a transaction: one of its own, as SQLite's autocommit. */
    if (pg_begin(base) != 0)
        return LEDGER_APPLY_TXN_FAILED;
    ledger_refusals_reset(base);
    int rc = apply_isolated(lg, ev, result);
    if (rc == LEDGER_APPLY_TXN_FAILED) {
        lg->in_txn = false;
        rollback_quietly(lg);
        return rc;
    }
    char why[LEDGER_ERR_MAX];
    snprintf(why, sizeof why, "%s", lg->err);
    lg->in_txn = false;
    if (exec(lg, "commit", "COMMIT") != 0) {
        rollback_quietly(lg);
        return LEDGER_APPLY_TXN_FAILED;
    }
    snprintf(lg->err, sizeof lg->err, "%s", why);
    return rc;
}

static int pg_commit(ledger *base)
{
    ledger_pg *lg = impl(base);
    if (!lg->in_txn) {
        fail(lg, "ledger commit: no transaction is open");
        return -1;
    }
    lg->in_txn = false;
    PGresult *res = run(lg, "commit", NULL, "COMMIT", 0, NULL, NULL, PGRES_COMMAND_OK);
    if (res == NULL) {
        rollback_quietly(lg);
        return -1;
    }
    bool committed = strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    if (!committed) {
        fail(lg, "ledger commit: the transaction was rolled back after an error");
        return -1;
    }
    return 0;
}

static int pg_rollback(ledger *base)
{
    ledger_pg *lg = impl(base);
    lg->in_txn = false;
    if (connection_lost(lg) || PQtransactionStatus(lg->conn) == PQTRANS_IDLE)
        return 0;
    if (exec(lg, "rollback", "ROLLBACK") != 0) {
        lg->broken = true;
        return -1;
    }
    return 0;
}

static int pg_set_lock_timeout(ledger *base, int timeout_ms)
{
    ledger_pg *lg = impl(base);
    char sql[64];
    lg->lock_timeout_ms = timeout_ms;
    snprintf(sql, sizeof sql, "SET lock_timeout = %d", timeout_ms);
    return exec(lg, "settings", sql);
}

/* ---- reads ---- */

/*
 * A read, tried again once on a fresh connection if the old one was lost
 * (the server restarted, a proxy closed it): reads are safe to repeat.
 */
static PGresult *read_query(ledger_pg *lg, const char *what, const char *name, const char *sql,
                            int nparams, const char *const *values, const int *lengths)
{
    lg->err[0] = '\0';
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!lg->in_txn && !lg->cursor_open && ensure_connected(lg) != 0)
            return NULL;
        PGresult *res = run(lg, what, name, sql, nparams, values, lengths, PGRES_TUPLES_OK);
        if (res != NULL)
            return res;
        if (lg->in_txn || lg->cursor_open || !connection_lost(lg))
            break;
    }
    return NULL;
}

static int pg_get(ledger *base, const char *id, ledger_delivery *out)
{
    ledger_pg *lg = impl(base);
    uint8_t raw[16];
    if (!id_parse(id, raw))
        return 0; /* no row has such an ID */
    const char *values[1] = {(const char *)raw};
    int lengths[1] = {16};
    PGresult *res = read_query(lg, "read", "ledger_get", NULL, 1, values, lengths);
    if (res == NULL)
        return -1;
    int found = PQntuples(res) > 0 ? (read_row(lg, res, 0, 0, out) == 0 ? 1 : -1) : 0;
    PQclear(res);
    return found;
}

static long long pg_count(ledger *base)
{
    ledger_pg *lg = impl(base);
    PGresult *res = read_query(lg, "count", NULL, "SELECT count(*) FROM deliveries", 0, NULL, NULL);
    if (res == NULL)
        return -1;
    long long n = (long long)get_count(res, 0, 0);
    PQclear(res);
    return n;
}

static int pg_summary(ledger *base, ledger_summary *out)
{
    ledger_pg *lg = impl(base);
    memset(out, 0, sizeof *out);
    PGresult *res = read_query(lg, "summary", NULL, SUMMARY_SQL, 0, NULL, NULL);
    if (res == NULL)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        char status_name[16], kind_name[16];
        ledger_status status;
        ledger_kind kind;
        get_text(res, i, 0, status_name, sizeof status_name);
        get_text(res, i, 1, kind_name, sizeof kind_name);
        if (ledger_status_parse(status_name, &status) != 0 ||
            ledger_kind_parse(kind_name, &kind) != 0) {
            PQclear(res);
            fail(lg, "ledger summary: a row of unknown status or kind");
            return -1;
        }
        ledger_summary_count(out, status, kind, get_count(res, i, 2));
        out->first_ms = get_count(res, i, 3);
        out->last_ms = get_count(res, i, 4);
        if (get_count(res, i, 5) > out->last_ms)
            out->last_ms = get_count(res, i, 5);
    }
    PQclear(res);
    return 0;
}

static int pg_content_stats(ledger *base, ledger_content_fn fn, void *arg)
{
    ledger_pg *lg = impl(base);
    PGresult *res = read_query(lg, "contents", NULL, CONTENT_STATS_SQL, 0, NULL, NULL);
    if (res == NULL)
        return -1;
    ledger_content_stats row;
    for (int i = 0; i < PQntuples(res); i++) {
        memset(&row, 0, sizeof row);
        get_text(res, i, 0, row.path, sizeof row.path);
        get_sha256(res, i, 1, row.sha256);
        row.size = get_count(res, i, 2);
        row.deliveries = get_count(res, i, 3);
        row.confirmed = get_count(res, i, 4);
        row.corrupted = get_count(res, i, 5);
        row.pending = get_count(res, i, 6);
        row.first_ms = get_count(res, i, 7);
        row.last_ms = get_count(res, i, 8);
        row.has_latency = !is_null(res, i, 9);
        row.median_ms = (int64_t)get_i64(res, i, 9);
        row.p95_ms = (int64_t)get_i64(res, i, 10);
        if (fn(arg, &row) != 0)
            break;
    }
    PQclear(res);
    return 0;
}

static int pg_client_stats(ledger *base, ledger_client_fn fn, void *arg)
{
    ledger_pg *lg = impl(base);
    PGresult *res = read_query(lg, "clients", NULL, CLIENT_STATS_SQL, 0, NULL, NULL);
    if (res == NULL)
        return -1;
    ledger_client_stats row;
    for (int i = 0; i < PQntuples(res); i++) {
        memset(&row, 0, sizeof row);
        get_text(res, i, 0, row.client, sizeof row.client);
        row.deliveries = get_count(res, i, 1);
        row.confirmed = get_count(res, i, 2);
        row.corrupted = get_count(res, i, 3);
        row.pending = get_count(res, i, 4);
        row.last_seen_ms = get_count(res, i, 5);
        if (fn(arg, &row) != 0)
            break;
    }
    PQclear(res);
    return 0;
}

static int pg_series(ledger *base, uint64_t since_ms, uint64_t until_ms, uint64_t width_ms,
                     ledger_bucket_fn fn, void *arg)
{
    ledger_pg *lg = impl(base);
    uint8_t p[3][8];
    if (since_ms > (uint64_t)INT64_MAX || until_ms > (uint64_t)INT64_MAX ||
        width_ms > (uint64_t)INT64_MAX) {
        fail(lg, "ledger series: a time is out of range");
        return -1;
    }
    /* Whole minutes from the per-minute rollup, other widths from the rows. */
    bool minutes = since_ms % PG_ROLLUP_MINUTE_MS == 0 && until_ms % PG_ROLLUP_MINUTE_MS == 0 &&
                   width_ms % PG_ROLLUP_MINUTE_MS == 0;
    uint64_t unit = minutes ? PG_ROLLUP_MINUTE_MS : 1;
    put_be64(p[0], since_ms / unit);
    put_be64(p[1], until_ms / unit);
    put_be64(p[2], width_ms / unit);
    const char *values[3] = {(const char *)p[0], (const char *)p[1], (const char *)p[2]};
    int lengths[3] = {8, 8, 8};
    PGresult *res = read_query(lg, "series", NULL, minutes ? SERIES_MINUTES_SQL : SERIES_SQL, 3,
                               values, lengths);
    if (res == NULL)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        ledger_bucket row = {
            .start_ms = since_ms + get_count(res, i, 0) * width_ms,
            .deliveries = get_count(res, i, 1),
            .confirmed = get_count(res, i, 2),
            .corrupted = get_count(res, i, 3),
        };
        if (fn(arg, &row) != 0)
            break;
    }
    PQclear(res);
    return 0;
}

static long pg_rollups_check(ledger *base, ledger_problem_fn fn, void *arg)
{
    ledger_pg *lg = impl(base);
    PGresult *res = read_query(lg, "rollups", NULL, ROLLUP_CHECK_SQL, 0, NULL, NULL);
    if (res == NULL)
        return -1;
    long differences = PQntuples(res);
    for (int i = 0; i < PQntuples(res); i++) {
        char what[96], counted[64], kept[64];
        get_text(res, i, 0, what, sizeof what);
        get_text(res, i, 1, counted, sizeof counted);
        get_text(res, i, 2, kept, sizeof kept);
        ledger_rollup_problem(fn, arg, what, counted, kept);
    }
    PQclear(res);
    return differences;
}

/* ---- queries ---- */

/*
 * With a limit (an admin page), the rows come in one result. Without one
 * (exports, reports), through a server-side cursor, PG_FETCH_ROWS at a time,
 * in a read-only transaction that keeps one snapshot for the whole set.
 */
typedef struct pg_cursor {
    ledger_cursor base; /* first: ledger.c dispatches through it */
    PGresult *res;
    int next;
    bool declared;  /* a server-side cursor exists */
    bool streaming; /* and has more rows to fetch */
    bool done;
} pg_cursor;

enum query_param {
    QP_PATH,
    QP_CLIENT,
    QP_SINCE,
    QP_UNTIL,
    QP_BEFORE,
    QP_AFTER,
    QP_LIMIT,
    QP_COUNT,
};

typedef struct query_params {
    const char *values[QP_COUNT];
    int lengths[QP_COUNT];
    int count;
    uint8_t since[8], until[8], limit[8];
    uint8_t before[16], after[16];
} query_params;

static int add_param(query_params *qp, const void *value, int length)
{
    qp->values[qp->count] = value;
    qp->lengths[qp->count] = length;
    return ++qp->count;
}

/*
 * The SQL of a query for a filter and its parameters (binary, in qp).
 * Returns the number of parameters, -1 when the SQL does not fit cap, or -2
 * when an ID of the filter is not a UUID.
 */
static int query_sql(const ledger_filter *f, char *sql, size_t cap, query_params *qp)
{
    size_t len = 0;
    int n;
    memset(qp, 0, sizeof *qp);
#define APPEND(...)                                                                                \
    do {                                                                                           \
        n = snprintf(sql + len, cap - len, __VA_ARGS__);                                           \
        if (n < 0 || (size_t)n >= cap - len)                                                       \
            return -1;                                                                             \
        len += (size_t)n;                                                                          \
    } while (0)
    APPEND("SELECT " COLUMNS " FROM deliveries WHERE true");
    if (f->path != NULL)
        APPEND(" AND path = $%d::text", add_param(qp, f->path, (int)strlen(f->path)));
    if (f->client != NULL)
        APPEND(" AND client = $%d::text", add_param(qp, f->client, (int)strlen(f->client)));
    if (f->since_ms != 0) {
        put_be64(qp->since, f->since_ms);
        APPEND(" AND issued_ms >= $%d::int8", add_param(qp, qp->since, 8));
    }
    if (f->until_ms != 0) {
        put_be64(qp->until, f->until_ms);
        APPEND(" AND issued_ms < $%d::int8", add_param(qp, qp->until, 8));
    }
    if (f->before_id != NULL && f->before_id[0] != '\0') {
        if (!id_parse(f->before_id, qp->before))
            return -2;
        APPEND(" AND id < $%d::uuid", add_param(qp, qp->before, 16));
    }
    if (f->after_id != NULL && f->after_id[0] != '\0') {
        if (!id_parse(f->after_id, qp->after))
            return -2;
        APPEND(" AND id > $%d::uuid", add_param(qp, qp->after, 16));
    }
    if (ledger_filter_names_sql(f, sql, cap, &len) != 0)
        return -1;
    APPEND(" ORDER BY id %s", f->oldest_first ? "ASC" : "DESC");
    if (f->limit != 0) {
        put_be64(qp->limit, f->limit);
        APPEND(" LIMIT $%d::int8", add_param(qp, qp->limit, 8));
    }
#undef APPEND
    return qp->count;
}

int ledger_pg_explain(ledger *base, const ledger_filter *f, char *plan, size_t cap)
{
    ledger_pg *lg = impl(base);
    char sql[PG_QUERY_SQL_MAX];
    char explain[PG_QUERY_SQL_MAX + 96];
    query_params qp;
    if (base == NULL || base->ops != &ledger_pg_ops || cap == 0)
        return -1;
    int n = query_sql(f, sql, sizeof sql, &qp);
    if (n < 0) {
        fail(lg, "ledger explain: the filter cannot be a query");
        return -1;
    }
    /* As ledger_query() runs it: a page as it is, the rest through a cursor. */
    snprintf(explain, sizeof explain, "EXPLAIN %s%s",
             f->limit != 0 ? "" : "DECLARE ledger_explain NO SCROLL CURSOR FOR ", sql);
    bool own_txn = f->limit == 0 && !lg->in_txn;
    if (own_txn && exec(lg, "explain", "BEGIN READ ONLY") != 0)
        return -1;
    PGresult *res = read_query(lg, "explain", NULL, explain, n, qp.values, qp.lengths);
    if (own_txn)
        exec(lg, "explain", "ROLLBACK");
    if (res == NULL)
        return -1;
    size_t len = 0;
    plan[0] = '\0';
    for (int i = 0; i < PQntuples(res); i++) {
        int w = snprintf(plan + len, cap - len, "%.*s\n", PQgetlength(res, i, 0),
                         PQgetvalue(res, i, 0));
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
    PQclear(res);
    return 0;
}

static int fetch_more(ledger_pg *lg, pg_cursor *cur)
{
    char sql[64];
    snprintf(sql, sizeof sql, "FETCH %d FROM ledger_rows", PG_FETCH_ROWS);
    PQclear(cur->res);
    cur->res = run(lg, "query", NULL, sql, 0, NULL, NULL, PGRES_TUPLES_OK);
    cur->next = 0;
    if (cur->res == NULL)
        return -1;
    if (PQntuples(cur->res) < PG_FETCH_ROWS)
        cur->streaming = false;
    return 0;
}

/* Ends the cursor's own transaction, or closes it inside the caller's. */
static void end_cursor(ledger_pg *lg, pg_cursor *cur)
{
    bool declared = cur != NULL && cur->declared;
    if (cur != NULL)
        cur->declared = false;
    if (connection_lost(lg)) {
        lg->cursor_open = false;
        return;
    }
    if (lg->cursor_open) {
        lg->cursor_open = false;
        if (PQtransactionStatus(lg->conn) != PQTRANS_IDLE && exec(lg, "query", "COMMIT") != 0)
            lg->broken = true;
    } else if (declared && exec(lg, "query", "CLOSE ledger_rows") != 0) {
        lg->broken = true;
    }
}

static ledger_cursor *pg_query(ledger *base, const ledger_filter *f)
{
    ledger_pg *lg = impl(base);
    char sql[PG_QUERY_SQL_MAX];
    char declare[PG_QUERY_SQL_MAX + 64];
    query_params qp;
    pg_cursor *cur = NULL;
    lg->err[0] = '\0';
    if (f->since_ms > (uint64_t)INT64_MAX || f->until_ms > (uint64_t)INT64_MAX ||
        f->limit > (uint64_t)INT64_MAX ||
        (f->statuses & ~(LEDGER_STATUS_BIT(LEDGER_CORRUPTED + 1) - 1)) != 0 ||
        (f->kinds & ~(LEDGER_KIND_BIT(LEDGER_KIND_COUNT) - 1)) != 0) {
        fail(lg, "ledger query: a filter is out of range");
        return NULL;
    }
    int n = query_sql(f, sql, sizeof sql, &qp);
    if (n == -2) {
        fail(lg, "ledger query: a delivery ID in the filter is not a lowercase UUID");
        return NULL;
    }
    if (n < 0) {
        fail(lg, "ledger query: too many conditions");
        return NULL;
    }
    if (lg->cursor_open) {
        fail(lg, "ledger query: another query's rows are still being read");
        return NULL;
    }
    cur = calloc(1, sizeof *cur);
    if (cur == NULL) {
        fail(lg, "ledger query: out of memory");
        return NULL;
    }
    cur->base.lg = base;
    if (f->limit != 0) {
        cur->res = read_query(lg, "query", NULL, sql, n, qp.values, qp.lengths);
        if (cur->res == NULL)
            goto fail;
        return &cur->base;
    }
    /* As read_query(): once more on a new connection if the old one was lost. */
    for (int attempt = 0;; attempt++) {
        if (!lg->in_txn) {
            if (ensure_connected(lg) != 0)
                goto fail;
            if (exec(lg, "query", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != 0) {
                if (attempt == 0 && connection_lost(lg))
                    continue;
                goto fail;
            }
            lg->cursor_open = true;
        }
        snprintf(declare, sizeof declare, "DECLARE ledger_rows NO SCROLL CURSOR FOR %s", sql);
        PGresult *res = run(lg, "query", NULL, declare, n, qp.values, qp.lengths, PGRES_COMMAND_OK);
        if (res != NULL) {
            PQclear(res);
            break;
        }
        if (attempt == 0 && !lg->in_txn && connection_lost(lg)) {
            lg->cursor_open = false;
            continue;
        }
        goto fail;
    }
    cur->declared = true;
    cur->streaming = true;
    if (fetch_more(lg, cur) != 0)
        goto fail;
    return &cur->base;
fail:
    end_cursor(lg, cur);
    PQclear(cur->res);
    free(cur);
    return NULL;
}

static int pg_cursor_next(ledger_cursor *base, ledger_delivery *out)
{
    pg_cursor *cur = (pg_cursor *)base;
    ledger_pg *lg = impl(base->lg);
    if (cur->done)
        return 0;
    if (cur->res != NULL && cur->next >= PQntuples(cur->res) && cur->streaming &&
        fetch_more(lg, cur) != 0) {
        cur->done = true;
        end_cursor(lg, cur);
        return -1;
    }
    if (cur->res == NULL || cur->next >= PQntuples(cur->res)) {
        cur->done = true;
        /* Ends the read transaction now rather than when the cursor is freed. */
        end_cursor(lg, cur);
        return 0;
    }
    return read_row(lg, cur->res, cur->next++, 0, out) == 0 ? 1 : -1;
}

static void pg_cursor_free(ledger_cursor *base)
{
    pg_cursor *cur = (pg_cursor *)base;
    ledger_pg *lg = impl(base->lg);
    PQclear(cur->res);
    if (!cur->done)
        end_cursor(lg, cur);
    free(cur);
}

/* ---- opening ---- */

static const char *pg_error(const ledger *base)
{
    return ((const ledger_pg *)base)->err;
}

static const char *pg_where(const ledger *base)
{
    return ((const ledger_pg *)base)->where;
}

static void free_rounds(ledger_pg *lg)
{
    for (size_t r = 0; r < lg->round_cap; r++) {
        for (int c = 0; c < ARRAY_PARAMS; c++)
            free(lg->rounds[r].col[c].data);
        free(lg->rounds[r].items);
        free(lg->rounds[r].partners);
    }
    free(lg->rounds);
}

/* ---- the evidence log ---- */

/* A binary array being built: its header first, written by array_end(). */
static int array_begin(pg_buf *b)
{
    static const uint8_t header[20] = {0};
    b->len = 0;
    return buf_put(b, header, sizeof header);
}

static void array_end(pg_buf *b, unsigned oid, size_t n, bool has_null)
{
    put_be32(b->data, 1);
    put_be32(b->data + 4, has_null ? 1 : 0);
    put_be32(b->data + 8, oid);
    put_be32(b->data + 12, (uint32_t)n);
    put_be32(b->data + 16, 1);
}

static int pg_log_lock(ledger *base, uint64_t *size)
{
    ledger_pg *lg = impl(base);
    if (!lg->log_locked) {
        PGresult *res =
            run(lg, "log lock", "ledger_log_lock", NULL, 0, NULL, NULL, PGRES_TUPLES_OK);
        if (res == NULL)
            return -1;
        PQclear(res);
        lg->log_locked = true;
        res = run(lg, "log", "ledger_log_head", NULL, 0, NULL, NULL, PGRES_TUPLES_OK);
        if (res == NULL)
            return -1;
        lg->log_head = PQntuples(res) == 1 ? get_count(res, 0, 0) : 0;
        PQclear(res);
    }
    *size = lg->log_head;
    return 0;
}

/* Runs one of the log's prepared statements (name), or sends it into the
 * open pipeline (commit_logged()). */
static int log_command(ledger_pg *lg, const char *name, int nparams, const char *const *values,
                       const int *lengths)
{
    if (lg->log_pipeline) {
        /* libpq copies the parameters into its buffer now. */
        if (PQsendQueryPrepared(lg->conn, name, nparams, values, lengths, binary_formats, 1) != 1) {
            fail_conn(lg, "log");
            lg->broken = true;
            return -1;
        }
        lg->log_sent++;
        return 0;
    }
    PGresult *res = run(lg, "log", name, NULL, nparams, values, lengths, PGRES_COMMAND_OK);
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

static int pg_log_store(ledger *base, const ledger_log_write *w)
{
    ledger_pg *lg = impl(base);
    pg_buf *col = lg->log_col;
    bool nulls = false;
    if (w->entry_count > 0) {
        for (int c = 0; c < 5; c++)
            if (array_begin(&col[c]) != 0)
                goto oom;
        for (size_t i = 0; i < w->entry_count; i++) {
            const ledger_log_entry *e = &w->entries[i];
            uint8_t id[16];
            int rc = elem_i64(&col[0], e->leaf);
            if (e->delivery != NULL && id_parse(e->delivery, id)) {
                rc |= elem_bytes(&col[1], id, 16);
            } else {
                rc |= elem_null(&col[1]);
                nulls = true;
            }
            rc |= elem_bytes(&col[2], e->salt, LEDGER_SALT_LEN);
            rc |= elem_bytes(&col[3], e->commitment, LEDGER_HASH_LEN);
            rc |= elem_bytes(&col[4], e->event, e->event_len);
            if (rc != 0)
                goto oom;
        }
        static const unsigned oids[5] = {OID_INT8, OID_UUID, OID_BYTEA, OID_BYTEA, OID_TEXT};
        const char *values[5];
        int lengths[5];
        for (int c = 0; c < 5; c++) {
            array_end(&col[c], oids[c], w->entry_count, c == 1 && nulls);
            values[c] = (const char *)col[c].data;
            lengths[c] = (int)col[c].len;
        }
        if (log_command(lg, "ledger_log_entries", 5, values, lengths) != 0)
            return -1;
    }
    for (size_t i = 0; i < w->tile_count; i++) {
        const ledger_log_tile *t = &w->tiles[i];
        uint8_t level[2] = {0, (uint8_t)t->level};
        uint8_t idx[8];
        put_be64(idx, t->index);
        const char *values[3] = {(const char *)level, (const char *)idx, (const char *)t->hashes};
        int lengths[3] = {2, 8, (int)(t->width * LEDGER_HASH_LEN)};
        if (log_command(lg, "ledger_log_tile", 3, values, lengths) != 0)
            return -1;
    }
    if (w->checkpoint == NULL)
        return 0;
    uint8_t size[8], time_ms[8];
    put_be64(size, w->size);
    put_be64(time_ms, w->time_ms);
    const char *values[3] = {(const char *)size, (const char *)time_ms, w->checkpoint};
    int lengths[3] = {8, 8, (int)strlen(w->checkpoint)};
    return log_command(lg, "ledger_log_checkpoint", 3, values, lengths);
oom:
    fail(lg, "ledger log: out of memory");
    return -1;
}

#define LOG_ENTRY_SELECT "SELECT leaf, delivery, salt, commitment, "

/* The rows of a log_entries query (LOG_ENTRY_SELECT's columns) to fn, in
 * order; res is cleared. NULL (the query failed) is -1. */
static int log_rows_emit(PGresult *res, ledger_log_row_fn fn, void *arg)
{
    if (res == NULL)
        return -1;
    int rows = PQntuples(res);
    for (int r = 0; r < rows; r++) {
        ledger_log_row row;
        memset(&row, 0, sizeof row);
        row.leaf = get_i64(res, r, 0);
        if (!is_null(res, r, 1) && PQgetlength(res, r, 1) == 16)
            id_format((const uint8_t *)PQgetvalue(res, r, 1), row.delivery);
        if (PQgetlength(res, r, 2) == LEDGER_SALT_LEN)
            memcpy(row.salt, PQgetvalue(res, r, 2), LEDGER_SALT_LEN);
        get_sha256(res, r, 3, row.commitment);
        if (!is_null(res, r, 4)) {
            row.event = PQgetvalue(res, r, 4);
            row.event_len = (size_t)PQgetlength(res, r, 4);
        }
        if (fn(arg, &row) != 0)
            break;
    }
    PQclear(res);
    return 0;
}

static int pg_log_entries(ledger *base, ledger_log_select select, uint64_t first, uint64_t count,
                          const char *delivery, bool commitments_only, ledger_log_row_fn fn,
                          void *arg)
{
    ledger_pg *lg = impl(base);
    char sql[256];
    const char *values[2] = {NULL, NULL};
    int lengths[2] = {0, 0};
    int nparams = 0;
    uint8_t lo[8], hi[8], id[16];
    const char *event = commitments_only ? "NULL::text" : "event";
    switch (select) {
    case LEDGER_LOG_RANGE: {
        uint64_t end = first + count < first ? UINT64_MAX : first + count;
        put_be64(lo, first > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : first);
        put_be64(hi, end > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : end);
        values[0] = (const char *)lo;
        values[1] = (const char *)hi;
        lengths[0] = lengths[1] = 8;
        nparams = 2;
        snprintf(sql, sizeof sql,
                 LOG_ENTRY_SELECT "%s FROM log_entries WHERE leaf >= $1::int8 AND leaf < $2::int8"
                                  " ORDER BY leaf",
                 event);
        break;
    }
    case LEDGER_LOG_DELIVERY:
        if (!id_parse(delivery, id))
            return 0; /* no entry names such an ID */
        values[0] = (const char *)id;
        lengths[0] = 16;
        nparams = 1;
        snprintf(sql, sizeof sql,
                 LOG_ENTRY_SELECT "%s FROM log_entries WHERE delivery = $1::uuid ORDER BY leaf",
                 event);
        break;
    case LEDGER_LOG_OWN:
    default:
        snprintf(sql, sizeof sql,
                 LOG_ENTRY_SELECT "%s FROM log_entries WHERE delivery IS NULL ORDER BY leaf",
                 event);
        break;
    }
    return log_rows_emit(read_query(lg, "log", NULL, sql, nparams, values, lengths), fn, arg);
}

static int pg_log_deliveries(ledger *base, const char *after_id, const char *last_id,
                             ledger_log_row_fn fn, void *arg)
{
    ledger_pg *lg = impl(base);
    uint8_t after[16], last[16];
    if ((after_id != NULL && !id_parse(after_id, after)) ||
        (last_id != NULL && !id_parse(last_id, last))) {
        fail(lg, "ledger log: a delivery ID is not a UUID");
        return -1;
    }
    /* Unnamed, so planned with the values: an open end drops its test. */
    const char *values[2] = {after_id != NULL ? (const char *)after : NULL,
                             last_id != NULL ? (const char *)last : NULL};
    int lengths[2] = {16, 16};
    return log_rows_emit(read_query(lg, "log", NULL,
                                    LOG_ENTRY_SELECT
                                    "event FROM log_entries"
                                    " WHERE delivery IS NOT NULL"
                                    " AND ($1::uuid IS NULL OR delivery > $1::uuid)"
                                    " AND ($2::uuid IS NULL OR delivery <= $2::uuid)"
                                    " ORDER BY delivery, leaf",
                                    2, values, lengths),
                         fn, arg);
}

static int pg_log_checkpoints(ledger *base, uint64_t min_size, uint64_t max_size, bool newest_first,
                              uint64_t limit, ledger_checkpoint_fn fn, void *arg)
{
    ledger_pg *lg = impl(base);
    uint8_t lo[8], hi[8], lim[8];
    put_be64(lo, min_size > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : min_size);
    put_be64(hi, max_size > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : max_size);
    put_be64(lim, limit > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : limit);
    /* LIMIT NULL is no limit. */
    const char *values[3] = {(const char *)lo, (const char *)hi,
                             limit == 0 ? NULL : (const char *)lim};
    int lengths[3] = {8, 8, 8};
    PGresult *res = read_query(
        lg, "log checkpoints", NULL,
        newest_first ? "SELECT size, time_ms, note FROM log_checkpoints WHERE size >= $1::int8"
                       " AND size <= $2::int8 ORDER BY size DESC LIMIT $3::int8"
                     : "SELECT size, time_ms, note FROM log_checkpoints WHERE size >= $1::int8"
                       " AND size <= $2::int8 ORDER BY size LIMIT $3::int8",
        3, values, lengths);
    if (res == NULL)
        return -1;
    int rows = PQntuples(res);
    for (int r = 0; r < rows; r++)
        if (fn(arg, get_i64(res, r, 0), get_i64(res, r, 1), PQgetvalue(res, r, 2)) != 0)
            break;
    PQclear(res);
    return 0;
}

static int pg_log_tile(ledger *base, unsigned level, uint64_t index, uint8_t *out, unsigned *width)
{
    ledger_pg *lg = impl(base);
    uint8_t lv[2] = {0, (uint8_t)level}, idx[8];
    put_be64(idx, index > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : index);
    const char *values[2] = {(const char *)lv, (const char *)idx};
    int lengths[2] = {2, 8};
    *width = 0;
    PGresult *res = read_query(lg, "log tile", NULL,
                               "SELECT hashes FROM log_tiles WHERE level = $1::int2"
                               " AND idx = $2::int8",
                               2, values, lengths);
    if (res == NULL)
        return -1;
    int rc = 0;
    if (PQntuples(res) > 0) {
        int n = PQgetlength(res, 0, 0);
        if (n <= 0 || n > 256 * LEDGER_HASH_LEN || n % LEDGER_HASH_LEN != 0) {
            fail(lg, "ledger log: tile %u/%" PRIu64 " is damaged", level, index);
            rc = -1;
        } else {
            memcpy(out, PQgetvalue(res, 0, 0), (size_t)n);
            *width = (unsigned)(n / LEDGER_HASH_LEN);
        }
    }
    PQclear(res);
    return rc;
}

static void pg_close(ledger *base)
{
    ledger_pg *lg = impl(base);
    if (lg == NULL)
        return;
    PQfinish(lg->conn);
    free_rounds(lg);
    free(lg->items);
    free(lg->slots);
    free(lg->entry_ids);
    free(lg->merge);
    free(lg->scratch.data);
    for (size_t c = 0; c < sizeof lg->log_col / sizeof lg->log_col[0]; c++)
        free(lg->log_col[c].data);
    free(lg);
}

/* The ledger prints nothing: notices (an IF NOT EXISTS that found it) go. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/*
 * Defaults before the string (which may override them), then the string,
 * then what the ledger needs whatever the string says.
 */
static PGconn *connect_to(const char *target)
{
    const char *keys[] = {
        "fallback_application_name",
        "connect_timeout",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "dbname",
        "client_encoding",
        NULL,
    };
    const char *values[] = {
        "receiptd", PG_CONNECT_TIMEOUT_S, "1", "10", "5", "3", "30000", target, "UTF8", NULL,
    };
    return PQconnectdbParams(keys, values, 1);
}

static ledger *pg_open(const char *target, bool read_only, bool *unreachable, char *err,
                       size_t errlen)
{
    char where[PG_WHERE_MAX];
    ledger_pg *lg = calloc(1, sizeof *lg);
    if (lg == NULL) {
        snprintf(err, errlen, "ledger: out of memory");
        return NULL;
    }
    lg->base.ops = &ledger_pg_ops;
    lg->read_only = read_only;
    lg->generation = 1;
    lg->lock_timeout_ms = -1;

    if (describe_unconnected(target, where, sizeof where, err, errlen) != 0) {
        free(lg);
        return NULL;
    }
    lg->conn = connect_to(target);
    if (lg->conn == NULL) {
        snprintf(err, errlen, "ledger %s: out of memory", where);
        free(lg);
        return NULL;
    }
    if (PQstatus(lg->conn) != CONNECTION_OK) {
        fail_conn(lg, "connect");
        *unreachable = true;
        goto fail;
    }
    PQsetNoticeProcessor(lg->conn, ignore_notice, NULL);
    describe(lg);
    snprintf(where, sizeof where, "%s", lg->where);
    if (configure_session(lg) != 0)
        goto fail;
    if ((read_only ? check_version(lg) : migrate(lg)) != 0)
        goto fail;
    if (prepare_statements(lg) != 0)
        goto fail;
    lg->err[0] = '\0';
    return &lg->base;

fail:
    snprintf(err, errlen, "ledger %s: %s", where,
             strncmp(lg->err, "ledger ", 7) == 0 ? lg->err + 7 : lg->err);
    pg_close(&lg->base);
    return NULL;
}

const ledger_ops ledger_pg_ops = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .error = pg_error,
    .timed_out = pg_timed_out,
    .set_lock_timeout = pg_set_lock_timeout,
    .begin = pg_begin,
    .apply = pg_apply,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .write = pg_write,
    .log_store = pg_log_store,
    .log_lock = pg_log_lock,
    .log_entries = pg_log_entries,
    .log_deliveries = pg_log_deliveries,
    .log_checkpoints = pg_log_checkpoints,
    .log_tile = pg_log_tile,
    .prepare = pg_prepare,
    .where = pg_where,
    .get = pg_get,
    .count = pg_count,
    .summary = pg_summary,
    .content_stats = pg_content_stats,
    .client_stats = pg_client_stats,
    .series = pg_series,
    .rollups_check = pg_rollups_check,
    .query = pg_query,
    .cursor_next = pg_cursor_next,
    .cursor_free = pg_cursor_free,
};
