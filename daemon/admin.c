#include "daemon/admin.h"

#include "daemon/admin_auth.h"
#include "daemon/admin_metrics.h"
#include "daemon/admin_token.h"

#include "common/b64.h"
#include "common/uuid7.h"
#include "daemon/clock.h"
#include "daemon/evidence.h"
#include "daemon/export.h"
#include "daemon/http_framing.h"
#include "daemon/http_guard.h"
#include "daemon/http_loop.h"
#include "daemon/http_target.h"
#include "daemon/jbuf.h"
#include "daemon/ledger.h"
#include "daemon/log.h"
#include "web/web.h"

#include <errno.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ADMIN_CONNECTIONS_MAX 64 /* a handful of operators and a scraper */
/* Per client address: a browser opens six connections to a host, so two or
 * so operators behind one NAT and a scraper fit, while one address holds a
 * quarter of the listener at most. */
#define ADMIN_PER_ADDRESS_MAX 16
#define ADMIN_IDLE_TIMEOUT_S  60
#define ADMIN_CONN_MEMORY     (32 * 1024)
#define ADMIN_AUTH_HEADER_MAX 512                 /* longer Authorization values: refused */
#define ADMIN_BODY_MAX        (32u * 1024 * 1024) /* largest JSON answer built in memory */
#define ADMIN_LIST_MAX        10000               /* rows of /api/contents and /api/clients */
#define ADMIN_PAGE_DEFAULT    50
#define ADMIN_PAGE_MAX        1000
#define ADMIN_EXPORTS_MAX     4 /* concurrent streaming exports, each a connection */
#define ADMIN_EXPORT_BLOCK    (64 * 1024)
#define ADMIN_CURSOR_MAX      64 /* base64url of an ID: 48 characters */
#define ADMIN_SERIES_DEFAULT  48
#define ADMIN_SERIES_MAX      500
#define ADMIN_SERIES_EMPTY_MS (24 * 3600 * 1000ull) /* range shown for an empty ledger */
#define ADMIN_METRICS_MAX     (64 * 1024)
#define ADMIN_ERR_BODY_MAX    512

/* Served on every admin answer: the dashboard loads only its own files. */
#define ADMIN_CSP                                                                                  \
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"               \
    " connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"                 \
    " frame-ancestors 'none'"

struct admin_server {
    admin_services svc;
    http_loop *loop;
    ledger *lg; /* used only on the loop's thread */
    unsigned port;
    atomic_int exports;
    char token[ADMIN_TOKEN_MAX + 1];
    uint8_t token_digest[SHA256_DIGEST_LENGTH];
    uint64_t started_ms;
    admin_auth *auth;  /* failed authentications; the listener's thread only */
    http_guard *guard; /* slow clients, as on the public listener */
};

/* ---- responses ------------------------------------------------------------ */

static void add_common_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Content-Security-Policy", ADMIN_CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
    if (r == NULL)
        return MHD_NO; /* out of memory: libmicrohttpd closes the connection */
    add_common_headers(r);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                                   const char *message)
{
    char body[ADMIN_ERR_BODY_MAX];
    jbuf b;
    jbuf_init(&b, body, sizeof body);
    jbuf_error(&b, code, message);
    if (b.failed)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(b.len, body, MHD_RESPMEM_MUST_COPY);
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        if (status == 401)
            MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                    "Bearer realm=\"receiptd admin\"");
        if (status == 405)
            MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        if (status == 503)
            MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    }
    return queue(c, status, r);
}

/* 429 for an address locked out after repeated wrong tokens. */
static enum MHD_Result reply_throttled(struct MHD_Connection *c, unsigned retry_after_s)
{
    char body[ADMIN_ERR_BODY_MAX];
    char retry[16];
    jbuf b;
    jbuf_init(&b, body, sizeof body);
    jbuf_error(&b, "too_many_failures",
               "Too many wrong tokens from this address; retry after Retry-After seconds.");
    if (b.failed)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(b.len, body, MHD_RESPMEM_MUST_COPY);
    if (r != NULL) {
        snprintf(retry, sizeof retry, "%u", retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry);
    }
    return queue(c, 429, r);
}

static enum MHD_Result reply_static(struct MHD_Connection *c, const unsigned char *data, size_t len,
                                    const char *type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    }
    return queue(c, 200, r);
}

/* A JSON answer, built on the heap up to ADMIN_BODY_MAX. */
static void body_init(jbuf *b)
{
    jbuf_init_growing(b, NULL, 0, ADMIN_BODY_MAX);
}

/* Queues the body as JSON and frees it either way. */
static enum MHD_Result reply_json(struct MHD_Connection *c, jbuf *b)
{
    size_t len = 0;
    char *text = jbuf_take(b, &len);
    if (text == NULL)
        return reply_error(c, 500, "internal_error", "The answer is too large to build.");
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, text, free);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return queue(c, 200, r);
}

