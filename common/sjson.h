/*
 * sjson: strict JSON input on top of jansson.
 *
 * Protocol messages are parsed with a size cap, a nesting cap checked before
 * jansson sees the text (so deep input cannot exhaust the stack), duplicate
 * members refused, and integers that do not fit refused. The accessors
 * return NULL or an error instead of guessing at a missing or mistyped
 * member.
 */
#ifndef RECEIPT_COMMON_SJSON_H
#define RECEIPT_COMMON_SJSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SJSON_MAX_DEPTH 8
#define SJSON_MAX_LEN   (64 * 1024) /* bytes of JSON text */

/*
 * Parses n bytes (at most SJSON_MAX_LEN) that must be one JSON object, nested
 * at most max_depth levels (0 means SJSON_MAX_DEPTH; the object itself is
 * level 1). On failure returns NULL and,
 * when err is not NULL, writes a short reason for a person. The caller owns
 * the returned reference.
 */
json_t *sjson_parse_object(const char *text, size_t n, size_t max_depth, char *err, size_t errlen);

/* Member accessors: NULL / false when absent or of another type. */
const char *sjson_string(const json_t *obj, const char *key, size_t *len);
const json_t *sjson_object(const json_t *obj, const char *key);
/* A non-negative integer member that fits in int64; false otherwise. */
bool sjson_uint(const json_t *obj, const char *key, uint64_t *out);

/* Compact serialisation with members in insertion order; malloc'd. */
char *sjson_dump(const json_t *value);

/*
 * A reader of JSON as this project's own peers write it, for the hot paths
 * that would otherwise build a jansson tree for a few known members: plain
 * strings (printable ASCII without escapes) and whole numbers in digits.
 * Each function consumes what it takes (whitespace before it included) and
 * returns false on anything else, valid JSON or not: the caller then gives
 * the whole text to the full parser, which decides. The text is mutable:
 * a string taken is NUL-terminated in place of its closing quote, so a
 * caller that falls back must parse an unchanged copy.
 */
typedef struct sjson_plain {
    char *p, *end;
} sjson_plain;

/* The punctuation c ('{', '}', ',', ':'). */
bool sjson_plain_take(sjson_plain *s, char c);
/* A string of bytes 0x20 to 0x7e other than '"' and '\'; *out points at
 * it, NUL-terminated, *len its length. */
bool sjson_plain_string(sjson_plain *s, const char **out, size_t *len);
/* Digits without a leading zero, at most 15 (exactly what jansson reads as
 * that integer), not followed by a fraction or an exponent. */
bool sjson_plain_uint(sjson_plain *s, uint64_t *out);
/* The literal null. */
bool sjson_plain_null(sjson_plain *s);
/* Only whitespace is left. */
bool sjson_plain_end(sjson_plain *s);

#endif
