/*
 * jcs: the JSON Canonicalization Scheme of RFC 8785.
 *
 * A ledger event is committed to by hashing its canonical text, so that the
 * server and any verifier, in any language, derive the same bytes from the
 * same value. The canonical form has no whitespace, object members sorted by
 * the UTF-16 code units of their names, strings escaped only where JSON
 * requires it (the two-character escapes \b \t \n \f \r \" \\, \u00xx in
 * lower-case hex for the other control characters, every other character as
 * UTF-8), and numbers written as ECMAScript writes an IEEE 754 double: the
 * shortest digits that read back to the same double, plain notation from
 * 1e-6 to below 1e21, exponent notation outside it, -0 as 0.
 *
 * Refused, as RFC 8785 and I-JSON (RFC 7493) require: NaN and the
 * infinities, integers beyond what a double holds exactly (a json_integer
 * outside +-(2^53 - 1); parsed numbers are doubles already), invalid UTF-8
 * (lone surrogates included), duplicate member names, nesting deeper than
 * JCS_MAX_DEPTH and output longer than JCS_MAX_LEN.
 *
 * Every output buffer is malloc'd, NUL-terminated and owned by the caller.
 * Thread-safe; the C locale's decimal point is not assumed (the number
 * formatter does not depend on the locale).
 */
#ifndef RECEIPT_COMMON_JCS_H
#define RECEIPT_COMMON_JCS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define JCS_MAX_DEPTH  64
#define JCS_MAX_LEN    (1024 * 1024) /* bytes of canonical text */
#define JCS_NUMBER_MAX 32            /* bytes that jcs_format_number() writes, with the NUL */

typedef enum jcs_result {
    JCS_OK = 0,
    JCS_SYNTAX,    /* not JSON                                               */
    JCS_DUPLICATE, /* an object names a member twice                        */
    JCS_NUMBER,    /* NaN, an infinity, or an integer a double cannot hold  */
    JCS_UTF8,      /* a string or a member name is not valid UTF-8          */
    JCS_TOO_DEEP,  /* nested deeper than JCS_MAX_DEPTH                      */
    JCS_TOO_LONG,  /* input or output longer than JCS_MAX_LEN               */
    JCS_NOMEM,
} jcs_result;

const char *jcs_result_str(jcs_result r);

/*
 * The canonical text of value (any JSON type). On JCS_OK, *out receives the
 * text and *len (when not NULL) its length.
 */
jcs_result jcs_dump(const json_t *value, char **out, size_t *len);

/*
 * Parses n bytes (at most JCS_MAX_LEN) of one JSON value, refusing duplicate
 * member names and reading every number as a double. \u0000 is allowed in
 * string values but not in member names (jansson keeps those as C strings
 * when it parses). The caller owns the returned reference.
 */
jcs_result jcs_parse(const char *text, size_t n, json_t **out);

/* jcs_parse() then jcs_dump(). */
jcs_result jcs_canonicalize(const char *text, size_t n, char **out, size_t *len);

/*
 * Whether n bytes of text are already canonical: JSON that jcs_canonicalize()
 * maps to exactly the same bytes. A verifier checks this before trusting a
 * committed event, so that one value has one accepted spelling.
 */
bool jcs_is_canonical(const char *text, size_t n);

/*
 * Writes the ECMAScript form of v into out (JCS_NUMBER_MAX bytes) and returns
 * its length, or returns 0 when v is NaN or infinite.
 */
size_t jcs_format_number(double v, char out[JCS_NUMBER_MAX]);

#endif
