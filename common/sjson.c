#include "common/sjson.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void sjson_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * Nesting depth of the text, counted without parsing: brackets inside
 * strings do not count, and a backslash hides the character after it.
 * Malformed text may be misjudged here; jansson refuses it next anyway.
 */
static bool sjson_depth_ok(const char *text, size_t n, size_t max_depth)
{
    size_t depth = 0;
    bool in_string = false;

    for (size_t i = 0; i < n; i++) {
        char c = text[i];

        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        switch (c) {
        case '"':
            in_string = true;
            break;
        case '[':
        case '{':
            if (++depth > max_depth)
                return false;
            break;
        case ']':
        case '}':
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
    }
    return true;
}

json_t *sjson_parse_object(const char *text, size_t n, size_t max_depth, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root;

    if (text == NULL) {
        sjson_err(err, errlen, "no input");
        return NULL;
    }
    if (n > SJSON_MAX_LEN) {
        sjson_err(err, errlen, "JSON text longer than %d bytes", SJSON_MAX_LEN);
        return NULL;
    }
    if (max_depth == 0)
        max_depth = SJSON_MAX_DEPTH;
    if (!sjson_depth_ok(text, n, max_depth)) {
        sjson_err(err, errlen, "JSON nested deeper than %zu levels", max_depth);
        return NULL;
    }
    root = json_loadb(text, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        sjson_err(err, errlen, "invalid JSON at position %d: %s", jerr.position, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        sjson_err(err, errlen, "JSON text is not an object");
        return NULL;
    }
    return root;
}

const char *sjson_string(const json_t *obj, const char *key, size_t *len)
{
    const json_t *v = json_object_get(obj, key);

    if (!json_is_string(v))
        return NULL;
    if (len != NULL)
        *len = json_string_length(v);
    return json_string_value(v);
}

const json_t *sjson_object(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_object(v) ? v : NULL;
}

bool sjson_uint(const json_t *obj, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    json_int_t i;

    /* Reals, even integral ones like 1.0 or 1e3, are refused: no guessing. */
    if (!json_is_integer(v))
        return false;
    i = json_integer_value(v);
    if (i < 0)
        return false;
    *out = (uint64_t)i;
    return true;
}

char *sjson_dump(const json_t *value)
{
    if (value == NULL)
        return NULL;
    return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* ---- the plain reader -------------------------------------------------- */

static void plain_ws(sjson_plain *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

bool sjson_plain_take(sjson_plain *s, char c)
{
    plain_ws(s);
    if (s->p >= s->end || *s->p != c)
        return false;
    s->p++;
    return true;
}

bool sjson_plain_string(sjson_plain *s, const char **out, size_t *len)
{
    if (!sjson_plain_take(s, '"'))
        return false;
    char *start = s->p;
    while (s->p < s->end && *s->p != '"') {
        unsigned char c = (unsigned char)*s->p;
        if (c < 0x20 || c > 0x7e || c == '\\')
            return false; /* an escape, a control byte, UTF-8: the full parser's */
        s->p++;
    }
    if (s->p >= s->end)
        return false;
    *s->p++ = '\0';
    *out = start;
    *len = (size_t)(s->p - 1 - start);
    return true;
}

bool sjson_plain_uint(sjson_plain *s, uint64_t *out)
{
    plain_ws(s);
    const char *start = s->p;
    uint64_t v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        v = v * 10 + (uint64_t)(*s->p - '0');
        s->p++;
    }
    size_t digits = (size_t)(s->p - start);
    if (digits == 0 || digits > 15 || (digits > 1 && *start == '0'))
        return false;
    if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E'))
        return false; /* a real: refused, by the full parser with its own message */
    *out = v;
    return true;
}

bool sjson_plain_null(sjson_plain *s)
{
    plain_ws(s);
    if (s->end - s->p < 4 || memcmp(s->p, "null", 4) != 0)
        return false;
    s->p += 4;
    return true;
}

bool sjson_plain_end(sjson_plain *s)
{
    plain_ws(s);
    return s->p == s->end;
}
