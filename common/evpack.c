#include "common/evpack.h"

#include "common/b64.h"
#include "common/decimal.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CODE_PIECES   0x1a /* codes 0x01 .. 0x1a: pieces 0 .. 25 */
#define CODE_EXTENDED 0x1b
#define CODE_UUID     0x1c
#define CODE_SHA256   0x1d
#define CODE_NUMBER   0x1e
#define CODE_BYTE     0x1f

#define UUID_TEXT_LEN   36
#define SHA256_TEXT_LEN 43 /* unpadded base64url of 32 bytes */
#define NUMBER_DIGITS   19 /* every run of this many digits is below 2^64 */
#define NUMBER_MIN      4  /* shorter runs take no less room as varints */

/*
 * The pieces, by number. Append only: stored texts name them by number.
 * Each starts with `,"` or `{"` (a member's start) or `"` (a value).
 */
#define PIECE(s)                                                                                   \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }
static const struct {
    const char *text;
    size_t len;
} pieces[] = {
    /* single-byte codes: in every event, or in most */
    PIECE(",\"delivery\":"),
    PIECE(",\"issued_ms\":"),
    PIECE(",\"kind\":"),
    PIECE(",\"path\":"),
    PIECE(",\"server\":"),
    PIECE(",\"sha256\":"),
    PIECE(",\"size\":"),
    PIECE(",\"status\":"),
    PIECE(",\"type\":"),
    PIECE(",\"user_agent\":"),
    PIECE(",\"v\":1}"),
    PIECE("{\"client_addr\":"),
    PIECE("{\"bound_addr\":"),
    PIECE(",\"client_addr\":"),
    PIECE(",\"issued_node\":"),
    PIECE(",\"delivered_sha256\":"),
    PIECE(",\"delivered_size\":"),
    PIECE(",\"bound_ms\":"),
    PIECE(",\"bound_node\":"),
    PIECE(",\"client\":"),
    PIECE(",\"confirmed_ms\":"),
    PIECE(",\"confirm_addr\":"),
    PIECE(",\"received_sha256\":"),
    PIECE(",\"received_size\":"),
    PIECE("\"issued\""),
    PIECE("\"confirmed\""),
    /* two-byte codes */
    PIECE(",\"received_at_ms\":"),
    PIECE(",\"confirmed_node\":"),
    PIECE(",\"receipt_sha256\":"),
    PIECE("\"bound\""),
    PIECE("\"corrupted\""),
    PIECE("\"existing\""),
    PIECE("\"log_key\""),
    PIECE("\"page\""),
    PIECE("\"download\""),
    PIECE("\"view\""),
    PIECE("\"device\""),
    PIECE("\"tracked\""),
    PIECE(",\"bound_addr\":"),
    PIECE(",\"key\":"),
    PIECE("{\"key\":"),
    PIECE(",\"previous\":"),
    PIECE(",\"time_ms\":"),
    PIECE(",\"v\":"),
};
#define PIECE_COUNT (sizeof pieces / sizeof pieces[0])
_Static_assert(PIECE_COUNT <= CODE_PIECES + 256 && PIECE_COUNT < 0xff,
               "too many pieces for the codes");

/* ---- the encoder's tables, made once ---- */

#define NO_PIECE  0xff
#define PIECE_MAX 24 /* bytes: a piece is compared as three words */
#define BAD       0x80

/* Pieces by how they start (`,"`, `{"`, or `"`) and their next byte. */
enum { START_COMMA, START_BRACE, START_QUOTE, START_COUNT };

static struct {
    uint8_t head[START_COUNT][128];
    uint8_t next[PIECE_COUNT];
    uint64_t word[PIECE_COUNT][3];
    uint64_t mask[PIECE_COUNT][3];
    uint8_t hex[256];    /* a lowercase hex digit's value, or BAD */
    uint8_t base64[256]; /* a base64url character's value, or BAD */
} tables;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static int start_of(const char *text)
{
    return text[0] == ',' ? START_COMMA : text[0] == '{' ? START_BRACE : START_QUOTE;
}

