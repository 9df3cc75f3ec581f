#include "daemon/http.h"

#include "common/b64.h"
#include "common/unicode.h"
#include "daemon/addrcount.h"
#include "daemon/confirm.h"
#include "daemon/http_file.h"
#include "daemon/http_framing.h"
#include "daemon/http_internal.h"
#include "daemon/http_log.h"
#include "daemon/http_loop.h"
#include "daemon/http_proxy.h"
#include "daemon/http_reply.h"
#include "daemon/httpcond.h"
#include "daemon/log.h"
#include "daemon/plugin.h"
#include "daemon/proxy.h"
#include "daemon/ticket.h"
#include "web/web.h"

#include <errno.h>
#include <limits.h>
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

#define HTTP_JWKS_MAX        (8 * 1024 + KEYSTORE_RETIRED_MAX * 256)
#define HTTP_LIMITED_RETRY_S "1" /* Retry-After of a 429 from the per-address limit */

struct http_server {
    http_context ctx; /* what the route handlers see */
    accesslog *access_log;
    http_guard *guard; /* slow clients */
    tls_creds *tls;
    /* With --per-ip-connections: requests in progress per forwarded
     * address (the guard counts connections per peer). */
    addrcount *forwarded;
    atomic_long in_flight;
    char jwks[HTTP_JWKS_MAX];
    size_t jwks_len;
    char jwks_etag[48];
    char agent_etag[48];
    unsigned port;
};

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

/*
 * Who the client is: the peer (set by on_uri), or, when the peer is a
 * trusted proxy, whom its Forwarded or X-Forwarded-For header names
 * (proxy.h). What became of the headers is counted; a value too long to
 * keep is malformed.
 */
static void resolve_client(http_server *srv, request *req, const proxy_fields *f)
{
    proxy_headers h = {proxy_fields_value(f, PROXY_FIELD_FORWARDED),
                       proxy_fields_value(f, PROXY_FIELD_X_FORWARDED_FOR),
                       proxy_fields_value(f, PROXY_FIELD_X_FORWARDED_PROTO)};
    if (!req->peer_is_ip ||
        (h.forwarded == NULL && h.x_forwarded_for == NULL && h.x_forwarded_proto == NULL))
        return; /* no proxy spoke: the peer is the client */
    proxy_client pc;
    proxy_outcome o = proxy_resolve(&srv->ctx.cfg->trusted_proxies, req->peer, &h, &pc);
    if (o == PROXY_FORWARDED)
        metrics_count_forwarded(METRICS_FORWARDED_USED);
    else if (o == PROXY_UNTRUSTED)
        metrics_count_forwarded(METRICS_FORWARDED_UNTRUSTED);
    else if (o == PROXY_MALFORMED)
        metrics_count_forwarded(METRICS_FORWARDED_MALFORMED);
    memcpy(req->client, pc.addr, 16);
    req->forwarded = o == PROXY_FORWARDED;
    req->scheme = o == PROXY_FORWARDED ? pc.scheme : PROXY_SCHEME_NONE;
    proxy_addr_format(req->client, req->client_addr);
}

/* ---- /_receipt/ ------------------------------------------------------------ */

