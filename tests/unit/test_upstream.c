/* upstream: routing, and calls against a real TCP peer on loopback that
 * answers canned bytes (or nothing): streamed and whole bodies, the spill
 * to a temporary file, the size cap, refused connections, timeouts and the
 * abort at shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- a peer that answers every connection with the same bytes ------------- */

typedef struct peer {
    int listen_fd;
    unsigned port;
    const char *answer; /* NULL: read the request, then say nothing */
    size_t answer_len;
    pthread_t thread;
    int held[16]; /* connections kept open without an answer */
    size_t held_count;
    char seen[8][256]; /* the first request lines (read once the call is done) */
    size_t seen_count;
} peer;

static void *peer_main(void *arg)
{
    peer *p = arg;
    for (;;) {
        int fd = accept(p->listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        char buf[8192];
        ssize_t n = read(fd, buf, sizeof buf - 1); /* the request: small, one read */
        if (n > 0 && p->seen_count < sizeof p->seen / sizeof p->seen[0]) {
            buf[n] = '\0';
            snprintf(p->seen[p->seen_count++], sizeof p->seen[0], "%.*s", (int)strcspn(buf, "\r\n"),
                     buf);
        }
        if (p->answer == NULL) {
            if (p->held_count < sizeof p->held / sizeof p->held[0])
                p->held[p->held_count++] = fd;
            continue;
        }
        size_t off = 0;
        while (off < p->answer_len) {
            ssize_t w = write(fd, p->answer + off, p->answer_len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        close(fd);
    }
}

static void peer_start(peer *p, const char *answer, size_t len)
{
    memset(p, 0, sizeof *p);
    p->answer = answer;
    p->answer_len = len;
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->listen_fd, 16), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&a, &alen), 0);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static void peer_stop(peer *p)
{
    shutdown(p->listen_fd, SHUT_RDWR);
    close(p->listen_fd);
    pthread_join(p->thread, NULL);
    for (size_t i = 0; i < p->held_count; i++)
        close(p->held[i]);
}

/* ---- a waker that a test thread can wait on ---------------------------------- */

typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool suspended;
    unsigned resumes;
} waiter;

static void w_suspend(void *cls)
{
    waiter *w = cls;
    pthread_mutex_lock(&w->lock);
    w->suspended = true;
    pthread_mutex_unlock(&w->lock);
}

