/*
 * rnd: random bytes for nonces, IVs and IDs on the request path.
 *
 * OpenSSL's RAND_bytes() checks the process ID on every call (a getpid()
 * system call) to stay safe across fork(). Here each thread draws 4 KiB
 * from RAND_bytes() at a time and hands out slices, so that a request that
 * needs a UUID and a nonce costs no system call. Fork safety is kept by a
 * pthread_atfork() handler that discards the forking thread's buffer in the
 * child (the only thread the child has). Bytes are wiped from the buffer as
 * they are handed out. Not for long-term keys: use RAND_bytes() for those.
 */
#ifndef RECEIPT_COMMON_RND_H
#define RECEIPT_COMMON_RND_H

#include <stddef.h>
#include <stdint.h>

/* Fills out with n random bytes; returns 0, or -1 if the generator failed. */
int rnd_bytes(uint8_t *out, size_t n);

#endif
