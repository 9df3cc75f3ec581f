/*
 * uuid7: UUIDv7 delivery IDs (RFC 9562).
 *
 * 48-bit Unix milliseconds, then a 12-bit counter in rand_a (RFC 9562
 * section 6.2, method 1) so that IDs made in the same millisecond, in any
 * thread, still sort in the order they were made, then 62 random bits.
 * Generation is thread-safe and lock-free.
 */
#ifndef RECEIPT_COMMON_UUID7_H
#define RECEIPT_COMMON_UUID7_H

#include <stddef.h>
#include <stdint.h>

#define UUID7_STR_LEN 36

typedef struct uuid7 {
    uint8_t bytes[16];
} uuid7;

/* A new ID; returns 0, or -1 if the system random source failed. */
int uuid7_new(uuid7 *out);

/* The same with a caller-given clock, for tests. */
int uuid7_new_at(uuid7 *out, uint64_t unix_ms);

/* Lowercase 8-4-4-4-12 text; out holds UUID7_STR_LEN + 1 bytes. */
void uuid7_format(const uuid7 *id, char out[UUID7_STR_LEN + 1]);

/* Parses exactly 36 lowercase characters of a version 7, variant 10 UUID. */
int uuid7_parse(const char *text, size_t n, uuid7 *out);

/* The millisecond timestamp an ID carries. */
uint64_t uuid7_unix_ms(const uuid7 *id);

#endif
