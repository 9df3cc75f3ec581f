#include "daemon/plugin.h"

#include "common/jose.h"
#include "daemon/clock.h"
#include "daemon/http_reply.h"

#include <stdlib.h>
#include <string.h>

int plugin_seal(const http_context *ctx, const delivery *d, const clientkey *ck,
                const char *client_addr, char **out)
{
    char payload[PLUGIN_PAYLOAD_MAX];
    const ticket_claims *t = &d->claims;
    const char *server_kid = eckey_thumbprint(ctx->keys->enc);
    jbuf b;
    jbuf_init(&b, payload, sizeof payload);
    jbuf_adds(&b, "{\"v\":1");
    jbuf_member_str(&b, "delivery", d->id_text);
    jbuf_key(&b, "ticket");
    jbuf_string(&b, d->ticket, d->ticket_len);
    delivery_content_json(&b, t);
    jbuf_key(&b, "client");
    jbuf_adds(&b, "{");
    jbuf_member_str(&b, "id", ck->id);
    jbuf_member_str(&b, "addr", client_addr);
    jbuf_adds(&b, "}");
    jbuf_key(&b, "server");
    jbuf_adds(&b, "{");
    jbuf_member_str(&b, "id", ctx->cfg->server_id);
    jbuf_member_str(&b, "node", ctx->cfg->node_id);
    jbuf_member_str(&b, "kid", server_kid);
    jbuf_member_str(&b, "confirm", ctx->confirm_url);
    jbuf_adds(&b, "}");
    jbuf_member_u64(&b, "iat", t->issued_ms / 1000);
    jbuf_member_u64(&b, "exp", t->expires_ms / 1000);
    jbuf_adds(&b, "}");
    jose_result jr = b.failed ? JOSE_INTERNAL
                              : jwe_encrypt(ck->key, ck->id, server_kid, JOSE_CTY_PLUGIN,
                                            (const uint8_t *)b.data, b.len, NULL, out);
    explicit_bzero(payload, sizeof payload);
    return jr == JOSE_OK ? 0 : -1;
}

static void fill_bind_event(const http_context *ctx, const request *req, const ticket_claims *t,
                            const clientkey *ck, uint64_t now_ms, ledger_event *ev)
{
    delivery_event_start(LEDGER_EVENT_BIND, t, ctx->cfg->server_id, ctx->cfg->node_id, ev);
    ledger_delivery *row = &ev->row;
    row->status = LEDGER_BOUND;
    memcpy(row->client, ck->id, sizeof row->client);
    memcpy(row->bound_addr, req->client_addr, sizeof row->bound_addr);
    row->bound_ms = now_ms;
}

enum MHD_Result plugin_serve(http_context *ctx, request *req, struct MHD_Connection *c,
                             const char *ticket)
{
    clientkey ck CLIENTKEY_SCOPED;
    int has_key = clientkeys_lookup(
        ctx->client_keys, MHD_lookup_connection_value(c, MHD_HEADER_KIND, CLIENTKEYS_HEADER), &ck);
    if (has_key == 0)
        return http_reply_error(req, c, 400, "missing_client_key",
                                "Send your public key in Receipt-Client-Key.");
    if (has_key < 0)
        return http_reply_error(req, c, 400, "bad_client_key",
                                "Receipt-Client-Key is not a valid P-256 public key.");

    uint64_t now = clock_wall_ms();
    ticket_claims t;
    ticket_result tr = ticket_open(ctx->sealer, ticket, strlen(ticket), now, &t);
    if (tr == TICKET_EXPIRED)
        return http_reply_error(req, c, 410, "ticket_expired", "This ticket has expired.");
    if (tr != TICKET_OK)
        return http_reply_error(req, c, 404, "ticket_not_found", "This ticket does not open.");
    /* A ticket already bound (a device's) is not for trading by others. */
    if (t.bound && memcmp(t.client_id, ck.id_raw, 32) != 0)
        return http_reply_error(req, c, 404, "ticket_not_found", "This ticket does not open.");

    delivery d;
    d.id = t.delivery;
    uuid7_format(&t.delivery, d.id_text);
    d.claims = t;
    d.claims.bound = true;
    memcpy(d.claims.client_id, ck.id_raw, 32);
    if (ticket_seal(ctx->sealer, &d.claims, d.ticket, &d.ticket_len) != TICKET_OK)
        return http_reply_error(req, c, 500, "internal_error", "The ticket could not be bound.");

    char *jwe = NULL;
    if (plugin_seal(ctx, &d, &ck, req->client_addr, &jwe) != 0)
        return http_reply_error(req, c, 500, "internal_error",
                                "The plug-in data could not be made.");

    if (!t.bound) {
        ledger_event ev;
        fill_bind_event(ctx, req, &t, &ck, now, &ev);
        writer_result refused = writer_submit(ctx->ledger_writer, &ev, NULL, NULL);
        if (refused != WRITER_OK) {
            free(jwe);
            return http_reply_refused(req, c, refused);
        }
        metrics_count_binding();
    }

    size_t len = strlen(jwe);
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback_cls(len, jwe, free, jwe);
    if (r == NULL) {
        free(jwe);
        return http_reply_queue(req, c, 500, NULL, 0);
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/jose");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    return http_reply_queue(req, c, 200, r, len);
}
