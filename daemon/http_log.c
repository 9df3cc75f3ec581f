#include "daemon/http_log.h"

#include "common/tiles.h"
#include "daemon/clock.h"
#include "daemon/evidence.h"
#include "daemon/http_reply.h"
#include "daemon/jbuf.h"
#include "daemon/log.h"
#include "daemon/tlog_event.h"
#include "daemon/tlog_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_LOG_KEYS_MAX  (256 * 1024) /* bytes of the keys document */
#define HTTP_LOG_IMMUTABLE "public, max-age=31536000, immutable"
/* A partial tile is transient: clients move on to wider ones as the log
 * grows, and tlog-tiles lets a log drop it once the full tile exists. */
#define HTTP_LOG_PARTIAL "public, max-age=60"
/* How often, at most, the checkpoint is read from a ledger other nodes
 * append to: the bound on how stale another node's checkpoint is here. */
#define HTTP_LOG_REFRESH_MS 1000

static void public_headers(struct MHD_Response *r, const char *type, const char *cache)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
}

static enum MHD_Result send_copy(request *req, struct MHD_Connection *c, const void *data,
                                 size_t len, const char *type, const char *cache, bool head)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (r != NULL)
        public_headers(r, type, cache);
    return http_reply_queue(req, c, 200, r, head ? 0 : len);
}

static enum MHD_Result unavailable(request *req, struct MHD_Connection *c)
{
    return http_reply_error(req, c, 503, "log_unavailable",
                            "The evidence log cannot be read now; retry shortly.");
}

static enum MHD_Result serve_checkpoint(http_context *ctx, request *req, struct MHD_Connection *c,
                                        bool head)
{
    char note[LEDGER_NOTE_MAX + 1], err[256];
    /* This node's writer publishes each checkpoint it signs in memory. On
     * PostgreSQL other nodes of the site append too: their newest is read
     * from the ledger at most once per HTTP_LOG_REFRESH_MS, by the one
     * request that claims the turn; the others serve what is known. */
    ledger *lg = NULL;
    if (ledger_url_is_pg(ctx->cfg->ledger_url) &&
        tlog_refresh_due(ctx->log, clock_mono_ms(), HTTP_LOG_REFRESH_MS) &&
        (lg = readpool_take(ctx->log_readers)) != NULL) {
        uint64_t stored_size = 0;
        int found = tlog_read_latest(lg, &stored_size, note, sizeof note, err, sizeof err);
        readpool_give(ctx->log_readers, lg, found < 0);
        if (found == 1)
            tlog_observe(ctx->log, stored_size, note);
        else if (found < 0)
            log_warn("evidence log: the newest checkpoint: %s", err);
    }
    uint64_t size = tlog_newest(ctx->log, note, sizeof note);
    if (size == 0 && note[0] == '\0')
        return http_reply_error(req, c, 404, "not_found", "The log has no checkpoint yet.");
    return send_copy(req, c, note, strlen(note), "text/plain; charset=utf-8", "no-cache", head);
}

static enum MHD_Result serve_key(http_context *ctx, request *req, struct MHD_Connection *c,
                                 bool head)
{
    char text[NOTE_VKEY_MAX + 1];
    note_verifier *v = note_signer_verifier(ctx->keys->log);
    if (v == NULL)
        return MHD_NO;
    /* The key text alone, no newline: what note.NewVerifier() and the
     * like take as it is. */
    size_t n = note_verifier_text(v, text);
    note_verifier_free(v);
    return send_copy(req, c, text, n, "text/plain; charset=utf-8", "no-cache", head);
}

/* How many leaves a tree needs for the tile to exist in it (saturating). */
static uint64_t tile_leaves(const tiles_tile *tile)
{
    uint64_t hashes = tile->index * TILES_WIDTH + tile->width;
    if (tile->index > UINT64_MAX / TILES_WIDTH / 2)
        return UINT64_MAX;
    if (tile->level == TILES_ENTRIES || tile->level == 0)
        return hashes;
    unsigned shift = 8 * (unsigned)tile->level;
    if (shift >= 64 || hashes > (UINT64_MAX >> shift))
        return UINT64_MAX;
    return hashes << shift;
}

