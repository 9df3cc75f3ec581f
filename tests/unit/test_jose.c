/*
 * jose: round trips, RFC vectors, the fixed protocol vector, cross-checks
 * with cjose as an independent implementation, and hostile tokens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/b64.h"
#include "common/eckey.h"
#include "common/jose.h"

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_TP     "_p8c_h-lhZVQMr2M2RrlW5dVou4F02jrfVX_wGJR7rM"
#define SERVER_TP     "NQYrvWcPtl5T6pdxquoOD5FQNKubNni3Lyw_jKDNuZU"
#define K_HEX         "850adaf10699e49061ab26f62aecf2ed9cd1a191c5330671845e6d40f1c0b143"
#define FIXED_PAYLOAD "{\"v\":1,\"delivery\":\"019a6b2c-3d4e-7f00-8000-0123456789ab\"}"
#define FIXED_JWE                                                                                  \
    "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoiX3A4Y19oLWxoWlZRTXIyTTJScmxXNWRWb3U0RjAyanJm" \
    "Vlhfd0dKUjdyTSIsInNraWQiOiJOUVlydldjUHRsNVQ2cGR4cXVvT0Q1RlFOS3ViTm5pM0x5d19qS0ROdVpVIiwiY3R5" \
    "IjoicmVjZWlwdC1wbHVnaW4ranNvbiJ9..AAECAwQFBgcICQoL.lEnySYK2qCPXyFLGatKTAVHbk8exfxf-"          \
    "PFSEIYcOuAAUkVMABCskRqyVlB5eFtri4Cj7alz-ysv3.unrHLszWjpTAL-jvLhyzAg"

/* The receipt of docs/protocol.md (test vectors), signed with Python's
 * cryptography package by the test signing key d = SHA-256("receipt test
 * vector: signer"). */
#define SIGNER_X   "OR5-0HQUGQsMYOOhpRh2zU6GHA9xKEywxq7XDYHgDJU"
#define SIGNER_Y   "Z0NT-rZd060yaSxrCV9GazOu4qEonkO5iYfk36fdzpg"
#define SIGNER_KID "gSJ58mlBntTbR339J7lDulWQCls7DPYyze41lgOfpHo"
#define FIXED_RECEIPT_PAYLOAD                                                                      \
    "{\"v\":1,\"delivery\":\"019a6b2c-3d4e-7f00-8000-0123456789ab\",\"status\":\"confirmed\","     \
    "\"content\":{\""                                                                              \
    "path\":\"/"                                                                                   \
    "terms.html\",\"sha256\":\"oxI_A8A1cWR0_qewXQMYoU3AQXkFud3Zb9M2yujl2AE\",\"size\":140,\"ver"   \
    "sion\":{\"sha256\":\"-7A6dFOliy0z9T5qoWDrf73VKQaeW44mvDwAI6B46u8\",\"size\":92}},\"client\":" \
    "{\"id\":\""                                                                                   \
    "_p8c_h-lhZVQMr2M2RrlW5dVou4F02jrfVX_wGJR7rM\"},\"server\":{\"id\":\"www.example.com\","       \
    "\"url\":\"http"                                                                               \
    "s://www.example.com\",\"jwks\":\"https://www.example.com/_receipt/"                           \
    "jwks.json\"},\"issued_at_ms\":1"                                                              \
    "764100000000,\"confirmed_at_ms\":1764100001234}"
#define FIXED_RECEIPT                                                                              \
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImdTSjU4bWxCbnRUYlIzMzlKN2xEdWxXUUNsczdEUFl5emU0MWxnT2ZwSG8iLC"   \
    "J0eXAiOiJyZWNlaXB0K2p3dCJ9.eyJ2IjoxLCJkZWxpdmVyeSI6IjAxOWE2YjJjLTNkNGUtN2YwMC04MDAwLTAxMjM"   \
    "0NTY3ODlhYiIsInN0YXR1cyI6ImNvbmZpcm1lZCIsImNvbnRlbnQiOnsicGF0aCI6Ii90ZXJtcy5odG1sIiwic2hhM"   \
    "jU2Ijoib3hJX0E4QTFjV1IwX3Fld1hRTVlvVTNBUVhrRnVkM1piOU0yeXVqbDJBRSIsInNpemUiOjE0MCwidmVyc2l"   \
    "vbiI6eyJzaGEyNTYiOiItN0E2ZEZPbGl5MHo5VDVxb1dEcmY3M1ZLUWFlVzQ0bXZEd0FJNkI0NnU4Iiwic2l6ZSI6O"   \
    "TJ9fSwiY2xpZW50Ijp7ImlkIjoiX3A4Y19oLWxoWlZRTXIyTTJScmxXNWRWb3U0RjAyanJmVlhfd0dKUjdyTSJ9LCJ"   \
    "zZXJ2ZXIiOnsiaWQiOiJ3d3cuZXhhbXBsZS5jb20iLCJ1cmwiOiJodHRwczovL3d3dy5leGFtcGxlLmNvbSIsImp3a"   \
    "3MiOiJodHRwczovL3d3dy5leGFtcGxlLmNvbS9fcmVjZWlwdC9qd2tzLmpzb24ifSwiaXNzdWVkX2F0X21zIjoxNzY"   \
    "0MTAwMDAwMDAwLCJjb25maXJtZWRfYXRfbXMiOjE3NjQxMDAwMDEyMzR9.gNQxz94ysLSe0LJaoYH4j0gVqszkiGmh"   \
    "9XQxJc3Y54sCOhSSXB8VKW9-nQPAbHyH6Yv3YqezldyaeAmZVf4jYg"

