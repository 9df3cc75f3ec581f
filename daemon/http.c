#include "daemon/http_internal.h"

#include "common/b64.h"
#include "common/utf8.h"
#include "daemon/delivery.h"
#include "daemon/httpcond.h"
#include "daemon/log.h"
#include "web/web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <openssl/sha.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define HTTP_ERROR_BODY_MAX  512
#define HTTP_INJECT_COPY_MAX (64 * 1024) /* pages copied whole for one send */

/* Keeps a body alive while libmicrohttpd sends it. */
typedef struct body_ref {
    content_file file;
    size_t element_len;
    char element[DELIVERY_ELEMENT_MAX];
} body_ref;

uint64_t http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static atomic_ulong queue_full_count;
static atomic_ullong queue_full_logged_ms;

void http_note_queue_full(void)
{
    atomic_fetch_add(&queue_full_count, 1);
    uint64_t now = http_now_ms();
    unsigned long long last = atomic_load(&queue_full_logged_ms);
    if (now - last < 1000 ||
        !atomic_compare_exchange_strong(&queue_full_logged_ms, &last, (unsigned long long)now))
        return;
    unsigned long n = atomic_exchange(&queue_full_count, 0);
    log_warn("ledger queue full: %lu requests answered 503 since the last report", n);
}

static void copy_bounded(char *dst, size_t cap, const char *src)
{
    if (src == NULL) {
        dst[0] = '\0';
        return;
    }
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void client_address(struct MHD_Connection *c, char out[LEDGER_ADDR_MAX + 1])
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    strcpy(out, "-");
    if (info == NULL || info->client_addr == NULL)
        return;
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, LEDGER_ADDR_MAX);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6))
            inet_ntop(AF_INET, &a6->s6_addr[12], out, LEDGER_ADDR_MAX);
        else
            inet_ntop(AF_INET6, a6, out, LEDGER_ADDR_MAX);
    }
}

/* ---- responses ---------------------------------------------------------- */

static void add_extra_headers(const http_server *srv, struct MHD_Response *r)
{
    const config *cfg = srv->svc.cfg;
    for (size_t i = 0; i < cfg->header_count; i++)
        MHD_add_response_header(r, cfg->headers[i].name, cfg->headers[i].value);
}

enum MHD_Result http_queue(request *req, struct MHD_Connection *c, unsigned status,
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
    return rc;
}

/* The JSON error body of PROTOCOL.md section 6; *len gets the body length. */
struct MHD_Response *http_error_response(unsigned status, const char *code, const char *message,
                                         size_t *len)
{
    char body[HTTP_ERROR_BODY_MAX];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"message\":\"%s\"}\n", code, message);
    if (n < 0 || (size_t)n >= sizeof body)
        n = snprintf(body, sizeof body, "{\"error\":\"%s\",\"message\":\"\"}\n", code);
    *len = (size_t)n;
    struct MHD_Response *r =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
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
    struct MHD_Response *r = http_error_response(status, code, message, &len);
    /* A browser must see why a cross-origin confirmation failed (a 409 is
     * final, a network error is retried); content errors stay same-origin
     * so that other sites cannot probe which paths exist. */
    if (r != NULL && (req->route == METRICS_ROUTE_PLUGIN || req->route == METRICS_ROUTE_CONFIRM))
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    return http_queue(req, c, status, r, strcmp(req->method, "HEAD") == 0 ? 0 : len);
}

enum MHD_Result http_reply_method_not_allowed(request *req, struct MHD_Connection *c,
                                              const char *allow)
{
    char body[HTTP_ERROR_BODY_MAX];
    int n = snprintf(body, sizeof body,
                     "{\"error\":\"method_not_allowed\",\"message\":\"Use %s here.\"}\n", allow);
    struct MHD_Response *r =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    }
    return http_queue(req, c, 405, r, (uint64_t)n);
}

enum MHD_Result http_reply_preflight(request *req, struct MHD_Connection *c, const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (r != NULL) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", allow);
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                "Content-Type, Receipt-Client-Key");
        MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    }
    return http_queue(req, c, 204, r, 0);
}

