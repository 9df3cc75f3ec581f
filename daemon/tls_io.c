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

struct tls_io {
    int fd;
    gnutls_session_t session;
    /* Read from the socket, not yet taken by GnuTLS: [ahead_at, +ahead_len). */
    uint8_t *ahead;
    size_t ahead_at, ahead_len;
    /* A record GnuTLS counts as written, not yet on the socket. */
    uint8_t *kept;
    size_t kept_at, kept_len;
    bool join; /* keep the next record written */
};

/* GnuTLS reads the error of a replaced transport from the session. */
static ssize_t fail_with(tls_io *io, int err)
{
    gnutls_transport_set_errno(io->session, err);
    return -1;
}

static ssize_t recv_into(tls_io *io, void *buf, size_t len)
{
    ssize_t n = recv(io->fd, buf, len, 0);
    return n < 0 ? fail_with(io, errno) : n;
}

static void drop_ahead(tls_io *io)
{
    free(io->ahead);
    io->ahead = NULL;
    io->ahead_at = io->ahead_len = 0;
}

static ssize_t pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
    tls_io *io = ptr;
    if (io->ahead_len == 0) {
        /* The rest of a large record goes straight into GnuTLS's buffer. */
        if (len >= TLS_IO_READ_AHEAD)
            return recv_into(io, data, len);
        if (io->ahead == NULL && (io->ahead = malloc(TLS_IO_READ_AHEAD)) == NULL)
            return recv_into(io, data, len);
        ssize_t n = recv_into(io, io->ahead, TLS_IO_READ_AHEAD);
        if (n <= 0) {
            /* Drained (or closed): the connection waits holding nothing. */
            int err = errno;
            drop_ahead(io);
            errno = err;
            return n;
        }
        io->ahead_at = 0;
        io->ahead_len = (size_t)n;
    }
    size_t give = len < io->ahead_len ? len : io->ahead_len;
    memcpy(data, io->ahead + io->ahead_at, give);
    io->ahead_at += give;
    io->ahead_len -= give;
    return (ssize_t)give;
}

/* Only when a timeout is set (libmicrohttpd sets none): whether a read
 * would find bytes within ms. */
static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
    tls_io *io = ptr;
    if (io->ahead_len > 0)
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
    drop_ahead(io);
    drop_kept(io);
    free(io);
}
