#include "daemon/http_guard.h"

#include "daemon/addrcount.h"
#include "daemon/clock.h"
#include "daemon/log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

typedef enum conn_phase {
    PHASE_HEADERS = 0, /* reading a request's headers (or waiting for its line) */
    PHASE_BODY,        /* reading a body                                        */
    PHASE_ANSWER,      /* answering: no deadline                                */
    PHASE_IDLE,        /* between requests                                      */
} conn_phase;

struct http_guard_conn {
    http_guard *guard;
    http_guard_conn *prev, *next; /* the guard's list, oldest first; under lock */
    int fd;
    unsigned worker;
    uint8_t peer[16];
    bool counted;              /* it counts in the guard's peers */
    bool closing;              /* shut down by the watchdog; under lock */
    _Atomic uint64_t deadline; /* monotonic ms; 0: none */
    _Atomic int phase;
    _Atomic uint64_t idle_since;
    /* The connection's worker thread only. */
    uint64_t body_start;
    uint64_t body_bytes;
};

struct http_guard {
    http_guard_options opts;
    unsigned high;            /* a worker's connections past this: make room  */
    unsigned low;             /* ... down to this                              */
    addrcount *peers;         /* with a per-address limit */
    _Atomic uint64_t refused; /* by http_guard_admits(), on the accepting threads */

    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* Guarded by lock. */
    http_guard_conn *head, *tail;
    unsigned count[HTTP_GUARD_WORKERS];
    pthread_t workers[HTTP_GUARD_WORKERS];
    unsigned nworkers;
    bool stopping;
    http_guard_stats stats;

    /* The watchdog's own. */
    pthread_t thread;
    http_guard_stats reported;
    uint64_t reported_ms;
};

/* ---- the worker threads' side ---- */

static unsigned worker_index(http_guard *g)
{
    pthread_t self = pthread_self();
    for (unsigned i = 0; i < g->nworkers; i++)
        if (pthread_equal(g->workers[i], self))
            return i;
    if (g->nworkers == HTTP_GUARD_WORKERS)
        return HTTP_GUARD_WORKERS - 1; /* more threads than expected: shared */
    g->workers[g->nworkers] = self;
    return g->nworkers++;
}

/* The peer of a connection that the per-address limit applies to. */
static bool limited_peer(const http_guard *g, const struct sockaddr *sa, uint8_t peer[16])
{
    return g->peers != NULL && sa != NULL && proxy_addr_from_sockaddr(sa, peer) == 0 &&
           (g->opts.exempt == NULL || !proxy_set_contains(g->opts.exempt, peer));
}

bool http_guard_admits(http_guard *g, const struct sockaddr *addr)
{
    uint8_t peer[16];
    if (!limited_peer(g, addr, peer) || addrcount_get(g->peers, peer) < g->opts.per_address)
        return true;
    atomic_fetch_add_explicit(&g->refused, 1, memory_order_relaxed);
    metrics_count_guard(g->opts.listener, METRICS_GUARD_PER_ADDRESS);
    return false;
}

void http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode code)
{
    http_guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        http_guard_conn *gc = calloc(1, sizeof *gc);
        if (gc == NULL || info == NULL) {
            free(gc);
            *socket_context = NULL; /* untracked: the idle timeout still holds */
            return;
        }
        gc->guard = g;
        gc->fd = info->connect_fd;
        info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (info != NULL && limited_peer(g, info->client_addr, gc->peer))
            gc->counted = addrcount_take(g->peers, gc->peer, UINT_MAX);
        atomic_init(&gc->phase, PHASE_HEADERS);
        atomic_init(&gc->deadline, clock_mono_ms() + g->opts.header_timeout_ms);
        atomic_init(&gc->idle_since, 0);
        pthread_mutex_lock(&g->lock);
        gc->worker = worker_index(g);
        g->count[gc->worker]++;
        g->stats.open++;
        gc->prev = g->tail;
        if (g->tail != NULL)
            g->tail->next = gc;
        else
            g->head = gc;
        g->tail = gc;
        pthread_mutex_unlock(&g->lock);
        *socket_context = gc;
        return;
    }
    /* Closed: called before the library closes the socket. */
    http_guard_conn *gc = *socket_context;
    if (gc == NULL)
        return;
    pthread_mutex_lock(&g->lock);
    if (gc->prev != NULL)
        gc->prev->next = gc->next;
    else
        g->head = gc->next;
    if (gc->next != NULL)
        gc->next->prev = gc->prev;
    else
        g->tail = gc->prev;
    g->count[gc->worker]--;
    g->stats.open--;
    pthread_mutex_unlock(&g->lock);
    if (gc->counted)
        addrcount_give_back(g->peers, gc->peer);
    free(gc);
    *socket_context = NULL;
}

