/*
 * http_guard: bounds on slow clients, for the public, admin and redirect
 * listeners.
 *
 * libmicrohttpd 0.9.75 has one timeout, for idleness, and every byte a
 * client trickles resets it: a client that sends one header line every few
 * seconds holds its connection for ever. The guard tracks every connection
 * through the library's connection notifications and closes, from a
 * watchdog thread, those that are late:
 *
 *  - headers: a request's headers must be complete within header_timeout,
 *    counted from the connection's start for its first request, and for a
 *    later one from its request line (the library reports no earlier byte;
 *    until the request line, the previous response's end plus the idle
 *    timeout plus header_timeout bounds it);
 *  - body: a request body must arrive at min_body_rate bytes per second
 *    on average after a first header_timeout (deadline = start of the body
 *    + header_timeout + bytes so far / min_body_rate); 0 turns this off;
 *  - room: when a worker thread's connections near its share of the
 *    connection limit (the library divides the limit evenly between its
 *    threads and stops accepting at it), idle keep-alive connections of
 *    that thread are closed, oldest first, so that new clients get in;
 *  - addresses: with per_address set, a client address holds that many
 *    connections at most (http_guard_admits(), from the listener's accept
 *    policy); addresses in exempt (trusted proxies) are not counted.
 *
 * Closing from outside a connection's thread: the watchdog shuts the socket
 * down (shutdown(2)), and the worker sees the end of the stream and closes
 * the connection as for any client that leaves. The library notifies the
 * close before it closes the socket, and the notification takes the
 * guard's lock: a descriptor the watchdog shuts down under that lock is
 * still the connection's own, never one reused by another connection.
 *
 * Per request the cost is a few relaxed atomic stores, no lock and no
 * allocation; a connection costs one allocation and the lock, twice.
 */
#ifndef RECEIPT_DAEMON_HTTP_GUARD_H
#define RECEIPT_DAEMON_HTTP_GUARD_H

#include "common/compiler.h"
#include "daemon/metrics.h"
#include "daemon/proxy.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_GUARD_TICK_MS   100  /* how often the watchdog looks */
#define HTTP_GUARD_REPORT_MS 1000 /* one log line a second at most */
#define HTTP_GUARD_WORKERS   257  /* --threads at most, and one more */

typedef struct http_guard http_guard;
typedef struct http_guard_conn http_guard_conn;

typedef struct http_guard_options {
    const char *name;          /* the listener, in log lines */
    metrics_listener listener; /* whose counters in /metrics it moves */
    unsigned header_timeout_ms;
    unsigned min_body_rate; /* bytes per second; 0: no minimum */
    unsigned idle_timeout_ms;
    unsigned max_connections; /* the library's limit, all threads */
    unsigned threads;
    unsigned per_address;    /* connections per client address; 0: no limit */
    const proxy_set *exempt; /* borrowed; may be NULL */
} http_guard_options;

typedef struct http_guard_stats {
    uint64_t slow_headers; /* connections closed: headers late */
    uint64_t slow_bodies;  /* connections closed: body too slow */
    uint64_t idle_closed;  /* idle keep-alive connections closed to make room */
    uint64_t refused;      /* connections refused: their address held per_address */
    uint64_t open;         /* connections open now */
} http_guard_stats;

/* Starts the watchdog thread; NULL on failure. */
WARN_UNUSED_RESULT http_guard *http_guard_new(const http_guard_options *opts);
/* Stops the watchdog; only once the library has closed every connection. */
void http_guard_free(http_guard *g);

/*
 * The listener's connection notification calls this with the guard as
 * cls; socket_context is where the connection's record (an
 * http_guard_conn, NULL when untracked) is kept from start to close: the
 * library's own, or a slot of the listener's per-connection record. The
 * calls below take the record, or NULL.
 */
void http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode code);

/*
 * For the listener's accept policy: false when addr holds per_address
 * connections already (counted in the stats, /metrics and the log). Accepts racing on several
 * threads can pass it together: an address may briefly hold one connection over the limit per
 * thread. The connection counts once its notification has run (the library
 * notifies no close of one it refused after this check).
 */
bool http_guard_admits(http_guard *g, const struct sockaddr *addr);

/* The request line of a request arrived. */
void http_guard_request_line(http_guard_conn *gc);
/* Its headers are complete; has_body: a body may follow. */
void http_guard_headers_done(http_guard_conn *gc, bool has_body);
/* n body bytes arrived. */
void http_guard_body(http_guard_conn *gc, size_t n);
/* The body is complete (or there is none): no deadline while answering. */
void http_guard_body_done(http_guard_conn *gc);
/* The response is sent: the connection is idle until the next request. */
void http_guard_request_done(http_guard_conn *gc);

void http_guard_get_stats(http_guard *g, http_guard_stats *out);

#endif