static enum MHD_Result serve_tile(http_context *ctx, request *req, struct MHD_Connection *c,
                                  const char *route, bool head)
{
    tiles_tile tile;
    if (!tiles_parse_path(route, strlen(route), &tile))
        return http_reply_error(req, c, 404, "not_found", "No such tile.");
    /* A tile whose leaves are committed but not durable yet could still be
     * taken back by a power cut; a tile is served forever once served. */
    if (!tlog_durable(ctx->log, tile_leaves(&tile)))
        return http_reply_error(req, c, 404, "not_found", "The log has no such tile (yet).");
    uint8_t *data = malloc(TLOG_READ_TILE_MAX);
    if (data == NULL)
        return MHD_NO;
    char err[LEDGER_ERR_MAX] = "";
    size_t len = 0;
    ledger *lg = readpool_take(ctx->log_readers);
    if (lg == NULL) {
        free(data);
        return unavailable(req, c);
    }
    int found = tlog_read_tile(lg, &tile, data, &len, err, sizeof err);
    readpool_give(ctx->log_readers, lg, found < 0);
    enum MHD_Result rc;
    if (found < 0) {
        log_error("evidence log: %s: %s", route, err);
        rc = unavailable(req, c);
    } else if (found == 0) {
        rc = http_reply_error(req, c, 404, "not_found", "The log has no such tile (yet).");
    } else {
        rc = send_copy(req, c, data, len, "application/octet-stream",
                       tile.width == TILES_WIDTH ? HTTP_LOG_IMMUTABLE : HTTP_LOG_PARTIAL, head);
    }
    free(data);
    return rc;
}

typedef struct own_leaves {
    uint64_t leaf[KEYSTORE_RETIRED_MAX + 2];
    size_t count;
} own_leaves;

static int take_own_leaf(void *arg, const ledger_log_row *row)
{
    own_leaves *o = arg;
    if (o->count == sizeof o->leaf / sizeof o->leaf[0])
        return 1;
    o->leaf[o->count++] = row->leaf;
    return 0;
}

static enum MHD_Result serve_keys(http_context *ctx, request *req, struct MHD_Connection *c,
                                  bool head)
{
    char err[LEDGER_ERR_MAX] = "";
    own_leaves own = {.count = 0};
    ledger_proof *proof = malloc(sizeof *proof);
    ledger *lg = proof != NULL ? readpool_take(ctx->log_readers) : NULL;
    if (lg == NULL) {
        free(proof);
        return unavailable(req, c);
    }
    jbuf b;
    jbuf_init_growing(&b, NULL, 0, HTTP_LOG_KEYS_MAX);
    bool failed =
        ledger_log_entries(lg, LEDGER_LOG_OWN, 0, 0, NULL, true, take_own_leaf, &own) != 0;
    if (failed)
        snprintf(err, sizeof err, "%s", ledger_error(lg));
    jbuf_adds(&b, "{");
    jbuf_member_str(&b, "origin", note_signer_name(ctx->keys->log));
    jbuf_key(&b, "keys");
    jbuf_adds(&b, "[");
    for (size_t i = 0; i < own.count && !failed; i++) {
        failed = tlog_read_proof(lg, own.leaf[i], 0, proof, err, sizeof err) != 0;
        if (i > 0)
            jbuf_adds(&b, ",");
        evidence_proof_json(&b, proof);
    }
    jbuf_adds(&b, "]}");
    readpool_give(ctx->log_readers, lg, failed);
    free(proof);
    enum MHD_Result rc;
    if (failed || b.failed) {
        log_error("evidence log: the keys: %s", failed ? err : "too large");
        rc = unavailable(req, c);
    } else {
        rc = send_copy(req, c, b.data, b.len, "application/json", "no-cache", head);
    }
    jbuf_free(&b);
    return rc;
}

enum MHD_Result http_log_serve(http_context *ctx, request *req, struct MHD_Connection *c,
                               const char *route, bool head)
{
    if (ctx->log == NULL)
        return http_reply_error(req, c, 404, "not_found",
                                "This server keeps no evidence log (--no-evidence-log).");
    if (strcmp(route, "checkpoint") == 0)
        return serve_checkpoint(ctx, req, c, head);
    if (strcmp(route, "key") == 0)
        return serve_key(ctx, req, c, head);
    if (strcmp(route, "keys") == 0)
        return serve_keys(ctx, req, c, head);
    if (strncmp(route, "tile/", 5) == 0)
        return serve_tile(ctx, req, c, route, head);
    return http_reply_error(req, c, 404, "not_found", "No such log resource.");
}
