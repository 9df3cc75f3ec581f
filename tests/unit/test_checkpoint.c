/*
 * checkpoint: the C2SP tlog-checkpoint example, strict parsing, and the
 * worked example of docs/evidence.md from the events to the signed
 * checkpoint (its values were checked with Python's hashlib and Go's
 * sumdb/note; if this test changes, so must the document).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/b64.h"
#include "common/checkpoint.h"
#include "common/jcs.h"
#include "common/note_sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void from_hex(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned b;
        sscanf(hex + 2 * i, "%2x", &b);
        out[i] = (uint8_t)b;
    }
}

/* C2SP tlog-checkpoint's example (signed by a key the specification does not give). */
static const char c2sp_checkpoint[] = "example.com/behind-the-sofa\n"
                                      "20852163\n"
                                      "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
                                      "\n"
                                      "\xe2\x80\x94 example.com/behind-the-sofa "
                                      "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
                                      "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

static void test_c2sp_example(void **state)
{
    checkpoint c;
    size_t body = strlen(c2sp_checkpoint) - strlen(strstr(c2sp_checkpoint, "\n\n")) + 1;
    char out[CHECKPOINT_MAX_LEN + 1];
    uint8_t root[32];

    (void)state;
    assert_true(checkpoint_parse(c2sp_checkpoint, body, &c));
    assert_string_equal(c.origin, "example.com/behind-the-sofa");
    assert_int_equal(c.size, 20852163);
    assert_int_equal(b64std_decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=", 44, root, 32),
                     32);
    assert_memory_equal(c.root.bytes, root, 32);
    assert_string_equal(c.extensions, "");
    assert_int_equal(checkpoint_format(&c, out, sizeof(out)), body);
    assert_memory_equal(out, c2sp_checkpoint, body);
    /* without its key the note opens as unverified, and the checkpoint is not trusted */
    {
        note_signer *s;
        note_verifier *v;
        assert_int_equal(note_signer_generate("example.com/behind-the-sofa", 27, &s), NOTE_OK);
        v = note_signer_verifier(s);
        assert_int_equal(checkpoint_open(c2sp_checkpoint, strlen(c2sp_checkpoint), &v, 1, &c, NULL),
                         NOTE_UNVERIFIED);
        note_verifier_free(v);
        note_signer_free(s);
    }
}

static void test_parse_strict(void **state)
{
    static const char *const bad[] = {
        "",
        "origin\n",
        "origin\n1\n",
        "origin\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",    /* no final newline */
        "\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",        /* empty origin */
        "origin\n01\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", /* leading zero */
        "origin\n+1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n-1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n1 \nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n9223372036854775808\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", /* 2^63 */
        "origin\n99999999999999999999\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",     /* no padding */
        "origin\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",    /* trailing bits */
        "origin\n1\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n",    /* url alphabet */
        "origin\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",  /* empty extension */
        "origin\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\next", /* unterminated */
        "ori\rgin\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "ori\xffgin\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "origin\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\ne\x01\n",
    };
    checkpoint c;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (checkpoint_parse(bad[i], strlen(bad[i]), &c))
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* what is allowed: size 0, 2^63 - 1, extension lines, an origin a key name could not be */
    {
        const char *t = "o\n0\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert_true(checkpoint_parse(t, strlen(t), &c));
    }
    assert_int_equal(c.size, 0);
    {
        const char *t = "a b+c\n9223372036854775807\n"
                        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\nx\ny z\n";
        char out[CHECKPOINT_MAX_LEN + 1];
        assert_true(checkpoint_parse(t, strlen(t), &c));
        assert_int_equal(c.size, UINT64_C(9223372036854775807));
        assert_string_equal(c.extensions, "x\ny z\n");
        /* ... but is not written by the log, whose origin is its key's name */
        assert_int_equal(checkpoint_format(&c, out, sizeof(out)), 0);
    }
    /* too many extension lines */
    {
        char t[256];
        int n = snprintf(t, sizeof(t), "o\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n");
        for (int i = 0; i < CHECKPOINT_MAX_EXTENSIONS; i++)
            n += snprintf(t + n, sizeof(t) - (size_t)n, "e\n");
        assert_true(checkpoint_parse(t, (size_t)n, &c));
        n += snprintf(t + n, sizeof(t) - (size_t)n, "e\n");
        assert_false(checkpoint_parse(t, (size_t)n, &c));
    }
}

/*
 * docs/evidence.md, "A worked example": the first three leaves of a new
 * log as receiptd wrote them (its log key, a device's delivery and its
 * confirmation), each committed with a fixed salt, and the checkpoint of
 * the tree of size 3 signed by the example log key.
 */
