/*
 * http: receiptd's public listener (libmicrohttpd).
 *
 * Routes a request to the content path (section 4 of PROTOCOL.md) or to
 * /_receipt/ (JWK Set, agent, plug-in data, confirmations), applies the
 * limits of the config, writes the access log and counts responses.
 * The services are borrowed and must outlive the server.
 */
#ifndef RECEIPT_DAEMON_HTTP_H
#define RECEIPT_DAEMON_HTTP_H

#include "common/keystore.h"
#include "common/ticket.h"
#include "daemon/accesslog.h"
#include "daemon/config.h"
#include "daemon/content.h"
#include "daemon/writer.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct http_services {
    const config *cfg;
    content_store *content;
    ticket_sealer *sealer;
    const keystore *keys;
    writer *ledger_writer;
    accesslog *access_log; /* NULL: none */
} http_services;

typedef struct http_server http_server;

http_server *http_server_start(const http_services *svc, char *err, size_t errlen);

/* The port actually bound (useful with --listen HOST:0). */
unsigned http_server_port(const http_server *srv);

/* Stops accepting new connections; requests in flight go on. */
void http_server_quiesce(http_server *srv);

/* Waits until no request is in flight or timeout_ms passed; true if idle. */
bool http_server_wait_idle(http_server *srv, unsigned timeout_ms);

/* Closes every connection and frees the server. NULL-safe. */
void http_server_stop(http_server *srv);

#endif
