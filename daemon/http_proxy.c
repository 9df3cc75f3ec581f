#include "daemon/http_proxy.h"

#include "daemon/http_deliver.h"
#include "daemon/http_guard.h"
#include "daemon/http_reply.h"
#include "daemon/mime.h"
#include "daemon/upstream_header.h"
#include "daemon/upstream_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROXY_READ_BLOCK    (32 * 1024) /* bytes a streamed answer is sent in */
#define PROXY_FORWARDED_MAX (LEDGER_ADDR_MAX + 2 * CONFIG_HOSTPORT_MAX + 64)
#define PROXY_DISCARD_MAX   (1024 * 1024) /* request body read past an early end, then close */
#define ELEMENT_LEN         (sizeof DELIVERY_ELEMENT - 1)

struct http_proxy_state {
    upstream_call *call;         /* NULL once given up (a body past the limit) */
    struct MHD_Connection *conn; /* suspended while the call waits */
    http_loop *loop;             /* that resumes it */
    uint64_t body_bytes;         /* of the request, so far */
    bool has_body;
    bool body_ended;
    bool too_large;                         /* the request body passed --proxy-max-body: 413 */
    bool streamed;                          /* the answer's body streams from the call */
    bool held;                              /* the client's body waited for the upstream */
    bool candidate;                         /* a GET whose 200 may be a delivery: read whole */
    char content_path[TICKET_PATH_MAX + 1]; /* of a candidate: path and query */
};

/* ---- waiting ---------------------------------------------------------------- */

/* cls: the request's http_proxy_state, which outlives the call's waits
 * (http_proxy_release() finishes the call before it frees it). */
static void suspend_connection(void *cls)
{
    const http_proxy_state *ps = cls;
    MHD_suspend_connection(ps->conn);
}

static void resume_connection(void *cls)
{
    const http_proxy_state *ps = cls;
    http_loop_resume(ps->loop, ps->conn);
}

/* ---- the request that goes upstream ------------------------------------------ */

typedef struct header_pass {
    upstream_call *call;
    proxy_fields forwarding; /* the client's forwarding fields, for add_forwarded() */
    bool identity;           /* the answer is asked for uncompressed */
    bool unconditional;      /* the answer is asked for whole and unconditionally */
    struct MHD_Connection *c;
    bool connection; /* the client sent a Connection field: what it names stays here */
    bool has_accept;
    bool failed;
} header_pass;

/* Whether the value of a client's Connection field (of several, maybe)
 * names a field. */
typedef struct connection_names {
    const char *name;
    bool found;
} connection_names;

static enum MHD_Result find_connection_name(void *cls, enum MHD_ValueKind kind, const char *name,
                                            const char *value)
{
    connection_names *cn = cls;
    (void)kind;
    if (name != NULL && value != NULL && strcasecmp(name, "Connection") == 0 &&
        upstream_header_lists(value, cn->name)) {
        cn->found = true;
        return MHD_NO;
    }
    return MHD_YES;
}

/* Whether a Connection field may name a field: the usual keep-alive and
 * close name none that is not hop-by-hop anyway. */
static enum MHD_Result find_connection_names(void *cls, enum MHD_ValueKind kind, const char *name,
                                             const char *value)
{
    bool *found = cls;
    (void)kind;
    if (name != NULL && value != NULL && strcasecmp(name, "Connection") == 0 &&
        strcasecmp(value, "keep-alive") != 0 && strcasecmp(value, "close") != 0) {
        *found = true;
        return MHD_NO;
    }
    return MHD_YES;
}

static bool connection_names_field(const header_pass *hp, const char *name)
{
    if (!hp->connection)
        return false;
    connection_names cn = {name, false};
    MHD_get_connection_values(hp->c, MHD_HEADER_KIND, find_connection_name, &cn);
    return cn.found;
}

/* The fields that make a GET's answer a 304, a 206 or a 412. */
static bool conditional_field(const char *name)
{
    static const char *const conditional[] = {
        "If-None-Match",       "If-Modified-Since", "If-Match",
        "If-Unmodified-Since", "If-Range",          "Range",
    };
    return upstream_header_named(name, conditional, sizeof conditional / sizeof *conditional);
}

/* Fields receiptd writes itself, or that belong to this hop. */
static bool kept_back(const header_pass *hp, const char *name)
{
    static const char *const own[] = {
        "Host",
        "Content-Length",
        "Expect",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "Forwarded",
    };
    return upstream_header_named(name, own, sizeof own / sizeof own[0]) ||
           upstream_header_hop_by_hop(name) || connection_names_field(hp, name);
}

static enum MHD_Result pass_header(void *cls, enum MHD_ValueKind kind, const char *name,
                                   const char *value)
{
    header_pass *hp = cls;
    if (name == NULL || proxy_fields_add(&hp->forwarding, name, value) || kept_back(hp, name))
        return MHD_YES;
    if (strcasecmp(name, "Accept") == 0)
        hp->has_accept = true;
    if (hp->identity && strcasecmp(name, "Accept-Encoding") == 0)
        return MHD_YES;
    if (hp->unconditional && conditional_field(name))
        return MHD_YES;
    if (upstream_call_add_header(hp->call, name, value != NULL ? value : "") != 0) {
        hp->failed = true;
        return MHD_NO;
    }
    return MHD_YES;
}