static enum MHD_Result reply_ledger_error(admin_server *srv, struct MHD_Connection *c)
{
    log_error("admin: %s", ledger_error(srv->lg));
    if (ledger_timed_out(srv->lg))
        return reply_error(c, 503, "ledger_timeout",
                           "The ledger did not answer within its statement or lock timeout; "
                           "retry, or narrow the query.");
    return reply_error(c, 500, "ledger_error", "The ledger could not be read.");
}

static const char *arg(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

static double rate(uint64_t part, uint64_t whole)
{
    return (double)part / (double)whole;
}

/* ---- /api/summary ---------------------------------------------------------- */

static enum MHD_Result serve_summary(admin_server *srv, struct MHD_Connection *c)
{
    ledger_summary s;
    jbuf out;
    if (ledger_summary_read(srv->lg, &s) != 0)
        return reply_ledger_error(srv, c);
    body_init(&out);
    jbuf_adds(&out, "{");
    jbuf_member_u64(&out, "deliveries", s.deliveries);
    jbuf_member_u64(&out, "confirmed", s.confirmed);
    jbuf_member_u64(&out, "corrupted", s.corrupted);
    jbuf_member_u64(&out, "bound", s.bound);
    jbuf_member_u64(&out, "pending", s.pending);
    jbuf_key(&out, "confirmation_rate");
    if (s.deliveries == 0)
        jbuf_adds(&out, "null");
    else
        jbuf_double(&out, rate(s.confirmed + s.corrupted, s.deliveries));
    jbuf_key(&out, "first_issued_ms");
    jbuf_opt_u64(&out, s.first_ms);
    jbuf_key(&out, "last_activity_ms");
    jbuf_opt_u64(&out, s.last_ms);
    /* Each kind, every one named, so that a reader need not know them all. */
    jbuf_key(&out, "kinds");
    jbuf_adds(&out, "{");
    for (size_t k = 0; k < LEDGER_KIND_COUNT; k++) {
        const ledger_kind_counts *n = &s.kinds[k];
        jbuf_key(&out, ledger_kind_name((ledger_kind)k));
        jbuf_adds(&out, "{");
        jbuf_member_u64(&out, "deliveries", n->deliveries);
        jbuf_member_u64(&out, "confirmed", n->confirmed);
        jbuf_member_u64(&out, "corrupted", n->corrupted);
        jbuf_member_u64(&out, "pending", n->pending);
        jbuf_key(&out, "confirmation_rate");
        if (n->deliveries == 0)
            jbuf_adds(&out, "null");
        else
            jbuf_double(&out, rate(n->confirmed + n->corrupted, n->deliveries));
        jbuf_adds(&out, "}");
    }
    jbuf_adds(&out, "}}\n");
    return reply_json(c, &out);
}

/* ---- /api/deliveries ------------------------------------------------------ */

/* The cursor is base64url of the last ID of the page before. */
static int cursor_decode(const char *text, char id[UUID7_STR_LEN + 1])
{
    uint8_t raw[ADMIN_CURSOR_MAX];
    size_t n = strnlen(text, ADMIN_CURSOR_MAX + 1);
    if (n > ADMIN_CURSOR_MAX)
        return -1;
    long len = b64url_decode(text, n, raw, sizeof raw);
    if (len != UUID7_STR_LEN)
        return -1;
    for (long i = 0; i < len; i++) {
        char ch = (char)raw[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return -1;
    }
    memcpy(id, raw, UUID7_STR_LEN);
    id[UUID7_STR_LEN] = '\0';
    return 0;
}

typedef enum export_kind { KIND_JSON, KIND_NDJSON, KIND_CSV } export_kind;

static export_kind negotiate(struct MHD_Connection *c)
{
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    if (accept == NULL)
        return KIND_JSON;
    /* The first of the two named wins; anything else is the JSON page. */
    const char *csv = strcasestr(accept, "text/csv");
    const char *nd = strcasestr(accept, "application/x-ndjson");
    if (csv != NULL && (nd == NULL || csv < nd))
        return KIND_CSV;
    if (nd != NULL)
        return KIND_NDJSON;
    return KIND_JSON;
}

typedef struct export_stream {
    admin_server *srv;
    ledger *lg; /* the export's own connection */
    ledger_cursor *cur;
    export_kind kind;
    bool done;
    bool failed;
    size_t off;
    jbuf line;
    char text[EXPORT_ITEM_MAX];
} export_stream;

static void export_stream_free(void *cls)
{
    export_stream *x = cls;
    if (x == NULL)
        return;
    ledger_cursor_free(x->cur);
    ledger_close(x->lg);
    atomic_fetch_sub(&x->srv->exports, 1);
    free(x);
}

/* Renders the next row into x->line; false at the end or on error. */
static bool export_next_line(export_stream *x)
{
    ledger_delivery *row = malloc(sizeof *row);
    if (row == NULL) {
        x->failed = true;
        return false;
    }
    int rc = ledger_cursor_next(x->cur, row);
    if (rc < 0) {
        log_error("admin export: %s", ledger_error(x->lg));
        x->failed = true;
    } else if (rc == 0) {
        x->done = true;
    } else {
        jbuf_reset(&x->line);
        if (x->kind == KIND_CSV) {
            export_item_csv(&x->line, row);
        } else {
            export_item_json(&x->line, row, false);
            jbuf_adds(&x->line, "\n");
        }
        x->off = 0;
        if (x->line.failed) {
            log_error("admin export: row %s does not fit %d bytes", row->id, EXPORT_ITEM_MAX);
            x->failed = true;
        }
    }
    free(row);
    return rc == 1 && !x->failed;
}

static ssize_t export_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    export_stream *x = cls;
    size_t out = 0;
    (void)pos;
    while (out < max) {
        if (x->off < x->line.len) {
            size_t n = x->line.len - x->off;
            if (n > max - out)
                n = max - out;
            memcpy(buf + out, x->text + x->off, n);
            x->off += n;
            out += n;
            continue;
        }
        if (x->done || x->failed || !export_next_line(x))
            break;
    }
    if (out > 0)
        return (ssize_t)out;
    /* An error mid-stream cuts the chunked body short: the client sees it. */
    return x->failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
}

static enum MHD_Result serve_export(admin_server *srv, struct MHD_Connection *c,
                                    const ledger_filter *f, export_kind kind)
{
    char err[LEDGER_ERR_MAX];
    const config *cfg = srv->svc.cfg;
    if (atomic_fetch_add(&srv->exports, 1) >= ADMIN_EXPORTS_MAX) {
        atomic_fetch_sub(&srv->exports, 1);
        return reply_error(c, 503, "busy", "Too many exports at once; retry in a moment.");
    }
    export_stream *x = calloc(1, sizeof *x);
    if (x == NULL) {
        atomic_fetch_sub(&srv->exports, 1);
        return MHD_NO;
    }
    x->srv = srv;
    x->kind = kind;
    jbuf_init(&x->line, x->text, sizeof x->text);
    x->lg = ledger_open(cfg->ledger_url, cfg->state_dir, true, err, sizeof err);
    x->cur = x->lg != NULL ? ledger_query(x->lg, f) : NULL;
    if (x->cur == NULL) {
        log_error("admin export: %s", x->lg != NULL ? ledger_error(x->lg) : err);
        export_stream_free(x);
        return reply_error(c, 500, "ledger_error", "The ledger could not be read.");
    }
    if (kind == KIND_CSV)
        jbuf_adds(&x->line, export_csv_header);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, ADMIN_EXPORT_BLOCK,
                                                               export_read, x, export_stream_free);
    if (r == NULL) {
        export_stream_free(x);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            kind == KIND_CSV ? "text/csv; charset=utf-8; header=present"
                                             : "application/x-ndjson");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (kind == KIND_CSV)
        MHD_add_response_header(r, "Content-Disposition",
                                "attachment; filename=\"deliveries.csv\"");
    return queue(c, 200, r);
}

