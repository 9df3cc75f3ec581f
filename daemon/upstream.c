#include "daemon/upstream.h"

#include "daemon/clock.h"
#include "daemon/log.h"
#include "daemon/lru.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define UPSTREAM_TICK_MS      250 /* timeouts are checked this often */
#define UPSTREAM_IDLE_HANDLES 64  /* easy handles a thread keeps for reuse */
#define UPSTREAM_WHOLE_FIRST  (16 * 1024)
#define UPSTREAM_LOG_INTERVAL 1000
#define UPSTREAM_ABORT_WAIT_S 5 /* a thread stuck longer than this in libcurl is not waited for */
#define UPSTREAM_METHOD_MAX   16
#define UPSTREAM_EVENTS       64          /* epoll events taken at once */
#define UPSTREAM_NO_TIMER     UINT64_MAX  /* libcurl wants no timeout */
#define UPSTREAM_SPARE_BYTES  (16 * 1024) /* a spare call keeps buffers up to this each */
#define UPSTREAM_LINES_FIRST  1024        /* a call's URL and request header lines */

/* What a worker asks of a pool thread. */
#define CMD_START       1u
#define CMD_RESUME_RECV 2u
#define CMD_RESUME_SEND 4u
#define CMD_CANCEL      8u

const char *const upstream_latency_le[UPSTREAM_LATENCY_BUCKETS] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"};
static const uint64_t latency_bound_us[UPSTREAM_LATENCY_BUCKETS - 1] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

/* A byte ring of fixed capacity, allocated on first use. */
typedef struct ring {
    char *buf;
    size_t head, len;
} ring;

/* An easy handle kept for the next transfer. One that did a plain GET keeps
 * its options (set_common()); any other is reset first. */
typedef struct idle_easy {
    CURL *easy;
    bool configured;
} idle_easy;

typedef struct upstream_thread {
    upstream_pool *pool;
    pthread_t thread;
    bool started;
    CURLM *multi;
    CURLSH *share;        /* TLS sessions and DNS, for this thread's handles only */
    int epoll_fd;         /* the transfers' sockets and wake_fd */
    int wake_fd;          /* eventfd: commands are queued, or an abort or stop is asked */
    pthread_mutex_t lock; /* the command queue and the fields below */
    pthread_cond_t aborted;
    upstream_call *queue_head, *queue_tail;
    bool sleeping; /* in epoll_wait, or about to be, with the queue empty */
    bool stopping;
    unsigned long aborts_asked, aborts_done; /* upstream_pool_abort() waits for done */
    /* the thread's own */
    uint64_t now_ms;       /* the clock when the thread last woke: what calls are stamped with */
    uint64_t timer_due_ms; /* when libcurl wants its timeout action */
    lru_list active;       /* calls whose transfer runs */
    idle_easy idle[UPSTREAM_IDLE_HANDLES];
    size_t idle_count;
} upstream_thread;

struct upstream_pool {
    const config *cfg;
    upstream_route routes[CONFIG_UPSTREAMS_MAX]; /* longest prefix first */
    size_t route_count;
    upstream_thread threads[UPSTREAM_THREADS_MAX];
    unsigned thread_count;
    atomic_uint next_thread;
    atomic_bool stopping;
    EVP_MD *sha256;
    uint64_t timeout_ms;
    pthread_mutex_t spare_lock;
    upstream_call *spare; /* finished calls, kept with their buffers */
    size_t spare_count;
};

struct upstream_call {
    /* Kept when the call is recycled (call_recycle()). */
    pthread_mutex_t lock;
    upstream_call *next_spare;
    char *lines; /* the URL, then the request's header lines, each NUL-ended */
    size_t lines_len, lines_cap;
    size_t *line_at; /* where each header line starts in lines */
    size_t line_count, line_cap;
    struct curl_slist *line_nodes; /* HTTPHEADER: made from line_at at the start */
    size_t nodes_cap;
    upstream_header_list headers;    /* the answer's; memory kept, pairs forgotten */
    EVP_MD_CTX *md;                  /* hashes a body that goes to a file */
    CURLU *url;                      /* the URL as libcurl's handle (set_url()) */
    const upstream_route *url_route; /* whose scheme, host and port url holds */

    /* Everything from here on is zeroed for each call. */
    atomic_int refs;
    upstream_pool *pool;
    upstream_thread *thread;
    upstream_route *route;

    /* Set before the start; read-only afterwards. */
    char method[UPSTREAM_METHOD_MAX];
    int64_t body_length;
    size_t slack; /* room kept after a body read whole into memory */
    bool has_body;
    bool want_whole;
    bool head;

    /* The pool thread's alone. */
    CURL *easy;
    lru_link link; /* in thread->active while in the multi handle */
    bool in_multi;
    int paused;            /* CURLPAUSE_RECV | CURLPAUSE_SEND, as the callbacks left it */
    unsigned status_seen;  /* the last status line, 1xx included */
    upstream_failure hint; /* why a callback stopped the transfer */
    uint64_t started_ms;
    _Atomic uint64_t active_ms;  /* the last time bytes moved, or a pause ended */
    char error[CURL_ERROR_SIZE]; /* libcurl's words for a failure */
    char why[128];               /* ours, when a callback stopped the transfer */
    /* reading whole */
    char *mem;
    size_t mem_len, mem_cap; /* mem_cap: without the slack */
    int fd;
    uint64_t whole_len;
    uint8_t digest[32];

    /* Written by the pool thread until answered, then read-only. */
    unsigned status;
    int64_t content_length;
    bool whole;
    bool fits;  /* streamed, but all of it fits the buffer: the worker waits for DONE */
    bool small; /* such an answer with a body: read into mem, not the ring */

    /* Under lock. */
    upstream_waker waker;
    bool sleeping; /* the worker's connection is suspended */
    bool changed;  /* something happened since the worker last slept */
    bool finished; /* the worker let go: no resume any more */
    upstream_state state;
    upstream_failure failure;
    ring up, down;     /* request body to the upstream, answer's body to the worker */
    bool up_end;       /* the request body is complete */
    bool send_waiting; /* the transfer paused for want of request body */
    bool recv_waiting; /* the transfer paused for want of room in down */
    uint64_t bytes_read;
    size_t mem_read; /* of a small answer's body, by upstream_call_read() */
    bool body_taken;

    /* Under thread->lock. */
    unsigned cmds;
    bool queued;
    upstream_call *next_queued;
};

/* ---- small pieces ---------------------------------------------------------- */

static size_t ring_room(const ring *r)
{
    return UPSTREAM_STREAM_BUFFER - r->len;
}

static size_t ring_put(ring *r, const char *data, size_t n)
{
    if (r->buf == NULL && n > 0) {
        r->buf = malloc(UPSTREAM_STREAM_BUFFER);
        if (r->buf == NULL)
            return 0;
    }
    if (n > ring_room(r))
        n = ring_room(r);
    if (n == 0)
        return 0;
    size_t tail = (r->head + r->len) % UPSTREAM_STREAM_BUFFER;
    size_t first = UPSTREAM_STREAM_BUFFER - tail;
    if (first > n)
        first = n;
    memcpy(r->buf + tail, data, first);
    memcpy(r->buf, data + first, n - first);
    r->len += n;
    return n;
}

