/*
 * eckey: EC P-256 keys, public or private, as the protocol names them.
 *
 * An eckey wraps an OpenSSL EVP_PKEY and remembers its 65-byte uncompressed
 * point and its RFC 7638 thumbprint (the client ID, or a server key's kid),
 * computed once when the key is made. Every constructor validates the point
 * (on the curve, not the point at infinity). Handles are immutable after
 * construction and may be shared between threads; eckey_free() is NULL-safe.
 */
#ifndef RECEIPT_COMMON_ECKEY_H
#define RECEIPT_COMMON_ECKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ECKEY_POINT_LEN      65 /* 0x04 || X || Y */
#define ECKEY_POINT_B64_LEN  87 /* base64url of the point: Receipt-Client-Key */
#define ECKEY_THUMBPRINT_LEN 43 /* base64url of a SHA-256 */

typedef struct eckey eckey;

/* jansson's JSON values and OpenSSL's keys, named without their headers:
 * most users of eckey need neither. */
struct json_t;
struct evp_pkey_st;

/* A fresh private key; NULL on failure. */
eckey *eckey_generate(void);

/* A public key from the uncompressed point; NULL if off the curve or malformed. */
eckey *eckey_from_point(const uint8_t *point, size_t n);

/* A public key from the Receipt-Client-Key header value (87 characters). */
eckey *eckey_from_header(const char *value, size_t n);

/*
 * From a JWK object: kty "EC", crv "P-256", x and y (32 bytes each, base64url)
 * and, if present, d (private). Other members are ignored.
 */
eckey *eckey_from_jwk(const struct json_t *jwk);

/* From a PEM private key ("PRIVATE KEY" or "EC PRIVATE KEY") or public key. */
eckey *eckey_from_pem(const char *pem, size_t n);

/* PKCS#8 PEM of the private key; malloc'd, caller frees. NULL if public only. */
char *eckey_to_pem(const eckey *key);

/*
 * The JWK of the key: {"crv","kty","x","y"} and "d" when with_private and the
 * key has one. Caller owns the returned reference.
 */
struct json_t *eckey_to_jwk(const eckey *key, bool with_private);

bool eckey_has_private(const eckey *key);

/* Borrowed: the 65-byte point, the 43-character thumbprint (NUL-terminated). */
const uint8_t *eckey_point(const eckey *key);
const char *eckey_thumbprint(const eckey *key);

/* The point as the Receipt-Client-Key header value; out holds 88 bytes. */
void eckey_header_value(const eckey *key, char out[ECKEY_POINT_B64_LEN + 1]);

/* Borrowed EVP_PKEY for signing and derivation. */
struct evp_pkey_st *eckey_pkey(const eckey *key);

void eckey_free(eckey *key);

/*
 * RFC 7638 thumbprint of a P-256 public key given by its coordinates:
 * SHA-256 over {"crv":"P-256","kty":"EC","x":"<x>","y":"<y>"}, base64url.
 */
void eckey_thumbprint_of(const uint8_t x[32], const uint8_t y[32],
                         char out[ECKEY_THUMBPRINT_LEN + 1]);

#endif