/* A quoted-string of RFC 9110 (for the host in Forwarded). */
static void quote(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    if (cap < 3) {
        out[0] = '\0';
        return;
    }
    out[n++] = '"';
    for (const char *p = in; *p != '\0' && n + 3 < cap; p++) {
        if (*p == '"' || *p == '\\')
            out[n++] = '\\';
        out[n++] = *p;
    }
    out[n++] = '"';
    out[n] = '\0';
}

/* Text built in a buffer of the caller's; what does not fit marks it full. */
typedef struct text {
    char *s;
    size_t len, cap;
    bool full;
} text;

static void text_add(text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->full || n >= t->cap - t->len) {
        t->full = true;
        return;
    }
    memcpy(t->s + t->len, s, n + 1);
    t->len += n;
}

/* An address as a Forwarded node: IPv6 in quoted brackets (RFC 7239 section 6). */
static void add_forwarded_node(text *t, const char *addr)
{
    if (strcmp(addr, "-") == 0) {
        text_add(t, "unknown");
    } else if (strchr(addr, ':') != NULL) {
        text_add(t, "\"[");
        text_add(t, addr);
        text_add(t, "]\"");
    } else {
        text_add(t, addr);
    }
}

/* "before, after", or after alone; -1 when it does not fit. */
static int append_list(char *out, size_t cap, const char *before, const char *after)
{
    text t = {out, 0, cap, false};
    out[0] = '\0';
    if (before != NULL && before[0] != '\0') {
        text_add(&t, before);
        text_add(&t, ", ");
    }
    text_add(&t, after);
    return t.full ? -1 : 0;
}

/*
 * Who asked, for the upstream. The peer is added to what a trusted proxy
 * said (the way nginx's $proxy_add_x_forwarded_for does) or, from any other
 * peer, replaces what it said (those fields were kept back: kept_back()).
 * X-Forwarded-Proto and X-Forwarded-Host say what the first client used,
 * as a trusted proxy passed them on, or else this connection's scheme and
 * Host. The Forwarded element of this hop names the peer, the Host and the
 * scheme it received.
 */
static int add_forwarded(http_context *ctx, upstream_call *call, const request *req,
                         const proxy_fields *in, const char *host)
{
    const char *own_proto = ctx->https ? "https" : "http";
    /* The peer's text: the client's already, unless a trusted proxy named another. */
    char peer_text[PROXY_ADDR_TEXT_MAX];
    const char *peer = "-";
    if (req->peer_is_ip && memcmp(req->client, req->peer, sizeof req->peer) == 0) {
        peer = req->client_addr;
    } else if (req->peer_is_ip) {
        proxy_addr_format(req->peer, peer_text);
        peer = peer_text;
    }
    const bool trusted = req->forwarded; /* and so its fields were well formed */
    const char *xff_in = trusted ? proxy_fields_value(in, PROXY_FIELD_X_FORWARDED_FOR) : NULL;
    const char *fwd_in = trusted ? proxy_fields_value(in, PROXY_FIELD_FORWARDED) : NULL;
    const char *host_in = trusted ? proxy_fields_value(in, PROXY_FIELD_X_FORWARDED_HOST) : NULL;

    /* A trusted proxy that used only the other field still named the client. */
    char client_element[PROXY_ADDR_TEXT_MAX + 16];
    if (trusted && xff_in == NULL)
        xff_in = req->client_addr;
    if (trusted && fwd_in == NULL) {
        text t = {client_element, 0, sizeof client_element, false};
        text_add(&t, "for=");
        add_forwarded_node(&t, req->client_addr);
        fwd_in = client_element;
    }

    char xff[PROXY_HEADER_MAX + PROXY_ADDR_TEXT_MAX + 4];
    if (append_list(xff, sizeof xff, xff_in, strcmp(peer, "-") == 0 ? "unknown" : peer) != 0)
        return -1;

    char element[PROXY_FORWARDED_MAX], host_quoted[2 * CONFIG_HOSTPORT_MAX + 3];
    text e = {element, 0, sizeof element, false};
    text_add(&e, "for=");
    add_forwarded_node(&e, peer);
    if (host != NULL) {
        quote(host, host_quoted, sizeof host_quoted);
        text_add(&e, ";host=");
        text_add(&e, host_quoted);
    }
    text_add(&e, ";proto=");
    text_add(&e, own_proto);
    char fwd[PROXY_HEADER_MAX + PROXY_FORWARDED_MAX + 4];
    if (e.full || append_list(fwd, sizeof fwd, fwd_in, element) != 0)
        return -1;

    const char *proto = req->scheme == PROXY_SCHEME_HTTPS  ? "https"
                        : req->scheme == PROXY_SCHEME_HTTP ? "http"
                                                           : own_proto;
    const char *fwd_host = host_in != NULL && host_in[0] != '\0' ? host_in : host;
    if (upstream_call_add_header(call, "X-Forwarded-For", xff) != 0 ||
        upstream_call_add_header(call, "X-Forwarded-Proto", proto) != 0 ||
        (fwd_host != NULL && upstream_call_add_header(call, "X-Forwarded-Host", fwd_host) != 0) ||
        upstream_call_add_header(call, "Forwarded", fwd) != 0)
        return -1;
    return 0;
}