static size_t ring_get(ring *r, char *out, size_t n)
{
    if (n > r->len)
        n = r->len;
    if (n == 0)
        return 0; /* and buf may not be there yet */
    size_t first = UPSTREAM_STREAM_BUFFER - r->head;
    if (first > n)
        first = n;
    memcpy(out, r->buf + r->head, first);
    memcpy(out + first, r->buf, n - first);
    r->head = (r->head + n) % UPSTREAM_STREAM_BUFFER;
    r->len -= n;
    if (r->len == 0)
        r->head = 0;
    return n;
}

const char *upstream_failure_name(upstream_failure f)
{
    static const char *const names[UPSTREAM_FAILURE_COUNT] = {
        [UPSTREAM_OK] = "ok",
        [UPSTREAM_FAIL_CONNECT] = "connect",
        [UPSTREAM_FAIL_TLS] = "tls",
        [UPSTREAM_FAIL_TIMEOUT] = "timeout",
        [UPSTREAM_FAIL_BAD_ANSWER] = "bad_answer",
        [UPSTREAM_FAIL_CUT] = "cut",
        [UPSTREAM_FAIL_TOO_LARGE] = "too_large",
        [UPSTREAM_FAIL_HEADERS_TOO_LARGE] = "headers_too_large",
        [UPSTREAM_FAIL_INTERNAL] = "internal",
        [UPSTREAM_FAIL_SHUTDOWN] = "shutdown",
        [UPSTREAM_FAIL_CANCELLED] = "cancelled",
    };
    return (unsigned)f < UPSTREAM_FAILURE_COUNT ? names[f] : "unknown";
}

static const char *failure_text(upstream_failure f)
{
    switch (f) {
    case UPSTREAM_FAIL_CONNECT:
        return "cannot connect";
    case UPSTREAM_FAIL_TLS:
        return "TLS failed";
    case UPSTREAM_FAIL_TIMEOUT:
        return "timed out";
    case UPSTREAM_FAIL_BAD_ANSWER:
        return "answered no valid HTTP";
    case UPSTREAM_FAIL_CUT:
        return "ended the answer early";
    case UPSTREAM_FAIL_TOO_LARGE:
        return "answered a body larger than --proxy-max-body";
    case UPSTREAM_FAIL_HEADERS_TOO_LARGE:
        return "answered header fields larger than --connection-memory leaves room for";
    case UPSTREAM_FAIL_INTERNAL:
        return "could not be read (memory or --temp-dir)";
    default:
        return upstream_failure_name(f);
    }
}

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* Counts a failure and logs the upstream at most once a second. */
static void note_failure(upstream_route *r, upstream_failure f, const char *detail)
{
    if (f == UPSTREAM_OK || f == UPSTREAM_FAIL_CANCELLED || f == UPSTREAM_FAIL_SHUTDOWN)
        return;
    count(&r->stats.failures[f]);
    atomic_store(&r->last_failure, (int)f);
    atomic_fetch_add(&r->failed_since_log, 1);
    uint64_t now = clock_mono_ms();
    uint64_t last = atomic_load(&r->logged_ms);
    if (last != 0 && now - last < UPSTREAM_LOG_INTERVAL)
        return;
    if (!atomic_compare_exchange_strong(&r->logged_ms, &last, now))
        return;
    unsigned long n = atomic_exchange(&r->failed_since_log, 0);
    log_error("upstream %s %s%s%s; %lu failed %s since the last report", r->url->text,
              failure_text(f), detail[0] != '\0' ? ": " : "", detail, n,
              n == 1 ? "request" : "requests");
}

/* Failures that came within a second of their upstream's last report and
 * were only counted: reported once that second is over, so that the count
 * of a burst that then stops is not lost. */
static void report_failures(upstream_pool *p, uint64_t now)
{
    for (size_t i = 0; i < p->route_count; i++) {
        upstream_route *r = &p->routes[i];
        uint64_t last = atomic_load(&r->logged_ms);
        if (atomic_load(&r->failed_since_log) == 0 || now - last < UPSTREAM_LOG_INTERVAL ||
            !atomic_compare_exchange_strong(&r->logged_ms, &last, now))
            continue;
        unsigned long n = atomic_exchange(&r->failed_since_log, 0);
        if (n > 0)
            log_error("upstream %s %s; %lu failed %s since the last report", r->url->text,
                      failure_text((upstream_failure)atomic_load(&r->last_failure)), n,
                      n == 1 ? "request" : "requests");
    }
}

/* Caller holds call->lock. */
static void wake_locked(upstream_call *call)
{
    if (call->sleeping) {
        call->sleeping = false;
        if (!call->finished)
            call->waker.resume(call->waker.cls);
    } else {
        call->changed = true;
    }
}

/* Frees a call and the buffers it kept. */
static void call_destroy(upstream_call *call)
{
    free(call->lines);
    free(call->line_at);
    free(call->line_nodes);
    upstream_header_list_free(&call->headers);
    EVP_MD_CTX_free(call->md);
    curl_url_cleanup(call->url);
    pthread_mutex_destroy(&call->lock);
    free(call);
}

/* The last reference went: what belongs to this request only is let go, and
 * the call with its header buffers is kept for the next one while the pool
 * has room for it and they are not outsized. */
static void call_free(upstream_call *call)
{
    assert(!call->in_multi && call->easy == NULL);
    free(call->up.buf);
    free(call->down.buf);
    free(call->mem);
    if (call->fd >= 0)
        close(call->fd);
    upstream_pool *p = call->pool;
    bool keep =
        call->lines_cap <= UPSTREAM_SPARE_BYTES && call->headers.cap <= UPSTREAM_SPARE_BYTES;
    if (keep) {
        pthread_mutex_lock(&p->spare_lock);
        keep = p->spare_count < UPSTREAM_SPARE_CALLS;
        if (keep) {
            call->next_spare = p->spare;
            p->spare = call;
            p->spare_count++;
        }
        pthread_mutex_unlock(&p->spare_lock);
    }
    if (!keep)
        call_destroy(call);
}

upstream_call *upstream_call_ref(upstream_call *call)
{
    int before = atomic_fetch_add(&call->refs, 1);
    assert(before > 0);
    (void)before;
    return call;
}

void upstream_call_unref(upstream_call *call)
{
    if (call == NULL)
        return;
    int before = atomic_fetch_sub(&call->refs, 1);
    assert(before > 0);
    if (before == 1)
        call_free(call);
}

/* Wakes a pool thread out of epoll_wait. */
static void thread_wake(upstream_thread *t)
{
    uint64_t one = 1;
    ssize_t w;
    do
        w = write(t->wake_fd, &one, sizeof one);
    while (w < 0 && errno == EINTR);
    /* EAGAIN: the counter is full of wake-ups already. */
}

/* Asks the call's thread for cmd. A thread that is busy takes the queue
 * before it sleeps again (thread_main()), so only the command that finds it
 * sleeping wakes it: one wake-up for a burst of commands, none while it works. */
static void post(upstream_call *call, unsigned cmd)
{
    upstream_thread *t = call->thread;
    pthread_mutex_lock(&t->lock);
    bool wake = t->sleeping;
    t->sleeping = false;
    call->cmds |= cmd;
    if (!call->queued) {
        call->queued = true;
        upstream_call_ref(call); /* the queue's */
        call->next_queued = NULL;
        if (t->queue_tail != NULL)
            t->queue_tail->next_queued = call;
        else
            t->queue_head = call;
        t->queue_tail = call;
    }
    pthread_mutex_unlock(&t->lock);
    if (wake)
        thread_wake(t);
}

