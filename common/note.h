/*
 * note: C2SP signed-note with Ed25519 signatures (signature type 0x01).
 *
 * A signed note is a text (valid UTF-8, no control character but newline,
 * ending in a newline), a blank line, and one or more signature lines
 *
 *     U+2014 U+0020 <key name> U+0020 base64(key ID || signature) U+000A
 *
 * where the key ID is the first four bytes, big-endian, of
 * SHA-256(key name || 0x0A || 0x01 || 32-byte public key), and the
 * signature is Ed25519 (RFC 8032) over the text, final newline included.
 * Base64 is the standard alphabet with padding, decoded strictly.
 *
 * Keys as text, as Go's golang.org/x/mod/sumdb/note writes them:
 *
 *     verifier key  <name>+<8 lower-case hex digits of the key ID>+base64(0x01 || public key)
 *     signer key    PRIVATE+KEY+<name>+<key ID in hex>+base64(0x01 || 32-byte seed)
 *
 * Key names are 1 to NOTE_NAME_MAX bytes of UTF-8 without a Unicode space,
 * a plus sign or a control character.
 *
 * Opening a note follows the specification: signatures by keys that are not
 * known (by name and key ID both) are ignored, every signature by a known
 * key must verify, and at least one must. Limits: a note is at most
 * NOTE_MAX_LEN bytes with at most NOTE_MAX_SIGS signature lines (the
 * specification asks for at least 16), each signature at most NOTE_SIG_MAX
 * bytes decoded (room for post-quantum ones, which are parsed and ignored).
 *
 * Handles are immutable once made and may be shared between threads; the
 * destructor is NULL-safe. Signing keys and signing are common/note_sign.h,
 * a module of its own so that what only verifies (libreceipt, the receipt
 * command) does not link the library that signs.
 */
#ifndef RECEIPT_COMMON_NOTE_H
#define RECEIPT_COMMON_NOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NOTE_NAME_MAX 255 /* bytes */
#define NOTE_MAX_LEN  (128 * 1024)
#define NOTE_MAX_SIGS 32
#define NOTE_SIG_MAX  (4 + 8192)           /* decoded bytes of one signature, key ID included */
#define NOTE_VKEY_MAX (NOTE_NAME_MAX + 56) /* verifier key text, with the NUL */
#define NOTE_SKEY_MAX (NOTE_NAME_MAX + 68) /* signer key text, with the NUL */
#define NOTE_ED25519  0x01                 /* signature type */

typedef enum note_result {
    NOTE_OK = 0,
    NOTE_MALFORMED,     /* not a signed note, or a key text that is not one     */
    NOTE_BAD_NAME,      /* a key name that is empty, too long or has a space... */
    NOTE_BAD_KEY_ID,    /* a key text whose key ID does not match its key       */
    NOTE_UNSUPPORTED,   /* a key of another signature type than Ed25519         */
    NOTE_BAD_TEXT,      /* text to sign that a note cannot carry                */
    NOTE_BAD_SIGNATURE, /* a signature by a known key does not verify           */
    NOTE_UNVERIFIED,    /* no signature by a known key                          */
    NOTE_INTERNAL,      /* allocation or crypto library failure                 */
} note_result;

const char *note_result_str(note_result r);

/* Whether n bytes are a valid key name (see above). */
bool note_valid_name(const char *name, size_t n);

typedef struct note_verifier note_verifier;

/* ---- verifiers ---- */

/* From verifier key text (n bytes). */
note_result note_verifier_parse(const char *text, size_t n, note_verifier **out);

/* From a name (n bytes) and a 32-byte Ed25519 public key. */
note_result note_verifier_new(const char *name, size_t n, const uint8_t public_key[32],
                              note_verifier **out);

void note_verifier_free(note_verifier *v);

/* Borrowed, NUL-terminated. */
const char *note_verifier_name(const note_verifier *v);
uint32_t note_verifier_id(const note_verifier *v);
const uint8_t *note_verifier_public_key(const note_verifier *v); /* 32 bytes */

/* The verifier key text into out; its length. */
size_t note_verifier_text(const note_verifier *v, char out[NOTE_VKEY_MAX]);

/* ---- keys as text, for note_sign ---- */

/* Whether s (n bytes) is valid UTF-8 with no control character but newline. */
bool note_valid_text(const char *s, size_t n);

/* The key ID of an Ed25519 key named name (n bytes, a valid name). */
note_result note_key_id(const char *name, size_t n, const uint8_t key[32], uint32_t *id);

/*
 * "<name>+<hex id>+<base64 type||key>" at text (n bytes): the name's length,
 * the ID as written, and the 32-byte key decoded. The type byte must be
 * Ed25519's. Checks nothing else (the ID against the key: the caller).
 */
note_result note_split_key_text(const char *text, size_t n, size_t *name_len, uint32_t *id,
                                uint8_t key[32]);

/*
 * prefix, then "<name>+<hex id>+<base64 0x01||key>" into out (cap bytes),
 * NUL-terminated; its length, 0 when it does not fit. The temporaries that
 * held the key are wiped (the signer's text carries its seed).
 */
size_t note_format_key_text(const char *prefix, const char *name, uint32_t id,
                            const uint8_t key[32], char *out, size_t cap);

/* ---- notes ---- */

/*
 * Opens the signed note in msg (n bytes) with the known verifiers. On
 * NOTE_OK the note's text is the first *text_len bytes of msg, and
 * signed_by[i] (when signed_by is not NULL) says whether known[i] signed it.
 * *unknown (when not NULL) counts the signatures by other keys. Every
 * outcome other than NOTE_OK means: do not trust the text.
 */
note_result note_open(const char *msg, size_t n, note_verifier *const *known, size_t nknown,
                      size_t *text_len, bool *signed_by, size_t *unknown);

#endif
