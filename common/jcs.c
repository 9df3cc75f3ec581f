#include "common/jcs.h"

#include "common/unicode.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integers that a double holds exactly and that I-JSON calls interoperable. */
#define JCS_INT_LIMIT ((json_int_t)9007199254740991LL) /* 2^53 - 1 */

/* Members of an object sorted on the stack; larger objects take the heap. */
#define JCS_STACK_MEMBERS 32

const char *jcs_result_str(jcs_result r)
{
    switch (r) {
    case JCS_OK:
        return "ok";
    case JCS_SYNTAX:
        return "not JSON";
    case JCS_DUPLICATE:
        return "duplicate member name";
    case JCS_NUMBER:
        return "number that canonical JSON cannot represent";
    case JCS_UTF8:
        return "invalid UTF-8 in a string";
    case JCS_TOO_DEEP:
        return "nested too deeply";
    case JCS_TOO_LONG:
        return "too long";
    case JCS_NOMEM:
        return "out of memory";
    }
    return "unknown error";
}

/* ---- numbers ------------------------------------------------------------ */

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* Reads "D.DDDe+X" back in the C locale, whatever the process's locale is. */
static double read_back(const char *digits, size_t ndigits, int exp10)
{
    char buf[48];
    size_t o = 0;

    buf[o++] = digits[0];
    if (ndigits > 1) {
        buf[o++] = '.';
        memcpy(buf + o, digits + 1, ndigits - 1);
        o += ndigits - 1;
    }
    snprintf(buf + o, sizeof(buf) - o, "e%d", exp10);
    if (c_locale != (locale_t)0)
        return strtod_l(buf, NULL, c_locale);
    return strtod(buf, NULL);
}

/*
 * The p-digit decimal nearest to v (p from 1 to 17), correctly rounded by the
 * C library (glibc converts exactly, ties to even): digits without the
 * decimal point and the exponent of the first digit.
 */
static void nearest_digits(double v, int p, char digits[18], int *exp10)
{
    char buf[40];
    size_t o = 0;
    const char *s;

    snprintf(buf, sizeof(buf), "%.*e", p - 1, v);
    for (s = buf; *s != '\0' && *s != 'e'; s++) {
        if (*s >= '0' && *s <= '9')
            digits[o++] = *s;
    }
    *exp10 = *s == 'e' ? (int)strtol(s + 1, NULL, 10) : 0;
}

/* The next p-digit decimal away from zero (up) or towards it (down). */
static void step_digits(char *digits, int p, int *exp10, bool up)
{
    int i;

    if (up) {
        for (i = p - 1; i >= 0 && digits[i] == '9'; i--)
            digits[i] = '0';
        if (i >= 0) {
            digits[i]++;
        } else { /* 99..9 became 100..0: one more decade */
            digits[0] = '1';
            (*exp10)++;
        }
        return;
    }
    for (i = p - 1; i >= 0 && digits[i] == '0'; i--)
        digits[i] = '9';
    digits[i]--; /* i >= 0: the first digit is never 0 */
    if (digits[0] == '0') {
        /* 10..0 - 1 is 9..9 of the decade below, with the same count of digits */
        memmove(digits, digits + 1, (size_t)p - 1);
        digits[p - 1] = '9';
        (*exp10)--;
    }
}

/*
 * Shortest digits that read back to v (v > 0, finite), and of those the
 * nearest to v (ECMAScript Number::toString, step 5). The nearest p-digit
 * decimal is the only candidate with p digits unless v sits on a power of two,
 * where the gap below is half the gap above: there the next decimal on the
 * other side of v may read back while the nearest does not.
 */
static size_t shortest_digits(double v, char digits[18], int *exp10)
{
    for (int p = 1; p <= 17; p++) {
        char other[18];
        int e, other_e;

        nearest_digits(v, p, digits, &e);
        if (read_back(digits, (size_t)p, e) == v) {
            *exp10 = e;
            return (size_t)p;
        }
        memcpy(other, digits, (size_t)p);
        other_e = e;
        step_digits(other, p, &other_e, read_back(digits, (size_t)p, e) < v);
        if (read_back(other, (size_t)p, other_e) == v) {
            memcpy(digits, other, (size_t)p);
            *exp10 = other_e;
            return (size_t)p;
        }
    }
    /* 17 digits always read back; not reached for a finite double. */
    *exp10 = 0;
    digits[0] = '0';
    return 1;
}

