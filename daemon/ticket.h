/*
 * ticket: the opaque, sealed ticket of docs/protocol.md sections 1 and 12.
 *
 * A ticket is base64url of
 *   version (1 byte, 3) || epoch (4 bytes, big-endian) || key tag (4 bytes)
 *   || nonce (12 bytes) || AES-256-GCM ciphertext of the claims || tag (16)
 * with the header bytes as additional data. The key is
 * HKDF-SHA256(IKM = ticket secret, salt = "receipt/v1 ticket",
 * info = "epoch " || decimal epoch || " key " || key tag in lowercase hex),
 * an epoch being TICKET_EPOCH_SECONDS of issue time, and the key tag random,
 * chosen once per sealer (once per receiptd process). Several nodes share the
 * ticket secret; with their own key tags, each seals under keys of its own,
 * so random 96-bit nonces stay below 2^32 messages per key as long as one
 * process stays below 2^32 tickets an hour, however many nodes there are.
 * The claims (ticket.c) name the delivery's kind and the digest of the
 * bytes it sent beside the stored file's. Versions 1 (no key tag; info
 * "epoch " || decimal epoch) and 2 (the key tag, claims without kind and
 * bytes sent) still open, so that tickets issued before an upgrade stay
 * valid. A ticket is at most
 * TICKET_MAX_LEN characters; content paths longer than TICKET_PATH_MAX
 * bytes cannot be ticketed.
 *
 * A ticket_sealer is thread-safe; it owns a copy of the secret and wipes it
 * when freed.
 */
#ifndef RECEIPT_DAEMON_TICKET_H
#define RECEIPT_DAEMON_TICKET_H

#include "common/compiler.h"
#include "common/uuid7.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TICKET_MAX_LEN       512
#define TICKET_PATH_MAX      200
#define TICKET_EPOCH_SECONDS 3600
#define TICKET_SECRET_LEN    32

#define TICKET_KIND_NONE 0xff /* tickets before version 3 carry no kind */

typedef struct ticket_claims {
    uuid7 delivery;
    uint8_t kind;       /* a ledger_kind, or TICKET_KIND_NONE */
    uint8_t sha256[32]; /* of the stored content: its version */
    uint64_t size;
    /* What the response sent: the injected page, or the stored bytes (then
     * the same as sha256 and size). */
    uint8_t delivered_sha256[32];
    uint64_t delivered_size;
    uint64_t issued_ms;
    uint64_t expires_ms;
    bool bound;            /* client_id is set */
    uint8_t client_id[32]; /* raw SHA-256 thumbprint of the client key */
    size_t path_len;
    char path[TICKET_PATH_MAX + 1]; /* NUL-terminated content path */
} ticket_claims;

typedef enum ticket_result {
    TICKET_OK = 0,
    TICKET_INVALID, /* malformed, tampered, or sealed under another secret */
    TICKET_EXPIRED, /* authentic, but now >= expires_ms                     */
    TICKET_TOO_LONG,
    TICKET_INTERNAL,
} ticket_result;

typedef struct ticket_sealer ticket_sealer;

WARN_UNUSED_RESULT ticket_sealer *ticket_sealer_new(const uint8_t secret[TICKET_SECRET_LEN]);
void ticket_sealer_free(ticket_sealer *sealer);

/* Seals claims (epoch from issued_ms); out holds TICKET_MAX_LEN + 1 bytes. */
WARN_UNUSED_RESULT ticket_result ticket_seal(ticket_sealer *sealer, const ticket_claims *claims,
                                             char out[TICKET_MAX_LEN + 1], size_t *out_len);

/* Opens a ticket; checks expiry against now_ms. Claims are set on TICKET_OK
 * and also on TICKET_EXPIRED (authentic but late). Text longer than
 * TICKET_MAX_LEN is TICKET_INVALID, like any text that does not open;
 * TICKET_TOO_LONG is for sealing a path over TICKET_PATH_MAX. */
WARN_UNUSED_RESULT ticket_result ticket_open(ticket_sealer *sealer, const char *text, size_t n,
                                             uint64_t now_ms, ticket_claims *claims);

#endif
