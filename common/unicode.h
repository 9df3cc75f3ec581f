/*
 * unicode: code points out of strict UTF-8, and the one Unicode property the
 * log formats need.
 *
 * Canonical JSON sorts member names by UTF-16 code units and signed notes
 * forbid Unicode spaces in key names; both need the code point, not only a
 * yes or no on validity. The decoder is strict (RFC 3629): no overlong forms,
 * no surrogates, nothing past U+10FFFF. Nothing here allocates.
 */
#ifndef RECEIPT_COMMON_UNICODE_H
#define RECEIPT_COMMON_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Decodes the sequence at s (n > 0 bytes available). Returns its length (1 to
 * 4) and stores the code point in *cp, or returns 0 when the bytes are not
 * valid UTF-8.
 */
size_t unicode_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Whether all n bytes of s are valid UTF-8. */
bool unicode_valid(const char *s, size_t n);

/*
 * Text made UTF-8 the way the ledger stores and logs it: each byte of s (n
 * bytes) that is not part of a valid sequence replaced by U+FFFD. Writes
 * into out, which must hold 3 n bytes; returns the length written.
 */
size_t unicode_repair(const char *s, size_t n, char *out);

/*
 * The inverse for storage in a fixed field: each U+FFFD of the UTF-8 text s
 * (n bytes) written as the single byte 0xFF, which is never UTF-8 and which
 * unicode_repair() turns back into U+FFFD, so that a repaired text fits the
 * field it was repaired from. Writes at most cap - 1 bytes and a NUL into
 * out (cap > 0); returns the length, or SIZE_MAX when it does not fit or s
 * holds a NUL.
 */
size_t unicode_fold_repaired(const char *s, size_t n, char *out, size_t cap);

/* Whether cp has the White_Space property (Unicode 15: 25 code points). */
bool unicode_is_space(uint32_t cp);

#endif