static enum MHD_Result serve_deliveries(admin_server *srv, struct MHD_Connection *c)
{
    char err[EXPORT_ERR_MAX];
    char before[UUID7_STR_LEN + 1] = "";
    ledger_filter f;
    unsigned long limit = ADMIN_PAGE_DEFAULT;

    const export_filter_text ft = {
        .content = arg(c, "content"),
        .client = arg(c, "client"),
        .status = arg(c, "status"),
        .kind = arg(c, "kind"),
        .since = arg(c, "since"),
        .until = arg(c, "until"),
    };
    if (export_filter_parse(&f, &ft, err, sizeof err) != 0)
        return reply_error(c, 400, "bad_filter", err);
    const char *cursor = arg(c, "cursor");
    if (cursor != NULL && cursor[0] != '\0') {
        if (cursor_decode(cursor, before) != 0)
            return reply_error(c, 400, "bad_cursor", "cursor: not a cursor of this API.");
        f.before_id = before;
    }
    const char *limit_text = arg(c, "limit");
    if (limit_text != NULL && limit_text[0] != '\0') {
        char *end = NULL;
        errno = 0;
        limit = strtoul(limit_text, &end, 10);
        if (errno != 0 || *end != '\0' || limit_text[0] < '0' || limit_text[0] > '9' || limit < 1 ||
            limit > ADMIN_PAGE_MAX)
            return reply_error(c, 400, "bad_limit", "limit: a whole number from 1 to 1000.");
    }

