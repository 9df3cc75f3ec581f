#include "common/note_sign.h"

#include "common/b64.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define ED25519_KEY_LEN 32
#define ED25519_SIG_LEN 64

static const char em_dash_space[] = "\xe2\x80\x94 "; /* U+2014 U+0020 */
static const char private_prefix[] = "PRIVATE+KEY+";

struct note_signer {
    char name[NOTE_NAME_MAX + 1];
    size_t name_len;
    uint32_t id;
    uint8_t seed[ED25519_KEY_LEN];
    uint8_t public_key[ED25519_KEY_LEN];
    /* libsodium's expanded key: the seed, then the public key */
    uint8_t secret_key[crypto_sign_SECRETKEYBYTES];
};

note_result note_signer_new(const char *name, size_t n, const uint8_t seed[32], note_signer **out)
{
    note_signer *s;
    note_result r = NOTE_INTERNAL;

    *out = NULL;
    if (!note_valid_name(name, n))
        return NOTE_BAD_NAME;
    /* Thread-safe, and cheap once done: it picks the implementations. */
    if (sodium_init() < 0)
        return NOTE_INTERNAL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NOTE_INTERNAL;
    memcpy(s->name, name, n);
    s->name_len = n;
    memcpy(s->seed, seed, ED25519_KEY_LEN);
    if (crypto_sign_seed_keypair(s->public_key, s->secret_key, seed) != 0)
        goto fail;
    r = note_key_id(name, n, s->public_key, &s->id);
    if (r != NOTE_OK)
        goto fail;
    *out = s;
    return NOTE_OK;
fail:
    note_signer_free(s);
    return r;
}

note_result note_signer_generate(const char *name, size_t n, note_signer **out)
{
    uint8_t seed[ED25519_KEY_LEN];
    note_result r;

    *out = NULL;
    if (RAND_priv_bytes(seed, sizeof(seed)) != 1)
        return NOTE_INTERNAL;
    r = note_signer_new(name, n, seed, out);
    OPENSSL_cleanse(seed, sizeof(seed));
    return r;
}

note_result note_signer_parse(const char *text, size_t n, note_signer **out)
{
    const size_t plen = sizeof(private_prefix) - 1;
    uint8_t seed[ED25519_KEY_LEN];
    size_t name_len;
    uint32_t id;
    note_result r;

    *out = NULL;
    if (n >= NOTE_SKEY_MAX || n < plen || memcmp(text, private_prefix, plen) != 0)
        return NOTE_MALFORMED;
    r = note_split_key_text(text + plen, n - plen, &name_len, &id, seed);
    if (r == NOTE_OK)
        r = note_signer_new(text + plen, name_len, seed, out);
    OPENSSL_cleanse(seed, sizeof(seed));
    if (r == NOTE_OK && (*out)->id != id) {
        note_signer_free(*out);
        *out = NULL;
        return NOTE_BAD_KEY_ID;
    }
    return r;
}

void note_signer_free(note_signer *s)
{
    if (s == NULL)
        return;
    sodium_memzero(s, sizeof(*s));
    free(s);
}

const char *note_signer_name(const note_signer *s)
{
    return s->name;
}

uint32_t note_signer_id(const note_signer *s)
{
    return s->id;
}

size_t note_signer_text(const note_signer *s, char out[NOTE_SKEY_MAX])
{
    return note_format_key_text(private_prefix, s->name, s->id, s->seed, out, NOTE_SKEY_MAX);
}

note_verifier *note_signer_verifier(const note_signer *s)
{
    note_verifier *v = NULL;

    note_verifier_new(s->name, s->name_len, s->public_key, &v);
    return v;
}

note_result note_sign(const char *text, size_t n, note_signer *const *signers, size_t nsigners,
                      char **out, size_t *out_len)
{
    /* a line: dash and space, name, space, base64 of 68 bytes (92), newline */
    const size_t line_max = sizeof(em_dash_space) - 1 + NOTE_NAME_MAX + 1 + 92 + 1;
    char *note;
    size_t o, cap;

    *out = NULL;
    if (nsigners == 0 || nsigners > NOTE_MAX_SIGS)
        return NOTE_BAD_TEXT;
    if (n == 0 || text[n - 1] != '\n' || !note_valid_text(text, n) ||
        n > NOTE_MAX_LEN - 1 - nsigners * line_max)
        return NOTE_BAD_TEXT;
    cap = n + 1 + nsigners * line_max + 1;
    note = malloc(cap);
    if (note == NULL)
        return NOTE_INTERNAL;
    memcpy(note, text, n);
    o = n;
    note[o++] = '\n';
    for (size_t i = 0; i < nsigners; i++) {
        const note_signer *s = signers[i];
        uint8_t sig[4 + ED25519_SIG_LEN];

        sig[0] = (uint8_t)(s->id >> 24);
        sig[1] = (uint8_t)(s->id >> 16);
        sig[2] = (uint8_t)(s->id >> 8);
        sig[3] = (uint8_t)s->id;
        if (crypto_sign_detached(sig + 4, NULL, (const unsigned char *)text, n, s->secret_key) !=
            0) {
            free(note);
            return NOTE_INTERNAL;
        }
        memcpy(note + o, em_dash_space, sizeof(em_dash_space) - 1);
        o += sizeof(em_dash_space) - 1;
        memcpy(note + o, s->name, s->name_len);
        o += s->name_len;
        note[o++] = ' ';
        o += b64std_encode(sig, sizeof(sig), note + o);
        note[o++] = '\n';
    }
    note[o] = '\0';
    *out = note;
    if (out_len != NULL)
        *out_len = o;
    return NOTE_OK;
}
