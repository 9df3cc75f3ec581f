#include "daemon/jbuf.h"

#include "common/decimal.h"
#include "common/unicode.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JBUF_FIRST_HEAP 1024 /* the least a growing buffer allocates */

static const char hex[] = "0123456789abcdef";
static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

void jbuf_init(jbuf *b, char *mem, size_t size)
{
    assert(mem != NULL && size > 0);
    b->data = mem;
    b->len = 0;
    b->size = size;
    b->cap = size - 1;
    b->heap = false;
    b->failed = false;
    mem[0] = '\0';
}

void jbuf_init_growing(jbuf *b, char *mem, size_t size, size_t cap)
{
    static char empty[1];
    b->data = mem != NULL && size > 0 ? mem : empty;
    b->len = 0;
    b->size = mem != NULL ? size : 0;
    b->cap = cap;
    b->heap = false;
    b->failed = false;
    if (b->size > 0)
        b->data[0] = '\0';
}

void jbuf_free(jbuf *b)
{
    if (b == NULL)
        return;
    if (b->heap)
        free(b->data);
    jbuf_init_growing(b, NULL, 0, 0);
    b->failed = true;
}

char *jbuf_take(jbuf *b, size_t *len)
{
    char *text = NULL;
    if (!b->failed) {
        if (b->heap) {
            text = b->data;
            b->heap = false;
        } else if ((text = malloc(b->len + 1)) != NULL) {
            memcpy(text, b->data, b->len + 1);
        }
        if (text != NULL && len != NULL)
            *len = b->len;
    }
    jbuf_free(b);
    return text;
}

void jbuf_reset(jbuf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->size > 0)
        b->data[0] = '\0';
}

/* Room for n more bytes and the NUL; false (and failed) when there is none. */
static bool reserve(jbuf *b, size_t n)
{
    if (b->failed)
        return false;
    if (n > b->cap - b->len) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + n + 1;
    if (need <= b->size)
        return true;
    /* Only a growing buffer gets here: a fixed one's cap is its size. */
    size_t size = b->size > JBUF_FIRST_HEAP / 2 ? b->size * 2 : JBUF_FIRST_HEAP;
    while (size < need)
        size *= 2;
    if (size > b->cap + 1)
        size = b->cap + 1;
    char *grown = b->heap ? realloc(b->data, size) : malloc(size);
    if (grown == NULL) {
        b->failed = true;
        return false;
    }
    if (!b->heap) {
        memcpy(grown, b->data, b->len);
        grown[b->len] = '\0';
    }
    b->data = grown;
    b->size = size;
    b->heap = true;
    return true;
}

void jbuf_add(jbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void jbuf_adds(jbuf *b, const char *s)
{
    jbuf_add(b, s, strlen(s));
}

void jbuf_addf(jbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->size > b->len ? b->size - b->len : 0;
    int n = vsnprintf(room > 0 ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
    } else if ((size_t)n < room) {
        b->len += (size_t)n;
    } else if (reserve(b, (size_t)n)) {
        /* It did not fit the memory there was: again, into the larger. */
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
    }
    if (b->size > b->len)
        b->data[b->len] = '\0';
}

/* Bytes that go into a JSON string as they are: printable ASCII but '"'
 * and '\\'. */
static bool plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/*
 * Eight bytes at a time: a word's flag bits (0x80 of a byte) are set when
 * some byte is below 0x20, 0x7f or above, '"' or '\\' (the bit tricks of
 * "Bit Twiddling Hacks": each test is exact for "some byte is"). A false
 * alarm can only come above a true one (carries and borrows run upwards),
 * so on a little-endian machine the lowest flag is the first stop.
 */
static uint64_t stops_of(uint64_t x)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    const uint64_t highs = UINT64_C(0x8080808080808080);
    uint64_t quote = x ^ (ones * '"');
    uint64_t backslash = x ^ (ones * '\\');
    uint64_t stop = ((x - ones * 0x20) & ~x) | ((x + ones) | x) | ((quote - ones) & ~quote) |
                    ((backslash - ones) & ~backslash);
    return stop & highs;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WORD_SCAN 1
#else
#define WORD_SCAN 0
#endif

size_t jbuf_plain_len(const char *s, size_t n)
{
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t stop = stops_of(x);
        if (stop != 0) {
#if WORD_SCAN
            return i + (size_t)__builtin_ctzll(stop) / 8;
#else
            break;
#endif
        }
    }
    while (i < n && plain((unsigned char)s[i]))
        i++;
    return i;
}

/* The escape of s[i], a byte that is not plain, at out; the next byte's
 * index (after a whole UTF-8 sequence) is put in *next. */
static char *escape_one(char *out, const unsigned char *p, size_t i, size_t n, size_t *next)
{
    if (p[i] == '"' || p[i] == '\\') {
        *out++ = '\\';
        *out++ = (char)p[i];
        *next = i + 1;
    } else if (p[i] < 0x80) { /* a control character or DEL */
        memcpy(out, "\\u00", 4);
        out[4] = hex[p[i] >> 4];
        out[5] = hex[p[i] & 15];
        out += 6;
        *next = i + 1;
    } else {
        uint32_t cp;
        size_t seq = unicode_decode(p + i, n - i, &cp);
        if (seq == 0) {
            memcpy(out, replacement, sizeof replacement - 1);
            out += sizeof replacement - 1;
            *next = i + 1;
        } else {
            memcpy(out, p + i, seq);
            out += seq;
            *next = i + seq;
        }
    }
    return out;
}

