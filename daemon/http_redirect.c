#include "daemon/http_redirect.h"

#include "daemon/http_framing.h"
#include "daemon/http_guard.h"
#include "daemon/http_internal.h"
#include "daemon/http_loop.h"
#include "daemon/http_target.h"
#include "daemon/http_reply.h"
#include "daemon/log.h"
#include "daemon/proxy.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per connection: a request line and headers, and a Location of up to three
 * times the target (percent-encoded). */
#define REDIRECT_MEMORY    32768
#define REDIRECT_TIMEOUT_S 10
/* Connections per client address when --per-ip-connections sets none: a
 * redirect takes one short connection, so a busy NAT rarely holds more
 * than a few at once, while one address cannot hold the whole listener
 * with trickled headers. */
#define REDIRECT_PER_ADDRESS_MAX 64

struct http_redirect {
    const config *cfg;
    accesslog *access_log;
    http_loop *loop;
    http_guard *guard; /* slow clients, as on the public and admin listeners */
    unsigned port;
};

/* The request target as received (the library hands the handler a decoded
 * path, and a redirect must keep the client's own spelling). */
typedef struct redirect_request {
    http_guard_conn *guard; /* its connection's (may be NULL) */
    size_t len;
    char target[]; /* at most HTTP_RAW_URI_MAX bytes kept */
} redirect_request;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    size_t len = strlen(uri);
    size_t keep = len > HTTP_RAW_URI_MAX ? HTTP_RAW_URI_MAX : len;
    redirect_request *rr = malloc(sizeof *rr + keep + 1);
    if (rr == NULL)
        return NULL;
    /* The guard keeps its record as the connection's socket context. */
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    rr->guard = info != NULL ? info->socket_context : NULL;
    http_guard_request_line(rr->guard);
    rr->len = len;
    memcpy(rr->target, uri, keep);
    rr->target[keep] = '\0';
    return rr;
}

static void peer_address(struct MHD_Connection *c, char out[PROXY_ADDR_TEXT_MAX])
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    uint8_t addr[16];
    if (info == NULL || proxy_addr_from_sockaddr(info->client_addr, addr) != 0)
        snprintf(out, PROXY_ADDR_TEXT_MAX, "-");
    else
        proxy_addr_format(addr, out);
}

/* Appends target to out as a Location may carry it: the client's own
 * spelling, but a byte no URL may hold (a control, a space, a quote, a
 * byte past ASCII) percent-encoded rather than sent back raw in a header.
 * out has room for three bytes per byte of target; returns the length. */
static size_t location_target(char *out, const char *target)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)target; *p != '\0'; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '<' || *p == '>' || *p == '\\') {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 0x0f];
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = '\0';
    return n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    http_redirect *r = cls;
    redirect_request *rr = *req_cls;
    (void)url;
    (void)upload_data;
    (void)upload_data_size;
    if (rr == NULL)
        return MHD_NO;
    /* Answered from the headers alone: a body is never read, and the
     * connection closes after the answer. */
    http_guard_headers_done(rr->guard, false);

    /* An absolute-form target keeps its path and query (RFC 9112 section
     * 3.2.2); its authority names the host the client asked for, and the
     * Location names the public URL's, as for any target. */
    http_target t;
    http_target_parse(rr->target, &t);
    const char *rest = rr->target + t.prefix_len;
    const char *lead = t.form == HTTP_TARGET_ABSOLUTE && t.empty_path ? "/" : "";
    unsigned status = MHD_HTTP_PERMANENT_REDIRECT;
    struct MHD_Response *resp = NULL;
    size_t body = 0;
    /* The public listener's checks first, with its answers. */
    http_framing framing;
    http_framing_read(c, &framing);
    const http_framing_fault *fault = http_framing_check(&framing, version);
    char location[CONFIG_URL_MAX + 3 * HTTP_RAW_URI_MAX + 2];
    if (fault != NULL) {
        status = fault->status;
        resp = http_framing_response(fault, &body);
    } else if (rr->len > HTTP_RAW_URI_MAX) {
        status = 414;
        resp = http_reply_error_response(status, "uri_too_long", "The request target is too long.",
                                         &body);
    } else if (t.form == HTTP_TARGET_BAD) {
        status = 400;
        resp = http_reply_error_response(status, "bad_target", t.reason, &body);
    } else {
        size_t n = (size_t)snprintf(location, sizeof location, "%s%s", r->cfg->public_url, lead);
        location_target(location + n, rest);
        resp = http_reply_empty();
        if (resp != NULL)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    }
    if (resp == NULL)
        return MHD_NO;
    /* Nothing more is served here: the client goes to https (a refusal
     * says so already). */
    if (fault == NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);

    if (r->access_log != NULL) {
        char peer[PROXY_ADDR_TEXT_MAX];
        peer_address(c, peer);
        accesslog_entry e = {
            .client_addr = peer,
            .method = method,
            .uri = rr->target,
            .version = version,
            .status = status,
            .bytes = body,
            .referer = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Referer"),
            .user_agent = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "User-Agent"),
        };
        accesslog_write(r->access_log, &e);
    }
    return ret;
}

