#include "daemon/upkeep.h"

#include "daemon/ledger.h"
#include "daemon/log.h"
#include "daemon/thread.h"

#include "daemon/clock.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct upkeep {
    const char *ledger_url;
    const char *state_dir;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping; /* guarded by lock */
    bool started;
    pthread_t thread;
};

/* One round; returns whether it succeeded. */
static bool run_once(upkeep *u)
{
    char err[LEDGER_ERR_MAX];
    ledger *lg = ledger_open(u->ledger_url, u->state_dir, false, err, sizeof err);
    if (lg == NULL) {
        log_error("ledger upkeep: %s; trying again in %d s", err, UPKEEP_RETRY_S);
        return false;
    }
    uint64_t now = clock_wall_ms();
    int made = ledger_prepare(lg, now, now + (uint64_t)LEDGER_MONTHS_AHEAD * 31 * 86400000ull);
    if (made < 0)
        log_error("ledger upkeep: %s; trying again in %d s", ledger_error(lg), UPKEEP_RETRY_S);
    else if (made > 0)
        log_info("ledger upkeep: made %d monthly partition%s of deliveries", made,
                 made == 1 ? "" : "s");
    ledger_close(lg);
    return made >= 0;
}

static void *upkeep_main(void *arg)
{
    upkeep *u = arg;
    unsigned wait_s = UPKEEP_INTERVAL_S; /* the writer's open just did it */
    pthread_mutex_lock(&u->lock);
    while (!u->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += wait_s;
        int rc = 0;
        while (!u->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&u->wake, &u->lock, &until);
        if (u->stopping)
            break;
        pthread_mutex_unlock(&u->lock);
        wait_s = run_once(u) ? UPKEEP_INTERVAL_S : UPKEEP_RETRY_S;
        pthread_mutex_lock(&u->lock);
    }
    pthread_mutex_unlock(&u->lock);
    return NULL;
}

upkeep *upkeep_start(const char *ledger_url, const char *state_dir)
{
    upkeep *u = calloc(1, sizeof *u);
    if (u == NULL)
        return NULL;
    u->ledger_url = ledger_url;
    u->state_dir = state_dir;
    if (!ledger_url_is_pg(ledger_url))
        return u; /* nothing to keep up */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->wake, &attr);
    pthread_condattr_destroy(&attr);

    int rc = thread_start(&u->thread, upkeep_main, u);
    if (rc != 0) {
        log_error("ledger upkeep: cannot start the thread: %s", strerror(rc));
        pthread_cond_destroy(&u->wake);
        pthread_mutex_destroy(&u->lock);
        free(u);
        return NULL;
    }
    u->started = true;
    return u;
}

void upkeep_stop(upkeep *u)
{
    if (u == NULL)
        return;
    if (u->started) {
        pthread_mutex_lock(&u->lock);
        u->stopping = true;
        pthread_cond_signal(&u->wake);
        pthread_mutex_unlock(&u->lock);
        pthread_join(u->thread, NULL);
        pthread_cond_destroy(&u->wake);
        pthread_mutex_destroy(&u->lock);
    }
    free(u);
}
