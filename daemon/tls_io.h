/*
 * tls_io: the socket under a TLS connection's GnuTLS session, in place of
 * GnuTLS's own recv() and sendmsg().
 *
 * GnuTLS reads each record with two recv() calls (its 5-byte header, then
 * the rest), and libmicrohttpd 0.9.75 hands GnuTLS a response's header
 * block and its body in two gnutls_record_send() calls, which GnuTLS writes
 * one at a time: two sendmsg() calls a response, and two TCP segments when
 * the header block is not small (libmicrohttpd corks the socket only for
 * answers under 1400 bytes). A tls_io
 *
 * - reads ahead: one recv() of up to TLS_IO_READ_AHEAD bytes serves both
 *   steps of a record, and the records that arrived with it. The buffer is
 *   the thread's; a connection holds memory of its own for bytes read ahead
 *   only while another connection of its thread has needed the buffer
 *   before GnuTLS took them (pipelined requests), so that an idle
 *   connection holds none.
 *
 * - writes a response at once: after tls_io_join_response(), the next
 *   record GnuTLS writes (the header block's) is kept, and goes out in one
 *   sendmsg() with the record after it (the body's first). The caller arms
 *   it only for a response whose body libmicrohttpd sends after the header
 *   block, so that the record which takes the kept one along always comes;
 *   a socket that cannot take both makes the write report EAGAIN as it
 *   would have without the join, and the library retries once the socket is
 *   writable, the kept bytes first.
 *
 * Records are not merged: each is sealed on its own, as GnuTLS made it.
 * GnuTLS does not enable kernel TLS under a replaced transport (it is off
 * unless the system's GnuTLS configuration turns it on).
 *
 * A tls_io belongs to its connection's thread: every function runs there,
 * from libmicrohttpd's callbacks or GnuTLS's (libmicrohttpd runs a
 * connection, its start and its end on one thread).
 */
#ifndef RECEIPT_DAEMON_TLS_IO_H
#define RECEIPT_DAEMON_TLS_IO_H

#include <gnutls/gnutls.h>
#include <stdbool.h>

/* One recv() a read; enough for a request's headers with their cookies. */
#define TLS_IO_READ_AHEAD (4 * 1024)
/* The largest record kept for the next: a full one, sealed. */
#define TLS_IO_KEEP_MAX (16 * 1024 + 256)

typedef struct tls_io tls_io;

/*
 * Puts a tls_io under session, whose socket is fd (both borrowed). Returns
 * NULL when out of memory; the session then keeps GnuTLS's own transport.
 */
tls_io *tls_io_attach(gnutls_session_t session, int fd);

/* The next record written is a response's header block whose body follows:
 * keep it for the body's first record. NULL-safe. */
void tls_io_join_response(tls_io *io);

/*
 * The response is complete. A record still kept (a body that never came)
 * is written now; returns false when the socket did not take all of it, in
 * which case the connection has been shut down rather than left waiting for
 * bytes that would never come. NULL-safe.
 */
bool tls_io_response_done(tls_io *io);

/* Frees io once its session has been deinitialised, on its thread. NULL-safe. */
void tls_io_free(tls_io *io);

#endif
