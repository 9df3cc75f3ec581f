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

/* ---- the payload ---------------------------------------------------------- */

typedef enum member_bit {
    M_V = 1u << 0,
    M_DELIVERY = 1u << 1,
    M_TICKET = 1u << 2,
    M_CLIENT = 1u << 3,
    M_RECEIVED = 1u << 4,
    M_ID = 1u << 5,
    M_SHA256 = 1u << 6,
    M_SIZE = 1u << 7,
    M_AT_MS = 1u << 8,
} member_bit;

/* "{" members "}", each named once, values by member (the caller's). */
typedef bool (*member_fn)(sjson_plain *s, const char *name, confirm_payload *pl, unsigned *seen);

static bool take_object(sjson_plain *s, member_fn member, confirm_payload *pl, unsigned *seen)
{
    if (!sjson_plain_take(s, '{'))
        return false;
    for (bool first = true;; first = false) {
        if (sjson_plain_take(s, '}'))
            return !first; /* an empty object has none of the members: the full parser says so */
        if (!first && !sjson_plain_take(s, ','))
            return false;
        const char *name;
        size_t len;
        if (!sjson_plain_string(s, &name, &len) || !sjson_plain_take(s, ':') ||
            !member(s, name, pl, seen))
            return false;
    }
}

/* Names a member not seen before; a second is a duplicate, which the full
 * parser refuses. */
static bool first_time(unsigned *seen, unsigned bit)
{
    if (*seen & bit)
        return false;
    *seen |= bit;
    return true;
}

static bool client_member(sjson_plain *s, const char *name, confirm_payload *pl, unsigned *seen)
{
    if (strcmp(name, "id") == 0)
        return first_time(seen, M_ID) && sjson_plain_string(s, &pl->client_id, &pl->client_len);
    return false;
}

static bool received_member(sjson_plain *s, const char *name, confirm_payload *pl, unsigned *seen)
{
    if (strcmp(name, "size") == 0)
        return first_time(seen, M_SIZE) && (pl->has_size = sjson_plain_uint(s, &pl->size));
    if (strcmp(name, "at_ms") == 0)
        return first_time(seen, M_AT_MS) && (pl->has_at_ms = sjson_plain_uint(s, &pl->at_ms));
    if (strcmp(name, "sha256") != 0 || !first_time(seen, M_SHA256))
        return false;
    if (sjson_plain_null(s)) {
        pl->sha256_kind = CONFIRM_SHA256_NULL;
        return true;
    }
    pl->sha256_kind = CONFIRM_SHA256_STRING;
    return sjson_plain_string(s, &pl->sha256, &pl->sha256_len);
}

static bool top_member(sjson_plain *s, const char *name, confirm_payload *pl, unsigned *seen)
{
    switch (name[0]) {
    case 'v':
        return name[1] == '\0' && first_time(seen, M_V) &&
               (pl->has_v = sjson_plain_uint(s, &pl->v));
    case 'd':
        return strcmp(name, "delivery") == 0 && first_time(seen, M_DELIVERY) &&
               sjson_plain_string(s, &pl->delivery, &pl->delivery_len);
    case 't':
        return strcmp(name, "ticket") == 0 && first_time(seen, M_TICKET) &&
               sjson_plain_string(s, &pl->ticket, &pl->ticket_len);
    case 'c':
        return strcmp(name, "client") == 0 && first_time(seen, M_CLIENT) &&
               take_object(s, client_member, pl, seen);
    case 'r':
        return strcmp(name, "received") == 0 && first_time(seen, M_RECEIVED) &&
               (pl->has_received = take_object(s, received_member, pl, seen));
    default:
        return false;
    }
}

/* The payload as confirmations are written (PROTOCOL.md section 6: those
 * members and no others, strings of printable ASCII without escapes, whole
 * numbers in digits), read without building a JSON tree; false for
 * anything else, which the full parser then reads. */
