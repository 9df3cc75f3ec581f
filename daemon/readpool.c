#include "daemon/readpool.h"

#include "daemon/clock.h"
#include "daemon/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct readpool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    char *url; /* NULL: the state directory's SQLite file */
    char *state_dir;
    size_t max;
    size_t open; /* handles made and not closed */
    ledger *idle[READPOOL_MAX];
    size_t idle_count;
    uint64_t logged_ms; /* the last open failure logged */
};

readpool *readpool_new(const char *url, const char *state_dir, size_t max)
{
    if (max == 0 || max > READPOOL_MAX)
        return NULL;
    readpool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->max = max;
    p->url = url != NULL ? strdup(url) : NULL;
    p->state_dir = state_dir != NULL ? strdup(state_dir) : NULL;
    if ((url != NULL && p->url == NULL) || (state_dir != NULL && p->state_dir == NULL))
        goto fail;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        goto fail;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&p->freed, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_destroy(&p->lock);
        goto fail;
    }
    return p;
fail:
    free(p->url);
    free(p->state_dir);
    free(p);
    return NULL;
}

void readpool_free(readpool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->idle_count; i++)
        ledger_close(p->idle[i]);
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->lock);
    free(p->url);
    free(p->state_dir);
    free(p);
}

ledger *readpool_take(readpool *p)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += READPOOL_WAIT_MS / 1000;
    until.tv_nsec += (long)(READPOOL_WAIT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    while (p->idle_count == 0 && p->open == p->max) {
        if (pthread_cond_timedwait(&p->freed, &p->lock, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
    }
    if (p->idle_count > 0) {
        ledger *lg = p->idle[--p->idle_count];
        pthread_mutex_unlock(&p->lock);
        return lg;
    }
    p->open++; /* reserved while it opens, outside the lock */
    pthread_mutex_unlock(&p->lock);

    char err[LEDGER_ERR_MAX];
    ledger *lg = ledger_open(p->url, p->state_dir, true, err, sizeof err);
    if (lg == NULL) {
        pthread_mutex_lock(&p->lock);
        p->open--;
        uint64_t now = clock_mono_ms();
        bool say = now - p->logged_ms >= READPOOL_ERR_INTERVAL;
        if (say)
            p->logged_ms = now;
        pthread_cond_signal(&p->freed);
        pthread_mutex_unlock(&p->lock);
        if (say)
            log_error("evidence log: cannot open a reading handle on the ledger: %s", err);
    }
    return lg;
}

void readpool_give(readpool *p, ledger *lg, bool failed)
{
    if (lg == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    if (failed) {
        p->open--;
    } else {
        p->idle[p->idle_count++] = lg;
        lg = NULL;
    }
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
    ledger_close(lg); /* NULL-safe; a failed one, outside the lock */
}