size_t jcs_format_number(double v, char out[JCS_NUMBER_MAX])
{
    char digits[18];
    size_t k;
    size_t o = 0;
    int n; /* v = 0.DIGITS x 10^n, in ECMAScript's terms */
    int exp10;

    if (!isfinite(v))
        return 0;
    if (v == 0) { /* and -0 */
        out[0] = '0';
        out[1] = '\0';
        return 1;
    }
    pthread_once(&c_locale_once, c_locale_init);
    if (v < 0) {
        out[o++] = '-';
        v = -v;
    }
    k = shortest_digits(v, digits, &exp10);
    while (k > 1 && digits[k - 1] == '0')
        k--;
    n = exp10 + 1;

    if ((int)k <= n && n <= 21) {
        /* an integer: the digits, then n - k zeros */
        memcpy(out + o, digits, k);
        o += k;
        for (int i = (int)k; i < n; i++)
            out[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + o, digits, (size_t)n);
        o += (size_t)n;
        out[o++] = '.';
        memcpy(out + o, digits + n, k - (size_t)n);
        o += k - (size_t)n;
    } else if (-6 < n && n <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -n; i++)
            out[o++] = '0';
        memcpy(out + o, digits, k);
        o += k;
    } else {
        out[o++] = digits[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, k - 1);
            o += k - 1;
        }
        o += (size_t)snprintf(out + o, JCS_NUMBER_MAX - o, "e%c%d", n - 1 < 0 ? '-' : '+',
                              n - 1 < 0 ? 1 - n : n - 1);
    }
    out[o] = '\0';
    return o;
}

/* ---- output buffer ------------------------------------------------------- */

typedef struct jcs_buf {
    char *data;
    size_t len;
    size_t cap;
    jcs_result err;
} jcs_buf;

static bool buf_reserve(jcs_buf *b, size_t more)
{
    size_t want;
    char *p;

    if (b->err != JCS_OK)
        return false;
    if (more > JCS_MAX_LEN - b->len) {
        b->err = JCS_TOO_LONG;
        return false;
    }
    want = b->len + more + 1;
    if (want <= b->cap)
        return true;
    if (want < b->cap * 2)
        want = b->cap * 2;
    if (want < 256)
        want = 256;
    if (want > JCS_MAX_LEN + 1)
        want = JCS_MAX_LEN + 1;
    p = realloc(b->data, want);
    if (p == NULL) {
        b->err = JCS_NOMEM;
        return false;
    }
    b->data = p;
    b->cap = want;
    return true;
}

static void buf_put(jcs_buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

/* ---- strings -------------------------------------------------------------- */

static void put_string(jcs_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* bytes copied as they are, pending */
    size_t i = 0;

    if (!unicode_valid(s, n)) {
        if (b->err == JCS_OK)
            b->err = JCS_UTF8;
        return;
    }
    buf_put(b, "\"", 1);
    while (i < n) {
        unsigned char c = p[i];
        const char *esc = NULL;
        char hex[7];

        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\r':
            esc = "\\r";
            break;
        default:
            if (c < 0x20) {
                snprintf(hex, sizeof(hex), "\\u%04x", c);
                esc = hex;
            }
            break;
        }
        if (esc == NULL) {
            run++;
            i++;
            continue;
        }
        buf_put(b, s + i - run, run);
        run = 0;
        buf_put(b, esc, strlen(esc));
        i++;
    }
    buf_put(b, s + i - run, run);
    buf_put(b, "\"", 1);
}

/* ---- member order ---------------------------------------------------------- */

typedef struct jcs_member {
    const char *key;
    size_t len;
    json_t *value;
} jcs_member;

/* The first UTF-16 code unit of a code point, and the second (0 if none). */
static uint32_t utf16_high(uint32_t cp)
{
    return cp < 0x10000 ? cp : 0xd800 + ((cp - 0x10000) >> 10);
}

static uint32_t utf16_low(uint32_t cp)
{
    return cp < 0x10000 ? 0 : 0xdc00 + ((cp - 0x10000) & 0x3ff);
}

/* Both names were checked as UTF-8 before sorting starts. */
static int compare_utf16(const void *pa, const void *pb)
{
    const jcs_member *a = pa, *b = pb;
    const unsigned char *x = (const unsigned char *)a->key;
    const unsigned char *y = (const unsigned char *)b->key;
    size_t i = 0, j = 0;

    while (i < a->len && j < b->len) {
        uint32_t cx, cy;

        if (x[i] < 0x80 && y[j] < 0x80) { /* the common case, byte by byte */
            if (x[i] != y[j])
                return x[i] < y[j] ? -1 : 1;
            i++;
            j++;
            continue;
        }
        i += unicode_decode(x + i, a->len - i, &cx);
        j += unicode_decode(y + j, b->len - j, &cy);
        if (cx == cy)
            continue;
        if (utf16_high(cx) != utf16_high(cy))
            return utf16_high(cx) < utf16_high(cy) ? -1 : 1;
        return utf16_low(cx) < utf16_low(cy) ? -1 : 1;
    }
    if (i < a->len)
        return 1;
    if (j < b->len)
        return -1;
    return 0;
}

/* ---- values --------------------------------------------------------------- */

static void put_value(jcs_buf *b, const json_t *v, int depth);

