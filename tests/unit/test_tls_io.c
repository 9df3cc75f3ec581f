/* tls_io: a GnuTLS server session on it and a GnuTLS client on the other
 * end of a socket pair. Reads ahead take every record that arrived in one
 * recv() and give them out record by record, across any split and while
 * other connections of the thread read; a joined
 * response's header record waits for its body's and both arrive together;
 * a full socket makes the body's write report EAGAIN and a later retry
 * sends everything in order; a response whose body never came has its
 * header record written when it ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/tls_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+ECDHE-PSK"

static const uint8_t psk_bytes[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* What the client writes goes here first, so that a test decides how it
 * reaches the server's socket. */
typedef struct outbox {
    uint8_t data[256 * 1024];
    size_t len;
} outbox;

typedef struct pair {
    int server_fd, client_fd;
    gnutls_session_t server, client;
    gnutls_psk_server_credentials_t server_cred;
    gnutls_psk_client_credentials_t client_cred;
    tls_io *io;
    outbox *out; /* NULL: the client writes to its socket */
} pair;

static int server_psk(gnutls_session_t s, const char *user, gnutls_datum_t *key)
{
    (void)s;
    (void)user;
    key->data = gnutls_malloc(sizeof psk_bytes);
    memcpy(key->data, psk_bytes, sizeof psk_bytes);
    key->size = sizeof psk_bytes;
    return 0;
}

static ssize_t to_outbox(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
    outbox *o = ptr;
    assert_true(o->len + len <= sizeof o->data);
    memcpy(o->data + o->len, data, len);
    o->len += len;
    return (ssize_t)len;
}

static ssize_t client_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
    return recv((int)(intptr_t)ptr, data, len, 0);
}

/* Writes the outbox's bytes [from, to) to the client's socket. */
static void deliver(pair *p, size_t from, size_t to)
{
    assert_true(to <= p->out->len);
    while (from < to) {
        ssize_t n = send(p->client_fd, p->out->data + from, to - from, 0);
        assert_true(n > 0);
        from += (size_t)n;
    }
}