/* RFC 7515 appendix A.3 */
#define A3_X "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
#define A3_Y "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
#define A3_D "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
#define A3_INPUT                                                                                   \
    "eyJhbGciOiJFUzI1NiJ9."                                                                        \
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"                     \
    "bS9pc19yb290Ijp0cnVlfQ"
#define A3_SIG                                                                                     \
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"

static const char *const KID = CLIENT_TP;
static const char *const SKID = SERVER_TP;
static uint8_t key32[32];

static void unhex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static int setup(void **state)
{
    (void)state;
    unhex(K_HEX, key32, 32);
    return 0;
}

static void test_jwe_round_trip(void **state)
{
    const char *msg = "{\"v\":1}";
    char *tok = NULL, *tok2 = NULL;
    jose_header h;
    uint8_t *pt = NULL;
    size_t n = 0;
    uint8_t other[32];

    (void)state;
    assert_int_equal(jwe_encrypt(key32, KID, SKID, JOSE_CTY_CONFIRM, (const uint8_t *)msg,
                                 strlen(msg), NULL, &tok),
                     JOSE_OK);
    assert_int_equal(jwe_peek(tok, strlen(tok), &h), JOSE_OK);
    assert_string_equal(h.kid, KID);
    assert_string_equal(h.skid, SKID);
    assert_string_equal(h.cty, JOSE_CTY_CONFIRM);
    memset(&h, 0, sizeof(h));
    assert_int_equal(jwe_decrypt(key32, tok, strlen(tok), &h, &pt, &n), JOSE_OK);
    assert_int_equal(n, strlen(msg));
    assert_string_equal((char *)pt, msg);
    assert_string_equal(h.kid, KID);
    free(pt);
    /* A fresh IV each time. */
    assert_int_equal(jwe_encrypt(key32, KID, SKID, JOSE_CTY_CONFIRM, (const uint8_t *)msg,
                                 strlen(msg), NULL, &tok2),
                     JOSE_OK);
    assert_string_not_equal(tok, tok2);
    memcpy(other, key32, 32);
    other[0] ^= 1;
    assert_int_equal(jwe_decrypt(other, tok, strlen(tok), &h, &pt, &n), JOSE_DECRYPT);
    assert_null(pt);
    free(tok);
    free(tok2);

    /* Empty plaintext. */
    assert_int_equal(jwe_encrypt(key32, KID, SKID, JOSE_CTY_PLUGIN, NULL, 0, NULL, &tok), JOSE_OK);
    assert_int_equal(jwe_decrypt(key32, tok, strlen(tok), NULL, &pt, &n), JOSE_OK);
    assert_int_equal(n, 0);
    assert_string_equal((char *)pt, "");
    free(pt);
    free(tok);

    /* Things we refuse to write. */
    assert_int_equal(jwe_encrypt(key32, "", SKID, JOSE_CTY_PLUGIN, NULL, 0, NULL, &tok),
                     JOSE_BAD_HEADER);
    assert_int_equal(jwe_encrypt(key32, "a\"b", SKID, JOSE_CTY_PLUGIN, NULL, 0, NULL, &tok),
                     JOSE_BAD_HEADER);
    assert_int_equal(jwe_encrypt(key32, KID, SKID, "text/plain", NULL, 0, NULL, &tok),
                     JOSE_BAD_HEADER);
    assert_null(tok);
}

static void test_jwe_size_cap(void **state)
{
    size_t n = JOSE_TOKEN_MAX / 4 * 3;
    uint8_t *big = calloc(1, n);
    char *tok = NULL;

    (void)state;
    assert_int_equal(jwe_encrypt(key32, KID, SKID, JOSE_CTY_PLUGIN, big, n, NULL, &tok),
                     JOSE_MALFORMED);
    assert_null(tok);
    free(big);
}