static void set(http_guard_conn *gc, conn_phase phase, uint64_t deadline)
{
    atomic_store_explicit(&gc->deadline, deadline, memory_order_relaxed);
    atomic_store_explicit(&gc->phase, phase, memory_order_relaxed);
}

void http_guard_request_line(http_guard_conn *gc)
{
    if (gc == NULL)
        return;
    /* A later request of the connection: its own deadline from now. The
     * first keeps the one of the connection's start, which is earlier. */
    if (atomic_load_explicit(&gc->phase, memory_order_relaxed) == PHASE_IDLE)
        set(gc, PHASE_HEADERS, clock_mono_ms() + gc->guard->opts.header_timeout_ms);
}

void http_guard_headers_done(http_guard_conn *gc, bool has_body)
{
    if (gc == NULL)
        return;
    if (!has_body || gc->guard->opts.min_body_rate == 0) {
        set(gc, PHASE_ANSWER, 0);
        return;
    }
    gc->body_start = clock_mono_ms();
    gc->body_bytes = 0;
    set(gc, PHASE_BODY, gc->body_start + gc->guard->opts.header_timeout_ms);
}

void http_guard_body(http_guard_conn *gc, size_t n)
{
    if (gc == NULL || atomic_load_explicit(&gc->phase, memory_order_relaxed) != PHASE_BODY)
        return;
    const http_guard_options *o = &gc->guard->opts;
    gc->body_bytes += n;
    uint64_t earned = gc->body_bytes * 1000 / o->min_body_rate;
    set(gc, PHASE_BODY, gc->body_start + o->header_timeout_ms + earned);
}

void http_guard_body_done(http_guard_conn *gc)
{
    if (gc != NULL && atomic_load_explicit(&gc->phase, memory_order_relaxed) == PHASE_BODY)
        set(gc, PHASE_ANSWER, 0);
}

void http_guard_request_done(http_guard_conn *gc)
{
    if (gc == NULL)
        return;
    const http_guard_options *o = &gc->guard->opts;
    uint64_t now = clock_mono_ms();
    atomic_store_explicit(&gc->idle_since, now, memory_order_relaxed);
    /* An idle connection is the library's to time out; one that trickles a
     * request line resets that timeout with every byte: this bounds it. */
    set(gc, PHASE_IDLE, now + o->idle_timeout_ms + o->header_timeout_ms);
}

/* ---- the watchdog ---- */