    export_kind kind = negotiate(c);
    if (kind != KIND_JSON)
        return serve_export(srv, c, &f, kind);

    /* One row past the page tells whether there is a next one; the ledger
     * plans for no more (PostgreSQL: a LIMIT, read through an index). */
    f.limit = limit + 1;
    jbuf out;
    ledger_delivery *row = malloc(sizeof *row);
    ledger_cursor *cur = row != NULL ? ledger_query(srv->lg, &f) : NULL;
    char last[UUID7_STR_LEN + 1] = "";
    bool more = false;
    int rc = -1;
    body_init(&out);
    if (cur == NULL)
        goto fail;
    jbuf_adds(&out, "{\"items\":[");
    for (unsigned long n = 0;; n++) {
        rc = ledger_cursor_next(cur, row);
        if (rc <= 0)
            break;
        if (n == limit) {
            more = true; /* one row past the page: there is a next one */
            break;
        }
        jbuf_sep(&out);
        export_item_json(&out, row, false);
        memcpy(last, row->id, sizeof last);
    }
    if (rc < 0)
        goto fail;
    jbuf_adds(&out, "]");
    jbuf_key(&out, "next_cursor");
    if (more) {
        char enc[ADMIN_CURSOR_MAX + 1];
        size_t n = b64url_encode((const uint8_t *)last, UUID7_STR_LEN, enc);
        jbuf_string(&out, enc, n);
    } else {
        jbuf_adds(&out, "null");
    }
    jbuf_adds(&out, "}\n");
    ledger_cursor_free(cur);
    free(row);
    return reply_json(c, &out);
fail:
    ledger_cursor_free(cur);
    jbuf_free(&out);
    if (row == NULL)
        return MHD_NO;
    free(row);
    return reply_ledger_error(srv, c);
}

/* The evidence bundle of a delivery (docs/evidence.md), as receiptd evidence writes it. */
static enum MHD_Result serve_evidence(admin_server *srv, struct MHD_Connection *c, const char *id)
{
    if (srv->svc.keys == NULL)
        return reply_error(c, 404, "no_evidence_log",
                           "This server keeps no evidence log (--no-evidence-log).");
    char err[EVIDENCE_ERR_MAX];
    jbuf out;
    jbuf_init_growing(&out, NULL, 0, EVIDENCE_BUNDLE_MAX);
    int rc = evidence_bundle(srv->lg, srv->svc.keys, id, &out, err, sizeof err);
    if (rc == 1) {
        jbuf_adds(&out, "\n");
        return reply_json(c, &out);
    }
    jbuf_free(&out);
    if (rc == 0)
        return reply_error(c, 404, "not_found",
                           "No delivery with this ID, or none of its events in the log.");
    log_error("admin: the evidence of %s: %s", id, err);
    return reply_error(c, 500, "ledger_error", "The ledger could not be read.");
}

static enum MHD_Result serve_delivery(admin_server *srv, struct MHD_Connection *c, const char *id)
{
    size_t n = strlen(id);
    if (n == UUID7_STR_LEN + 9 && strcmp(id + UUID7_STR_LEN, "/evidence") == 0) {
        char one[UUID7_STR_LEN + 1];
        uuid7 parsed;
        memcpy(one, id, UUID7_STR_LEN);
        one[UUID7_STR_LEN] = '\0';
        if (uuid7_parse(one, UUID7_STR_LEN, &parsed) != 0)
            return reply_error(c, 404, "not_found", "No delivery with this ID.");
        return serve_evidence(srv, c, one);
    }
    if (strlen(id) != UUID7_STR_LEN)
        return reply_error(c, 404, "not_found", "No delivery with this ID.");
    ledger_delivery *row = malloc(sizeof *row);
    enum MHD_Result ret = MHD_NO;
    if (row == NULL)
        return MHD_NO;
    int found = ledger_get(srv->lg, id, row);
    if (found < 0) {
        ret = reply_ledger_error(srv, c);
    } else if (found == 0) {
        ret = reply_error(c, 404, "not_found", "No delivery with this ID.");
    } else {
        jbuf out;
        body_init(&out);
        export_item_json(&out, row, true);
        jbuf_adds(&out, "\n");
        ret = reply_json(c, &out);
    }
    free(row);
    return ret;
}

/* ---- /api/contents, /api/clients ----------------------------------------- */

typedef struct list_ctx {
    jbuf *out;
    size_t n;
    bool truncated;
} list_ctx;