/* The byte of a piece that its bucket is keyed by. */
static unsigned char key_of(const char *text)
{
    return (unsigned char)(text[0] == '"' ? text[1] : text[2]);
}

static uint64_t load64(const char *s)
{
    uint64_t v;
    memcpy(&v, s, sizeof v);
    return v;
}

static void tables_make(void)
{
    memset(tables.head, NO_PIECE, sizeof tables.head);
    /* Each bucket's head is the piece put last: the longest first. */
    bool placed[PIECE_COUNT] = {false};
    for (size_t round = 0; round < PIECE_COUNT; round++) {
        size_t best = PIECE_COUNT;
        for (size_t p = 0; p < PIECE_COUNT; p++)
            if (!placed[p] && (best == PIECE_COUNT || pieces[p].len < pieces[best].len))
                best = p;
        placed[best] = true;
        int start = start_of(pieces[best].text);
        unsigned char key = key_of(pieces[best].text) & 0x7f;
        tables.next[best] = tables.head[start][key];
        tables.head[start][key] = (uint8_t)best;
    }
    for (size_t p = 0; p < PIECE_COUNT; p++) {
        if (pieces[p].len > PIECE_MAX)
            abort(); /* the table above is wrong */
        char text[PIECE_MAX] = {0}, mask[PIECE_MAX] = {0};
        memcpy(text, pieces[p].text, pieces[p].len);
        memset(mask, 0xff, pieces[p].len);
        for (size_t w = 0; w < 3; w++) {
            tables.word[p][w] = load64(text + 8 * w);
            tables.mask[p][w] = load64(mask + 8 * w);
        }
    }
    memset(tables.hex, BAD, sizeof tables.hex);
    for (unsigned d = 0; d < 16; d++)
        tables.hex[(unsigned char)"0123456789abcdef"[d]] = (uint8_t)d;
    memset(tables.base64, BAD, sizeof tables.base64);
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (unsigned d = 0; d < 64; d++)
        tables.base64[(unsigned char)alphabet[d]] = (uint8_t)d;
}

/* ---- packing ---- */

static void emit(evpack_out *o, const void *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void emit_byte(evpack_out *o, uint8_t b)
{
    if (o->full || o->len == o->cap) {
        o->full = 1;
        return;
    }
    o->p[o->len++] = b;
}

#define ONES      UINT64_C(0x0101010101010101)
#define HIGH_BITS UINT64_C(0x8080808080808080)

/* Whether a byte of x is zero, or below b (b <= 0x80): no false "no". */
static uint64_t has_zero(uint64_t x)
{
    return (x - ONES) & ~x & HIGH_BITS;
}

static uint64_t has_below(uint64_t x, uint8_t b)
{
    return (x - ONES * b) & ~x & HIGH_BITS;
}

static bool is_special(unsigned char c)
{
    return c < 0x20 || c == ',' || c == '{';
}

/*
 * The bytes at s (n) up to the first that may start a member (`,` or `{`)
 * or needs an escape (below 0x20): those go as they are. Eight at a step:
 * the lowest byte that the tests flag is exact (a false flag can only
 * follow a true one), so it is where the run ends.
 */
static size_t literal_run(const char *s, size_t n)
{
    size_t i = 0;
    while (n - i >= 8) {
        uint64_t x = load64(s + i);
        uint64_t hit = has_below(x, 0x20) | has_zero(x ^ (ONES * ',')) | has_zero(x ^ (ONES * '{'));
        if (hit != 0) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return i + (size_t)__builtin_ctzll(hit) / 8;
#else
            break; /* the byte loop below finds it */
#endif
        }
        i += 8;
    }
    while (i < n && !is_special((unsigned char)s[i]))
        i++;
    return i;
}