/* --header-timeout and a per-address limit hold here as on the other
 * listeners: a client that trickles its headers would otherwise keep its
 * connection for ever (each byte resets the idle timeout). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    http_redirect *r = cls;
    (void)addrlen;
    return http_guard_admits(r->guard, addr) ? MHD_YES : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    redirect_request *rr = *req_cls;
    if (rr != NULL)
        http_guard_request_done(rr->guard);
    http_loop_free_request(cls, c, req_cls, toe);
}

http_redirect *http_redirect_start(const config *cfg, accesslog *access_log, char *err,
                                   size_t errlen)
{
    http_redirect *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->cfg = cfg;
    r->access_log = access_log;
    http_guard_options gopts = {
        .name = "redirect",
        .listener = METRICS_LISTENER_REDIRECT,
        .header_timeout_ms = cfg->header_timeout_s * 1000,
        .min_body_rate = 0, /* no body is read */
        .idle_timeout_ms = REDIRECT_TIMEOUT_S * 1000,
        .max_connections = cfg->max_connections,
        .threads = 1,
        .per_address =
            cfg->per_ip_connections > 0 ? cfg->per_ip_connections : REDIRECT_PER_ADDRESS_MAX,
        .exempt = &cfg->trusted_proxies,
    };
    r->guard = http_guard_new(&gopts);
    if (r->guard == NULL) {
        snprintf(err, errlen, "cannot start the redirect connection watchdog");
        free(r);
        return NULL;
    }
    unsigned flags = MHD_USE_ERROR_LOG;
    if (cfg->redirect_http.addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem options[] = {
        {MHD_OPTION_CONNECTION_TIMEOUT, REDIRECT_TIMEOUT_S, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, REDIRECT_MEMORY, NULL},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, r},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)http_guard_notify, r->guard},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)log_library, "redirect"},
        {MHD_OPTION_END, 0, NULL},
    };
    /* One thread: a 308 costs little, and the public listener has the rest. */
    const http_loop_settings settings = {
        .name = "redirect",
        .threads = 1,
        .flags = flags,
        .listen = (const struct sockaddr *)&cfg->redirect_http.addr,
        .max_connections = cfg->max_connections,
        .accept_policy = on_accept,
        .accept_policy_cls = r,
        .handler = on_request,
        .handler_cls = r,
        .options = options,
    };
    char why[256];
    if (http_loop_start(&settings, &r->loop, why, sizeof why) != 0) {
        snprintf(err, errlen, "cannot listen on %s (--redirect-http): %s", cfg->redirect_http.text,
                 why);
        http_guard_free(r->guard);
        free(r);
        return NULL;
    }
    r->port = http_loop_port(r->loop);
    return r;
}

unsigned http_redirect_port(const http_redirect *r)
{
    return r != NULL ? r->port : 0;
}

void http_redirect_stop(http_redirect *r)
{
    if (r == NULL)
        return;
    http_loop_stop(r->loop);
    http_guard_free(r->guard); /* the library has closed every connection */
    free(r);
}
