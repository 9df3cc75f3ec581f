/*
 * confirm_check: a confirmation made the way a client makes it passes and
 * says confirmed or corrupted; each way of getting it wrong is refused with
 * the status and code of docs/protocol.md section 8, and leaves no key behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/b64.h"
#include "common/jose.h"
#include "common/kdf.h"
#include "daemon/confirm_check.h"
#include "daemon/delivery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW     UINT64_C(1764100000000)
#define TTL_S   3600
#define SIZE    42
#define PAYLOAD 4096

static const uint8_t secret[TICKET_SECRET_LEN] = {3, 1, 4, 1, 5, 9, 2, 6};
static const uint8_t digest[32] = {0xfe, 0xed, 0xfa, 0xce};
static const uint8_t injected[32] = {0x1e, 0xc7, 0xed}; /* the page as sent */

typedef struct fixture {
    eckey *server;
    eckey *client;
    eckey *stranger;
    clientkeys *cache;
    ticket_sealer *sealer;
    confirm_check_keys keys;
    char header[ECKEY_POINT_B64_LEN + 1];
    uint8_t client_raw[32];
    uint8_t k[KDF_KEY_LEN];
    delivery bound;   /* bound to client */
    delivery unbound; /* a browser's ticket, never traded */
    delivery page;    /* an injected page, bound to client */
    char sha_b64[48];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->server = eckey_generate();
    f->client = eckey_generate();
    f->stranger = eckey_generate();
    f->cache = clientkeys_new(f->server, 16);
    f->sealer = ticket_sealer_new(secret);
    assert_non_null(f->cache);
    assert_non_null(f->sealer);
    f->keys.client_keys = f->cache;
    f->keys.server_kid = eckey_thumbprint(f->server);
    f->keys.sealer = f->sealer;
    eckey_header_value(f->client, f->header);
    assert_int_equal(b64url_decode(eckey_thumbprint(f->client), ECKEY_THUMBPRINT_LEN, f->client_raw,
                                   sizeof f->client_raw),
                     32);
    assert_int_equal(kdf_derive(f->client, f->server, eckey_thumbprint(f->client),
                                eckey_thumbprint(f->server), f->k),
                     0);
    delivery_content notice = {
        .path = "/notice.html",
        .path_len = 12,
        .kind = LEDGER_KIND_DEVICE,
        .sha256 = digest,
        .size = SIZE,
        .delivered_sha256 = digest,
        .delivered_size = SIZE,
    };
    assert_int_equal(delivery_issue(f->sealer, &notice, NOW, TTL_S, f->client_raw, &f->bound), 0);
    assert_int_equal(delivery_issue(f->sealer, &notice, NOW, TTL_S, NULL, &f->unbound), 0);
    notice.delivered_sha256 = injected;
    notice.delivered_size = SIZE + 48;
    assert_int_equal(delivery_issue(f->sealer, &notice, NOW, TTL_S, f->client_raw, &f->page), 0);
    b64url_encode(digest, 32, f->sha_b64);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    clientkeys_free(f->cache);
    ticket_sealer_free(f->sealer);
    eckey_free(f->server);
    eckey_free(f->client);
    eckey_free(f->stranger);
    free(f);
    return 0;
}

/* The payload a client sends for d, with sha256 as given (a JSON value). */
static void payload_for(const fixture *f, const delivery *d, const char *sha256, char *out)
{
    snprintf(out, PAYLOAD,
             "{\"v\":1,\"delivery\":\"%s\",\"ticket\":\"%s\",\"client\":{\"id\":\"%s\"},"
             "\"received\":{\"sha256\":%s,\"size\":%d,\"at_ms\":%llu}}",
             d->id_text, d->ticket, eckey_thumbprint(f->client), sha256, SIZE,
             (unsigned long long)NOW + 5);
}

static char *seal_with(const uint8_t k[KDF_KEY_LEN], const char *kid, const char *skid,
                       const char *cty, const char *payload)
{
    char *jwe = NULL;
    assert_int_equal(
        jwe_encrypt(k, kid, skid, cty, (const uint8_t *)payload, strlen(payload), NULL, &jwe),
        JOSE_OK);
    return jwe;
}

static char *seal(const fixture *f, const char *payload)
{
    return seal_with(f->k, eckey_thumbprint(f->client), eckey_thumbprint(f->server),
                     JOSE_CTY_CONFIRM, payload);
}

static int run(const fixture *f, const char *header, const char *body, uint64_t now,
               confirm_check_result *out, confirm_check_failure *fail)
{
    return confirm_check(&f->keys, header, body, strlen(body), now, out, fail);
}