int http_json_escape(const char *s, size_t n, char *out, size_t cap, size_t *out_len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        size_t seq = utf8_sequence(p + i, n - i);
        if (seq == 0 || len + 6 >= cap)
            return -1;
        if (seq > 1) {
            memcpy(out + len, p + i, seq);
            len += seq;
        } else if (p[i] == '"' || p[i] == '\\') {
            out[len++] = '\\';
            out[len++] = (char)p[i];
        } else if (p[i] < 0x20) {
            memcpy(out + len, "\\u00", 4);
            out[len + 4] = hex[p[i] >> 4];
            out[len + 5] = hex[p[i] & 15];
            len += 6;
        } else {
            out[len++] = (char)p[i];
        }
        i += seq;
    }
    out[len] = '\0';
    *out_len = len;
    return 0;
}

static struct MHD_Response *empty_response(void)
{
    return MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
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

static void add_content_headers(const http_server *srv, struct MHD_Response *r,
                                const content_file *f)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, f->mime);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, f->etag);
    MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, f->last_modified);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "private, no-cache");
    MHD_add_response_header(r, "Repr-Digest", f->repr_digest);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    add_extra_headers(srv, r);
}

static enum MHD_Result reply_not_modified(http_server *srv, request *req, struct MHD_Connection *c,
                                          content_file *f)
{
    struct MHD_Response *r = empty_response();
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, f->etag);
        MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, f->last_modified);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "private, no-cache");
        add_extra_headers(srv, r);
    }
    content_file_release(f);
    return http_queue(req, c, 304, r, 0);
}

/* A response whose body is [start, start + len) of the file. Takes f. */
static struct MHD_Response *file_response(content_file *f, uint64_t start, uint64_t len)
{
    if (f->data == NULL) {
        int fd = content_file_take_fd(f);
        content_file_release(f);
        struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(len, fd, start);
        if (r == NULL)
            close(fd);
        return r;
    }
    body_ref *ref = malloc(sizeof *ref);
    if (ref == NULL) {
        content_file_release(f);
        return NULL;
    }
    ref->file = *f;
    ref->element_len = 0;
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
        (size_t)len, (void *)(ref->file.data + start), free_body_ref, ref);
    if (r == NULL)
        free_body_ref(ref);
    return r;
}

/* The page with the agent element before its last </body>. Takes f. */
/*
 * The page with the agent element before its last </body>. Takes f.
 *
 * libmicrohttpd sends a contiguous body in the same system call as the
 * headers but an I/O vector after them, in a second call and a second
 * packet: pages up to HTTP_INJECT_COPY_MAX are copied into one buffer, which
 * costs less than the extra send; larger ones go out as a vector.
 */
static struct MHD_Response *injected_response(content_file *f, const delivery *d,
                                              uint64_t *body_len)
{
    char element[DELIVERY_ELEMENT_MAX];
    size_t element_len = delivery_element(d->ticket, d->ticket_len, element);
    size_t size = (size_t)f->size;
    size_t at = delivery_inject_offset(f->data, size);
    *body_len = size + element_len;

    if (size <= HTTP_INJECT_COPY_MAX) {
        char *page = malloc(size + element_len);
        if (page == NULL) {
            content_file_release(f);
            return NULL;
        }
        memcpy(page, f->data, at);
        memcpy(page + at, element, element_len);
        memcpy(page + at + element_len, f->data + at, size - at);
        content_file_release(f);
        struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
            size + element_len, page, free, page);
        if (r == NULL)
            free(page);
        return r;
    }

    body_ref *ref = malloc(sizeof *ref);
    if (ref == NULL) {
        content_file_release(f);
        return NULL;
    }
    ref->file = *f;
    ref->element_len = element_len;
    memcpy(ref->element, element, element_len);
    struct MHD_IoVec iov[3] = {
        {.iov_base = ref->file.data, .iov_len = at},
        {.iov_base = ref->element, .iov_len = ref->element_len},
        {.iov_base = ref->file.data + at, .iov_len = size - at},
    };
    struct MHD_Response *r = MHD_create_response_from_iovec(iov, 3, free_body_ref, ref);
    if (r == NULL)
        free_body_ref(ref);
    return r;
}