static enum MHD_Result serve_jwks(http_server *srv, request *req, struct MHD_Connection *c,
                                  bool head)
{
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    struct MHD_Response *r;
    unsigned status = 200;
    if (inm != NULL && httpcond_etag_matches(inm, srv->jwks_etag)) {
        r = http_reply_not_modified(srv->jwks_len);
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
    return http_reply_queue(req, c, status, r, (head || status == 304) ? 0 : srv->jwks_len);
}

static enum MHD_Result serve_agent(http_server *srv, request *req, struct MHD_Connection *c,
                                   bool head)
{
    const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
    bool fresh = inm != NULL && httpcond_etag_matches(inm, srv->agent_etag);
    struct MHD_Response *r =
        fresh ? http_reply_not_modified(web_agent_js_len)
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
    return http_reply_queue(req, c, fresh ? 304 : 200, r,
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
    if (strncmp(route, "log/", 4) == 0) {
        if (!get && !head)
            return http_reply_method_not_allowed(req, c, "GET, HEAD");
        return http_log_serve(&srv->ctx, req, c, route + 4, head);
    }
    if (strncmp(route, "plugin/", 7) == 0) {
        if (strcmp(method, "OPTIONS") == 0)
            return http_reply_preflight(req, c, "GET");
        if (!get)
            return http_reply_method_not_allowed(req, c, "GET");
        return plugin_serve(&srv->ctx, req, c, route + 7);
    }
    return http_reply_error(req, c, 404, "not_found", "No such receipt endpoint.");
}

/* ---- libmicrohttpd callbacks --------------------------------------------- */

/* Per connection, made and freed by the library's connection notifications. */
typedef struct http_conn {
    tls_conn tls; /* first: tls_creds_retrieve() finds it there */
    void *guard;  /* the slow-client guard's record of it (http_guard_conn) */
    /* The peer as every request of the connection names it, read and
     * printed once: a keep-alive connection carries many requests. */
    bool peer_is_ip; /* else a Unix socket: peer_text is "-" */
    uint8_t peer_addr[16];
    char peer_text[LEDGER_ADDR_MAX + 1];
} http_conn;

static void note_peer(http_conn *hc, const union MHD_ConnectionInfo *info)
{
    hc->peer_is_ip =
        info != NULL && proxy_addr_from_sockaddr(info->client_addr, hc->peer_addr) == 0;
    if (hc->peer_is_ip) {
        proxy_addr_format(hc->peer_addr, hc->peer_text);
    } else {
        memset(hc->peer_addr, 0, sizeof hc->peer_addr);
        copy_bounded(hc->peer_text, sizeof hc->peer_text, "-");
    }
}

/* --per-ip-connections (http_guard_admits(), which counts its refusals). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    http_server *srv = cls;
    (void)addrlen;
    return http_guard_admits(srv->guard, addr) ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        /* Without one, a TLS handshake finds no certificate and fails, and
         * the guard does not watch the connection (the idle timeout does). */
        http_conn *hc = calloc(1, sizeof *hc);
        if (hc != NULL) {
            if (srv->tls != NULL)
                tls_conn_start(&hc->tls, srv->tls, c);
            const union MHD_ConnectionInfo *info =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
            note_peer(hc, info);
            /* From here the guard's header deadline runs: a TLS handshake
             * is part of the time a client has to send its headers. */
            http_guard_notify(srv->guard, c, &hc->guard, code);
        }
        *socket_context = hc;
        return;
    }
    http_conn *hc = *socket_context;
    if (hc != NULL) {
        http_guard_notify(srv->guard, c, &hc->guard, code);
        tls_conn_close(&hc->tls);
        free(hc);
    }
    *socket_context = NULL;
}

/* What on_connection made for c; NULL when it could not. */
static http_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info != NULL ? info->socket_context : NULL;
}

/*
 * The target's form (RFC 9112 section 3.2): an absolute-form target's
 * path and query become req->target, written after req->uri (keep bytes),
 * and its authority the request's Host.
 */
static void take_target(request *req, size_t keep)
{
    http_target t;
    http_target_parse(req->uri, &t);
    req->target = req->uri;
    req->target_error = t.form == HTTP_TARGET_BAD ? t.reason : NULL;
    req->target_prefix = 0;
    req->host = NULL;
    req->authority[0] = '\0';
    if (t.form != HTTP_TARGET_ABSOLUTE)
        return;
    char *origin = req->uri + keep + 1;
    size_t lead = t.empty_path ? 1 : 0;
    origin[0] = '/';
    memcpy(origin + lead, req->uri + t.prefix_len, keep - t.prefix_len);
    origin[lead + keep - t.prefix_len] = '\0';
    memcpy(req->authority, t.authority, t.authority_len);
    req->authority[t.authority_len] = '\0';
    req->target = origin;
    req->target_prefix = t.prefix_len;
}

/*
 * The decoded path of the request's origin form. For an absolute-form
 * target the library decoded the whole target (without its query), whose
 * first target_prefix bytes hold no '%' and so are as received.
 */