static void put_object(jcs_buf *b, const json_t *obj, int depth)
{
    jcs_member stack[JCS_STACK_MEMBERS];
    jcs_member *members = stack;
    size_t count = json_object_size(obj);
    size_t i = 0;
    void *iter;

    if (count > JCS_STACK_MEMBERS) {
        members = calloc(count, sizeof(*members));
        if (members == NULL) {
            b->err = JCS_NOMEM;
            return;
        }
    }
    for (iter = json_object_iter((json_t *)obj); iter != NULL && i < count;
         iter = json_object_iter_next((json_t *)obj, iter)) {
        members[i].key = json_object_iter_key(iter);
        members[i].len = json_object_iter_key_len(iter);
        members[i].value = json_object_iter_value(iter);
        if (!unicode_valid(members[i].key, members[i].len)) {
            b->err = JCS_UTF8;
            goto out;
        }
        i++;
    }
    count = i;
    qsort(members, count, sizeof(*members), compare_utf16);
    buf_put(b, "{", 1);
    for (i = 0; i < count && b->err == JCS_OK; i++) {
        if (i > 0)
            buf_put(b, ",", 1);
        put_string(b, members[i].key, members[i].len);
        buf_put(b, ":", 1);
        put_value(b, members[i].value, depth + 1);
    }
    buf_put(b, "}", 1);
out:
    if (members != stack)
        free(members);
}

static void put_value(jcs_buf *b, const json_t *v, int depth)
{
    char num[JCS_NUMBER_MAX];
    size_t n;

    if (b->err != JCS_OK)
        return;
    if (depth > JCS_MAX_DEPTH) {
        b->err = JCS_TOO_DEEP;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        put_object(b, v, depth);
        break;
    case JSON_ARRAY:
        buf_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v) && b->err == JCS_OK; i++) {
            if (i > 0)
                buf_put(b, ",", 1);
            put_value(b, json_array_get(v, i), depth + 1);
        }
        buf_put(b, "]", 1);
        break;
    case JSON_STRING:
        put_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: {
        json_int_t x = json_integer_value(v);
        if (x > JCS_INT_LIMIT || x < -JCS_INT_LIMIT) {
            b->err = JCS_NUMBER;
            return;
        }
        n = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, x);
        buf_put(b, num, n);
        break;
    }
    case JSON_REAL:
        n = jcs_format_number(json_real_value(v), num);
        if (n == 0) {
            b->err = JCS_NUMBER;
            return;
        }
        buf_put(b, num, n);
        break;
    case JSON_TRUE:
        buf_put(b, "true", 4);
        break;
    case JSON_FALSE:
        buf_put(b, "false", 5);
        break;
    case JSON_NULL:
        buf_put(b, "null", 4);
        break;
    }
}

jcs_result jcs_dump(const json_t *value, char **out, size_t *len)
{
    jcs_buf b = {NULL, 0, 0, JCS_OK};

    *out = NULL;
    if (value == NULL)
        return JCS_SYNTAX;
    put_value(&b, value, 1);
    if (b.err == JCS_OK && !buf_reserve(&b, 0))
        b.err = b.err == JCS_OK ? JCS_NOMEM : b.err;
    if (b.err != JCS_OK) {
        free(b.data);
        return b.err;
    }
    b.data[b.len] = '\0';
    *out = b.data;
    if (len != NULL)
        *len = b.len;
    return JCS_OK;
}

jcs_result jcs_parse(const char *text, size_t n, json_t **out)
{
    json_error_t error;
    json_t *v;

    *out = NULL;
    if (n > JCS_MAX_LEN)
        return JCS_TOO_LONG;
    v = json_loadb(text, n,
                   JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL |
                       JSON_ALLOW_NUL,
                   &error);
    if (v == NULL) {
        switch (json_error_code(&error)) {
        case json_error_duplicate_key:
            return JCS_DUPLICATE;
        case json_error_invalid_utf8:
            return JCS_UTF8;
        case json_error_numeric_overflow:
            return JCS_NUMBER;
        case json_error_stack_overflow:
            return JCS_TOO_DEEP;
        case json_error_out_of_memory:
            return JCS_NOMEM;
        default:
            return JCS_SYNTAX;
        }
    }
    *out = v;
    return JCS_OK;
}

jcs_result jcs_canonicalize(const char *text, size_t n, char **out, size_t *len)
{
    json_t *v;
    jcs_result r;

    *out = NULL;
    r = jcs_parse(text, n, &v);
    if (r != JCS_OK)
        return r;
    r = jcs_dump(v, out, len);
    json_decref(v);
    return r;
}

bool jcs_is_canonical(const char *text, size_t n)
{
    char *canon;
    size_t len;
    bool same;

    if (jcs_canonicalize(text, n, &canon, &len) != JCS_OK)
        return false;
    same = len == n && memcmp(canon, text, n) == 0;
    free(canon);
    return same;
}
