#include "daemon/delivery.h"

#include "common/b64.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

int delivery_issue(ticket_sealer *sealer, const char *path, size_t path_len,
                   const uint8_t sha256[32], uint64_t size, uint64_t now_ms, uint64_t ttl_s,
                   const uint8_t *client_id, delivery *out)
{
    if (path_len > TICKET_PATH_MAX)
        return -1;
    if (uuid7_new_at(&out->id, now_ms) != 0)
        return -1;
    uuid7_format(&out->id, out->id_text);

    ticket_claims *c = &out->claims;
    c->delivery = out->id;
    memcpy(c->sha256, sha256, 32);
    c->size = size;
    c->issued_ms = now_ms;
    c->expires_ms = now_ms + ttl_s * 1000;
    c->bound = client_id != NULL;
    if (client_id != NULL)
        memcpy(c->client_id, client_id, 32);
    else
        memset(c->client_id, 0, sizeof c->client_id);
    memcpy(c->path, path, path_len);
    c->path[path_len] = '\0';
    c->path_len = path_len;

    if (ticket_seal(sealer, c, out->ticket, &out->ticket_len) != TICKET_OK)
        return -1;
    return 0;
}

size_t delivery_inject_offset(const uint8_t *html, size_t n)
{
    static const char tag[] = "</body>";
    const size_t tag_len = sizeof tag - 1;
    size_t end = n;
    /* Backwards: pages are long and the tag sits near the end. */
    while (end >= tag_len) {
        const uint8_t *lt = memrchr(html, '<', end - tag_len + 1);
        if (lt == NULL)
            break;
        if (strncasecmp((const char *)lt, tag, tag_len) == 0)
            return (size_t)(lt - html);
        end = (size_t)(lt - html) + tag_len - 1;
        if (lt == html)
            break;
    }
    return n;
}

size_t delivery_element(const char *ticket, size_t ticket_len, char *out)
{
    size_t len = 0;
    memcpy(out, DELIVERY_ELEMENT_PREFIX, sizeof DELIVERY_ELEMENT_PREFIX - 1);
    len += sizeof DELIVERY_ELEMENT_PREFIX - 1;
    memcpy(out + len, ticket, ticket_len);
    len += ticket_len;
    memcpy(out + len, DELIVERY_ELEMENT_SUFFIX, sizeof DELIVERY_ELEMENT_SUFFIX - 1);
    len += sizeof DELIVERY_ELEMENT_SUFFIX - 1;
    return len;
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
    size_t sha_len = b64url_encode(t->sha256, 32, sha);
    jbuf_key(b, "content");
    jbuf_adds(b, "{");
    jbuf_key(b, "path");
    jbuf_string(b, t->path, t->path_len);
    jbuf_key(b, "sha256");
    jbuf_string(b, sha, sha_len);
    jbuf_member_u64(b, "size", t->size);
    jbuf_adds(b, "}");
}