static const char *origin_path(request *req, const char *url)
{
    if (req->target_prefix == 0)
        return url;
    if (strncmp(url, req->uri, req->target_prefix) != 0) {
        req->target_error = "The request target is not valid.";
        return "/";
    }
    return url[req->target_prefix] != '\0' ? url + req->target_prefix : "/";
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    http_server *srv = cls;
    size_t len = strlen(uri);
    size_t keep = len > HTTP_RAW_URI_MAX ? HTTP_RAW_URI_MAX : len;
    /* Room for the target as received, and for its origin form: at most
     * one byte longer ("/" before the query of an absolute form without a
     * path). */
    request *req = malloc(sizeof *req + 2 * (keep + 1) + 1);
    if (req == NULL)
        return NULL;
    req->ctx = &srv->ctx;
    req->status = 0;
    req->bytes = 0;
    req->phase = REQUEST_NEW;
    req->route = METRICS_ROUTE_OTHER;
    req->started = false;
    req->too_large = false;
    req->body = NULL;
    req->body_len = 0;
    req->call = NULL;
    http_conn *hc = conn_of(c);
    req->guard = hc != NULL ? hc->guard : NULL;
    req->tls = hc != NULL ? hc->tls.io : NULL;
    http_guard_request_line(req->guard);
    req->upstream = NULL;
    req->proxy = NULL;
    req->uri_len = len;
    memcpy(req->uri, uri, keep);
    req->uri[keep] = '\0';
    take_target(req, keep);
    req->method[0] = req->version[0] = req->user_agent[0] = req->referer[0] = '\0';
    /* The client is the peer unless a trusted proxy names another
     * (resolve_client). */
    http_conn spare;
    if (hc == NULL) {
        hc = &spare;
        note_peer(hc, MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS));
    }
    req->peer_is_ip = hc->peer_is_ip;
    memcpy(req->peer, hc->peer_addr, sizeof req->peer);
    memcpy(req->client, hc->peer_addr, sizeof req->client);
    memcpy(req->client_addr, hc->peer_text, sizeof req->client_addr);
    req->forwarded = req->over_limit = req->limit_taken = false;
    req->scheme = PROXY_SCHEME_NONE;
    /* libmicrohttpd decodes the path before we see it, and a decoded NUL
     * would silently cut it short: refuse %00 in the path here. */
    const char *query = strchr(req->target, '?');
    size_t path_len = query != NULL ? (size_t)(query - req->target) : strlen(req->target);
    req->raw_path_has_nul = memmem(req->target, path_len, "%00", 3) != NULL;
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
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && !tls_io_response_done(req->tls))
        log_warn("%s %s: the end of the response could not be written; connection closed",
                 req->method, req->uri);
    confirm_release(req);
    if (req->limit_taken)
        addrcount_give_back(srv->forwarded, req->client);
    http_guard_request_done(req->guard);
    http_proxy_release(req);
    if (srv->access_log != NULL && req->started) {
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
        accesslog_write(srv->access_log, &e);
    }
    free(req->body);
    free(req);
    *req_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

/*
 * What the server reads of a request's header fields, in one pass over
 * them: what decides where a request ends and which host it is for
 * (http_framing.h, checked as every listener checks it), then what the
 * access log and the ledger keep, and what a proxy says of the client.
 */
typedef struct request_fields {
    http_framing framing;
    const char *user_agent; /* the first of each, as a lookup would find */
    const char *referer;
    proxy_fields forwarding;
} request_fields;

static enum MHD_Result note_field(void *cls, enum MHD_ValueKind kind, const char *name,
                                  const char *value)
{
    request_fields *f = cls;
    (void)kind;
    http_framing_note(&f->framing, name, value);
    if (value == NULL)
        value = "";
    switch (name[0] | 0x20) {
    case 'u':
        if (f->user_agent == NULL && strcasecmp(name, MHD_HTTP_HEADER_USER_AGENT) == 0)
            f->user_agent = value;
        break;
    case 'r':
        if (f->referer == NULL && strcasecmp(name, MHD_HTTP_HEADER_REFERER) == 0)
            f->referer = value;
        break;
    case 'f':
    case 'x':
        proxy_fields_add(&f->forwarding, name, value);
        break;
    default:
        break;
    }
    return MHD_YES;
}

static void read_fields(struct MHD_Connection *c, request_fields *f)
{
    http_framing_init(&f->framing);
    f->user_agent = f->referer = NULL;
    proxy_fields_init(&f->forwarding);
    MHD_get_connection_values(c, MHD_HEADER_KIND, note_field, f);
}

