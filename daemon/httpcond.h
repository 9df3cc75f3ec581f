/*
 * httpcond: the request headers that make a response conditional or partial
 * (RFC 9110 sections 13 and 14): entity-tag lists, HTTP dates, byte ranges.
 * Pure functions over strings, so they are fuzzed on their own.
 */
#ifndef RECEIPT_DAEMON_HTTPCOND_H
#define RECEIPT_DAEMON_HTTPCOND_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Whether an If-None-Match list names etag ("*" names every one). Weak
 * comparison, as If-None-Match asks. */
bool httpcond_etag_matches(const char *list, const char *etag);

/* Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"). */
bool httpcond_parse_date(const char *text, time_t *out);

typedef enum httpcond_range {
    HTTPCOND_RANGE_NONE,          /* absent, malformed or several: send it all */
    HTTPCOND_RANGE_PARTIAL,       /* [*start, *start + *len)                    */
    HTTPCOND_RANGE_UNSATISFIABLE, /* 416                                        */
} httpcond_range;

/* One byte range of a representation of size bytes. */
httpcond_range httpcond_parse_range(const char *range, uint64_t size, uint64_t *start,
                                    uint64_t *len);

#endif
