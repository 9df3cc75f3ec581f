/*
 * http: receiptd's public listener (libmicrohttpd) and its router.
 *
 * Accepts connections, applies the limits of the config, and routes each
 * request: content to http_file (docs/protocol.md section 5) or, where an
 * upstream claims the path, to http_proxy; plug-in data to plugin,
 * confirmations to confirm, the evidence log to http_log; it serves the JWK
 * Set and the agent itself. It writes the access log once a request
 * completes. The services are borrowed and must outlive the server.
 */
#ifndef RECEIPT_DAEMON_HTTP_H
#define RECEIPT_DAEMON_HTTP_H

#include "daemon/accesslog.h"
#include "daemon/config.h"
#include "daemon/content.h"
#include "daemon/http_guard.h"
#include "daemon/keystore.h"
#include "daemon/readpool.h"
#include "daemon/ticket.h"
#include "daemon/tls.h"
#include "daemon/tlog.h"
#include "daemon/upstream.h"
#include "daemon/writer.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct http_services {
    const config *cfg;
    content_store *content;   /* NULL: no --root */
    upstream_pool *upstreams; /* the upstreams; one without routes when there are none */
    ticket_sealer *sealer;
    const keystore *keys;
    writer *ledger_writer;
    accesslog *access_log; /* NULL: none */
    tls_creds *tls;        /* NULL: plain HTTP; else HTTPS with its current pair */
    tlog *log;             /* the evidence log; NULL: none */
    readpool *log_readers; /* its reads; NULL without the log */
} http_services;

typedef struct http_server http_server;

http_server *http_server_start(const http_services *svc, char *err, size_t errlen);

/* The port actually bound (useful with --listen HOST:0). */
unsigned http_server_port(const http_server *srv);

/* Connections open, and closed for being slow or to make room (http_guard.h). */
void http_server_guard_stats(http_server *srv, http_guard_stats *out);

/*
 * Shutting down, in this order:
 *  http_server_drain()  stops accepting, lets requests in flight finish for
 *                       up to grace_ms, then answers confirmations still
 *                       waiting for the ledger with 503 (a suspended
 *                       connection must not outlive the listener);
 *  http_server_stop()   closes every connection;
 *  writer_stop()        (the caller) commits what is queued;
 *  http_server_free()   frees what writer callbacks may still have used.
 * Each is NULL-safe. Returns true from drain if nothing was left in flight.
 */
bool http_server_drain(http_server *srv, unsigned grace_ms);
void http_server_stop(http_server *srv);
void http_server_free(http_server *srv);

#endif
