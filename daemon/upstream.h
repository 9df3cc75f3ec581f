/*
 * upstream: the applications receiptd stands in front of, and the requests
 * in flight to them.
 *
 * A pool holds the upstreams of the config (--upstream, --upstream-for),
 * routes a path to the one with the longest matching prefix, and runs the
 * requests to them on threads of its own, each driving a libcurl multi
 * handle: connections to an upstream are kept alive and reused across
 * requests. The listener's workers never block on an upstream.
 *
 * Each thread waits in epoll for its transfers' sockets (libcurl's socket
 * interface: only the transfers whose sockets are ready run) and for an
 * eventfd that workers write when they queue a command for it while it
 * sleeps: a thread at work takes the queue before it sleeps again, so a
 * burst of commands costs it one wake-up at most. Easy handles are kept for the next transfer with
 * their options, and each thread keeps up to UPSTREAM_KEEPALIVE connections
 * alive (libcurl's connection cache).
 *
 * A request in flight is an upstream_call, shared by the worker that serves
 * the client and the pool thread that talks to the upstream: reference
 * counted, its state behind its own mutex. Calls are recycled with their
 * buffers (up to UPSTREAM_SPARE_CALLS), so that a request that looks like
 * the one before allocates nothing for its headers. Bodies stream both ways
 * through small bounded buffers, so memory per request stays constant: when
 * the client sends faster than the upstream takes, the worker waits; when
 * the upstream sends faster than the client reads, the transfer pauses. A
 * call marked with upstream_call_read_whole() reads a 200 whole instead (in
 * memory up to --proxy-buffer, one buffer of the announced length when
 * there is one, then in an unnamed file in --temp-dir, up to
 * --proxy-max-body).
 *
 * Waiting: a worker never blocks. When it needs something that has not
 * happened, upstream_call_sleep() suspends its connection through the
 * waker it gave (libmicrohttpd's suspend), and the pool thread resumes it
 * when the call changes. A change that comes before the sleep is kept, so
 * none is lost.
 *
 * Every failure is classified (upstream_failure) and counted per upstream;
 * failures are logged at most once a second per upstream, with a count.
 */
#ifndef RECEIPT_DAEMON_UPSTREAM_H
#define RECEIPT_DAEMON_UPSTREAM_H

#include "common/compiler.h"
#include "daemon/config.h"
#include "daemon/upstream_header.h"
#include "daemon/upstream_url.h"

#include <openssl/types.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define UPSTREAM_THREADS_MAX     16
#define UPSTREAM_KEEPALIVE       128         /* connections a thread keeps open, idle or busy */
#define UPSTREAM_SPARE_CALLS     64          /* finished calls kept for reuse, per pool */
#define UPSTREAM_STREAM_BUFFER   (64 * 1024) /* each way, per streaming call */
#define UPSTREAM_HEADERS_MAX     (32 * 1024) /* an answer's header fields */
#define UPSTREAM_LATENCY_BUCKETS 12

typedef struct upstream_pool upstream_pool;
typedef struct upstream_call upstream_call;

typedef enum upstream_failure {
    UPSTREAM_OK = 0,
    UPSTREAM_FAIL_CONNECT,           /* refused, unreachable, no such host: 502   */
    UPSTREAM_FAIL_TLS,               /* handshake or certificate: 502             */
    UPSTREAM_FAIL_TIMEOUT,           /* --upstream-timeout passed: 504            */
    UPSTREAM_FAIL_BAD_ANSWER,        /* not HTTP, malformed or too large headers: 502 */
    UPSTREAM_FAIL_CUT,               /* the connection ended before the body did: 502 */
    UPSTREAM_FAIL_TOO_LARGE,         /* a whole body past --proxy-max-body: 502   */
    UPSTREAM_FAIL_HEADERS_TOO_LARGE, /* more header fields than the connection has room for: 502 */
    UPSTREAM_FAIL_INTERNAL,          /* out of memory, the temporary file: 500    */
    UPSTREAM_FAIL_SHUTDOWN,          /* the server is stopping: 503               */
    UPSTREAM_FAIL_CANCELLED,         /* the client went away                      */
    UPSTREAM_FAILURE_COUNT,
} upstream_failure;