static int content_item(void *arg, const ledger_content_stats *s)
{
    list_ctx *ctx = arg;
    jbuf *b = ctx->out;
    char sha[48];
    if (ctx->n == ADMIN_LIST_MAX) {
        ctx->truncated = true;
        return 1;
    }
    size_t sha_len = b64url_encode(s->sha256, 32, sha);
    jbuf_sep(b);
    jbuf_adds(b, "{");
    jbuf_member_str(b, "content", s->path);
    jbuf_key(b, "sha256");
    jbuf_string(b, sha, sha_len);
    jbuf_member_u64(b, "size", s->size);
    jbuf_member_u64(b, "deliveries", s->deliveries);
    jbuf_member_u64(b, "confirmed", s->confirmed);
    jbuf_member_u64(b, "corrupted", s->corrupted);
    jbuf_member_u64(b, "pending", s->pending);
    jbuf_key(b, "confirmation_rate");
    jbuf_double(b, rate(s->confirmed + s->corrupted, s->deliveries));
    jbuf_key(b, "median_ms");
    if (s->has_latency)
        jbuf_i64(b, s->median_ms);
    else
        jbuf_adds(b, "null");
    jbuf_key(b, "p95_ms");
    if (s->has_latency)
        jbuf_i64(b, s->p95_ms);
    else
        jbuf_adds(b, "null");
    jbuf_member_u64(b, "first_issued_ms", s->first_ms);
    jbuf_member_u64(b, "last_issued_ms", s->last_ms);
    jbuf_adds(b, "}");
    ctx->n++;
    return 0;
}

static int client_item(void *arg, const ledger_client_stats *s)
{
    list_ctx *ctx = arg;
    jbuf *b = ctx->out;
    if (ctx->n == ADMIN_LIST_MAX) {
        ctx->truncated = true;
        return 1;
    }
    jbuf_sep(b);
    jbuf_adds(b, "{");
    jbuf_member_str(b, "client", s->client);
    jbuf_member_u64(b, "deliveries", s->deliveries);
    jbuf_member_u64(b, "confirmed", s->confirmed);
    jbuf_member_u64(b, "corrupted", s->corrupted);
    jbuf_member_u64(b, "pending", s->pending);
    jbuf_member_u64(b, "last_seen_ms", s->last_seen_ms);
    jbuf_adds(b, "}");
    ctx->n++;
    return 0;
}

static enum MHD_Result serve_list(admin_server *srv, struct MHD_Connection *c, bool contents)
{
    jbuf out;
    list_ctx ctx = {.out = &out};
    body_init(&out);
    jbuf_adds(&out, "{\"items\":[");
    int rc = contents ? ledger_content_stats_read(srv->lg, content_item, &ctx)
                      : ledger_client_stats_read(srv->lg, client_item, &ctx);
    if (rc != 0) {
        jbuf_free(&out);
        return reply_ledger_error(srv, c);
    }
    jbuf_adds(&out, "]");
    jbuf_key(&out, "truncated");
    jbuf_adds(&out, ctx.truncated ? "true}\n" : "false}\n");
    return reply_json(c, &out);
}

/* ---- /api/series ------------------------------------------------------------ */

/* Bucket widths a person reads at a glance. */
static const uint64_t nice_widths_ms[] = {
    1000,     5000,      10000,     30000,      60000,      300000,   600000,
    900000,   1800000,   3600000,   7200000,    10800000,   21600000, 43200000,
    86400000, 172800000, 604800000, 1209600000, 2592000000,
};
#define NICE_WIDTHS (sizeof nice_widths_ms / sizeof nice_widths_ms[0])

typedef struct series_ctx {
    jbuf *out;
    uint64_t next_ms; /* start of the next bucket to write */
    uint64_t width_ms;
} series_ctx;

static void series_put(series_ctx *ctx, uint64_t start, uint64_t d, uint64_t cf, uint64_t cr)
{
    jbuf *b = ctx->out;
    jbuf_sep(b);
    jbuf_adds(b, "{");
    jbuf_member_u64(b, "t", start);
    jbuf_member_u64(b, "deliveries", d);
    jbuf_member_u64(b, "confirmed", cf);
    jbuf_member_u64(b, "corrupted", cr);
    jbuf_adds(b, "}");
}

static int series_bucket(void *arg, const ledger_bucket *row)
{
    series_ctx *ctx = arg;
    /* The ledger gives non-empty buckets only: fill the gaps with zeros. */
    for (; ctx->next_ms < row->start_ms; ctx->next_ms += ctx->width_ms)
        series_put(ctx, ctx->next_ms, 0, 0, 0);
    series_put(ctx, row->start_ms, row->deliveries, row->confirmed, row->corrupted);
    ctx->next_ms = row->start_ms + ctx->width_ms;
    return 0;
}