static void test_confirmed(void **state)
{
    fixture *f = *state;
    char payload[PAYLOAD];
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", f->sha_b64);
    payload_for(f, &f->bound, quoted, payload);
    char *jwe = seal(f, payload);
    confirm_check_result r;
    confirm_check_failure fail;
    assert_int_equal(run(f, f->header, jwe, NOW + 10, &r, &fail), 0);
    assert_int_equal(r.status, LEDGER_CONFIRMED);
    assert_string_equal(r.delivery_id, f->bound.id_text);
    assert_string_equal(r.client.id, eckey_thumbprint(f->client));
    assert_memory_equal(r.client.key, f->k, KDF_KEY_LEN);
    assert_true(r.has_sha256);
    assert_memory_equal(r.received_sha256, digest, 32);
    assert_int_equal(r.received_size, SIZE);
    assert_int_equal(r.received_at_ms, NOW + 5);
    assert_string_equal(r.ticket.path, "/notice.html");
    confirm_check_wipe(&r);
    static const uint8_t zero[KDF_KEY_LEN];
    assert_memory_equal(r.client.key, zero, KDF_KEY_LEN);
    free(jwe);
}

static void test_corrupted_and_unknown_digest(void **state)
{
    fixture *f = *state;
    char payload[PAYLOAD];
    confirm_check_result r;
    confirm_check_failure fail;

    uint8_t other[32] = {1};
    char other_b64[48];
    char quoted[64];
    b64url_encode(other, 32, other_b64);
    snprintf(quoted, sizeof quoted, "\"%s\"", other_b64);
    payload_for(f, &f->bound, quoted, payload);
    char *jwe = seal(f, payload);
    assert_int_equal(run(f, f->header, jwe, NOW + 10, &r, &fail), 0);
    assert_int_equal(r.status, LEDGER_CORRUPTED);
    free(jwe);

    /* null: the client could not hash what it got; nothing says corrupted */
    payload_for(f, &f->bound, "null", payload);
    jwe = seal(f, payload);
    assert_int_equal(run(f, f->header, jwe, NOW + 10, &r, &fail), 0);
    assert_int_equal(r.status, LEDGER_CONFIRMED);
    assert_false(r.has_sha256);
    free(jwe);
}

/* An injected page: the bytes sent are the version with the element, and
 * a client that hashed them confirms; the stored file's digest is not what
 * it received. */
static void test_injected_page(void **state)
{
    fixture *f = *state;
    char payload[PAYLOAD];
    char b64[48], quoted[64];
    confirm_check_result r;
    confirm_check_failure fail;

    b64url_encode(injected, 32, b64);
    snprintf(quoted, sizeof quoted, "\"%s\"", b64);
    payload_for(f, &f->page, quoted, payload);
    char *jwe = seal(f, payload);
    assert_int_equal(run(f, f->header, jwe, NOW + 10, &r, &fail), 0);
    assert_int_equal(r.status, LEDGER_CONFIRMED);
    assert_memory_equal(r.ticket.sha256, digest, 32);
    assert_memory_equal(r.ticket.delivered_sha256, injected, 32);
    assert_int_equal(r.ticket.delivered_size, SIZE + 48);
    free(jwe);

    snprintf(quoted, sizeof quoted, "\"%s\"", f->sha_b64);
    payload_for(f, &f->page, quoted, payload);
    jwe = seal(f, payload);
    assert_int_equal(run(f, f->header, jwe, NOW + 10, &r, &fail), 0);
    assert_int_equal(r.status, LEDGER_CORRUPTED);
    free(jwe);
}

typedef struct refusal {
    const char *what;
    unsigned status;
    const char *code;
} refusal;

static void expect(const fixture *f, const refusal *want, const char *header, const char *body,
                   uint64_t now)
{
    confirm_check_result r;
    confirm_check_failure fail;
    memset(&r, 0xa5, sizeof r);
    if (run(f, header, body, now, &r, &fail) == 0)
        fail_msg("%s: accepted", want->what);
    if (fail.status != want->status || strcmp(fail.code, want->code) != 0)
        fail_msg("%s: %u %s, expected %u %s", want->what, fail.status, fail.code, want->status,
                 want->code);
    assert_non_null(fail.message);
    /* Nothing of K or the plaintext stays in a refused result. */
    static const confirm_check_result zero;
    if (memcmp(&r, &zero, sizeof r) != 0)
        fail_msg("%s: the result was not wiped", want->what);
}

