/*
 * utf8: strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
 * past U+10FFFF. Used wherever bytes from outside become JSON or headers.
 */
#ifndef RECEIPT_DAEMON_UTF8_H
#define RECEIPT_DAEMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the valid sequence at s (at most n bytes, n > 0), 0 if invalid. */
size_t utf8_sequence(const unsigned char *s, size_t n);

/* Whether all n bytes of s are valid UTF-8. */
bool utf8_valid(const char *s, size_t n);

#endif