/* ---- the transfer's callbacks (pool thread) ------------------------------- */

/* Bytes moved: stamped with the thread's clock, read once a wake-up rather
 * than at each of a transfer's callbacks. */
static void touch(upstream_call *call)
{
    atomic_store_explicit(&call->active_ms, call->thread->now_ms, memory_order_relaxed);
}

static int open_temp(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
        return fd;
    /* A file system without O_TMPFILE: a named file, unlinked at once. */
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/receiptd-XXXXXX", dir) >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static bool write_all(int fd, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        data += w;
        n -= (size_t)w;
    }
    return true;
}

/* Room for n more bytes in memory, with the slack after them. The first
 * block is as large as the announced length, so that a body that says its
 * length is read into one block of the right size. */
static bool mem_reserve(upstream_call *call, size_t n, size_t limit)
{
    if (call->mem_len + n <= call->mem_cap)
        return true;
    size_t cap = call->mem_cap;
    if (cap == 0)
        cap = call->content_length >= 0 && (uint64_t)call->content_length <= limit
                  ? (size_t)call->content_length
                  : UPSTREAM_WHOLE_FIRST;
    while (cap < call->mem_len + n)
        cap = cap < UPSTREAM_WHOLE_FIRST ? UPSTREAM_WHOLE_FIRST : cap * 2;
    if (cap > limit)
        cap = limit;
    char *mem = realloc(call->mem, cap + call->slack);
    if (mem == NULL)
        return false;
    call->mem = mem;
    call->mem_cap = cap;
    return true;
}

/* The body goes on in a temporary file, hashed from here on since its
 * bytes leave memory. */
static bool spill(upstream_call *call)
{
    const config *cfg = call->pool->cfg;
    if (call->md == NULL && (call->md = EVP_MD_CTX_new()) == NULL)
        return false;
    if (EVP_DigestInit_ex(call->md, call->pool->sha256, NULL) != 1 ||
        EVP_DigestUpdate(call->md, call->mem, call->mem_len) != 1)
        return false;
    call->fd = open_temp(cfg->temp_dir);
    if (call->fd < 0 || !write_all(call->fd, call->mem, call->mem_len)) {
        snprintf(call->why, sizeof call->why, "temporary file in %s: %s", cfg->temp_dir,
                 strerror(errno));
        return false;
    }
    free(call->mem);
    call->mem = NULL;
    call->mem_len = call->mem_cap = 0;
    return true;
}

/* A piece of a body read whole: memory up to --proxy-buffer, then a file. */
static bool whole_append(upstream_call *call, const char *data, size_t n)
{
    const config *cfg = call->pool->cfg;
    if (call->whole_len + n > cfg->proxy_max_body) {
        snprintf(call->why, sizeof call->why, "more than %llu bytes",
                 (unsigned long long)cfg->proxy_max_body);
        call->hint = UPSTREAM_FAIL_TOO_LARGE;
        return false;
    }
    call->whole_len += n;
    if (call->fd < 0 && call->mem_len + n <= cfg->proxy_buffer) {
        if (!mem_reserve(call, n, cfg->proxy_buffer)) {
            call->hint = UPSTREAM_FAIL_INTERNAL;
            return false;
        }
        memcpy(call->mem + call->mem_len, data, n);
        call->mem_len += n;
        return true;
    }
    if (call->fd < 0 && !spill(call)) {
        call->hint = UPSTREAM_FAIL_INTERNAL;
        return false;
    }
    if (EVP_DigestUpdate(call->md, data, n) != 1) {
        call->hint = UPSTREAM_FAIL_INTERNAL;
        return false;
    }
    if (!write_all(call->fd, data, n)) {
        snprintf(call->why, sizeof call->why, "temporary file in %s: %s", cfg->temp_dir,
                 strerror(errno));
        call->hint = UPSTREAM_FAIL_INTERNAL;
        return false;
    }
    return true;
}

/* The Content-Length of the answer, -1 if none, -2 if malformed. */
static int64_t content_length_of(const upstream_header_list *h)
{
    if (upstream_header_list_get(h, "Transfer-Encoding") != NULL)
        return -1;
    int64_t length = -1;
    size_t cursor = 0;
    const char *value;
    for (const char *name; (name = upstream_header_list_next(h, &cursor, &value)) != NULL;) {
        if (strcasecmp(name, "Content-Length") != 0)
            continue;
        if (value[0] == '\0' || strspn(value, "0123456789") != strlen(value) || strlen(value) > 18)
            return -2;
        int64_t v = (int64_t)strtoll(value, NULL, 10);
        if (length >= 0 && v != length)
            return -2; /* two that differ */
        length = v;
    }
    return length;
}

static void record_latency(upstream_call *call)
{
    uint64_t us = (call->thread->now_ms - call->started_ms) * 1000;
    size_t b = 0;
    while (b < UPSTREAM_LATENCY_BUCKETS - 1 && us > latency_bound_us[b])
        b++;
    count(&call->route->stats.latency[b]);
    atomic_fetch_add_explicit(&call->route->stats.latency_sum_us, us, memory_order_relaxed);
}

