/*
 * b64: base64url (RFC 4648 section 5, no padding) and standard base64.
 *
 * The decoder is strict: it refuses padding, characters outside the
 * alphabet, a length that no encoding produces, and non-zero trailing bits,
 * so that every value has exactly one accepted spelling. Callers own every
 * buffer; nothing here allocates.
 */
#ifndef RECEIPT_COMMON_B64_H
#define RECEIPT_COMMON_B64_H

#include <stddef.h>
#include <stdint.h>

/* Characters (without the terminating NUL) that encoding n bytes produces. */
size_t b64url_encoded_len(size_t n);

/* Largest number of bytes that n characters can decode to. */
size_t b64url_decoded_max(size_t n);

/*
 * Encodes n bytes of in into out, which must hold b64url_encoded_len(n) + 1
 * bytes. Writes a terminating NUL; returns the length without it.
 */
size_t b64url_encode(const uint8_t *in, size_t n, char *out);

/*
 * Decodes n characters of in into out (cap bytes). Returns the number of
 * bytes written, or -1 when the input is not canonical base64url or does not
 * fit.
 */
long b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* Standard base64 with padding (for Repr-Digest); out holds 4*ceil(n/3)+1. */
size_t b64std_encode(const uint8_t *in, size_t n, char *out);

/*
 * Decodes n characters of standard base64 with padding (signed notes and
 * checkpoints) into out (cap bytes). As strict as b64url_decode(): the length
 * is a multiple of four, padding only where the length requires it, no other
 * character, zero trailing bits. Returns the number of bytes written, or -1.
 */
long b64std_decode(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
