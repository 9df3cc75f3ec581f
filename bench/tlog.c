/*
 * bench/tlog: how fast the evidence log's primitives run on one core.
 *
 *   integrate   leaves appended to the Merkle tree per second: leaf hash of
 *               a 32-byte commitment, the append, and the copy of the hashes
 *               it stores (about two per leaf) into a store in memory
 *   commit      the same, starting from an event: build it, write its
 *               canonical JSON, draw a 32-byte salt, hash the commitment
 *   prove       inclusion proofs per second from the stored hashes
 *   verify      inclusion proofs verified per second
 *   sign        checkpoints formatted and signed (Ed25519) per second
 *   open        signed checkpoints opened and parsed per second
 *
 * The writer of receiptd does "commit" for each event in a batch and "sign"
 * once per batch, inside the transaction that makes the batch durable; the
 * database writes of the stored hashes are not measured here.
 *
 * usage: bench/tlog [--leaves N] [--json]
 */
#include "common/checkpoint.h"
#include "common/jcs.h"
#include "common/merkle.h"
#include "common/note_sign.h"
#include "common/rnd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct store {
    merkle_hash *hashes;
    uint64_t count;
} store;

static int store_read(void *ctx, const uint64_t *indexes, size_t count, merkle_hash *out)
{
    store *s = ctx;

    for (size_t i = 0; i < count; i++) {
        if (indexes[i] >= s->count)
            return -1;
        out[i] = s->hashes[indexes[i]];
    }
    return 0;
}

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Appends leaves whose commitments are the numbers 0 .. leaves - 1; returns the hashes stored. */
static uint64_t append_numbered(merkle_edge *edge, store *s, uint64_t leaves)
{
    for (uint64_t i = 0; i < leaves; i++) {
        merkle_hash commitment, leaf;
        size_t count;

        memset(&commitment, 0, sizeof(commitment));
        memcpy(commitment.bytes, &i, sizeof(i));
        merkle_leaf_hash(commitment.bytes, sizeof(commitment.bytes), &leaf);
        merkle_edge_append(edge, &leaf, s->hashes + s->count, &count, NULL);
        s->count += count;
    }
    return s->count;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench/tlog [--leaves N] [--json]\n"
                    "  --leaves N  leaves appended in each of the two append runs"
                    " (default 1000000)\n"
                    "  --json      print the results as one JSON object\n");
}

