/*
 * metrics: counters of the public listener, of every listener's
 * slow-client guard, and of the TLS certificates of the listeners, for GET /metrics on the admin
 * listener. Lock-free (relaxed atomics): a worker pays one atomic add per response.
 */
#ifndef RECEIPT_DAEMON_METRICS_H
#define RECEIPT_DAEMON_METRICS_H

#include <stdint.h>

typedef enum metrics_route {
    METRICS_ROUTE_CONTENT = 0,
    METRICS_ROUTE_JWKS,
    METRICS_ROUTE_AGENT,
    METRICS_ROUTE_PLUGIN,
    METRICS_ROUTE_CONFIRM,
    METRICS_ROUTE_LOG,      /* the evidence log's public resources */
    METRICS_ROUTE_UPSTREAM, /* requests passed to an upstream */
    METRICS_ROUTE_OTHER,
    METRICS_ROUTE_COUNT, /* number of routes, not one */
} metrics_route;

/* The status codes counted one by one; others fall into METRICS_CODE_OTHER. */
/* clang-format 14 does not settle on one layout for this list. */
/* clang-format off */
#define METRICS_CODES                                                                          \
    X(200) X(201) X(204) X(206) X(301) X(302) X(303) X(304) X(307) X(308) X(400) X(401)        \
    X(403) X(404) X(405) X(409) X(410) X(413) X(414) X(415) X(416) X(429) X(431) X(500)        \
    X(501) X(502) X(503) X(504)
/* clang-format on */

typedef enum metrics_code {
#define X(n) METRICS_CODE_##n,
    METRICS_CODES
#undef X
        METRICS_CODE_OTHER,
    METRICS_CODE_COUNT,
} metrics_code;

typedef enum metrics_confirm {
    METRICS_CONFIRM_CONFIRMED = 0,
    METRICS_CONFIRM_CORRUPTED,
    METRICS_CONFIRM_REPEATED,    /* idempotent repeat by the same client */
    METRICS_CONFIRM_CONFLICT,    /* 409: another client was first         */
    METRICS_CONFIRM_REJECTED,    /* 4xx before reaching the ledger        */
    METRICS_CONFIRM_UNAVAILABLE, /* 503                                */
    METRICS_CONFIRM_COUNT,
} metrics_confirm;

/* What became of a request's forwarding headers (proxy.h). */
typedef enum metrics_forwarded {
    METRICS_FORWARDED_USED = 0,  /* a trusted proxy named the client */
    METRICS_FORWARDED_UNTRUSTED, /* sent by a peer that is no trusted proxy: ignored */
    METRICS_FORWARDED_MALFORMED, /* a trusted proxy's value broke the grammar: ignored */
    METRICS_FORWARDED_COUNT,
} metrics_forwarded;

/* Refusals of the per-address limits other than a listener's connections
 * (those are METRICS_GUARD_PER_ADDRESS). */
typedef enum metrics_limited {
    METRICS_LIMITED_FORWARDED = 0, /* a request over the limit of a forwarded address */
    METRICS_LIMITED_COUNT,
} metrics_limited;

typedef enum metrics_listener {
    METRICS_LISTENER_PUBLIC = 0,
    METRICS_LISTENER_ADMIN,
    METRICS_LISTENER_REDIRECT, /* --redirect-http */
    METRICS_LISTENER_COUNT,
} metrics_listener;

/* What a listener's slow-client guard did to connections (http_guard.h). */
typedef enum metrics_guard {
    METRICS_GUARD_SLOW_HEADERS = 0, /* closed: headers late (--header-timeout) */
    METRICS_GUARD_SLOW_BODY,        /* closed: body below --min-body-rate */
    METRICS_GUARD_IDLE_FOR_ROOM,    /* closed idle near the connection limit */
    METRICS_GUARD_PER_ADDRESS,      /* refused at accept: its address holds the most */
    METRICS_GUARD_COUNT,
} metrics_guard;

typedef struct metrics_snapshot {
    uint64_t responses[METRICS_ROUTE_COUNT][METRICS_CODE_COUNT];
    uint64_t deliveries; /* 200s to GET of content        */
    uint64_t bindings;   /* plug-in data for a ticket      */
    uint64_t confirms[METRICS_CONFIRM_COUNT];
    uint64_t forwarded[METRICS_FORWARDED_COUNT];
    uint64_t limited[METRICS_LIMITED_COUNT];
    uint64_t guard[METRICS_LISTENER_COUNT][METRICS_GUARD_COUNT];
    uint64_t tls_reloads_ok, tls_reloads_failed;
    int64_t tls_expiry[METRICS_LISTENER_COUNT]; /* Unix seconds; 0: no TLS */
} metrics_snapshot;

void metrics_count_response(metrics_route route, unsigned status);
void metrics_count_delivery(void);
void metrics_count_binding(void);
void metrics_count_confirm(metrics_confirm kind);
void metrics_count_forwarded(metrics_forwarded outcome);
void metrics_count_limited(metrics_limited kind);
void metrics_count_guard(metrics_listener listener, metrics_guard what);
void metrics_count_tls_reload(int ok);
/* The expiry of the certificate a listener uses now. */
void metrics_set_tls_expiry(metrics_listener listener, int64_t not_after);
void metrics_snapshot_take(metrics_snapshot *out);

const char *metrics_route_name(metrics_route route);
/* The HTTP status of a code index; 0 for METRICS_CODE_OTHER. */
unsigned metrics_code_status(metrics_code code);
const char *metrics_confirm_name(metrics_confirm kind);
const char *metrics_forwarded_name(metrics_forwarded outcome);
const char *metrics_limited_name(metrics_limited kind);
const char *metrics_listener_name(metrics_listener listener);

#endif