static const char *const example_events[3] = {
    "{\"key\":\"deliveries.example.com/_receipt/log+986b3c3d+AU/"
    "QmczUfXiT3+nsJEFOyw2bVCAjKq0w2RxGW+M8vmXE\","
    "\"time_ms\":1796187306876,\"type\":\"log_key\",\"v\":1}",
    "{\"bound_addr\":\"198.51.100.7\",\"bound_ms\":1796187308644,"
    "\"bound_node\":\"edge-1\",\"client\":\"VC6iDq8KKeDBClsAP54LCMhqW77ExCQqBLewDS4GUm8\","
    "\"client_addr\":\"198.51.100.7\","
    "\"delivered_sha256\":\"IYQqK2_3V1LhIR6_VCS3kFvSbFgNxqXMjoLkwqwO_No\","
    "\"delivered_size\":24,\"delivery\":\"01a2351b-4264-7000-9c78-a85bf9802875\","
    "\"issued_ms\":1796187308644,\"issued_node\":\"edge-1\",\"kind\":\"device\","
    "\"path\":\"/notices/2026-03.pdf\",\"server\":\"deliveries.example.com\","
    "\"sha256\":\"IYQqK2_3V1LhIR6_VCS3kFvSbFgNxqXMjoLkwqwO_No\",\"size\":24,"
    "\"status\":\"bound\",\"type\":\"issued\",\"user_agent\":\"receipt/0.1\",\"v\":1}",
    "{\"bound_addr\":\"\",\"bound_ms\":0,\"bound_node\":\"\","
    "\"client\":\"VC6iDq8KKeDBClsAP54LCMhqW77ExCQqBLewDS4GUm8\",\"client_addr\":\"\","
    "\"confirm_addr\":\"198.51.100.7\",\"confirmed_ms\":1796187308686,"
    "\"confirmed_node\":\"edge-1\","
    "\"delivered_sha256\":\"IYQqK2_3V1LhIR6_VCS3kFvSbFgNxqXMjoLkwqwO_No\","
    "\"delivered_size\":24,\"delivery\":\"01a2351b-4264-7000-9c78-a85bf9802875\","
    "\"issued_ms\":1796187308644,\"issued_node\":\"\",\"kind\":\"device\","
    "\"path\":\"/notices/2026-03.pdf\","
    "\"receipt_sha256\":\"Y8o1903MSg78aqP9OhPiHAXcNI6pBX-5apFlhMd1LS8\","
    "\"received_at_ms\":1796187308666,"
    "\"received_sha256\":\"IYQqK2_3V1LhIR6_VCS3kFvSbFgNxqXMjoLkwqwO_No\","
    "\"received_size\":24,\"server\":\"deliveries.example.com\","
    "\"sha256\":\"IYQqK2_3V1LhIR6_VCS3kFvSbFgNxqXMjoLkwqwO_No\",\"size\":24,"
    "\"status\":\"confirmed\",\"type\":\"confirmed\",\"user_agent\":\"\",\"v\":1}",
};
/* The server's texts are canonical already. */
static const char *const *const example_canonical = example_events;
static const char *const example_commitments[3] = {
    "5dd478eb7e7e799fba61fb9bb63564d969150093187a864a91b4320def2b21f0",
    "a0ceecd894c7b1206f8936bc6e0d4d805687bb6e3b6a6749141f9b65872950ee",
    "f4d963987eb450c0dbe9c6595369fc18d44b61278c9e5f7f7c31eaf061725c84",
};
static const char *const example_leaf_hashes[3] = {
    "060a679357d015e57ab486c086085ba3a61ac7b42692cd24e90a548bdd96809d",
    "68c38a98ecb6de6b5493abf89e8961de5a7e3980281197f938d3723567807194",
    "1b5451a8c50f7060f77ca1735f941835eef43e61423db8f64a28ec19e0d19279",
};
static const char example_origin[] = "deliveries.example.com/_receipt/log";
static const char example_skey[] = "PRIVATE+KEY+deliveries.example.com/_receipt/log+986b3c3d+"
                                   "AaChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/";
static const char example_vkey[] =
    "deliveries.example.com/_receipt/log+986b3c3d+AU/QmczUfXiT3+nsJEFOyw2bVCAjKq0w2RxGW+M8vmXE";
static const char example_note[] = "deliveries.example.com/_receipt/log\n"
                                   "3\n"
                                   "qgEMW+lEUm9EdeYClXMvENrSRRxZHZWxV7VUMOaT/cs=\n"
                                   "\n"
                                   "\xe2\x80\x94 deliveries.example.com/_receipt/log "
                                   "mGs8PTjrksNHe1j1IXhygn3cUq1u8OMSVSNcgJrDJSVBAik6uopHXtntjqAReQr"
                                   "4dyau52h6qAQ5RrXxAYxPhL8k9AU=\n";

