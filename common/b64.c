#include "common/b64.h"

#include <limits.h>
#include <stdbool.h>

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/*
 * Digit value plus one, so that the zero of a static initialiser means "not
 * in the alphabet" for every byte left out.
 */
static const uint8_t b64url_value[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

size_t b64url_encoded_len(size_t n)
{
    static const size_t tail[3] = {0, 2, 3};
    return n / 3 * 4 + tail[n % 3];
}

size_t b64url_decoded_max(size_t n)
{
    static const size_t tail[4] = {0, 0, 1, 2};
    return n / 4 * 3 + tail[n % 4];
}

static size_t encode_with(const char *alphabet, bool pad, const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t b64url_encode(const uint8_t *in, size_t n, char *out)
{
    return encode_with(b64url_alphabet, false, in, n, out);
}

size_t b64std_encode(const uint8_t *in, size_t n, char *out)
{
    return encode_with(b64std_alphabet, true, in, n, out);
}

long b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t need;
    size_t o = 0;
    size_t i = 0;
    uint32_t v = 0;
    unsigned bad = 0;

    /* One leftover character carries only 6 bits: no byte string encodes to it. */
    if (n % 4 == 1 || n / 4 > (size_t)(LONG_MAX / 3))
        return -1;
    need = b64url_decoded_max(n);
    if (need > cap)
        return -1;

    for (; i + 4 <= n; i += 4) {
        uint8_t a = b64url_value[s[i]], b = b64url_value[s[i + 1]];
        uint8_t c = b64url_value[s[i + 2]], d = b64url_value[s[i + 3]];
        bad |= (a == 0) | (b == 0) | (c == 0) | (d == 0);
        v = (uint32_t)(a - 1) << 18 | (uint32_t)(b - 1) << 12 | (uint32_t)(c - 1) << 6 |
            (uint32_t)(d - 1);
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    if (n - i == 2) {
        uint8_t a = b64url_value[s[i]], b = b64url_value[s[i + 1]];
        bad |= (a == 0) | (b == 0);
        v = (uint32_t)(a - 1) << 18 | (uint32_t)(b - 1) << 12;
        /* The last character's low four bits fall outside the byte. */
        bad |= (v & 0xffff) != 0;
        out[o++] = (uint8_t)(v >> 16);
    } else if (n - i == 3) {
        uint8_t a = b64url_value[s[i]], b = b64url_value[s[i + 1]];
        uint8_t c = b64url_value[s[i + 2]];
        bad |= (a == 0) | (b == 0) | (c == 0);
        v = (uint32_t)(a - 1) << 18 | (uint32_t)(b - 1) << 12 | (uint32_t)(c - 1) << 6;
        bad |= (v & 0xff) != 0;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
    }
    if (bad)
        return -1;
    return (long)o;
}

long b64std_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t pad = 0;
    size_t o = 0;
    unsigned bad = 0;

    if (n % 4 != 0 || n / 4 > (size_t)(LONG_MAX / 3))
        return -1;
    if (n > 0 && s[n - 1] == '=')
        pad = n > 1 && s[n - 2] == '=' ? 2 : 1;
    if (n / 4 * 3 - pad > cap)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        uint32_t v = 0;

        for (size_t j = 0; j < 4; j++) {
            unsigned char c = s[i + j];
            uint8_t d;

            if (last && j >= 4 - pad) {
                bad |= c != '=';
                continue;
            }
            /* The url-safe table with '+' and '/' standing in for '-' and '_'. */
            d = c == '+' ? 63 : c == '/' ? 64 : (c == '-' || c == '_') ? 0 : b64url_value[c];
            bad |= d == 0;
            v |= (uint32_t)(d - 1u) << (18 - 6 * j);
        }
        if (bad)
            return -1;
        out[o++] = (uint8_t)(v >> 16);
        if (last && pad == 2) {
            bad |= (v & 0xffff) != 0;
            break;
        }
        out[o++] = (uint8_t)(v >> 8);
        if (last && pad == 1) {
            bad |= (v & 0xff) != 0;
            break;
        }
        out[o++] = (uint8_t)v;
    }
    if (bad)
        return -1;
    return (long)o;
}
