/*
 * rc_evidence: a proof checked with the log keys given, one or several (the
 * keys a log has had), and what a proof signed by another key is told;
 * the names of the files that pin audited logs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/b64.h"
#include "common/checkpoint.h"
#include "common/merkle.h"
#include "common/note.h"
#include "common/note_sign.h"
#include "lib/rc_evidence.h"
#include "receipt/receipt.h"

#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORIGIN   "example.com/_receipt/log"
#define DELIVERY "01a2351b-4264-7000-9c78-a85bf9802875"

typedef struct fixture {
    receipt_client *c;
    note_signer *key[3];             /* three keys of the log, in turn */
    char verifier[3][NOTE_VKEY_MAX]; /* their verifier key texts */
    char id[3][9];                   /* their key IDs, as messages write them */
    char receipt[256];
    char event[512];
    char salt[48];
    char root[48];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(receipt_client_new(&f->c), RECEIPT_OK);
    for (int i = 0; i < 3; i++) {
        uint8_t seed[32];
        memset(seed, 0x10 * (i + 1), sizeof seed);
        assert_int_equal(note_signer_new(ORIGIN, strlen(ORIGIN), seed, &f->key[i]), NOTE_OK);
        note_verifier *v = note_signer_verifier(f->key[i]);
        assert_non_null(v);
        note_verifier_text(v, f->verifier[i]);
        note_verifier_free(v);
        snprintf(f->id[i], sizeof f->id[i], "%08x", note_signer_id(f->key[i]));
    }
    /* A receipt whose payload names the delivery (its signature is not
     * what a proof checks), and its confirmation's event. */
    char payload[128];
    b64url_encode((const uint8_t *)"{\"delivery\":\"" DELIVERY "\"}",
                  strlen("{\"delivery\":\"" DELIVERY "\"}"), payload);
    snprintf(f->receipt, sizeof f->receipt, "eyJhbGciOiJFUzI1NiJ9.%s.c2ln", payload);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    char digest_b64[48];
    SHA256((const uint8_t *)f->receipt, strlen(f->receipt), digest);
    b64url_encode(digest, sizeof digest, digest_b64);
    snprintf(f->event, sizeof f->event,
             "{\"delivery\":\"%s\",\"receipt_sha256\":\"%s\",\"status\":\"confirmed\","
             "\"type\":\"confirmed\",\"v\":1}",
             DELIVERY, digest_b64);
    /* The log of that one leaf. */
    uint8_t salt[MERKLE_SALT_LEN];
    memset(salt, 0x5a, sizeof salt);
    b64url_encode(salt, sizeof salt, f->salt);
    merkle_hash commitment, leaf;
    merkle_commitment(salt, f->event, strlen(f->event), &commitment);
    merkle_leaf_hash(commitment.bytes, sizeof commitment.bytes, &leaf);
    b64std_encode(leaf.bytes, MERKLE_HASH_LEN, f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 3; i++)
        note_signer_free(f->key[i]);
    receipt_client_free(f->c);
    free(f);
    return 0;
}

/* The proof of the fixture's leaf, its checkpoint signed by the keys named
 * (indexes into f->key, -1 ends the list). */
static char *proof_signed_by(const fixture *f, int a, int b)
{
    char text[256];
    snprintf(text, sizeof text, "%s\n1\n%s\n", ORIGIN, f->root);
    note_signer *signers[2] = {f->key[a], b >= 0 ? f->key[b] : NULL};
    char *note = NULL;
    assert_int_equal(note_sign(text, strlen(text), signers, b >= 0 ? 2 : 1, &note, NULL), NOTE_OK);
    char *proof = NULL;
    json_t *obj = json_pack("{s:i,s:{s:s,s:s},s:[],s:s}", "index", 0, "leaf", "salt", f->salt,
                            "event", f->event, "hashes", "checkpoint", note);
    assert_non_null(obj);
    proof = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    free(note);
    assert_non_null(proof);
    return proof;
}

static receipt_result verify(fixture *f, const char *proof, const char *keys)
{
    return receipt_verify_proof(f->c, f->receipt, proof, keys);
}

static void test_one_key(void **state)
{
    fixture *f = *state;
    char *proof = proof_signed_by(f, 0, -1);
    assert_int_equal(verify(f, proof, f->verifier[0]), RECEIPT_OK);
    assert_int_equal(verify(f, proof, NULL), RECEIPT_OK); /* no key: no signature checked */
    free(proof);
}

static void test_signed_by_an_older_key(void **state)
{
    fixture *f = *state;
    char *proof = proof_signed_by(f, 0, -1);
    char want[256];
    assert_int_equal(verify(f, proof, f->verifier[1]), RECEIPT_ERR_VERIFY);
    snprintf(want, sizeof want,
             "its checkpoint is signed by another key of log " ORIGIN " (key ID %s), not by "
             "the key given: if the log's key has changed since, trust the older key too",
             f->id[0]);
    assert_non_null(strstr(receipt_errmsg(f->c), want));
    /* The keys an auditor knows the log had: the older one among them. */
    char keys[3 * NOTE_VKEY_MAX];
    snprintf(keys, sizeof keys, "%s\n%s\n", f->verifier[1], f->verifier[0]);
    assert_int_equal(verify(f, proof, keys), RECEIPT_OK);
    snprintf(keys, sizeof keys, "%s\r\n\n%s", f->verifier[2], f->verifier[0]);
    assert_int_equal(verify(f, proof, keys), RECEIPT_OK);
    /* Other keys of the log only: named, in the plural. */
    snprintf(keys, sizeof keys, "%s\n%s", f->verifier[1], f->verifier[2]);
    assert_int_equal(verify(f, proof, keys), RECEIPT_ERR_VERIFY);
    snprintf(want, sizeof want, "(key ID %s), not by the keys given", f->id[0]);
    assert_non_null(strstr(receipt_errmsg(f->c), want));
    free(proof);
}

