/*
 * http_deliver: what turns a 200 of the public listener into a delivery
 * (docs/protocol.md section 5), one set of rules whether the bytes come
 * from a file under --root (http_file) or from an upstream (http_proxy):
 * which kind of delivery the request makes (track), the client's key, the
 * agent element's injection, the issuance queued for the ledger, and the
 * header fields that carry the ticket or the plug-in data.
 */
#ifndef RECEIPT_DAEMON_HTTP_DELIVER_H
#define RECEIPT_DAEMON_HTTP_DELIVER_H

#include "daemon/delivery.h"
#include "daemon/http_internal.h"

#include <microhttpd.h>
#include <stdbool.h>

/* "receipt;desc=" and the quoted ticket: the Server-Timing entry. */
#define HTTP_SERVER_TIMING_MAX (TICKET_MAX_LEN + 32)

/*
 * Whether a 200 to this request for the content at path (canonical,
 * without a query) would be a delivery under cfg's rules and the request's
 * fetch metadata; *kind says which.
 */
bool http_deliver_decide(const http_context *ctx, struct MHD_Connection *c, const char *path,
                         bool is_html, ledger_kind *kind);

/*
 * The client's key (Receipt-Client-Key): *has_key is 1 with *ck filled, or
 * 0 without one. false after queueing the 400 of a key that is not one
 * (*ret is what to return to libmicrohttpd).
 */
bool http_deliver_client_key(http_context *ctx, request *req, struct MHD_Connection *c,
                             clientkey *ck, int *has_key, enum MHD_Result *ret);

/* Whether a delivery of kind gets the agent element: pages and what
 * devices and scripts fetch, when it can be injected, but not for a client
 * that named its key (it gets plug-in data instead). */
bool http_deliver_injects(ledger_kind kind, bool has_key, bool injectable);

typedef struct http_delivery {
    delivery d;
    char *plugin; /* malloc'd plug-in data for a client's key; NULL: a ticket */
} http_delivery;

/*
 * Issues the delivery of what for req: its ID and ticket, the plug-in data
 * when ck is not NULL, and (not for HEAD) the issuance queued for the
 * ledger and counted. true with *out filled (release it with
 * http_deliver_headers()), or false after queueing the 500, or the 503 of a
 * refused event (*ret is what to return to libmicrohttpd).
 */
bool http_deliver_issue(http_context *ctx, request *req, struct MHD_Connection *c,
                        const delivery_content *what, const clientkey *ck, bool head,
                        http_delivery *out, enum MHD_Result *ret);

/*
 * Adds the delivery's header fields to r (none for HEAD, which gets the
 * headers of a delivery but is none): Receipt-Delivery, and Receipt-Plugin,
 * or Receipt-Ticket with its Server-Timing entry, which the page's agent
 * reads. Frees the plug-in data; r may be NULL (out of memory).
 */
void http_deliver_headers(struct MHD_Response *r, http_delivery *hd, bool head);

#endif