/*
 * A request that leaves less room than receiptd's header block needs would
 * be closed without an answer (http_reply.h); one that overflows the pool
 * gets the library's own 431. Between the two, receiptd refuses with its
 * own 431 while a short answer still fits.
 *
 * content_path_len: the decoded path of a content request, 0 for others.
 */
static bool request_leaves_room(struct MHD_Connection *c, size_t pool, size_t content_path_len)
{
    /* A longer path gets 414, a short answer. */
    if (content_path_len > TICKET_PATH_MAX)
        content_path_len = TICKET_PATH_MAX;
    return http_reply_room(c, pool) >= http_reply_headroom(content_path_len);
}

static enum MHD_Result reply_over_limit(request *req, struct MHD_Connection *c)
{
    metrics_count_limited(METRICS_LIMITED_FORWARDED);
    size_t len = 0;
    struct MHD_Response *r = http_reply_error_response(
        429, "too_many_requests", "This address has too many requests in progress.", &len);
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, HTTP_LIMITED_RETRY_S);
    return http_reply_queue(req, c, 429, r, len);
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
    if (strncmp(r, "log/", 4) == 0)
        return METRICS_ROUTE_LOG;
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
    url = origin_path(req, url);

    if (req->started) {
        if (*upload_data_size > 0)
            http_guard_body(req->guard, *upload_data_size);
        else
            http_guard_body_done(req->guard);
    } else {
        req->started = true;
        http_guard_headers_done(req->guard,
                                strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0);
        req->route = route_of(url);
        copy_bounded(req->method, sizeof req->method, method);
        copy_bounded(req->version, sizeof req->version, version);
        request_fields fields;
        read_fields(c, &fields);
        /* RFC 9112 section 3.2.2: an absolute-form target's authority
         * replaces Host, which HTTP/1.1 still requires (checked below). */
        req->host = req->authority[0] != '\0' ? req->authority : fields.framing.host;
        copy_bounded(req->user_agent, sizeof req->user_agent, fields.user_agent);
        copy_bounded(req->referer, sizeof req->referer, fields.referer);
        resolve_client(srv, req, &fields.forwarding);
        if (!request_leaves_room(c, srv->ctx.cfg->connection_memory,
                                 req->route == METRICS_ROUTE_CONTENT ? strlen(url) : 0))
            return http_reply_error_close(req, c, 431, "headers_too_large",
                                          "The request line and header fields leave no room "
                                          "for an answer in this server's per-connection memory "
                                          "(--connection-memory).");
        const http_framing_fault *fault = http_framing_check(&fields.framing, version);
        if (fault != NULL) {
            size_t len = 0;
            struct MHD_Response *r = http_framing_response(fault, &len);
            return http_reply_queue(req, c, fault->status, r,
                                    strcmp(method, "HEAD") == 0 ? 0 : len);
        }
        /* Behind a trusted proxy, the per-address limit counts the
         * requests each forwarded address has in progress. */
        if (req->forwarded && srv->forwarded != NULL) {
            req->limit_taken =
                addrcount_take(srv->forwarded, req->client, srv->ctx.cfg->per_ip_connections);
            req->over_limit = !req->limit_taken;
        }
        /* Outside /_receipt/, an upstream claims what its prefix matches;
         * http_proxy sees every call of such a request, its body's too. */
        if (strncmp(url, "/_receipt/", 10) != 0)
            req->upstream = upstream_pool_route(srv->ctx.upstreams, url);
        if (req->upstream != NULL)
            req->route = METRICS_ROUTE_UPSTREAM;
        /* libmicrohttpd 0.9.75 closes the connection after a response
         * queued on the first call of a request, so GET, HEAD and a
         * bodiless OPTIONS (a browser's preflight, followed at once by the
         * request it clears) are answered on the next call and keep the
         * connection alive. Other methods carry a body: an early error is
         * sent on the first call, before the body, which closes the
         * connection and so never leaves an unread body to reset it. */
        else {
            bool bodiless =
                (fields.framing.length == NULL || strcmp(fields.framing.length, "0") == 0) &&
                fields.framing.codings == 0;
            if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
                /* A body would still be arriving when the answer is due,
                 * and the answer could then not be sent: refuse it up
                 * front. */
                if (!bodiless)
                    return http_reply_error(req, c, 400, "body_not_allowed",
                                            "A GET or HEAD request carries no body.");
                return MHD_YES;
            }
            if (bodiless && strcmp(method, "OPTIONS") == 0)
                return MHD_YES;
        }
    }

    bool get = strcmp(method, "GET") == 0;
    bool head = strcmp(method, "HEAD") == 0;

    if (req->over_limit)
        return reply_over_limit(req, c);
    if (req->uri_len > HTTP_RAW_URI_MAX)
        return http_reply_error(req, c, 414, "uri_too_long", "The request target is too long.");
    if (req->target_error != NULL)
        return http_reply_error(req, c, 400, "bad_target", req->target_error);
    if (req->raw_path_has_nul || url[0] != '/')
        return http_reply_error(req, c, 400, "bad_path", "The request path is not valid.");

    if (strcmp(url, "/_receipt/confirm") == 0) {
        if (req->phase == REQUEST_NEW && strcmp(method, "OPTIONS") == 0)
            return http_reply_preflight(req, c, "POST");
        if (req->phase == REQUEST_NEW && strcmp(method, "POST") != 0)
            return http_reply_method_not_allowed(req, c, "POST");
        return confirm_serve(&srv->ctx, req, c, upload_data, upload_data_size);
    }
    if (!unicode_valid(url, strlen(url)))
        return http_reply_error(req, c, 400, "bad_path", "The request path is not UTF-8.");
    if (strncmp(url, "/_receipt/", 10) == 0)
        return serve_receipt_route(srv, req, c, url, method);
    if (req->upstream != NULL)
        return http_proxy_serve(&srv->ctx, req, c, url, upload_data, upload_data_size);

    if (!get && !head)
        return http_reply_method_not_allowed(req, c, "GET, HEAD");
    if (srv->ctx.content == NULL)
        return http_reply_error(req, c, 404, "not_found", "No content at this path.");
    return http_file_serve(&srv->ctx, req, c, url, head);
}

