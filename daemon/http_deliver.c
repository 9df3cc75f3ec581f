#include "daemon/http_deliver.h"

#include "daemon/clock.h"
#include "daemon/http_reply.h"
#include "daemon/plugin.h"
#include "daemon/track.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

bool http_deliver_decide(const http_context *ctx, struct MHD_Connection *c, const char *path,
                         bool is_html, ledger_kind *kind)
{
    const track_request tr = {
        .path = path,
        .is_html = is_html,
        .fetch_dest = header(c, "Sec-Fetch-Dest"),
        .fetch_mode = header(c, "Sec-Fetch-Mode"),
        .receipt_fetch = header(c, TRACK_FETCH_HEADER),
    };
    return track_decide(ctx->cfg, &tr, kind);
}

bool http_deliver_client_key(http_context *ctx, request *req, struct MHD_Connection *c,
                             clientkey *ck, int *has_key, enum MHD_Result *ret)
{
    *has_key = clientkeys_lookup(ctx->client_keys, header(c, CLIENTKEYS_HEADER), ck);
    if (*has_key >= 0)
        return true;
    *ret = http_reply_error(req, c, 400, "bad_client_key",
                            "Receipt-Client-Key is not a valid P-256 public key.");
    return false;
}

bool http_deliver_injects(ledger_kind kind, bool has_key, bool injectable)
{
    return !has_key && injectable && (kind == LEDGER_KIND_PAGE || kind == LEDGER_KIND_DEVICE);
}

static void fill_issue_event(const http_context *ctx, const request *req, const delivery *d,
                             const clientkey *bound_to, ledger_event *ev)
{
    delivery_event_start(LEDGER_EVENT_ISSUE, &d->claims, ctx->cfg->server_id, ctx->cfg->node_id,
                         ev);
    ledger_delivery *row = &ev->row;
    memcpy(row->client_addr, req->client_addr, sizeof row->client_addr);
    memcpy(row->user_agent, req->user_agent, sizeof row->user_agent);
    row->status = LEDGER_ISSUED;
    if (bound_to != NULL) {
        row->status = LEDGER_BOUND;
        memcpy(row->client, bound_to->id, sizeof row->client);
        memcpy(row->bound_addr, req->client_addr, sizeof row->bound_addr);
        row->bound_ms = d->claims.issued_ms;
        memcpy(row->bound_node, row->issued_node, sizeof row->bound_node);
    }
}

bool http_deliver_issue(http_context *ctx, request *req, struct MHD_Connection *c,
                        const delivery_content *what, const clientkey *ck, bool head,
                        http_delivery *out, enum MHD_Result *ret)
{
    out->plugin = NULL;
    if (delivery_issue(ctx->sealer, what, clock_wall_ms(), ctx->cfg->ticket_ttl_s,
                       ck != NULL ? ck->id_raw : NULL, &out->d) != 0 ||
        (ck != NULL && !head &&
         plugin_seal(ctx, &out->d, ck, req->client_addr, &out->plugin) != 0)) {
        *ret = http_reply_error(req, c, 500, "internal_error", "The delivery could not be issued.");
        return false;
    }
    if (head)
        return true;
    ledger_event ev;
    fill_issue_event(ctx, req, &out->d, ck, &ev);
    writer_result refused = writer_submit(ctx->ledger_writer, &ev, NULL, NULL);
    if (refused != WRITER_OK) {
        free(out->plugin);
        out->plugin = NULL;
        *ret = http_reply_refused(req, c, refused);
        return false;
    }
    metrics_count_delivery();
    return true;
}

void http_deliver_headers(struct MHD_Response *r, http_delivery *hd, bool head)
{
    if (r != NULL && !head) {
        MHD_add_response_header(r, "Receipt-Delivery", hd->d.id_text);
        if (hd->plugin != NULL) {
            MHD_add_response_header(r, "Receipt-Plugin", hd->plugin);
        } else {
            /* receipt;desc="<ticket>": a ticket is base64url, nothing to quote. */
            static const char open[] = "receipt;desc=\"";
            char timing[HTTP_SERVER_TIMING_MAX];
            size_t n = hd->d.ticket_len;
            _Static_assert(sizeof open + TICKET_MAX_LEN + 1 <= sizeof timing, "a ticket fits");
            memcpy(timing, open, sizeof open - 1);
            memcpy(timing + sizeof open - 1, hd->d.ticket, n);
            memcpy(timing + sizeof open - 1 + n, "\"", 2);
            MHD_add_response_header(r, "Receipt-Ticket", hd->d.ticket);
            MHD_add_response_header(r, "Server-Timing", timing);
        }
    }
    free(hd->plugin);
    hd->plugin = NULL;
}
