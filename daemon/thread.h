/*
 * thread: starting a thread that takes no signals.
 *
 * Signals belong to receiptd's main thread, which waits for them in
 * sigwait(); every other thread is started with all of them blocked, so
 * that none of them can take one first. Header only.
 */
#ifndef RECEIPT_DAEMON_THREAD_H
#define RECEIPT_DAEMON_THREAD_H

#include <pthread.h>
#include <signal.h>

/* pthread_create() with every signal blocked in the new thread; returns its result. */
static inline int thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

#endif
