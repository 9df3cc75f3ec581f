/*
 * admin_auth: failed admin authentications, counted, logged and slowed.
 *
 * A presented token that is wrong is a failure. Failures are counted (for
 * /metrics) and logged at most once a second, with the count and the
 * address of the last one. Each client address gets ADMIN_AUTH_FREE
 * failures; after that every failure locks the address out for a time that
 * doubles from 1 s to ADMIN_AUTH_LOCK_MAX_MS, during which every request
 * from it to the API is answered 429 with Retry-After, without looking at
 * its token: guessing gets no faster than one try per lockout. A success
 * forgets the address; so does ADMIN_AUTH_FORGET_MS without a failure.
 *
 * Memory is bounded: ADMIN_AUTH_TRACKED addresses at most; when the table
 * is full, the address whose last failure is oldest makes room. Used by
 * the admin listener's one thread only: no locks.
 */
#ifndef RECEIPT_DAEMON_ADMIN_AUTH_H
#define RECEIPT_DAEMON_ADMIN_AUTH_H

#include "common/compiler.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADMIN_AUTH_TRACKED     1024
#define ADMIN_AUTH_FREE        10
#define ADMIN_AUTH_LOCK_MIN_MS 1000
#define ADMIN_AUTH_LOCK_MAX_MS 60000
#define ADMIN_AUTH_FORGET_MS   (15 * 60 * 1000)
#define ADMIN_AUTH_REPORT_MS   1000

typedef struct admin_auth admin_auth;

typedef struct admin_auth_stats {
    uint64_t failures;  /* wrong tokens presented */
    uint64_t throttled; /* requests answered 429 during a lockout */
    uint64_t tracked;   /* addresses in the table now */
} admin_auth_stats;

WARN_UNUSED_RESULT admin_auth *admin_auth_new(void);
void admin_auth_free(admin_auth *a); /* NULL-safe */

/*
 * Whether the address is locked out at now_ms; if so, *retry_after_s says
 * for how long (whole seconds, at least 1) and the request is counted as
 * throttled. addr is NULL when unknown (never locked out).
 */
bool admin_auth_locked(admin_auth *a, const struct sockaddr *addr, uint64_t now_ms,
                       unsigned *retry_after_s);
void admin_auth_failed(admin_auth *a, const struct sockaddr *addr, uint64_t now_ms);
void admin_auth_succeeded(admin_auth *a, const struct sockaddr *addr);

void admin_auth_get_stats(const admin_auth *a, admin_auth_stats *out);

#endif