/* The header fields are complete: ANSWERED, or reading whole. */
static bool answered(upstream_call *call)
{
    int64_t length = content_length_of(&call->headers);
    if (length == -2) {
        snprintf(call->why, sizeof call->why, "a Content-Length that is not one number");
        call->hint = UPSTREAM_FAIL_BAD_ANSWER;
        return false;
    }
    record_latency(call);
    count(&call->route->stats.responses[call->status_seen]);
    call->status = call->status_seen;
    call->content_length = length;
    call->whole = call->want_whole && call->status == 200 && !call->head;
    if (call->whole) {
        if (length > 0 && (uint64_t)length > call->pool->cfg->proxy_max_body) {
            snprintf(call->why, sizeof call->why, "Content-Length %lld", (long long)length);
            call->hint = UPSTREAM_FAIL_TOO_LARGE;
            return false;
        }
        return true; /* the worker waits for DONE */
    }
    /* An answer that fits the buffer whole wakes the worker once, when it
     * is complete: one resume of the connection less. Its body is read into
     * one block of its length, which the worker takes as it is
     * (upstream_call_take_body()); until then the call stays WAITING. */
    call->fits = call->head || call->status == 204 || call->status == 304 ||
                 (length >= 0 && length <= UPSTREAM_STREAM_BUFFER);
    if (call->fits) {
        call->small = length > 0 && !call->head && call->status != 204 && call->status != 304;
        return true;
    }
    pthread_mutex_lock(&call->lock);
    call->state = UPSTREAM_ANSWERED;
    wake_locked(call);
    pthread_mutex_unlock(&call->lock);
    return true;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *cls)
{
    upstream_call *call = cls;
    size_t n = size * nitems;
    touch(call);
    if (call->status != 0)
        return n; /* trailer fields: not passed on */
    unsigned status;
    if (upstream_header_status_line(data, n, &status)) {
        call->status_seen = status;
        upstream_header_list_clear(&call->headers);
        return n;
    }
    if (call->status_seen == 0) {
        snprintf(call->why, sizeof call->why, "no status line");
        call->hint = UPSTREAM_FAIL_BAD_ANSWER;
        return 0;
    }
    if (n <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        if (call->status_seen < 200)
            return n; /* 100 Continue, 103 Early Hints: the final answer follows */
        return answered(call) ? n : 0;
    }
    switch (upstream_header_list_add(&call->headers, data, n)) {
    case UPSTREAM_HEADER_ADDED:
        return n;
    case UPSTREAM_HEADER_TOO_LARGE:
        snprintf(call->why, sizeof call->why, "header fields over %d bytes", UPSTREAM_HEADERS_MAX);
        break;
    case UPSTREAM_HEADER_MALFORMED:
    default:
        snprintf(call->why, sizeof call->why, "a malformed header field");
        break;
    }
    call->hint = UPSTREAM_FAIL_BAD_ANSWER;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *cls)
{
    upstream_call *call = cls;
    size_t n = size * nmemb;
    touch(call);
    if (call->status == 0) {
        snprintf(call->why, sizeof call->why, "a body before the header fields");
        call->hint = UPSTREAM_FAIL_BAD_ANSWER;
        return 0;
    }
    if (call->whole)
        return whole_append(call, data, n) ? n : 0;
    if (call->small) {
        /* The worker looks at it once DONE: no lock until then. */
        if (call->mem_len + n > UPSTREAM_STREAM_BUFFER ||
            !mem_reserve(call, n, UPSTREAM_STREAM_BUFFER)) {
            call->hint = UPSTREAM_FAIL_INTERNAL;
            return 0;
        }
        memcpy(call->mem + call->mem_len, data, n);
        call->mem_len += n;
        return n;
    }
    pthread_mutex_lock(&call->lock);
    if (call->finished) {
        pthread_mutex_unlock(&call->lock);
        call->hint = UPSTREAM_FAIL_CANCELLED;
        return 0;
    }
    if (n > ring_room(&call->down)) {
        if (n > UPSTREAM_STREAM_BUFFER) {
            pthread_mutex_unlock(&call->lock);
            call->hint = UPSTREAM_FAIL_INTERNAL;
            return 0;
        }
        call->recv_waiting = true;
        pthread_mutex_unlock(&call->lock);
        call->paused |= CURLPAUSE_RECV;
        return CURL_WRITEFUNC_PAUSE;
    }
    size_t put = ring_put(&call->down, data, n);
    if (!call->fits)
        wake_locked(call);
    pthread_mutex_unlock(&call->lock);
    if (put != n) {
        call->hint = UPSTREAM_FAIL_INTERNAL;
        return 0;
    }
    return n;
}

static size_t on_send(char *buf, size_t size, size_t nitems, void *cls)
{
    upstream_call *call = cls;
    pthread_mutex_lock(&call->lock);
    if (call->finished) {
        pthread_mutex_unlock(&call->lock);
        call->hint = UPSTREAM_FAIL_CANCELLED;
        return CURL_READFUNC_ABORT;
    }
    bool was_full = ring_room(&call->up) == 0;
    size_t got = ring_get(&call->up, buf, size * nitems);
    if (got == 0 && !call->up_end) {
        call->send_waiting = true;
        pthread_mutex_unlock(&call->lock);
        call->paused |= CURLPAUSE_SEND;
        return CURL_READFUNC_PAUSE;
    }
    if (was_full || got > 0)
        wake_locked(call);
    pthread_mutex_unlock(&call->lock);
    touch(call);
    return got;
}

/* ---- the pool thread ------------------------------------------------------- */

/* Whether a transfer leaves its handle as set_common() made it, to be used
 * again as it is: a GET without a body over TCP (nearly every request). */
static bool leaves_handle_plain(const upstream_call *call)
{
    return strcmp(call->method, "GET") == 0 && !call->has_body && !call->head &&
           call->route->url->scheme != UPSTREAM_UNIX;
}

static idle_easy easy_get(upstream_thread *t)
{
    if (t->idle_count > 0)
        return t->idle[--t->idle_count];
    return (idle_easy){curl_easy_init(), false};
}

static void easy_put(upstream_thread *t, CURL *easy, bool plain)
{
    if (t->idle_count >= UPSTREAM_IDLE_HANDLES) {
        curl_easy_cleanup(easy);
        return;
    }
    if (plain) {
        /* Nothing of the call's stays reachable from the handle. */
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        curl_easy_setopt(easy, CURLOPT_CURLU, NULL);
    } else {
        curl_easy_reset(easy);
    }
    t->idle[t->idle_count++] = (idle_easy){easy, plain};
}

/* The transfer is over: its result goes to the worker, the handle back. */
static void complete(upstream_thread *t, upstream_call *call, upstream_failure f)
{
    if (call->in_multi) {
        curl_multi_remove_handle(t->multi, call->easy);
        lru_unlink(&t->active, &call->link);
        call->in_multi = false;
    }
    if (call->easy != NULL) {
        easy_put(t, call->easy, leaves_handle_plain(call));
        call->easy = NULL;
    }
    if (f == UPSTREAM_OK && call->whole && call->fd >= 0 &&
        EVP_DigestFinal_ex(call->md, call->digest, NULL) != 1)
        f = UPSTREAM_FAIL_INTERNAL;
    note_failure(call->route, f, call->why[0] != '\0' ? call->why : call->error);
    pthread_mutex_lock(&call->lock);
    call->state = f == UPSTREAM_OK ? UPSTREAM_DONE : UPSTREAM_FAILED;
    call->failure = f;
    wake_locked(call);
    pthread_mutex_unlock(&call->lock);
    upstream_call_unref(call); /* the thread's */
}

static upstream_failure classify(upstream_call *call, CURLcode rc)
{
    if (call->hint != UPSTREAM_OK)
        return call->hint;
    bool got_answer = call->status != 0;
    switch (rc) {
    case CURLE_OK:
        return got_answer ? UPSTREAM_OK : UPSTREAM_FAIL_BAD_ANSWER;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        return UPSTREAM_FAIL_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return UPSTREAM_FAIL_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
        return UPSTREAM_FAIL_TLS;
    case CURLE_OUT_OF_MEMORY:
        return UPSTREAM_FAIL_INTERNAL;
    case CURLE_PARTIAL_FILE:
        return UPSTREAM_FAIL_CUT;
    default:
        return got_answer ? UPSTREAM_FAIL_CUT : UPSTREAM_FAIL_BAD_ANSWER;
    }
}

#define SETOPT(easy, opt, value)                                                                   \
    do {                                                                                           \
        if (curl_easy_setopt((easy), (opt), (value)) != CURLE_OK)                                  \
            goto fail;                                                                             \
    } while (0)

/* The header lines as the list libcurl reads (struct curl_slist is public:
 * nodes of our own, in one block, pointing into lines, which no longer
 * moves). */
static int link_lines(upstream_call *call)
{
    if (call->line_count == 0)
        return 0;
    if (call->line_count > call->nodes_cap) {
        struct curl_slist *nodes = realloc(call->line_nodes, call->line_cap * sizeof *nodes);
        if (nodes == NULL)
            return -1;
        call->line_nodes = nodes;
        call->nodes_cap = call->line_cap;
    }
    for (size_t i = 0; i < call->line_count; i++) {
        call->line_nodes[i].data = call->lines + call->line_at[i];
        call->line_nodes[i].next = i + 1 < call->line_count ? &call->line_nodes[i + 1] : NULL;
    }
    return 0;
}