/*
 * Writes the escaped s at out, which has room for 6 n bytes; the end.
 * Whole words are stored before they are looked at, and only the plain
 * bytes among them are kept: JSON texts quoted into JSON (an event in a
 * proof) stop at every other member, so a stop must cost little. Storing
 * eight bytes when fewer are plain stays within the room: with r >= 8
 * bytes left to read, at least 6 r are left to write.
 */
static char *escape_into(char *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
#if WORD_SCAN
    while (n - i >= 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        memcpy(out, &x, 8);
        uint64_t stop = stops_of(x);
        if (stop == 0) {
            i += 8;
            out += 8;
            continue;
        }
        size_t run = (size_t)__builtin_ctzll(stop) / 8;
        out = escape_one(out + run, p, i + run, n, &i);
    }
#endif
    while (i < n) {
        if (plain(p[i]))
            *out++ = (char)p[i++];
        else
            out = escape_one(out, p, i, n, &i);
    }
    return out;
}

#define ESCAPE_WORST 6 /* output bytes an input byte can become (\u00XX) */

void jbuf_escaped(jbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    /* Room for the longest result, if the cap allows it: one reservation,
     * then the text is written in place. */
    if (n <= (SIZE_MAX - 1) / ESCAPE_WORST && n * ESCAPE_WORST <= b->cap - b->len) {
        if (!reserve(b, n * ESCAPE_WORST))
            return;
        char *end = escape_into(b->data + b->len, s, n);
        b->len = (size_t)(end - b->data);
        b->data[b->len] = '\0';
        return;
    }
    /* Near the cap: piece by piece, so that a text that fits is written
     * whole and one that does not sets failed. */
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && !b->failed) {
        size_t run = jbuf_plain_len(s + i, n - i);
        if (run > 0) {
            jbuf_add(b, s + i, run);
            i += run;
            continue;
        }
        char esc[6];
        size_t seq = 1;
        if (p[i] >= 0x80) {
            uint32_t cp;
            seq = unicode_decode(p + i, n - i, &cp);
            if (seq == 0)
                seq = 1;
        }
        char *end = escape_into(esc, s + i, seq);
        jbuf_add(b, esc, (size_t)(end - esc));
        i += seq;
    }
}

void jbuf_string(jbuf *b, const char *s, size_t n)
{
    jbuf_add(b, "\"", 1);
    jbuf_escaped(b, s, n);
    jbuf_add(b, "\"", 1);
}

void jbuf_str(jbuf *b, const char *s)
{
    jbuf_string(b, s, strlen(s));
}

void jbuf_opt_str(jbuf *b, const char *s)
{
    if (s == NULL || s[0] == '\0')
        jbuf_add(b, "null", 4);
    else
        jbuf_str(b, s);
}

void jbuf_u64(jbuf *b, uint64_t v)
{
    char digits[DECIMAL_U64_MAX];
    size_t n;
    const char *first = decimal_u64(v, digits, &n);
    jbuf_add(b, first, n);
}

void jbuf_i64(jbuf *b, int64_t v)
{
    if (v < 0) {
        jbuf_add(b, "-", 1);
        jbuf_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        jbuf_u64(b, (uint64_t)v);
    }
}

void jbuf_opt_u64(jbuf *b, uint64_t v)
{
    if (v == 0)
        jbuf_add(b, "null", 4);
    else
        jbuf_u64(b, v);
}

void jbuf_double(jbuf *b, double v)
{
    char text[40];
    if (!isfinite(v)) {
        jbuf_add(b, "null", 4);
        return;
    }
    /* The shortest of %.15g..%.17g that reads back exactly. */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(text, sizeof text, "%.*g", prec, v);
        if (strtod(text, NULL) == v)
            break;
    }
    jbuf_adds(b, text);
}

void jbuf_sep(jbuf *b)
{
    if (b->len == 0 || b->failed)
        return;
    char last = b->data[b->len - 1];
    if (last != '{' && last != '[' && last != ':')
        jbuf_add(b, ",", 1);
}

void jbuf_key(jbuf *b, const char *key)
{
    jbuf_sep(b);
    jbuf_add(b, "\"", 1);
    jbuf_adds(b, key);
    jbuf_add(b, "\":", 2);
}

void jbuf_member_str(jbuf *b, const char *key, const char *s)
{
    jbuf_key(b, key);
    jbuf_str(b, s);
}

void jbuf_member_u64(jbuf *b, const char *key, uint64_t v)
{
    jbuf_key(b, key);
    jbuf_u64(b, v);
}

void jbuf_error(jbuf *b, const char *code, const char *message)
{
    jbuf_adds(b, "{");
    jbuf_member_str(b, "error", code);
    jbuf_member_str(b, "message", message);
    jbuf_adds(b, "}\n");
}
