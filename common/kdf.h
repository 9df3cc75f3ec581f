/*
 * kdf: the client-server key K of docs/protocol.md section 3.5.
 *
 *   Z = ECDH-P256(own private key, peer public key)   (32-byte x coordinate)
 *   K = HKDF-SHA256(IKM = Z, salt = "receipt/v1",
 *                   info = client_id "." server_enc_kid, L = 32)
 *
 * The server calls it with its encryption key and the client's key; a client
 * with its own key and the server's encryption key: both get the same K.
 */
#ifndef RECEIPT_COMMON_KDF_H
#define RECEIPT_COMMON_KDF_H

#include "common/eckey.h"

#define KDF_KEY_LEN 32

/* Returns 0, or -1 if own has no private key or derivation fails. */
int kdf_derive(const eckey *own, const eckey *peer, const char *client_id, const char *server_kid,
               uint8_t key[KDF_KEY_LEN]);

/* The ECDH shared secret alone (for test vectors). */
int kdf_shared_secret(const eckey *own, const eckey *peer, uint8_t z[32]);

#endif
