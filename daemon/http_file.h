/*
 * http_file: GET and HEAD of content (docs/protocol.md section 5), as OpenBSD
 * httpd keeps server_file.c apart from its router.
 *
 * Resolves the path in the content store, answers conditional requests
 * (304) and single byte ranges (206, 416), and turns every 200 to a GET
 * into a delivery: an ID, a sealed ticket, the issuance queued for the
 * ledger, and for HTML the agent element injected before </body>; a client
 * that names its key gets plug-in data instead of a ticket. Bodies go out
 * by sendfile from the file, or from the content cache without a copy.
 */
#ifndef RECEIPT_DAEMON_HTTP_FILE_H
#define RECEIPT_DAEMON_HTTP_FILE_H

#include "daemon/http_internal.h"

#include <microhttpd.h>
#include <stdbool.h>

/* url is the decoded request path; head: a HEAD request. */
enum MHD_Result http_file_serve(http_context *ctx, request *req, struct MHD_Connection *c,
                                const char *url, bool head);

#endif
