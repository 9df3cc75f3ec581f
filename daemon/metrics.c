#include "daemon/metrics.h"

#include <stdatomic.h>

static _Atomic uint64_t responses[METRICS_ROUTE_COUNT][METRICS_CODE_COUNT];
static _Atomic uint64_t deliveries;
static _Atomic uint64_t bindings;
static _Atomic uint64_t confirms[METRICS_CONFIRM_COUNT];

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

void metrics_snapshot_take(metrics_snapshot *out)
{
    for (int r = 0; r < METRICS_ROUTE_COUNT; r++)
        for (int c = 0; c < METRICS_CODE_COUNT; c++)
            out->responses[r][c] = atomic_load_explicit(&responses[r][c], memory_order_relaxed);
    out->deliveries = atomic_load_explicit(&deliveries, memory_order_relaxed);
    out->bindings = atomic_load_explicit(&bindings, memory_order_relaxed);
    for (int k = 0; k < METRICS_CONFIRM_COUNT; k++)
        out->confirms[k] = atomic_load_explicit(&confirms[k], memory_order_relaxed);
}

const char *metrics_route_name(metrics_route route)
{
    static const char *const names[METRICS_ROUTE_COUNT] = {
        "content", "jwks", "agent", "plugin", "confirm", "other",
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