static void test_fixed_vector(void **state)
{
    const uint8_t iv[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    char *tok = NULL;
    uint8_t *pt = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(jwe_encrypt(key32, CLIENT_TP, SERVER_TP, JOSE_CTY_PLUGIN,
                                 (const uint8_t *)FIXED_PAYLOAD, strlen(FIXED_PAYLOAD), iv, &tok),
                     JOSE_OK);
    assert_string_equal(tok, FIXED_JWE);
    assert_int_equal(jwe_decrypt(key32, FIXED_JWE, strlen(FIXED_JWE), NULL, &pt, &n), JOSE_OK);
    assert_string_equal((char *)pt, FIXED_PAYLOAD);
    free(pt);
    free(tok);
}

/* The fixed receipt: it verifies with the signer's public key, names it
 * by its thumbprint, and carries the payload byte for byte. */
static void test_fixed_receipt(void **state)
{
    (void)state;
    json_t *jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", SIGNER_X, "y",
                            SIGNER_Y);
    eckey *signer = eckey_from_jwk(jwk);
    json_decref(jwk);
    assert_non_null(signer);
    assert_string_equal(eckey_thumbprint(signer), SIGNER_KID);
    jose_header h;
    uint8_t *payload = NULL;
    size_t n = 0;
    assert_int_equal(jws_peek(FIXED_RECEIPT, strlen(FIXED_RECEIPT), &h), JOSE_OK);
    assert_string_equal(h.kid, SIGNER_KID);
    assert_int_equal(jws_verify(signer, FIXED_RECEIPT, strlen(FIXED_RECEIPT), &h, &payload, &n),
                     JOSE_OK);
    assert_int_equal(n, strlen(FIXED_RECEIPT_PAYLOAD));
    assert_memory_equal(payload, FIXED_RECEIPT_PAYLOAD, n);
    free(payload);
    /* One bit of the signature changed: refused. */
    char bad[] = FIXED_RECEIPT;
    bad[strlen(bad) - 3] ^= 1;
    assert_int_not_equal(jws_verify(signer, bad, strlen(bad), &h, &payload, &n), JOSE_OK);
    eckey_free(signer);
}

/* RFC 7516 appendix A.1: the AES-256-GCM content encryption step. */
static void test_rfc7516_a1(void **state)
{
    static const uint8_t cek[32] = {177, 161, 244, 128, 84,  143, 225, 115, 63, 180, 3,
                                    255, 107, 154, 212, 246, 138, 7,   110, 91, 112, 46,
                                    34,  105, 47,  130, 203, 46,  122, 234, 64, 252};
    static const uint8_t iv[12] = {227, 197, 117, 252, 2, 219, 233, 68, 180, 225, 77, 219};
    const char *aad = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ";
    const char *plain = "The true sign of intelligence is not knowledge but imagination.";
    size_t n = strlen(plain);
    uint8_t ct[128], tag[16], back[128];
    char text[200];

    (void)state;
    assert_int_equal(jose_a256gcm_seal(cek, iv, (const uint8_t *)aad, strlen(aad),
                                       (const uint8_t *)plain, n, ct, tag),
                     JOSE_OK);
    b64url_encode(ct, n, text);
    assert_string_equal(text, "5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_"
                              "EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A");
    b64url_encode(tag, 16, text);
    assert_string_equal(text, "XFBoMYUZodetZdvTiFvSkQ");
    assert_int_equal(
        jose_a256gcm_open(cek, iv, (const uint8_t *)aad, strlen(aad), ct, n, tag, back), JOSE_OK);
    assert_memory_equal(back, plain, n);
    tag[15] ^= 1;
    assert_int_equal(
        jose_a256gcm_open(cek, iv, (const uint8_t *)aad, strlen(aad), ct, n, tag, back),
        JOSE_DECRYPT);
}

/* AES-256-GCM as a fresh OpenSSL context computes it: the reference below. */
static void reference_gcm(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad,
                          size_t aadlen, const uint8_t *pt, size_t n, uint8_t *ct, uint8_t tag[16])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len;
    assert_non_null(ctx);
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aadlen), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, ct, &len, pt, (int)n), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, ct + len, &len), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag), 1);
    EVP_CIPHER_CTX_free(ctx);
}

/*
 * A thread's contexts keep their keys between calls: a new IV, another key,
 * the first key again, a third key that evicts one of the two kept, and a
 * forged tag in between each give what a fresh context gives, in both
 * directions.
 */
static void test_gcm_context_reuse(void **state)
{
    static const char aad[] = "header";
    static const char plain[] = "a ticket's claims, more or less";
    const size_t n = sizeof plain - 1;
    uint8_t keys[3][32], ivs[3][12];
    uint8_t ct[64], tag[16], want_ct[64], want_tag[16], back[64];

    (void)state;
    for (size_t i = 0; i < 32; i++) {
        keys[0][i] = (uint8_t)i;
        keys[1][i] = (uint8_t)(0xa5 ^ i);
        keys[2][i] = (uint8_t)(0x3c + i);
    }
    for (size_t i = 0; i < 12; i++) {
        ivs[0][i] = (uint8_t)(i * 7);
        ivs[1][i] = (uint8_t)(i * 7 + 1);
        ivs[2][i] = (uint8_t)(0xff - i);
    }
    static const struct {
        int key, iv;
    } steps[] = {{0, 0}, {0, 1}, {1, 1}, {1, 2}, {0, 2}, {0, 0}, {1, 0},
                 {2, 1}, {0, 1}, {2, 2}, {1, 2}, {2, 0}, {2, 1}, {0, 0}};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        const uint8_t *key = keys[steps[s].key], *iv = ivs[steps[s].iv];
        reference_gcm(key, iv, (const uint8_t *)aad, strlen(aad), (const uint8_t *)plain, n,
                      want_ct, want_tag);
        assert_int_equal(jose_a256gcm_seal(key, iv, (const uint8_t *)aad, strlen(aad),
                                           (const uint8_t *)plain, n, ct, tag),
                         JOSE_OK);
        assert_memory_equal(ct, want_ct, n);
        assert_memory_equal(tag, want_tag, 16);
        /* The other key refuses it; a forged tag is refused; then it opens. */
        const uint8_t *other = keys[(steps[s].key + 1) % 3];
        assert_int_equal(
            jose_a256gcm_open(other, iv, (const uint8_t *)aad, strlen(aad), ct, n, tag, back),
            JOSE_DECRYPT);
        tag[0] ^= 0x80;
        assert_int_equal(
            jose_a256gcm_open(key, iv, (const uint8_t *)aad, strlen(aad), ct, n, tag, back),
            JOSE_DECRYPT);
        tag[0] ^= 0x80;
        memset(back, 0, sizeof back);
        assert_int_equal(
            jose_a256gcm_open(key, iv, (const uint8_t *)aad, strlen(aad), ct, n, tag, back),
            JOSE_OK);
        assert_memory_equal(back, plain, n);
    }
}