static bool parse_plain(char *text, size_t n, confirm_payload *pl)
{
    const unsigned all =
        M_V | M_DELIVERY | M_TICKET | M_CLIENT | M_RECEIVED | M_ID | M_SHA256 | M_SIZE | M_AT_MS;
    sjson_plain s = {text, text + n};
    unsigned seen = 0;
    return take_object(&s, top_member, pl, &seen) && sjson_plain_end(&s) && seen == all;
}

static void parse_tree(const json_t *msg, confirm_payload *pl)
{
    pl->delivery = sjson_string(msg, "delivery", &pl->delivery_len);
    pl->ticket = sjson_string(msg, "ticket", &pl->ticket_len);
    const json_t *client = sjson_object(msg, "client");
    const json_t *received = sjson_object(msg, "received");
    pl->client_id = client != NULL ? sjson_string(client, "id", &pl->client_len) : NULL;
    pl->has_v = sjson_uint(msg, "v", &pl->v);
    pl->has_received = received != NULL;
    if (received == NULL)
        return;
    pl->has_size = sjson_uint(received, "size", &pl->size);
    pl->has_at_ms = sjson_uint(received, "at_ms", &pl->at_ms);
    const json_t *sha = json_object_get(received, "sha256");
    if (sha == NULL || json_is_null(sha)) {
        pl->sha256_kind = CONFIRM_SHA256_NULL;
    } else if (json_is_string(sha)) {
        pl->sha256_kind = CONFIRM_SHA256_STRING;
        pl->sha256 = json_string_value(sha);
        pl->sha256_len = json_string_length(sha);
    } else {
        pl->sha256_kind = CONFIRM_SHA256_OTHER;
    }
}

int confirm_payload_parse(char *text, size_t n, bool plain, confirm_payload *pl, json_t **tree)
{
    *tree = NULL;
    memset(pl, 0, sizeof *pl);
    /* The plain reading writes NULs into the text: a text it gives up on
     * goes to the full parser as it was, from a copy. */
    if (plain && n <= CONFIRM_PLAIN_MAX) {
        char copy[CONFIRM_PLAIN_MAX];
        memcpy(copy, text, n);
        if (parse_plain(text, n, pl)) {
            explicit_bzero(copy, n);
            return 0;
        }
        memcpy(text, copy, n);
        explicit_bzero(copy, n);
        memset(pl, 0, sizeof *pl);
    }
    char why[128];
    *tree = sjson_parse_object(text, n, SJSON_MAX_DEPTH, why, sizeof why);
    if (*tree == NULL)
        return -1;
    parse_tree(*tree, pl);
    return 0;
}

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

    confirm_payload pl;
    if (confirm_payload_parse((char *)plaintext, plaintext_len, true, &pl, &msg) != 0)
        FAIL(400, "malformed_json", "The confirmation payload is not a valid JSON object.");
    if (!pl.has_v || pl.delivery == NULL || pl.ticket == NULL || pl.client_id == NULL ||
        !pl.has_received)
        FAIL(400, "bad_payload", "The confirmation lacks v, delivery, ticket, client or received.");
    if (pl.v != 1)
        FAIL(400, "bad_version", "Only version 1 confirmations are understood.");
    if (!pl.has_size || !pl.has_at_ms || pl.size > LEDGER_NUMBER_MAX ||
        pl.at_ms > LEDGER_NUMBER_MAX)
        FAIL(400, "bad_payload",
             "received.size and received.at_ms must be whole numbers below 2^53.");
    out->received_size = pl.size;
    out->received_at_ms = pl.at_ms;
    if (pl.sha256_kind == CONFIRM_SHA256_NULL) {
        out->has_sha256 = false;
    } else if (pl.sha256_kind == CONFIRM_SHA256_STRING &&
               b64url_decode(pl.sha256, pl.sha256_len, out->received_sha256,
                             sizeof out->received_sha256) == 32) {
        out->has_sha256 = true;
    } else {
        FAIL(400, "bad_payload", "received.sha256 must be null or base64url of 32 bytes.");
    }
    const char *client_id = pl.client_id, *delivery_id = pl.delivery, *ticket = pl.ticket;
    size_t delivery_len = pl.delivery_len, ticket_len = pl.ticket_len;
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