int http_content_json(const ticket_claims *t, char *out, size_t cap)
{
    char path[TICKET_PATH_MAX * 6 + 1];
    size_t path_len;
    char sha[64];
    if (http_json_escape(t->path, t->path_len, path, sizeof path, &path_len) != 0)
        return -1;
    b64url_encode(t->sha256, 32, sha);
    int n = snprintf(out, cap, "\"content\":{\"path\":\"%s\",\"sha256\":\"%s\",\"size\":%llu}",
                     path, sha, (unsigned long long)t->size);
    return n < 0 || (size_t)n >= cap ? -1 : n;
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

void http_event_from_ticket(const http_server *srv, ledger_event_kind kind, const ticket_claims *t,
                            ledger_event *ev)
{
    memset(ev, 0, offsetof(ledger_event, row.receipt));
    ev->row.receipt[0] = '\0';
    ev->kind = kind;
    ledger_delivery *row = &ev->row;
    uuid7_format(&t->delivery, row->id);
    memcpy(row->path, t->path, t->path_len + 1);
    memcpy(row->sha256, t->sha256, 32);
    row->size = t->size;
    copy_bounded(row->server, sizeof row->server, srv->svc.cfg->server_id);
    row->issued_ms = t->issued_ms;
}

static void fill_issue_event(const http_server *srv, const request *req, const delivery *d,
                             const clientkey *bound_to, ledger_event *ev)
{
    http_event_from_ticket(srv, LEDGER_EVENT_ISSUE, &d->claims, ev);
    ledger_delivery *row = &ev->row;
    memcpy(row->client_addr, req->client_addr, sizeof row->client_addr);
    memcpy(row->user_agent, req->user_agent, sizeof row->user_agent);
    row->status = LEDGER_ISSUED;
    if (bound_to != NULL) {
        row->status = LEDGER_BOUND;
        memcpy(row->client, bound_to->id, sizeof row->client);
        memcpy(row->bound_addr, req->client_addr, sizeof row->bound_addr);
        row->bound_ms = d->claims.issued_ms;
    }
}

static enum MHD_Result serve_content(http_server *srv, request *req, struct MHD_Connection *c,
                                     const char *url, bool head)
{
    content_file f;
    content_status st = content_open(srv->svc.content, url, strlen(url), &f);
    switch (st) {
    case CONTENT_OK:
        break;
    case CONTENT_REDIRECT: {
        char location[CONTENT_PATH_MAX * 3 + 1];
        percent_encode_path(f.path, location, sizeof location);
        struct MHD_Response *r = empty_response();
        if (r != NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
        return http_queue(req, c, 301, r, 0);
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

    if (not_modified(c, &f))
        return reply_not_modified(srv, req, c, &f);

    /* A device names its key and gets its plug-in data in the response;
     * a browser gets a ticket (and the element that trades it). */
    clientkey ck CLIENTKEY_SCOPED;
    int has_key = plugin_client_key(srv, c, &ck);
    if (has_key < 0) {
        content_file_release(&f);
        return http_reply_error(req, c, 400, "bad_client_key",
                                "Receipt-Client-Key is not a valid P-256 public key.");
    }
    bool inject = has_key == 0 && srv->svc.cfg->inject && f.is_html && f.data != NULL;
    if (!inject) {
        uint64_t start = 0, len = 0;
        httpcond_range rk = requested_range(c, &f, &start, &len);
        if (rk == HTTPCOND_RANGE_UNSATISFIABLE) {
            char cr[64];
            size_t len416;
            snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)f.size);
            content_file_release(&f);
            struct MHD_Response *r = http_error_response(
                416, "range_not_satisfiable", "The range lies outside the content.", &len416);
            if (r != NULL)
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
            return http_queue(req, c, 416, r, head ? 0 : len416);
        }
        if (rk == HTTPCOND_RANGE_PARTIAL) {
            char cr[96];
            snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)start,
                     (unsigned long long)(start + len - 1), (unsigned long long)f.size);
            content_file tmp = f;
            struct MHD_Response *r = file_response(&tmp, start, len);
            if (r != NULL) {
                add_content_headers(srv, r, &f);
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
                MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
            }
            return http_queue(req, c, 206, r, head ? 0 : len);
        }
    }

    /* A 200: a delivery for GET. HEAD gets the same headers but for the
     * delivery's own (same length, so Content-Length is right). */
    delivery d;
    char *plugin = NULL;
    if (delivery_issue(srv->svc.sealer, f.path, f.path_len, f.sha256, f.size, http_now_ms(),
                       srv->svc.cfg->ticket_ttl_s, has_key ? ck.id_raw : NULL, &d) != 0 ||
        (has_key && !head && plugin_seal(srv, &d, &ck, req->client_addr, &plugin) != 0)) {
        content_file_release(&f);
        return http_reply_error(req, c, 500, "internal_error", "The delivery could not be issued.");
    }
    if (!head) {
        ledger_event ev;
        fill_issue_event(srv, req, &d, has_key ? &ck : NULL, &ev);
        if (writer_submit(srv->svc.ledger_writer, &ev, NULL, NULL) != 0) {
            content_file_release(&f);
            free(plugin);
            http_note_queue_full();
            return http_reply_error(req, c, 503, "ledger_busy",
                                    "The ledger is busy; retry in a moment.");
        }
        metrics_count_delivery();
    }

    content_file headers_of = f; /* plain copy of the metadata for headers */
    uint64_t body_len = f.size;
    struct MHD_Response *r =
        inject ? injected_response(&f, &d, &body_len) : file_response(&f, 0, f.size);
    if (r != NULL) {
        add_content_headers(srv, r, &headers_of);
        if (!inject)
            MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
        if (!head) {
            MHD_add_response_header(r, "Receipt-Delivery", d.id_text);
            if (plugin != NULL)
                MHD_add_response_header(r, "Receipt-Plugin", plugin);
            else
                MHD_add_response_header(r, "Receipt-Ticket", d.ticket);
        }
    }
    free(plugin);
    return http_queue(req, c, 200, r, head ? 0 : body_len);
}

