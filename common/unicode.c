#include "common/unicode.h"

#include <string.h>

size_t unicode_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len;
    uint32_t c;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        c = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        c = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min_for_len[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0; /* overlong, out of range, or a surrogate */
    *cp = c;
    return len;
}

bool unicode_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;

    for (size_t i = 0; i < n;) {
        /* ASCII, the common case, eight bytes a step. */
        uint64_t word;
        if (n - i >= 8 && (memcpy(&word, p + i, 8), (word & UINT64_C(0x8080808080808080)) == 0)) {
            i += 8;
            continue;
        }
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = unicode_decode(p + i, n - i, &cp);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

bool unicode_is_space(uint32_t cp)
{
    if (cp <= 0x20)
        return cp == 0x20 || (cp >= 0x09 && cp <= 0x0d);
    if (cp < 0x85)
        return false;
    switch (cp) {
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200a;
    }
}

size_t unicode_repair(const char *s, size_t n, char *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t seq = unicode_decode(p + i, n - i, &cp);
        if (seq == 0) {
            memcpy(out + len, "\xef\xbf\xbd", 3);
            len += 3;
            i++;
        } else {
            memcpy(out + len, p + i, seq);
            len += seq;
            i += seq;
        }
    }
    return len;
}

size_t unicode_fold_repaired(const char *s, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; len++) {
        if (len + 1 >= cap || s[i] == '\0')
            return SIZE_MAX;
        if (n - i >= 3 && memcmp(s + i, "\xef\xbf\xbd", 3) == 0) {
            out[len] = (char)0xff;
            i += 3;
        } else {
            out[len] = s[i++];
        }
    }
    out[len] = '\0';
    return len;
}
