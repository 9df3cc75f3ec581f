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
 * destructors are NULL-safe and wipe the private seed. Output notes are
 * malloc'd, NUL-terminated and owned by the caller.
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
typedef struct note_signer note_signer;

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

/* ---- signers ---- */

/* A new key from the system's random generator, named name (n bytes). */
note_result note_signer_generate(const char *name, size_t n, note_signer **out);

/* From signer key text (n bytes); the caller wipes its copy of the text. */
note_result note_signer_parse(const char *text, size_t n, note_signer **out);

/* From a name and a 32-byte Ed25519 seed (RFC 8032 private key). */
note_result note_signer_new(const char *name, size_t n, const uint8_t seed[32], note_signer **out);

void note_signer_free(note_signer *s);

const char *note_signer_name(const note_signer *s);
uint32_t note_signer_id(const note_signer *s);

/*
 * The signer key text into out (secret: the caller wipes it with
 * OPENSSL_cleanse() when done); its length.
 */
size_t note_signer_text(const note_signer *s, char out[NOTE_SKEY_MAX]);

/* The verifier of the signer's key; NULL when out of memory. */
note_verifier *note_signer_verifier(const note_signer *s);

/* ---- notes ---- */

/*
 * Signs text (n bytes; valid UTF-8, no control character but newline, ends
 * in a newline) with each of the nsigners (1 .. NOTE_MAX_SIGS) keys, in that
 * order. *out receives the note, *out_len (when not NULL) its length.
 */
note_result note_sign(const char *text, size_t n, note_signer *const *signers, size_t nsigners,
                      char **out, size_t *out_len);

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