/* The piece at s (n bytes) of the bucket of its start, or NO_PIECE. */
static unsigned piece_at(const char *s, size_t n, int start, size_t key_at)
{
    if (n <= key_at || (unsigned char)s[key_at] >= 0x80)
        return NO_PIECE;
    unsigned p = tables.head[start][(unsigned char)s[key_at]];
    if (n >= PIECE_MAX) {
        uint64_t w0 = load64(s), w1 = load64(s + 8), w2 = load64(s + 16);
        for (; p != NO_PIECE; p = tables.next[p])
            if ((((w0 ^ tables.word[p][0]) & tables.mask[p][0]) |
                 ((w1 ^ tables.word[p][1]) & tables.mask[p][1]) |
                 ((w2 ^ tables.word[p][2]) & tables.mask[p][2])) == 0)
                return p;
        return NO_PIECE;
    }
    for (; p != NO_PIECE; p = tables.next[p])
        if (pieces[p].len <= n && memcmp(s, pieces[p].text, pieces[p].len) == 0)
            return p;
    return NO_PIECE;
}

static void emit_piece(evpack_out *o, unsigned p)
{
    if (p < CODE_PIECES) {
        emit_byte(o, (uint8_t)(p + 1));
    } else {
        uint8_t code[2] = {CODE_EXTENDED, (uint8_t)(p - CODE_PIECES)};
        emit(o, code, 2);
    }
}

/* A quoted lowercase UUID at s (n bytes from s): its 16 bytes. */
static bool uuid_at(const char *s, size_t n, uint8_t out[16])
{
    static const uint8_t pairs[16] = {1, 3, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27, 29, 31, 33, 35};
    if (n < UUID_TEXT_LEN + 2 || s[UUID_TEXT_LEN + 1] != '"' || s[9] != '-' || s[14] != '-' ||
        s[19] != '-' || s[24] != '-')
        return false;
    uint8_t bad = 0;
    for (size_t k = 0; k < 16; k++) {
        uint8_t hi = tables.hex[(unsigned char)s[pairs[k]]];
        uint8_t lo = tables.hex[(unsigned char)s[pairs[k] + 1]];
        bad |= hi | lo;
        out[k] = (uint8_t)(hi << 4 | (lo & 15));
    }
    return !(bad & BAD);
}

/* A quoted canonical base64url SHA-256 at s: its 32 bytes. */
static bool sha256_at(const char *s, size_t n, uint8_t out[32])
{
    if (n < SHA256_TEXT_LEN + 2 || s[SHA256_TEXT_LEN + 1] != '"')
        return false;
    const unsigned char *c = (const unsigned char *)s + 1;
    uint8_t bad = 0;
    size_t o = 0;
    for (size_t i = 0; i < 40; i += 4) {
        uint8_t a = tables.base64[c[i]], b = tables.base64[c[i + 1]];
        uint8_t d = tables.base64[c[i + 2]], e = tables.base64[c[i + 3]];
        bad |= a | b | d | e;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)d << 6 | e;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    uint8_t a = tables.base64[c[40]], b = tables.base64[c[41]], d = tables.base64[c[42]];
    bad |= a | b | d;
    uint32_t v = (uint32_t)a << 12 | (uint32_t)b << 6 | d;
    out[o++] = (uint8_t)(v >> 10);
    out[o] = (uint8_t)(v >> 2);
    /* The last character's two spare bits are zero in the one spelling. */
    return !(bad & BAD) && (d & 3) == 0;
}