static void test_cosigned(void **state)
{
    fixture *f = *state;
    /* A checkpoint that announces a rotation: signed by both keys. */
    char *proof = proof_signed_by(f, 0, 1);
    assert_int_equal(verify(f, proof, f->verifier[0]), RECEIPT_OK);
    assert_int_equal(verify(f, proof, f->verifier[1]), RECEIPT_OK);
    assert_int_equal(verify(f, proof, f->verifier[2]), RECEIPT_ERR_VERIFY);
    char want[64];
    snprintf(want, sizeof want, "(key ID %s, %s)", f->id[0], f->id[1]);
    assert_non_null(strstr(receipt_errmsg(f->c), want));
    free(proof);
}

static void test_keys_that_are_not(void **state)
{
    fixture *f = *state;
    char *proof = proof_signed_by(f, 0, -1);
    char keys[3 * NOTE_VKEY_MAX];
    /* Keys of two logs are no set of one log's keys. */
    note_signer *other = NULL;
    uint8_t seed[32] = {1};
    assert_int_equal(note_signer_new("other.example/_receipt/log", 26, seed, &other), NOTE_OK);
    note_verifier *v = note_signer_verifier(other);
    char other_text[NOTE_VKEY_MAX];
    note_verifier_text(v, other_text);
    snprintf(keys, sizeof keys, "%s\n%s", f->verifier[0], other_text);
    assert_int_equal(verify(f, proof, keys), RECEIPT_ERR_ARGUMENT);
    assert_non_null(strstr(receipt_errmsg(f->c), "the log keys given are of two logs, " ORIGIN
                                                 " and other.example/_receipt/log"));
    note_verifier_free(v);
    note_signer_free(other);
    /* A key text that is not one, and none at all. */
    snprintf(keys, sizeof keys, "%s\nexample.com/_receipt/log+00000000+AAAA", f->verifier[0]);
    assert_int_equal(verify(f, proof, keys), RECEIPT_ERR_ARGUMENT);
    assert_non_null(strstr(receipt_errmsg(f->c), "+AAAA is not a log's verifier key"));
    assert_int_equal(verify(f, proof, "\n\n"), RECEIPT_ERR_ARGUMENT);
    assert_non_null(strstr(receipt_errmsg(f->c), "no log key given"));
    free(proof);
}

/* URLs that the readable part alone confuses get names of their own. */
static void test_pin_names_differ(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"https://h/x_y/_receipt/log", "https://h/x/y/_receipt/log"},
        {"https://h:8443/_receipt/log", "https://h_8443/_receipt/log"},
        {"http://h/_receipt/log", "https://h/_receipt/log"},
        {"https://h/a%2Fb/_receipt/log", "https://h/a_2Fb/_receipt/log"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char a[256], b[256], la[256], lb[256];
        assert_int_equal(rc_evidence_pin_name(pairs[i][0], a, sizeof a), 0);
        assert_int_equal(rc_evidence_pin_name(pairs[i][1], b, sizeof b), 0);
        assert_string_not_equal(a, b);
        /* The names older versions gave them were one. */
        assert_int_equal(rc_evidence_pin_legacy_name(pairs[i][0], la, sizeof la), 0);
        assert_int_equal(rc_evidence_pin_legacy_name(pairs[i][1], lb, sizeof lb), 0);
        assert_string_equal(la, lb);
    }
}

/* A readable part, '-', the SHA-256 of the URL: the same name each time. */
static void test_pin_name_form(void **state)
{
    (void)state;
    const char *base = "https://Deliveries.example:8443/x/_receipt/log";
    char name[256], again[256], legacy[256];
    assert_int_equal(rc_evidence_pin_name(base, name, sizeof name), 0);
    assert_int_equal(rc_evidence_pin_name(base, again, sizeof again), 0);
    assert_string_equal(name, again);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)base, strlen(base), digest);
    char want[256];
    int k = snprintf(want, sizeof want, "Deliveries.example_8443_x__receipt_log-");
    for (size_t i = 0; i < sizeof digest; i++)
        k += snprintf(want + k, sizeof want - (size_t)k, "%02x", digest[i]);
    snprintf(want + k, sizeof want - (size_t)k, ".json");
    assert_string_equal(name, want);
    assert_int_equal(rc_evidence_pin_legacy_name(base, legacy, sizeof legacy), 0);
    assert_string_equal(legacy, "Deliveries.example_8443_x__receipt_log.json");
    /* Too small a buffer is said, not cut. */
    assert_int_equal(rc_evidence_pin_name(base, name, 40), -1);
}

/* A long URL: the readable part is cut, the hash tells the URLs apart, and
 * the name stays within a file name's 255 bytes. */
static void test_pin_name_long(void **state)
{
    (void)state;
    char a[1200], b[1200];
    memset(a, 'a', sizeof a);
    memcpy(a, "https://h/", 10);
    memcpy(a + sizeof a - 14, "/_receipt/log", 14);
    memcpy(b, a, sizeof b);
    b[600] = 'b';
    char na[512], nb[512];
    assert_int_equal(rc_evidence_pin_name(a, na, sizeof na), 0);
    assert_int_equal(rc_evidence_pin_name(b, nb, sizeof nb), 0);
    assert_string_not_equal(na, nb);
    assert_int_equal(strlen(na), RC_EVIDENCE_PIN_READABLE + 1 + 64 + 5);
    assert_true(strlen(na) <= 255);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_by_an_older_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cosigned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_that_are_not, setup, teardown),
        cmocka_unit_test(test_pin_names_differ),
        cmocka_unit_test(test_pin_name_form),
        cmocka_unit_test(test_pin_name_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
