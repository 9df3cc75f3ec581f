#include "daemon/http_file.h"

#include "daemon/clock.h"
#include "daemon/delivery.h"
#include "daemon/http_deliver.h"
#include "daemon/http_reply.h"
#include "daemon/httpcond.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(CONTENT_PATH_MAX <= TICKET_PATH_MAX, "every content path fits a ticket");

/* Keeps a body alive while libmicrohttpd sends it. */
typedef struct body_ref {
    content_file file;
} body_ref;

static void add_extra_headers(const http_context *ctx, struct MHD_Response *r)
{
    const config *cfg = ctx->cfg;
    for (size_t i = 0; i < cfg->header_count; i++)
        MHD_add_response_header(r, cfg->headers[i].name, cfg->headers[i].value);
}

/* Takes f (released on failure). */
static body_ref *body_ref_new(content_file *f)
{
    body_ref *ref = malloc(sizeof *ref);
    if (ref == NULL) {
        content_file_release(f);
        return NULL;
    }
    ref->file = *f;
    return ref;
}

static void free_body_ref(void *cls)
{
    body_ref *ref = cls;
    content_file_release(&ref->file);
    free(ref);
}

/* ---- conditional and range requests -------------------------------------- */

static bool not_modified(struct MHD_Connection *c, const content_file *f)
{
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    if (inm != NULL)
        return httpcond_etag_matches(inm, f->etag);
    const char *ims = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-Modified-Since");
    time_t since;
    if (ims != NULL && httpcond_parse_date(ims, &since))
        return f->mtime.tv_sec <= since;
    return false;
}

/* One byte range; If-Range that names another version asks for it all. */
static httpcond_range requested_range(struct MHD_Connection *c, const content_file *f,
                                      uint64_t *start, uint64_t *len)
{
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    if (range == NULL)
        return HTTPCOND_RANGE_NONE;
    const char *if_range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-Range");
    if (if_range != NULL && strcmp(if_range, f->etag) != 0 &&
        strcmp(if_range, f->last_modified) != 0)
        return HTTPCOND_RANGE_NONE;
    return httpcond_parse_range(range, f->size, start, len);
}

/* ---- content -------------------------------------------------------------- */

/*
 * The headers of a 200 or 206. An injected page has no validators: its
 * every view that reaches the server must be a new delivery, never a 304
 * that brings back an old one.
 */
static void add_content_headers(const http_context *ctx, struct MHD_Response *r,
                                const content_file *f, bool injected)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, f->mime);
    if (!injected) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, f->etag);
        MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, f->last_modified);
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "private, no-cache");
    MHD_add_response_header(r, "Repr-Digest", injected ? f->injected_repr_digest : f->repr_digest);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    add_extra_headers(ctx, r);
}

static enum MHD_Result reply_not_modified(http_context *ctx, request *req, struct MHD_Connection *c,
                                          content_file *f)
{
    struct MHD_Response *r = http_reply_not_modified(f->size);
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, f->etag);
        MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, f->last_modified);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "private, no-cache");
        add_extra_headers(ctx, r);
    }
    content_file_release(f);
    return http_reply_queue(req, c, 304, r, 0);
}

/*
 * A response whose body is [start, start + len) of the file. Takes f. On a
 * plain connection a large enough body in a snapshot goes out by sendfile
 * from a descriptor of its own (the library closes it), which spares the
 * copy of every byte through user space; TLS needs the bytes in memory.
 */
static struct MHD_Response *file_response(const http_context *ctx, content_file *f, uint64_t start,
                                          uint64_t len)
{
    if (f->data != NULL && f->snapshot_fd >= 0 && !ctx->https && len >= CONTENT_SNAPSHOT_MIN) {
        int fd = fcntl(f->snapshot_fd, F_DUPFD_CLOEXEC, 0);
        if (fd >= 0) {
            content_file_release(f);
            struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(len, fd, start);
            if (r == NULL)
                close(fd);
            return r;
        }
        /* Out of descriptors: the bytes in memory still serve. */
    }
    if (f->data == NULL) {
        int fd = content_file_take_fd(f);
        content_file_release(f);
        struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(len, fd, start);
        if (r == NULL)
            close(fd);
        return r;
    }
    body_ref *ref = body_ref_new(f);
    if (ref == NULL)
        return NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
        (size_t)len, (void *)(ref->file.data + start), free_body_ref, ref);
    if (r == NULL)
        free_body_ref(ref);
    return r;
}

/*
 * The page's injected form. Takes f. A cached page has it whole in memory,
 * made once per version; a larger one (mapped) goes out as the three parts
 * around the element, in an I/O vector.
 */
static struct MHD_Response *injected_response(content_file *f)
{
    body_ref *ref = body_ref_new(f);
    if (ref == NULL)
        return NULL;
    const content_file *p = &ref->file;
    struct MHD_Response *r;
    if (p->injected_data != NULL) {
        r = MHD_create_response_from_buffer_with_free_callback_cls(
            (size_t)p->injected_size, (void *)p->injected_data, free_body_ref, ref);
    } else {
        struct MHD_IoVec iov[3] = {
            {.iov_base = p->data, .iov_len = (size_t)p->inject_at},
            {.iov_base = p->element, .iov_len = p->element_len},
            {.iov_base = p->data + p->inject_at, .iov_len = (size_t)(p->size - p->inject_at)},
        };
        r = MHD_create_response_from_iovec(iov, 3, free_body_ref, ref);
    }
    if (r == NULL)
        free_body_ref(ref);
    return r;
}

