/*
 * delivery: what turns a 200 into a delivery (PROTOCOL.md section 4).
 *
 * delivery_issue() makes the delivery ID and seals the ticket for one
 * response; delivery_inject_offset() and delivery_element() place the agent
 * element into an HTML page; delivery_event_start() turns a ticket into the
 * ledger event that records it, and delivery_content_json() into the
 * "content" member of plug-in data and receipts. Nothing here allocates,
 * touches the ledger or knows HTTP.
 */
#ifndef RECEIPT_DAEMON_DELIVERY_H
#define RECEIPT_DAEMON_DELIVERY_H

#include "common/compiler.h"
#include "common/uuid7.h"
#include "daemon/jbuf.h"
#include "daemon/ledger.h"
#include "daemon/ticket.h"

#include <stddef.h>
#include <stdint.h>

#define DELIVERY_ELEMENT_PREFIX "<script src=\"/_receipt/agent.js\" data-receipt-ticket=\""
#define DELIVERY_ELEMENT_SUFFIX "\" async></script>"
#define DELIVERY_ELEMENT_MAX                                                                       \
    (sizeof DELIVERY_ELEMENT_PREFIX - 1 + TICKET_MAX_LEN + sizeof DELIVERY_ELEMENT_SUFFIX - 1)

typedef struct delivery {
    uuid7 id;
    char id_text[UUID7_STR_LEN + 1];
    ticket_claims claims;
    char ticket[TICKET_MAX_LEN + 1];
    size_t ticket_len;
} delivery;

/*
 * Issues a delivery of the content (path, sha256, size) at now_ms, valid for
 * ttl_s seconds, bound to client_id (32 raw bytes) when it is not NULL.
 * Returns 0, or -1 if the ID or the ticket could not be made.
 */
WARN_UNUSED_RESULT int delivery_issue(ticket_sealer *sealer, const char *path, size_t path_len,
                                      const uint8_t sha256[32], uint64_t size, uint64_t now_ms,
                                      uint64_t ttl_s, const uint8_t *client_id, delivery *out);

/* Offset of the last "</body>" (any case) in html, or n when there is none. */
size_t delivery_inject_offset(const uint8_t *html, size_t n);

/* Writes the element naming ticket into out (DELIVERY_ELEMENT_MAX bytes);
 * returns its length. */
size_t delivery_element(const char *ticket, size_t ticket_len, char *out);

/*
 * Starts a ledger event of kind from a ticket's issuance fields (ID, path,
 * digest, size, issue time), server_id (the site) and node_id, recorded as
 * the node of the event's step (issued_node, bound_node or confirmed_node);
 * everything else is cleared but the receipt, which only a confirmation
 * carries (2 KiB less to clear per delivery, hence last in the row): it is
 * set to "".
 */
void delivery_event_start(ledger_event_kind kind, const ticket_claims *t, const char *server_id,
                          const char *node_id, ledger_event *ev);

/* Writes the "content" member of plug-in data and receipts: the path,
 * sha256 and size of the ticket's content. */
void delivery_content_json(jbuf *b, const ticket_claims *t);

#endif