int main(int argc, char **argv)
{
    uint64_t leaves = 1000000;
    bool json = false;
    store s = {NULL, 0};
    merkle_edge *edge = merkle_edge_new();
    note_signer *signer = NULL;
    note_verifier *verifier = NULL;
    double t, integrate_s, commit_s, prove_s, verify_s, sign_s, open_s;
    uint64_t proofs = 200000, rng = 1, writes = 0;
    const int notes = 2000;
    merkle_hash root;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--leaves") == 0 && i + 1 < argc) {
            leaves = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            usage();
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (leaves < 1 || leaves > (UINT64_C(1) << 32)) {
        usage();
        return 2;
    }
    s.hashes = malloc(2 * leaves * sizeof(merkle_hash));
    if (s.hashes == NULL || edge == NULL) {
        fprintf(stderr, "bench/tlog: out of memory\n");
        return 1;
    }

    /* integrate: commitments given */
    t = now();
    writes = append_numbered(edge, &s, leaves);
    integrate_s = now() - t;

    /* commit: from an event object, as the writer will */
    {
        merkle_edge *edge2 = merkle_edge_new();
        store s2 = {s.hashes, 0};

        t = now();
        for (uint64_t i = 0; i < leaves; i++) {
            uint8_t salt[MERKLE_SALT_LEN];
            merkle_hash commitment, leaf;
            json_t *event;
            char *text;
            size_t len, count;

            event =
                json_pack("{s:s, s:s, s:s, s:I, s:b}", "type", "confirmed", "delivery",
                          "01890a5d-ac96-774b-bcce-b302099a8057", "path", "/notices/2026-03.pdf",
                          "time", (json_int_t)(1772366400000 + i), "intact", 1);
            if (event == NULL || jcs_dump(event, &text, &len) != JCS_OK ||
                rnd_bytes(salt, sizeof(salt)) != 0) {
                fprintf(stderr, "bench/tlog: event failed\n");
                return 1;
            }
            merkle_commitment(salt, text, len, &commitment);
            merkle_leaf_hash(commitment.bytes, sizeof(commitment.bytes), &leaf);
            merkle_edge_append(edge2, &leaf, s2.hashes + s2.count, &count, NULL);
            s2.count += count;
            free(text);
            json_decref(event);
        }
        commit_s = now() - t;
        merkle_edge_free(edge2);
    }
    /* the commit run overwrote the store: rebuild it for the proofs */
    {
        merkle_edge *edge3 = merkle_edge_new();
        s.count = 0;
        append_numbered(edge3, &s, leaves);
        merkle_edge_free(edge3);
    }
    merkle_edge_root(edge, &root);

    /* prove and verify */
    {
        merkle_hash(*proof)[MERKLE_MAX_PROOF] = malloc(proofs * sizeof(*proof));
        size_t *len = malloc(proofs * sizeof(*len));
        uint64_t *index = malloc(proofs * sizeof(*index));

        t = now();
        for (uint64_t k = 0; k < proofs; k++) {
            index[k] = splitmix(&rng) % leaves;
            if (merkle_prove_inclusion(index[k], leaves, store_read, &s, proof[k], &len[k]) !=
                MERKLE_OK) {
                fprintf(stderr, "bench/tlog: proof failed\n");
                return 1;
            }
        }
        prove_s = now() - t;
        t = now();
        for (uint64_t k = 0; k < proofs; k++) {
            if (merkle_verify_inclusion(index[k], leaves,
                                        &s.hashes[merkle_stored_index(0, index[k])], proof[k],
                                        len[k], &root) != MERKLE_OK) {
                fprintf(stderr, "bench/tlog: verification failed\n");
                return 1;
            }
        }
        verify_s = now() - t;
        free(proof);
        free(len);
        free(index);
    }

    /* sign and open checkpoints */
    {
        checkpoint c;
        char text[CHECKPOINT_MAX_LEN + 1];
        char *note = NULL;
        size_t n, nlen = 0;

        if (note_signer_generate("bench.example/_receipt/log", 26, &signer) != NOTE_OK ||
            (verifier = note_signer_verifier(signer)) == NULL) {
            fprintf(stderr, "bench/tlog: key failed\n");
            return 1;
        }
        memset(&c, 0, sizeof(c));
        snprintf(c.origin, sizeof(c.origin), "%s", "bench.example/_receipt/log");
        c.root = root;
        t = now();
        for (int k = 0; k < notes; k++) {
            c.size = leaves + (uint64_t)k;
            n = checkpoint_format(&c, text, sizeof(text));
            free(note);
            if (n == 0 || note_sign(text, n, &signer, 1, &note, &nlen) != NOTE_OK) {
                fprintf(stderr, "bench/tlog: signing failed\n");
                return 1;
            }
        }
        sign_s = now() - t;
        t = now();
        for (int k = 0; k < notes; k++) {
            if (checkpoint_open(note, nlen, &verifier, 1, &c, NULL) != NOTE_OK) {
                fprintf(stderr, "bench/tlog: opening failed\n");
                return 1;
            }
        }
        open_s = now() - t;
        free(note);
    }

    if (json) {
        printf("{\"leaves\": %" PRIu64 ", \"hashes_per_leaf\": %.3f, \"log_leaves_per_s\": %.0f, "
               "\"log_events_per_s\": %.0f, \"proofs_per_s\": %.0f, \"verifies_per_s\": %.0f, "
               "\"checkpoints_signed_per_s\": %.0f, \"checkpoints_opened_per_s\": %.0f}\n",
               leaves, (double)writes / (double)leaves, (double)leaves / integrate_s,
               (double)leaves / commit_s, (double)proofs / prove_s, (double)proofs / verify_s,
               notes / sign_s, notes / open_s);
    } else {
        printf("tree of %" PRIu64 " leaves, %.3f stored hashes per leaf\n", leaves,
               (double)writes / (double)leaves);
        printf("  integrate   %12.0f leaves/s  (leaf hash, append, hashes stored in memory)\n",
               (double)leaves / integrate_s);
        printf("  commit      %12.0f events/s  (event, canonical JSON, salt, commitment, append)\n",
               (double)leaves / commit_s);
        printf("  prove       %12.0f proofs/s  (inclusion, from stored hashes)\n",
               (double)proofs / prove_s);
        printf("  verify      %12.0f proofs/s\n", (double)proofs / verify_s);
        printf("  sign        %12.0f checkpoints/s  (Ed25519 signed note)\n", notes / sign_s);
        printf("  open        %12.0f checkpoints/s\n", notes / open_s);
    }
    note_signer_free(signer);
    note_verifier_free(verifier);
    merkle_edge_free(edge);
    free(s.hashes);
    return 0;
}
