/*
 * bench/cyclecost: what the cryptography of one full cycle costs on this
 * machine, operation by operation, on one core.
 *
 * Each operation runs through the project's own code (common/), with the
 * sizes of the full cycle of bench/cycle against receiptd (a 1 KiB page,
 * plug-in data and confirmation of a few hundred bytes, a receipt of about
 * 700 bytes, an event text of about 900 bytes), and is timed in CPU time of
 * the thread (CLOCK_THREAD_CPUTIME_ID), so that other load on the machine
 * shows less than in wall time. The table says how many times a cycle runs
 * each, on the server and on the client, and the sum is the floor of the
 * cycle's cryptography: docs/performance.md ("The targets not met").
 *
 * usage: bench/cyclecost [--seconds 0.5] [--batch 20] [--json]
 *   --seconds  CPU time per operation (default 0.5)
 *   --batch    events per ledger batch, for the per-batch signature's share
 *              (default 20, about what the full cycle's writer commits at 64
 *              clients; two events per cycle)
 */
#include "common/b64.h"
#include "common/checkpoint.h"
#include "common/eckey.h"
#include "common/jose.h"
#include "common/kdf.h"
#include "common/merkle.h"
#include "common/note_sign.h"
#include "common/rnd.h"

#include <getopt.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_LEN    1072 /* the injected 1 KiB page */
#define PLUGIN_LEN  460  /* plug-in data payload */
#define CONFIRM_LEN 420  /* confirmation payload */
#define TICKET_LEN  120  /* a sealed ticket's plaintext */
#define RECEIPT_LEN 640  /* the receipt's signing input (header.payload) */
#define EVENT_LEN   930  /* an event's canonical text */

typedef struct fixture {
    eckey *server_enc, *server_sig, *client;
    uint8_t k[KDF_KEY_LEN];
    note_signer *log_key;
    note_verifier *log_verifier;
    char checkpoint[CHECKPOINT_MAX_LEN + 1];
    size_t checkpoint_len;
    char *note;
    size_t note_len;
    char *plugin_jwe, *receipt_jws;
    uint8_t page[PAGE_LEN], event[EVENT_LEN], receipt_input[RECEIPT_LEN];
    uint8_t sig[JOSE_SIG_LEN];
    merkle_hash proof[20];
    merkle_hash root, leaf, scratch;
    uint64_t proof_index, proof_size;
} fixture;

typedef bool (*op_fn)(fixture *f);

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the operations ---- */

static bool op_es256_sign(fixture *f)
{
    return jose_es256_sign(f->server_sig, f->receipt_input, sizeof f->receipt_input, f->sig) ==
           JOSE_OK;
}

static bool op_jws_verify(fixture *f)
{
    jose_header h;
    uint8_t *payload = NULL;
    size_t n = 0;
    bool ok = jws_verify(f->server_sig, f->receipt_jws, strlen(f->receipt_jws), &h, &payload, &n) ==
              JOSE_OK;
    free(payload);
    return ok;
}

static bool op_ecdh_hkdf(fixture *f)
{
    uint8_t k[KDF_KEY_LEN];
    return kdf_derive(f->server_enc, f->client, eckey_thumbprint(f->client),
                      eckey_thumbprint(f->server_enc), k) == 0;
}

static bool op_jwe_seal_plugin(fixture *f)
{
    char *jwe = NULL;
    bool ok = jwe_encrypt(f->k, eckey_thumbprint(f->client), eckey_thumbprint(f->server_enc),
                          "receipt-plugin+json", f->page, PLUGIN_LEN, NULL, &jwe) == JOSE_OK;
    free(jwe);
    return ok;
}

static bool op_jwe_open_plugin(fixture *f)
{
    jose_header h;
    uint8_t *plain = NULL;
    size_t n = 0;
    bool ok = jwe_decrypt(f->k, f->plugin_jwe, strlen(f->plugin_jwe), &h, &plain, &n) == JOSE_OK;
    free(plain);
    return ok;
}

static bool op_gcm_seal_ticket(fixture *f)
{
    uint8_t iv[JOSE_IV_LEN], ct[TICKET_LEN], tag[JOSE_TAG_LEN];
    return rnd_bytes(iv, sizeof iv) == 0 &&
           jose_a256gcm_seal(f->k, iv, NULL, 0, f->page, TICKET_LEN, ct, tag) == JOSE_OK;
}

static bool op_sha256_page(fixture *f)
{
    uint8_t d[32];
    return EVP_Digest(f->page, sizeof f->page, d, NULL, EVP_sha256(), NULL) == 1;
}

static bool op_commitment(fixture *f)
{
    uint8_t salt[MERKLE_SALT_LEN];
    merkle_hash c;
    if (rnd_bytes(salt, sizeof salt) != 0)
        return false;
    merkle_commitment(salt, (const char *)f->event, sizeof f->event, &c);
    return true;
}

