#include "daemon/metrics.h"

#include <stdatomic.h>

static _Atomic uint64_t responses[METRICS_ROUTE_COUNT][METRICS_CODE_COUNT];
static _Atomic uint64_t deliveries;
static _Atomic uint64_t bindings;
static _Atomic uint64_t confirms[METRICS_CONFIRM_COUNT];
static _Atomic uint64_t forwarded[METRICS_FORWARDED_COUNT];
static _Atomic uint64_t limited[METRICS_LIMITED_COUNT];
static _Atomic uint64_t guard[METRICS_LISTENER_COUNT][METRICS_GUARD_COUNT];
static _Atomic uint64_t tls_reloads_ok, tls_reloads_failed;
static _Atomic int64_t tls_expiry[METRICS_LISTENER_COUNT];

static metrics_code code_of(unsigned status)
{
    switch (status) {
#define X(n)                                                                                       \
    case n:                                                                                        \
        return METRICS_CODE_##n;
        METRICS_CODES
#undef X
    default:
        return METRICS_CODE_OTHER;
    }
}

void metrics_count_response(metrics_route route, unsigned status)
{
    if ((unsigned)route >= METRICS_ROUTE_COUNT)
        route = METRICS_ROUTE_OTHER;
    atomic_fetch_add_explicit(&responses[route][code_of(status)], 1, memory_order_relaxed);
}

void metrics_count_delivery(void)
{
    atomic_fetch_add_explicit(&deliveries, 1, memory_order_relaxed);
}

void metrics_count_binding(void)
{
    atomic_fetch_add_explicit(&bindings, 1, memory_order_relaxed);
}

void metrics_count_confirm(metrics_confirm kind)
{
    if ((unsigned)kind < METRICS_CONFIRM_COUNT)
        atomic_fetch_add_explicit(&confirms[kind], 1, memory_order_relaxed);
}

void metrics_count_forwarded(metrics_forwarded outcome)
{
    if ((unsigned)outcome < METRICS_FORWARDED_COUNT)
        atomic_fetch_add_explicit(&forwarded[outcome], 1, memory_order_relaxed);
}

void metrics_count_limited(metrics_limited kind)
{
    if ((unsigned)kind < METRICS_LIMITED_COUNT)
        atomic_fetch_add_explicit(&limited[kind], 1, memory_order_relaxed);
}

void metrics_count_guard(metrics_listener listener, metrics_guard what)
{
    if ((unsigned)listener < METRICS_LISTENER_COUNT && (unsigned)what < METRICS_GUARD_COUNT)
        atomic_fetch_add_explicit(&guard[listener][what], 1, memory_order_relaxed);
}

void metrics_count_tls_reload(int ok)
{
    atomic_fetch_add_explicit(ok ? &tls_reloads_ok : &tls_reloads_failed, 1, memory_order_relaxed);
}

void metrics_set_tls_expiry(metrics_listener listener, int64_t not_after)
{
    if ((unsigned)listener < METRICS_LISTENER_COUNT)
        atomic_store_explicit(&tls_expiry[listener], not_after, memory_order_relaxed);
}

void metrics_snapshot_take(metrics_snapshot *out)
{
    for (int r = 0; r < METRICS_ROUTE_COUNT; r++)
        for (int c = 0; c < METRICS_CODE_COUNT; c++)
            out->responses[r][c] = atomic_load_explicit(&responses[r][c], memory_order_relaxed);
    out->deliveries = atomic_load_explicit(&deliveries, memory_order_relaxed);
    out->bindings = atomic_load_explicit(&bindings, memory_order_relaxed);
    for (int k = 0; k < METRICS_CONFIRM_COUNT; k++)
        out->confirms[k] = atomic_load_explicit(&confirms[k], memory_order_relaxed);
    for (int k = 0; k < METRICS_FORWARDED_COUNT; k++)
        out->forwarded[k] = atomic_load_explicit(&forwarded[k], memory_order_relaxed);
    for (int k = 0; k < METRICS_LIMITED_COUNT; k++)
        out->limited[k] = atomic_load_explicit(&limited[k], memory_order_relaxed);
    for (int l = 0; l < METRICS_LISTENER_COUNT; l++)
        for (int k = 0; k < METRICS_GUARD_COUNT; k++)
            out->guard[l][k] = atomic_load_explicit(&guard[l][k], memory_order_relaxed);
    out->tls_reloads_ok = atomic_load_explicit(&tls_reloads_ok, memory_order_relaxed);
    out->tls_reloads_failed = atomic_load_explicit(&tls_reloads_failed, memory_order_relaxed);
    for (int k = 0; k < METRICS_LISTENER_COUNT; k++)
        out->tls_expiry[k] = atomic_load_explicit(&tls_expiry[k], memory_order_relaxed);
}

const char *metrics_route_name(metrics_route route)
{
    static const char *const names[METRICS_ROUTE_COUNT] = {
        "content", "jwks", "agent", "plugin", "confirm", "log", "upstream", "other",
    };
    return (unsigned)route < METRICS_ROUTE_COUNT ? names[route] : "other";
}

unsigned metrics_code_status(metrics_code code)
{
    static const unsigned statuses[METRICS_CODE_COUNT] = {
#define X(n) n,
        METRICS_CODES
#undef X
        0,
    };
    return (unsigned)code < METRICS_CODE_COUNT ? statuses[code] : 0;
}

const char *metrics_confirm_name(metrics_confirm kind)
{
    static const char *const names[METRICS_CONFIRM_COUNT] = {
        "confirmed", "corrupted", "repeated", "conflict", "rejected", "unavailable",
    };
    return (unsigned)kind < METRICS_CONFIRM_COUNT ? names[kind] : "unknown";
}

const char *metrics_forwarded_name(metrics_forwarded outcome)
{
    static const char *const names[METRICS_FORWARDED_COUNT] = {"used", "untrusted", "malformed"};
    return (unsigned)outcome < METRICS_FORWARDED_COUNT ? names[outcome] : "unknown";
}

const char *metrics_limited_name(metrics_limited kind)
{
    static const char *const names[METRICS_LIMITED_COUNT] = {"forwarded_request"};
    return (unsigned)kind < METRICS_LIMITED_COUNT ? names[kind] : "unknown";
}

const char *metrics_listener_name(metrics_listener listener)
{
    static const char *const names[METRICS_LISTENER_COUNT] = {"public", "admin", "redirect"};
    return (unsigned)listener < METRICS_LISTENER_COUNT ? names[listener] : "unknown";
}