static eckey *a3_key(bool with_d)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", A3_X, "y", A3_Y);
    eckey *k;

    if (with_d)
        json_object_set_new(j, "d", json_string(A3_D));
    k = eckey_from_jwk(j);
    json_decref(j);
    assert_non_null(k);
    return k;
}

/* RFC 7515 appendix A.3: the ES256 example verifies with the RFC's key. */
static void test_rfc7515_a3(void **state)
{
    eckey *pub = a3_key(false);
    eckey *priv = a3_key(true);
    uint8_t sig[64];
    char token[400];
    jose_header h;
    uint8_t *payload = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(b64url_decode(A3_SIG, strlen(A3_SIG), sig, sizeof(sig)), 64);
    assert_int_equal(jose_es256_verify(pub, (const uint8_t *)A3_INPUT, strlen(A3_INPUT), sig),
                     JOSE_OK);
    sig[5] ^= 1;
    assert_int_equal(jose_es256_verify(pub, (const uint8_t *)A3_INPUT, strlen(A3_INPUT), sig),
                     JOSE_DECRYPT);
    /* The RFC's private key signs what its public key verifies. */
    assert_int_equal(jose_es256_sign(priv, (const uint8_t *)"abc", 3, sig), JOSE_OK);
    assert_int_equal(jose_es256_verify(pub, (const uint8_t *)"abc", 3, sig), JOSE_OK);
    /* As a whole token its header ({"alg":"ES256"} only) is not ours. */
    snprintf(token, sizeof(token), "%s.%s", A3_INPUT, A3_SIG);
    assert_int_equal(jws_verify(pub, token, strlen(token), &h, &payload, &n), JOSE_BAD_HEADER);
    eckey_free(pub);
    eckey_free(priv);
}

static void test_jws_round_trip(void **state)
{
    eckey *k = eckey_generate();
    eckey *pub = eckey_from_point(eckey_point(k), ECKEY_POINT_LEN);
    eckey *other = eckey_generate();
    const char *msg = "{\"delivery\":\"x\",\"status\":\"confirmed\"}";
    char *tok = NULL;
    jose_header h;
    uint8_t *payload = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(jws_sign(k, eckey_thumbprint(k), (const uint8_t *)msg, strlen(msg), &tok),
                     JOSE_OK);
    assert_int_equal(jws_peek(tok, strlen(tok), &h), JOSE_OK);
    assert_string_equal(h.kid, eckey_thumbprint(k));
    assert_int_equal(jws_verify(pub, tok, strlen(tok), &h, &payload, &n), JOSE_OK);
    assert_int_equal(n, strlen(msg));
    assert_string_equal((char *)payload, msg);
    free(payload);
    assert_int_equal(jws_verify(other, tok, strlen(tok), &h, &payload, &n), JOSE_DECRYPT);
    assert_null(payload);
    /* A public key cannot sign. */
    free(tok);
    assert_int_equal(jws_sign(pub, "kid", (const uint8_t *)msg, strlen(msg), &tok), JOSE_INTERNAL);
    assert_null(tok);
    eckey_free(k);
    eckey_free(pub);
    eckey_free(other);
}

/*
 * Each thread keeps a signing context for the key it last signed with:
 * keys taken in turn on one thread, on several threads at once, and a key
 * freed and another made in its place, each signature by the key asked for.
 */
typedef struct signing_run {
    eckey *keys[2];
    int failures;
} signing_run;

static void *sign_in_turn(void *arg)
{
    signing_run *run = arg;
    uint8_t msg[64];
    uint8_t sig[JOSE_SIG_LEN];
    for (int i = 0; i < 40; i++) {
        const eckey *k = run->keys[i % 2];
        const eckey *wrong = run->keys[(i + 1) % 2];
        memset(msg, i, sizeof msg);
        if (jose_es256_sign(k, msg, sizeof msg, sig) != JOSE_OK ||
            jose_es256_verify(k, msg, sizeof msg, sig) != JOSE_OK ||
            jose_es256_verify(wrong, msg, sizeof msg, sig) == JOSE_OK)
            run->failures++;
    }
    return NULL;
}

static void test_signing_contexts(void **state)
{
    (void)state;
    signing_run run = {.keys = {eckey_generate(), eckey_generate()}};
    assert_non_null(run.keys[0]);
    assert_non_null(run.keys[1]);
    sign_in_turn(&run);
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, sign_in_turn, &run), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(run.failures, 0);
    /* A key replaced (as by a rotation): the new one signs, not the old. */
    eckey_free(run.keys[0]);
    run.keys[0] = eckey_generate();
    assert_non_null(run.keys[0]);
    sign_in_turn(&run);
    assert_int_equal(run.failures, 0);
    eckey_free(run.keys[0]);
    eckey_free(run.keys[1]);
}

