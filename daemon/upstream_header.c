#include "daemon/upstream_header.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define UPSTREAM_HEADER_FIRST_CAP 1024

bool upstream_header_hop_by_hop(const char *name)
{
    static const char *const fields[] = {
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Upgrade",
        "Transfer-Encoding",
        "Proxy-Authenticate",
        "Proxy-Authorization",
    };
    return upstream_header_named(name, fields, sizeof fields / sizeof fields[0]);
}

bool upstream_header_named(const char *name, const char *const *names, size_t n)
{
    /* Every field of an answer is held against several lists: the first
     * letter, compared without a call, rules out nearly every name. Equal
     * letters in any case have equal low five bits, which keeps every
     * match; what else passes, strcasecmp() decides. */
    const unsigned first = (unsigned char)name[0] & 0x1f;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)names[i][0] & 0x1f) == first && strcasecmp(name, names[i]) == 0)
            return true;
    }
    return false;
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 tchar. */
static bool token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

bool upstream_header_lists(const char *value, const char *name)
{
    size_t name_len = strlen(name);
    const char *p = value;
    while (*p != '\0') {
        while (ows(*p) || *p == ',')
            p++;
        const char *start = p;
        while (token_char((unsigned char)*p))
            p++;
        size_t n = (size_t)(p - start);
        const char *after = p;
        while (ows(*after))
            after++;
        if (n == name_len && n > 0 && strncasecmp(start, name, n) == 0 &&
            (*after == '\0' || *after == ',' || *after == '='))
            return true;
        /* The rest of this element: a value, maybe quoted with commas in it. */
        bool quoted = false;
        while (*p != '\0' && (quoted || *p != ',')) {
            if (quoted && *p == '\\' && p[1] != '\0')
                p++;
            else if (*p == '"')
                quoted = !quoted;
            p++;
        }
    }
    return false;
}

int upstream_header_status_line(const char *line, size_t len, unsigned *status)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    /* HTTP/1.0, HTTP/1.1, HTTP/2 and HTTP/3 as libcurl reports them. */
    if (len < 10 || strncmp(line, "HTTP/", 5) != 0)
        return 0;
    const char *sp = memchr(line, ' ', len);
    if (sp == NULL || (size_t)(sp - line) + 4 > len)
        return 0;
    unsigned code = 0;
    for (int i = 1; i <= 3; i++) {
        if (sp[i] < '0' || sp[i] > '9')
            return 0;
        code = code * 10 + (unsigned)(sp[i] - '0');
    }
    if ((size_t)(sp - line) + 4 < len && sp[4] != ' ')
        return 0;
    if (code < 100 || code > 599)
        return 0;
    *status = code;
    return 1;
}

void upstream_header_list_init(upstream_header_list *l, size_t max)
{
    memset(l, 0, sizeof *l);
    l->max = max;
}

void upstream_header_list_clear(upstream_header_list *l)
{
    l->len = 0;
    l->count = 0;
}

void upstream_header_list_free(upstream_header_list *l)
{
    if (l == NULL)
        return;
    free(l->data);
    l->data = NULL;
    l->len = l->cap = l->count = 0;
}

bool upstream_buffer_reserve(char **data, size_t *cap, size_t len, size_t more, size_t first,
                             size_t max)
{
    if (more > max || len > max - more)
        return false;
    if (len + more <= *cap)
        return true;
    size_t grown = *cap != 0 ? *cap : first;
    while (grown < len + more)
        grown *= 2;
    if (grown > max)
        grown = max;
    char *p = realloc(*data, grown);
    if (p == NULL)
        return false;
    *data = p;
    *cap = grown;
    return true;
}

static bool reserve(upstream_header_list *l, size_t more)
{
    return upstream_buffer_reserve(&l->data, &l->cap, l->len, more, UPSTREAM_HEADER_FIRST_CAP,
                                   l->max);
}

static bool field_value_ok(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* [*v, *v + *n) without the whitespace around it. */
static void trim(const char **v, size_t *n)
{
    while (*n > 0 && ows(**v)) {
        (*v)++;
        (*n)--;
    }
    while (*n > 0 && ows((*v)[*n - 1]))
        (*n)--;
}

upstream_header_add upstream_header_list_add(upstream_header_list *l, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > 0 && ows(line[0])) {
        /* obs-fold: the value before goes on after one space. */
        if (l->count == 0)
            return UPSTREAM_HEADER_MALFORMED;
        const char *v = line;
        size_t n = len;
        trim(&v, &n);
        if (!field_value_ok(v, n))
            return UPSTREAM_HEADER_MALFORMED;
        if (n == 0)
            return UPSTREAM_HEADER_ADDED;
        if (!reserve(l, n + 1))
            return UPSTREAM_HEADER_TOO_LARGE;
        l->data[l->len - 1] = ' '; /* the NUL that ended the value */
        memcpy(l->data + l->len, v, n);
        l->len += n;
        l->data[l->len++] = '\0';
        return UPSTREAM_HEADER_ADDED;
    }
    const char *colon = memchr(line, ':', len);
    if (colon == NULL || colon == line)
        return UPSTREAM_HEADER_MALFORMED;
    size_t name_len = (size_t)(colon - line);
    for (size_t i = 0; i < name_len; i++) {
        if (!token_char((unsigned char)line[i]))
            return UPSTREAM_HEADER_MALFORMED;
    }
    const char *v = colon + 1;
    size_t n = len - name_len - 1;
    trim(&v, &n);
    if (!field_value_ok(v, n))
        return UPSTREAM_HEADER_MALFORMED;
    if (!reserve(l, name_len + n + 2))
        return UPSTREAM_HEADER_TOO_LARGE;
    memcpy(l->data + l->len, line, name_len);
    l->len += name_len;
    l->data[l->len++] = '\0';
    memcpy(l->data + l->len, v, n);
    l->len += n;
    l->data[l->len++] = '\0';
    l->count++;
    return UPSTREAM_HEADER_ADDED;
}

const char *upstream_header_list_next(const upstream_header_list *l, size_t *cursor,
                                      const char **value)
{
    if (*cursor >= l->len)
        return NULL;
    const char *name = l->data + *cursor;
    size_t name_len = strlen(name);
    *value = name + name_len + 1;
    *cursor += name_len + 1 + strlen(*value) + 1;
    return name;
}

const char *upstream_header_list_get(const upstream_header_list *l, const char *name)
{
    size_t cursor = 0;
    const char *value;
    const unsigned first = (unsigned char)name[0] & 0x1f; /* as in upstream_header_named() */
    for (const char *n; (n = upstream_header_list_next(l, &cursor, &value)) != NULL;) {
        if (((unsigned char)n[0] & 0x1f) == first && strcasecmp(n, name) == 0)
            return value;
    }
    return NULL;
}

bool upstream_header_list_lists(const upstream_header_list *l, const char *name, const char *token)
{
    size_t cursor = 0;
    const char *value;
    for (const char *n; (n = upstream_header_list_next(l, &cursor, &value)) != NULL;) {
        if (strcasecmp(n, name) == 0 && upstream_header_lists(value, token))
            return true;
    }
    return false;
}