/* Percent-encodes what a path may not carry literally in a Location. */
static void percent_encode_path(const char *path, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = 0;
    for (const unsigned char *p = (const unsigned char *)path; *p && len + 4 <= cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/-._~!$&'()*+,;=:@", *p) != NULL) {
            out[len++] = (char)*p;
        } else {
            out[len++] = '%';
            out[len++] = hex[*p >> 4];
            out[len++] = hex[*p & 15];
        }
    }
    out[len] = '\0';
}

/*
 * Conditional and range requests of a response with validators; false when
 * the request is for the whole 200. Takes f when it answers.
 */
static bool answer_partially(http_context *ctx, request *req, struct MHD_Connection *c,
                             content_file *f, bool head, enum MHD_Result *ret)
{
    if (not_modified(c, f)) {
        *ret = reply_not_modified(ctx, req, c, f);
        return true;
    }
    uint64_t start = 0, len = 0;
    httpcond_range rk = requested_range(c, f, &start, &len);
    if (rk == HTTPCOND_RANGE_UNSATISFIABLE) {
        char cr[64];
        size_t len416;
        snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)f->size);
        content_file_release(f);
        struct MHD_Response *r = http_reply_error_response(
            416, "range_not_satisfiable", "The range lies outside the content.", &len416);
        if (r != NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
        *ret = http_reply_queue(req, c, 416, r, head ? 0 : len416);
        return true;
    }
    if (rk == HTTPCOND_RANGE_PARTIAL) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)start,
                 (unsigned long long)(start + len - 1), (unsigned long long)f->size);
        content_file headers_of = *f; /* plain copy of the metadata for headers */
        struct MHD_Response *r = file_response(ctx, f, start, len);
        if (r != NULL) {
            add_content_headers(ctx, r, &headers_of, false);
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
            MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
        }
        *ret = http_reply_queue(req, c, 206, r, head ? 0 : len);
        return true;
    }
    return false;
}

/* A 200 that is no delivery (a page's subresource, an untracked path, a
 * HEAD): the stored bytes with their validators. Takes f. */
static enum MHD_Result serve_plain(http_context *ctx, request *req, struct MHD_Connection *c,
                                   content_file *f, bool head)
{
    enum MHD_Result ret;
    if (answer_partially(ctx, req, c, f, head, &ret))
        return ret;
    content_file headers_of = *f;
    uint64_t size = f->size;
    struct MHD_Response *r = file_response(ctx, f, 0, size);
    if (r != NULL) {
        add_content_headers(ctx, r, &headers_of, false);
        MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    }
    return http_reply_queue(req, c, 200, r, head ? 0 : size);
}

enum MHD_Result http_file_serve(http_context *ctx, request *req, struct MHD_Connection *c,
                                const char *url, bool head)
{
    content_file f;
    content_status st = content_open(ctx->content, url, strlen(url), &f);
    switch (st) {
    case CONTENT_OK:
        break;
    case CONTENT_REDIRECT: {
        char location[CONTENT_PATH_MAX * 3 + 1];
        percent_encode_path(f.path, location, sizeof location);
        struct MHD_Response *r = http_reply_empty();
        if (r != NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
        return http_reply_queue(req, c, 301, r, 0);
    }
    case CONTENT_NOT_FOUND:
        return http_reply_error(req, c, 404, "not_found", "No content at this path.");
    case CONTENT_BAD_PATH:
        return http_reply_error(req, c, 400, "bad_path", "The request path is not valid.");
    case CONTENT_TOO_LONG:
        return http_reply_error(req, c, 414, "uri_too_long", "The request path is too long.");
    case CONTENT_FORBIDDEN:
        return http_reply_error(req, c, 403, "forbidden", "This content cannot be read.");
    case CONTENT_ERROR:
    default:
        return http_reply_error(req, c, 500, "internal_error", "The content could not be read.");
    }

    ledger_kind kind;
    if (!http_deliver_decide(ctx, c, f.path, f.is_html, &kind))
        return serve_plain(ctx, req, c, &f, head);

    /* A device names its key and gets its plug-in data in the response;
     * a browser gets a ticket (and the element that trades it). */
    clientkey ck CLIENTKEY_SCOPED;
    int has_key;
    enum MHD_Result ret;
    if (!http_deliver_client_key(ctx, req, c, &ck, &has_key, &ret)) {
        content_file_release(&f);
        return ret;
    }
    /* Pages and what devices and scripts fetch get the agent element;
     * downloads, views and tracked subresources are sent as stored. */
    bool inject = http_deliver_injects(kind, has_key, f.injectable);
    if (!inject && answer_partially(ctx, req, c, &f, head, &ret))
        return ret;

    /* A 200: a delivery for GET. HEAD gets the same headers but for the
     * delivery's own (same length, so Content-Length is right). */
    const delivery_content what = {
        .path = f.path,
        .path_len = f.path_len,
        .kind = kind,
        .sha256 = f.sha256,
        .size = f.size,
        .delivered_sha256 = inject ? f.injected_sha256 : f.sha256,
        .delivered_size = inject ? f.injected_size : f.size,
    };
    http_delivery hd;
    if (!http_deliver_issue(ctx, req, c, &what, has_key ? &ck : NULL, head, &hd, &ret)) {
        content_file_release(&f);
        return ret;
    }

    content_file headers_of = f; /* plain copy of the metadata for headers */
    uint64_t body_len = inject ? f.injected_size : f.size;
    struct MHD_Response *r = inject ? injected_response(&f) : file_response(ctx, &f, 0, f.size);
    if (r != NULL) {
        add_content_headers(ctx, r, &headers_of, inject);
        if (!inject)
            MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    }
    http_deliver_headers(r, &hd, head);
    return http_reply_queue(req, c, 200, r, head ? 0 : body_len);
}
