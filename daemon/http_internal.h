/*
 * http_internal: what the modules of the public listener share: the
 * context their route handlers serve with and the record of one request.
 *
 * Types and limits only. It declares no function, so including it makes no
 * module depend on another: http.c (the listener and router) owns the
 * context and the requests; http_reply, http_file, http_proxy, plugin and
 * confirm only use them. Not a public contract: only those files include it.
 */
#ifndef RECEIPT_DAEMON_HTTP_INTERNAL_H
#define RECEIPT_DAEMON_HTTP_INTERNAL_H

#include "daemon/clientkeys.h"
#include "daemon/http_guard.h"
#include "daemon/http_loop.h"
#include "daemon/http_target.h"
#include "daemon/config.h"
#include "daemon/content.h"
#include "daemon/keystore.h"
#include "daemon/ledger.h"
#include "daemon/metrics.h"
#include "daemon/proxy.h"
#include "daemon/readpool.h"
#include "daemon/ticket.h"
#include "daemon/tlog.h"
#include "daemon/tls_io.h"
#include "daemon/upstream.h"
#include "daemon/writer.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_RAW_URI_MAX          4096 /* request-target bytes; longer: 414 */
#define HTTP_REFERER_MAX          255
#define HTTP_CONFIRM_BODY_MAX     (16 * 1024)   /* docs/protocol.md section 8: 413 above */
#define HTTP_CONFIRM_DISCARD_MAX  (1024 * 1024) /* read past the cap for the 413, then close */
#define HTTP_CONFIRM_URL_MAX      (CONFIG_URL_MAX + 32)
#define HTTP_CLIENTKEYS_CACHE     65536
#define HTTP_CONFIRM_TIMEOUT_MS   10000 /* a ledger slower than this: 503 */
#define HTTP_DRAIN_AFTER_ABORT_MS 2000  /* for the 503s of aborted confirmations */

typedef struct confirm_waits confirm_waits;
typedef struct confirm_call confirm_call;
typedef struct http_proxy_state http_proxy_state;

/*
 * What every route handler serves with. Set up by http_server_start() and
 * read-only afterwards, but for stopping. The services are borrowed.
 */
typedef struct http_context {
    const config *cfg;
    content_store *content; /* NULL: no --root, upstreams only */
    upstream_pool *upstreams;
    ticket_sealer *sealer;
    const keystore *keys;
    writer *ledger_writer;
    tlog *log;             /* NULL: no evidence log */
    readpool *log_readers; /* the log's reads (NULL without it) */
    clientkeys *client_keys;
    confirm_waits *waits;
    http_loop *loop;      /* the HTTP threads: resume suspended connections through it */
    atomic_bool stopping; /* draining: confirmations get 503 at once */
    bool https;           /* the public listener speaks TLS */
    char confirm_url[HTTP_CONFIRM_URL_MAX];
    char jwks_url[HTTP_CONFIRM_URL_MAX]; /* the public URL's /_receipt/jwks.json */
} http_context;

typedef enum request_phase {
    REQUEST_NEW = 0,
    REQUEST_RECEIVING, /* reading a confirmation body            */
    REQUEST_WAITING,   /* suspended until the ledger has answered */
} request_phase;

/*
 * Per request: made by the listener when the request line arrives, freed
 * when the request completes. Used by one worker thread at a time.
 */
typedef struct request {
    http_context *ctx;
    unsigned status;
    uint64_t bytes;
    request_phase phase;
    metrics_route route;
    bool raw_path_has_nul;
    bool started;
    bool too_large; /* a confirmation body past the cap: 413 once it ends */
    size_t uri_len;
    char *body; /* confirmation body, at most HTTP_CONFIRM_BODY_MAX */
    size_t body_len;
    confirm_call *call;
    http_guard_conn *guard;         /* the connection's deadlines (http_guard.h); may be NULL */
    tls_io *tls;                    /* the connection's TLS transport (tls_io.h); NULL: plain */
    const upstream_route *upstream; /* the request goes to this upstream */
    http_proxy_state *proxy;        /* its state once it has started */
    char client_addr[LEDGER_ADDR_MAX + 1]; /* the client: the peer, or whom a trusted proxy named */
    uint8_t client[16];                    /* the same, as proxy.h holds addresses */
    uint8_t peer[16];                      /* the connection's peer (if peer_is_ip) */
    bool peer_is_ip;                       /* else a Unix socket: client_addr is "-" */
    proxy_scheme scheme;                   /* the client's, as a trusted proxy said; else NONE */
    bool forwarded;                        /* a trusted proxy named the client */
    bool over_limit;                       /* its forwarded address is at the per-address limit */
    bool limit_taken;                      /* it counts in the forwarded requests' table */
    char user_agent[LEDGER_UA_MAX + 1];
    char referer[HTTP_REFERER_MAX + 1];
    char method[16];
    char version[16];
    /* The request target (http_target.h): what routes and upstreams see is
     * target, the origin form, which is uri itself, or for an absolute-form
     * target its path and query (kept after uri). Its authority then stands
     * for the Host header field: host is the one or the other, for every
     * use of Host (NULL: neither). */
    const char *target;
    const char *target_error; /* a target this server does not take: why; else NULL */
    size_t target_prefix;     /* bytes of uri, and of the decoded path, before the origin form */
    const char *host;         /* set on the request's first call */
    char authority[HTTP_TARGET_AUTHORITY_MAX + 1];
    char uri[]; /* as received (the access log's), at most HTTP_RAW_URI_MAX bytes kept */
} request;

#endif