/* A token decrypted after jwe_peek() without its header parsed again: the
 * same plaintext, and a header changed since (however well-formed) is
 * still caught, by the cipher that takes it as additional data. */
static void test_jwe_decrypt_peeked(void **state)
{
    (void)state;
    const char *msg = "{\"v\":1}";
    char *tok = NULL;
    assert_int_equal(jwe_encrypt(key32, "kid-a", "skid", JOSE_CTY_CONFIRM, (const uint8_t *)msg,
                                 strlen(msg), NULL, &tok),
                     JOSE_OK);
    jose_header h;
    uint8_t *pt = NULL;
    size_t n = 0;
    assert_int_equal(jwe_peek(tok, strlen(tok), &h), JOSE_OK);
    assert_int_equal(jwe_decrypt_peeked(key32, tok, strlen(tok), &pt, &n), JOSE_OK);
    assert_int_equal(n, strlen(msg));
    assert_string_equal((char *)pt, msg);
    free(pt);
    pt = NULL;

    /* Another kid in a header that is just as valid, the rest unchanged. */
    char *other = NULL;
    assert_int_equal(jwe_encrypt(key32, "kid-b", "skid", JOSE_CTY_CONFIRM, (const uint8_t *)msg,
                                 strlen(msg), NULL, &other),
                     JOSE_OK);
    const char *dot = strchr(other, '.');
    const char *rest = strchr(tok, '.');
    char forged[1024];
    snprintf(forged, sizeof forged, "%.*s%s", (int)(dot - other), other, rest);
    assert_int_equal(jwe_peek(forged, strlen(forged), &h), JOSE_OK);
    assert_string_equal(h.kid, "kid-b");
    assert_int_equal(jwe_decrypt_peeked(key32, forged, strlen(forged), &pt, &n), JOSE_DECRYPT);
    assert_null(pt);
    /* The wrong key, and a token of the wrong shape. */
    uint8_t wrong[32];
    memset(wrong, 8, sizeof wrong);
    assert_int_equal(jwe_decrypt_peeked(wrong, tok, strlen(tok), &pt, &n), JOSE_DECRYPT);
    assert_int_equal(jwe_decrypt_peeked(key32, tok, (size_t)(rest - tok), &pt, &n), JOSE_MALFORMED);
    assert_null(pt);
    free(other);
    free(tok);
}

/* cjose decrypts what we encrypt. */
static void test_cjose_decrypts_ours(void **state)
{
    const char *msg = "{\"v\":1,\"delivery\":\"abc\"}";
    char *tok = NULL;
    cjose_err err;
    cjose_jwk_t *jwk = cjose_jwk_create_oct_spec(key32, 32, &err);
    cjose_jwe_t *jwe;
    uint8_t *pt;
    size_t n = 0;

    (void)state;
    assert_non_null(jwk);
    assert_int_equal(jwe_encrypt(key32, KID, SKID, JOSE_CTY_PLUGIN, (const uint8_t *)msg,
                                 strlen(msg), NULL, &tok),
                     JOSE_OK);
    jwe = cjose_jwe_import(tok, strlen(tok), &err);
    assert_non_null(jwe);
    pt = cjose_jwe_decrypt(jwe, jwk, &n, &err);
    assert_non_null(pt);
    assert_int_equal(n, strlen(msg));
    assert_memory_equal(pt, msg, n);
    cjose_get_dealloc()(pt);
    cjose_jwe_release(jwe);
    cjose_jwk_release(jwk);
    free(tok);
}

/* We decrypt what cjose encrypts with our allowed header. */
static void test_ours_decrypts_cjose(void **state)
{
    const char *msg = "{\"v\":1,\"received\":{\"sha256\":null}}";
    cjose_err err;
    cjose_jwk_t *jwk = cjose_jwk_create_oct_spec(key32, 32, &err);
    cjose_header_t *hdr = cjose_header_new(&err);
    cjose_jwe_t *jwe;
    char *tok;
    jose_header h;
    uint8_t *pt = NULL;
    size_t n = 0;

    (void)state;
    assert_true(cjose_header_set(hdr, CJOSE_HDR_ALG, CJOSE_HDR_ALG_DIR, &err));
    assert_true(cjose_header_set(hdr, CJOSE_HDR_ENC, CJOSE_HDR_ENC_A256GCM, &err));
    assert_true(cjose_header_set(hdr, CJOSE_HDR_KID, KID, &err));
    assert_true(cjose_header_set(hdr, "skid", SKID, &err));
    assert_true(cjose_header_set(hdr, CJOSE_HDR_CTY, JOSE_CTY_CONFIRM, &err));
    jwe = cjose_jwe_encrypt(jwk, hdr, (const uint8_t *)msg, strlen(msg), &err);
    assert_non_null(jwe);
    tok = cjose_jwe_export(jwe, &err);
    assert_non_null(tok);
    assert_int_equal(jwe_decrypt(key32, tok, strlen(tok), &h, &pt, &n), JOSE_OK);
    assert_string_equal((char *)pt, msg);
    assert_string_equal(h.kid, KID);
    assert_string_equal(h.skid, SKID);
    assert_string_equal(h.cty, JOSE_CTY_CONFIRM);
    free(pt);
    cjose_get_dealloc()(tok);
    cjose_jwe_release(jwe);
    cjose_header_release(hdr);
    cjose_jwk_release(jwk);
}

