#include "common/checkpoint.h"

#include "common/b64.h"
#include "common/unicode.h"

#include <stdio.h>
#include <string.h>

#define ROOT_B64_LEN 44

/* A line of valid UTF-8 without control characters (the newline excluded). */
static bool valid_line(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;

    for (size_t i = 0; i < n;) {
        size_t len = unicode_decode(p + i, n - i, &cp);
        if (len == 0 || cp < 0x20 || cp == 0x7f)
            return false;
        i += len;
    }
    return true;
}

/* Extension lines: each non-empty and valid, each ending in a newline. */
static bool valid_extensions(const char *s, size_t n)
{
    size_t lines = 0;

    while (n > 0) {
        const char *eol = memchr(s, '\n', n);
        size_t len;

        if (eol == NULL || eol == s || ++lines > CHECKPOINT_MAX_EXTENSIONS)
            return false;
        len = (size_t)(eol - s);
        if (!valid_line(s, len))
            return false;
        s += len + 1;
        n -= len + 1;
    }
    return true;
}

size_t checkpoint_format(const checkpoint *c, char *out, size_t cap)
{
    size_t olen = strnlen(c->origin, sizeof(c->origin));
    size_t elen = strnlen(c->extensions, sizeof(c->extensions));
    char root[ROOT_B64_LEN + 1];
    int w;

    if (olen > CHECKPOINT_ORIGIN_MAX || elen > CHECKPOINT_EXTENSIONS_MAX ||
        !note_valid_name(c->origin, olen) || c->size >= MERKLE_MAX_SIZE ||
        !valid_extensions(c->extensions, elen))
        goto fail;
    b64std_encode(c->root.bytes, MERKLE_HASH_LEN, root);
    w = snprintf(out, cap, "%s\n%llu\n%s\n%s", c->origin, (unsigned long long)c->size, root,
                 c->extensions);
    if (w < 0 || (size_t)w >= cap)
        goto fail;
    return (size_t)w;
fail:
    if (cap > 0)
        out[0] = '\0';
    return 0;
}

bool checkpoint_parse(const char *text, size_t n, checkpoint *out)
{
    const char *p = text, *end = text + n, *eol;
    checkpoint c;
    uint64_t size = 0;
    size_t len;

    if (n > CHECKPOINT_MAX_LEN)
        return false;
    memset(&c, 0, sizeof(c));
    /* origin */
    eol = memchr(p, '\n', n);
    if (eol == NULL)
        return false;
    len = (size_t)(eol - p);
    if (len == 0 || len > CHECKPOINT_ORIGIN_MAX || !valid_line(p, len))
        return false;
    memcpy(c.origin, p, len);
    p = eol + 1;
    /* size: 1 to 19 digits, no leading zero, below 2^63 */
    eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL || eol == p || eol - p > 19 || (*p == '0' && eol - p > 1))
        return false;
    for (; p < eol; p++) {
        if (*p < '0' || *p > '9')
            return false;
        size = size * 10 + (uint64_t)(*p - '0'); /* 19 digits cannot overflow */
    }
    if (size >= MERKLE_MAX_SIZE)
        return false;
    c.size = size;
    p = eol + 1;
    /* root hash */
    if (end - p < ROOT_B64_LEN + 1 || p[ROOT_B64_LEN] != '\n' ||
        b64std_decode(p, ROOT_B64_LEN, c.root.bytes, MERKLE_HASH_LEN) != MERKLE_HASH_LEN)
        return false;
    p += ROOT_B64_LEN + 1;
    /* extension lines */
    len = (size_t)(end - p);
    if (len > CHECKPOINT_EXTENSIONS_MAX || !valid_extensions(p, len))
        return false;
    memcpy(c.extensions, p, len);
    *out = c;
    return true;
}

note_result checkpoint_open(const char *msg, size_t n, note_verifier *const *known, size_t nknown,
                            checkpoint *out, bool *signed_by)
{
    size_t text_len;
    note_result r = note_open(msg, n, known, nknown, &text_len, signed_by, NULL);

    if (r != NOTE_OK)
        return r;
    if (!checkpoint_parse(msg, text_len, out)) {
        if (signed_by != NULL) {
            for (size_t i = 0; i < nknown; i++)
                signed_by[i] = false;
        }
        return NOTE_MALFORMED;
    }
    return NOTE_OK;
}