/*
 * The URL as a handle of libcurl's: libcurl 7.88 parses a URL string again
 * for every transfer and assembles it anew, where a handle given is only
 * copied. Its scheme, host and port are parsed once for the route of the
 * call (kept with the call); the path and the query are set as they are
 * (upstream_url_target() made them, encoded: nothing is encoded again, nor
 * dot segments removed, as CURLOPT_PATH_AS_IS does). libcurl 7.88 writes
 * the hex digits of a %XX it is given in a part in lower case, though: a
 * target with a '%' goes as a string, as does one that is not a path ("*"),
 * so that the upstream gets the client's bytes.
 */
static int set_url(upstream_call *call, CURL *easy)
{
    const char *base = call->route->url->base;
    size_t base_len = strlen(base);
    const char *path = call->lines + base_len;
    if (path[0] != '/' || strchr(path, '%') != NULL) {
        SETOPT(easy, CURLOPT_CURLU, NULL);
        SETOPT(easy, CURLOPT_URL, call->lines);
        return 0;
    }
    if (call->url == NULL || call->url_route != call->route) {
        call->url_route = NULL;
        if (call->url == NULL && (call->url = curl_url()) == NULL)
            goto fail;
        if (curl_url_set(call->url, CURLUPART_URL, base, CURLU_PATH_AS_IS) != CURLUE_OK)
            goto fail;
        call->url_route = call->route;
    }
    char *query = strchr(path, '?');
    if (query != NULL)
        *query = '\0'; /* for a moment: the line is the URL alone */
    CURLUcode uc = curl_url_set(call->url, CURLUPART_PATH, path, CURLU_PATH_AS_IS);
    if (query != NULL)
        *query = '?';
    if (uc != CURLUE_OK ||
        curl_url_set(call->url, CURLUPART_QUERY, query != NULL ? query + 1 : NULL, 0) != CURLUE_OK)
        goto fail;
    /* The handle is what the transfer uses; the string, what libcurl tells
     * of it (else it would keep an earlier transfer's, or assemble one). */
    SETOPT(easy, CURLOPT_URL, call->lines);
    SETOPT(easy, CURLOPT_CURLU, call->url);
    return 0;
fail:
    return -1;
}

/* The options every transfer has; they stay on a handle between plain
 * transfers (leaves_handle_plain()). */
static int set_common(upstream_thread *t, CURL *easy)
{
    const config *cfg = t->pool->cfg;
    SETOPT(easy, CURLOPT_SHARE, t->share);
    SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
    /* Never through a proxy that the environment names (http_proxy). */
    SETOPT(easy, CURLOPT_PROXY, "");
    SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(easy, CURLOPT_PATH_AS_IS, 1L);
    SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(easy, CURLOPT_HTTP_CONTENT_DECODING, 0L);
    SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)t->pool->timeout_ms);
    SETOPT(easy, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(easy, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    if (cfg->upstream_ca != NULL)
        SETOPT(easy, CURLOPT_CAINFO, cfg->upstream_ca);
    return 0;
fail:
    return -1;
}

/* Sets the transfer up and adds it to the multi handle. */
static int begin(upstream_thread *t, upstream_call *call)
{
    const upstream_url *u = call->route->url;
    idle_easy got = easy_get(t);
    CURL *easy = got.easy;
    if (easy == NULL)
        return -1;
    if ((!got.configured && set_common(t, easy) != 0) || link_lines(call) != 0)
        goto fail;
    SETOPT(easy, CURLOPT_PRIVATE, call);
    if (set_url(call, easy) != 0)
        goto fail;
    SETOPT(easy, CURLOPT_HTTPHEADER, call->line_count > 0 ? call->line_nodes : NULL);
    SETOPT(easy, CURLOPT_HEADERDATA, call);
    SETOPT(easy, CURLOPT_WRITEDATA, call);
    SETOPT(easy, CURLOPT_ERRORBUFFER, call->error);
    if (u->scheme == UPSTREAM_UNIX)
        SETOPT(easy, CURLOPT_UNIX_SOCKET_PATH, u->socket);
    if (call->head) {
        SETOPT(easy, CURLOPT_NOBODY, 1L);
    } else if (strcmp(call->method, "GET") != 0 || call->has_body) {
        SETOPT(easy, CURLOPT_CUSTOMREQUEST, call->method);
    }
    if (call->has_body) {
        SETOPT(easy, CURLOPT_UPLOAD, 1L);
        SETOPT(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)call->body_length);
        SETOPT(easy, CURLOPT_READFUNCTION, on_send);
        SETOPT(easy, CURLOPT_READDATA, call);
    }
    call->started_ms = t->now_ms;
    touch(call);
    if (curl_multi_add_handle(t->multi, easy) != CURLM_OK)
        goto fail;
    call->easy = easy;
    call->in_multi = true;
    lru_push_front(&t->active, &call->link);
    return 0;
fail:
    /* Half set up: not kept. */
    curl_easy_cleanup(easy);
    snprintf(call->why, sizeof call->why, "the transfer could not be set up");
    return -1;
}

static void unpause(upstream_call *call, int which)
{
    if (!call->in_multi || !(call->paused & which))
        return;
    call->paused &= ~which;
    touch(call);
    /* May call on_body or on_send at once, which take the call's lock. */
    curl_easy_pause(call->easy, call->paused);
}

/* One call's commands. */
static void apply(upstream_thread *t, upstream_call *call, unsigned cmds, bool abort_all)
{
    if (cmds & CMD_START) {
        if (cmds & CMD_CANCEL) {
            complete(t, call, UPSTREAM_FAIL_CANCELLED);
            return;
        }
        if (abort_all || atomic_load(&t->pool->stopping)) {
            complete(t, call, UPSTREAM_FAIL_SHUTDOWN);
            return;
        }
        if (begin(t, call) != 0) {
            complete(t, call, UPSTREAM_FAIL_INTERNAL);
            return;
        }
    }
    if (!call->in_multi)
        return; /* already over */
    if (cmds & CMD_CANCEL) {
        complete(t, call, UPSTREAM_FAIL_CANCELLED);
        return;
    }
    if (cmds & CMD_RESUME_RECV)
        unpause(call, CURLPAUSE_RECV);
    if (cmds & CMD_RESUME_SEND)
        unpause(call, CURLPAUSE_SEND);
}

static void abort_active(upstream_thread *t)
{
    while (t->active.head != NULL)
        complete(t, LRU_ENTRY(t->active.head, upstream_call, link), UPSTREAM_FAIL_SHUTDOWN);
}

/* Takes the queue and applies it; an abort asked for fails every call the
 * thread has, and is then reported done. */
static void run_queue(upstream_thread *t, bool *stopping)
{
    pthread_mutex_lock(&t->lock);
    upstream_call *call = t->queue_head;
    t->queue_head = t->queue_tail = NULL;
    unsigned long asked = t->aborts_asked;
    bool abort_all = asked != t->aborts_done;
    *stopping = t->stopping;
    pthread_mutex_unlock(&t->lock);
    while (call != NULL) {
        pthread_mutex_lock(&t->lock);
        upstream_call *next = call->next_queued;
        unsigned cmds = call->cmds;
        call->cmds = 0;
        call->queued = false;
        call->next_queued = NULL;
        pthread_mutex_unlock(&t->lock);
        apply(t, call, cmds, abort_all);
        upstream_call_unref(call); /* the queue's */
        call = next;
    }
    if (abort_all) {
        abort_active(t);
        pthread_mutex_lock(&t->lock);
        t->aborts_done = asked;
        pthread_cond_broadcast(&t->aborted);
        pthread_mutex_unlock(&t->lock);
    }
}