/* cjose verifies our R || S signatures. */
static void test_cjose_verifies_ours(void **state)
{
    eckey *k = eckey_generate();
    const uint8_t *p = eckey_point(k);
    uint8_t x[32], y[32];
    cjose_jwk_ec_keyspec spec = {.crv = CJOSE_JWK_EC_P_256, .x = x, .xlen = 32, .y = y, .ylen = 32};
    cjose_err err;
    cjose_jwk_t *jwk;
    cjose_jws_t *jws;
    char *tok = NULL;
    const char *msg = "{\"status\":\"confirmed\"}";

    (void)state;
    memcpy(x, p + 1, 32);
    memcpy(y, p + 33, 32);
    jwk = cjose_jwk_create_EC_spec(&spec, &err);
    assert_non_null(jwk);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(jws_sign(k, eckey_thumbprint(k), (const uint8_t *)msg, strlen(msg), &tok),
                         JOSE_OK);
        jws = cjose_jws_import(tok, strlen(tok), &err);
        assert_non_null(jws);
        assert_true(cjose_jws_verify(jws, jwk, &err));
        cjose_jws_release(jws);
        /* A flipped signature byte must fail there too. */
        tok[strlen(tok) - 10] = tok[strlen(tok) - 10] == 'A' ? 'B' : 'A';
        jws = cjose_jws_import(tok, strlen(tok), &err);
        assert_non_null(jws);
        assert_false(cjose_jws_verify(jws, jwk, &err));
        cjose_jws_release(jws);
        free(tok);
    }
    cjose_jwk_release(jwk);
    eckey_free(k);
}

/*
 * Hostile JWEs. Each is a real encryption under key32 with the header bytes
 * given, so that only the flaw named can be the reason for refusal.
 */
#define GOOD_HDR                                                                                   \
    "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"cty\":"                 \
    "\"receipt-plugin+json\"}"

static char *forge(const char *header_json, const char *ek, size_t ivlen, size_t taglen)
{
    static const uint8_t iv[16] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
    const char *pt = "{\"v\":1}";
    uint8_t ct[16], tag[16];
    char *tok = malloc(4096);
    size_t o;

    o = b64url_encode((const uint8_t *)header_json, strlen(header_json), tok);
    assert_int_equal(jose_a256gcm_seal(key32, iv, (const uint8_t *)tok, o, (const uint8_t *)pt,
                                       strlen(pt), ct, tag),
                     JOSE_OK);
    tok[o++] = '.';
    o += (size_t)snprintf(tok + o, 4096 - o, "%s", ek);
    tok[o++] = '.';
    o += b64url_encode(iv, ivlen, tok + o);
    tok[o++] = '.';
    o += b64url_encode(ct, strlen(pt), tok + o);
    tok[o++] = '.';
    b64url_encode(tag, taglen, tok + o);
    return tok;
}

struct hostile {
    const char *name;
    const char *header;
    const char *ek;
    size_t ivlen, taglen;
    jose_result want;
};