static void test_refusals(void **state)
{
    fixture *f = *state;
    char payload[PAYLOAD];
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", f->sha_b64);
    payload_for(f, &f->bound, quoted, payload);
    char *good = seal(f, payload);
    const char *cid = eckey_thumbprint(f->client);
    const char *skid = eckey_thumbprint(f->server);

    expect(f, &(refusal){"no key", 400, "missing_client_key"}, NULL, good, NOW);
    expect(f, &(refusal){"bad key", 400, "bad_client_key"}, "not-a-point", good, NOW);
    expect(f, &(refusal){"not a JWE", 400, "malformed_jose"}, f->header, "a.b.c", NOW);
    expect(f, &(refusal){"empty", 400, "malformed_jose"}, f->header, "", NOW);

    char other_header[ECKEY_POINT_B64_LEN + 1];
    eckey_header_value(f->stranger, other_header);
    expect(f, &(refusal){"another key's header", 400, "kid_mismatch"}, other_header, good, NOW);

    char *jwe = seal_with(f->k, cid, eckey_thumbprint(f->stranger), JOSE_CTY_CONFIRM, payload);
    expect(f, &(refusal){"skid of no server key", 400, "unknown_server_key"}, f->header, jwe, NOW);
    free(jwe);
    jwe = seal_with(f->k, cid, skid, JOSE_CTY_PLUGIN, payload);
    expect(f, &(refusal){"plug-in cty", 400, "bad_jose_header"}, f->header, jwe, NOW);
    free(jwe);
    uint8_t wrong_k[KDF_KEY_LEN] = {7};
    jwe = seal_with(wrong_k, cid, skid, JOSE_CTY_CONFIRM, payload);
    expect(f, &(refusal){"another K", 401, "decrypt_failed"}, f->header, jwe, NOW);
    free(jwe);

    static const struct {
        const char *what;
        const char *payload;
        unsigned status;
        const char *code;
    } bad_payloads[] = {
        {"not JSON", "{\"v\":1,", 400, "malformed_json"},
        {"an array", "[1]", 400, "malformed_json"},
        {"members missing", "{\"v\":1}", 400, "bad_payload"},
    };
    for (size_t i = 0; i < sizeof bad_payloads / sizeof bad_payloads[0]; i++) {
        jwe = seal(f, bad_payloads[i].payload);
        refusal want = {bad_payloads[i].what, bad_payloads[i].status, bad_payloads[i].code};
        expect(f, &want, f->header, jwe, NOW);
        free(jwe);
    }

    /* Members of the right names and wrong values, one at a time. */
    const char *bound = f->bound.ticket;
    const char *other = eckey_thumbprint(f->stranger);
    const char *fine = "{\"sha256\":null,\"size\":1,\"at_ms\":1}";
    const struct {
        refusal want;
        int v;
        const char *delivery, *ticket, *client, *received;
    } wrong[] = {
        {{"version 2", 400, "bad_version"}, 2, f->bound.id_text, bound, cid, fine},
        {{"size as text", 400, "bad_payload"},
         1,
         f->bound.id_text,
         bound,
         cid,
         "{\"sha256\":null,\"size\":\"1\",\"at_ms\":1}"},
        {{"size of 2^53", 400, "bad_payload"},
         1,
         f->bound.id_text,
         bound,
         cid,
         "{\"sha256\":null,\"size\":9007199254740992,\"at_ms\":1}"},
        {{"at_ms of 2^53", 400, "bad_payload"},
         1,
         f->bound.id_text,
         bound,
         cid,
         "{\"sha256\":null,\"size\":1,\"at_ms\":9007199254740992}"},
        {{"short sha256", 400, "bad_payload"},
         1,
         f->bound.id_text,
         bound,
         cid,
         "{\"sha256\":\"abc\",\"size\":1,\"at_ms\":1}"},
        {{"another client.id", 400, "client_mismatch"}, 1, f->bound.id_text, bound, other, fine},
        {{"forged ticket", 401, "ticket_invalid"}, 1, f->bound.id_text, "AAAA", cid, fine},
        {{"ticket never bound", 401, "ticket_not_yours"},
         1,
         f->unbound.id_text,
         f->unbound.ticket,
         cid,
         fine},
        {{"another delivery", 400, "delivery_mismatch"}, 1, f->unbound.id_text, bound, cid, fine},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        char text[PAYLOAD];
        snprintf(text, sizeof text,
                 "{\"v\":%d,\"delivery\":\"%s\",\"ticket\":\"%s\",\"client\":{\"id\":\"%s\"},"
                 "\"received\":%s}",
                 wrong[i].v, wrong[i].delivery, wrong[i].ticket, wrong[i].client,
                 wrong[i].received);
        jwe = seal(f, text);
        expect(f, &wrong[i].want, f->header, jwe, NOW);
        free(jwe);
    }

    expect(f, &(refusal){"after the ticket's life", 410, "ticket_expired"}, f->header, good,
           NOW + (uint64_t)TTL_S * 1000);
    free(good);
}