/* Caller holds lock. Shuts the connection's socket down: its worker closes it. */
static void close_conn(http_guard *g, http_guard_conn *gc)
{
    gc->closing = true;
    if (shutdown(gc->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
        log_debug("http guard: shutdown: %s", strerror(errno));
    (void)g;
}

/* Caller holds lock. */
static void sweep(http_guard *g, uint64_t now)
{
    unsigned closing[HTTP_GUARD_WORKERS] = {0};
    for (http_guard_conn *gc = g->head; gc != NULL; gc = gc->next) {
        if (gc->closing) {
            closing[gc->worker]++;
            continue;
        }
        uint64_t deadline = atomic_load_explicit(&gc->deadline, memory_order_relaxed);
        if (deadline == 0 || now < deadline)
            continue;
        int phase = atomic_load_explicit(&gc->phase, memory_order_relaxed);
        if (phase == PHASE_BODY) {
            g->stats.slow_bodies++;
            metrics_count_guard(g->opts.listener, METRICS_GUARD_SLOW_BODY);
        } else {
            g->stats.slow_headers++;
            metrics_count_guard(g->opts.listener, METRICS_GUARD_SLOW_HEADERS);
        }
        close_conn(g, gc);
        closing[gc->worker]++;
    }
    /* Room for new clients: idle keep-alive connections go first, oldest
     * first, in a worker close to its share of the limit. */
    for (unsigned w = 0; w < g->nworkers; w++) {
        if (g->count[w] - closing[w] <= g->high)
            continue;
        unsigned excess = g->count[w] - closing[w] - g->low;
        for (http_guard_conn *gc = g->head; gc != NULL && excess > 0; gc = gc->next) {
            if (gc->worker != w || gc->closing ||
                atomic_load_explicit(&gc->phase, memory_order_relaxed) != PHASE_IDLE)
                continue;
            g->stats.idle_closed++;
            metrics_count_guard(g->opts.listener, METRICS_GUARD_IDLE_FOR_ROOM);
            close_conn(g, gc);
            excess--;
        }
    }
}

static void report(http_guard *g, uint64_t now)
{
    if (now - g->reported_ms < HTTP_GUARD_REPORT_MS)
        return;
    http_guard_stats s;
    http_guard_get_stats(g, &s);
    uint64_t headers = s.slow_headers - g->reported.slow_headers;
    uint64_t bodies = s.slow_bodies - g->reported.slow_bodies;
    uint64_t idle = s.idle_closed - g->reported.idle_closed;
    uint64_t refused = s.refused - g->reported.refused;
    if (headers + bodies + idle + refused == 0)
        return;
    log_warn("%s: closed %llu connections with late headers, %llu with too slow a body, "
             "%llu idle ones to make room, and refused %llu over the per-address limit (%u), "
             "since the last report (%llu open)",
             g->opts.name, (unsigned long long)headers, (unsigned long long)bodies,
             (unsigned long long)idle, (unsigned long long)refused, g->opts.per_address,
             (unsigned long long)s.open);
    g->reported = s;
    g->reported_ms = now;
}

static void *watchdog(void *arg)
{
    http_guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += HTTP_GUARD_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->wake, &g->lock, &until);
        if (g->stopping)
            break;
        uint64_t now = clock_mono_ms();
        sweep(g, now);
        pthread_mutex_unlock(&g->lock);
        report(g, now);
        pthread_mutex_lock(&g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

http_guard *http_guard_new(const http_guard_options *opts)
{
    http_guard *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->opts = *opts;
    atomic_init(&g->refused, 0);
    if (g->opts.name == NULL)
        g->opts.name = "http";
    if (opts->per_address > 0) {
        /* One entry per connection at most. */
        g->peers = addrcount_new(opts->max_connections);
        if (g->peers == NULL) {
            free(g);
            return NULL;
        }
    }
    unsigned threads = opts->threads > 0 ? opts->threads : 1;
    unsigned share = opts->max_connections / threads;
    unsigned margin = share / 10 > 0 ? share / 10 : 1;
    g->high = share > margin ? share - margin : 0;
    g->low = g->high > margin / 2 ? g->high - margin / 2 : 0;
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g->wake, &attr);
    pthread_condattr_destroy(&attr);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&g->thread, NULL, watchdog, g);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->lock);
        addrcount_free(g->peers);
        free(g);
        return NULL;
    }
    return g;
}

void http_guard_free(http_guard *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&g->lock);
    g->stopping = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    /* The library closed every connection, each notified: nothing is left. */
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    addrcount_free(g->peers);
    free(g);
}

void http_guard_get_stats(http_guard *g, http_guard_stats *out)
{
    pthread_mutex_lock(&g->lock);
    *out = g->stats;
    pthread_mutex_unlock(&g->lock);
    out->refused = atomic_load_explicit(&g->refused, memory_order_relaxed);
}