static const struct hostile hostile_jwe[] = {
    {"control: the good header", GOOD_HDR, "", 12, 16, JOSE_OK},
    {"members in another order",
     "{\"cty\":\"receipt-plugin+json\",\"kid\":\"k1\",\"skid\":\"s1\",\"enc\":\"A256GCM\","
     "\"alg\":\"dir\"}",
     "", 12, 16, JOSE_OK},
    /* Valid headers the plain reading leaves to the allow-list: the same answer. */
    {"whitespace around the members",
     " {\n\"alg\" : \"dir\",\t\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\"}\r\n",
     "", 12, 16, JOSE_OK},
    {"a member name escaped",
     "{\"\\u0061lg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\"}",
     "", 12, 16, JOSE_OK},
    {"a value escaped",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"\\u006b1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\"}",
     "", 12, 16, JOSE_OK},
    {"a kid with a space",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k 1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\"}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"text after the object", GOOD_HDR " x", "", 12, 16, JOSE_MALFORMED},
    {"wrong alg",
     "{\"alg\":\"A256KW\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\"}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"alg none",
     "{\"alg\":\"none\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\"}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"wrong enc",
     "{\"alg\":\"dir\",\"enc\":\"A128GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\"}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"zip present",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\",\"zip\":\"DEF\"}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"crit present",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\",\"crit\":[\"exp\"]}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"extra member",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\",\"x\":1}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"extra member replacing one",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"typ\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\"}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"duplicate member",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\",\"kid\":\"k2\"}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"duplicate alg, second not allowed",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"alg\":\"none\"}", "",
     12, 16, JOSE_BAD_HEADER},
    {"missing member", "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\"}", "",
     12, 16, JOSE_BAD_HEADER},
    {"kid not a string",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":7,\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\"}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"kid too long",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":"
     "\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\",\"skid\":\"s1\","
     "\"cty\":\"receipt-plugin+json\"}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"kid with a control byte",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k\\n1\",\"skid\":\"s1\",\"cty\":"
     "\"receipt-plugin+json\"}",
     "", 12, 16, JOSE_BAD_HEADER},
    {"unknown cty",
     "{\"alg\":\"dir\",\"enc\":\"A256GCM\",\"kid\":\"k1\",\"skid\":\"s1\",\"cty\":\"JWT\"}", "", 12,
     16, JOSE_BAD_HEADER},
    {"non-object header", "[\"dir\",\"A256GCM\"]", "", 12, 16, JOSE_BAD_HEADER},
    {"string header", "\"dir\"", "", 12, 16, JOSE_BAD_HEADER},
    {"header not JSON", "{\"alg\":\"dir\",", "", 12, 16, JOSE_MALFORMED},
    {"empty header", "", "", 12, 16, JOSE_MALFORMED},
    {"non-empty encrypted key", GOOD_HDR, "AAAA", 12, 16, JOSE_MALFORMED},
    {"IV 11 bytes", GOOD_HDR, "", 11, 16, JOSE_MALFORMED},
    {"IV 16 bytes", GOOD_HDR, "", 16, 16, JOSE_MALFORMED},
    {"tag 15 bytes", GOOD_HDR, "", 12, 15, JOSE_MALFORMED},
};

static void test_hostile_jwe(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(hostile_jwe) / sizeof(hostile_jwe[0]); i++) {
        const struct hostile *t = &hostile_jwe[i];
        char *tok = forge(t->header, t->ek, t->ivlen, t->taglen);
        uint8_t *pt = NULL;
        size_t n = 0;
        jose_header h;
        jose_result r = jwe_decrypt(key32, tok, strlen(tok), &h, &pt, &n);

        if (r != t->want)
            fail_msg("%s: got %s, want %s", t->name, jose_result_str(r), jose_result_str(t->want));
        if (t->want != JOSE_OK) {
            assert_null(pt);
            /* peek agrees whenever the flaw is in the header */
            if (t->want == JOSE_BAD_HEADER)
                assert_int_equal(jwe_peek(tok, strlen(tok), &h), JOSE_BAD_HEADER);
        }
        free(pt);
        free(tok);
    }
}

static jose_result try_jwe(const char *tok)
{
    uint8_t *pt = NULL;
    size_t n = 0;
    jose_result r = jwe_decrypt(key32, tok, strlen(tok), NULL, &pt, &n);

    free(pt);
    return r;
}

