#include "bench/bench_log.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

int bench_log_start(ledger *lg, const char *state_dir, size_t batch, keystore **keys, tlog **log,
                    char *err, size_t errlen)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    bool created = false;
    tlog *t = NULL;
    keystore *ks = keystore_open(state_dir, true, &created, err, errlen);
    if (ks == NULL)
        return -1;
    if (keystore_add_log_key(ks, state_dir, "bench.invalid/_receipt/log", now_ms, err, errlen) < 0)
        goto fail;
    t = tlog_new(ks);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (tlog_load(t, lg, err, errlen) != 0 || tlog_catch_up(t, lg, batch, err, errlen) != 0)
        goto fail;
    *keys = ks;
    *log = t;
    return 0;
fail:
    tlog_free(t);
    keystore_free(ks);
    return -1;
}
