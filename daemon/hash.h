/*
 * hash: FNV-1a (64-bit), the hash of the daemon's in-memory tables (content
 * paths, MIME extensions, client-key headers). Their keys are public or
 * bounded by the tables' own limits, so no keyed hash is needed; a table
 * that an adversary can fill has a capped size.
 */
#ifndef RECEIPT_DAEMON_HASH_H
#define RECEIPT_DAEMON_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t hash_fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3u;
    }
    return h;
}

#endif
