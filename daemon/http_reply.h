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

/*
 * libmicrohttpd 0.9.75 builds a response's header block in the connection's
 * memory pool (--connection-memory), after the request line, the header
 * fields and one record per parsed field (header, cookie or query
 * argument). An answer whose header block does not fit is never sent: the
 * connection is closed ("failed to create response header").
 *
 * receiptd's own header block for a short path (a delivery with plug-in
 * data, about 1.7 KB) fits in HTTP_REPLY_HEADROOM with room to spare. A
 * delivery's header block grows with its content path: plug-in data carries
 * the path in its payload and again in the bound ticket inside it, both
 * base64url-encoded in the JWE, about 3 bytes of header a path byte (2.2 KB
 * at the longest path, measured), so a content path's bytes past the first
 * 64 add that much.
 */
#define HTTP_REPLY_HEADROOM          2048
#define HTTP_REPLY_FIELD_RECORD      80 /* pool bytes per parsed field */
#define HTTP_REPLY_PATH_FREE         64
#define HTTP_REPLY_HEADROOM_PER_BYTE 3

/* Bytes of the connection's pool (pool bytes in all) that its request
 * leaves for the answer's header block; 0 when none. */
size_t http_reply_room(struct MHD_Connection *c, size_t pool);

/* The room receiptd's own header fields need in an answer that may be a
 * delivery of a content path of content_path_len bytes (0: no delivery). */
size_t http_reply_headroom(size_t content_path_len);

/* Queues r (destroying the handle; NULL: out of memory) and records status
 * and body size. */
enum MHD_Result http_reply_queue(request *req, struct MHD_Connection *c, unsigned status,
                                 struct MHD_Response *r, uint64_t body_bytes);

/* A response without a body (304, 301, 204). */
struct MHD_Response *http_reply_empty(void);

/*
 * The response of a 304, with no body. libmicrohttpd (0.9.75) writes a
 * Content-Length into every 304 from the response's size, and RFC 9110
 * (8.6) forbids any value but the length of the 200's body: length is that
 * length. Not MHD_SIZE_UNKNOWN: the library would then announce chunked
 * and still send the last chunk, five bytes that the client would read as
 * the start of the next response.
 */
struct MHD_Response *http_reply_not_modified(uint64_t length);

/*
 * The response of a 304, or of a HEAD, with no body and no length: for an
 * upstream's that stated none (RFC 9110 8.6: the length, if any, is the
 * 200's, which is not known here). libmicrohttpd 0.9.75 has no other way
 * to send neither Content-Length nor chunked: in its HTTP/1.0-compatible
 * mode the response says Connection: close (the status line stays
 * HTTP/1.1), and the connection closes after the header block.
 */
struct MHD_Response *http_reply_no_length(void);

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
