/*
 * ledger_pg: what the PostgreSQL backend shows beyond the ledger interface,
 * for tests and diagnosis. Everything else goes through ledger.h.
 */
#ifndef RECEIPT_DAEMON_LEDGER_PG_H
#define RECEIPT_DAEMON_LEDGER_PG_H

#include "daemon/ledger.h"

#include <stddef.h>

/*
 * The plan PostgreSQL makes for the statement ledger_query() runs for this
 * filter (EXPLAIN, text format, one line per plan node), on lg's connection
 * with the same parameters. lg must be a PostgreSQL ledger. Returns 0 with
 * plan set, or -1 (message in ledger_error()).
 */
int ledger_pg_explain(ledger *lg, const ledger_filter *filter, char *plan, size_t cap);

#endif
