#include "daemon/http_loop.h"

#include "daemon/log.h"
#include "daemon/thread.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_POLL_RETRY_NS (10 * 1000 * 1000) /* after a failed poll(): no spinning */

typedef enum loop_command {
    LOOP_RUN = 0,
    LOOP_QUIESCE, /* stop accepting */
    LOOP_STOP,    /* stop accepting, and end the thread */
} loop_command;

typedef struct loop_thread {
    http_loop *loop;
    struct MHD_Daemon *mhd;
    int epoll_fd; /* the daemon's */
    int wake_fd;  /* eventfd: a resumed connection, or a command */
    /* Set by the first resume since the thread last took its wake-up:
     * the ones after it find the thread woken already and write nothing
     * (a batch's commit resumes its confirmations one after another). */
    atomic_bool resume_pending;
    pthread_t thread;
    bool running;
    bool quiesced;     /* written by the thread while it runs, by the controller otherwise */
    loop_command done; /* the last command carried out; guarded by the loop's lock */
} loop_thread;

struct http_loop {
    char name[16]; /* the threads' */
    loop_thread *threads;
    size_t count; /* daemons started */
    MHD_socket listen_fd;
    bool listen_closed;
    unsigned port;
    pthread_mutex_t lock;
    pthread_cond_t acked_cond;
    loop_command command; /* guarded by lock */
};

static void quiesce_daemon(loop_thread *t)
{
    if (!t->quiesced) {
        (void)MHD_quiesce_daemon(t->mhd); /* the socket is shared: the controller closes it */
        t->quiesced = true;
    }
}

/*
 * Woken: a connection was resumed from another thread (MHD_run() takes it
 * up), or the controller has a command, carried out here between two turns
 * of the loop. Returns the command in force.
 */
static loop_command take_wake(loop_thread *t)
{
    http_loop *loop = t->loop;
    uint64_t n;
    if (read(t->wake_fd, &n, sizeof n) < 0 && errno != EAGAIN && errno != EINTR)
        log_error("http: reading the wake-up: %s", strerror(errno));
    /* Cleared after the read, before the turn: a resume that found it set
     * came before this exchange (which reads what it wrote), so the turn
     * sees it; one after it finds it clear and writes again. Cleared
     * before the read, a write made in between would be read here and its
     * flag left set with nothing to read: every later resume would wait. */
    (void)atomic_exchange(&t->resume_pending, false);
    pthread_mutex_lock(&loop->lock);
    loop_command cmd = loop->command;
    if (t->done != cmd) {
        quiesce_daemon(t); /* every command but LOOP_RUN, which is never sent */
        t->done = cmd;
        pthread_cond_broadcast(&loop->acked_cond);
    }
    pthread_mutex_unlock(&loop->lock);
    return cmd;
}

