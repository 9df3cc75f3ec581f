/*
 * jose: the two JOSE shapes of docs/protocol.md section 4, and nothing else.
 *
 * JWE compact, "alg":"dir", "enc":"A256GCM", protected header exactly
 * {"alg":"dir","enc":"A256GCM","kid":KID,"skid":SKID,"cty":CTY} (written in
 * that order), empty encrypted key, 96-bit IV, AAD the encoded header.
 * On input the header is parsed strictly and allow-listed before anything
 * else is done with the token: another alg or enc, a zip, crit or any other
 * member, a duplicate member or a member of the wrong type is refused.
 * kid and skid are 1 to JOSE_KID_MAX printable ASCII characters other than
 * space, double quote and backslash; cty is JOSE_CTY_PLUGIN or
 * JOSE_CTY_CONFIRM (the caller still checks which of the two it expects).
 * The token is at most JOSE_TOKEN_MAX characters, the IV exactly 12 bytes,
 * the tag 16, the ES256 signature 64. Structural faults are JOSE_MALFORMED;
 * a header that parses but is not allowed (a duplicate member included) is
 * JOSE_BAD_HEADER.
 *
 * JWS compact, ES256 with the 64-byte R || S signature, protected header
 * {"alg":"ES256","kid":KID,"typ":"receipt+jwt"}.
 *
 * Every output string is malloc'd and owned by the caller. All functions are
 * thread-safe (OpenSSL algorithms are fetched once, contexts are per call or
 * per thread).
 */
#ifndef RECEIPT_COMMON_JOSE_H
#define RECEIPT_COMMON_JOSE_H

#include "common/compiler.h"
#include "common/eckey.h"

#include <stddef.h>
#include <stdint.h>

#define JOSE_KID_MAX    64
#define JOSE_CTY_MAX    32
#define JOSE_TOKEN_MAX  (64 * 1024)
#define JOSE_HEADER_MAX 512 /* decoded protected header, bytes; ours is under 250 */
#define JOSE_IV_LEN     12
#define JOSE_TAG_LEN    16
#define JOSE_SIG_LEN    64 /* ES256 R || S */

#define JOSE_CTY_PLUGIN  "receipt-plugin+json"
#define JOSE_CTY_CONFIRM "receipt-confirm+json"

typedef enum jose_result {
    JOSE_OK = 0,
    JOSE_MALFORMED,  /* not a compact serialisation, bad base64url, bad JSON  */
    JOSE_BAD_HEADER, /* header not exactly the allowed members and values     */
    JOSE_DECRYPT,    /* authentication tag or signature does not verify       */
    JOSE_INTERNAL,   /* allocation or crypto library failure                  */
} jose_result;

const char *jose_result_str(jose_result r);

typedef struct jose_header {
    char kid[JOSE_KID_MAX + 1];
    char skid[JOSE_KID_MAX + 1]; /* JWE only */
    char cty[JOSE_CTY_MAX + 1];  /* JWE only */
} jose_header;

/*
 * Encrypts n bytes under key. iv is NULL for a fresh random IV; a fixed IV
 * is for test vectors only. *out receives the token.
 */
WARN_UNUSED_RESULT jose_result jwe_encrypt(const uint8_t key[32], const char *kid, const char *skid,
                                           const char *cty, const uint8_t *plaintext, size_t n,
                                           const uint8_t *iv, char **out);

/*
 * Parses and allow-lists the header of a JWE without decrypting it, so that
 * the caller can pick the key by kid and skid.
 */
WARN_UNUSED_RESULT jose_result jwe_peek(const char *token, size_t n, jose_header *header);

/*
 * Checks the header like jwe_peek(), then decrypts. On JOSE_OK, *plaintext
 * (malloc'd, NUL-terminated for convenience) and *plaintext_len are set.
 */
WARN_UNUSED_RESULT jose_result jwe_decrypt(const uint8_t key[32], const char *token, size_t n,
                                           jose_header *header, uint8_t **plaintext,
                                           size_t *plaintext_len);

/*
 * jwe_decrypt() of a token that jwe_peek() has accepted: the same token and
 * length, whose header is then not parsed again (a JSON parse is a third
 * of opening a confirmation). The header's bytes are the cipher's
 * additional data all the same, so a token changed since cannot decrypt.
 */
WARN_UNUSED_RESULT jose_result jwe_decrypt_peeked(const uint8_t key[32], const char *token,
                                                  size_t n, uint8_t **plaintext,
                                                  size_t *plaintext_len);

/* Signs n bytes of payload with a private P-256 key. */
WARN_UNUSED_RESULT jose_result jws_sign(const eckey *key, const char *kid, const uint8_t *payload,
                                        size_t n, char **out);

/* Reads the kid of a receipt JWS, after allow-listing its header. */
WARN_UNUSED_RESULT jose_result jws_peek(const char *token, size_t n, jose_header *header);

/* Verifies with a public key; on JOSE_OK *payload is malloc'd, NUL-terminated. */
WARN_UNUSED_RESULT jose_result jws_verify(const eckey *key, const char *token, size_t n,
                                          jose_header *header, uint8_t **payload,
                                          size_t *payload_len);

/*
 * The primitives under the two shapes, for test vectors (RFC 7516 A.1,
 * RFC 7515 A.3) whose headers the shapes above would refuse.
 *
 * AES-256-GCM with a 96-bit IV and a 128-bit tag: ct receives n bytes.
 * Open returns JOSE_DECRYPT when the tag does not verify (pt then holds no
 * plaintext worth reading).
 */
WARN_UNUSED_RESULT jose_result jose_a256gcm_seal(const uint8_t key[32],
                                                 const uint8_t iv[JOSE_IV_LEN], const uint8_t *aad,
                                                 size_t aadlen, const uint8_t *pt, size_t n,
                                                 uint8_t *ct, uint8_t tag[JOSE_TAG_LEN]);
WARN_UNUSED_RESULT jose_result jose_a256gcm_open(const uint8_t key[32],
                                                 const uint8_t iv[JOSE_IV_LEN], const uint8_t *aad,
                                                 size_t aadlen, const uint8_t *ct, size_t n,
                                                 const uint8_t tag[JOSE_TAG_LEN], uint8_t *pt);

/* ECDSA P-256 over SHA-256 of msg, signature as R || S. */
WARN_UNUSED_RESULT jose_result jose_es256_sign(const eckey *key, const uint8_t *msg, size_t n,
                                               uint8_t sig[JOSE_SIG_LEN]);
WARN_UNUSED_RESULT jose_result jose_es256_verify(const eckey *key, const uint8_t *msg, size_t n,
                                                 const uint8_t sig[JOSE_SIG_LEN]);

#endif