static void w_resume(void *cls)
{
    waiter *w = cls;
    pthread_mutex_lock(&w->lock);
    w->suspended = false;
    w->resumes++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void waiter_init(waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
}

/* As a worker does: sleep until the call changes. */
static void wait_change(upstream_call *call, waiter *w)
{
    if (!upstream_call_sleep(call))
        return;
    pthread_mutex_lock(&w->lock);
    while (w->suspended)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

static upstream_state wait_settled(upstream_call *call, waiter *w)
{
    upstream_state s;
    while ((s = upstream_call_state(call)) == UPSTREAM_WAITING)
        wait_change(call, w);
    return s;
}

/* ---- set-up ---------------------------------------------------------------- */

typedef struct fixture {
    config cfg;
    upstream_pool *pool;
    waiter w;
    upstream_waker waker;
} fixture;

static void fixture_start(fixture *f, unsigned port, const char *extra_name, const char *extra)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    char *argv[] = {"receiptd", "--upstream",       url,           "--upstream-timeout",
                    "1",        (char *)extra_name, (char *)extra, NULL};
    int argc = extra_name != NULL ? 7 : 5;
    char err[256] = "";
    if (config_parse(&f->cfg, argc, argv, err, sizeof err) != CONFIG_OK)
        fail_msg("config: %s", err);
    free(f->cfg.temp_dir);
    f->cfg.temp_dir = strdup("/tmp");
    f->pool = upstream_pool_new(&f->cfg, 1, err, sizeof err);
    if (f->pool == NULL)
        fail_msg("pool: %s", err);
    waiter_init(&f->w);
    f->waker = (upstream_waker){w_suspend, w_resume, &f->w};
}

static void fixture_stop(fixture *f)
{
    upstream_pool_free(f->pool);
    config_free(&f->cfg);
}

static upstream_call *call_get(fixture *f, const char *path)
{
    char url[UPSTREAM_URL_MAX + 64];
    snprintf(url, sizeof url, "%s%s", f->cfg.upstreams[0].url.base, path);
    const upstream_route *r = upstream_pool_route(f->pool, path);
    assert_non_null(r);
    upstream_call *call = upstream_call_new(f->pool, r, "GET", url, &f->waker);
    assert_non_null(call);
    assert_int_equal(upstream_call_add_header(call, "Host", "example.test"), 0);
    return call;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_routes(void **state)
{
    (void)state;
    config cfg;
    char err[256] = "";
    char *argv[] = {"receiptd", "--upstream",     "http://a", "--upstream-for", "/api/",
                    "http://b", "--upstream-for", "/api/v2/", "http://c",       "--upstream-for",
                    "/apix",    "http://d",       NULL};
    assert_int_equal(config_parse(&cfg, 12, argv, err, sizeof err), CONFIG_OK);
    free(cfg.temp_dir);
    cfg.temp_dir = strdup("/tmp");
    upstream_pool *p = upstream_pool_new(&cfg, 1, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(upstream_pool_route_count(p), 4);
    assert_string_equal(upstream_pool_route(p, "/api/v2/x")->url->text, "http://c");
    assert_string_equal(upstream_pool_route(p, "/api/v1")->url->text, "http://b");
    assert_string_equal(upstream_pool_route(p, "/api")->url->text, "http://a");
    assert_string_equal(upstream_pool_route(p, "/apixyz")->url->text, "http://d");
    assert_string_equal(upstream_pool_route(p, "/")->url->text, "http://a");
    upstream_pool_free(p);
    config_free(&cfg);

    /* Without upstreams: no route, no thread, and a call cannot start. */
    char *plain[] = {"receiptd", "--root", "/srv", NULL};
    assert_int_equal(config_parse(&cfg, 3, plain, err, sizeof err), CONFIG_OK);
    p = upstream_pool_new(&cfg, 1, err, sizeof err);
    assert_non_null(p);
    assert_null(upstream_pool_route(p, "/x"));
    upstream_pool_free(p);
    config_free(&cfg);
    assert_null(upstream_pool_route(NULL, "/x"));
}

static const char hello[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\n"
                            "Set-Cookie: b=2\r\nContent-Length: 5\r\n\r\nhello";

static void test_streamed(void **state)
{
    (void)state;
    peer p;
    peer_start(&p, hello, sizeof hello - 1);
    fixture f;
    fixture_start(&f, p.port, NULL, NULL);
    upstream_call *call = call_get(&f, "/x");
    assert_int_equal(upstream_call_start(call), 0);
    upstream_state s = wait_settled(call, &f.w);
    assert_true(s == UPSTREAM_ANSWERED || s == UPSTREAM_DONE);
    assert_int_equal(upstream_call_status(call), 200);
    assert_int_equal(upstream_call_content_length(call), 5);
    assert_false(upstream_call_whole(call));
    assert_string_equal(upstream_header_list_get(upstream_call_headers(call), "Set-Cookie"), "a=1");
    char body[16];
    size_t got = 0;
    for (;;) {
        ssize_t n = upstream_call_read(call, body + got, sizeof body - got);
        if (n == UPSTREAM_READ_END)
            break;
        assert_true(n != UPSTREAM_READ_ERROR);
        if (n == 0)
            wait_change(call, &f.w);
        else
            got += (size_t)n;
    }
    assert_int_equal(got, 5);
    assert_memory_equal(body, "hello", 5);
    assert_int_equal(upstream_call_bytes_read(call), 5);
    upstream_body b;
    assert_int_equal(upstream_call_take_body(call, &b), -1); /* read already */
    upstream_call_finish(call);

    /* A short answer that said its length comes into a block of its own,
     * taken as it is, on a call recycled from the one before. */
    call = call_get(&f, "/y");
    assert_int_equal(upstream_call_start(call), 0);
    assert_int_equal(wait_settled(call, &f.w), UPSTREAM_DONE);
    assert_int_equal(upstream_call_take_body(call, &b), 0);
    assert_int_equal(b.len, 5);
    assert_int_equal(b.fd, -1);
    assert_false(b.hashed);
    assert_memory_equal(b.data, "hello", 5);
    free(b.data);
    assert_int_equal(upstream_call_take_body(call, &b), -1); /* once only */
    assert_int_equal(upstream_call_read(call, body, sizeof body), UPSTREAM_READ_END);
    upstream_call_finish(call);
    fixture_stop(&f);
    peer_stop(&p);
}

static void test_whole(void **state)
{
    (void)state;
    /* 40000 bytes: past a --proxy-buffer of 16 KiB, so in a file. */
    size_t body_len = 40000;
    char head[128];
    int hl =
        snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body_len);
    char *answer = malloc((size_t)hl + body_len);
    memcpy(answer, head, (size_t)hl);
    for (size_t i = 0; i < body_len; i++)
        answer[hl + (int)i] = (char)('a' + i % 26);
    uint8_t want[32];
    SHA256((const uint8_t *)answer + hl, body_len, want);
    peer p;
    peer_start(&p, answer, (size_t)hl + body_len);

    for (int spill = 0; spill <= 1; spill++) {
        fixture f;
        fixture_start(&f, p.port, "--proxy-buffer", spill ? "16" : "64");
        upstream_call *call = call_get(&f, "/file");
        upstream_call_read_whole(call, 7);
        assert_int_equal(upstream_call_start(call), 0);
        assert_int_equal(wait_settled(call, &f.w), UPSTREAM_DONE);
        assert_true(upstream_call_whole(call));
        upstream_body b;
        assert_int_equal(upstream_call_take_body(call, &b), 0);
        assert_int_equal(b.len, body_len);
        if (spill) {
            /* In a file: hashed as it came, since it is not in memory. */
            assert_null(b.data);
            assert_true(b.fd >= 0);
            assert_true(b.hashed);
            assert_memory_equal(b.sha256, want, 32);
            char *copy = malloc(body_len);
            assert_int_equal(pread(b.fd, copy, body_len, 0), (ssize_t)body_len);
            assert_memory_equal(copy, answer + hl, body_len);
            free(copy);
            close(b.fd);
        } else {
            /* In memory, with the room asked for after it (ASan sees a
             * write past the block). */
            assert_int_equal(b.fd, -1);
            assert_false(b.hashed);
            assert_memory_equal(b.data, answer + hl, body_len);
            memcpy(b.data + body_len, "slack!", 7);
            free(b.data);
        }
        /* Once only. */
        assert_int_equal(upstream_call_take_body(call, &b), -1);
        upstream_call_finish(call);
        fixture_stop(&f);
    }

    /* Past --proxy-max-body (1 MiB; the answer says 2 MiB): refused. */
    peer_stop(&p);
    static const char huge[] = "HTTP/1.1 200 OK\r\nContent-Length: 2097152\r\n\r\nxx";
    peer_start(&p, huge, sizeof huge - 1);
    fixture f;
    fixture_start(&f, p.port, "--proxy-max-body", "1");
    upstream_call *call = call_get(&f, "/huge");
    upstream_call_read_whole(call, 0);
    assert_int_equal(upstream_call_start(call), 0);
    assert_int_equal(wait_settled(call, &f.w), UPSTREAM_FAILED);
    assert_int_equal(upstream_call_failure(call), UPSTREAM_FAIL_TOO_LARGE);
    assert_int_equal(
        atomic_load(&upstream_pool_route(f.pool, "/")->stats.failures[UPSTREAM_FAIL_TOO_LARGE]), 1);
    upstream_call_finish(call);
    fixture_stop(&f);
    peer_stop(&p);
    free(answer);
}

static void test_failures(void **state)
{
    (void)state;
    /* Nothing listens: refused. */
    peer p;
    peer_start(&p, hello, sizeof hello - 1);
    unsigned closed_port = p.port;
    peer_stop(&p);
    fixture f;
    fixture_start(&f, closed_port, NULL, NULL);
    upstream_call *call = call_get(&f, "/x");
    assert_int_equal(upstream_call_start(call), 0);
    assert_int_equal(wait_settled(call, &f.w), UPSTREAM_FAILED);
    assert_int_equal(upstream_call_failure(call), UPSTREAM_FAIL_CONNECT);
    upstream_call_finish(call);
    fixture_stop(&f);

    /* Garbage. */
    static const char garbage[] = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
    peer_start(&p, garbage, sizeof garbage - 1);
    fixture_start(&f, p.port, NULL, NULL);
    call = call_get(&f, "/x");
    assert_int_equal(upstream_call_start(call), 0);
    assert_int_equal(wait_settled(call, &f.w), UPSTREAM_FAILED);
    assert_int_equal(upstream_call_failure(call), UPSTREAM_FAIL_BAD_ANSWER);
    upstream_call_finish(call);
    fixture_stop(&f);
    peer_stop(&p);

    /* Cut mid-body, read whole: never DONE. */
    static const char cut[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this";
    peer_start(&p, cut, sizeof cut - 1);
    fixture_start(&f, p.port, NULL, NULL);
    call = call_get(&f, "/x");
    upstream_call_read_whole(call, 0);
    assert_int_equal(upstream_call_start(call), 0);
    assert_int_equal(wait_settled(call, &f.w), UPSTREAM_FAILED);
    assert_int_equal(upstream_call_failure(call), UPSTREAM_FAIL_CUT);
    upstream_call_finish(call);
    fixture_stop(&f);
    peer_stop(&p);

    /* Silence: --upstream-timeout 1. */
    peer_start(&p, NULL, 0);
    fixture_start(&f, p.port, NULL, NULL);
    call = call_get(&f, "/x");
    assert_int_equal(upstream_call_start(call), 0);
    assert_int_equal(wait_settled(call, &f.w), UPSTREAM_FAILED);
    assert_int_equal(upstream_call_failure(call), UPSTREAM_FAIL_TIMEOUT);
    upstream_call_finish(call);

    /* Silence again, and the server stops: the sleeping worker is woken. */
    call = call_get(&f, "/y");
    assert_int_equal(upstream_call_start(call), 0);
    assert_true(upstream_call_sleep(call));
    upstream_pool_abort(f.pool);
    pthread_mutex_lock(&f.w.lock);
    assert_false(f.w.suspended); /* resumed before the abort returned */
    pthread_mutex_unlock(&f.w.lock);
    assert_int_equal(upstream_call_state(call), UPSTREAM_FAILED);
    assert_int_equal(upstream_call_failure(call), UPSTREAM_FAIL_SHUTDOWN);
    upstream_call_finish(call);
    /* And nothing new starts. */
    call = call_get(&f, "/z");
    assert_int_equal(upstream_call_start(call), -1);
    assert_int_equal(upstream_call_failure(call), UPSTREAM_FAIL_SHUTDOWN);
    upstream_call_finish(call);
    fixture_stop(&f);
    peer_stop(&p);
}

/* Each target reaches the upstream byte for byte, on handles and calls
 * used again: a query or none, an empty one, percent-encoding in the case
 * the client wrote it, dot segments left as they are. */
static void test_targets(void **state)
{
    (void)state;
    static const char *const targets[] = {
        "/a?x=1", "/b", "/c?", "/h%3Fi?j=%2F", "/d/./e/../f", "/a?x=1",
    };
    peer p;
    peer_start(&p, hello, sizeof hello - 1);
    fixture f;
    fixture_start(&f, p.port, NULL, NULL);
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        upstream_call *call = call_get(&f, targets[i]);
        assert_int_equal(upstream_call_start(call), 0);
        upstream_state s = wait_settled(call, &f.w);
        assert_true(s == UPSTREAM_ANSWERED || s == UPSTREAM_DONE);
        assert_int_equal(upstream_call_status(call), 200);
        upstream_call_finish(call);
        char line[256];
        snprintf(line, sizeof line, "GET %s HTTP/1.1", targets[i]);
        assert_int_equal(p.seen_count, i + 1);
        assert_string_equal(p.seen[i], line);
    }
    fixture_stop(&f);
    peer_stop(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),  cmocka_unit_test(test_streamed),
        cmocka_unit_test(test_whole),   cmocka_unit_test(test_failures),
        cmocka_unit_test(test_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