/* ---- /_receipt/ ------------------------------------------------------------ */

static enum MHD_Result serve_jwks(http_server *srv, request *req, struct MHD_Connection *c,
                                  bool head)
{
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    struct MHD_Response *r;
    unsigned status = 200;
    if (inm != NULL && httpcond_etag_matches(inm, srv->jwks_etag)) {
        r = empty_response();
        status = 304;
    } else {
        r = MHD_create_response_from_buffer(srv->jwks_len, srv->jwks, MHD_RESPMEM_PERSISTENT);
    }
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/jwk-set+json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=300");
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, srv->jwks_etag);
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    }
    return http_queue(req, c, status, r, (head || status == 304) ? 0 : srv->jwks_len);
}

static enum MHD_Result serve_agent(http_server *srv, request *req, struct MHD_Connection *c,
                                   bool head)
{
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    bool fresh = inm != NULL && httpcond_etag_matches(inm, srv->agent_etag);
    struct MHD_Response *r =
        fresh ? empty_response()
              : MHD_create_response_from_buffer(web_agent_js_len, (void *)web_agent_js,
                                                MHD_RESPMEM_PERSISTENT);
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/javascript; charset=utf-8");
        /* An hour, then revalidated by ETag: a new release reaches
         * browsers within the hour without costing a download per page. */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=3600");
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, srv->agent_etag);
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    }
    return http_queue(req, c, fresh ? 304 : 200, r,
                      (head || fresh) ? 0 : (uint64_t)web_agent_js_len);
}

static enum MHD_Result serve_receipt_route(http_server *srv, request *req, struct MHD_Connection *c,
                                           const char *url, const char *method)
{
    const char *route = url + strlen("/_receipt/");
    bool get = strcmp(method, "GET") == 0;
    bool head = strcmp(method, "HEAD") == 0;
    if (strcmp(route, "jwks.json") == 0) {
        if (!get && !head)
            return http_reply_method_not_allowed(req, c, "GET, HEAD");
        return serve_jwks(srv, req, c, head);
    }
    if (strcmp(route, "agent.js") == 0) {
        if (!get && !head)
            return http_reply_method_not_allowed(req, c, "GET, HEAD");
        return serve_agent(srv, req, c, head);
    }
    if (strncmp(route, "plugin/", 7) == 0) {
        if (strcmp(method, "OPTIONS") == 0)
            return http_reply_preflight(req, c, "GET");
        if (!get)
            return http_reply_method_not_allowed(req, c, "GET");
        return plugin_serve(srv, req, c, route + 7);
    }
    return http_reply_error(req, c, 404, "not_found", "No such receipt endpoint.");
}