/* A short name for logs and metrics ("connect", "timeout", ...). */
const char *upstream_failure_name(upstream_failure f);

/* Counters of one upstream, for /metrics; relaxed atomics. */
typedef struct upstream_stats {
    _Atomic uint64_t responses[600]; /* by the upstream's status code */
    _Atomic uint64_t failures[UPSTREAM_FAILURE_COUNT];
    _Atomic uint64_t latency[UPSTREAM_LATENCY_BUCKETS]; /* to the answer's headers */
    _Atomic uint64_t latency_sum_us;
} upstream_stats;

/* The upper bounds of the latency buckets, in seconds, for /metrics. */
extern const char *const upstream_latency_le[UPSTREAM_LATENCY_BUCKETS];

/* One upstream: requests whose decoded path starts with prefix go to url.
 * Owned by the pool. */
typedef struct upstream_route {
    const char *prefix;
    const upstream_url *url;
    upstream_stats stats;
    /* once-a-second failure log */
    _Atomic unsigned long failed_since_log;
    _Atomic uint64_t logged_ms;
    _Atomic int last_failure; /* an upstream_failure, for report_failures() */
} upstream_route;

/*
 * Starts threads (1..UPSTREAM_THREADS_MAX) for the upstreams of cfg, which
 * is borrowed. Checks that --temp-dir takes temporary files. NULL with err
 * set on failure; a config without upstreams gives a pool with no routes
 * and no threads.
 */
upstream_pool *upstream_pool_new(const config *cfg, unsigned threads, char *err, size_t errlen);

/* What upstream_pool_new() checks of cfg before it starts anything (for
 * --check): 0, or -1 with err set. */
int upstream_check(const config *cfg, char *err, size_t errlen);

/* Fails every call in flight with UPSTREAM_FAIL_SHUTDOWN, refuses new ones,
 * and returns once each thread has done so (every worker waiting is then
 * resumed). NULL-safe. */
void upstream_pool_abort(upstream_pool *p);

/* Stops the threads and frees the pool; only once no worker uses it any
 * more (the listener is stopped). NULL-safe. */
void upstream_pool_free(upstream_pool *p);

/* The upstream of path (decoded), longest prefix first; NULL if none. */
const upstream_route *upstream_pool_route(const upstream_pool *p, const char *path);

/* The SHA-256 the pool fetched once, for digests of the bodies it reads. */
const EVP_MD *upstream_pool_sha256(const upstream_pool *p);

/* The routes, for /metrics. */
size_t upstream_pool_route_count(const upstream_pool *p);
const upstream_route *upstream_pool_route_at(const upstream_pool *p, size_t i);

/* ---- calls ----------------------------------------------------------------- */

/* How a worker waits: suspend is called with the call's lock held, from
 * upstream_call_sleep() on the worker; resume from the pool thread. */
typedef struct upstream_waker {
    void (*suspend)(void *cls);
    void (*resume)(void *cls);
    void *cls;
} upstream_waker;

typedef enum upstream_state {
    UPSTREAM_WAITING = 0, /* no answer yet                                   */
    UPSTREAM_ANSWERED,    /* status and headers are here; a streamed body follows
                           * (an answer that fits UPSTREAM_STREAM_BUFFER goes from
                           * WAITING to DONE) */
    UPSTREAM_DONE,        /* complete (for a call that reads whole: the body too) */
    UPSTREAM_FAILED,      /* see upstream_call_failure()                     */
} upstream_state;

/*
 * A new call (one reference, the caller's) of method to url (a whole URL
 * made by upstream_url_target()) through route. The waker is copied. NULL
 * when out of memory.
 */
upstream_call *upstream_call_new(upstream_pool *p, const upstream_route *route, const char *method,
                                 const char *url, const upstream_waker *waker);

/* Before the start: a request header to send; an empty value is sent
 * empty, and a NULL one keeps libcurl from sending a header of its own
 * (Accept, Expect). 0, or -1 when out of memory. */
WARN_UNUSED_RESULT int upstream_call_add_header(upstream_call *call, const char *name,
                                                const char *value);