static int build_jwks(http_server *srv, char *err, size_t errlen)
{
    char *text = keystore_jwks(srv->ctx.keys);
    if (text == NULL || strlen(text) >= sizeof srv->jwks) {
        free(text);
        snprintf(err, errlen, "cannot build the JWK Set");
        return -1;
    }
    srv->jwks_len = strlen(text);
    memcpy(srv->jwks, text, srv->jwks_len + 1);
    free(text);
    /* Of the whole set: a rotated or retired key changes it too. */
    uint8_t digest[SHA256_DIGEST_LENGTH];
    char tag[ECKEY_THUMBPRINT_LEN + 1];
    SHA256((const uint8_t *)srv->jwks, srv->jwks_len, digest);
    b64url_encode(digest, sizeof digest, tag);
    snprintf(srv->jwks_etag, sizeof srv->jwks_etag, "\"%.16s\"", tag);
    return 0;
}

http_server *http_server_start(const http_services *svc, char *err, size_t errlen)
{
    http_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    http_context *ctx = &srv->ctx;
    ctx->cfg = svc->cfg;
    ctx->content = svc->content;
    ctx->upstreams = svc->upstreams;
    ctx->sealer = svc->sealer;
    ctx->keys = svc->keys;
    ctx->ledger_writer = svc->ledger_writer;
    ctx->log = svc->log;
    ctx->log_readers = svc->log_readers;
    srv->access_log = svc->access_log;
    srv->tls = svc->tls;
    srv->ctx.https = svc->tls != NULL;
    atomic_init(&srv->in_flight, 0);
    atomic_init(&ctx->stopping, false);
    if (build_jwks(srv, err, errlen) != 0)
        goto fail;
    uint8_t agent_digest[32];
    char agent_b64[24];
    SHA256(web_agent_js, web_agent_js_len, agent_digest);
    b64url_encode(agent_digest, 12, agent_b64);
    snprintf(srv->agent_etag, sizeof srv->agent_etag, "\"%s\"", agent_b64);
    snprintf(ctx->confirm_url, sizeof ctx->confirm_url, "%s/_receipt/confirm",
             svc->cfg->public_url);
    snprintf(ctx->jwks_url, sizeof ctx->jwks_url, "%s/_receipt/jwks.json", svc->cfg->public_url);
    if (svc->cfg->per_ip_connections > 0) {
        /* One entry per request in progress at most. */
        srv->forwarded = addrcount_new(svc->cfg->max_connections);
        if (srv->forwarded == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    ctx->client_keys = clientkeys_new(svc->keys->enc, HTTP_CLIENTKEYS_CACHE);
    ctx->waits = confirm_waits_new(HTTP_CONFIRM_TIMEOUT_MS);
    if (ctx->client_keys == NULL || ctx->waits == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }

    const config *cfg = svc->cfg;
    unsigned flags = MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (cfg->listen.addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    http_guard_options gopts = {
        .header_timeout_ms = cfg->header_timeout_s * 1000,
        .min_body_rate = cfg->min_body_rate,
        .idle_timeout_ms = cfg->idle_timeout_s * 1000,
        .max_connections = cfg->max_connections,
        .threads = cfg->threads,
        .per_address = cfg->per_ip_connections,
        .exempt = &cfg->trusted_proxies,
    };
    srv->guard = http_guard_new(&gopts);
    if (srv->guard == NULL) {
        snprintf(err, errlen, "cannot start the connection watchdog");
        goto fail;
    }
    if (srv->tls != NULL)
        flags |= MHD_USE_TLS;
    /* Callbacks with an argument go as (intptr_t)function, argument; see
     * MHD_OPTION_ARRAY. GnuTLS asks for the certificate at each handshake,
     * so that a reload reaches new connections without touching open ones. */
    struct MHD_OptionItem options[] = {
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)cfg->idle_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)cfg->connection_memory, NULL},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, srv},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, srv},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)log_library, "http"},
        {srv->tls != NULL ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, 0,
         (void *)tls_creds_retrieve},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)tls_priorities},
        {MHD_OPTION_END, 0, NULL},
    };
    const http_loop_settings loop_settings = {
        .name = "http",
        .threads = cfg->threads,
        .flags = flags,
        .listen = (const struct sockaddr *)&cfg->listen.addr,
        .max_connections = cfg->max_connections,
        .accept_policy = cfg->per_ip_connections > 0 ? on_accept : NULL,
        .accept_policy_cls = srv,
        .handler = on_request,
        .handler_cls = srv,
        .options = options,
    };
    char why[256];
    if (http_loop_start(&loop_settings, &ctx->loop, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen.text, why);
        goto fail;
    }
    srv->port = http_loop_port(ctx->loop);
    return srv;