static void finish_transfers(upstream_thread *t)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(t->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        upstream_call *call = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        CURLcode rc = msg->data.result;
        complete(t, call, classify(call, rc));
    }
}

/* Whether the transfer waits for the client rather than the upstream. */
static bool waits_for_client(upstream_call *call)
{
    if (call->paused & CURLPAUSE_RECV)
        return true;
    if (!(call->paused & CURLPAUSE_SEND))
        return false;
    pthread_mutex_lock(&call->lock);
    bool more_to_come = !call->up_end;
    pthread_mutex_unlock(&call->lock);
    return more_to_come;
}

static void expire(upstream_thread *t, uint64_t now)
{
    lru_link *link = t->active.head;
    while (link != NULL) {
        lru_link *next = link->next;
        upstream_call *call = LRU_ENTRY(link, upstream_call, link);
        uint64_t active = atomic_load_explicit(&call->active_ms, memory_order_relaxed);
        if (now > active && now - active >= t->pool->timeout_ms && !waits_for_client(call)) {
            snprintf(call->why, sizeof call->why, "nothing for %llu ms",
                     (unsigned long long)(now - active));
            complete(t, call, UPSTREAM_FAIL_TIMEOUT);
        }
        link = next;
    }
}

/* libcurl's socket callback: which of a transfer's sockets to wait for. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *cls, void *socketp)
{
    upstream_thread *t = cls;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(t->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
        return 0;
    }
    struct epoll_event ev = {
        .events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u),
        .data.fd = fd,
    };
    /* socketp marks a socket this thread has added already. A socket closed
     * and opened again under the same number left epoll on its own. */
    int op = socketp != NULL ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(t->epoll_fd, op, fd, &ev) != 0) {
        op = errno == ENOENT ? EPOLL_CTL_ADD : errno == EEXIST ? EPOLL_CTL_MOD : -1;
        if (op < 0 || epoll_ctl(t->epoll_fd, op, fd, &ev) != 0)
            return -1; /* libcurl fails the transfer */
    }
    if (socketp == NULL)
        curl_multi_assign(t->multi, fd, t);
    return 0;
}

/* libcurl's timer callback: when it wants curl_multi_socket_action() with
 * CURL_SOCKET_TIMEOUT (-1: never). */
static int on_timer(CURLM *multi, long timeout_ms, void *cls)
{
    upstream_thread *t = cls;
    (void)multi;
    t->timer_due_ms = timeout_ms < 0 ? UPSTREAM_NO_TIMER : t->now_ms + (uint64_t)timeout_ms;
    return 0;
}

static void socket_action(upstream_thread *t, curl_socket_t fd, int events)
{
    int running = 0;
    curl_multi_socket_action(t->multi, fd, events, &running);
}

/* The flags for curl_multi_socket_action() of what epoll saw. An error or
 * hang-up is passed as readable and writable, so that libcurl finds out
 * which by reading or writing. */
static int curl_events(uint32_t events)
{
    int flags = 0;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        flags |= CURL_CSELECT_IN;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        flags |= CURL_CSELECT_OUT;
    return flags;
}

static void drain_wake(upstream_thread *t)
{
    uint64_t n;
    while (read(t->wake_fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
}

static void *thread_main(void *arg)
{
    upstream_thread *t = arg;
    struct epoll_event events[UPSTREAM_EVENTS];
    pthread_setname_np(pthread_self(), "upstream"); /* for top -H, perf */
    t->now_ms = clock_mono_ms();
    uint64_t next_tick = t->now_ms + UPSTREAM_TICK_MS;
    for (;;) {
        bool stopping = false;
        run_queue(t, &stopping);
        if (stopping) {
            abort_active(t);
            break;
        }
        if (t->timer_due_ms <= t->now_ms) {
            t->timer_due_ms = UPSTREAM_NO_TIMER;
            socket_action(t, CURL_SOCKET_TIMEOUT, 0);
        }
        finish_transfers(t);
        if (t->now_ms >= next_tick) {
            expire(t, t->now_ms);
            if (t == &t->pool->threads[0])
                report_failures(t->pool, clock_mono_ms());
            next_tick = t->now_ms + UPSTREAM_TICK_MS;
        }
        uint64_t until = t->timer_due_ms < next_tick ? t->timer_due_ms : next_tick;
        int wait_ms = until <= t->now_ms ? 0 : (int)(until - t->now_ms);
        /* Commands that came while the thread worked woke nobody: look
         * without sleeping. */
        pthread_mutex_lock(&t->lock);
        if (t->queue_head != NULL || t->stopping || t->aborts_asked != t->aborts_done)
            wait_ms = 0;
        else
            t->sleeping = true;
        pthread_mutex_unlock(&t->lock);
        int n = epoll_wait(t->epoll_fd, events, UPSTREAM_EVENTS, wait_ms);
        pthread_mutex_lock(&t->lock);
        t->sleeping = false;
        pthread_mutex_unlock(&t->lock);
        t->now_ms = clock_mono_ms();
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == t->wake_fd)
                drain_wake(t); /* the queue is taken at the top */
            else
                socket_action(t, events[i].data.fd, curl_events(events[i].events));
        }
        finish_transfers(t);
    }
    return NULL;
}

/* ---- the pool -------------------------------------------------------------- */

static int thread_init(upstream_pool *p, upstream_thread *t)
{
    t->pool = p;
    t->epoll_fd = -1;
    t->wake_fd = -1;
    t->timer_due_ms = UPSTREAM_NO_TIMER;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->aborted, NULL);
    t->multi = curl_multi_init();
    t->share = curl_share_init();
    t->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->multi == NULL || t->share == NULL || t->epoll_fd < 0 || t->wake_fd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = t->wake_fd};
    if (epoll_ctl(t->epoll_fd, EPOLL_CTL_ADD, t->wake_fd, &ev) != 0)
        return -1;
    curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    if (curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t) != CURLM_OK ||
        curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
        curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t) != CURLM_OK ||
        /* Else libcurl keeps four per transfer running at the moment, and
         * closes connections whenever few run. */
        curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)UPSTREAM_KEEPALIVE) != CURLM_OK)
        return -1;
    return 0;
}

static int check_temp_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open_temp(dir);
    if (fd < 0) {
        snprintf(err, errlen, "--temp-dir %s takes no temporary file: %s", dir, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

/* libcurl reads --upstream-ca at each handshake: a file it cannot use would
 * fail every https request, so the start refuses it instead. */
static int check_ca_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "--upstream-ca %s: %s", path, strerror(errno));
        return -1;
    }
    unsigned certificates = 0;
    X509 *x;
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        X509_free(x);
        certificates++;
    }
    ERR_clear_error();
    fclose(f);
    if (certificates == 0) {
        snprintf(err, errlen, "--upstream-ca %s holds no PEM certificate", path);
        return -1;
    }
    return 0;
}

int upstream_check(const config *cfg, char *err, size_t errlen)
{
    if (cfg->upstream_count == 0)
        return 0;
    if (cfg->upstream_ca != NULL && check_ca_file(cfg->upstream_ca, err, errlen) != 0)
        return -1;
    return check_temp_dir(cfg->temp_dir, err, errlen);
}

static int by_prefix_length(const void *a, const void *b)
{
    size_t la = strlen(((const upstream_route *)a)->prefix);
    size_t lb = strlen(((const upstream_route *)b)->prefix);
    return la < lb ? 1 : la > lb ? -1 : 0;
}

