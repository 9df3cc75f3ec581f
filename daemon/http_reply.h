/*
 * http_reply: the answers of the public listener.
 *
 * Every response goes out through http_reply_queue(), which records the
 * status and body size on the request (for the access log) and counts it
 * (metrics). Errors have the JSON body of docs/protocol.md section 10. Each
 * function queues the response it makes and returns what libmicrohttpd
 * returned; a response that could not be made (out of memory) lets
 * libmicrohttpd close the connection.
 */
#ifndef RECEIPT_DAEMON_HTTP_REPLY_H
#define RECEIPT_DAEMON_HTTP_REPLY_H

#include "daemon/http_internal.h"

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

/* Queues r (destroying the handle; NULL: out of memory) and records status
 * and body size. */
enum MHD_Result http_reply_queue(request *req, struct MHD_Connection *c, unsigned status,
                                 struct MHD_Response *r, uint64_t body_bytes);

/* A response without a body (304, 301, 204). */
struct MHD_Response *http_reply_empty(void);

/* The JSON error body of docs/protocol.md section 10, not queued; *len gets the
 * body length. For errors that need headers of their own (416). */
struct MHD_Response *http_reply_error_response(unsigned status, const char *code,
                                               const char *message, size_t *len);

enum MHD_Result http_reply_error(request *req, struct MHD_Connection *c, unsigned status,
                                 const char *code, const char *message);
enum MHD_Result http_reply_method_not_allowed(request *req, struct MHD_Connection *c,
                                              const char *allow);
/*
 * An error after which the connection is closed and nothing more is read
 * from it (Connection: close): for requests whose framing cannot be
 * trusted, so that no byte after them is taken for another request.
 */
enum MHD_Result http_reply_error_close(request *req, struct MHD_Connection *c, unsigned status,
                                       const char *code, const char *message);
/* 204 to a CORS preflight for the protocol endpoints. */
enum MHD_Result http_reply_preflight(request *req, struct MHD_Connection *c, const char *allow);

/*
 * The 503 (with Retry-After) for a ledger event the writer refused, saying
 * why: ledger_busy (queue full), ledger_unavailable (the ledger is not
 * committing) or shutting_down. The writer counts refusals and logs them
 * once a second.
 */
enum MHD_Result http_reply_refused(request *req, struct MHD_Connection *c, writer_result why);

#endif
