/*
 * addrcount: how many of something (connections, requests in progress)
 * each client address holds, for the per-address limits.
 *
 * Addresses are the 16-byte form of proxy.h. A client chooses its address
 * (an IPv6 client has a /64 to pick from), so the table is a balanced tree
 * (tsearch), whose cost no choice of addresses can degrade, rather than a
 * hash table; and it holds at most max_entries addresses, past which it
 * refuses new ones. Thread-safe: one mutex, held for a tree operation.
 */
#ifndef RECEIPT_DAEMON_ADDRCOUNT_H
#define RECEIPT_DAEMON_ADDRCOUNT_H

#include "common/compiler.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct addrcount addrcount;

/* NULL when out of memory. */
WARN_UNUSED_RESULT addrcount *addrcount_new(size_t max_entries);
void addrcount_free(addrcount *t); /* NULL-safe */

/*
 * Counts one more for addr if it holds fewer than limit. False when it is
 * at the limit, or new and the table is full: nothing is counted then.
 */
WARN_UNUSED_RESULT bool addrcount_take(addrcount *t, const uint8_t addr[16], unsigned limit);

/* One less for addr (it must have been taken); gone at zero. */
void addrcount_give_back(addrcount *t, const uint8_t addr[16]);

/* What addr holds now. */
unsigned addrcount_get(addrcount *t, const uint8_t addr[16]);

/* Addresses in the table now. */
size_t addrcount_size(addrcount *t);

#endif
