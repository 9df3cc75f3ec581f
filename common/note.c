#include "common/note.h"

#include "common/b64.h"
#include "common/unicode.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ED25519_KEY_LEN 32
#define ED25519_SIG_LEN 64
#define KEY_B64_LEN     44 /* base64 of the 33 bytes type || key */

static const char em_dash_space[] = "\xe2\x80\x94 "; /* U+2014 U+0020 */

struct note_verifier {
    char name[NOTE_NAME_MAX + 1];
    size_t name_len;
    uint32_t id;
    uint8_t public_key[ED25519_KEY_LEN];
    EVP_PKEY *pkey;
};

const char *note_result_str(note_result r)
{
    switch (r) {
    case NOTE_OK:
        return "ok";
    case NOTE_MALFORMED:
        return "malformed";
    case NOTE_BAD_NAME:
        return "invalid key name";
    case NOTE_BAD_KEY_ID:
        return "key ID does not match the key";
    case NOTE_UNSUPPORTED:
        return "unsupported signature type";
    case NOTE_BAD_TEXT:
        return "text cannot be signed as a note";
    case NOTE_BAD_SIGNATURE:
        return "a signature by a known key does not verify";
    case NOTE_UNVERIFIED:
        return "no signature by a known key";
    case NOTE_INTERNAL:
        return "internal error";
    }
    return "unknown error";
}

/* ---- names, ids, text ---- */

bool note_valid_name(const char *name, size_t n)
{
    const unsigned char *p = (const unsigned char *)name;
    uint32_t cp;

    if (n == 0 || n > NOTE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n;) {
        size_t len = unicode_decode(p + i, n - i, &cp);
        if (len == 0 || cp < 0x20 || cp == 0x7f || cp == '+' || unicode_is_space(cp))
            return false;
        i += len;
    }
    return true;
}

bool note_valid_text(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;

    for (size_t i = 0; i < n;) {
        size_t len;

        if (p[i] >= 0x20 && p[i] < 0x80) { /* the common case */
            i++;
            continue;
        }
        len = unicode_decode(p + i, n - i, &cp);
        if (len == 0 || (cp < 0x20 && cp != '\n'))
            return false;
        i += len;
    }
    return true;
}

note_result note_key_id(const char *name, size_t n, const uint8_t key[32], uint32_t *id)
{
    uint8_t buf[NOTE_NAME_MAX + 2 + ED25519_KEY_LEN];
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;

    memcpy(buf, name, n);
    buf[n] = '\n';
    buf[n + 1] = NOTE_ED25519;
    memcpy(buf + n + 2, key, ED25519_KEY_LEN);
    if (EVP_Digest(buf, n + 2 + ED25519_KEY_LEN, digest, &dlen, EVP_sha256(), NULL) != 1 ||
        dlen != 32)
        return NOTE_INTERNAL;
    *id = (uint32_t)digest[0] << 24 | (uint32_t)digest[1] << 16 | (uint32_t)digest[2] << 8 |
          digest[3];
    return NOTE_OK;
}

static bool parse_hex32(const char *s, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 8; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return false; /* upper case too: one spelling per key */
        v = v << 4 | d;
    }
    *out = v;
    return true;
}

note_result note_split_key_text(const char *text, size_t n, size_t *name_len, uint32_t *id,
                                uint8_t key[32])
{
    const char *plus = memchr(text, '+', n);
    uint8_t raw[1 + ED25519_KEY_LEN];
    size_t nl;
    long dl;

    if (plus == NULL)
        return NOTE_MALFORMED;
    nl = (size_t)(plus - text);
    if (!note_valid_name(text, nl))
        return NOTE_BAD_NAME;
    if (n - nl < 1 + 8 + 1 || !parse_hex32(plus + 1, id) || plus[9] != '+')
        return NOTE_MALFORMED;
    dl = b64std_decode(plus + 10, n - nl - 10, raw, sizeof(raw));
    if (dl < 1)
        return NOTE_MALFORMED;
    if (raw[0] != NOTE_ED25519)
        return NOTE_UNSUPPORTED;
    if (dl != (long)sizeof(raw))
        return NOTE_MALFORMED;
    memcpy(key, raw + 1, ED25519_KEY_LEN);
    OPENSSL_cleanse(raw, sizeof(raw));
    *name_len = nl;
    return NOTE_OK;
}

size_t note_format_key_text(const char *prefix, const char *name, uint32_t id,
                            const uint8_t key[32], char *out, size_t cap)
{
    uint8_t raw[1 + ED25519_KEY_LEN];
    char b64[KEY_B64_LEN + 1];
    int w;

    raw[0] = NOTE_ED25519;
    memcpy(raw + 1, key, ED25519_KEY_LEN);
    b64std_encode(raw, sizeof(raw), b64);
    w = snprintf(out, cap, "%s%s+%08x+%s", prefix, name, (unsigned)id, b64);
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(b64, sizeof(b64));
    return w > 0 && (size_t)w < cap ? (size_t)w : 0;
}

/* ---- verifiers ---- */

note_result note_verifier_new(const char *name, size_t n, const uint8_t public_key[32],
                              note_verifier **out)
{
    note_verifier *v;
    note_result r;

    *out = NULL;
    if (!note_valid_name(name, n))
        return NOTE_BAD_NAME;
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        return NOTE_INTERNAL;
    memcpy(v->name, name, n);
    v->name_len = n;
    memcpy(v->public_key, public_key, ED25519_KEY_LEN);
    r = note_key_id(name, n, public_key, &v->id);
    if (r == NOTE_OK) {
        v->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, public_key, ED25519_KEY_LEN);
        if (v->pkey == NULL)
            r = NOTE_INTERNAL;
    }
    if (r != NOTE_OK) {
        note_verifier_free(v);
        return r;
    }
    *out = v;
    return NOTE_OK;
}