static void make_pair(pair *p, bool outboxed)
{
    memset(p, 0, sizeof *p);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    p->server_fd = fds[0];
    p->client_fd = fds[1];
    assert_int_equal(fcntl(p->server_fd, F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(p->client_fd, F_SETFL, O_NONBLOCK), 0);

    assert_int_equal(gnutls_psk_allocate_server_credentials(&p->server_cred), 0);
    gnutls_psk_set_server_credentials_function(p->server_cred, server_psk);
    assert_int_equal(gnutls_init(&p->server, GNUTLS_SERVER | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_priority_set_direct(p->server, PRIORITY, NULL), 0);
    assert_int_equal(gnutls_credentials_set(p->server, GNUTLS_CRD_PSK, p->server_cred), 0);
    p->io = tls_io_attach(p->server, p->server_fd);
    assert_non_null(p->io);

    gnutls_datum_t key = {(uint8_t *)psk_bytes, sizeof psk_bytes};
    assert_int_equal(gnutls_psk_allocate_client_credentials(&p->client_cred), 0);
    assert_int_equal(
        gnutls_psk_set_client_credentials(p->client_cred, "test", &key, GNUTLS_PSK_KEY_RAW), 0);
    assert_int_equal(gnutls_init(&p->client, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_priority_set_direct(p->client, PRIORITY, NULL), 0);
    assert_int_equal(gnutls_credentials_set(p->client, GNUTLS_CRD_PSK, p->client_cred), 0);
    gnutls_transport_set_int(p->client, p->client_fd);

    int s = GNUTLS_E_AGAIN, c = GNUTLS_E_AGAIN;
    for (int round = 0; round < 100 && (s != 0 || c != 0); round++) {
        if (c != 0)
            c = gnutls_handshake(p->client);
        if (s != 0)
            s = gnutls_handshake(p->server);
        assert_true(c == 0 || c == GNUTLS_E_AGAIN);
        assert_true(s == 0 || s == GNUTLS_E_AGAIN);
    }
    assert_int_equal(s, 0);
    assert_int_equal(c, 0);
    /* TLS 1.3 session tickets are still in the socket: read them now. */
    char scratch[16];
    assert_int_equal(gnutls_record_recv(p->client, scratch, sizeof scratch), GNUTLS_E_AGAIN);

    if (outboxed) {
        p->out = calloc(1, sizeof *p->out);
        assert_non_null(p->out);
        gnutls_transport_set_ptr2(p->client, (gnutls_transport_ptr_t)(intptr_t)p->client_fd,
                                  p->out);
        gnutls_transport_set_pull_function(p->client, client_pull);
        gnutls_transport_set_push_function(p->client, to_outbox);
    }
}

static void free_pair(pair *p)
{
    gnutls_deinit(p->server);
    gnutls_deinit(p->client);
    tls_io_free(p->io);
    gnutls_psk_free_server_credentials(p->server_cred);
    gnutls_psk_free_client_credentials(p->client_cred);
    close(p->server_fd);
    close(p->client_fd);
    free(p->out);
}

/* Bytes waiting in fd's receive queue. */
static size_t waiting(int fd)
{
    static uint8_t peek[1024 * 1024];
    ssize_t n = recv(fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0) {
        assert_int_equal(errno, EAGAIN);
        return 0;
    }
    return (size_t)n;
}

static void expect_record(gnutls_session_t s, const void *data, size_t len)
{
    uint8_t got[20000];
    assert_true(len <= sizeof got);
    size_t have = 0;
    while (have < len) {
        ssize_t n = gnutls_record_recv(s, got + have, len - have);
        assert_true(n > 0);
        have += (size_t)n;
    }
    assert_memory_equal(got, data, len);
}

static void send_all(gnutls_session_t s, const void *data, size_t len)
{
    assert_int_equal(gnutls_record_send(s, data, len), (ssize_t)len);
}

static void test_read_ahead(void **state)
{
    (void)state;
    pair p;
    make_pair(&p, false);
    send_all(p.client, "GET /a", 6);
    send_all(p.client, "GET /b", 6);
    expect_record(p.server, "GET /a", 6);
    /* Both records came in with the first read. */
    assert_int_equal(waiting(p.server_fd), 0);
    expect_record(p.server, "GET /b", 6);
    char buf[16];
    assert_int_equal(gnutls_record_recv(p.server, buf, sizeof buf), GNUTLS_E_AGAIN);

    /* A record larger than the read-ahead buffer, and one after it. */
    static uint8_t large[3 * TLS_IO_READ_AHEAD];
    for (size_t i = 0; i < sizeof large; i++)
        large[i] = (uint8_t)(i * 7);
    send_all(p.client, large, sizeof large);
    send_all(p.client, "tail", 4);
    expect_record(p.server, large, sizeof large);
    expect_record(p.server, "tail", 4);
    assert_int_equal(gnutls_record_recv(p.server, buf, sizeof buf), GNUTLS_E_AGAIN);
    free_pair(&p);
}

static void test_read_ahead_two_connections(void **state)
{
    (void)state;
    pair a, b;
    make_pair(&a, false);
    make_pair(&b, false);
    char buf[16];
    /* a's second record is read ahead with its first ... */
    send_all(a.client, "a one", 5);
    send_all(a.client, "a two", 5);
    expect_record(a.server, "a one", 5);
    assert_int_equal(waiting(a.server_fd), 0);
    /* ... and waits, while b, on the same thread, reads. */
    send_all(b.client, "b one", 5);
    send_all(b.client, "b two", 5);
    expect_record(b.server, "b one", 5);
    expect_record(a.server, "a two", 5);

    /* A connection that ends with bytes read ahead (b's second record)
     * leaves nothing behind for the others. */
    free_pair(&b);
    assert_int_equal(gnutls_record_recv(a.server, buf, sizeof buf), GNUTLS_E_AGAIN);
    pair c;
    make_pair(&c, false);
    send_all(c.client, "c one", 5);
    expect_record(c.server, "c one", 5);
    assert_int_equal(gnutls_record_recv(c.server, buf, sizeof buf), GNUTLS_E_AGAIN);
    free_pair(&c);
    free_pair(&a);
}

static void test_read_ahead_split(void **state)
{
    (void)state;
    pair p;
    make_pair(&p, true);
    send_all(p.client, "first", 5);
    size_t first_end = p.out->len;
    send_all(p.client, "second", 6);
    size_t end = p.out->len;
    char buf[16];
    /* The first record's header in two pieces, then its body and a part
     * of the next record's header in one. */
    deliver(&p, 0, 2);
    assert_int_equal(gnutls_record_recv(p.server, buf, sizeof buf), GNUTLS_E_AGAIN);
    deliver(&p, 2, 5);
    assert_int_equal(gnutls_record_recv(p.server, buf, sizeof buf), GNUTLS_E_AGAIN);
    deliver(&p, 5, first_end + 3);
    expect_record(p.server, "first", 5);
    assert_int_equal(gnutls_record_recv(p.server, buf, sizeof buf), GNUTLS_E_AGAIN);
    deliver(&p, first_end + 3, end);
    expect_record(p.server, "second", 6);

    /* A closed peer reads as the end, not as an error. */
    shutdown(p.client_fd, SHUT_WR);
    assert_int_equal(gnutls_record_recv(p.server, buf, sizeof buf), GNUTLS_E_PREMATURE_TERMINATION);
    free_pair(&p);
}

static void test_join(void **state)
{
    (void)state;
    pair p;
    make_pair(&p, false);
    static const char header[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
    tls_io_join_response(p.io);
    send_all(p.server, header, sizeof header - 1);
    /* Kept: nothing is on the wire yet. */
    assert_int_equal(waiting(p.client_fd), 0);
    send_all(p.server, "body", 4);
    /* Both records at once: a record is 22 bytes more than its text. */
    assert_int_equal(waiting(p.client_fd), sizeof header - 1 + 4 + 2 * 22);
    expect_record(p.client, header, sizeof header - 1);
    expect_record(p.client, "body", 4);
    assert_true(tls_io_response_done(p.io));

    /* Not joined: each record goes when written. */
    send_all(p.server, "alone", 5);
    assert_int_equal(waiting(p.client_fd), 5 + 22);
    expect_record(p.client, "alone", 5);
    free_pair(&p);
}

/* Writes data, letting the client take one filler record whenever the
 * socket is full; GnuTLS is called again with the same arguments, as
 * libmicrohttpd does once the socket is writable. */
static void send_draining(pair *p, const void *data, size_t len, const uint8_t *filler,
                          size_t filler_len, unsigned *fills)
{
    ssize_t rc;
    unsigned tries = 0;
    while ((rc = gnutls_record_send(p->server, data, len)) == GNUTLS_E_AGAIN) {
        assert_true(*fills > 0);
        expect_record(p->client, filler, filler_len);
        (*fills)--;
        assert_true(++tries < 1000);
    }
    assert_int_equal(rc, (ssize_t)len);
}

static void test_join_full_socket(void **state)
{
    (void)state;
    pair p;
    make_pair(&p, false);
    int small = 4096;
    assert_int_equal(setsockopt(p.server_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    static uint8_t filler[1000];
    memset(filler, 'f', sizeof filler);
    /* Fill the socket until a write no longer goes; the record GnuTLS
     * could not finish goes first once there is room. */
    unsigned fills = 0;
    ssize_t rc;
    while ((rc = gnutls_record_send(p.server, filler, sizeof filler)) == (ssize_t)sizeof filler)
        fills++;
    assert_int_equal(rc, GNUTLS_E_AGAIN);
    assert_true(fills > 0);
    send_draining(&p, filler, sizeof filler, filler, sizeof filler, &fills);
    fills++;

    /* The header record is kept whatever the socket's state; its body's
     * write meets a full socket, and goes in the end, after the rest of the
     * kept record. */
    static const char header[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    tls_io_join_response(p.io);
    send_all(p.server, header, sizeof header - 1);
    assert_int_equal(gnutls_record_send(p.server, "hello", 5), GNUTLS_E_AGAIN);
    send_draining(&p, "hello", 5, filler, sizeof filler, &fills);
    while (fills-- > 0)
        expect_record(p.client, filler, sizeof filler);
    expect_record(p.client, header, sizeof header - 1);
    expect_record(p.client, "hello", 5);
    assert_true(tls_io_response_done(p.io));
    free_pair(&p);
}

/* Reads what the client can decode now onto got; returns how much it read. */
static size_t read_available(gnutls_session_t s, uint8_t *got, size_t *have, size_t cap)
{
    size_t before = *have;
    ssize_t n;
    while (*have < cap && (n = gnutls_record_recv(s, got + *have, cap - *have)) > 0)
        *have += (size_t)n;
    return *have - before;
}

static void test_join_partial(void **state)
{
    (void)state;
    pair p;
    make_pair(&p, false);
    int small = 4096;
    assert_int_equal(setsockopt(p.server_fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    /* A header record larger than the socket takes at once: its first
     * write sends only part of it. */
    static uint8_t header[12000], want[12000 + 5], got[12000 + 5];
    for (size_t i = 0; i < sizeof header; i++)
        header[i] = (uint8_t)(i * 13 + 1);
    memcpy(want, header, sizeof header);
    memcpy(want + sizeof header, "body!", 5);
    tls_io_join_response(p.io);
    send_all(p.server, header, sizeof header);
    size_t have = 0;
    ssize_t rc;
    unsigned tries = 0;
    while ((rc = gnutls_record_send(p.server, "body!", 5)) == GNUTLS_E_AGAIN) {
        read_available(p.client, got, &have, sizeof got);
        assert_true(++tries < 1000);
    }
    assert_int_equal(rc, 5);
    assert_true(tries > 0);
    while (have < sizeof got)
        assert_true(read_available(p.client, got, &have, sizeof got) > 0 ||
                    waiting(p.client_fd) > 0);
    assert_memory_equal(got, want, sizeof want);
    assert_true(tls_io_response_done(p.io));
    free_pair(&p);
}

static void test_response_done_writes_kept(void **state)
{
    (void)state;
    pair p;
    make_pair(&p, false);
    tls_io_join_response(p.io);
    send_all(p.server, "HTTP/1.1 405\r\n\r\n", 16);
    assert_int_equal(waiting(p.client_fd), 0);
    /* The body never came: the header record goes when the response ends. */
    assert_true(tls_io_response_done(p.io));
    expect_record(p.client, "HTTP/1.1 405\r\n\r\n", 16);

    /* Armed, and ended before anything was written: the next record goes at once. */
    tls_io_join_response(p.io);
    assert_true(tls_io_response_done(p.io));
    send_all(p.server, "next", 4);
    expect_record(p.client, "next", 4);
    assert_true(tls_io_response_done(NULL));
    free_pair(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_ahead),
        cmocka_unit_test(test_read_ahead_two_connections),
        cmocka_unit_test(test_read_ahead_split),
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_join_full_socket),
        cmocka_unit_test(test_join_partial),
        cmocka_unit_test(test_response_done_writes_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