static bool op_leaf_and_node(fixture *f)
{
    merkle_hash h;
    merkle_leaf_hash(f->root.bytes, MERKLE_HASH_LEN, &h);
    merkle_node_hash(&h, &f->root, &f->scratch);
    return true;
}

static bool op_note_sign(fixture *f)
{
    char *note = NULL;
    size_t len = 0;
    bool ok = note_sign(f->checkpoint, f->checkpoint_len, &f->log_key, 1, &note, &len) == NOTE_OK;
    free(note);
    return ok;
}

static bool op_note_open(fixture *f)
{
    checkpoint cp;
    return checkpoint_open(f->note, f->note_len, &f->log_verifier, 1, &cp, NULL) == NOTE_OK;
}

static bool op_verify_inclusion(fixture *f)
{
    return merkle_verify_inclusion(f->proof_index, f->proof_size, &f->leaf, f->proof, 20,
                                   &f->root) == MERKLE_OK;
}

/* ---- the table ---- */

typedef struct op {
    const char *name;
    const char *what;
    op_fn fn;
    double server;   /* times per cycle; a negative value: per batch */
    double client;   /* bench/cycle's client */
    double verifier; /* a client that checks its receipt and proof as well */
} op;

static const op OPS[] = {
    {"es256_sign", "ES256 signature of the receipt (P-256 ECDSA, SHA-256)", op_es256_sign, 1, 0, 0},
    {"jws_verify", "the receipt JWS parsed and verified (ES256)", op_jws_verify, 0, 0, 1},
    {"ecdh_hkdf", "ECDH-P256 and HKDF of K (once per client key and server key)", op_ecdh_hkdf, 0,
     0, 0},
    {"jwe_seal", "a JWE of 460 bytes sealed (AES-256-GCM, random IV, header, base64url)",
     op_jwe_seal_plugin, 1, 1, 1},
    {"jwe_open", "a JWE of 460 bytes opened (header parsed, base64url, AES-256-GCM)",
     op_jwe_open_plugin, 1, 1, 1},
    {"gcm_ticket", "a ticket of 120 bytes sealed with a random IV (AES-256-GCM)",
     op_gcm_seal_ticket, 2, 0, 0},
    {"sha256_1k", "SHA-256 of 1 KiB (the receipt's digest; the client's of the body)",
     op_sha256_page, 1, 1, 1},
    {"commitment", "an event's commitment: a 32-byte salt, SHA-256 of salt || 930 bytes",
     op_commitment, 2, 0, 1},
    {"leaf_node", "a leaf hash and a node hash (RFC 9162)", op_leaf_and_node, 2, 0, 0},
    {"note_sign", "an Ed25519 signed checkpoint (one per batch)", op_note_sign, -1, 0, 0},
    {"note_open", "a signed checkpoint opened (Ed25519 verification)", op_note_open, 0, 0, 1},
    {"verify_inclusion", "an inclusion proof of 20 hashes verified", op_verify_inclusion, 0, 0, 1},
};
#define NOPS (sizeof OPS / sizeof OPS[0])

static int setup(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->server_enc = eckey_generate();
    f->server_sig = eckey_generate();
    f->client = eckey_generate();
    if (f->server_enc == NULL || f->server_sig == NULL || f->client == NULL)
        return -1;
    if (kdf_derive(f->server_enc, f->client, eckey_thumbprint(f->client),
                   eckey_thumbprint(f->server_enc), f->k) != 0)
        return -1;
    if (rnd_bytes(f->page, sizeof f->page) != 0 || rnd_bytes(f->event, sizeof f->event) != 0)
        return -1;
    for (size_t i = 0; i < sizeof f->receipt_input; i++)
        f->receipt_input[i] = (uint8_t) "abcdefghijklmnopqrstuvwxyz0123456789-_"[i % 38];
    static const char name[] = "example.com/_receipt/log";
    if (note_signer_generate(name, strlen(name), &f->log_key) != NOTE_OK)
        return -1;
    f->log_verifier = note_signer_verifier(f->log_key);
    checkpoint cp;
    memset(&cp, 0, sizeof cp);
    snprintf(cp.origin, sizeof cp.origin, "%s", name);
    cp.size = 123456789;
    memcpy(cp.root.bytes, f->page, MERKLE_HASH_LEN);
    f->checkpoint_len = checkpoint_format(&cp, f->checkpoint, sizeof f->checkpoint);
    if (f->log_verifier == NULL || f->checkpoint_len == 0 ||
        note_sign(f->checkpoint, f->checkpoint_len, &f->log_key, 1, &f->note, &f->note_len) !=
            NOTE_OK)
        return -1;
    if (jwe_encrypt(f->k, eckey_thumbprint(f->client), eckey_thumbprint(f->server_enc),
                    "receipt-plugin+json", f->page, PLUGIN_LEN, NULL, &f->plugin_jwe) != JOSE_OK)
        return -1;
    if (jws_sign(f->server_sig, eckey_thumbprint(f->server_sig), f->event, 480, &f->receipt_jws) !=
            JOSE_OK ||
        !op_es256_sign(f))
        return -1;
    /* A proof of leaf 2^20 - 1000 in a tree of 2^20 leaves, made by hand:
     * the verifier walks it the same whatever the hashes. */
    f->proof_size = 1u << 20;
    f->proof_index = f->proof_size - 1000;
    merkle_leaf_hash(f->page, 32, &f->leaf);
    merkle_hash h = f->leaf;
    uint64_t index = f->proof_index;
    for (int i = 0; i < 20; i++, index >>= 1) {
        memcpy(f->proof[i].bytes, f->page + 32 + i, MERKLE_HASH_LEN);
        merkle_hash next;
        if (index & 1)
            merkle_node_hash(&f->proof[i], &h, &next);
        else
            merkle_node_hash(&h, &f->proof[i], &next);
        h = next;
    }
    f->root = h;
    return op_verify_inclusion(f) ? 0 : -1;
}

