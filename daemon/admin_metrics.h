/*
 * admin_metrics: the text of GET /metrics on the admin listener, in the
 * Prometheus text format 0.0.4.
 *
 * One table lists every metric family (name, type, help, and where its
 * value is or which function writes its samples): adding a metric is one
 * entry. Values come from the public listener's counters (metrics.h), the
 * ledger writer's statistics and the upstreams' counters (upstream.h), read
 * once per scrape.
 */
#ifndef RECEIPT_DAEMON_ADMIN_METRICS_H
#define RECEIPT_DAEMON_ADMIN_METRICS_H

#include "daemon/admin_auth.h"
#include "daemon/http_guard.h"
#include "daemon/jbuf.h"
#include "daemon/upstream.h"
#include "daemon/writer.h"

#include <stdint.h>

/* Appends every family to b; started_ms is when receiptd started, and
 * recovered the events it applied from the recovery file then. */
void admin_metrics_write(jbuf *b, writer *ledger_writer, uint64_t started_ms, uint64_t recovered,
                         const admin_auth_stats *auth, const http_guard_stats *conns,
                         const upstream_pool *upstreams);

#endif
