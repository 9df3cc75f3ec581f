/*
 * note_sign: Ed25519 signing keys of C2SP signed notes, and signing
 * (common/note.h has the format, the verifiers and note_open()).
 *
 * Signatures are made with libsodium's crypto_sign_detached(), which takes
 * less than half the time of OpenSSL 3's EVP Ed25519 for the same bytes
 * (docs/performance.md, "The full cycle and the evidence log"); Ed25519 is
 * deterministic (RFC 8032), so the signatures are byte for byte those
 * OpenSSL makes, and verifying stays with OpenSSL in note.c. Only what
 * signs (receiptd, its tests and benchmarks) links libsodium.
 *
 * A signer is immutable once made and may be shared between threads;
 * note_signer_free() is NULL-safe and wipes the seed and the expanded
 * secret key. Output notes are malloc'd, NUL-terminated and owned by the
 * caller.
 */
#ifndef RECEIPT_COMMON_NOTE_SIGN_H
#define RECEIPT_COMMON_NOTE_SIGN_H

#include "common/note.h"

#include <stddef.h>
#include <stdint.h>

typedef struct note_signer note_signer;

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

/*
 * Signs text (n bytes; valid UTF-8, no control character but newline, ends
 * in a newline) with each of the nsigners (1 .. NOTE_MAX_SIGS) keys, in that
 * order. *out receives the note, *out_len (when not NULL) its length.
 */
note_result note_sign(const char *text, size_t n, note_signer *const *signers, size_t nsigners,
                      char **out, size_t *out_len);

#endif
