/*
 * confirm_check: whatever a client sends, the check answers with a status
 * and a code or with a confirmation it can stand behind, and reads nothing
 * outside what it was given.
 *
 * The first byte picks what the rest is: 0, a Receipt-Client-Key value and
 * a body (split at the first newline), as they come off the wire; 1, the
 * payload of a confirmation sealed properly for a known client, so that the
 * JSON and the ticket checks behind the decryption get fuzzed too; 2, a
 * payload text read both ways confirm_payload_parse() can (in place, and
 * as a tree), which must agree on every text that either takes.
 */
#include "common/jose.h"
#include "common/kdf.h"
#include "daemon/confirm_check.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW UINT64_C(1764100000000)

typedef struct fuzz_world {
    eckey *server;
    eckey *client;
    clientkeys *cache;
    ticket_sealer *sealer;
    confirm_check_keys keys;
    char header[ECKEY_POINT_B64_LEN + 1];
    uint8_t k[KDF_KEY_LEN];
} fuzz_world;

static const fuzz_world *world(void)
{
    static fuzz_world w;
    static const uint8_t secret[TICKET_SECRET_LEN] = {17};
    if (w.cache != NULL)
        return &w;
    w.server = eckey_generate();
    w.client = eckey_generate();
    w.sealer = ticket_sealer_new(secret);
    w.cache = w.server != NULL ? clientkeys_new(w.server, 16) : NULL;
    if (w.client == NULL || w.sealer == NULL || w.cache == NULL)
        abort();
    w.keys.client_keys = w.cache;
    w.keys.server_kid = eckey_thumbprint(w.server);
    w.keys.sealer = w.sealer;
    eckey_header_value(w.client, w.header);
    if (kdf_derive(w.client, w.server, eckey_thumbprint(w.client), eckey_thumbprint(w.server),
                   w.k) != 0)
        abort();
    return &w;
}

static void check(const fuzz_world *w, const char *header, const char *body, size_t n)
{
    confirm_check_result r;
    confirm_check_failure fail;
    if (confirm_check(&w->keys, header, body, n, FUZZ_NOW, &r, &fail) == 0) {
        /* Only this server's tickets, bound to this client, get through. */
        if (strcmp(r.client.id, eckey_thumbprint(w->client)) != 0 || !r.ticket.bound)
            abort();
        confirm_check_wipe(&r);
    } else if (fail.status < 400 || fail.status > 599 || fail.code == NULL ||
               fail.message == NULL) {
        abort();
    }
}

static bool same_string(const char *a, size_t alen, const char *b, size_t blen)
{
    if (a == NULL || b == NULL)
        return a == b;
    return alen == blen && memcmp(a, b, alen) == 0;
}

static bool same_payload(const confirm_payload *a, const confirm_payload *b)
{
    if (a->has_v != b->has_v || (a->has_v && a->v != b->v))
        return false;
    if (!same_string(a->delivery, a->delivery_len, b->delivery, b->delivery_len) ||
        !same_string(a->ticket, a->ticket_len, b->ticket, b->ticket_len) ||
        !same_string(a->client_id, a->client_len, b->client_id, b->client_len))
        return false;
    if (a->has_received != b->has_received || a->has_size != b->has_size ||
        a->has_at_ms != b->has_at_ms || a->sha256_kind != b->sha256_kind)
        return false;
    if ((a->has_size && a->size != b->size) || (a->has_at_ms && a->at_ms != b->at_ms))
        return false;
    return a->sha256_kind != CONFIRM_SHA256_STRING ||
           same_string(a->sha256, a->sha256_len, b->sha256, b->sha256_len);
}

/* The plain reading either declines (the tree reads the text) or gives what
 * the tree gives. */
static void compare_readings(const char *text, size_t n)
{
    char *plain_text = malloc(n + 1), *tree_text = malloc(n + 1);
    confirm_payload a, b;
    json_t *a_tree = NULL, *b_tree = NULL;
    if (plain_text == NULL || tree_text == NULL)
        goto out;
    memcpy(plain_text, text, n);
    memcpy(tree_text, text, n);
    int a_rc = confirm_payload_parse(plain_text, n, true, &a, &a_tree);
    int b_rc = confirm_payload_parse(tree_text, n, false, &b, &b_tree);
    if (a_rc != b_rc)
        abort();
    if (a_rc == 0 && !same_payload(&a, &b))
        abort();
out:
    json_decref(a_tree);
    json_decref(b_tree);
    free(plain_text);
    free(tree_text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fuzz_world *w = world();
    if (size < 1)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;

    if (data[0] == 0) {
        const char *nl = memchr(rest, '\n', n);
        size_t header_len = nl != NULL ? (size_t)(nl - rest) : n;
        char *header = malloc(header_len + 1);
        if (header == NULL)
            return 0;
        memcpy(header, rest, header_len);
        header[header_len] = '\0';
        const char *body = nl != NULL ? nl + 1 : rest + n;
        check(w, header, body, (size_t)(rest + n - body));
        free(header);
        return 0;
    }

    if (data[0] == 2) {
        compare_readings(rest, n);
        return 0;
    }

    char *jwe = NULL;
    if (jwe_encrypt(w->k, eckey_thumbprint(w->client), eckey_thumbprint(w->server),
                    JOSE_CTY_CONFIRM, (const uint8_t *)rest, n, NULL, &jwe) != JOSE_OK)
        return 0;
    check(w, w->header, jwe, strlen(jwe));
    free(jwe);
    return 0;
}
