/*
 * note: the examples of C2SP signed-note and of Go's sumdb/note
 * documentation (keys, a note signed by one key and by two, byte for byte:
 * Ed25519 signatures are deterministic), and the refusals the
 * specification asks for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/b64.h"
#include "common/note_sign.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* C2SP signed-note, "Verifier keys", example */
static const char c2sp_vkey[] =
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
static const char c2sp_note[] = "This is an example message.\n"
                                "\n"
                                "\xe2\x80\x94 example.com/foo "
                                "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOB"
                                "H3mFXmRKuwHjG1Yu72IneyaQM=\n";

/* C2SP signed-note, introduction: signed by a key we do not know */
static const char c2sp_quasimodo[] =
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed \xc3\xa8 subito sera.\n"
    "\n"
    "\xe2\x80\x94 quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/"
    "5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";

/* Go's golang.org/x/mod/sumdb/note documentation */
static const char peter_skey[] =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
static const char peter_vkey[] =
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char enoch_vkey[] = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
static const char peter_text[] = "If you think cryptography is the answer to your problem,\n"
                                 "then you don't know what your problem is.\n";
static const char peter_sig[] =
    "\xe2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdn"
    "gotpRZb6KE6RyyBwJnAM=\n";
static const char enoch_sig[] =
    "\xe2\x80\x94 EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOT"
    "GwnWLox33WWd1RvMc+QQ=\n";

static note_verifier *verifier(const char *vkey)
{
    note_verifier *v = NULL;
    assert_int_equal(note_verifier_parse(vkey, strlen(vkey), &v), NOTE_OK);
    return v;
}

