#include "daemon/admin_auth.h"

#include "daemon/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tracked {
    uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d */
    bool used;
    uint32_t failures; /* in a row */
    uint64_t last_failure_ms;
    uint64_t locked_until_ms;
} tracked;

struct admin_auth {
    tracked table[ADMIN_AUTH_TRACKED];
    admin_auth_stats stats;
    uint64_t reported_ms;
    uint64_t unreported; /* failures since the last log line */
};

/* The address as 16 bytes; false when it is neither IPv4 nor IPv6. */
static bool key_of(const struct sockaddr *sa, uint8_t out[16])
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    if (sa->sa_family == AF_INET) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    return false;
}

static void key_text(const uint8_t key[16], char *out, size_t cap)
{
    static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(key, v4_prefix, 12) == 0)
        inet_ntop(AF_INET, key + 12, out, (socklen_t)cap);
    else
        inet_ntop(AF_INET6, key, out, (socklen_t)cap);
}

static tracked *find(admin_auth *a, const uint8_t key[16])
{
    for (size_t i = 0; i < ADMIN_AUTH_TRACKED; i++)
        if (a->table[i].used && memcmp(a->table[i].addr, key, 16) == 0)
            return &a->table[i];
    return NULL;
}

/* A free slot, or the one whose last failure is oldest. */
static tracked *make_room(admin_auth *a)
{
    tracked *oldest = &a->table[0];
    for (size_t i = 0; i < ADMIN_AUTH_TRACKED; i++) {
        if (!a->table[i].used)
            return &a->table[i];
        if (a->table[i].last_failure_ms < oldest->last_failure_ms)
            oldest = &a->table[i];
    }
    a->stats.tracked--;
    return oldest;
}

admin_auth *admin_auth_new(void)
{
    return calloc(1, sizeof(admin_auth));
}

void admin_auth_free(admin_auth *a)
{
    free(a);
}

bool admin_auth_locked(admin_auth *a, const struct sockaddr *addr, uint64_t now_ms,
                       unsigned *retry_after_s)
{
    uint8_t key[16];
    if (!key_of(addr, key))
        return false;
    tracked *t = find(a, key);
    if (t == NULL || now_ms >= t->locked_until_ms)
        return false;
    uint64_t wait = t->locked_until_ms - now_ms;
    *retry_after_s = (unsigned)((wait + 999) / 1000);
    a->stats.throttled++;
    return true;
}

void admin_auth_failed(admin_auth *a, const struct sockaddr *addr, uint64_t now_ms)
{
    uint8_t key[16];
    char text[INET6_ADDRSTRLEN] = "unknown";
    a->stats.failures++;
    a->unreported++;
    tracked *t = NULL;
    if (key_of(addr, key)) {
        key_text(key, text, sizeof text);
        t = find(a, key);
        if (t != NULL && now_ms - t->last_failure_ms > ADMIN_AUTH_FORGET_MS)
            t->failures = 0; /* long ago: a fresh start */
        if (t == NULL) {
            t = make_room(a);
            memset(t, 0, sizeof *t);
            memcpy(t->addr, key, 16);
            t->used = true;
            a->stats.tracked++;
        }
        t->failures++;
        t->last_failure_ms = now_ms;
        if (t->failures > ADMIN_AUTH_FREE) {
            unsigned doublings = t->failures - ADMIN_AUTH_FREE - 1;
            uint64_t lock = doublings >= 16 ? ADMIN_AUTH_LOCK_MAX_MS
                                            : (uint64_t)ADMIN_AUTH_LOCK_MIN_MS << doublings;
            if (lock > ADMIN_AUTH_LOCK_MAX_MS)
                lock = ADMIN_AUTH_LOCK_MAX_MS;
            t->locked_until_ms = now_ms + lock;
        }
    }
    /* One line a second at most: a brute force must not also flood the log. */
    if (a->reported_ms != 0 && now_ms - a->reported_ms < ADMIN_AUTH_REPORT_MS)
        return;
    log_warn("admin: %llu failed authentications since the last report, the last from %s "
             "(%u in a row from it%s)",
             (unsigned long long)a->unreported, text, t != NULL ? t->failures : 1,
             t != NULL && t->failures > ADMIN_AUTH_FREE ? "; now answered 429 for a while" : "");
    a->unreported = 0;
    a->reported_ms = now_ms;
}

void admin_auth_succeeded(admin_auth *a, const struct sockaddr *addr)
{
    uint8_t key[16];
    if (!key_of(addr, key))
        return;
    tracked *t = find(a, key);
    if (t != NULL) {
        memset(t, 0, sizeof *t);
        a->stats.tracked--;
    }
}

void admin_auth_get_stats(const admin_auth *a, admin_auth_stats *out)
{
    *out = a->stats;
}