/* The Host field the upstream gets (--upstream-host). */
static const char *host_for_upstream(const http_context *ctx, const request *req,
                                     const char *client_host)
{
    const char *configured = ctx->cfg->upstream_host;
    if (configured == NULL)
        return client_host != NULL ? client_host : req->upstream->url->authority;
    if (strcmp(configured, "upstream") == 0)
        return req->upstream->url->authority;
    return configured;
}

/* A "." or ".." segment: what nginx would resolve before choosing a location. */
static bool has_dot_segment(const char *path)
{
    for (const char *p = strchr(path, '/'); p != NULL; p = strchr(p + 1, '/')) {
        size_t dots = strspn(p + 1, ".");
        if ((dots == 1 || dots == 2) && (p[1 + dots] == '/' || p[1 + dots] == '\0'))
            return true;
    }
    return false;
}

/* The client's body: -1 none, -2 chunked, else its Content-Length; -3 bad. */
static int64_t request_body(struct MHD_Connection *c)
{
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (te != NULL)
        return -2;
    if (cl == NULL)
        return -1;
    if (cl[0] == '\0' || strspn(cl, "0123456789") != strlen(cl) || strlen(cl) > 18)
        return -3;
    return (int64_t)strtoll(cl, NULL, 10);
}

static enum MHD_Result start(http_context *ctx, request *req, struct MHD_Connection *c,
                             const char *url)
{
    const char *upgrade = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade");
    if (upgrade != NULL && upstream_header_lists(upgrade, "websocket"))
        return http_reply_error(req, c, 501, "websocket_not_supported",
                                "WebSocket connections are not passed to upstreams yet.");
    if (strcmp(req->method, "CONNECT") == 0)
        return http_reply_error(req, c, 501, "not_implemented",
                                "CONNECT is not supported: this is no forward proxy.");
    if (has_dot_segment(url))
        return http_reply_error(req, c, 400, "bad_path", "The request path is not valid.");
    if (atomic_load(&ctx->stopping))
        return http_reply_error(req, c, 503, "shutting_down",
                                "The server is shutting down; retry shortly.");
    int64_t body = request_body(c);
    bool head = strcmp(req->method, "HEAD") == 0;
    if (body == -3 || (head && body != -1 && body != 0))
        return http_reply_error(req, c, 400, "bad_request", "The request body is not valid.");
    if (body >= 0 && (uint64_t)body > ctx->cfg->proxy_max_body)
        return http_reply_error(req, c, 413, "body_too_large",
                                "The request body is larger than this server passes on.");

    char target[UPSTREAM_TARGET_MAX];
    if (upstream_url_target(req->upstream->url, req->upstream->prefix, req->target, url, target,
                            sizeof target) == 0)
        return http_reply_error(req, c, 414, "uri_too_long", "The request target is too long.");

    /* A GET whose 200 may be a delivery is read whole and uncompressed: its
     * digest, the agent element and the ledger need the bytes as sent. The
     * path rules look at the path; the delivery's content is the path with
     * its query, within a ticket's limit. */
    bool get = strcmp(req->method, "GET") == 0;
    ledger_kind kind;
    bool html_delivery = get && http_deliver_decide(ctx, c, url, true, &kind);
    bool candidate = html_delivery || (get && http_deliver_decide(ctx, c, url, false, &kind));
    /*
     * A page view that would get the agent element, were the answer HTML,
     * is asked for whole and unconditionally, as a file's injected page
     * ignores conditional and range headers (docs/protocol.md section
     * 5.4): the upstream's 304 or 206 would reach the browser without a
     * delivery (its cached copy, with an old ticket or none), and a 206 is
     * no page to inject. Every other request keeps them: a download and a
     * device that names its key, as a file's answer that is not injected
     * honours them (its 304 or 206 is no new delivery); and a device or
     * script without a key, whose answer is as likely a binary it polls
     * with If-None-Match, where a file's 304 is right, as a page, and only
     * the answer tells which.
     */
    bool has_key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, CLIENTKEYS_HEADER) != NULL;
    bool unconditional = html_delivery && kind == LEDGER_KIND_PAGE &&
                         http_deliver_injects(kind, has_key, ctx->cfg->inject);
    char content_path[TICKET_PATH_MAX + 1];
    size_t content_path_len = 0;
    if (candidate) {
        const char *query = strchr(req->target, '?');
        int n = snprintf(content_path, sizeof content_path, "%s%s", url, query ? query : "");
        if (n < 0 || (size_t)n >= sizeof content_path)
            return http_reply_error(req, c, 414, "uri_too_long",
                                    "The path and query of a tracked request are longer than a "
                                    "delivery's content may be.");
        content_path_len = (size_t)n;
    }

    http_proxy_state *ps = malloc(sizeof *ps);
    if (ps != NULL) {
        ps->conn = c;
        ps->loop = ctx->loop;
    }
    const upstream_waker waker = {suspend_connection, resume_connection, ps};
    upstream_call *call =
        ps != NULL ? upstream_call_new(ctx->upstreams, req->upstream, req->method, target, &waker)
                   : NULL;
    if (call == NULL) {
        free(ps);
        return http_reply_error(req, c, 500, "internal_error", "Out of memory.");
    }
    *ps = (http_proxy_state){.call = call, .conn = c, .loop = ctx->loop, .candidate = candidate};
    memcpy(ps->content_path, content_path, content_path_len);
    ps->content_path[content_path_len] = '\0';
    req->proxy = ps;
    /* Room for the agent element, injected in place (whole_response()). */
    if (candidate)
        upstream_call_read_whole(call, ELEMENT_LEN);

    const char *client_host = req->host; /* an absolute-form target's authority, or Host */
    /* Not zeroed whole: the forwarding fields are large, and init empties them. */
    header_pass hp;
    hp.call = call;
    hp.c = c;
    hp.connection = false;
    MHD_get_connection_values(c, MHD_HEADER_KIND, find_connection_names, &hp.connection);
    hp.identity = candidate;
    hp.unconditional = unconditional;
    hp.has_accept = false;
    hp.failed = false;
    proxy_fields_init(&hp.forwarding);
    MHD_get_connection_values(c, MHD_HEADER_KIND, pass_header, &hp);
    if (hp.failed ||
        upstream_call_add_header(call, "Host", host_for_upstream(ctx, req, client_host)) != 0 ||
        add_forwarded(ctx, call, req, &hp.forwarding, client_host) != 0 ||
        (!hp.has_accept && upstream_call_add_header(call, "Accept", NULL) != 0) ||
        (candidate && upstream_call_add_header(call, "Accept-Encoding", "identity") != 0) ||
        upstream_call_add_header(call, "Expect", NULL) != 0)
        return http_reply_error(req, c, 500, "internal_error", "Out of memory.");
    if (body != -1 && !head) {
        ps->has_body = true;
        upstream_call_expect_body(call, body >= 0 ? body : -1);
    }
    if (upstream_call_start(call) != 0)
        return http_reply_error(req, c, 503, "shutting_down",
                                "The server is shutting down; retry shortly.");
    /* Answered on a later call: libmicrohttpd would close the connection
     * after an answer to the first. */
    return MHD_YES;
}

