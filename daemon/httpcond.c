#include "daemon/httpcond.h"

#include <string.h>

#define HTTPCOND_DIGITS_MAX 19 /* below 2^63: no overflow to check for */

bool httpcond_etag_matches(const char *list, const char *etag)
{
    if (strcmp(list, "*") == 0)
        return true;
    size_t etag_len = strlen(etag);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, etag_len) == 0 && (p[etag_len] == '\0' || p[etag_len] == ',' ||
                                                p[etag_len] == ' ' || p[etag_len] == '\t'))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

bool httpcond_parse_date(const char *text, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0')
        return false;
    *out = timegm(&tm);
    return true;
}

/* Reads 1 to HTTPCOND_DIGITS_MAX decimal digits; NULL if there are none or
 * too many. */
static const char *read_number(const char *p, uint64_t *out)
{
    uint64_t v = 0;
    int n = 0;
    while (*p >= '0' && *p <= '9') {
        if (++n > HTTPCOND_DIGITS_MAX)
            return NULL;
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (n == 0)
        return NULL;
    *out = v;
    return p;
}

httpcond_range httpcond_parse_range(const char *range, uint64_t size, uint64_t *start,
                                    uint64_t *len)
{
    if (range == NULL || strncmp(range, "bytes=", 6) != 0 || strchr(range, ',') != NULL)
        return HTTPCOND_RANGE_NONE;
    const char *p = range + 6;
    uint64_t first, last;

    if (*p == '-') { /* the last N bytes */
        uint64_t suffix;
        p = read_number(p + 1, &suffix);
        if (p == NULL || *p != '\0')
            return HTTPCOND_RANGE_NONE;
        if (suffix == 0 || size == 0)
            return HTTPCOND_RANGE_UNSATISFIABLE;
        if (suffix > size)
            suffix = size;
        *start = size - suffix;
        *len = suffix;
        return HTTPCOND_RANGE_PARTIAL;
    }
    p = read_number(p, &first);
    if (p == NULL || *p != '-')
        return HTTPCOND_RANGE_NONE;
    p++;
    if (*p == '\0') {
        last = UINT64_MAX;
    } else {
        p = read_number(p, &last);
        if (p == NULL || *p != '\0' || last < first)
            return HTTPCOND_RANGE_NONE;
    }
    if (first >= size)
        return HTTPCOND_RANGE_UNSATISFIABLE;
    if (last >= size)
        last = size - 1;
    *start = first;
    *len = last - first + 1;
    return HTTPCOND_RANGE_PARTIAL;
}