static enum MHD_Result serve_series(admin_server *srv, struct MHD_Connection *c)
{
    ledger_summary s;
    uint64_t since = 0, until = 0;
    unsigned long buckets = ADMIN_SERIES_DEFAULT;
    const char *text = arg(c, "buckets");
    if (text != NULL && text[0] != '\0') {
        char *end = NULL;
        buckets = strtoul(text, &end, 10);
        if (*end != '\0' || text[0] < '0' || text[0] > '9' || buckets < 1 ||
            buckets > ADMIN_SERIES_MAX)
            return reply_error(c, 400, "bad_buckets", "buckets: a whole number from 1 to 500.");
    }
    text = arg(c, "since");
    if (text != NULL && text[0] != '\0' && export_parse_time(text, &since) != 0)
        return reply_error(c, 400, "bad_filter", "since: not a time.");
    text = arg(c, "until");
    if (text != NULL && text[0] != '\0' && export_parse_time(text, &until) != 0)
        return reply_error(c, 400, "bad_filter", "until: not a time.");
    if (since == 0 || until == 0) {
        if (ledger_summary_read(srv->lg, &s) != 0)
            return reply_ledger_error(srv, c);
        if (s.deliveries == 0) {
            /* Nothing yet: the last day, empty, rather than 1970. */
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            s.last_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
            s.first_ms = s.last_ms - ADMIN_SERIES_EMPTY_MS;
        }
        if (since == 0)
            since = s.first_ms;
        if (until == 0)
            until = s.last_ms + 1;
    }
    if (until <= since)
        until = since + 1;

    /* The narrowest nice width that covers the range in `buckets`; since
     * moves back to a multiple of it, so buckets fall on round times. */
    uint64_t span = until - since;
    uint64_t width = nice_widths_ms[NICE_WIDTHS - 1];
    for (size_t i = 0; i < NICE_WIDTHS; i++) {
        if (nice_widths_ms[i] * buckets >= span) {
            width = nice_widths_ms[i];
            break;
        }
    }
    if (width * buckets < span)
        width = (span + buckets - 1) / buckets;
    since -= since % width;
    uint64_t count = (until - since + width - 1) / width;
    until = since + count * width;

    jbuf out;
    body_init(&out);
    jbuf_adds(&out, "{");
    jbuf_member_u64(&out, "since_ms", since);
    jbuf_member_u64(&out, "until_ms", until);
    jbuf_member_u64(&out, "bucket_ms", width);
    jbuf_key(&out, "buckets");
    jbuf_adds(&out, "[");
    series_ctx ctx = {.out = &out, .next_ms = since, .width_ms = width};
    if (ledger_series_read(srv->lg, since, until, width, series_bucket, &ctx) != 0) {
        jbuf_free(&out);
        return reply_ledger_error(srv, c);
    }
    for (; ctx.next_ms < until; ctx.next_ms += width)
        series_put(&ctx, ctx.next_ms, 0, 0, 0);
    jbuf_adds(&out, "]}\n");
    return reply_json(c, &out);
}

/* ---- /metrics ----------------------------------------------------------------- */

static enum MHD_Result serve_metrics(admin_server *srv, struct MHD_Connection *c)
{
    jbuf b;
    jbuf_init_growing(&b, NULL, 0, ADMIN_METRICS_MAX);
    admin_auth_stats auth;
    admin_auth_get_stats(srv->auth, &auth);
    http_guard_stats conns;
    http_server_guard_stats(srv->svc.http, &conns);
    admin_metrics_write(&b, srv->svc.ledger_writer, srv->started_ms, srv->svc.recovered_at_start,
                        &auth, &conns, srv->svc.upstreams);
    size_t len = 0;
    char *text = jbuf_take(&b, &len);
    if (text == NULL)
        return reply_error(c, 500, "internal_error", "The metrics do not fit.");
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(len, text, free);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return queue(c, 200, r);
}

/* ---- routing ------------------------------------------------------------------ */

/*
 * Compares digests of the whole presented value with CRYPTO_memcmp: the time
 * taken depends on neither where the values differ nor the token's length.
 */
static bool token_matches(const admin_server *srv, const char *presented, size_t len)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)presented, len, digest);
    return CRYPTO_memcmp(digest, srv->token_digest, sizeof digest) == 0;
}

