/*
 * http_loop: the HTTP threads, each running the epoll loop of one
 * libmicrohttpd daemon, all of them accepting on one listening socket.
 *
 * libmicrohttpd's own loop (MHD_USE_EPOLL_INTERNAL_THREAD, 0.9.75 to at
 * least 1.0.1) reads at most 128 events per epoll_wait(); when it gets a
 * full 128 it calls epoll_wait() again for more, with the timeout it
 * computed before it had any work (up to the idle timeout), and handles
 * the 128 connections it holds only after that second call returns. When
 * exactly 128 (or 256, ...) connections of a thread become readable
 * together and nothing else happens on that thread, they all wait for the
 * idle timeout: edge-triggered, their events are spent. Here each daemon is
 * driven from outside: the thread polls the daemon's epoll descriptor with
 * MHD_get_timeout()'s timeout and then calls MHD_run(), whose inner
 * epoll_wait() calls never block, so every batch read is handled at once.
 * A thread sleeps in poll() on the daemon's epoll descriptor and on an
 * eventfd of its own, by which http_loop_resume() and the controller
 * (quiesce, stop) wake it.
 *
 * The daemons share the first one's listening socket, as libmicrohttpd's
 * thread pool does: whichever thread is free accepts.
 *
 * Every listener of receiptd runs on such a loop: the public one with a
 * thread per --threads, the --redirect-http and admin listeners with one.
 *
 * SIGPIPE: the threads are started with every signal blocked (thread.h),
 * and the daemons are told so (MHD_OPTION_SIGPIPE_HANDLED_BY_APP), which
 * lets the library use sendfile() and vectored sends; without it, driven
 * from threads not its own, it gives them up (a 100 KiB file went out a few
 * KiB a turn, at a quarter of the rate). http_loop_stop() closes
 * connections on the caller's thread, which must ignore or block SIGPIPE
 * too (receiptd ignores it).
 */
#ifndef RECEIPT_DAEMON_HTTP_LOOP_H
#define RECEIPT_DAEMON_HTTP_LOOP_H

#include "common/compiler.h"

#include <microhttpd.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct http_loop http_loop;

typedef struct http_loop_settings {
    const char *name;              /* the threads' name (at most 15 bytes); NULL: "http" */
    unsigned threads;              /* daemons, one thread each: 1.. */
    unsigned flags;                /* MHD_USE_* without a polling mode: see below */
    const struct sockaddr *listen; /* where the first daemon binds (port 0: any) */
    unsigned max_connections;      /* over all daemons, shared out as the thread pool does */
    MHD_AcceptPolicyCallback accept_policy; /* may be NULL */
    void *accept_policy_cls;
    MHD_AccessHandlerCallback handler;
    void *handler_cls;
    /* Every other option, for every daemon (borrowed; read during the call):
     * no MHD_OPTION_SOCK_ADDR, LISTEN_SOCKET, THREAD_POOL_SIZE, CONNECTION_LIMIT,
     * LISTENING_ADDRESS_REUSE (the library's default, SO_REUSEADDR, is kept) or
     * SIGPIPE_HANDLED_BY_APP, which the loop sets. */
    const struct MHD_OptionItem *options;
} http_loop_settings;
/* To flags, the loop adds MHD_USE_EPOLL, and with MHD_USE_TLS takes away
 * MHD_USE_TURBO, which would leave out the close_notify that ends a TLS
 * connection. */

/*
 * Starts the daemons and their threads: 0, or -1 with err set. *loop is set
 * before the first request is read (request handlers may use it), and NULL
 * again on failure.
 */
WARN_UNUSED_RESULT int http_loop_start(const http_loop_settings *s, http_loop **loop, char *err,
                                       size_t errlen);

/*
 * MHD_resume_connection(), and a wake-up of the thread whose daemon holds
 * the connection: without a polling thread of its own, libmicrohttpd (0.9.75)
 * has no wake-up channel, and a resume from another thread would wait for the
 * next event of that thread. Resumes that find the thread woken and not yet
 * turning write nothing more. Any thread; the connection must be suspended.
 */
void http_loop_resume(http_loop *loop, struct MHD_Connection *connection);

/* The port the listening socket is bound to. */
unsigned http_loop_port(const http_loop *loop);

/*
 * Stops accepting and closes the listening socket (new connections are
 * refused); open connections are served on. Each daemon is quiesced on its
 * own thread, between two turns of its loop. Idempotent.
 */
void http_loop_quiesce(http_loop *loop);

/*
 * Stops the threads, then the daemons (closing every connection; a
 * suspended one must have been resumed first), and frees the loop.
 * NULL-safe.
 */
void http_loop_stop(http_loop *loop);

/*
 * An MHD_OPTION_NOTIFY_COMPLETED callback for a listener whose request
 * context is one malloc()'d block (the admin and redirect listeners):
 * frees it.
 */
void http_loop_free_request(void *cls, struct MHD_Connection *c, void **req_cls,
                            enum MHD_RequestTerminationCode toe);

#endif
