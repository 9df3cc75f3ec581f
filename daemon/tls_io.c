#include "daemon/tls_io.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* GnuTLS writes at most 32 buffers at a time (MAX_QUEUE); one more for the
 * kept record. */
#define TLS_IO_IOV_MAX 33

/* What a plain HTTP request to the TLS port gets (answered_plain_http()). */
#define PLAIN_HTTP_BODY                                                                            \
    "{\"error\":\"plain_http\",\"message\":\"This port speaks HTTPS: make the request to an "      \
    "https:// URL.\"}\n"

struct tls_io {
    int fd;
    gnutls_session_t session;
    /* Read ahead, not yet taken by GnuTLS, moved out of the thread's
     * buffer when another connection needed it: [spill_at, +spill_len). */
    uint8_t *spill;
    size_t spill_at, spill_len;
    /* A record GnuTLS counts as written, not yet on the socket. */
    uint8_t *kept;
    size_t kept_at, kept_len;
    bool join;    /* keep the next record written */
    bool started; /* bytes have arrived */
};

/*
 * Reads ahead land in a buffer of the thread, which one connection owns
 * while GnuTLS has not taken all of it: a record's two reads come one
 * after the other, so it is nearly always empty again before another
 * connection of the thread reads. When not, the owner's bytes move to a
 * buffer of its own (spill).
 */
typedef struct thread_ahead {
    tls_io *owner; /* NULL: empty */
    size_t at, len;
    uint8_t data[TLS_IO_READ_AHEAD];
} thread_ahead;

static _Thread_local thread_ahead ahead;

/* GnuTLS reads the error of a replaced transport from the session. */
static ssize_t fail_with(tls_io *io, int err)
{
    gnutls_transport_set_errno(io->session, err);
    return -1;
}

/*
 * A TLS connection starts with a record type (0x16, a handshake); a plain
 * HTTP request with its method. Such a client (an http:// URL with the
 * HTTPS port) gets a plain 400 that says so, as nginx and Caddy answer it,
 * rather than a connection closed without a word.
 */
static bool answered_plain_http(tls_io *io, const uint8_t *bytes, ssize_t n)
{
    if (io->started || n <= 0)
        return false;
    io->started = true;
    if (bytes[0] < 'A' || bytes[0] > 'Z')
        return false;
    _Static_assert(sizeof PLAIN_HTTP_BODY - 1 == 96, "the Content-Length below");
    static const char answer[] = "HTTP/1.1 400 Bad Request\r\n"
                                 "Content-Type: application/json\r\n"
                                 "Content-Length: 96\r\n"
                                 "Connection: close\r\n"
                                 "\r\n" PLAIN_HTTP_BODY;
    (void)!send(io->fd, answer, sizeof answer - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    return true;
}

static ssize_t recv_into(tls_io *io, void *buf, size_t len)
{
    ssize_t n = recv(io->fd, buf, len, 0);
    if (n < 0)
        return fail_with(io, errno);
    return answered_plain_http(io, buf, n) ? fail_with(io, ECONNRESET) : n;
}

static void drop_spill(tls_io *io)
{
    free(io->spill);
    io->spill = NULL;
    io->spill_at = io->spill_len = 0;
}

/* Moves the thread buffer's bytes to their owner's own; false when out of memory. */
static bool spill(void)
{
    tls_io *owner = ahead.owner;
    if ((owner->spill = malloc(ahead.len)) == NULL)
        return false;
    memcpy(owner->spill, ahead.data + ahead.at, ahead.len);
    owner->spill_at = 0;
    owner->spill_len = ahead.len;
    ahead.owner = NULL;
    return true;
}

static ssize_t give(void *data, size_t len, const uint8_t *from, size_t *at, size_t *left)
{
    size_t n = len < *left ? len : *left;
    memcpy(data, from + *at, n);
    *at += n;
    *left -= n;
    return (ssize_t)n;
}

static ssize_t pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
    tls_io *io = ptr;
    if (io->spill_len > 0) {
        ssize_t n = give(data, len, io->spill, &io->spill_at, &io->spill_len);
        if (io->spill_len == 0)
            drop_spill(io);
        return n;
    }
    if (ahead.owner != io) {
        /* The rest of a large record goes straight into GnuTLS's buffer. */
        if (len >= TLS_IO_READ_AHEAD || (ahead.owner != NULL && !spill()))
            return recv_into(io, data, len);
        ssize_t n = recv_into(io, ahead.data, TLS_IO_READ_AHEAD);
        if (n <= 0)
            return n;
        ahead.owner = io;
        ahead.at = 0;
        ahead.len = (size_t)n;
    }
    ssize_t n = give(data, len, ahead.data, &ahead.at, &ahead.len);
    if (ahead.len == 0)
        ahead.owner = NULL;
    return n;
}