static double measure(const op *o, fixture *f, double seconds)
{
    for (int i = 0; i < 50; i++) /* warm the caches and OpenSSL's lazy set-up */
        if (!o->fn(f))
            return -1;
    long n = 0;
    double start = cpu_now(), elapsed = 0;
    while (elapsed < seconds) {
        for (int i = 0; i < 50; i++)
            if (!o->fn(f))
                return -1;
        n += 50;
        elapsed = cpu_now() - start;
    }
    return elapsed / (double)n * 1e6;
}

/* A number option; NaN (refused below) when it is none. */
static double number(const char *s)
{
    char *end = NULL;
    double v = strtod(s, &end);
    return end == s || *end != '\0' ? NAN : v;
}

int main(int argc, char **argv)
{
    double seconds = 0.5, batch = 20;
    bool json = false;
    static const struct option longopts[] = {{"seconds", required_argument, NULL, 's'},
                                             {"batch", required_argument, NULL, 'b'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            seconds = number(optarg);
            break;
        case 'b':
            batch = number(optarg);
            break;
        case 'j':
            json = true;
            break;
        default:
            fprintf(stderr, "usage: cyclecost [--seconds 0.5] [--batch 20] [--json]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!(seconds > 0 && seconds <= 60 && batch >= 2 && batch <= 100000)) {
        fprintf(stderr, "cyclecost: --seconds in (0, 60], --batch in [2, 100000]\n");
        return 2;
    }
    fixture f;
    if (setup(&f) != 0) {
        fprintf(stderr, "cyclecost: cannot set up the keys and messages\n");
        return 1;
    }
    double us[NOPS];
    double server = 0, client = 0, verifier = 0;
    for (size_t i = 0; i < NOPS; i++) {
        us[i] = measure(&OPS[i], &f, seconds);
        if (us[i] < 0) {
            fprintf(stderr, "cyclecost: %s failed\n", OPS[i].name);
            return 1;
        }
        double per_cycle = OPS[i].server < 0 ? 2.0 / batch : OPS[i].server;
        server += per_cycle * us[i];
        client += OPS[i].client * us[i];
        verifier += OPS[i].verifier * us[i];
    }
    if (json) {
        printf("{\"batch\":%g,\"us\":{", batch);
        for (size_t i = 0; i < NOPS; i++)
            printf("%s\"%s\":%.3f", i ? "," : "", OPS[i].name, us[i]);
        printf("},\"server_us_per_cycle\":%.3f,\"client_us_per_cycle\":%.3f,"
               "\"verifying_client_extra_us\":%.3f}\n",
               server, client, verifier - client);
    } else {
        printf("%-17s %9s %8s %8s %9s  %s\n", "operation", "us each", "server", "client",
               "verifier", "what");
        for (size_t i = 0; i < NOPS; i++) {
            char srv[16];
            if (OPS[i].server < 0)
                snprintf(srv, sizeof srv, "1/%g", batch / 2);
            else
                snprintf(srv, sizeof srv, "%g", OPS[i].server);
            printf("%-17s %9.2f %8s %8g %9g  %s\n", OPS[i].name, us[i], srv, OPS[i].client,
                   OPS[i].verifier, OPS[i].what);
        }
        printf("per cycle: server %.1f us, bench/cycle's client %.1f us; a client that verifies "
               "its receipt and proof %.1f us more\n",
               server, client, verifier - client);
    }
    eckey_free(f.server_enc);
    eckey_free(f.server_sig);
    eckey_free(f.client);
    note_signer_free(f.log_key);
    note_verifier_free(f.log_verifier);
    free(f.note);
    free(f.plugin_jwe);
    free(f.receipt_jws);
    return 0;
}