/* ---- the request's body ---------------------------------------------------------- */

static enum MHD_Result take_body(http_context *ctx, request *req, http_proxy_state *ps,
                                 const char *data, size_t *size)
{
    size_t n = *size;
    if (ps->too_large || ps->call == NULL) {
        /* Read on and drop it, to say 413 at the end; close past reason. */
        ps->body_bytes += n;
        *size = 0;
        return ps->body_bytes > ctx->cfg->proxy_max_body + PROXY_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (ps->body_bytes + n > ctx->cfg->proxy_max_body) {
        ps->too_large = true;
        upstream_call_finish(ps->call);
        ps->call = NULL;
        return take_body(ctx, req, ps, data, size);
    }
    for (;;) {
        if (ps->held) {
            /* The client's pace is measured again from here: the wait was
             * the upstream's (http_guard's --min-body-rate). */
            ps->held = false;
            http_guard_headers_done(req->guard, true);
        }
        size_t took = upstream_call_send(ps->call, data, n);
        data += took;
        n -= took;
        ps->body_bytes += took;
        if (n == 0) {
            *size = 0;
            return MHD_YES;
        }
        /* Until the upstream takes more, the client is not the slow one. */
        http_guard_body_done(req->guard);
        ps->held = true;
        if (upstream_call_sleep(ps->call)) {
            /* libmicrohttpd hands the rest again once resumed. */
            *size = n;
            return MHD_YES;
        }
    }
}

/* ---- the answer ------------------------------------------------------------------- */

static ssize_t read_answer(void *cls, uint64_t pos, char *buf, size_t max)
{
    upstream_call *call = cls;
    (void)pos;
    for (;;) {
        ssize_t n = upstream_call_read(call, buf, max);
        if (n > 0)
            return n;
        if (n == UPSTREAM_READ_END)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (n == UPSTREAM_READ_ERROR) {
            /* The client sees it cut too, and at once: libmicrohttpd closes
             * a connection ended here when its loop next wakes for it, which
             * may be --idle-timeout later (MHD_USE_TURBO leaves out
             * the shutdown() it would make meanwhile). */
            const http_proxy_state *ps = upstream_call_waker_cls(call);
            const union MHD_ConnectionInfo *info =
                MHD_get_connection_info(ps->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            if (info != NULL)
                shutdown(info->connect_fd, SHUT_WR);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (upstream_call_sleep(call))
            return 0;
    }
}

static void drop_call(void *cls)
{
    upstream_call_unref(cls);
}

/* What else of an upstream's answer stays here when it is a delivery. */
#define ANSWER_DELIVERY 1u /* receiptd writes Cache-Control and Repr-Digest */
#define ANSWER_INJECTED 2u /* no validators, no ranges: every view is a delivery */

/* Fields of the answer that stay here: this hop's, and those receiptd
 * writes itself (as nginx keeps back Date and Server). */
static bool answer_kept_back(const upstream_header_list *h, const char *name, bool connection,
                             unsigned drop)
{
    static const char *const own[] = {
        "Content-Length",   "Date",           "Server",         "X-Pad",
        "Receipt-Delivery", "Receipt-Ticket", "Receipt-Plugin",
    };
    static const char *const delivery_own[] = {"Cache-Control", "Repr-Digest", "Content-Digest",
                                               "Expires", "Pragma"};
    static const char *const validators[] = {"ETag", "Last-Modified", "Accept-Ranges"};
    return upstream_header_named(name, own, sizeof own / sizeof own[0]) ||
           upstream_header_hop_by_hop(name) || strncasecmp(name, "X-Accel-", 8) == 0 ||
           (connection && upstream_header_list_lists(h, "Connection", name)) ||
           ((drop & ANSWER_DELIVERY) &&
            upstream_header_named(name, delivery_own,
                                  sizeof delivery_own / sizeof *delivery_own)) ||
           ((drop & ANSWER_INJECTED) &&
            upstream_header_named(name, validators, sizeof validators / sizeof *validators));
}

/* Which of an answer's first 64 fields pass (bit i for the ith), as
 * answer_fits() found them: adding them then judges no field again. */
typedef uint64_t passing_fields;
#define PASSING_KNOWN 64

/* Whether the answer's Connection fields may name a field, which is then
 * hop-by-hop. */
static bool answer_connection(const upstream_header_list *h)
{
    size_t cursor = 0;
    const char *value;
    for (const char *n; (n = upstream_header_list_next(h, &cursor, &value)) != NULL;) {
        /* The usual value names no field but Keep-Alive, which is hop-by-hop anyway. */
        if (strcasecmp(n, "Connection") == 0 && strcasecmp(value, "keep-alive") != 0)
            return true;
    }
    return false;
}

/* With r NULL, counts the bytes in a header block of the fields of the
 * answer that pass and of --add-header's, noting in *passing which pass;
 * else adds them to r, as *passing says. */
static size_t add_answer_headers(const http_context *ctx, struct MHD_Response *r,
                                 const upstream_header_list *h, unsigned drop,
                                 passing_fields *passing)
{
    bool connection = false;
    bool connection_read = false;
    if (r == NULL)
        *passing = 0;
    size_t cursor = 0, bytes = 0, i = 0;
    const char *value;
    for (const char *name; (name = upstream_header_list_next(h, &cursor, &value)) != NULL; i++) {
        bool pass;
        if (r != NULL && i < PASSING_KNOWN) {
            pass = (*passing >> i) & 1u;
        } else {
            if (!connection_read) {
                connection = answer_connection(h);
                connection_read = true;
            }
            pass = !answer_kept_back(h, name, connection, drop);
            if (pass && i < PASSING_KNOWN)
                *passing |= (passing_fields)1 << i;
        }
        if (!pass)
            continue;
        if (r != NULL)
            MHD_add_response_header(r, name, value);
        else
            bytes += strlen(name) + strlen(value) + 4; /* ": " and CRLF */
    }
    for (size_t k = 0; k < ctx->cfg->header_count; k++) {
        if (r != NULL)
            MHD_add_response_header(r, ctx->cfg->headers[k].name, ctx->cfg->headers[k].value);
        else
            bytes += strlen(ctx->cfg->headers[k].name) + strlen(ctx->cfg->headers[k].value) + 4;
    }
    return bytes;
}

/* The header block is built in the connection's memory: one that does not
 * fit would close the connection unanswered (http_reply.h). */
static bool answer_fits(const http_context *ctx, struct MHD_Connection *c,
                        const upstream_header_list *h, unsigned drop, size_t content_path_len,
                        passing_fields *passing)
{
    size_t room = http_reply_room(c, ctx->cfg->connection_memory);
    return add_answer_headers(ctx, NULL, h, drop, passing) +
               http_reply_headroom(content_path_len) <=
           room;
}

static enum MHD_Result reply_headers_too_large(request *req, struct MHD_Connection *c,
                                               upstream_call *call)
{
    upstream_call_refuse(call, UPSTREAM_FAIL_HEADERS_TOO_LARGE);
    return http_reply_error(req, c, 502, "upstream_headers_too_large",
                            "The upstream's header fields are larger than this server passes on "
                            "(--connection-memory).");
}

static enum MHD_Result reply_failure(request *req, struct MHD_Connection *c, upstream_failure f)
{
    switch (f) {
    case UPSTREAM_FAIL_TIMEOUT:
        return http_reply_error(req, c, 504, "upstream_timeout",
                                "The upstream did not answer in time.");
    case UPSTREAM_FAIL_CONNECT:
        return http_reply_error(req, c, 502, "upstream_unavailable",
                                "The upstream cannot be reached.");
    case UPSTREAM_FAIL_TLS:
        return http_reply_error(req, c, 502, "upstream_tls",
                                "The upstream's TLS handshake or certificate failed.");
    case UPSTREAM_FAIL_CUT:
        return http_reply_error(req, c, 502, "upstream_cut",
                                "The upstream ended its answer early.");
    case UPSTREAM_FAIL_TOO_LARGE:
        return http_reply_error(req, c, 502, "upstream_too_large",
                                "The upstream's answer is larger than this server passes on.");
    case UPSTREAM_FAIL_SHUTDOWN:
        return http_reply_error(req, c, 503, "shutting_down",
                                "The server is shutting down; retry shortly.");
    case UPSTREAM_FAIL_INTERNAL:
        return http_reply_error(req, c, 500, "internal_error",
                                "The upstream's answer could not be kept.");
    case UPSTREAM_FAIL_BAD_ANSWER:
    default:
        return http_reply_error(req, c, 502, "upstream_bad_answer",
                                "The upstream did not answer valid HTTP.");
    }
}

/* A complete answer, as one buffer: cheaper than a callback response,
 * whose block libmicrohttpd zeroes. A short one came into a block of its
 * own, taken as it is; else what sits in the call's buffer is copied out. */
static struct MHD_Response *complete_response(upstream_call *call, uint64_t *len)
{
    upstream_body whole;
    if (upstream_call_take_body(call, &whole) == 0) {
        *len = whole.len;
        struct MHD_Response *r =
            MHD_create_response_from_buffer_with_free_callback((size_t)whole.len, whole.data, free);
        if (r == NULL)
            free(whole.data);
        return r;
    }
    size_t n = upstream_call_buffered(call);
    char *body = n > 0 ? malloc(n) : NULL;
    if (n > 0 && (body == NULL || upstream_call_read(call, body, n) != (ssize_t)n)) {
        free(body);
        return NULL;
    }
    *len = n;
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(n, body, free);
    if (r == NULL)
        free(body);
    return r;
}

/* Status and headers are here: the answer goes out, its body streamed. */
static enum MHD_Result answer_streamed(http_context *ctx, request *req, struct MHD_Connection *c,
                                       http_proxy_state *ps)
{
    upstream_call *call = ps->call;
    passing_fields passing;
    if (!answer_fits(ctx, c, upstream_call_headers(call), 0, 0, &passing))
        return reply_headers_too_large(req, c, call);
    unsigned status = upstream_call_status(call);
    int64_t length = upstream_call_content_length(call);
    bool head = strcmp(req->method, "HEAD") == 0;
    uint64_t len = 0;
    struct MHD_Response *r;
    if (status == 204) {
        r = http_reply_empty(); /* no Content-Length at all (RFC 9110 8.6) */
    } else if (status == 304 || head) {
        /* No body, and the upstream's Content-Length as it sent it: the
         * length of the 200 (RFC 9110 8.6), which a cache updating its
         * stored fields from a 304 takes (RFC 9111 4.3.4); none when it
         * sent none, never a length this server made up. */
        r = length >= 0 ? http_reply_not_modified((uint64_t)length) : http_reply_no_length();
    } else if (upstream_call_state(call) == UPSTREAM_DONE) {
        r = complete_response(call, &len);
    } else {
        r = MHD_create_response_from_callback(length >= 0 ? (uint64_t)length : MHD_SIZE_UNKNOWN,
                                              PROXY_READ_BLOCK, read_answer, call, drop_call);
        if (r != NULL)
            upstream_call_ref(call); /* the response's */
        ps->streamed = true;
    }
    if (r != NULL)
        add_answer_headers(ctx, r, upstream_call_headers(call), 0, &passing);
    return http_reply_queue(req, c, status, r, len);
}

/* ---- an answer read whole: a delivery ----------------------------------------------- */

/* A body read whole (upstream.h), and its file's mapping once one is needed. */
typedef struct whole_body {
    upstream_body b;
    void *map;
} whole_body;

static void whole_body_release(whole_body *w)
{
    free(w->b.data);
    w->b.data = NULL;
    if (w->map != NULL)
        munmap(w->map, (size_t)w->b.len);
    w->map = NULL;
    if (w->b.fd >= 0)
        close(w->b.fd);
    w->b.fd = -1;
}

static void whole_body_free(void *cls)
{
    whole_body_release(cls);
    free(cls);
}

/* The body's bytes in memory (a file's mapped); NULL on failure. */
static const uint8_t *whole_bytes(whole_body *w)
{
    static const uint8_t empty[1];
    if (w->b.len == 0)
        return empty;
    if (w->b.data != NULL)
        return (const uint8_t *)w->b.data;
    if (w->map == NULL) {
        void *m = mmap(NULL, (size_t)w->b.len, PROT_READ, MAP_PRIVATE, w->b.fd, 0);
        if (m == MAP_FAILED)
            return NULL;
        w->map = m;
    }
    return w->map;
}

/*
 * The SHA-256 of the body as received and, with inject, where the element
 * goes (*at) and the SHA-256 of the body with it. A body in memory is read
 * once for both: the two forms share the bytes before at, so the state
 * after them is copied. A body in a file was hashed as it arrived.
 */
static bool whole_digests(const EVP_MD *md, whole_body *w, bool inject, size_t *at,
                          uint8_t sha256[32], uint8_t injected_sha256[32])
{
    *at = 0;
    if (w->b.hashed)
        memcpy(sha256, w->b.sha256, 32);
    if (w->b.hashed && !inject)
        return true;
    const uint8_t *bytes = whole_bytes(w);
    if (bytes == NULL)
        return false;
    size_t len = (size_t)w->b.len;
    if (inject)
        *at = content_inject_offset(bytes, len);
    if (w->b.hashed)
        return content_injected_sha256(md, bytes, len, *at, DELIVERY_ELEMENT, ELEMENT_LEN,
                                       injected_sha256);
    EVP_MD_CTX *plain = EVP_MD_CTX_new();
    EVP_MD_CTX *with = inject ? EVP_MD_CTX_new() : NULL;
    bool ok = plain != NULL && (!inject || with != NULL) &&
              EVP_DigestInit_ex(plain, md, NULL) == 1 && EVP_DigestUpdate(plain, bytes, *at) == 1 &&
              (!inject || (EVP_MD_CTX_copy_ex(with, plain) == 1 &&
                           EVP_DigestUpdate(with, DELIVERY_ELEMENT, ELEMENT_LEN) == 1 &&
                           EVP_DigestUpdate(with, bytes + *at, len - *at) == 1 &&
                           EVP_DigestFinal_ex(with, injected_sha256, NULL) == 1)) &&
              EVP_DigestUpdate(plain, bytes + *at, len - *at) == 1 &&
              EVP_DigestFinal_ex(plain, sha256, NULL) == 1;
    EVP_MD_CTX_free(plain);
    EVP_MD_CTX_free(with);
    return ok;
}

/*
 * The response of the body as received, or with the element at at. A body
 * in memory is one buffer, the element moved into the room the upstream
 * call left after it (upstream_call_read_whole()): libmicrohttpd sends the
 * header block and such a body in one system call, where a vector takes a
 * second. A body in a file goes by sendfile, or, injected, as a vector over
 * its mapping. Takes w.
 */
static struct MHD_Response *whole_response(whole_body *w, bool inject, size_t at)
{
    struct MHD_Response *r = NULL;
    size_t len = (size_t)w->b.len;
    if (w->b.fd < 0) {
        char *data = w->b.data;
        w->b.data = NULL;
        if (inject) {
            if (data == NULL)
                data = malloc(ELEMENT_LEN); /* an empty body */
            if (data == NULL)
                return NULL;
            memmove(data + at + ELEMENT_LEN, data + at, len - at);
            memcpy(data + at, DELIVERY_ELEMENT, ELEMENT_LEN);
            len += ELEMENT_LEN;
        }
        r = MHD_create_response_from_buffer_with_free_callback(len, data, free);
        if (r == NULL)
            free(data);
        return r;
    }
    if (!inject) {
        /* libmicrohttpd closes the file. */
        r = MHD_create_response_from_fd(w->b.len, w->b.fd);
        if (r != NULL)
            w->b.fd = -1;
        whole_body_release(w);
        return r;
    }
    whole_body *kept = malloc(sizeof *kept);
    const uint8_t *bytes = kept != NULL ? (*kept = *w, whole_bytes(kept)) : NULL;
    if (kept == NULL)
        whole_body_release(w);
    if (bytes != NULL) {
        struct MHD_IoVec iov[3] = {
            {.iov_base = bytes, .iov_len = at},
            {.iov_base = DELIVERY_ELEMENT, .iov_len = ELEMENT_LEN},
            {.iov_base = bytes + at, .iov_len = len - at},
        };
        r = MHD_create_response_from_iovec(iov, 3, whole_body_free, kept);
    }
    if (r == NULL && kept != NULL)
        whole_body_free(kept);
    return r;
}

/*
 * A 200 to a GET read whole: a delivery when the rules of a file's say so
 * for its content (the path and query) and type, with the agent element in
 * a page; else the answer as it came. The version is the digest of the
 * upstream's bytes; the delivery's, of the bytes sent.
 */
static enum MHD_Result answer_whole(http_context *ctx, request *req, struct MHD_Connection *c,
                                    http_proxy_state *ps, const char *url)
{
    upstream_call *call = ps->call;
    const upstream_header_list *h = upstream_call_headers(call);
    whole_body w = {.map = NULL};
    if (upstream_call_take_body(call, &w.b) != 0)
        return http_reply_error(req, c, 500, "internal_error",
                                "The upstream's answer could not be kept.");
    const char *type = upstream_header_list_get(h, "Content-Type");
    const char *coding = upstream_header_list_get(h, "Content-Encoding");
    bool is_html = type != NULL && mime_is_html(type);
    ledger_kind kind;
    passing_fields passing;
    if (!http_deliver_decide(ctx, c, url, is_html, &kind)) {
        if (!answer_fits(ctx, c, h, 0, 0, &passing)) {
            whole_body_release(&w);
            return reply_headers_too_large(req, c, call);
        }
        uint64_t len = w.b.len;
        struct MHD_Response *r = whole_response(&w, false, 0);
        if (r != NULL)
            add_answer_headers(ctx, r, h, 0, &passing);
        return http_reply_queue(req, c, 200, r, len);
    }

    clientkey ck CLIENTKEY_SCOPED;
    int has_key;
    enum MHD_Result ret;
    if (!http_deliver_client_key(ctx, req, c, &ck, &has_key, &ret)) {
        whole_body_release(&w);
        return ret;
    }
    bool injectable = is_html && ctx->cfg->inject && w.b.len <= CONTENT_HTML_MAX &&
                      (coding == NULL || strcasecmp(coding, "identity") == 0);
    bool inject = http_deliver_injects(kind, has_key, injectable);
    size_t path_len = strlen(ps->content_path);
    unsigned drop = ANSWER_DELIVERY | (inject ? ANSWER_INJECTED : 0);
    if (!answer_fits(ctx, c, h, drop, path_len, &passing)) {
        whole_body_release(&w);
        return reply_headers_too_large(req, c, call);
    }
    size_t at;
    uint8_t sha256[32], injected_sha256[32];
    if (!whole_digests(upstream_pool_sha256(ctx->upstreams), &w, inject, &at, sha256,
                       injected_sha256)) {
        whole_body_release(&w);
        return http_reply_error(req, c, 500, "internal_error",
                                "The upstream's answer could not be read.");
    }
    uint64_t body_len = w.b.len + (inject ? ELEMENT_LEN : 0);
    const delivery_content what = {
        .path = ps->content_path,
        .path_len = path_len,
        .kind = kind,
        .sha256 = sha256,
        .size = w.b.len,
        .delivered_sha256 = inject ? injected_sha256 : sha256,
        .delivered_size = body_len,
    };
    http_delivery hd;
    if (!http_deliver_issue(ctx, req, c, &what, has_key ? &ck : NULL, false, &hd, &ret)) {
        whole_body_release(&w);
        return ret;
    }

    /* Every request for it must reach the server to be a delivery; an
     * upstream's no-store stays, being stronger. */
    bool no_store = upstream_header_list_lists(h, "Cache-Control", "no-store");
    char repr_digest[64];
    content_repr_digest(what.delivered_sha256, repr_digest);
    struct MHD_Response *r = whole_response(&w, inject, at);
    if (r != NULL) {
        add_answer_headers(ctx, r, h, drop, &passing);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                                no_store ? "private, no-store" : "private, no-cache");
        MHD_add_response_header(r, "Repr-Digest", repr_digest);
    }
    http_deliver_headers(r, &hd, false);
    return http_reply_queue(req, c, 200, r, body_len);
}

static enum MHD_Result respond(http_context *ctx, request *req, struct MHD_Connection *c,
                               http_proxy_state *ps, const char *url)
{
    if (ps->has_body && !ps->body_ended) {
        ps->body_ended = true;
        if (ps->call != NULL)
            upstream_call_send_end(ps->call);
    }
    if (ps->too_large)
        return http_reply_error(req, c, 413, "body_too_large",
                                "The request body is larger than this server passes on.");
    for (;;) {
        switch (upstream_call_state(ps->call)) {
        case UPSTREAM_FAILED:
            return reply_failure(req, c, upstream_call_failure(ps->call));
        case UPSTREAM_DONE:
            if (upstream_call_whole(ps->call))
                return answer_whole(ctx, req, c, ps, url);
            return answer_streamed(ctx, req, c, ps);
        case UPSTREAM_ANSWERED:
            return answer_streamed(ctx, req, c, ps);
        case UPSTREAM_WAITING:
        default:
            if (upstream_call_sleep(ps->call))
                return MHD_YES;
        }
    }
}

enum MHD_Result http_proxy_serve(http_context *ctx, request *req, struct MHD_Connection *c,
                                 const char *url, const char *upload_data, size_t *upload_data_size)
{
    http_proxy_state *ps = req->proxy;
    if (ps == NULL)
        return start(ctx, req, c, url);
    if (*upload_data_size > 0)
        return take_body(ctx, req, ps, upload_data, upload_data_size);
    return respond(ctx, req, c, ps, url);
}

void http_proxy_release(request *req)
{
    http_proxy_state *ps = req->proxy;
    if (ps == NULL)
        return;
    if (ps->streamed && ps->call != NULL)
        req->bytes = upstream_call_bytes_read(ps->call);
    upstream_call_finish(ps->call);
    free(ps);
    req->proxy = NULL;
}
