#include "daemon/delivery.h"

#include "common/b64.h"

#include <stddef.h>
#include <string.h>

int delivery_issue(ticket_sealer *sealer, const delivery_content *content, uint64_t now_ms,
                   uint64_t ttl_s, const uint8_t *client_id, delivery *out)
{
    if (content->path_len > TICKET_PATH_MAX)
        return -1;
    if (uuid7_new_at(&out->id, now_ms) != 0)
        return -1;
    uuid7_format(&out->id, out->id_text);

    ticket_claims *c = &out->claims;
    c->delivery = out->id;
    c->kind = (uint8_t)content->kind;
    memcpy(c->sha256, content->sha256, 32);
    c->size = content->size;
    memcpy(c->delivered_sha256, content->delivered_sha256, 32);
    c->delivered_size = content->delivered_size;
    c->issued_ms = now_ms;
    c->expires_ms = now_ms + ttl_s * 1000;
    c->bound = client_id != NULL;
    if (client_id != NULL)
        memcpy(c->client_id, client_id, 32);
    else
        memset(c->client_id, 0, sizeof c->client_id);
    memcpy(c->path, content->path, content->path_len);
    c->path[content->path_len] = '\0';
    c->path_len = content->path_len;

    if (ticket_seal(sealer, c, out->ticket, &out->ticket_len) != TICKET_OK)
        return -1;
    return 0;
}

static void copy_id(char *dst, size_t cap, const char *id)
{
    size_t n = strnlen(id, cap - 1);
    memcpy(dst, id, n);
    dst[n] = '\0';
}

void delivery_event_start(ledger_event_kind kind, const ticket_claims *t, const char *server_id,
                          const char *node_id, ledger_event *ev)
{
    _Static_assert(offsetof(ledger_delivery, receipt) + LEDGER_RECEIPT_MAX + 1 ==
                       sizeof(ledger_delivery),
                   "the receipt is the row's last field: everything before it is cleared");
    memset(ev, 0, offsetof(ledger_event, row.receipt));
    ev->row.receipt[0] = '\0';
    ev->kind = kind;
    ledger_delivery *row = &ev->row;
    uuid7_format(&t->delivery, row->id);
    memcpy(row->path, t->path, t->path_len + 1);
    memcpy(row->sha256, t->sha256, 32);
    row->size = t->size;
    /* Tickets before version 3 name no kind: every 200 was a delivery then. */
    row->kind = t->kind < LEDGER_KIND_COUNT ? (ledger_kind)t->kind : LEDGER_KIND_TRACKED;
    memcpy(row->delivered_sha256, t->delivered_sha256, 32);
    row->delivered_size = t->delivered_size;
    copy_id(row->server, sizeof row->server, server_id);
    row->issued_ms = t->issued_ms;
    char *node = kind == LEDGER_EVENT_ISSUE  ? row->issued_node
                 : kind == LEDGER_EVENT_BIND ? row->bound_node
                                             : row->confirmed_node;
    copy_id(node, LEDGER_NODE_MAX + 1, node_id);
}

void delivery_content_json(jbuf *b, const ticket_claims *t)
{
    char sha[48];
    size_t sha_len = b64url_encode(t->delivered_sha256, 32, sha);
    jbuf_key(b, "content");
    jbuf_adds(b, "{");
    jbuf_key(b, "path");
    jbuf_string(b, t->path, t->path_len);
    jbuf_key(b, "sha256");
    jbuf_string(b, sha, sha_len);
    jbuf_member_u64(b, "size", t->delivered_size);
    jbuf_key(b, "version");
    jbuf_adds(b, "{");
    sha_len = b64url_encode(t->sha256, 32, sha);
    jbuf_key(b, "sha256");
    jbuf_string(b, sha, sha_len);
    jbuf_member_u64(b, "size", t->size);
    jbuf_adds(b, "}}");
}