static void emit_number(evpack_out *o, uint64_t v)
{
    uint8_t varint[11];
    size_t k = 0;
    varint[k++] = CODE_NUMBER;
    do {
        varint[k++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    emit(o, varint, k);
}

/*
 * A member's value at s (n bytes), when it is one that packs: a UUID, a
 * digest, a frequent value or a number. Returns the bytes it took, 0 for
 * none (the bytes then go as they are).
 */
static size_t value_at(evpack_out *o, const char *s, size_t n)
{
    uint8_t bytes[32];
    if (n == 0)
        return 0;
    if (s[0] == '"') {
        if (uuid_at(s, n, bytes)) {
            emit_byte(o, CODE_UUID);
            emit(o, bytes, 16);
            return UUID_TEXT_LEN + 2;
        }
        if (sha256_at(s, n, bytes)) {
            emit_byte(o, CODE_SHA256);
            emit(o, bytes, 32);
            return SHA256_TEXT_LEN + 2;
        }
        unsigned p = piece_at(s, n, START_QUOTE, 1);
        if (p == NO_PIECE)
            return 0;
        emit_piece(o, p);
        return pieces[p].len;
    }
    if (s[0] < '1' || s[0] > '9')
        return 0;
    size_t digits = 0;
    uint64_t v = 0;
    while (digits < n && digits < NUMBER_DIGITS && s[digits] >= '0' && s[digits] <= '9')
        v = v * 10 + (uint64_t)(s[digits++] - '0');
    if (digits < NUMBER_MIN)
        return 0;
    emit_number(o, v);
    return digits;
}

size_t evpack_encode(const char *text, size_t len, uint8_t *out, size_t cap)
{
    pthread_once(&tables_once, tables_make);
    evpack_out o;
    evpack_start(&o, out, cap);
    size_t i = 0;
    while (i < len && !o.full) {
        size_t run = literal_run(text + i, len - i);
        if (run > 0) {
            emit(&o, text + i, run);
            i += run;
            continue;
        }
        const char *s = text + i;
        if ((unsigned char)*s < 0x20) {
            uint8_t code[2] = {CODE_BYTE, (uint8_t)*s};
            emit(&o, code, 2);
            i++;
            continue;
        }
        /* `,` or `{`: a member's start, when a piece */
        unsigned p = len - i > 2 && s[1] == '"'
                         ? piece_at(s, len - i, *s == ',' ? START_COMMA : START_BRACE, 2)
                         : NO_PIECE;
        if (p == NO_PIECE) {
            emit_byte(&o, (uint8_t)*s);
            i++;
            continue;
        }
        emit_piece(&o, p);
        i += pieces[p].len;
        if (pieces[p].text[pieces[p].len - 1] == ':')
            i += value_at(&o, text + i, len - i);
    }
    return o.full ? 0 : o.len;
}

/* ---- packing piece by piece ---- */

void evpack_start(evpack_out *o, uint8_t *buf, size_t cap)
{
    pthread_once(&tables_once, tables_make);
    *o = (evpack_out){.p = buf, .cap = cap};
    emit_byte(o, EVPACK_FORMAT);
}

int evpack_piece_number(const char *s, size_t n)
{
    for (size_t p = 0; p < PIECE_COUNT; p++)
        if (pieces[p].len == n && memcmp(pieces[p].text, s, n) == 0)
            return (int)p;
    return -1;
}

void evpack_put_piece(evpack_out *o, int number)
{
    if (number < 0 || (size_t)number >= PIECE_COUNT) {
        o->full = 1;
        return;
    }
    emit_piece(o, (unsigned)number);
}

/* The bytes at s (n) up to the first below 0x20, eight a step. */
static size_t plain_run(const char *s, size_t n)
{
    size_t i = 0;
    while (n - i >= 8 && has_below(load64(s + i), 0x20) == 0)
        i += 8;
    while (i < n && (unsigned char)s[i] >= 0x20)
        i++;
    return i;
}

void evpack_put_text(evpack_out *o, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t run = plain_run(s + i, n - i);
        emit(o, s + i, run);
        i += run;
        if (i < n) {
            uint8_t code[2] = {CODE_BYTE, (uint8_t)s[i++]};
            emit(o, code, 2);
        }
    }
}

void evpack_put_string(evpack_out *o, const char *quoted, size_t n)
{
    uint8_t bytes[32];
    if (n == UUID_TEXT_LEN + 2 && quoted[0] == '"' && uuid_at(quoted, n, bytes)) {
        emit_byte(o, CODE_UUID);
        emit(o, bytes, 16);
        return;
    }
    if (n == SHA256_TEXT_LEN + 2 && quoted[0] == '"' && sha256_at(quoted, n, bytes)) {
        emit_byte(o, CODE_SHA256);
        emit(o, bytes, 32);
        return;
    }
    if (n >= 2 && quoted[0] == '"') {
        unsigned p = piece_at(quoted, n, START_QUOTE, 1);
        if (p != NO_PIECE && pieces[p].len == n) {
            emit_piece(o, p);
            return;
        }
    }
    evpack_put_text(o, quoted, n);
}

void evpack_put_sha256(evpack_out *o, const uint8_t digest[32])
{
    emit_byte(o, CODE_SHA256);
    emit(o, digest, 32);
}

void evpack_put_number(evpack_out *o, uint64_t v)
{
    if (v >= 1000) {
        emit_number(o, v);
        return;
    }
    if (v >= 100)
        emit_byte(o, (uint8_t)('0' + v / 100));
    if (v >= 10)
        emit_byte(o, (uint8_t)('0' + v / 10 % 10));
    emit_byte(o, (uint8_t)('0' + v % 10));
}

size_t evpack_end(const evpack_out *o)
{
    return o->full ? 0 : o->len;
}

/* ---- unpacking ---- */

typedef struct unpacker {
    char *p;
    size_t cap;
    size_t len;
} unpacker;

static bool put(unpacker *o, const char *s, size_t n)
{
    if (n > o->cap - o->len)
        return false;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    return true;
}

static bool put_uuid(unpacker *o, const uint8_t b[16])
{
    static const char hex[] = "0123456789abcdef";
    char text[UUID_TEXT_LEN + 2];
    size_t k = 0;
    text[k++] = '"';
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            text[k++] = '-';
        text[k++] = hex[b[i] >> 4];
        text[k++] = hex[b[i] & 15];
    }
    text[k++] = '"';
    return put(o, text, k);
}

