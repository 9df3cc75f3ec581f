/*
 * clock: the two clocks the daemon reads, in milliseconds.
 *
 * clock_wall_ms() is Unix time: what goes into tickets, the ledger and
 * receipts. clock_mono_ms() never jumps: what deadlines and intervals are
 * measured with. Both are read from the vDSO (no system call).
 */
#ifndef RECEIPT_DAEMON_CLOCK_H
#define RECEIPT_DAEMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline uint64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