/* Before the start: the request has a body of length bytes (-1: unknown,
 * sent chunked), to come through upstream_call_send(). */
void upstream_call_expect_body(upstream_call *call, int64_t length);
/* Before the start: a 200 is read whole instead of streamed; a body kept in
 * memory has room for slack more bytes after it (upstream_body). */
void upstream_call_read_whole(upstream_call *call, size_t slack);

/* Hands the call to a pool thread. 0, or -1 if the pool is stopping (the
 * call is then failed with UPSTREAM_FAIL_SHUTDOWN). */
WARN_UNUSED_RESULT int upstream_call_start(upstream_call *call);

/*
 * The worker's side of waiting: returns true after suspending (return to
 * libmicrohttpd; the connection is resumed when the call changes), or false
 * when the call changed since the last look (look again, do not return).
 */
bool upstream_call_sleep(upstream_call *call);

/* Request body: copies what fits of len bytes; returns how many. 0 with
 * len > 0: the buffer is full, sleep. Bytes sent after the call failed are
 * dropped (and counted as taken). */
size_t upstream_call_send(upstream_call *call, const char *data, size_t len);
/* The request body is complete. */
void upstream_call_send_end(upstream_call *call);

upstream_state upstream_call_state(upstream_call *call);
upstream_failure upstream_call_failure(upstream_call *call);

/* The caller refuses an answer that came whole for reason f: counted and
 * logged as the upstream's failure. */
void upstream_call_refuse(upstream_call *call, upstream_failure f);

/* Once ANSWERED or DONE: the status, the header fields (owned by the call,
 * no longer changed), and the Content-Length (-1: none or not a number). */
unsigned upstream_call_status(const upstream_call *call);
const upstream_header_list *upstream_call_headers(const upstream_call *call);
int64_t upstream_call_content_length(const upstream_call *call);
/* Whether this answer is being read whole (a 200 of a call marked so). */
bool upstream_call_whole(const upstream_call *call);

#define UPSTREAM_READ_END   (-1) /* the body is complete          */
#define UPSTREAM_READ_ERROR (-2) /* it ended early (see the failure) */

/* Streamed body: copies up to max bytes into buf; 0 when nothing is there
 * yet (sleep), or UPSTREAM_READ_END / UPSTREAM_READ_ERROR. */
ssize_t upstream_call_read(upstream_call *call, char *buf, size_t max);
/* Bytes of a streamed body waiting to be read. Once DONE, that is the
 * rest of the body. */
size_t upstream_call_buffered(upstream_call *call);
/* Bytes the worker has read so far (for the access log). */
uint64_t upstream_call_bytes_read(upstream_call *call);
/* The cls of the waker given to upstream_call_new() (the worker's). */
void *upstream_call_waker_cls(const upstream_call *call);

/*
 * A body read whole: either in memory (data, len bytes in a malloc'd block
 * of at least len + the slack of upstream_call_read_whole(), the caller's
 * from now on) or in a file (fd, which the caller now owns, positioned
 * nowhere in particular, holding len bytes). A body in a file was hashed as
 * it arrived (hashed, sha256), since its bytes are gone from memory; one in
 * memory is not: its reader hashes it as it reads it anyway (http_proxy
 * hashes it and its injected form in one pass).
 */
typedef struct upstream_body {
    char *data;
    int fd;
    uint64_t len;
    bool hashed;
    uint8_t sha256[32];
} upstream_body;

/* The body read whole, once DONE: a 200 of a call marked to be read whole,
 * or a streamed answer that said its length and fits UPSTREAM_STREAM_BUFFER
 * (it comes into one block of that length: taking it saves the copy that
 * upstream_call_read() makes). Once only, and not after a read; -1 if
 * there is none. */
int upstream_call_take_body(upstream_call *call, upstream_body *out);

/* A new reference. */
upstream_call *upstream_call_ref(upstream_call *call);
/* Drops a reference; NULL-safe. */
void upstream_call_unref(upstream_call *call);
/*
 * The worker is done with the call (its request completed): no resume is
 * made any more, a transfer still running is cancelled, and the worker's
 * reference is dropped. NULL-safe.
 */
void upstream_call_finish(upstream_call *call);

#endif