/* 0 authorized; otherwise the 401 was queued and its result is in *ret. */
static int require_token(admin_server *srv, struct MHD_Connection *c, enum MHD_Result *ret)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *addr = info != NULL ? info->client_addr : NULL;
    uint64_t now = clock_mono_ms();
    unsigned retry_after = 0;
    if (admin_auth_locked(srv->auth, addr, now, &retry_after)) {
        /* The token is not even looked at: guesses wait their turn. */
        *ret = reply_throttled(c, retry_after);
        return -1;
    }
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (h == NULL) {
        *ret = reply_error(c, 401, "unauthorized",
                           "Send Authorization: Bearer TOKEN (STATE_DIR/admin-token).");
        return -1;
    }
    size_t n = strnlen(h, ADMIN_AUTH_HEADER_MAX + 1);
    const char *tok = h + 6;
    bool ok = n <= ADMIN_AUTH_HEADER_MAX && strncasecmp(h, "Bearer", 6) == 0 &&
              (*tok == ' ' || *tok == '\t');
    if (ok) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t len = strlen(tok);
        while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
            len--;
        ok = token_matches(srv, tok, len);
    }
    if (!ok) {
        admin_auth_failed(srv->auth, addr, now);
        *ret = reply_error(c, 401, "invalid_token", "The admin token is not valid.");
        return -1;
    }
    admin_auth_succeeded(srv->auth, addr);
    return 0;
}

static enum MHD_Result serve_api(admin_server *srv, struct MHD_Connection *c, const char *route)
{
    if (strcmp(route, "summary") == 0)
        return serve_summary(srv, c);
    if (strcmp(route, "deliveries") == 0)
        return serve_deliveries(srv, c);
    if (strncmp(route, "deliveries/", 11) == 0)
        return serve_delivery(srv, c, route + 11);
    if (strcmp(route, "contents") == 0)
        return serve_list(srv, c, true);
    if (strcmp(route, "clients") == 0)
        return serve_list(srv, c, false);
    if (strcmp(route, "series") == 0)
        return serve_series(srv, c);
    return reply_error(c, 404, "not_found", "No such API endpoint.");
}

/* ---- connections ---------------------------------------------------------- */

/* Per connection, made and freed by the library's connection notifications. */
typedef struct admin_conn {
    tls_conn tls; /* first: tls_creds_retrieve() finds it there */
    void *guard;  /* the slow-client guard's record of it (http_guard_conn) */
} admin_conn;

/* --header-timeout and the per-address limit hold here as on the public
 * listener: a client that trickles its headers would otherwise keep its
 * connection for ever (each byte resets the idle timeout), and 64 of them
 * keep every operator out without knowing the token. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    admin_server *srv = cls;
    (void)addrlen;
    return http_guard_admits(srv->guard, addr) ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    admin_server *srv = cls;
    admin_conn *ac = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        /* Without one, a TLS handshake finds no certificate and fails. */
        ac = calloc(1, sizeof *ac);
        if (ac != NULL) {
            if (srv->svc.tls != NULL)
                tls_conn_start(&ac->tls, srv->svc.tls, c);
            http_guard_notify(srv->guard, c, &ac->guard, code);
        }
        *socket_context = ac;
        return;
    }
    if (ac != NULL) {
        http_guard_notify(srv->guard, c, &ac->guard, code);
        tls_conn_close(&ac->tls);
        free(ac);
    }
    *socket_context = NULL;
}

/* Per request: made when its request line arrives, freed when it ends. */
typedef struct admin_request {
    http_guard_conn *guard;   /* its connection's (may be NULL) */
    bool started;             /* its first call (the headers) was made */
    size_t target_prefix;     /* an absolute-form target's bytes before its path */
    const char *target_error; /* a target not taken: why */
} admin_request;

/* The target's form, read as received (http_target.h), as the public
 * listener reads it: an absolute-form target's path is served. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    admin_request *ar = calloc(1, sizeof *ar);
    if (ar == NULL)
        return NULL;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    admin_conn *ac = info != NULL ? info->socket_context : NULL;
    ar->guard = ac != NULL ? ac->guard : NULL;
    http_guard_request_line(ar->guard);
    http_target t;
    http_target_parse(uri, &t);
    ar->target_prefix = t.prefix_len;
    ar->target_error = t.form == HTTP_TARGET_BAD ? t.reason : NULL;
    return ar;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    admin_server *srv = cls;
    admin_request *ar = *req_cls;
    (void)upload_data;
    if (ar == NULL)
        return MHD_NO; /* out of memory: the library closes the connection */
    if (!ar->started) {
        ar->started = true;
        http_guard_headers_done(ar->guard,
                                strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0);
        /* A request whose framing or Host is not sound is refused as the
         * public listener refuses it, before its token is looked at, and
         * its connection closed: nothing after it is read. */
        http_framing framing;
        http_framing_read(c, &framing);
        const http_framing_fault *fault = http_framing_check(&framing, version);
        if (fault != NULL) {
            size_t len;
            return queue(c, fault->status, http_framing_response(fault, &len));
        }
        /* Headers only: answer on the next call, with any body read. */
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        http_guard_body(ar->guard, *upload_data_size);
        *upload_data_size = 0; /* the admin API takes no bodies: discard */
        return MHD_YES;
    }
    http_guard_body_done(ar->guard);
    if (ar->target_error != NULL)
        return reply_error(c, 400, "bad_target", ar->target_error);
    /* The prefix holds no '%': the library's decoding left it as it was. */
    if (ar->target_prefix > 0)
        url = url[ar->target_prefix] != '\0' ? url + ar->target_prefix : "/";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply_error(c, 405, "method_not_allowed", "Use GET here.");

    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
        return reply_static(c, web_dashboard_html, web_dashboard_html_len,
                            "text/html; charset=utf-8");
    if (strcmp(url, "/dashboard.css") == 0)
        return reply_static(c, web_dashboard_css, web_dashboard_css_len, "text/css; charset=utf-8");
    if (strcmp(url, "/dashboard.js") == 0)
        return reply_static(c, web_dashboard_js, web_dashboard_js_len,
                            "text/javascript; charset=utf-8");
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(srv, c);
    if (strncmp(url, "/api/", 5) == 0) {
        enum MHD_Result ret;
        if (require_token(srv, c, &ret) != 0)
            return ret;
        return serve_api(srv, c, url + 5);
    }
    return reply_error(c, 404, "not_found", "Nothing here.");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    admin_request *ar = *req_cls;
    if (ar != NULL)
        http_guard_request_done(ar->guard);
    http_loop_free_request(cls, c, req_cls, toe);
}

