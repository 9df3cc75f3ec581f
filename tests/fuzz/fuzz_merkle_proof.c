/*
 * merkle: verifying hostile proofs never crashes or reads out of bounds, and
 * never accepts a proof of a claim that is false: the input picks a tree (up
 * to 300 leaves), a leaf and two sizes, and whatever proof it supplies must
 * verify only if it equals the true one.
 */
#include "common/merkle.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LEAVES 300

static merkle_hash stored[2 * LEAVES];
static uint64_t stored_count;

static int read_stored(void *ctx, const uint64_t *indexes, size_t count, merkle_hash *out)
{
    (void)ctx;
    for (size_t i = 0; i < count; i++) {
        if (indexes[i] >= stored_count)
            abort();
        out[i] = stored[indexes[i]];
    }
    return 0;
}

static void setup(void)
{
    merkle_edge *edge;

    if (stored_count != 0)
        return;
    edge = merkle_edge_new();
    for (uint64_t i = 0; i < LEAVES; i++) {
        merkle_hash leaf, out[MERKLE_MAX_WRITE];
        uint8_t b = (uint8_t)i;
        size_t count;
        merkle_leaf_hash(&b, 1, &leaf);
        merkle_edge_append(edge, &leaf, out, &count, NULL);
        memcpy(stored + stored_count, out, count * sizeof(merkle_hash));
        stored_count += count;
    }
    merkle_edge_free(edge);
}

static uint64_t take16(const uint8_t *data)
{
    return (uint64_t)data[0] << 8 | data[1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    merkle_hash proof[MERKLE_MAX_PROOF + 8], truth[MERKLE_MAX_PROOF], leaf, r1, r2;
    size_t len, tlen;
    uint64_t a, b, c;

    setup();
    if (size < 6)
        return 0;
    a = take16(data);
    b = take16(data + 2);
    c = take16(data + 4);
    data += 6;
    size -= 6;
    len = size / MERKLE_HASH_LEN;
    if (len > MERKLE_MAX_PROOF + 8)
        len = MERKLE_MAX_PROOF + 8;
    memcpy(proof, data, len * MERKLE_HASH_LEN);

    /* Arbitrary claims with arbitrary proofs, huge sizes included. */
    memset(&leaf, 0x5a, sizeof(leaf));
    (void)merkle_verify_inclusion(a * c, b << (c & 63), &leaf, proof, len, &leaf);
    (void)merkle_verify_consistency(a << (c & 63), b << (c & 63), &leaf, &leaf, proof, len);

    /* Claims about the real tree: a proof verifies only if it is the true one. */
    b = 1 + b % LEAVES;
    a = a % b;
    c = 1 + c % b;
    if (merkle_tree_hash(b, read_stored, NULL, &r2) != MERKLE_OK)
        abort();
    if (merkle_prove_inclusion(a, b, read_stored, NULL, truth, &tlen) != MERKLE_OK ||
        merkle_verify_inclusion(a, b, &stored[merkle_stored_index(0, a)], truth, tlen, &r2) !=
            MERKLE_OK)
        abort();
    if (merkle_verify_inclusion(a, b, &stored[merkle_stored_index(0, a)], proof, len, &r2) ==
            MERKLE_OK &&
        (len != tlen || memcmp(proof, truth, len * sizeof(merkle_hash)) != 0))
        abort();
    if (merkle_tree_hash(c, read_stored, NULL, &r1) != MERKLE_OK ||
        merkle_prove_consistency(c, b, read_stored, NULL, truth, &tlen) != MERKLE_OK ||
        merkle_verify_consistency(c, b, &r1, &r2, truth, tlen) != MERKLE_OK)
        abort();
    if (merkle_verify_consistency(c, b, &r1, &r2, proof, len) == MERKLE_OK &&
        (len != tlen || memcmp(proof, truth, len * sizeof(merkle_hash)) != 0))
        abort();
    return 0;
}
