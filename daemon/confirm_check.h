/*
 * confirm_check: whether a confirmation (docs/protocol.md section 8) is one to
 * record, and what it says.
 *
 * The whole check of a POST /_receipt/confirm body, on values alone: the
 * client's key from its Receipt-Client-Key value, the JWE header
 * allow-list, kid and skid, decryption with K, the payload's members, the
 * ticket (authentic, unexpired, bound to this client, naming this
 * delivery), and the status the received digest gives. It knows no HTTP
 * and writes nothing; confirm.c takes what it returns to the ledger.
 * Thread-safe as its keys are.
 */
#ifndef RECEIPT_DAEMON_CONFIRM_CHECK_H
#define RECEIPT_DAEMON_CONFIRM_CHECK_H

#include "common/compiler.h"
#include "common/uuid7.h"
#include "daemon/clientkeys.h"
#include "daemon/ledger.h"
#include "daemon/ticket.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a confirmation is checked against; borrowed. */
typedef struct confirm_check_keys {
    clientkeys *client_keys; /* from the Receipt-Client-Key value to K */
    const char *server_kid;  /* thumbprint of the server's encryption key: the skid */
    ticket_sealer *sealer;
} confirm_check_keys;

/* A confirmation that passed. Holds K: wipe it with confirm_check_wipe(). */
typedef struct confirm_check_result {
    ticket_claims ticket;
    clientkey client;
    char delivery_id[UUID7_STR_LEN + 1];
    ledger_status status; /* LEDGER_CONFIRMED, or LEDGER_CORRUPTED when the
                             received digest is not the delivered one (the
                             ticket's delivered_sha256: the bytes sent) */
    bool has_sha256;      /* false: the client sent null */
    uint8_t received_sha256[32];
    uint64_t received_size;
    uint64_t received_at_ms;
} confirm_check_result;

/* Why a confirmation was refused: the HTTP status and the error body's
 * code and message (static strings). */
typedef struct confirm_check_failure {
    unsigned status;
    const char *code;
    const char *message;
} confirm_check_failure;

/* received.sha256 as sent: null (or absent), a string, or another type. */
typedef enum confirm_sha256_kind {
    CONFIRM_SHA256_NULL = 0,
    CONFIRM_SHA256_STRING,
    CONFIRM_SHA256_OTHER,
} confirm_sha256_kind;

/* A confirmation payload's members (PROTOCOL.md section 6) as sent, before
 * any check: strings point into the parsed text or its tree. A member that
 * is absent or of another type is NULL or false. */
typedef struct confirm_payload {
    bool has_v;
    uint64_t v;
    const char *delivery, *ticket, *client_id; /* NUL-terminated */
    size_t delivery_len, ticket_len, client_len;
    bool has_received; /* received is an object */
    bool has_size, has_at_ms;
    uint64_t size, at_ms;
    confirm_sha256_kind sha256_kind;
    const char *sha256; /* when a string */
    size_t sha256_len;
} confirm_payload;

/* Payloads up to this size are tried first without building a JSON tree. */
#define CONFIRM_PLAIN_MAX 2048

/*
 * Reads the payload text (n bytes, not NUL-terminated) into *pl. With
 * plain, a payload written as confirmations are (the members of section 6
 * and no others, each once, strings of printable ASCII without escapes,
 * whole numbers in at most 15 digits) is read in place, writing a NUL
 * after each string it keeps; any other text is parsed whole (sjson) into
 * *tree, which the strings then point into and which the caller frees
 * with json_decref() (NULL when not made). Both readings give the same
 * *pl for a text the plain one takes. Returns 0, or -1 when the text is
 * not one JSON object.
 */
int confirm_payload_parse(char *text, size_t n, bool plain, confirm_payload *pl, json_t **tree);

/*
 * Checks the n bytes of body (a JWE compact serialisation) sent with the
 * Receipt-Client-Key value client_key (NULL when the header is absent) at
 * now_ms. Returns 0 with *out set, or -1 with *fail set; nothing of the
 * plaintext is left in memory either way but what *out holds.
 */
WARN_UNUSED_RESULT int confirm_check(const confirm_check_keys *keys, const char *client_key,
                                     const char *body, size_t n, uint64_t now_ms,
                                     confirm_check_result *out, confirm_check_failure *fail);

/* Wipes a result (K and what was decrypted); for __attribute__((cleanup)). */
void confirm_check_wipe(confirm_check_result *result);

#endif