admin_server *admin_start(const admin_services *svc, char *err, size_t errlen)
{
    const config *cfg = svc->cfg;
    bool created = false;
    admin_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->svc = *svc;
    atomic_init(&srv->exports, 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    srv->started_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;

    if (admin_token_load(cfg->state_dir, true, srv->token, &created, err, errlen) != 0)
        goto fail;
    if (created)
        log_info("made a new admin token in %s/%s", cfg->state_dir, ADMIN_TOKEN_FILE);
    SHA256((const unsigned char *)srv->token, strlen(srv->token), srv->token_digest);

    srv->lg = ledger_open(cfg->ledger_url, cfg->state_dir, true, err, errlen);
    if (srv->lg == NULL)
        goto fail;
    srv->auth = admin_auth_new();
    if (srv->auth == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    http_guard_options gopts = {
        .name = "admin",
        .listener = METRICS_LISTENER_ADMIN,
        .header_timeout_ms = cfg->header_timeout_s * 1000,
        .min_body_rate = cfg->min_body_rate,
        .idle_timeout_ms = ADMIN_IDLE_TIMEOUT_S * 1000,
        .max_connections = ADMIN_CONNECTIONS_MAX,
        .threads = 1,
        .per_address = ADMIN_PER_ADDRESS_MAX,
        .exempt = &cfg->trusted_proxies,
    };
    srv->guard = http_guard_new(&gopts);
    if (srv->guard == NULL) {
        snprintf(err, errlen, "cannot start the admin connection watchdog");
        goto fail;
    }

    /* One thread: the ledger handle is single-threaded. */
    unsigned flags = MHD_USE_ERROR_LOG;
    if (cfg->admin_listen.addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (svc->tls != NULL)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem options[] = {
        {MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_IDLE_TIMEOUT_S, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, ADMIN_CONN_MEMORY, NULL},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)log_library, "admin http"},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, srv},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, srv},
        /* Without TLS, the options end here. */
        {svc->tls != NULL ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, 0,
         (void *)tls_creds_retrieve},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)tls_priorities},
        {MHD_OPTION_END, 0, NULL},
    };
    const http_loop_settings settings = {
        .name = "admin",
        .threads = 1,
        .flags = flags,
        .listen = (const struct sockaddr *)&cfg->admin_listen.addr,
        .max_connections = ADMIN_CONNECTIONS_MAX,
        .accept_policy = on_accept,
        .accept_policy_cls = srv,
        .handler = on_request,
        .handler_cls = srv,
        .options = options,
    };
    char why[256];
    if (http_loop_start(&settings, &srv->loop, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot listen on %s (admin): %s", cfg->admin_listen.text, why);
        goto fail;
    }
    srv->port = http_loop_port(srv->loop);
    return srv;
fail:
    http_guard_free(srv->guard);
    ledger_close(srv->lg);
    admin_auth_free(srv->auth);
    OPENSSL_cleanse(srv->token, sizeof srv->token);
    free(srv);
    return NULL;
}

unsigned admin_port(const admin_server *srv)
{
    return srv != NULL ? srv->port : 0;
}

const char *admin_token(const admin_server *srv)
{
    return srv->token;
}

void admin_stop(admin_server *srv)
{
    if (srv == NULL)
        return;
    http_loop_stop(srv->loop);   /* frees every export, closing their ledgers */
    http_guard_free(srv->guard); /* the library has closed every connection */
    ledger_close(srv->lg);
    admin_auth_free(srv->auth);
    OPENSSL_cleanse(srv->token, sizeof srv->token);
    free(srv);
}
