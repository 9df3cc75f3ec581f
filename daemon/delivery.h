/*
 * delivery: what turns a 200 into a delivery (docs/protocol.md section 5).
 *
 * delivery_issue() makes the delivery ID and seals the ticket for one
 * response; DELIVERY_ELEMENT is what the content store injects into HTML
 * pages; delivery_event_start() turns a ticket into the ledger event that
 * records it, and delivery_content_json() into the "content" member of
 * plug-in data and receipts. Nothing here allocates, touches the ledger or
 * knows HTTP.
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

/*
 * The agent element, the same in every page and every delivery: the ticket
 * travels in the Receipt-Ticket and Server-Timing headers only, so the
 * injected form of a version is fixed and its digest known before the
 * ticket is sealed (docs/protocol.md, "The agent element").
 */
#define DELIVERY_ELEMENT "<script src=\"/_receipt/agent.js\" async></script>"

/* What one response delivers: the content's version and the bytes sent. */
typedef struct delivery_content {
    const char *path; /* canonical content path */
    size_t path_len;
    ledger_kind kind;
    const uint8_t *sha256; /* of the stored file: the version */
    uint64_t size;
    const uint8_t *delivered_sha256; /* of the bytes sent: the injected page */
    uint64_t delivered_size;         /* or the stored bytes again */
} delivery_content;

typedef struct delivery {
    uuid7 id;
    char id_text[UUID7_STR_LEN + 1];
    ticket_claims claims;
    char ticket[TICKET_MAX_LEN + 1];
    size_t ticket_len;
} delivery;

/*
 * Issues a delivery of content at now_ms, valid for ttl_s seconds, bound
 * to client_id (32 raw bytes) when it is not NULL. Returns 0, or -1 if the
 * ID or the ticket could not be made (a path over TICKET_PATH_MAX).
 */
WARN_UNUSED_RESULT int delivery_issue(ticket_sealer *sealer, const delivery_content *content,
                                      uint64_t now_ms, uint64_t ttl_s, const uint8_t *client_id,
                                      delivery *out);

/*
 * Starts a ledger event of kind from a ticket's issuance fields (ID, path,
 * the version's digest and size, the delivery's kind (tracked for a ticket
 * that names none), the delivered bytes' digest and size, issue time),
 * server_id (the site) and node_id, recorded as the node of the event's step
 * (issued_node, bound_node or confirmed_node); everything else is cleared
 * but the receipt, which only a confirmation carries (2 KiB less to clear
 * per delivery, hence last in the row): it is set to "".
 */
void delivery_event_start(ledger_event_kind kind, const ticket_claims *t, const char *server_id,
                          const char *node_id, ledger_event *ev);

/* Writes the "content" member of plug-in data and receipts: the path, the
 * sha256 and size of the bytes delivered, and the "version" they came from
 * (the stored file's sha256 and size). */
void delivery_content_json(jbuf *b, const ticket_claims *t);

#endif