/* ---- libmicrohttpd callbacks --------------------------------------------- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    http_server *srv = cls;
    size_t len = strlen(uri);
    size_t keep = len > HTTP_RAW_URI_MAX ? HTTP_RAW_URI_MAX : len;
    request *req = malloc(sizeof *req + keep + 1);
    if (req == NULL)
        return NULL;
    req->srv = srv;
    req->status = 0;
    req->bytes = 0;
    req->phase = REQUEST_NEW;
    req->route = METRICS_ROUTE_OTHER;
    req->started = false;
    req->too_large = false;
    req->body = NULL;
    req->body_len = 0;
    req->call = NULL;
    req->uri_len = len;
    memcpy(req->uri, uri, keep);
    req->uri[keep] = '\0';
    req->method[0] = req->version[0] = req->user_agent[0] = req->referer[0] = '\0';
    strcpy(req->client_addr, "-");
    /* libmicrohttpd decodes the path before we see it, and a decoded NUL
     * would silently cut it short: refuse %00 in the path here. */
    const char *query = strchr(req->uri, '?');
    size_t path_len = query != NULL ? (size_t)(query - req->uri) : keep;
    req->raw_path_has_nul = memmem(req->uri, path_len, "%00", 3) != NULL;
    atomic_fetch_add(&srv->in_flight, 1);
    return req;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *srv = cls;
    request *req = *req_cls;
    if (req == NULL)
        return;
    confirm_release(req);
    if (srv->svc.access_log != NULL && req->started) {
        accesslog_entry e = {
            .client_addr = req->client_addr,
            .method = req->method,
            .uri = req->uri,
            .version = req->version,
            .status = req->status,
            .bytes = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? req->bytes : 0,
            .referer = req->referer,
            .user_agent = req->user_agent,
        };
        accesslog_write(srv->svc.access_log, &e);
    }
    free(req->body);
    free(req);
    *req_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

static metrics_route route_of(const char *url)
{
    if (strncmp(url, "/_receipt/", 10) != 0)
        return METRICS_ROUTE_CONTENT;
    const char *r = url + 10;
    if (strcmp(r, "jwks.json") == 0)
        return METRICS_ROUTE_JWKS;
    if (strcmp(r, "agent.js") == 0)
        return METRICS_ROUTE_AGENT;
    if (strncmp(r, "plugin/", 7) == 0)
        return METRICS_ROUTE_PLUGIN;
    if (strcmp(r, "confirm") == 0)
        return METRICS_ROUTE_CONFIRM;
    return METRICS_ROUTE_OTHER;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    http_server *srv = cls;
    request *req = *req_cls;
    if (req == NULL)
        return MHD_NO;

    if (!req->started) {
        req->started = true;
        req->route = route_of(url);
        copy_bounded(req->method, sizeof req->method, method);
        copy_bounded(req->version, sizeof req->version, version);
        copy_bounded(req->user_agent, sizeof req->user_agent,
                     MHD_lookup_connection_value(c, MHD_HEADER_KIND, "User-Agent"));
        copy_bounded(req->referer, sizeof req->referer,
                     MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Referer"));
        client_address(c, req->client_addr);
        /* libmicrohttpd 0.9.75 closes the connection after a response
         * queued on the first call of a request, so GET and HEAD are
         * answered on the next call and keep the connection alive. Other
         * methods carry a body: an early error is sent on the first call,
         * before the body, which closes the connection and so never leaves
         * an unread body to reset it. */
        if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
            /* A body would still be arriving when the answer is due, and
             * the answer could then not be sent: refuse it up front. */
            const char *length =
                MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if ((length != NULL && strcmp(length, "0") != 0) ||
                MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                            MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL)
                return http_reply_error(req, c, 400, "body_not_allowed",
                                        "A GET or HEAD request carries no body.");
            return MHD_YES;
        }
    }

    bool get = strcmp(method, "GET") == 0;
    bool head = strcmp(method, "HEAD") == 0;

    if (req->uri_len > HTTP_RAW_URI_MAX)
        return http_reply_error(req, c, 414, "uri_too_long", "The request target is too long.");
    if (req->raw_path_has_nul || url[0] != '/')
        return http_reply_error(req, c, 400, "bad_path", "The request path is not valid.");

    if (strcmp(url, "/_receipt/confirm") == 0) {
        if (req->phase == REQUEST_NEW && strcmp(method, "OPTIONS") == 0)
            return http_reply_preflight(req, c, "POST");
        if (req->phase == REQUEST_NEW && strcmp(method, "POST") != 0)
            return http_reply_method_not_allowed(req, c, "POST");
        return confirm_serve(srv, req, c, upload_data, upload_data_size);
    }
    if (!utf8_valid(url, strlen(url)))
        return http_reply_error(req, c, 400, "bad_path", "The request path is not UTF-8.");
    if (strncmp(url, "/_receipt/", 10) == 0)
        return serve_receipt_route(srv, req, c, url, method);

    if (!get && !head)
        return http_reply_method_not_allowed(req, c, "GET, HEAD");
    (void)upload_data;
    (void)upload_data_size;
    return serve_content(srv, req, c, url, head);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    log_debug("http: %s", line);
}

