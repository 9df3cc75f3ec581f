#include "daemon/admin_metrics.h"

#include "daemon/metrics.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Everything /metrics reports, read once per scrape. */
typedef struct metric_values {
    metrics_snapshot m;
    writer_stats ws;
    uint64_t started_ms;
    uint64_t failing;   /* ws.failing as a number */
    uint64_t recovered; /* events applied from the recovery file at start */
    admin_auth_stats auth;
    http_guard_stats conns;
    const upstream_pool *upstreams;
} metric_values;

typedef struct metric metric;

/* Writes the samples of a metric that is not one plain number. */
typedef void (*metric_write_fn)(jbuf *b, const metric *mt, const metric_values *v);

/*
 * One metric family: a plain one is the uint64_t at offset in
 * metric_values; the others have a writer of their samples.
 */
struct metric {
    const char *name;
    const char *type; /* counter, gauge or histogram */
    const char *help;
    size_t offset;
    metric_write_fn write;
};

#define PLAIN(field) .offset = offsetof(metric_values, field)

/*
 * The histograms' buckets are not cumulative; these are. labels is "" or
 * the other labels of the samples, each followed by a comma.
 */
static void histogram(jbuf *b, const char *name, const char *labels, const char *const *le,
                      const uint64_t *counts, size_t n, const char *sum)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += counts[i];
        jbuf_addf(b, "%s_bucket{%sle=\"%s\"} %llu\n", name, labels, le[i],
                  (unsigned long long)total);
    }
    size_t braced = strlen(labels);
    if (braced == 0) {
        jbuf_addf(b, "%s_sum %s\n%s_count %llu\n", name, sum, name, (unsigned long long)total);
        return;
    }
    /* Without the trailing comma. */
    jbuf_addf(b, "%s_sum{%.*s} %s\n%s_count{%.*s} %llu\n", name, (int)braced - 1, labels, sum, name,
              (int)braced - 1, labels, (unsigned long long)total);
}

static const char *const batch_le[WRITER_BATCH_BUCKETS] = {"1",   "4",    "16",   "64",
                                                           "256", "1024", "4096", "+Inf"};
static const char *const latency_le[WRITER_LATENCY_BUCKETS] = {
    "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"};

static void write_info(jbuf *b, const metric *mt, const metric_values *v)
{
    jbuf_addf(b, "%s{version=\"%s\"} 1\n", mt->name, RECEIPT_VERSION);
}

static void write_refused(jbuf *b, const metric *mt, const metric_values *v)
{
    static const char *const reasons[WRITER_RESULT_COUNT] = {
        [WRITER_QUEUE_FULL] = "queue_full",
        [WRITER_FAILING] = "ledger_failing",
        [WRITER_STOPPING] = "stopping",
    };
    for (int r = WRITER_QUEUE_FULL; r < WRITER_RESULT_COUNT; r++)
        jbuf_addf(b, "%s{reason=\"%s\"} %llu\n", mt->name, reasons[r],
                  (unsigned long long)v->ws.refused[r]);
}

/* Every listener, even one not started: a series that exists from the
 * start needs no special case in an alert on its increase. */
static void write_closed(jbuf *b, const metric *mt, const metric_values *v)
{
    static const struct {
        metrics_guard what;
        const char *reason;
    } reasons[] = {
        {METRICS_GUARD_SLOW_HEADERS, "slow_headers"},
        {METRICS_GUARD_SLOW_BODY, "slow_body"},
        {METRICS_GUARD_IDLE_FOR_ROOM, "idle_for_room"},
    };
    for (int l = 0; l < METRICS_LISTENER_COUNT; l++)
        for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
            jbuf_addf(b, "%s{listener=\"%s\",reason=\"%s\"} %llu\n", mt->name,
                      metrics_listener_name((metrics_listener)l), reasons[i].reason,
                      (unsigned long long)v->m.guard[l][reasons[i].what]);
}

static void write_start_time(jbuf *b, const metric *mt, const metric_values *v)
{
    jbuf_addf(b, "%s %.3f\n", mt->name, (double)v->started_ms / 1000.0);
}

