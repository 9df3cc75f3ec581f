#include "daemon/http_reply.h"

#include "daemon/clock.h"
#include "daemon/jbuf.h"
#include "daemon/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define HTTP_ERROR_BODY_MAX 512

enum MHD_Result http_reply_queue(request *req, struct MHD_Connection *c, unsigned status,
                                 struct MHD_Response *r, uint64_t body_bytes)
{
    if (r == NULL) {
        /* Out of memory: let libmicrohttpd close the connection. */
        req->status = 500;
        metrics_count_response(req->route, 500);
        return MHD_NO;
    }
    req->status = status;
    req->bytes = body_bytes;
    metrics_count_response(req->route, status);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    /* Over TLS, the header block's record waits for the body's first, so
     * that both leave in one write: only when a body is sent (not for
     * HEAD, nor a status that has none). The library writes nothing
     * before the handler returns. */
    if (rc == MHD_YES && body_bytes > 0 && status >= 200 && status != 204 && status != 304 &&
        strcmp(req->method, "HEAD") != 0)
        tls_io_join_response(req->tls);
    return rc;
}

struct MHD_Response *http_reply_empty(void)
{
    return MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
}

/* Never called: libmicrohttpd reads no body for a 304. */
static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

struct MHD_Response *http_reply_not_modified(uint64_t length)
{
    return MHD_create_response_from_callback(length, 1, no_body, NULL, NULL);
}

struct MHD_Response *http_reply_no_length(void)
{
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1, no_body, NULL, NULL);
    if (r != NULL &&
        MHD_set_response_options(r, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END) != MHD_YES) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* The JSON error body of docs/protocol.md section 10, in out (HTTP_ERROR_BODY_MAX
 * bytes); returns its length. */
static size_t error_body(const char *code, const char *message, char *out)
{
    jbuf b;
    jbuf_init(&b, out, HTTP_ERROR_BODY_MAX);
    jbuf_adds(&b, "{");
    jbuf_member_str(&b, "error", code);
    jbuf_member_str(&b, "message", message);
    jbuf_adds(&b, "}\n");
    if (b.failed) {
        /* The code alone: it is what clients act on. */
        jbuf_reset(&b);
        jbuf_adds(&b, "{");
        jbuf_member_str(&b, "error", code);
        jbuf_adds(&b, ",\"message\":\"\"}\n");
    }
    return b.len;
}

struct MHD_Response *http_reply_error_response(unsigned status, const char *code,
                                               const char *message, size_t *len)
{
    char body[HTTP_ERROR_BODY_MAX];
    *len = error_body(code, message, body);
    struct MHD_Response *r = MHD_create_response_from_buffer(*len, body, MHD_RESPMEM_MUST_COPY);
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        if (status == 503)
            MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    }
    return r;
}

enum MHD_Result http_reply_error(request *req, struct MHD_Connection *c, unsigned status,
                                 const char *code, const char *message)
{
    size_t len;
    struct MHD_Response *r = http_reply_error_response(status, code, message, &len);
    /* A browser must see why a cross-origin confirmation failed (a 409 is
     * final, a network error is retried); content errors stay same-origin
     * so that other sites cannot probe which paths exist. */
    if (r != NULL && (req->route == METRICS_ROUTE_PLUGIN || req->route == METRICS_ROUTE_CONFIRM))
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    return http_reply_queue(req, c, status, r, strcmp(req->method, "HEAD") == 0 ? 0 : len);
}

enum MHD_Result http_reply_error_close(request *req, struct MHD_Connection *c, unsigned status,
                                       const char *code, const char *message)
{
    size_t len;
    struct MHD_Response *r = http_reply_error_response(status, code, message, &len);
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    return http_reply_queue(req, c, status, r, strcmp(req->method, "HEAD") == 0 ? 0 : len);
}

enum MHD_Result http_reply_method_not_allowed(request *req, struct MHD_Connection *c,
                                              const char *allow)
{
    char body[HTTP_ERROR_BODY_MAX];
    char message[64];
    snprintf(message, sizeof message, "Use %s here.", allow);
    size_t n = error_body("method_not_allowed", message, body);
    struct MHD_Response *r = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_COPY);
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    }
    return http_reply_queue(req, c, 405, r, n);
}

enum MHD_Result http_reply_preflight(request *req, struct MHD_Connection *c, const char *allow)
{
    struct MHD_Response *r = http_reply_empty();
    if (r != NULL) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", allow);
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                "Content-Type, Receipt-Client-Key");
        MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    }
    return http_reply_queue(req, c, 204, r, 0);
}

enum MHD_Result http_reply_refused(request *req, struct MHD_Connection *c, writer_result why)
{
    switch (why) {
    case WRITER_FAILING:
        return http_reply_error(req, c, 503, "ledger_unavailable",
                                "The ledger cannot record this now; retry shortly.");
    case WRITER_STOPPING:
        return http_reply_error(req, c, 503, "shutting_down",
                                "The server is shutting down; retry shortly.");
    case WRITER_QUEUE_FULL:
    default:
        return http_reply_error(req, c, 503, "ledger_busy",
                                "The ledger is busy; retry in a moment.");
    }
}

size_t http_reply_room(struct MHD_Connection *c, size_t pool)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (info == NULL)
        return pool;
    int fields = MHD_get_connection_values(
        c, MHD_HEADER_KIND | MHD_COOKIE_KIND | MHD_GET_ARGUMENT_KIND, NULL, NULL);
    size_t used = info->header_size + (size_t)(fields > 0 ? fields : 0) * HTTP_REPLY_FIELD_RECORD;
    return used < pool ? pool - used : 0;
}

size_t http_reply_headroom(size_t content_path_len)
{
    size_t extra = content_path_len > HTTP_REPLY_PATH_FREE
                       ? (content_path_len - HTTP_REPLY_PATH_FREE) * HTTP_REPLY_HEADROOM_PER_BYTE
                       : 0;
    return HTTP_REPLY_HEADROOM + extra;
}