static bool put_number(unpacker *o, uint64_t v)
{
    char digits[DECIMAL_U64_MAX];
    size_t n;
    const char *first = decimal_u64(v, digits, &n);
    return put(o, first, n);
}

long evpack_decode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    if (len == 0 || in[0] != EVPACK_FORMAT || cap > (size_t)LONG_MAX)
        return -1;
    unpacker o = {.p = out, .cap = cap};
    size_t i = 1;
    while (i < len) {
        size_t run = i;
        while (run < len && in[run] >= 0x20)
            run++;
        if (run > i) {
            if (!put(&o, (const char *)in + i, run - i))
                return -1;
            i = run;
            continue;
        }
        uint8_t code = in[i++];
        size_t left = len - i;
        bool ok;
        if (code >= 0x01 && code <= CODE_PIECES) {
            ok = put(&o, pieces[code - 1].text, pieces[code - 1].len);
        } else if (code == CODE_EXTENDED) {
            size_t p = left >= 1 ? (size_t)CODE_PIECES + in[i++] : PIECE_COUNT;
            ok = p < PIECE_COUNT && put(&o, pieces[p].text, pieces[p].len);
        } else if (code == CODE_UUID) {
            ok = left >= 16 && put_uuid(&o, in + i);
            i += 16;
        } else if (code == CODE_SHA256) {
            char text[SHA256_TEXT_LEN + 3];
            ok = left >= 32;
            if (ok) {
                text[0] = '"';
                b64url_encode(in + i, 32, text + 1);
                text[SHA256_TEXT_LEN + 1] = '"';
                ok = put(&o, text, SHA256_TEXT_LEN + 2);
            }
            i += 32;
        } else if (code == CODE_NUMBER) {
            uint64_t v = 0;
            unsigned shift = 0;
            ok = false;
            while (i < len && shift < 64) {
                uint8_t b = in[i++];
                if (shift == 63 && (b & 0xfe) != 0)
                    break; /* more than 64 bits */
                v |= (uint64_t)(b & 0x7f) << shift;
                shift += 7;
                if (!(b & 0x80)) {
                    ok = true;
                    break;
                }
            }
            ok = ok && put_number(&o, v);
        } else if (code == CODE_BYTE) {
            ok = left >= 1 && put(&o, (const char *)in + i, 1);
            i++;
        } else { /* 0x00 */
            ok = false;
        }
        if (!ok)
            return -1;
    }
    return (long)o.len;
}