fail:
    http_server_free(srv);
    return NULL;
}

void http_server_guard_stats(http_server *srv, http_guard_stats *out)
{
    if (srv == NULL || srv->guard == NULL) {
        memset(out, 0, sizeof *out);
        return;
    }
    http_guard_get_stats(srv->guard, out);
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
    if (srv == NULL || srv->ctx.loop == NULL)
        return true;
    http_loop_quiesce(srv->ctx.loop);
    if (wait_idle(srv, grace_ms))
        return true;
    /* Keep-alive clients may still send: from now on a confirmation is
     * answered 503 at once instead of waiting for the ledger. */
    atomic_store(&srv->ctx.stopping, true);
    size_t aborted = confirm_waits_abort(srv->ctx.waits);
    if (aborted > 0)
        log_warn("shutting down: %zu confirmations still waiting for the ledger answered 503",
                 aborted);
    upstream_pool_abort(srv->ctx.upstreams);
    return wait_idle(srv, HTTP_DRAIN_AFTER_ABORT_MS);
}

void http_server_stop(http_server *srv)
{
    if (srv == NULL || srv->ctx.loop == NULL)
        return;
    atomic_store(&srv->ctx.stopping, true);
    confirm_waits_abort(srv->ctx.waits);
    upstream_pool_abort(srv->ctx.upstreams);
    http_loop_stop(srv->ctx.loop);
    srv->ctx.loop = NULL;
}

void http_server_free(http_server *srv)
{
    if (srv == NULL)
        return;
    http_server_stop(srv);
    http_guard_free(srv->guard); /* the library has closed every connection */
    addrcount_free(srv->forwarded);
    confirm_waits_free(srv->ctx.waits);
    clientkeys_free(srv->ctx.client_keys);
    free(srv);
}
