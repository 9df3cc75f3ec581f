#include "daemon/confirm_check.h"

#include "common/b64.h"
#include "common/jose.h"
#include "common/sjson.h"

#include <stdlib.h>
#include <string.h>

#define FAIL(s, c, m)                                                                              \
    do {                                                                                           \
        fail->status = (s);                                                                        \
        fail->code = (c);                                                                          \
        fail->message = (m);                                                                       \
        goto out;                                                                                  \
    } while (0)

int confirm_check(const confirm_check_keys *keys, const char *client_key, const char *body,
                  size_t n, uint64_t now_ms, confirm_check_result *out, confirm_check_failure *fail)
{
    int rc = -1;
    uint8_t *plaintext = NULL;
    size_t plaintext_len = 0;
    json_t *msg = NULL;
    jose_header jh;

    fail->status = 500;
    fail->code = "internal_error";
    fail->message = "The confirmation could not be processed.";

    int has_key = clientkeys_lookup(keys->client_keys, client_key, &out->client);
    if (has_key == 0)
        FAIL(400, "missing_client_key", "Send your public key in Receipt-Client-Key.");
    if (has_key < 0)
        FAIL(400, "bad_client_key", "Receipt-Client-Key is not a valid P-256 public key.");

    switch (jwe_peek(body, n, &jh)) {
    case JOSE_OK:
        break;
    case JOSE_BAD_HEADER:
        FAIL(400, "bad_jose_header", "The JWE header is not the one the protocol allows.");
    default:
        FAIL(400, "malformed_jose", "The body is not a JWE compact serialisation.");
    }
    if (strcmp(jh.kid, out->client.id) != 0)
        FAIL(400, "kid_mismatch", "The JWE kid is not the thumbprint of Receipt-Client-Key.");
    if (strcmp(jh.skid, keys->server_kid) != 0)
        FAIL(400, "unknown_server_key", "The JWE skid names no key of this server.");
    if (strcmp(jh.cty, JOSE_CTY_CONFIRM) != 0)
        FAIL(400, "bad_jose_header", "The JWE cty must be receipt-confirm+json.");

    switch (jwe_decrypt_peeked(out->client.key, body, n, &plaintext, &plaintext_len)) {
    case JOSE_OK:
        break;
    case JOSE_DECRYPT:
        FAIL(401, "decrypt_failed", "The confirmation does not decrypt with this client's key.");
    case JOSE_INTERNAL:
        FAIL(500, "internal_error", "The confirmation could not be decrypted.");
    default:
        FAIL(400, "malformed_jose", "The body is not a JWE compact serialisation.");
    }

    char why[128];
    msg = sjson_parse_object((const char *)plaintext, plaintext_len, SJSON_MAX_DEPTH, why,
                             sizeof why);
    if (msg == NULL)
        FAIL(400, "malformed_json", "The confirmation payload is not a valid JSON object.");

    uint64_t version;
    size_t delivery_len, ticket_len, client_len;
    const char *delivery_id = sjson_string(msg, "delivery", &delivery_len);
    const char *ticket = sjson_string(msg, "ticket", &ticket_len);
    const json_t *client = sjson_object(msg, "client");
    const json_t *received = sjson_object(msg, "received");
    const char *client_id = client != NULL ? sjson_string(client, "id", &client_len) : NULL;
    if (!sjson_uint(msg, "v", &version) || delivery_id == NULL || ticket == NULL ||
        client_id == NULL || received == NULL)
        FAIL(400, "bad_payload", "The confirmation lacks v, delivery, ticket, client or received.");
    if (version != 1)
        FAIL(400, "bad_version", "Only version 1 confirmations are understood.");
    if (!sjson_uint(received, "size", &out->received_size) ||
        !sjson_uint(received, "at_ms", &out->received_at_ms) ||
        out->received_size > LEDGER_NUMBER_MAX || out->received_at_ms > LEDGER_NUMBER_MAX)
        FAIL(400, "bad_payload",
             "received.size and received.at_ms must be whole numbers below 2^53.");
    const json_t *sha = json_object_get(received, "sha256");
    if (sha == NULL || json_is_null(sha)) {
        out->has_sha256 = false;
    } else if (json_is_string(sha) &&
               b64url_decode(json_string_value(sha), json_string_length(sha), out->received_sha256,
                             sizeof out->received_sha256) == 32) {
        out->has_sha256 = true;
    } else {
        FAIL(400, "bad_payload", "received.sha256 must be null or base64url of 32 bytes.");
    }
    if (strcmp(client_id, out->client.id) != 0)
        FAIL(400, "client_mismatch", "client.id is not the thumbprint of Receipt-Client-Key.");

    switch (ticket_open(keys->sealer, ticket, ticket_len, now_ms, &out->ticket)) {
    case TICKET_OK:
        break;
    case TICKET_EXPIRED:
        FAIL(410, "ticket_expired", "This delivery can no longer be confirmed.");
    default:
        FAIL(401, "ticket_invalid", "The ticket is not one this server sealed.");
    }
    if (!out->ticket.bound || memcmp(out->ticket.client_id, out->client.id_raw, 32) != 0)
        FAIL(401, "ticket_not_yours", "The ticket is not bound to this client.");
    uuid7_format(&out->ticket.delivery, out->delivery_id);
    if (delivery_len != UUID7_STR_LEN || strcmp(out->delivery_id, delivery_id) != 0)
        FAIL(400, "delivery_mismatch", "delivery is not the ticket's delivery.");
    out->status =
        out->has_sha256 && memcmp(out->received_sha256, out->ticket.delivered_sha256, 32) != 0
            ? LEDGER_CORRUPTED
            : LEDGER_CONFIRMED;
    rc = 0;
out:
    json_decref(msg);
    if (plaintext != NULL) {
        explicit_bzero(plaintext, plaintext_len);
        free(plaintext);
    }
    if (rc != 0)
        confirm_check_wipe(out);
    return rc;
}

void confirm_check_wipe(confirm_check_result *result)
{
    explicit_bzero(result, sizeof *result);
}