static void write_confirmations(jbuf *b, const metric *mt, const metric_values *v)
{
    for (int k = 0; k < METRICS_CONFIRM_COUNT; k++)
        jbuf_addf(b, "%s{status=\"%s\"} %llu\n", mt->name, metrics_confirm_name((metrics_confirm)k),
                  (unsigned long long)v->m.confirms[k]);
}

static void write_batch_sizes(jbuf *b, const metric *mt, const metric_values *v)
{
    char sum[32];
    snprintf(sum, sizeof sum, "%llu", (unsigned long long)v->ws.batch_sum);
    histogram(b, mt->name, "", batch_le, v->ws.batch_count, WRITER_BATCH_BUCKETS, sum);
}

static void write_commit_seconds(jbuf *b, const metric *mt, const metric_values *v)
{
    char sum[64];
    snprintf(sum, sizeof sum, "%.6f", v->ws.latency_sum_ms / 1000.0);
    histogram(b, mt->name, "", latency_le, v->ws.latency_count, WRITER_LATENCY_BUCKETS, sum);
}

static void write_issue_lag_seconds(jbuf *b, const metric *mt, const metric_values *v)
{
    char sum[64];
    snprintf(sum, sizeof sum, "%.6f", v->ws.issue_lag_sum_ms / 1000.0);
    histogram(b, mt->name, "", latency_le, v->ws.issue_lag_count, WRITER_LATENCY_BUCKETS, sum);
}

static void write_forwarded(jbuf *b, const metric *mt, const metric_values *v)
{
    for (int k = 0; k < METRICS_FORWARDED_COUNT; k++)
        jbuf_addf(b, "%s{outcome=\"%s\"} %llu\n", mt->name,
                  metrics_forwarded_name((metrics_forwarded)k),
                  (unsigned long long)v->m.forwarded[k]);
}

static void write_limited(jbuf *b, const metric *mt, const metric_values *v)
{
    for (int l = 0; l < METRICS_LISTENER_COUNT; l++)
        jbuf_addf(b, "%s{listener=\"%s\",kind=\"connection\"} %llu\n", mt->name,
                  metrics_listener_name((metrics_listener)l),
                  (unsigned long long)v->m.guard[l][METRICS_GUARD_PER_ADDRESS]);
    /* Forwarded addresses are the public listener's only. */
    for (int k = 0; k < METRICS_LIMITED_COUNT; k++)
        jbuf_addf(b, "%s{listener=\"public\",kind=\"%s\"} %llu\n", mt->name,
                  metrics_limited_name((metrics_limited)k), (unsigned long long)v->m.limited[k]);
}

static void write_tls_reloads(jbuf *b, const metric *mt, const metric_values *v)
{
    jbuf_addf(b, "%s{result=\"loaded\"} %llu\n%s{result=\"failed\"} %llu\n", mt->name,
              (unsigned long long)v->m.tls_reloads_ok, mt->name,
              (unsigned long long)v->m.tls_reloads_failed);
}

/* Only the listeners that speak TLS. */
static void write_tls_expiry(jbuf *b, const metric *mt, const metric_values *v)
{
    for (int k = 0; k < METRICS_LISTENER_COUNT; k++)
        if (v->m.tls_expiry[k] != 0)
            jbuf_addf(b, "%s{listener=\"%s\"} %lld\n", mt->name,
                      metrics_listener_name((metrics_listener)k), (long long)v->m.tls_expiry[k]);
}

/* Only the route and code pairs that happened. */
static void write_responses(jbuf *b, const metric *mt, const metric_values *v)
{
    for (int r = 0; r < METRICS_ROUTE_COUNT; r++) {
        for (int k = 0; k < METRICS_CODE_COUNT; k++) {
            if (v->m.responses[r][k] == 0)
                continue;
            unsigned status = metrics_code_status((metrics_code)k);
            char code[16];
            if (status == 0)
                snprintf(code, sizeof code, "other");
            else
                snprintf(code, sizeof code, "%u", status);
            jbuf_addf(b, "%s{route=\"%s\",code=\"%s\"} %llu\n", mt->name,
                      metrics_route_name((metrics_route)r), code,
                      (unsigned long long)v->m.responses[r][k]);
        }
    }
}

/* ---- upstreams --------------------------------------------------------------- */