/* Both readings of a payload, compared member by member. */
static void same_reading(const char *text, bool want_plain)
{
    char a[PAYLOAD], b[PAYLOAD];
    size_t n = strlen(text);
    confirm_payload pa, pb;
    json_t *ta, *tb;
    memcpy(a, text, n);
    memcpy(b, text, n);
    int ra = confirm_payload_parse(a, n, true, &pa, &ta);
    int rb = confirm_payload_parse(b, n, false, &pb, &tb);
    /* A text the plain reading takes makes no tree; one it leaves makes a
     * tree, or fails to (not JSON). */
    bool took_plain = ra == 0 && ta == NULL;
    if (ra != rb || took_plain != want_plain)
        fail_msg("%s: %d (%s) against %d", text, ra, took_plain ? "plain" : "tree", rb);
    assert_int_equal(pa.has_v, pb.has_v);
    assert_true(!pa.has_v || pa.v == pb.v);
    const char *sa[] = {pa.delivery, pa.ticket, pa.client_id};
    const char *sb[] = {pb.delivery, pb.ticket, pb.client_id};
    size_t la[] = {pa.delivery_len, pa.ticket_len, pa.client_len};
    size_t lb[] = {pb.delivery_len, pb.ticket_len, pb.client_len};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(sa[i] == NULL, sb[i] == NULL);
        if (sa[i] != NULL) {
            assert_int_equal(la[i], lb[i]);
            assert_memory_equal(sa[i], sb[i], la[i]);
            assert_int_equal(strlen(sa[i]), la[i]); /* NUL-terminated where it ends */
        }
    }
    assert_int_equal(pa.has_received, pb.has_received);
    assert_int_equal(pa.has_size, pb.has_size);
    assert_int_equal(pa.has_at_ms, pb.has_at_ms);
    assert_true(!pa.has_size || pa.size == pb.size);
    assert_true(!pa.has_at_ms || pa.at_ms == pb.at_ms);
    assert_int_equal(pa.sha256_kind, pb.sha256_kind);
    if (pa.sha256_kind == CONFIRM_SHA256_STRING) {
        assert_int_equal(pa.sha256_len, pb.sha256_len);
        assert_memory_equal(pa.sha256, pb.sha256, pa.sha256_len);
    }
    /* A text given up on goes to the full parser unchanged. */
    if (!took_plain)
        assert_memory_equal(a, text, n);
    json_decref(ta);
    json_decref(tb);
}

/*
 * The payload as clients write it is read without a JSON tree, and reads
 * as the full parser reads it; every other text, valid or not, goes to the
 * full parser (a duplicate, an escape, a real, a member more or less).
 */
static void test_payload_readings(void **state)
{
    (void)state;
    static const char *plain[] = {
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1024,\"at_ms\":1764100001234}}",
        " {\n\"received\" : {\"at_ms\":0 ,\"size\":999999999999999, \"sha256\":\"q-_A\"},\t"
        "\"client\":{\"id\":\"\"},\"ticket\":\"x\",\"delivery\":\"y\",\"v\":7}\r\n",
    };
    static const char *tree[] = {
        /* valid JSON the plain reading leaves to the full parser */
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1024,\"at_ms\":1}, \"extra\":true}",
        "{\"\\u0076\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\\u00e9\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\xc3\xa9\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1}}",
        "{\"v\":1.0,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1e3,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":-1,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":9007199254740992,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"size\":1,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":7,\"size\":1,\"at_ms\":1}}",
        "{\"v\":\"1\",\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{},\"received\":{}}",
        "{\"v\":1}",
        "{}",
        /* not JSON, or not one the full parser takes */
        "{\"v\":1,\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\",\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1}}",
        "{\"v\":01,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":nullx,\"size\":1,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1}} x",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1},}",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1}",
        "{\"v\":1,\"delivery\":\"d\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":12abc,\"at_ms\":1}}",
        "{\"v\":1,\"delivery\":\"d\x01\",\"ticket\":\"t\",\"client\":{\"id\":\"c\"},"
        "\"received\":{\"sha256\":null,\"size\":1,\"at_ms\":1}}",
        "[1]",
        "",
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        same_reading(plain[i], true);
    for (size_t i = 0; i < sizeof tree / sizeof tree[0]; i++)
        same_reading(tree[i], false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_confirmed),
        cmocka_unit_test(test_corrupted_and_unknown_digest),
        cmocka_unit_test(test_injected_page),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_payload_readings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
