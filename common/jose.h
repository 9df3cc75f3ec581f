/*
 * jose: the two JOSE shapes of PROTOCOL.md section 3, and nothing else.
 *
 * JWE compact, "alg":"dir", "enc":"A256GCM", protected header exactly
 * {"alg":"dir","enc":"A256GCM","kid":KID,"skid":SKID,"cty":CTY} (written in
 * that order), empty encrypted key, 96-bit IV, AAD the encoded header.
 * On input the header is parsed strictly and allow-listed before anything
 * else is done with the token: another alg or enc, a zip, crit or any other
 * member, a duplicate member or a member of the wrong type is refused.
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

#include "common/eckey.h"

#include <stddef.h>
#include <stdint.h>

#define JOSE_KID_MAX 64
#define JOSE_CTY_MAX 32
#define JOSE_TOKEN_MAX (64 * 1024)

#define JOSE_CTY_PLUGIN "receipt-plugin+json"
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
jose_result jwe_encrypt(const uint8_t key[32], const char *kid, const char *skid,
                        const char *cty, const uint8_t *plaintext, size_t n,
                        const uint8_t *iv, char **out);

/*
 * Parses and allow-lists the header of a JWE without decrypting it, so that
 * the caller can pick the key by kid and skid.
 */
jose_result jwe_peek(const char *token, size_t n, jose_header *header);

/*
 * Checks the header like jwe_peek(), then decrypts. On JOSE_OK, *plaintext
 * (malloc'd, NUL-terminated for convenience) and *plaintext_len are set.
 */
jose_result jwe_decrypt(const uint8_t key[32], const char *token, size_t n,
                        jose_header *header, uint8_t **plaintext, size_t *plaintext_len);

/* Signs n bytes of payload with a private P-256 key. */
jose_result jws_sign(const eckey *key, const char *kid, const uint8_t *payload, size_t n,
                     char **out);

/* Reads the kid of a receipt JWS, after allow-listing its header. */
jose_result jws_peek(const char *token, size_t n, jose_header *header);

/* Verifies with a public key; on JOSE_OK *payload is malloc'd, NUL-terminated. */
jose_result jws_verify(const eckey *key, const char *token, size_t n, jose_header *header,
                       uint8_t **payload, size_t *payload_len);

#endif