static void test_hostile_jwe_structure(void **state)
{
    char *good = forge(GOOD_HDR, "", 12, 16);
    size_t len = strlen(good);
    char buf[4096];
    char *big;
    char *last = strrchr(good, '.');
    size_t o;

    (void)state;
    assert_int_equal(try_jwe(good), JOSE_OK);
    /* truncated, at the end and in the middle */
    snprintf(buf, sizeof(buf), "%.*s", (int)(len - 3), good);
    assert_int_equal(try_jwe(buf), JOSE_MALFORMED);
    snprintf(buf, sizeof(buf), "%.*s", (int)(len / 2), good);
    assert_int_equal(try_jwe(buf), JOSE_MALFORMED);
    /* tampered tag and ciphertext: authentic-looking, does not verify */
    snprintf(buf, sizeof(buf), "%s", good);
    buf[last - good + 1] = buf[last - good + 1] == 'A' ? 'B' : 'A';
    assert_int_equal(try_jwe(buf), JOSE_DECRYPT);
    snprintf(buf, sizeof(buf), "%s", good);
    buf[last - good - 2] = buf[last - good - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(try_jwe(buf), JOSE_DECRYPT);
    /* header bytes changed but still allowed (a space added): the AAD no longer matches */
    o = b64url_encode((const uint8_t *)GOOD_HDR " ", strlen(GOOD_HDR) + 1, buf);
    snprintf(buf + o, sizeof(buf) - o, "%s", strchr(good, '.'));
    assert_int_equal(try_jwe(buf), JOSE_DECRYPT);
    /* one header character changed: {"alg -> {"`lg, an unknown member */
    snprintf(buf, sizeof(buf), "%s", good);
    assert_int_equal(buf[3], 'h');
    buf[3] = 'g';
    assert_int_equal(try_jwe(buf), JOSE_BAD_HEADER);
    /* 4 parts and 6 parts */
    snprintf(buf, sizeof(buf), "%.*s", (int)(last - good), good);
    assert_int_equal(try_jwe(buf), JOSE_MALFORMED);
    snprintf(buf, sizeof(buf), "%s.", good);
    assert_int_equal(try_jwe(buf), JOSE_MALFORMED);
    snprintf(buf, sizeof(buf), "%s.AAAA", good);
    assert_int_equal(try_jwe(buf), JOSE_MALFORMED);
    /* bad base64url: padding, foreign characters, in each part */
    snprintf(buf, sizeof(buf), "%s=", good);
    assert_int_equal(try_jwe(buf), JOSE_MALFORMED);
    snprintf(buf, sizeof(buf), "%s", good);
    buf[last - good - 2] = '+';
    assert_int_equal(try_jwe(buf), JOSE_MALFORMED);
    snprintf(buf, sizeof(buf), "%s", good);
    buf[5] = '/';
    assert_int_equal(try_jwe(buf), JOSE_MALFORMED);
    snprintf(buf, sizeof(buf), "%s", good);
    buf[strchr(good, '.') - good + 3] = '*'; /* in the IV */
    assert_int_equal(try_jwe(buf), JOSE_MALFORMED);
    /* nothing at all */
    assert_int_equal(try_jwe(""), JOSE_MALFORMED);
    assert_int_equal(try_jwe("...."), JOSE_MALFORMED);
    /* over the size cap */
    big = malloc(JOSE_TOKEN_MAX + 2);
    memset(big, 'A', JOSE_TOKEN_MAX + 1);
    memcpy(big, good, len);
    big[JOSE_TOKEN_MAX + 1] = '\0';
    assert_int_equal(try_jwe(big), JOSE_MALFORMED);
    free(big);
    free(good);
}

static jose_result try_jws(const eckey *k, const char *header, const char *sig_override)
{
    char tok[1024];
    uint8_t sig[64];
    uint8_t *payload = NULL;
    size_t n = 0, o;
    jose_result r;

    o = b64url_encode((const uint8_t *)header, strlen(header), tok);
    tok[o++] = '.';
    o += b64url_encode((const uint8_t *)"{}", 2, tok + o);
    assert_int_equal(jose_es256_sign(k, (const uint8_t *)tok, o, sig), JOSE_OK);
    tok[o++] = '.';
    if (sig_override != NULL)
        snprintf(tok + o, sizeof(tok) - o, "%s", sig_override);
    else
        b64url_encode(sig, 64, tok + o);
    r = jws_verify(k, tok, strlen(tok), NULL, &payload, &n);
    free(payload);
    return r;
}

static void test_hostile_jws(void **state)
{
    eckey *k = eckey_generate();
    const char *good = "{\"alg\":\"ES256\",\"kid\":\"k\",\"typ\":\"receipt+jwt\"}";
    char sig63[100], sig72[100];
    uint8_t zeros[72] = {0};

    (void)state;
    b64url_encode(zeros, 63, sig63);
    b64url_encode(zeros, 72, sig72);
    assert_int_equal(try_jws(k, good, NULL), JOSE_OK);
    assert_int_equal(try_jws(k, "{\"alg\":\"ES256\",\"kid\":\"k\"}", NULL), JOSE_BAD_HEADER);
    assert_int_equal(try_jws(k, "{\"alg\":\"none\",\"kid\":\"k\",\"typ\":\"receipt+jwt\"}", NULL),
                     JOSE_BAD_HEADER);
    assert_int_equal(try_jws(k, "{\"alg\":\"HS256\",\"kid\":\"k\",\"typ\":\"receipt+jwt\"}", NULL),
                     JOSE_BAD_HEADER);
    assert_int_equal(try_jws(k, "{\"alg\":\"ES256\",\"kid\":\"k\",\"typ\":\"JWT\"}", NULL),
                     JOSE_BAD_HEADER);
    assert_int_equal(
        try_jws(k, "{\"alg\":\"ES256\",\"kid\":\"k\",\"typ\":\"receipt+jwt\",\"crit\":[]}", NULL),
        JOSE_BAD_HEADER);
    assert_int_equal(
        try_jws(k, "{\"alg\":\"ES256\",\"kid\":\"k\",\"typ\":\"receipt+jwt\",\"kid\":\"k\"}", NULL),
        JOSE_BAD_HEADER);
    assert_int_equal(try_jws(k, "[1]", NULL), JOSE_BAD_HEADER);
    assert_int_equal(try_jws(k, good, sig63), JOSE_MALFORMED);
    assert_int_equal(try_jws(k, good, sig72), JOSE_MALFORMED);
    assert_int_equal(try_jws(k, good, ""), JOSE_MALFORMED);
    /* 64 zero bytes: r = s = 0, never a valid signature */
    sig72[86] = '\0';
    assert_int_equal(try_jws(k, good, sig72), JOSE_DECRYPT);
    assert_int_equal(jws_peek("a.b", 3, NULL), JOSE_MALFORMED);
    assert_int_equal(jws_peek("a.b.c.d", 7, NULL), JOSE_MALFORMED);
    eckey_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwe_round_trip),      cmocka_unit_test(test_jwe_size_cap),
        cmocka_unit_test(test_fixed_vector),        cmocka_unit_test(test_fixed_receipt),
        cmocka_unit_test(test_rfc7516_a1),          cmocka_unit_test(test_rfc7515_a3),
        cmocka_unit_test(test_jws_round_trip),      cmocka_unit_test(test_cjose_decrypts_ours),
        cmocka_unit_test(test_ours_decrypts_cjose), cmocka_unit_test(test_cjose_verifies_ours),
        cmocka_unit_test(test_hostile_jwe),         cmocka_unit_test(test_hostile_jwe_structure),
        cmocka_unit_test(test_hostile_jws),         cmocka_unit_test(test_signing_contexts),
        cmocka_unit_test(test_jwe_decrypt_peeked),  cmocka_unit_test(test_gcm_context_reuse),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