upstream_pool *upstream_pool_new(const config *cfg, unsigned threads, char *err, size_t errlen)
{
    upstream_pool *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    p->timeout_ms = (uint64_t)cfg->upstream_timeout_s * 1000;
    pthread_mutex_init(&p->spare_lock, NULL);
    atomic_init(&p->stopping, false);
    atomic_init(&p->next_thread, 0);
    p->route_count = cfg->upstream_count;
    for (size_t i = 0; i < cfg->upstream_count; i++) {
        p->routes[i].prefix = cfg->upstreams[i].prefix;
        p->routes[i].url = &cfg->upstreams[i].url;
    }
    qsort(p->routes, p->route_count, sizeof p->routes[0], by_prefix_length);
    if (p->route_count == 0)
        return p;

    if (upstream_check(cfg, err, errlen) != 0)
        goto fail;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "cannot initialise libcurl");
        goto fail;
    }
    p->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (p->sha256 == NULL) {
        snprintf(err, errlen, "cannot fetch SHA-256");
        goto fail;
    }
    if (threads < 1)
        threads = 1;
    if (threads > UPSTREAM_THREADS_MAX)
        threads = UPSTREAM_THREADS_MAX;
    for (unsigned i = 0; i < threads; i++) {
        upstream_thread *t = &p->threads[i];
        p->thread_count = i + 1;
        if (thread_init(p, t) != 0) {
            snprintf(err, errlen, "cannot set up libcurl");
            goto fail;
        }
        if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
            snprintf(err, errlen, "cannot start an upstream thread");
            goto fail;
        }
        t->started = true;
    }
    return p;
fail:
    upstream_pool_free(p);
    return NULL;
}

void upstream_pool_abort(upstream_pool *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->stopping, true);
    unsigned long asked[UPSTREAM_THREADS_MAX];
    for (unsigned i = 0; i < p->thread_count; i++) {
        upstream_thread *t = &p->threads[i];
        pthread_mutex_lock(&t->lock);
        asked[i] = ++t->aborts_asked;
        pthread_mutex_unlock(&t->lock);
        thread_wake(t);
    }
    /* Every worker waiting for an upstream is resumed before this returns:
     * the listener may not be stopped with a connection suspended. */
    for (unsigned i = 0; i < p->thread_count; i++) {
        upstream_thread *t = &p->threads[i];
        if (!t->started)
            continue;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += UPSTREAM_ABORT_WAIT_S;
        pthread_mutex_lock(&t->lock);
        while (t->aborts_done < asked[i] && !t->stopping &&
               pthread_cond_timedwait(&t->aborted, &t->lock, &until) == 0)
            ;
        pthread_mutex_unlock(&t->lock);
    }
}

void upstream_pool_free(upstream_pool *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->stopping, true);
    for (unsigned i = 0; i < p->thread_count; i++) {
        upstream_thread *t = &p->threads[i];
        if (t->started) {
            pthread_mutex_lock(&t->lock);
            t->stopping = true;
            pthread_mutex_unlock(&t->lock);
            thread_wake(t);
            pthread_join(t->thread, NULL);
        }
        /* Commands posted after the thread ended: nothing runs them now. */
        for (upstream_call *call = t->queue_head; call != NULL;) {
            upstream_call *next = call->next_queued;
            if (call->cmds & CMD_START)
                complete(t, call, UPSTREAM_FAIL_SHUTDOWN);
            upstream_call_unref(call);
            call = next;
        }
        while (t->idle_count > 0)
            curl_easy_cleanup(t->idle[--t->idle_count].easy);
        /* Closing the cached connections may call on_socket: epoll last. */
        if (t->multi != NULL)
            curl_multi_cleanup(t->multi);
        if (t->share != NULL)
            curl_share_cleanup(t->share);
        if (t->epoll_fd >= 0)
            close(t->epoll_fd);
        if (t->wake_fd >= 0)
            close(t->wake_fd);
        pthread_cond_destroy(&t->aborted);
        pthread_mutex_destroy(&t->lock);
    }
    while (p->spare != NULL) {
        upstream_call *call = p->spare;
        p->spare = call->next_spare;
        call_destroy(call);
    }
    pthread_mutex_destroy(&p->spare_lock);
    EVP_MD_free(p->sha256);
    free(p);
}

const upstream_route *upstream_pool_route(const upstream_pool *p, const char *path)
{
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < p->route_count; i++) {
        const char *prefix = p->routes[i].prefix;
        if (strncmp(path, prefix, strlen(prefix)) == 0)
            return &p->routes[i];
    }
    return NULL;
}

const EVP_MD *upstream_pool_sha256(const upstream_pool *p)
{
    return p->sha256;
}

size_t upstream_pool_route_count(const upstream_pool *p)
{
    return p != NULL ? p->route_count : 0;
}

const upstream_route *upstream_pool_route_at(const upstream_pool *p, size_t i)
{
    return i < p->route_count ? &p->routes[i] : NULL;
}

/* ---- calls (workers) ------------------------------------------------------- */

/* A spare call, or a new one; its per-call fields zeroed. */
static upstream_call *call_alloc(upstream_pool *p)
{
    pthread_mutex_lock(&p->spare_lock);
    upstream_call *call = p->spare;
    if (call != NULL) {
        p->spare = call->next_spare;
        p->spare_count--;
    }
    pthread_mutex_unlock(&p->spare_lock);
    if (call == NULL) {
        call = calloc(1, sizeof *call);
        if (call == NULL)
            return NULL;
        pthread_mutex_init(&call->lock, NULL);
        upstream_header_list_init(&call->headers, UPSTREAM_HEADERS_MAX);
        return call;
    }
    const size_t from = offsetof(upstream_call, refs);
    memset((char *)call + from, 0, sizeof *call - from);
    call->next_spare = NULL;
    call->lines_len = 0;
    call->line_count = 0;
    upstream_header_list_clear(&call->headers);
    return call;
}

/* Room for n more bytes of lines. */
static bool lines_reserve(upstream_call *call, size_t n)
{
    return upstream_buffer_reserve(&call->lines, &call->lines_cap, call->lines_len, n,
                                   UPSTREAM_LINES_FIRST, SIZE_MAX / 2);
}

upstream_call *upstream_call_new(upstream_pool *p, const upstream_route *route, const char *method,
                                 const char *url, const upstream_waker *waker)
{
    upstream_call *call = call_alloc(p);
    if (call == NULL)
        return NULL;
    atomic_init(&call->refs, 1);
    atomic_init(&call->active_ms, 0);
    call->pool = p;
    /* The routes are the pool's; the stats in them are atomics. */
    call->route = (upstream_route *)route;
    call->fd = -1;
    call->content_length = -1;
    call->waker = *waker;
    snprintf(call->method, sizeof call->method, "%s", method);
    call->head = strcmp(method, "HEAD") == 0;
    size_t url_len = strlen(url);
    if (!lines_reserve(call, url_len + 1)) {
        call_free(call);
        return NULL;
    }
    memcpy(call->lines, url, url_len + 1);
    call->lines_len = url_len + 1;
    return call;
}