static void wake(loop_thread *t)
{
    uint64_t one = 1;
    while (write(t->wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

void http_loop_resume(http_loop *loop, struct MHD_Connection *connection)
{
    /* Read before the resume: from then on the connection is its thread's,
     * which may close and free it. */
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_DAEMON);
    struct MHD_Daemon *daemon = info != NULL ? info->daemon : NULL;
    MHD_resume_connection(connection);
    for (size_t i = 0; i < loop->count; i++) {
        loop_thread *t = &loop->threads[i];
        if (t->mhd == daemon) {
            /* After the resume: the thread that clears the flag runs its
             * turn after clearing it, so it sees this resume. */
            if (!atomic_exchange(&t->resume_pending, true))
                wake(t);
            return;
        }
    }
}

/* Also frees the connections closed in the last turn (without a thread of
 * its own, the library does so when asked). */
static unsigned open_connections(struct MHD_Daemon *mhd)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info != NULL ? info->num_connections : 0;
}

static void *loop_main(void *arg)
{
    loop_thread *t = arg;
    bool poll_failed = false;
    pthread_setname_np(pthread_self(), t->loop->name);

    struct pollfd fds[2] = {
        {.fd = t->epoll_fd, .events = POLLIN},
        {.fd = t->wake_fd, .events = POLLIN},
    };
    unsigned open = 0; /* connections after the last turn */
    for (;;) {
        /* MHD_get_timeout() is 0 while the daemon holds work it has read
         * (its ready list), else the nearest connection timeout. */
        MHD_UNSIGNED_LONG_LONG ms = 0;
        int timeout = -1;
        if (MHD_get_timeout(t->mhd, &ms) == MHD_YES)
            timeout = ms > INT_MAX ? INT_MAX : (int)ms;
        fds[0].revents = fds[1].revents = 0;
        if (poll(fds, 2, timeout) < 0 && errno != EINTR) {
            if (!poll_failed)
                log_error("http: poll: %s", strerror(errno));
            poll_failed = true;
            struct timespec pause = {.tv_sec = 0, .tv_nsec = LOOP_POLL_RETRY_NS};
            nanosleep(&pause, NULL);
        }
        bool stop = (fds[1].revents & POLLIN) != 0 && take_wake(t) == LOOP_STOP;
        /* Every epoll_wait() inside takes a timeout of 0. Once more on the
         * way out: the answers of connections resumed just before. */
        MHD_run(t->mhd);
        /* At its connection limit the library takes the listening socket
         * out of the epoll set, and puts it back first thing in a turn once
         * below: after a turn that closed connections, a turn more, or
         * new clients would wait for some other event. Connections open
         * and close only inside MHD_run(), so the count after a turn is
         * the count before the next. */
        unsigned after = open_connections(t->mhd);
        if (after < open) {
            MHD_run(t->mhd);
            after = open_connections(t->mhd);
        }
        open = after;
        if (stop)
            break;
    }
    return NULL;
}

/* Sends cmd to every running thread and waits until each carried it out. */
static void command(http_loop *loop, loop_command cmd)
{
    pthread_mutex_lock(&loop->lock);
    loop->command = cmd;
    pthread_mutex_unlock(&loop->lock);
    for (size_t i = 0; i < loop->count; i++) {
        if (loop->threads[i].running)
            wake(&loop->threads[i]);
    }
    pthread_mutex_lock(&loop->lock);
    for (size_t i = 0; i < loop->count; i++) {
        const loop_thread *t = &loop->threads[i];
        while (t->running && t->done != cmd)
            pthread_cond_wait(&loop->acked_cond, &loop->lock);
    }
    pthread_mutex_unlock(&loop->lock);
}

unsigned http_loop_port(const http_loop *loop)
{
    return loop->port;
}

void http_loop_quiesce(http_loop *loop)
{
    if (loop == NULL || loop->listen_closed)
        return;
    command(loop, LOOP_QUIESCE);
    for (size_t i = 0; i < loop->count; i++)
        quiesce_daemon(&loop->threads[i]); /* those without a thread */
    close(loop->listen_fd);
    loop->listen_closed = true;
}

void http_loop_stop(http_loop *loop)
{
    if (loop == NULL)
        return;
    command(loop, LOOP_STOP);
    for (size_t i = 0; i < loop->count; i++) {
        loop_thread *t = &loop->threads[i];
        if (t->running)
            pthread_join(t->thread, NULL);
        t->running = false;
        quiesce_daemon(t); /* every daemon shares the socket: none may close it */
    }
    if (!loop->listen_closed && loop->listen_fd != MHD_INVALID_SOCKET)
        close(loop->listen_fd);
    loop->listen_closed = true;
    for (size_t i = 0; i < loop->count; i++) {
        MHD_stop_daemon(loop->threads[i].mhd);
        close(loop->threads[i].wake_fd);
    }
    pthread_cond_destroy(&loop->acked_cond);
    pthread_mutex_destroy(&loop->lock);
    free(loop->threads);
    free(loop);
}

/* The share of max_connections of daemon i, as libmicrohttpd's pool makes it. */
static unsigned connection_share(const http_loop_settings *s, unsigned i)
{
    unsigned share = s->max_connections / s->threads + (i < s->max_connections % s->threads);
    return share > 0 ? share : 1;
}

static struct MHD_Daemon *start_daemon(const http_loop_settings *s, http_loop *loop, unsigned i)
{
    unsigned flags = s->flags | MHD_USE_EPOLL;
    /* MHD_USE_TURBO leaves out the library's close of a connection's write
     * side, which over TLS is its close_notify (gnutls_bye()): without it
     * every close is a bare TCP close, which RFC 8446 (6.1) forbids and
     * which a client cannot tell from a truncation by the network. */
    if (flags & MHD_USE_TLS)
        flags &= ~(unsigned)MHD_USE_TURBO;
    unsigned limit = connection_share(s, i);
    /* The threads take no signals (thread_start()): see the header. The
     * first daemon binds with the library's default, SO_REUSEADDR (a
     * restart binds at once), not SO_REUSEPORT: an address another process
     * listens on is refused, not shared with it. */
    const int sigpipe_blocked = 1;
    if (i == 0)
        return MHD_start_daemon(flags, 0, s->accept_policy, s->accept_policy_cls, s->handler,
                                s->handler_cls, MHD_OPTION_SOCK_ADDR, s->listen,
                                MHD_OPTION_CONNECTION_LIMIT, limit,
                                MHD_OPTION_SIGPIPE_HANDLED_BY_APP, sigpipe_blocked,
                                MHD_OPTION_ARRAY, s->options, MHD_OPTION_END);
    return MHD_start_daemon(flags, 0, s->accept_policy, s->accept_policy_cls, s->handler,
                            s->handler_cls, MHD_OPTION_LISTEN_SOCKET, loop->listen_fd,
                            MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_SIGPIPE_HANDLED_BY_APP,
                            sigpipe_blocked, MHD_OPTION_ARRAY, s->options, MHD_OPTION_END);
}

int http_loop_start(const http_loop_settings *s, http_loop **out, char *err, size_t errlen)
{
    *out = NULL;
    http_loop *loop = calloc(1, sizeof *loop);
    if (loop == NULL || s->threads == 0) {
        free(loop);
        snprintf(err, errlen, "%s", s->threads == 0 ? "no HTTP threads" : "out of memory");
        return -1;
    }
    loop->threads = calloc(s->threads, sizeof *loop->threads);
    if (loop->threads == NULL) {
        free(loop);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    loop->listen_fd = MHD_INVALID_SOCKET;
    snprintf(loop->name, sizeof loop->name, "%s", s->name != NULL ? s->name : "http");
    pthread_mutex_init(&loop->lock, NULL);
    pthread_cond_init(&loop->acked_cond, NULL);

    for (unsigned i = 0; i < s->threads; i++) {
        loop_thread *t = &loop->threads[i];
        t->loop = loop;
        atomic_init(&t->resume_pending, false);
        t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (t->wake_fd < 0) {
            snprintf(err, errlen, "eventfd: %s", strerror(errno));
            goto fail;
        }
        errno = 0;
        t->mhd = start_daemon(s, loop, i);
        if (t->mhd == NULL) {
            snprintf(err, errlen, "%s",
                     errno != 0 ? strerror(errno) : "the HTTP library refused the settings");
            close(t->wake_fd);
            goto fail;
        }
        loop->count++;
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(t->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        t->epoll_fd = info != NULL ? info->epoll_fd : -1;
        if (i == 0) {
            info = MHD_get_daemon_info(t->mhd, MHD_DAEMON_INFO_LISTEN_FD);
            loop->listen_fd = info != NULL ? info->listen_fd : MHD_INVALID_SOCKET;
            info = MHD_get_daemon_info(t->mhd, MHD_DAEMON_INFO_BIND_PORT);
            loop->port = info != NULL ? info->port : 0;
        }
        if (t->epoll_fd < 0 || loop->listen_fd == MHD_INVALID_SOCKET) {
            snprintf(err, errlen, "the HTTP library gave no epoll or listening descriptor");
            goto fail;
        }
    }
    *out = loop; /* before any request: the handlers resume through it */
    for (size_t i = 0; i < loop->count; i++) {
        loop_thread *t = &loop->threads[i];
        int rc = thread_start(&t->thread, loop_main, t);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start an HTTP thread: %s", strerror(rc));
            goto fail;
        }
        t->running = true;
    }
    return 0;

fail:
    *out = NULL;
    http_loop_stop(loop);
    return -1;
}

void http_loop_free_request(void *cls, struct MHD_Connection *c, void **req_cls,
                            enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    free(*req_cls);
    *req_cls = NULL;
}