note_result note_verifier_parse(const char *text, size_t n, note_verifier **out)
{
    uint8_t key[ED25519_KEY_LEN];
    size_t name_len;
    uint32_t id;
    note_result r;

    *out = NULL;
    if (n >= NOTE_VKEY_MAX)
        return NOTE_MALFORMED;
    r = note_split_key_text(text, n, &name_len, &id, key);
    if (r != NOTE_OK)
        return r;
    r = note_verifier_new(text, name_len, key, out);
    if (r == NOTE_OK && (*out)->id != id) {
        note_verifier_free(*out);
        *out = NULL;
        return NOTE_BAD_KEY_ID;
    }
    return r;
}

void note_verifier_free(note_verifier *v)
{
    if (v == NULL)
        return;
    EVP_PKEY_free(v->pkey);
    free(v);
}

const char *note_verifier_name(const note_verifier *v)
{
    return v->name;
}

uint32_t note_verifier_id(const note_verifier *v)
{
    return v->id;
}

const uint8_t *note_verifier_public_key(const note_verifier *v)
{
    return v->public_key;
}

size_t note_verifier_text(const note_verifier *v, char out[NOTE_VKEY_MAX])
{
    return note_format_key_text("", v->name, v->id, v->public_key, out, NOTE_VKEY_MAX);
}

/* ---- notes ---- */

static bool ed25519_verify(EVP_PKEY *pkey, const uint8_t *sig, const char *msg, size_t n,
                           note_result *err)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    int rc;

    if (mctx == NULL || EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pkey) != 1) {
        EVP_MD_CTX_free(mctx);
        *err = NOTE_INTERNAL;
        return false;
    }
    rc = EVP_DigestVerify(mctx, sig, ED25519_SIG_LEN, (const unsigned char *)msg, n);
    EVP_MD_CTX_free(mctx);
    return rc == 1;
}

note_result note_open(const char *msg, size_t n, note_verifier *const *known, size_t nknown,
                      size_t *text_len, bool *signed_by, size_t *unknown)
{
    const size_t dash = sizeof(em_dash_space) - 1;
    const char *sigs, *end = msg + n;
    size_t split, tlen, nsigs = 0, nunknown = 0, verified = 0;
    uint8_t *sig = NULL;
    note_result r = NOTE_MALFORMED;

    *text_len = 0;
    if (signed_by != NULL) {
        for (size_t i = 0; i < nknown; i++)
            signed_by[i] = false;
    }
    if (unknown != NULL)
        *unknown = 0;
    if (n < 2 || n > NOTE_MAX_LEN || !note_valid_text(msg, n))
        return NOTE_MALFORMED;
    /* The text ends at the last blank line; signature lines are never empty. */
    for (split = n - 1; split > 0 && !(msg[split - 1] == '\n' && msg[split] == '\n'); split--)
        ;
    if (split == 0)
        return NOTE_MALFORMED;
    tlen = split; /* the text keeps its final newline, msg[split - 1] */
    sigs = msg + split + 1;
    if (sigs == end || end[-1] != '\n')
        return NOTE_MALFORMED;
    sig = malloc(NOTE_SIG_MAX);
    if (sig == NULL)
        return NOTE_INTERNAL;

    while (sigs < end) {
        const char *eol = memchr(sigs, '\n', (size_t)(end - sigs));
        const char *name, *space, *b64;
        size_t name_len;
        long dl;
        uint32_t id;
        size_t k;

        if (++nsigs > NOTE_MAX_SIGS || (size_t)(eol - sigs) < dash ||
            memcmp(sigs, em_dash_space, dash) != 0)
            goto out;
        name = sigs + dash;
        space = memchr(name, ' ', (size_t)(eol - name));
        if (space == NULL)
            goto out;
        name_len = (size_t)(space - name);
        b64 = space + 1;
        if (!note_valid_name(name, name_len) || b64 == eol)
            goto out;
        dl = b64std_decode(b64, (size_t)(eol - b64), sig, NOTE_SIG_MAX);
        if (dl < 5)
            goto out;
        id = (uint32_t)sig[0] << 24 | (uint32_t)sig[1] << 16 | (uint32_t)sig[2] << 8 | sig[3];
        for (k = 0; k < nknown; k++) {
            if (known[k]->id == id && known[k]->name_len == name_len &&
                memcmp(known[k]->name, name, name_len) == 0)
                break;
        }
        if (k == nknown) {
            nunknown++;
        } else {
            note_result err = NOTE_BAD_SIGNATURE;
            if (dl != 4 + ED25519_SIG_LEN ||
                !ed25519_verify(known[k]->pkey, sig + 4, msg, tlen, &err)) {
                r = err;
                goto out;
            }
            verified++;
            if (signed_by != NULL)
                signed_by[k] = true;
        }
        sigs = eol + 1;
    }
    if (verified == 0) {
        r = NOTE_UNVERIFIED;
        goto out;
    }
    *text_len = tlen;
    if (unknown != NULL)
        *unknown = nunknown;
    r = NOTE_OK;
out:
    free(sig);
    if (r != NOTE_OK && signed_by != NULL) {
        for (size_t i = 0; i < nknown; i++)
            signed_by[i] = false;
    }
    return r;
}
