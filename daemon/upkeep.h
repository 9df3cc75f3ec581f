/*
 * upkeep: the ledger's housekeeping, on a thread and a connection of its
 * own, so that the writer never waits for it.
 *
 * Once a day it makes the PostgreSQL ledger's monthly partitions for this
 * month and the next LEDGER_MONTHS_AHEAD (the writer's open makes them at
 * start), so that rows never pile up in the default partition while
 * receiptd runs; a failure is logged and tried again an hour later. Several
 * nodes doing it at once is safe (an advisory lock, and months that exist
 * are left alone). SQLite needs none of it: no thread is started.
 */
#ifndef RECEIPT_DAEMON_UPKEEP_H
#define RECEIPT_DAEMON_UPKEEP_H

#define UPKEEP_INTERVAL_S 86400 /* between runs that succeeded */
#define UPKEEP_RETRY_S    3600  /* after one that failed */

typedef struct upkeep upkeep;

/*
 * Starts the thread for a PostgreSQL ledger_url; for any other ledger
 * returns a handle that does nothing. The strings must outlive the handle.
 * Returns NULL only if the thread cannot start.
 */
upkeep *upkeep_start(const char *ledger_url, const char *state_dir);

/* Stops and joins the thread (at most one ledger round trip away); NULL-safe. */
void upkeep_stop(upkeep *u);

#endif
