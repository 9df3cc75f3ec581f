/*
 * decimal: an unsigned integer in plain decimal (no sign, no leading
 * zeros), as JSON and RFC 8785 write integers. Header only: it sits on
 * the request path (answers, event texts) and is a handful of
 * instructions.
 */
#ifndef RECEIPT_COMMON_DECIMAL_H
#define RECEIPT_COMMON_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#define DECIMAL_U64_MAX 20 /* digits of 2^64 - 1 */

/*
 * Writes v into the end of buf; returns its first digit, *len the number
 * of digits. buf is not NUL-terminated.
 */
static inline const char *decimal_u64(uint64_t v, char buf[DECIMAL_U64_MAX], size_t *len)
{
    size_t n = DECIMAL_U64_MAX;
    do {
        buf[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    *len = DECIMAL_U64_MAX - n;
    return buf + n;
}

#endif
