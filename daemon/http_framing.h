/*
 * http_framing: the checks every listener (public, admin, --redirect-http)
 * applies to a request's header fields before it looks at anything else,
 * and the answer to a request that fails them.
 *
 * What decides where a request ends (RFC 9112 section 6) and which host it
 * is for (section 3.2): libmicrohttpd 0.9.75 frames a body by the first
 * Content-Length or by Transfer-Encoding, keeps the connection open in
 * either case, and does not check Host. A request whose framing two
 * parsers could read differently (a proxy in front and receiptd) is how one
 * request is smuggled inside another, so it is refused before it is
 * routed, authenticated or recorded, and its connection closed:
 *
 *  - a CR that does not end a line, in a field's name or value: 400 bad_header;
 *  - Content-Length given more than once with different values, or
 *    together with Transfer-Encoding: 400 conflicting_length;
 *  - Transfer-Encoding in an HTTP/1.0 request, or one whose codings do not
 *    end in chunked (so nothing says where the body ends):
 *    400 bad_transfer_coding;
 *  - Transfer-Encoding that ends in chunked but is not one field saying
 *    exactly "chunked" (gzip, chunked): 501 unsupported_transfer_coding;
 *  - an HTTP/1.1 request without Host, or with two: 400 bad_host.
 *
 * One module so that the listeners' rules cannot drift apart. A listener
 * that reads other fields in the same pass over them feeds each to
 * http_framing_note(); one that does not calls http_framing_read().
 */
#ifndef RECEIPT_DAEMON_HTTP_FRAMING_H
#define RECEIPT_DAEMON_HTTP_FRAMING_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

/* What the checks read of a request's fields. The pointers are the
 * library's, valid while the request is. */
typedef struct http_framing {
    unsigned lengths;   /* Content-Length fields */
    const char *length; /* the first */
    bool lengths_differ;
    unsigned codings;   /* Transfer-Encoding fields */
    bool chunked_only;  /* exactly one, and it says "chunked" */
    bool chunked_final; /* the last coding of all the fields' list is chunked */
    unsigned hosts;
    const char *host; /* the first */
    bool bare_cr;     /* a CR not followed by LF, in a name or a value */
} http_framing;

/* Why a request is refused: the status and the JSON error's code and message. */
typedef struct http_framing_fault {
    unsigned status;
    const char *code;
    const char *message;
} http_framing_fault;

void http_framing_init(http_framing *f);
/* One header field (value NULL: empty). */
void http_framing_note(http_framing *f, const char *name, const char *value);
/* http_framing_init(), then every header field of the request on c. */
void http_framing_read(struct MHD_Connection *c, http_framing *f);

/* The fault of a request of HTTP version version (as the library gives
 * it) whose fields f holds; NULL when it has none. Static storage. */
const http_framing_fault *http_framing_check(const http_framing *f, const char *version);

/*
 * The answer to a fault: its status's JSON error body (docs/protocol.md
 * section 10) with Connection: close, not queued; *len gets the body's
 * length; NULL when out of memory. Queued on the request's first call, the
 * library then reads nothing more from the connection and closes it.
 */
struct MHD_Response *http_framing_response(const http_framing_fault *fault, size_t *len);

#endif