static int build_jwks(http_server *srv, char *err, size_t errlen)
{
    json_t *jwks = keystore_jwks(srv->svc.keys);
    char *text = jwks != NULL ? json_dumps(jwks, JSON_COMPACT) : NULL;
    json_decref(jwks);
    if (text == NULL || strlen(text) >= sizeof srv->jwks) {
        free(text);
        snprintf(err, errlen, "cannot build the JWK Set");
        return -1;
    }
    srv->jwks_len = strlen(text);
    memcpy(srv->jwks, text, srv->jwks_len + 1);
    free(text);
    snprintf(srv->jwks_etag, sizeof srv->jwks_etag, "\"%.16s\"",
             eckey_thumbprint(srv->svc.keys->enc));
    return 0;
}

http_server *http_server_start(const http_services *svc, char *err, size_t errlen)
{
    http_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->svc = *svc;
    atomic_init(&srv->in_flight, 0);
    atomic_init(&srv->stopping, false);
    if (build_jwks(srv, err, errlen) != 0)
        goto fail;
    uint8_t agent_digest[32];
    char agent_b64[24];
    SHA256(web_agent_js, web_agent_js_len, agent_digest);
    b64url_encode(agent_digest, 12, agent_b64);
    snprintf(srv->agent_etag, sizeof srv->agent_etag, "\"%s\"", agent_b64);
    snprintf(srv->confirm_url, sizeof srv->confirm_url, "%s/_receipt/confirm",
             svc->cfg->public_url);
    srv->client_keys = clientkeys_new(svc->keys->enc, HTTP_CLIENTKEYS_CACHE);
    srv->waits = confirm_waits_new(HTTP_CONFIRM_TIMEOUT_MS);
    if (srv->client_keys == NULL || srv->waits == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    const config *cfg = svc->cfg;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (cfg->listen_addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)&cfg->listen_addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->per_ip_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->connection_memory,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
        MHD_OPTION_END);
    if (srv->mhd == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen,
                 errno != 0 ? strerror(errno) : "the HTTP library refused the settings");
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info != NULL ? info->port : 0;
    return srv;
fail:
    http_server_free(srv);
    return NULL;
}

unsigned http_server_port(const http_server *srv)
{
    return srv->port;
}

static bool wait_idle(http_server *srv, unsigned timeout_ms)
{
    for (unsigned waited = 0;; waited += 10) {
        if (atomic_load(&srv->in_flight) == 0)
            return true;
        if (waited >= timeout_ms)
            return false;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

bool http_server_drain(http_server *srv, unsigned grace_ms)
{
    if (srv == NULL || srv->mhd == NULL)
        return true;
    MHD_socket s = MHD_quiesce_daemon(srv->mhd);
    if (s != MHD_INVALID_SOCKET)
        close(s);
    if (wait_idle(srv, grace_ms))
        return true;
    /* Keep-alive clients may still send: from now on a confirmation is
     * answered 503 at once instead of waiting for the ledger. */
    atomic_store(&srv->stopping, true);
    size_t aborted = confirm_waits_abort(srv->waits);
    if (aborted > 0)
        log_warn("shutting down: %zu confirmations still waiting for the ledger answered 503",
                 aborted);
    return wait_idle(srv, HTTP_DRAIN_AFTER_ABORT_MS);
}

void http_server_stop(http_server *srv)
{
    if (srv == NULL || srv->mhd == NULL)
        return;
    atomic_store(&srv->stopping, true);
    confirm_waits_abort(srv->waits);
    MHD_stop_daemon(srv->mhd);
    srv->mhd = NULL;
}

void http_server_free(http_server *srv)
{
    if (srv == NULL)
        return;
    http_server_stop(srv);
    confirm_waits_free(srv->waits);
    clientkeys_free(srv->client_keys);
    free(srv);
}