static void test_worked_example(void **state)
{
    merkle_hash leaves[3], root, proof[1], want;
    note_signer *signer = NULL;
    note_verifier *verifier = NULL;
    char skey[NOTE_SKEY_MAX], vkey[NOTE_VKEY_MAX], text[CHECKPOINT_MAX_LEN + 1];
    uint8_t seed[32];
    checkpoint c;
    char *note;
    size_t len;

    (void)state;
    for (int i = 0; i < 3; i++) {
        uint8_t salt[MERKLE_SALT_LEN];
        merkle_hash commitment;
        char *canonical;

        for (int j = 0; j < 32; j++)
            salt[j] = (uint8_t)(32 * i + j); /* 00 01 .. 1f, 20 .. 3f, 40 .. 5f */
        assert_int_equal(
            jcs_canonicalize(example_events[i], strlen(example_events[i]), &canonical, &len),
            JCS_OK);
        assert_string_equal(canonical, example_canonical[i]);
        merkle_commitment(salt, canonical, len, &commitment);
        from_hex(example_commitments[i], want.bytes, 32);
        assert_memory_equal(commitment.bytes, want.bytes, 32);
        merkle_leaf_hash(commitment.bytes, 32, &leaves[i]);
        from_hex(example_leaf_hashes[i], want.bytes, 32);
        assert_memory_equal(leaves[i].bytes, want.bytes, 32);
        free(canonical);
    }
    /* the inclusion proof of leaf 2 in the tree of 3 is the one hash HASH(leaf 0, leaf 1) */
    merkle_node_hash(&leaves[0], &leaves[1], &proof[0]);
    from_hex("24cf8fab699f79769d7abf101d3abd897c88ad7cf48392fb54b04d1f5a45654e", want.bytes, 32);
    assert_memory_equal(proof[0].bytes, want.bytes, 32);
    merkle_root_of(leaves, 3, &root);
    from_hex("aa010c5be944526f4475e60295732f10dad2451c591d95b157b55430e693fdcb", want.bytes, 32);
    assert_memory_equal(root.bytes, want.bytes, 32);
    assert_int_equal(merkle_verify_inclusion(2, 3, &leaves[2], proof, 1, &root), MERKLE_OK);

    /* the example log key: seed a0 a1 .. bf */
    for (int j = 0; j < 32; j++)
        seed[j] = (uint8_t)(0xa0 + j);
    assert_int_equal(note_signer_new(example_origin, strlen(example_origin), seed, &signer),
                     NOTE_OK);
    note_signer_text(signer, skey);
    assert_string_equal(skey, example_skey);
    verifier = note_signer_verifier(signer);
    note_verifier_text(verifier, vkey);
    assert_string_equal(vkey, example_vkey);

    memset(&c, 0, sizeof(c));
    snprintf(c.origin, sizeof(c.origin), "%s", example_origin);
    c.size = 3;
    c.root = root;
    len = checkpoint_format(&c, text, sizeof(text));
    assert_true(len > 0);
    assert_int_equal(note_sign(text, len, &signer, 1, &note, &len), NOTE_OK);
    assert_string_equal(note, example_note);
    free(note);

    /* and a verifier that has only the verifier key text opens it */
    note_verifier_free(verifier);
    assert_int_equal(note_verifier_parse(example_vkey, strlen(example_vkey), &verifier), NOTE_OK);
    memset(&c, 0, sizeof(c));
    assert_int_equal(checkpoint_open(example_note, strlen(example_note), &verifier, 1, &c, NULL),
                     NOTE_OK);
    assert_string_equal(c.origin, example_origin);
    assert_int_equal(c.size, 3);
    assert_memory_equal(c.root.bytes, root.bytes, 32);
    note_verifier_free(verifier);
    note_signer_free(signer);
}

/* A signed note whose text is not a checkpoint is refused as one. */
static void test_open_not_a_checkpoint(void **state)
{
    note_signer *s;
    note_verifier *v;
    checkpoint c;
    bool signed_by[1];
    char *note;
    size_t len;

    (void)state;
    assert_int_equal(note_signer_generate("log", 3, &s), NOTE_OK);
    v = note_signer_verifier(s);
    assert_int_equal(note_sign("log\nlots\n", 9, &s, 1, &note, &len), NOTE_OK);
    assert_int_equal(checkpoint_open(note, len, &v, 1, &c, signed_by), NOTE_MALFORMED);
    assert_false(signed_by[0]);
    free(note);
    note_verifier_free(v);
    note_signer_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c2sp_example),
        cmocka_unit_test(test_parse_strict),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test(test_open_not_a_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