int upstream_call_add_header(upstream_call *call, const char *name, const char *value)
{
    size_t name_len = strlen(name);
    size_t value_len = value != NULL ? strlen(value) : 0;
    if (call->line_count == call->line_cap) {
        size_t cap = call->line_cap != 0 ? call->line_cap * 2 : 16;
        size_t *at = realloc(call->line_at, cap * sizeof *at);
        if (at == NULL)
            return -1;
        call->line_at = at;
        call->line_cap = cap;
    }
    if (!lines_reserve(call, name_len + value_len + 3))
        return -1;
    char *line = call->lines + call->lines_len;
    /* libcurl leaves out a header given as "Name:"; "Name;" sends it empty. */
    memcpy(line, name, name_len);
    size_t len = name_len;
    if (value == NULL) {
        line[len++] = ':';
    } else if (value_len == 0) {
        line[len++] = ';';
    } else {
        line[len++] = ':';
        line[len++] = ' ';
        memcpy(line + len, value, value_len);
        len += value_len;
    }
    line[len++] = '\0';
    call->line_at[call->line_count++] = call->lines_len;
    call->lines_len += len;
    return 0;
}

void upstream_call_expect_body(upstream_call *call, int64_t length)
{
    call->has_body = true;
    call->body_length = length;
}

void upstream_call_read_whole(upstream_call *call, size_t slack)
{
    call->want_whole = true;
    call->slack = slack;
}

int upstream_call_start(upstream_call *call)
{
    upstream_pool *p = call->pool;
    if (atomic_load(&p->stopping) || p->thread_count == 0) {
        pthread_mutex_lock(&call->lock);
        call->state = UPSTREAM_FAILED;
        call->failure = UPSTREAM_FAIL_SHUTDOWN;
        pthread_mutex_unlock(&call->lock);
        return -1;
    }
    unsigned i = atomic_fetch_add(&p->next_thread, 1) % p->thread_count;
    call->thread = &p->threads[i];
    upstream_call_ref(call); /* the thread's, until complete() */
    post(call, CMD_START);
    return 0;
}

bool upstream_call_sleep(upstream_call *call)
{
    pthread_mutex_lock(&call->lock);
    if (call->changed) {
        call->changed = false;
        pthread_mutex_unlock(&call->lock);
        return false;
    }
    /* Suspended before anyone can resume it: a resume first would be lost. */
    call->waker.suspend(call->waker.cls);
    call->sleeping = true;
    pthread_mutex_unlock(&call->lock);
    return true;
}

size_t upstream_call_send(upstream_call *call, const char *data, size_t len)
{
    pthread_mutex_lock(&call->lock);
    if (call->state == UPSTREAM_FAILED || call->state == UPSTREAM_DONE) {
        pthread_mutex_unlock(&call->lock);
        return len; /* nobody takes it any more */
    }
    size_t n = ring_put(&call->up, data, len);
    bool resume = call->send_waiting && n > 0;
    if (resume)
        call->send_waiting = false;
    pthread_mutex_unlock(&call->lock);
    if (resume)
        post(call, CMD_RESUME_SEND);
    return n;
}

void upstream_call_send_end(upstream_call *call)
{
    pthread_mutex_lock(&call->lock);
    call->up_end = true;
    bool resume = call->send_waiting;
    call->send_waiting = false;
    pthread_mutex_unlock(&call->lock);
    if (resume)
        post(call, CMD_RESUME_SEND);
}

upstream_state upstream_call_state(upstream_call *call)
{
    pthread_mutex_lock(&call->lock);
    upstream_state s = call->state;
    pthread_mutex_unlock(&call->lock);
    return s;
}

upstream_failure upstream_call_failure(upstream_call *call)
{
    pthread_mutex_lock(&call->lock);
    upstream_failure f = call->failure;
    pthread_mutex_unlock(&call->lock);
    return f;
}

void upstream_call_refuse(upstream_call *call, upstream_failure f)
{
    note_failure(call->route, f, "");
}

unsigned upstream_call_status(const upstream_call *call)
{
    return call->status;
}

const upstream_header_list *upstream_call_headers(const upstream_call *call)
{
    return &call->headers;
}

int64_t upstream_call_content_length(const upstream_call *call)
{
    return call->content_length;
}

bool upstream_call_whole(const upstream_call *call)
{
    return call->whole;
}

/* Of a small answer's body, once DONE: up to max bytes from where the last
 * read ended. Caller holds call->lock. */
static size_t mem_get(upstream_call *call, char *buf, size_t max)
{
    if (call->state != UPSTREAM_DONE || call->mem == NULL)
        return 0;
    size_t n = call->mem_len - call->mem_read;
    if (n > max)
        n = max;
    memcpy(buf, call->mem + call->mem_read, n);
    call->mem_read += n;
    return n;
}

ssize_t upstream_call_read(upstream_call *call, char *buf, size_t max)
{
    pthread_mutex_lock(&call->lock);
    size_t n = call->small ? mem_get(call, buf, max) : ring_get(&call->down, buf, max);
    if (n == 0) {
        ssize_t end = call->state == UPSTREAM_DONE     ? UPSTREAM_READ_END
                      : call->state == UPSTREAM_FAILED ? UPSTREAM_READ_ERROR
                                                       : 0;
        pthread_mutex_unlock(&call->lock);
        return end;
    }
    call->bytes_read += n;
    /* Room for a full write of libcurl's before the transfer goes on. */
    bool resume = call->recv_waiting && ring_room(&call->down) >= UPSTREAM_STREAM_BUFFER / 2;
    if (resume)
        call->recv_waiting = false;
    pthread_mutex_unlock(&call->lock);
    if (resume)
        post(call, CMD_RESUME_RECV);
    return (ssize_t)n;
}

size_t upstream_call_buffered(upstream_call *call)
{
    pthread_mutex_lock(&call->lock);
    size_t n = !call->small                   ? call->down.len
               : call->state == UPSTREAM_DONE ? call->mem_len - call->mem_read
                                              : 0;
    pthread_mutex_unlock(&call->lock);
    return n;
}

uint64_t upstream_call_bytes_read(upstream_call *call)
{
    pthread_mutex_lock(&call->lock);
    uint64_t n = call->bytes_read;
    pthread_mutex_unlock(&call->lock);
    return n;
}

void *upstream_call_waker_cls(const upstream_call *call)
{
    return call->waker.cls; /* set once, before the call is shared */
}

int upstream_call_take_body(upstream_call *call, upstream_body *out)
{
    pthread_mutex_lock(&call->lock);
    bool ok = call->state == UPSTREAM_DONE && (call->whole || call->small) && !call->body_taken &&
              call->mem_read == 0;
    call->body_taken = true;
    pthread_mutex_unlock(&call->lock);
    if (!ok)
        return -1;
    /* DONE: the pool thread is through with the body. */
    out->data = call->mem;
    out->fd = call->fd;
    out->len = call->small ? call->mem_len : call->whole_len;
    out->hashed = call->fd >= 0;
    if (out->hashed)
        memcpy(out->sha256, call->digest, 32);
    call->mem = NULL;
    call->fd = -1;
    return 0;
}

void upstream_call_finish(upstream_call *call)
{
    if (call == NULL)
        return;
    pthread_mutex_lock(&call->lock);
    call->finished = true;
    call->sleeping = false;
    bool running =
        call->thread != NULL && call->state != UPSTREAM_DONE && call->state != UPSTREAM_FAILED;
    pthread_mutex_unlock(&call->lock);
    if (running)
        post(call, CMD_CANCEL);
    upstream_call_unref(call);
}
