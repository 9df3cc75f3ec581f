/*
 * readpool: a few read-only ledger handles for the public listener.
 *
 * The public listener reads the ledger for the evidence log alone: tiles and
 * checkpoints that are not in memory, and the proof of a repeated
 * confirmation (docs/evidence.md). Those reads are rare and short; a worker
 * takes a handle, reads, and gives it back. Handles are opened on first use,
 * at most max of them; a worker that finds none free waits up to the
 * timeout, then gets none (and answers 503). A handle that failed is closed
 * on return and opened again by the next user.
 *
 * Thread-safe: the pool is behind its mutex; a handle taken is its taker's
 * alone until given back.
 */
#ifndef RECEIPT_DAEMON_READPOOL_H
#define RECEIPT_DAEMON_READPOOL_H

#include "common/compiler.h"
#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>

#define READPOOL_MAX          16
#define READPOOL_WAIT_MS      2000 /* for a free handle */
#define READPOOL_ERR_INTERVAL 1000 /* ms between two logged open failures */

typedef struct readpool readpool;

/* A pool of at most max (1 .. READPOOL_MAX) handles on the ledger at url
 * (ledger_open()'s). The strings are copied. NULL when out of memory. */
WARN_UNUSED_RESULT readpool *readpool_new(const char *url, const char *state_dir, size_t max);
void readpool_free(readpool *p); /* NULL-safe; every handle must have been given back */

/* A handle, or NULL (none free in time, or the ledger cannot be opened: logged). */
ledger *readpool_take(readpool *p);

/* Gives a handle back; failed: it is closed rather than kept. */
void readpool_give(readpool *p, ledger *lg, bool failed);

#endif