static char *concat(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    assert_non_null(s);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

static void test_c2sp_example(void **state)
{
    note_verifier *v = verifier(c2sp_vkey);
    size_t text_len, unknown;
    bool signed_by[1];
    char text[NOTE_VKEY_MAX];

    (void)state;
    assert_string_equal(note_verifier_name(v), "example.com/foo");
    assert_int_equal(note_verifier_id(v), 0x530d903a);
    assert_int_equal(note_verifier_text(v, text), strlen(c2sp_vkey));
    assert_string_equal(text, c2sp_vkey);
    assert_int_equal(note_open(c2sp_note, strlen(c2sp_note), &v, 1, &text_len, signed_by, &unknown),
                     NOTE_OK);
    assert_int_equal(text_len, strlen("This is an example message.\n"));
    assert_true(signed_by[0]);
    assert_int_equal(unknown, 0);
    /* the quasimodo note is well formed, and signed by nobody we know */
    assert_int_equal(
        note_open(c2sp_quasimodo, strlen(c2sp_quasimodo), &v, 1, &text_len, signed_by, &unknown),
        NOTE_UNVERIFIED);
    assert_false(signed_by[0]);
    assert_int_equal(text_len, 0);
    note_verifier_free(v);
}

static void test_go_example(void **state)
{
    note_signer *s = NULL;
    note_verifier *peter = verifier(peter_vkey), *enoch = verifier(enoch_vkey), *from_signer;
    char skey[NOTE_SKEY_MAX], vkey[NOTE_VKEY_MAX];
    char *note, *expected, *both;
    size_t len, text_len, unknown;
    bool signed_by[2];

    (void)state;
    assert_int_equal(note_signer_parse(peter_skey, strlen(peter_skey), &s), NOTE_OK);
    assert_int_equal(note_signer_id(s), 0xc74f20a3);
    assert_string_equal(note_signer_name(s), "PeterNeumann");
    assert_int_equal(note_signer_text(s, skey), strlen(peter_skey));
    assert_string_equal(skey, peter_skey);
    from_signer = note_signer_verifier(s);
    note_verifier_text(from_signer, vkey);
    assert_string_equal(vkey, peter_vkey);

    /* signing reproduces the documented note exactly */
    assert_int_equal(note_sign(peter_text, strlen(peter_text), &s, 1, &note, &len), NOTE_OK);
    expected = concat(peter_text, "\n", peter_sig);
    assert_string_equal(note, expected);
    assert_int_equal(len, strlen(expected));

    /* signed by both: each known key verifies, the other is counted as unknown */
    both = concat(expected, enoch_sig, "");
    {
        note_verifier *known[2] = {peter, enoch};
        assert_int_equal(note_open(both, strlen(both), known, 1, &text_len, signed_by, &unknown),
                         NOTE_OK);
        assert_int_equal(text_len, strlen(peter_text));
        assert_true(signed_by[0]);
        assert_int_equal(unknown, 1);
        assert_int_equal(note_open(both, strlen(both), known, 2, &text_len, signed_by, &unknown),
                         NOTE_OK);
        assert_true(signed_by[0] && signed_by[1]);
        assert_int_equal(unknown, 0);
        assert_int_equal(note_open(both, strlen(both), &known[1], 1, &text_len, NULL, NULL),
                         NOTE_OK);
        assert_int_equal(note_open(both, strlen(both), NULL, 0, &text_len, NULL, &unknown),
                         NOTE_UNVERIFIED);
    }
    free(both);
    free(expected);
    free(note);
    note_signer_free(s);
    note_verifier_free(peter);
    note_verifier_free(enoch);
    note_verifier_free(from_signer);
}

static void test_refusals(void **state)
{
    note_verifier *peter = verifier(peter_vkey);
    char *good = concat(peter_text, "\n", peter_sig);
    size_t text_len;
    char buf[2048];

    (void)state;
#define REFUSE(msg, want)                                                                          \
    assert_int_equal(note_open(msg, strlen(msg), &peter, 1, &text_len, NULL, NULL), want)
    REFUSE(good, NOTE_OK);
    /* the malformed notes of Go's tests */
    REFUSE(peter_text, NOTE_MALFORMED);
    snprintf(buf, sizeof(buf), "%s\n", peter_text);
    REFUSE(buf, NOTE_MALFORMED);
    snprintf(buf, sizeof(buf), "%s\n%.*s", peter_text, (int)strlen(peter_sig) - 1, peter_sig);
    REFUSE(buf, NOTE_MALFORMED);
    snprintf(buf, sizeof(buf), "\x01%s\n%s", peter_text, peter_sig);
    REFUSE(buf, NOTE_MALFORMED);
    snprintf(buf, sizeof(buf), "\xff%s\n%s", peter_text, peter_sig);
    REFUSE(buf, NOTE_MALFORMED);
    snprintf(buf, sizeof(buf),
             "%s\n\xe2\x80\x94 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZ"
             "InNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
             peter_text);
    REFUSE(buf, NOTE_MALFORMED);
    snprintf(buf, sizeof(buf), "%s\n%sUnexpected line.\n", peter_text, peter_sig);
    REFUSE(buf, NOTE_MALFORMED);
    /* a signature line with a hyphen instead of the em dash, or without the space */
    snprintf(buf, sizeof(buf), "%s\n- PeterNeumann %s", peter_text, peter_sig + 17);
    REFUSE(buf, NOTE_MALFORMED);
    snprintf(buf, sizeof(buf), "%s\n\xe2\x80\x94PeterNeumann %s", peter_text, peter_sig + 17);
    REFUSE(buf, NOTE_MALFORMED);
    /* base64 that is not canonical, or too short to hold a key ID and a byte */
    snprintf(buf, sizeof(buf),
             "%s\n\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIu"
             "GUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM\n",
             peter_text);
    REFUSE(buf, NOTE_MALFORMED);
    snprintf(buf, sizeof(buf), "%s\n\xe2\x80\x94 PeterNeumann x08g\n", peter_text);
    REFUSE(buf, NOTE_MALFORMED);
    /* a carriage return, a tab: control characters */
    snprintf(buf, sizeof(buf), "a\rb\n\n%s", peter_sig);
    REFUSE(buf, NOTE_MALFORMED);
    snprintf(buf, sizeof(buf), "a\tb\n\n%s", peter_sig);
    REFUSE(buf, NOTE_MALFORMED);
    /* a signature altered: the known key's signature must verify */
    snprintf(buf, sizeof(buf), "%s", good);
    buf[strlen(peter_text) + 1 + 30] ^= 1;
    REFUSE(buf, NOTE_BAD_SIGNATURE);
    /* the text altered */
    snprintf(buf, sizeof(buf), "%s", good);
    buf[3] = 'X';
    REFUSE(buf, NOTE_BAD_SIGNATURE);
    /* a known name and ID with a signature of the wrong length */
    snprintf(buf, sizeof(buf), "%s\n\xe2\x80\x94 PeterNeumann x08go/ZJ\n", peter_text);
    REFUSE(buf, NOTE_BAD_SIGNATURE);
    /* the same signature under another name is a signature by an unknown key */
    snprintf(buf, sizeof(buf), "%s\n\xe2\x80\x94 CarmenSandiego %s", peter_text, peter_sig + 17);
    REFUSE(buf, NOTE_UNVERIFIED);
    /* a good signature and a bad one by the same key: the note is refused */
    snprintf(buf, sizeof(buf),
             "%s\n%s\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupL"
             "Lr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAA=\n",
             peter_text, peter_sig);
    REFUSE(buf, NOTE_BAD_SIGNATURE);
#undef REFUSE
    free(good);
    note_verifier_free(peter);
}

/* Limits: NOTE_MAX_SIGS signature lines are read, one more is not. */
static void test_limits(void **state)
{
    note_verifier *peter = verifier(peter_vkey);
    size_t siglen = strlen(peter_sig), text_len, unknown;
    char *msg = malloc(strlen(peter_text) + 1 + (NOTE_MAX_SIGS + 1) * siglen + 1);
    size_t o;

    (void)state;
    assert_non_null(msg);
    o = strlen(peter_text) + 1;
    memcpy(msg, peter_text, o - 1);
    msg[o - 1] = '\n';
    for (int i = 0; i < NOTE_MAX_SIGS; i++) {
        memcpy(msg + o, peter_sig, siglen);
        o += siglen;
    }
    assert_int_equal(note_open(msg, o, &peter, 1, &text_len, NULL, &unknown), NOTE_OK);
    memcpy(msg + o, peter_sig, siglen);
    o += siglen;
    assert_int_equal(note_open(msg, o, &peter, 1, &text_len, NULL, &unknown), NOTE_MALFORMED);
    free(msg);
    /* and a note longer than NOTE_MAX_LEN is refused before anything is read */
    msg = calloc(1, NOTE_MAX_LEN + 1);
    assert_non_null(msg);
    memset(msg, 'a', NOTE_MAX_LEN);
    assert_int_equal(note_open(msg, NOTE_MAX_LEN + 1, &peter, 1, &text_len, NULL, NULL),
                     NOTE_MALFORMED);
    free(msg);
    note_verifier_free(peter);
}

static void test_keys(void **state)
{
    static const char *const bad_vkeys[] = {
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a3+",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter\xc2\xa0Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    };
    note_verifier *v;
    note_signer *s;
    uint8_t key[32] = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(bad_vkeys) / sizeof(bad_vkeys[0]); i++) {
        note_result r = note_verifier_parse(bad_vkeys[i], strlen(bad_vkeys[i]), &v);
        if (r == NOTE_OK)
            fail_msg("accepted \"%s\"", bad_vkeys[i]);
        assert_null(v);
    }
    /* the wrong key ID */
    {
        const char *k = "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        assert_int_equal(note_verifier_parse(k, strlen(k), &v), NOTE_BAD_KEY_ID);
    }
    /* another signature type (0x02 ...) */
    {
        const char *k = "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        assert_int_equal(note_verifier_parse(k, strlen(k), &v), NOTE_UNSUPPORTED);
    }
    /* names: spaces of any kind, plus signs, control characters, length */
    assert_int_equal(note_verifier_new("a b", 3, key, &v), NOTE_BAD_NAME);
    assert_int_equal(note_verifier_new("a+b", 3, key, &v), NOTE_BAD_NAME);
    assert_int_equal(note_verifier_new("a\xe2\x80\x83"
                                       "b",
                                       5, key, &v),
                     NOTE_BAD_NAME); /* em space */
    assert_int_equal(note_verifier_new("a\x01"
                                       "b",
                                       3, key, &v),
                     NOTE_BAD_NAME);
    assert_int_equal(note_verifier_new("", 0, key, &v), NOTE_BAD_NAME);
    assert_int_equal(note_verifier_new("a\xc3", 2, key, &v), NOTE_BAD_NAME);
    {
        char name[NOTE_NAME_MAX + 1];
        memset(name, 'n', sizeof(name));
        assert_int_equal(note_verifier_new(name, NOTE_NAME_MAX + 1, key, &v), NOTE_BAD_NAME);
        assert_int_equal(note_signer_generate(name, NOTE_NAME_MAX, &s), NOTE_OK);
        {
            char skey[NOTE_SKEY_MAX], vkey[NOTE_VKEY_MAX];
            note_signer *back;
            note_verifier *vback;
            note_verifier *from = note_signer_verifier(s);
            assert_true(note_signer_text(s, skey) > 0);
            assert_int_equal(note_signer_parse(skey, strlen(skey), &back), NOTE_OK);
            assert_true(note_verifier_text(from, vkey) > 0);
            assert_int_equal(note_verifier_parse(vkey, strlen(vkey), &vback), NOTE_OK);
            assert_int_equal(note_signer_id(back), note_verifier_id(vback));
            note_signer_free(back);
            note_verifier_free(vback);
            note_verifier_free(from);
        }
        note_signer_free(s);
    }
    /* signer keys: the prefix, and a key ID that does not match the seed */
    assert_int_equal(note_signer_parse(peter_vkey, strlen(peter_vkey), &s), NOTE_MALFORMED);
    {
        const char *k =
            "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        assert_int_equal(note_signer_parse(k, strlen(k), &s), NOTE_BAD_KEY_ID);
    }
    assert_null(s);
    note_verifier_free(NULL);
    note_signer_free(NULL);
}

static void test_sign(void **state)
{
    note_signer *a = NULL, *b = NULL;
    note_verifier *va, *vb, *known[2];
    char *note;
    size_t len, text_len, unknown;
    bool signed_by[2];

    (void)state;
    assert_int_equal(note_signer_generate("log.example/a", 13, &a), NOTE_OK);
    assert_int_equal(note_signer_generate("log.example/b", 13, &b), NOTE_OK);
    va = note_signer_verifier(a);
    vb = note_signer_verifier(b);
    known[0] = va;
    known[1] = vb;
    {
        note_signer *both[2] = {a, b};
        /* a text with blank lines of its own, and non-ASCII */
        const char text[] = "line one\n\n\xc3\xa9t\xc3\xa9\n";
        assert_int_equal(note_sign(text, strlen(text), both, 2, &note, &len), NOTE_OK);
        assert_int_equal(note_open(note, len, known, 2, &text_len, signed_by, &unknown), NOTE_OK);
        assert_int_equal(text_len, strlen(text));
        assert_memory_equal(note, text, text_len);
        assert_true(signed_by[0] && signed_by[1]);
        free(note);
        /* signing refuses what a note cannot carry */
        assert_int_equal(note_sign("no newline", 10, both, 1, &note, &len), NOTE_BAD_TEXT);
        assert_int_equal(note_sign("", 0, both, 1, &note, &len), NOTE_BAD_TEXT);
        assert_int_equal(note_sign("a\rb\n", 4, both, 1, &note, &len), NOTE_BAD_TEXT);
        assert_int_equal(note_sign("\xff\n", 2, both, 1, &note, &len), NOTE_BAD_TEXT);
        assert_int_equal(note_sign("a\n", 2, both, 0, &note, &len), NOTE_BAD_TEXT);
        assert_null(note);
        /* a text that ends in a blank line still splits at the right place */
        assert_int_equal(note_sign("a\n\n", 3, both, 1, &note, &len), NOTE_OK);
        assert_int_equal(note_open(note, len, known, 2, &text_len, NULL, NULL), NOTE_OK);
        assert_int_equal(text_len, 3);
        free(note);
    }
    note_signer_free(a);
    note_signer_free(b);
    note_verifier_free(va);
    note_verifier_free(vb);
}

/*
 * One signature line of note, that of signer i (0-based) of those that
 * signed it: the 64-byte signature, after checking the key ID before it.
 */
static void signature_of(const char *note, size_t len, size_t text_len, size_t i,
                         const note_signer *s, uint8_t sig[64])
{
    const char *line = note + text_len + 1, *end = note + len;
    uint8_t raw[4 + 64];
    const char *b64, *eol;

    for (; i > 0; i--) {
        line = memchr(line, '\n', (size_t)(end - line));
        assert_non_null(line);
        line++;
    }
    eol = memchr(line, '\n', (size_t)(end - line));
    b64 = memchr(line, ' ', (size_t)(eol - line)); /* after the dash */
    b64 = memchr(b64 + 1, ' ', (size_t)(eol - b64 - 1)) + 1;
    assert_int_equal(b64std_decode(b64, (size_t)(eol - b64), raw, sizeof(raw)), sizeof(raw));
    assert_int_equal((uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 |
                         raw[3],
                     note_signer_id(s));
    memcpy(sig, raw + 4, 64);
}

/*
 * Signatures are libsodium's (note_sign.c) and verification OpenSSL's: the
 * two agree byte for byte (Ed25519 is deterministic) on keys and texts of
 * every size a note carries, and OpenSSL verifies every signature made.
 */
static void test_sign_as_openssl(void **state)
{
    static const size_t sizes[] = {1, 2, 63, 64, 65, 127, 128, 129, 300, 1000, 4096, 65000};
    char *text = malloc(65000);

    (void)state;
    assert_non_null(text);
    for (size_t k = 0; k < 8; k++) {
        uint8_t seed[32], pub[32];
        size_t publen = sizeof(pub);
        note_signer *s = NULL, *both[2];
        note_verifier *v;
        EVP_PKEY *pkey;

        /* the all-zero and all-0xff seeds, then random ones */
        if (k < 2)
            memset(seed, k == 0 ? 0x00 : 0xff, sizeof(seed));
        else
            assert_int_equal(RAND_bytes(seed, sizeof(seed)), 1);
        assert_int_equal(note_signer_new("log.example/k", 13, seed, &s), NOTE_OK);
        pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
        assert_non_null(pkey);
        assert_int_equal(EVP_PKEY_get_raw_public_key(pkey, pub, &publen), 1);
        v = note_signer_verifier(s);
        assert_non_null(v);
        assert_memory_equal(note_verifier_public_key(v), pub, sizeof(pub));
        both[0] = s;
        both[1] = s;
        for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
            size_t n = sizes[t], len, text_len;
            uint8_t expected[64], got[64];
            size_t siglen = sizeof(expected);
            EVP_MD_CTX *mctx = EVP_MD_CTX_new();
            char *note;

            /* random printable text in lines of 60, ending in a newline */
            assert_int_equal(RAND_bytes((unsigned char *)text, (int)n), 1);
            for (size_t j = 0; j < n; j++)
                text[j] = (j + 1) % 61 == 0 ? '\n' : (char)(' ' + (uint8_t)text[j] % 95);
            text[n - 1] = '\n';
            assert_non_null(mctx);
            assert_int_equal(EVP_DigestSignInit(mctx, NULL, NULL, NULL, pkey), 1);
            assert_int_equal(
                EVP_DigestSign(mctx, expected, &siglen, (const unsigned char *)text, n), 1);
            assert_int_equal(siglen, sizeof(expected));

            assert_int_equal(note_sign(text, n, both, t % 2 ? 2 : 1, &note, &len), NOTE_OK);
            assert_int_equal(note_open(note, len, &v, 1, &text_len, NULL, NULL), NOTE_OK);
            assert_int_equal(text_len, n);
            for (size_t i = 0; i < (t % 2 ? 2u : 1u); i++) {
                signature_of(note, len, text_len, i, s, got);
                assert_memory_equal(got, expected, sizeof(expected));
                assert_int_equal(EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pkey), 1);
                assert_int_equal(
                    EVP_DigestVerify(mctx, got, sizeof(got), (const unsigned char *)text, n), 1);
            }
            /* and a signature OpenSSL refuses once one byte of it changes */
            got[k % 64] ^= 0x01;
            assert_int_equal(EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pkey), 1);
            assert_int_not_equal(
                EVP_DigestVerify(mctx, got, sizeof(got), (const unsigned char *)text, n), 1);
            EVP_MD_CTX_free(mctx);
            free(note);
        }
        EVP_PKEY_free(pkey);
        note_verifier_free(v);
        note_signer_free(s);
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c2sp_example),
        cmocka_unit_test(test_go_example),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_sign),
        cmocka_unit_test(test_sign_as_openssl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