/* Only when a timeout is set (libmicrohttpd sets none): whether a read
 * would find bytes within ms. */
static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
    tls_io *io = ptr;
    if (io->spill_len > 0 || ahead.owner == io)
        return 1;
    struct pollfd p = {.fd = io->fd, .events = POLLIN};
    int rc = poll(&p, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : ms > INT_MAX ? INT_MAX : (int)ms);
    return rc < 0 ? (int)fail_with(io, errno) : rc;
}

static void drop_kept(tls_io *io)
{
    free(io->kept);
    io->kept = NULL;
    io->kept_at = io->kept_len = 0;
}

/* Takes a copy of the record in iov, which GnuTLS then counts as written. */
static bool keep(tls_io *io, const giovec_t *iov, int iovcnt, size_t total)
{
    if (total == 0 || total > TLS_IO_KEEP_MAX || (io->kept = malloc(total)) == NULL)
        return false;
    size_t at = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(io->kept + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    io->kept_at = 0;
    io->kept_len = total;
    return true;
}

static ssize_t push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
    tls_io *io = ptr;
    if (io->join) {
        io->join = false;
        size_t total = 0;
        for (int i = 0; i < iovcnt; i++)
            total += iov[i].iov_len;
        if (io->kept_len == 0 && keep(io, iov, iovcnt, total))
            return (ssize_t)total;
    }
    struct iovec v[TLS_IO_IOV_MAX];
    int n = 0;
    if (io->kept_len > 0)
        v[n++] = (struct iovec){.iov_base = io->kept + io->kept_at, .iov_len = io->kept_len};
    for (int i = 0; i < iovcnt && n < TLS_IO_IOV_MAX; i++)
        v[n++] = (struct iovec){.iov_base = iov[i].iov_base, .iov_len = iov[i].iov_len};
    struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)n};
    ssize_t sent = sendmsg(io->fd, &msg, MSG_NOSIGNAL);
    if (sent < 0)
        return fail_with(io, errno);
    if (io->kept_len == 0)
        return sent;
    if ((size_t)sent < io->kept_len) {
        /* The socket is full: none of GnuTLS's record went, and it will be
         * written again once the socket is writable, after the rest of
         * the kept one. */
        io->kept_at += (size_t)sent;
        io->kept_len -= (size_t)sent;
        return fail_with(io, EAGAIN);
    }
    sent -= (ssize_t)io->kept_len;
    drop_kept(io);
    /* 0 when the socket took only the kept record: GnuTLS reports EAGAIN,
     * as for any short write. */
    return sent;
}

tls_io *tls_io_attach(gnutls_session_t session, int fd)
{
    tls_io *io = calloc(1, sizeof *io);
    if (io == NULL)
        return NULL;
    io->fd = fd;
    io->session = session;
    gnutls_transport_set_ptr(session, io);
    gnutls_transport_set_pull_function(session, pull);
    gnutls_transport_set_pull_timeout_function(session, pull_timeout);
    gnutls_transport_set_vec_push_function(session, push);
    return io;
}

void tls_io_join_response(tls_io *io)
{
    if (io != NULL)
        io->join = true;
}

bool tls_io_response_done(tls_io *io)
{
    if (io == NULL)
        return true;
    io->join = false;
    if (io->kept_len == 0)
        return true;
    ssize_t sent = send(io->fd, io->kept + io->kept_at, io->kept_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    bool whole = sent >= 0 && (size_t)sent == io->kept_len;
    drop_kept(io);
    if (!whole)
        shutdown(io->fd, SHUT_RDWR);
    return whole;
}

void tls_io_free(tls_io *io)
{
    if (io == NULL)
        return;
    if (ahead.owner == io)
        ahead.owner = NULL;
    drop_spill(io);
    drop_kept(io);
    free(io);
}
