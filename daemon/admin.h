/*
 * admin: the admin listener (--admin-listen, loopback by default).
 *
 * Serves the dashboard (GET / and its assets), Prometheus metrics
 * (GET /metrics) and the JSON API under /api/ (docs/api.md). Everything but
 * the dashboard's files and /metrics needs "Authorization: Bearer TOKEN",
 * where TOKEN is the content of STATE_DIR/admin-token (admin_token.h).
 *
 * One thread (http_loop.h) serves every admin request, with one read-only
 * ledger connection of its own (SQLite connections are single-threaded);
 * each CSV or NDJSON export streams from a connection of its own, so that
 * memory stays constant and other requests go on. The services are borrowed
 * and must outlive the server.
 */
#ifndef RECEIPT_DAEMON_ADMIN_H
#define RECEIPT_DAEMON_ADMIN_H

#include "daemon/config.h"
#include "daemon/http.h"
#include "daemon/keystore.h"
#include "daemon/tls.h"
#include "daemon/upstream.h"
#include "daemon/writer.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct admin_services {
    const config *cfg;
    writer *ledger_writer;          /* for queue and commit statistics */
    uint64_t recovered_at_start;    /* events applied from the recovery file at start */
    http_server *http;              /* for its connection statistics; may be NULL */
    tls_creds *tls;                 /* NULL: plain HTTP; else HTTPS with its current pair */
    const keystore *keys;           /* for evidence bundles; NULL without the evidence log */
    const upstream_pool *upstreams; /* for their counters; NULL: none */
} admin_services;

typedef struct admin_server admin_server;

/* Starts the listener on cfg->admin_addr. NULL with err set on failure. */
admin_server *admin_start(const admin_services *svc, char *err, size_t errlen);

unsigned admin_port(const admin_server *srv);
const char *admin_token(const admin_server *srv);

/* Closes every connection and frees the server. NULL-safe. */
void admin_stop(admin_server *srv);

#endif