static uint64_t relaxed(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void write_upstream_responses(jbuf *b, const metric *mt, const metric_values *v)
{
    for (size_t i = 0; i < upstream_pool_route_count(v->upstreams); i++) {
        const upstream_route *r = upstream_pool_route_at(v->upstreams, i);
        for (unsigned code = 100; code < 600; code++) {
            uint64_t n = relaxed(&r->stats.responses[code]);
            if (n > 0)
                jbuf_addf(b, "%s{prefix=\"%s\",code=\"%u\"} %llu\n", mt->name, r->prefix, code,
                          (unsigned long long)n);
        }
    }
}

static void write_upstream_failures(jbuf *b, const metric *mt, const metric_values *v)
{
    for (size_t i = 0; i < upstream_pool_route_count(v->upstreams); i++) {
        const upstream_route *r = upstream_pool_route_at(v->upstreams, i);
        for (int f = UPSTREAM_FAIL_CONNECT; f <= UPSTREAM_FAIL_INTERNAL; f++)
            jbuf_addf(b, "%s{prefix=\"%s\",reason=\"%s\"} %llu\n", mt->name, r->prefix,
                      upstream_failure_name((upstream_failure)f),
                      (unsigned long long)relaxed(&r->stats.failures[f]));
    }
}

static void write_upstream_latency(jbuf *b, const metric *mt, const metric_values *v)
{
    for (size_t i = 0; i < upstream_pool_route_count(v->upstreams); i++) {
        const upstream_route *r = upstream_pool_route_at(v->upstreams, i);
        uint64_t counts[UPSTREAM_LATENCY_BUCKETS];
        for (size_t k = 0; k < UPSTREAM_LATENCY_BUCKETS; k++)
            counts[k] = relaxed(&r->stats.latency[k]);
        char labels[UPSTREAM_URL_MAX + 16];
        char sum[64];
        snprintf(labels, sizeof labels, "prefix=\"%s\",", r->prefix);
        snprintf(sum, sizeof sum, "%.6f", (double)relaxed(&r->stats.latency_sum_us) / 1e6);
        histogram(b, mt->name, labels, upstream_latency_le, counts, UPSTREAM_LATENCY_BUCKETS, sum);
    }
}

static const metric metrics_table[] = {
    {"receiptd_info", "gauge", "Version of this receiptd.", .write = write_info},
    {"receiptd_start_time_seconds", "gauge", "Unix time receiptd started at.",
     .write = write_start_time},
    {"receiptd_deliveries_total", "counter", "Deliveries issued (200 responses to GET of content).",
     PLAIN(m.deliveries)},
    {"receiptd_bindings_total", "counter", "Tickets traded for plug-in data bound to a client.",
     PLAIN(m.bindings)},
    {"receiptd_confirmations_total", "counter", "Confirmations answered, by outcome.",
     .write = write_confirmations},
    {"receiptd_ledger_queue_depth", "gauge", "Ledger events waiting for the writer.",
     PLAIN(ws.queued)},
    {"receiptd_ledger_queue_capacity", "gauge", "Ledger events the queue holds.",
     PLAIN(ws.capacity)},
    {"receiptd_ledger_retrying", "gauge", "Ledger events held for a retry after a failed commit.",
     PLAIN(ws.retrying)},
    {"receiptd_ledger_events_committed_total", "counter", "Ledger events committed.",
     PLAIN(ws.committed)},
    {"receiptd_ledger_events_failed_total", "counter", "Ledger events that finished uncommitted.",
     PLAIN(ws.failed)},
    {"receiptd_ledger_events_rejected_total", "counter",
     "Ledger events refused (answered 503), every reason.", PLAIN(ws.rejected)},
    {"receiptd_ledger_refused_total", "counter", "Ledger events refused (answered 503), by reason.",
     .write = write_refused},
    {"receiptd_ledger_failed_commits_total", "counter", "Ledger batches whose commit failed.",
     PLAIN(ws.failed_commits)},
    {"receiptd_ledger_failing", "gauge",
     "1 while the last ledger commit failed: deliveries and confirmations get 503.",
     PLAIN(failing)},
    {"receiptd_ledger_recovery_reserved_bytes", "gauge",
     "Disk space reserved for the recovery file.", PLAIN(ws.recovery_reserved)},
    {"receiptd_ledger_recovery_applied_events", "gauge",
     "Ledger events applied from the recovery file at start.", PLAIN(recovered)},
    {"receiptd_ledger_recovery_saved_events_total", "counter",
     "Ledger events saved to the recovery file because the ledger could not take them.",
     PLAIN(ws.saved)},
    {"receiptd_ledger_events_lost_total", "counter",
     "Ledger events neither committed nor saved to the recovery file.", PLAIN(ws.lost)},
    {"receiptd_ledger_batch_size", "histogram", "Events per committed ledger batch.",
     .write = write_batch_sizes},
    {"receiptd_ledger_commit_seconds", "histogram",
     "Time from begin to durable commit of a ledger batch.", .write = write_commit_seconds},
    {"receiptd_ledger_issue_lag_seconds", "histogram",
     "Time from a delivery to the durable commit of its ledger row.",
     .write = write_issue_lag_seconds},
    {"receiptd_http_connections_open", "gauge", "Connections open on the public listener.",
     PLAIN(conns.open)},
    {"receiptd_http_connections_closed_total", "counter",
     "Connections a listener closed, by listener: headers late, body too slow, idle to make "
     "room.",
     .write = write_closed},
    {"receiptd_admin_auth_failures_total", "counter",
     "Wrong admin tokens presented to the admin API.", PLAIN(auth.failures)},
    {"receiptd_admin_auth_throttled_total", "counter",
     "Admin API requests answered 429: their address is locked out after wrong tokens.",
     PLAIN(auth.throttled)},
    {"receiptd_admin_auth_addresses", "gauge",
     "Addresses with recent wrong admin tokens (at most 1024 are tracked).", PLAIN(auth.tracked)},
    {"receiptd_http_responses_total", "counter",
     "Responses of the public listener, by route and status code.", .write = write_responses},
    {"receiptd_forwarded_headers_total", "counter",
     "Requests with Forwarded or X-Forwarded-* headers, by what became of them.",
     .write = write_forwarded},
    {"receiptd_per_address_limited_total", "counter",
     "Connections (by listener) and forwarded requests refused by the per-address limits.",
     .write = write_limited},
    {"receiptd_tls_reloads_total", "counter",
     "Certificate pairs read again on SIGHUP, by whether they loaded.", .write = write_tls_reloads},
    {"receiptd_tls_certificate_expiry_timestamp_seconds", "gauge",
     "When the certificate a TLS listener uses expires (Unix time).", .write = write_tls_expiry},
    {"receiptd_upstream_responses_total", "counter",
     "Answers of the upstreams, by the upstream's prefix and status code.",
     .write = write_upstream_responses},
    {"receiptd_upstream_failures_total", "counter",
     "Requests an upstream failed (answered 502, 504 or 500), by prefix and reason.",
     .write = write_upstream_failures},
    {"receiptd_upstream_latency_seconds", "histogram",
     "Time from sending a request to an upstream to the answer's header fields, by prefix.",
     .write = write_upstream_latency},
};

void admin_metrics_write(jbuf *b, writer *ledger_writer, uint64_t started_ms, uint64_t recovered,
                         const admin_auth_stats *auth, const http_guard_stats *conns,
                         const upstream_pool *upstreams)
{
    metric_values v;
    metrics_snapshot_take(&v.m);
    writer_get_stats(ledger_writer, &v.ws);
    v.started_ms = started_ms;
    v.failing = v.ws.failing ? 1 : 0;
    v.recovered = recovered;
    v.auth = *auth;
    v.conns = *conns;
    v.upstreams = upstreams;
    for (size_t i = 0; i < sizeof metrics_table / sizeof metrics_table[0]; i++) {
        const metric *mt = &metrics_table[i];
        jbuf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", mt->name, mt->help, mt->name, mt->type);
        if (mt->write != NULL) {
            mt->write(b, mt, &v);
        } else {
            uint64_t value;
            memcpy(&value, (const char *)&v + mt->offset, sizeof value);
            jbuf_addf(b, "%s %llu\n", mt->name, (unsigned long long)value);
        }
    }
}
