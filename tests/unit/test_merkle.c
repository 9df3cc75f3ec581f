/*
 * merkle: the published RFC 6962 test vectors (certificate transparency's
 * eight-leaf tree: roots, inclusion and consistency proofs), the same
 * proofs altered in every way that must fail, and a reference computation
 * written from the RFC's recursive definitions (MTH, PATH, PROOF) compared
 * with the stored-hash code on every tree of 1 to 1,000 random leaves, for
 * every leaf and every pair of sizes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/merkle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEAVES 1000

static void from_hex(const char *hex, merkle_hash *out)
{
    for (int i = 0; i < MERKLE_HASH_LEN; i++) {
        unsigned b;
        sscanf(hex + 2 * i, "%2x", &b);
        out->bytes[i] = (uint8_t)b;
    }
}

static bool equal(const merkle_hash *a, const merkle_hash *b)
{
    return memcmp(a->bytes, b->bytes, MERKLE_HASH_LEN) == 0;
}

/* ---- a store of hashes in memory, read through the callback ---- */

typedef struct store {
    merkle_hash *hashes;
    uint64_t count;
    uint64_t limit; /* reads at or past this fail the test: they would see the future */
    size_t reads;
} store;

static int store_read(void *ctx, const uint64_t *indexes, size_t count, merkle_hash *out)
{
    store *s = ctx;

    s->reads++;
    if (count == 0 || count > MERKLE_MAX_READ)
        fail_msg("a read of %zu hashes", count);
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && indexes[i] <= indexes[i - 1])
            fail_msg("read indexes not strictly increasing");
        if (indexes[i] >= s->limit || indexes[i] >= s->count)
            fail_msg("read of hash %llu beyond the tree (%llu)", (unsigned long long)indexes[i],
                     (unsigned long long)s->limit);
        out[i] = s->hashes[indexes[i]];
    }
    return 0;
}

static int failing_read(void *ctx, const uint64_t *indexes, size_t count, merkle_hash *out)
{
    (void)ctx;
    (void)indexes;
    (void)count;
    (void)out;
    return -1;
}

/* Appends leaf hashes, storing what each append returns where it says. */
static void store_append(store *s, merkle_edge *edge, const merkle_hash *leaf)
{
    merkle_hash out[MERKLE_MAX_WRITE];
    size_t count;
    uint64_t first;

    assert_int_equal(merkle_edge_append(edge, leaf, out, &count, &first), MERKLE_OK);
    assert_int_equal(first, s->count);
    for (size_t i = 0; i < count; i++)
        s->hashes[s->count++] = out[i];
    assert_int_equal(s->count, merkle_stored_count(merkle_edge_size(edge)));
}

/* ---- the published vectors ---- */

static const char *const ct_leaves[8] = {
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
};

static const char *const ct_roots[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

struct inclusion_vector {
    uint64_t index, size;
    size_t len;
    const char *proof[3];
};

static const struct inclusion_vector ct_inclusion[] = {
    {0, 1, 0, {NULL}},
    {0,
     8,
     3,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5,
     8,
     3,
     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 3, 1, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {1,
     5,
     3,
     {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

struct consistency_vector {
    uint64_t first, second;
    size_t len;
    const char *proof[3];
};

static const struct consistency_vector ct_consistency[] = {
    {1, 1, 0, {NULL}},
    {1,
     8,
     3,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6,
     8,
     3,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2,
     5,
     2,
     {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {6,
     7,
     3,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
};

static merkle_hash ct_leaf_hash[8];
static merkle_hash ct_store_hashes[32];
static store ct_store;

static int ct_setup(void **state)
{
    merkle_edge *edge = merkle_edge_new();

    (void)state;
    ct_store = (store){ct_store_hashes, 0, UINT64_MAX, 0};
    for (int i = 0; i < 8; i++) {
        uint8_t data[16];
        size_t n = strlen(ct_leaves[i]) / 2;
        for (size_t j = 0; j < n; j++) {
            unsigned b;
            sscanf(ct_leaves[i] + 2 * j, "%2x", &b);
            data[j] = (uint8_t)b;
        }
        merkle_leaf_hash(data, n, &ct_leaf_hash[i]);
        store_append(&ct_store, edge, &ct_leaf_hash[i]);
    }
    merkle_edge_free(edge);
    return 0;
}

static void test_ct_roots(void **state)
{
    merkle_hash root, want;

    (void)state;
    for (uint64_t n = 0; n <= 8; n++) {
        from_hex(ct_roots[n], &want);
        ct_store.limit = merkle_stored_count(n);
        assert_int_equal(merkle_tree_hash(n, store_read, &ct_store, &root), MERKLE_OK);
        assert_true(equal(&root, &want));
        if (n > 0) {
            merkle_root_of(ct_leaf_hash, n, &root);
            assert_true(equal(&root, &want));
        }
    }
    ct_store.limit = UINT64_MAX;
    merkle_empty_root(&root);
    from_hex(ct_roots[0], &want);
    assert_true(equal(&root, &want));
}

/* Every way of altering a valid inclusion proof fails. */
static void inclusion_must_fail(uint64_t index, uint64_t size, const merkle_hash *leaf,
                                const merkle_hash *proof, size_t len, const merkle_hash *root)
{
    merkle_hash p[MERKLE_MAX_PROOF + 2], empty, wrong;

    merkle_empty_root(&empty);
    assert_int_equal(merkle_verify_inclusion(index, size, leaf, proof, len, root), MERKLE_OK);
    /* wrong index, wrong size */
    if (index > 0)
        assert_int_not_equal(merkle_verify_inclusion(index - 1, size, leaf, proof, len, root), 0);
    assert_int_not_equal(merkle_verify_inclusion(index + 1, size, leaf, proof, len, root), 0);
    assert_int_not_equal(merkle_verify_inclusion(index ^ 2, size, leaf, proof, len, root), 0);
    assert_int_not_equal(merkle_verify_inclusion(index, size * 2, leaf, proof, len, root), 0);
    assert_int_not_equal(merkle_verify_inclusion(index, size / 2, leaf, proof, len, root), 0);
    /* wrong leaf, wrong root */
    wrong = *leaf;
    wrong.bytes[31] ^= 1;
    assert_int_not_equal(merkle_verify_inclusion(index, size, &wrong, proof, len, root), 0);
    assert_int_not_equal(merkle_verify_inclusion(index, size, leaf, proof, len, &empty), 0);
    /* each hash replaced, each bit of the first byte flipped */
    for (size_t i = 0; i < len; i++) {
        memcpy(p, proof, len * sizeof(*p));
        p[i] = empty;
        assert_int_not_equal(merkle_verify_inclusion(index, size, leaf, p, len, root), 0);
        for (int bit = 0; bit < 8; bit++) {
            memcpy(p, proof, len * sizeof(*p));
            p[i].bytes[0] ^= (uint8_t)(1 << bit);
            assert_int_not_equal(merkle_verify_inclusion(index, size, leaf, p, len, root), 0);
        }
    }
    /* hashes added at the end or the front, or one removed */
    memcpy(p, proof, len * sizeof(*p));
    p[len] = empty;
    assert_int_not_equal(merkle_verify_inclusion(index, size, leaf, p, len + 1, root), 0);
    p[len] = *root;
    assert_int_not_equal(merkle_verify_inclusion(index, size, leaf, p, len + 1, root), 0);
    if (len > 0)
        assert_int_not_equal(merkle_verify_inclusion(index, size, leaf, proof, len - 1, root), 0);
    p[0] = empty;
    memcpy(p + 1, proof, len * sizeof(*p));
    assert_int_not_equal(merkle_verify_inclusion(index, size, leaf, p, len + 1, root), 0);
    p[0] = *root;
    assert_int_not_equal(merkle_verify_inclusion(index, size, leaf, p, len + 1, root), 0);
}

static void test_ct_inclusion(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof(ct_inclusion) / sizeof(ct_inclusion[0]); v++) {
        const struct inclusion_vector *iv = &ct_inclusion[v];
        merkle_hash want[3], got[MERKLE_MAX_PROOF], root;
        size_t len;

        for (size_t i = 0; i < iv->len; i++)
            from_hex(iv->proof[i], &want[i]);
        from_hex(ct_roots[iv->size], &root);
        ct_store.limit = merkle_stored_count(iv->size);
        assert_int_equal(
            merkle_prove_inclusion(iv->index, iv->size, store_read, &ct_store, got, &len),
            MERKLE_OK);
        assert_int_equal(len, iv->len);
        for (size_t i = 0; i < len; i++)
            assert_true(equal(&got[i], &want[i]));
        inclusion_must_fail(iv->index, iv->size, &ct_leaf_hash[iv->index], want, iv->len, &root);
    }
    ct_store.limit = UINT64_MAX;
}

static void consistency_must_fail(uint64_t first, uint64_t second, const merkle_hash *r1,
                                  const merkle_hash *r2, const merkle_hash *proof, size_t len)
{
    merkle_hash p[MERKLE_MAX_PROOF + 2], empty, wrong;

    merkle_empty_root(&empty);
    assert_int_equal(merkle_verify_consistency(first, second, r1, r2, proof, len), MERKLE_OK);
    if (len == 0)
        return;
    assert_int_not_equal(merkle_verify_consistency(first - 1, second, r1, r2, proof, len), 0);
    assert_int_not_equal(merkle_verify_consistency(first + 1, second, r1, r2, proof, len), 0);
    assert_int_not_equal(merkle_verify_consistency(first ^ 2, second, r1, r2, proof, len), 0);
    assert_int_not_equal(merkle_verify_consistency(first, second * 2, r1, r2, proof, len), 0);
    assert_int_not_equal(merkle_verify_consistency(first, second / 2, r1, r2, proof, len), 0);
    wrong = *r1;
    wrong.bytes[0] ^= 0x80;
    assert_int_not_equal(merkle_verify_consistency(first, second, &wrong, r2, proof, len), 0);
    wrong = *r2;
    wrong.bytes[31] ^= 1;
    assert_int_not_equal(merkle_verify_consistency(first, second, r1, &wrong, proof, len), 0);
    assert_int_not_equal(merkle_verify_consistency(first, second, r2, r1, proof, len), 0);
    assert_int_not_equal(merkle_verify_consistency(first, second, r1, r2, proof, 0), 0);
    for (size_t i = 0; i < len; i++) {
        memcpy(p, proof, len * sizeof(*p));
        p[i] = empty;
        assert_int_not_equal(merkle_verify_consistency(first, second, r1, r2, p, len), 0);
        for (int bit = 0; bit < 8; bit++) {
            memcpy(p, proof, len * sizeof(*p));
            p[i].bytes[5] ^= (uint8_t)(1 << bit);
            assert_int_not_equal(merkle_verify_consistency(first, second, r1, r2, p, len), 0);
        }
    }
    memcpy(p, proof, len * sizeof(*p));
    p[len] = empty;
    assert_int_not_equal(merkle_verify_consistency(first, second, r1, r2, p, len + 1), 0);
    p[len] = *r1;
    assert_int_not_equal(merkle_verify_consistency(first, second, r1, r2, p, len + 1), 0);
    assert_int_not_equal(merkle_verify_consistency(first, second, r1, r2, proof, len - 1), 0);
    p[0] = empty;
    memcpy(p + 1, proof, len * sizeof(*p));
    assert_int_not_equal(merkle_verify_consistency(first, second, r1, r2, p, len + 1), 0);
    p[0] = proof[0];
    assert_int_not_equal(merkle_verify_consistency(first, second, r1, r2, p, len + 1), 0);
}

static void test_ct_consistency(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof(ct_consistency) / sizeof(ct_consistency[0]); v++) {
        const struct consistency_vector *cv = &ct_consistency[v];
        merkle_hash want[3], got[MERKLE_MAX_PROOF], r1, r2;
        size_t len;

        for (size_t i = 0; i < cv->len; i++)
            from_hex(cv->proof[i], &want[i]);
        from_hex(ct_roots[cv->first], &r1);
        from_hex(ct_roots[cv->second], &r2);
        ct_store.limit = merkle_stored_count(cv->second);
        assert_int_equal(
            merkle_prove_consistency(cv->first, cv->second, store_read, &ct_store, got, &len),
            MERKLE_OK);
        assert_int_equal(len, cv->len);
        for (size_t i = 0; i < len; i++)
            assert_true(equal(&got[i], &want[i]));
        consistency_must_fail(cv->first, cv->second, &r1, &r2, want, cv->len);
    }
    ct_store.limit = UINT64_MAX;
}

/* The edge cases that published suites check beside the happy paths. */
static void test_edge_cases(void **state)
{
    merkle_hash a, b, proof[2], out[MERKLE_MAX_PROOF];
    size_t len;

    (void)state;
    memset(&a, 1, sizeof(a));
    memset(&b, 2, sizeof(b));
    proof[0] = a;
    /* inclusion: empty tree, index past the end, a one-leaf tree */
    assert_int_equal(merkle_verify_inclusion(0, 0, &a, NULL, 0, &a), MERKLE_RANGE);
    assert_int_equal(merkle_verify_inclusion(1, 1, &a, NULL, 0, &a), MERKLE_RANGE);
    assert_int_equal(merkle_verify_inclusion(2, 1, &a, NULL, 0, &a), MERKLE_RANGE);
    assert_int_equal(merkle_verify_inclusion(0, 1, &a, NULL, 0, &a), MERKLE_OK);
    assert_int_equal(merkle_verify_inclusion(0, 1, &a, NULL, 0, &b), MERKLE_PROOF);
    assert_int_equal(merkle_verify_inclusion(0, 1, &a, proof, 1, &a), MERKLE_PROOF);
    /* consistency: sizes out of order, from the empty tree, equal sizes */
    assert_int_equal(merkle_verify_consistency(1, 0, &a, &a, NULL, 0), MERKLE_RANGE);
    assert_int_equal(merkle_verify_consistency(2, 1, &a, &b, NULL, 0), MERKLE_RANGE);
    assert_int_equal(merkle_verify_consistency(0, 0, &a, &a, NULL, 0), MERKLE_RANGE);
    assert_int_equal(merkle_verify_consistency(0, 1, &a, &b, NULL, 0), MERKLE_RANGE);
    assert_int_equal(merkle_verify_consistency(0, 1, &a, &a, proof, 1), MERKLE_RANGE);
    assert_int_equal(merkle_verify_consistency(1, 1, &a, &a, NULL, 0), MERKLE_OK);
    assert_int_equal(merkle_verify_consistency(1, 1, &a, &b, NULL, 0), MERKLE_PROOF);
    assert_int_equal(merkle_verify_consistency(1, 1, &a, &a, proof, 1), MERKLE_PROOF);
    assert_int_equal(merkle_verify_consistency(1, 2, &a, &b, NULL, 0), MERKLE_PROOF);
    /* proofs longer than any tree has */
    assert_int_equal(merkle_verify_inclusion(0, 8, &a, out, MERKLE_MAX_PROOF + 1, &b),
                     MERKLE_RANGE);
    /* generation: out of range, and a failing reader */
    assert_int_equal(merkle_prove_inclusion(8, 8, store_read, &ct_store, out, &len), MERKLE_RANGE);
    assert_int_equal(merkle_prove_consistency(0, 8, store_read, &ct_store, out, &len),
                     MERKLE_RANGE);
    assert_int_equal(merkle_prove_consistency(5, 4, store_read, &ct_store, out, &len),
                     MERKLE_RANGE);
    assert_int_equal(merkle_prove_consistency(5, 5, failing_read, NULL, out, &len), MERKLE_OK);
    assert_int_equal(len, 0);
    assert_int_equal(merkle_prove_inclusion(3, 8, failing_read, NULL, out, &len), MERKLE_READ);
    assert_int_equal(merkle_tree_hash(8, failing_read, NULL, out), MERKLE_READ);
    assert_int_equal(merkle_tree_hash(MERKLE_MAX_SIZE, store_read, &ct_store, out), MERKLE_RANGE);
    assert_int_equal(merkle_tree_hash(0, failing_read, NULL, out), MERKLE_OK);
}

/* ---- stored-hash numbering ---- */

static void test_stored_index(void **state)
{
    unsigned level;
    uint64_t n;

    (void)state;
    /* the first leaves: 0:(0,0) 1:(0,1) 2:(1,0) 3:(0,2) 4:(0,3) 5:(1,1) 6:(2,0) 7:(0,4) */
    assert_int_equal(merkle_stored_index(0, 0), 0);
    assert_int_equal(merkle_stored_index(0, 1), 1);
    assert_int_equal(merkle_stored_index(1, 0), 2);
    assert_int_equal(merkle_stored_index(0, 2), 3);
    assert_int_equal(merkle_stored_index(1, 1), 5);
    assert_int_equal(merkle_stored_index(2, 0), 6);
    assert_int_equal(merkle_stored_index(0, 4), 7);
    assert_int_equal(merkle_stored_count(0), 0);
    assert_int_equal(merkle_stored_count(1), 1);
    assert_int_equal(merkle_stored_count(2), 3);
    assert_int_equal(merkle_stored_count(7), 11);
    assert_int_equal(merkle_stored_count(8), 15);
    /* split inverts index over the first 2^20 numbers and at the top of the range */
    for (uint64_t i = 0; i < (1u << 20); i++) {
        merkle_stored_split(i, &level, &n);
        if (merkle_stored_index(level, n) != i)
            fail_msg("split(%llu) = (%u, %llu)", (unsigned long long)i, level,
                     (unsigned long long)n);
    }
    for (uint64_t i = merkle_stored_count(MERKLE_MAX_SIZE - 1) - 100;
         i < merkle_stored_count(MERKLE_MAX_SIZE - 1); i++) {
        merkle_stored_split(i, &level, &n);
        assert_int_equal(merkle_stored_index(level, n), i);
    }
    merkle_stored_split(merkle_stored_index(62, 0), &level, &n);
    assert_int_equal(level, 62);
    assert_int_equal(n, 0);
}

/* ---- the reference: RFC 9162 section 2.1, recursively ---- */

static merkle_hash ref_leaves[MAX_LEAVES];

/* MTH(D[lo:hi]), memoised: the same ranges recur across all the trees. */
#define MEMO_SLOTS (1u << 15)
static struct memo {
    uint64_t lo, hi; /* hi == 0: empty slot */
    merkle_hash h;
} memo[MEMO_SLOTS];

static uint64_t largest_power_below(uint64_t n)
{
    uint64_t k = 1;
    while (k * 2 < n)
        k *= 2;
    return k;
}

static void ref_mth(uint64_t lo, uint64_t hi, merkle_hash *out)
{
    uint32_t slot = (uint32_t)((lo * 1000003u + hi) % MEMO_SLOTS);
    merkle_hash left, right;
    uint64_t k;

    if (hi - lo == 1) {
        *out = ref_leaves[lo];
        return;
    }
    while (memo[slot].hi != 0) {
        if (memo[slot].lo == lo && memo[slot].hi == hi) {
            *out = memo[slot].h;
            return;
        }
        slot = (slot + 1) % MEMO_SLOTS;
    }
    k = largest_power_below(hi - lo);
    ref_mth(lo, lo + k, &left);
    ref_mth(lo + k, hi, &right);
    merkle_node_hash(&left, &right, out);
    memo[slot].lo = lo;
    memo[slot].hi = hi;
    memo[slot].h = *out;
}

/* PATH(m, D[lo:hi]) */
static size_t ref_path(uint64_t m, uint64_t lo, uint64_t hi, merkle_hash *out)
{
    uint64_t k;
    size_t n;

    if (hi - lo == 1)
        return 0;
    k = largest_power_below(hi - lo);
    if (m < k) {
        n = ref_path(m, lo, lo + k, out);
        ref_mth(lo + k, hi, &out[n]);
    } else {
        n = ref_path(m - k, lo + k, hi, out);
        ref_mth(lo, lo + k, &out[n]);
    }
    return n + 1;
}

/* SUBPROOF(m, D[lo:hi], b) */
static size_t ref_subproof(uint64_t m, uint64_t lo, uint64_t hi, bool b, merkle_hash *out)
{
    uint64_t k;
    size_t n;

    if (m == hi - lo) {
        if (b)
            return 0;
        ref_mth(lo, hi, &out[0]);
        return 1;
    }
    k = largest_power_below(hi - lo);
    if (m <= k) {
        n = ref_subproof(m, lo, lo + k, b, out);
        ref_mth(lo + k, hi, &out[n]);
    } else {
        n = ref_subproof(m - k, lo + k, hi, false, out);
        ref_mth(lo, lo + k, &out[n]);
    }
    return n + 1;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t next_random(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void test_against_reference(void **state)
{
    merkle_hash *stored = calloc(2 * MAX_LEAVES, sizeof(merkle_hash));
    store s = {stored, 0, 0, 0};
    merkle_edge *edge = merkle_edge_new();
    uint64_t proofs = 0;

    (void)state;
    assert_non_null(stored);
    assert_non_null(edge);
    for (int i = 0; i < MAX_LEAVES; i++) {
        uint8_t data[48];
        size_t len = next_random() % sizeof(data);
        for (size_t j = 0; j < len; j++)
            data[j] = (uint8_t)next_random();
        merkle_leaf_hash(data, len, &ref_leaves[i]);
    }
    for (uint64_t n = 1; n <= MAX_LEAVES; n++) {
        merkle_hash want, got, edge_root;
        merkle_hash proof[MERKLE_MAX_PROOF], ref[MERKLE_MAX_PROOF];
        size_t len, ref_len;

        store_append(&s, edge, &ref_leaves[n - 1]);
        s.limit = merkle_stored_count(n);
        ref_mth(0, n, &want);
        merkle_edge_root(edge, &edge_root);
        assert_true(equal(&edge_root, &want));
        assert_int_equal(merkle_tree_hash(n, store_read, &s, &got), MERKLE_OK);
        assert_true(equal(&got, &want));

        for (uint64_t m = 0; m < n; m++) {
            assert_int_equal(merkle_prove_inclusion(m, n, store_read, &s, proof, &len), MERKLE_OK);
            ref_len = ref_path(m, 0, n, ref);
            assert_int_equal(len, ref_len);
            assert_memory_equal(proof, ref, len * sizeof(merkle_hash));
            assert_int_equal(merkle_verify_inclusion(m, n, &ref_leaves[m], proof, len, &want),
                             MERKLE_OK);
            if (m % 7 == 0 && m + 1 < n)
                assert_int_equal(
                    merkle_verify_inclusion(m + 1, n, &ref_leaves[m], proof, len, &want),
                    MERKLE_PROOF);
            proofs++;
        }
        for (uint64_t m = 1; m <= n; m++) {
            merkle_hash old_root;

            assert_int_equal(merkle_prove_consistency(m, n, store_read, &s, proof, &len),
                             MERKLE_OK);
            ref_len = ref_subproof(m, 0, n, true, ref);
            assert_int_equal(len, ref_len);
            assert_memory_equal(proof, ref, len * sizeof(merkle_hash));
            ref_mth(0, m, &old_root);
            assert_int_equal(merkle_verify_consistency(m, n, &old_root, &want, proof, len),
                             MERKLE_OK);
            if (m % 7 == 0 && m < n)
                assert_int_equal(merkle_verify_consistency(m, n, &want, &old_root, proof, len),
                                 MERKLE_PROOF);
            proofs++;
        }
    }
    /* About one read per proof or tree head, never more. */
    assert_true(s.reads <= proofs + MAX_LEAVES);
    free(stored);
    merkle_edge_free(edge);
}

/* An edge loaded from the store at any size continues exactly as one kept. */
static void test_edge_load_and_copy(void **state)
{
    merkle_hash *stored = calloc(2 * 300, sizeof(merkle_hash));
    store s = {stored, 0, UINT64_MAX, 0};
    merkle_edge *kept = merkle_edge_new(), *loaded = merkle_edge_new(), *saved = merkle_edge_new();
    merkle_hash leaf, a, b, out[MERKLE_MAX_WRITE];
    size_t count;

    (void)state;
    for (int i = 0; i < 300; i++) {
        memset(&leaf, 0, sizeof(leaf));
        leaf.bytes[0] = (uint8_t)i;
        leaf.bytes[1] = (uint8_t)(i >> 8);
        store_append(&s, kept, &leaf);
        assert_int_equal(merkle_edge_load(loaded, (uint64_t)i + 1, store_read, &s), MERKLE_OK);
        assert_int_equal(merkle_edge_size(loaded), (uint64_t)i + 1);
        merkle_edge_root(kept, &a);
        merkle_edge_root(loaded, &b);
        assert_true(equal(&a, &b));
    }
    /* a copy taken before appends restores the tree they changed */
    merkle_edge_copy(saved, kept);
    merkle_edge_append(kept, &leaf, out, &count, NULL);
    merkle_edge_root(kept, &a);
    merkle_edge_root(saved, &b);
    assert_false(equal(&a, &b));
    merkle_edge_copy(kept, saved);
    merkle_edge_root(kept, &a);
    assert_true(equal(&a, &b));
    assert_int_equal(merkle_edge_size(kept), 300);
    assert_int_equal(merkle_edge_load(loaded, 5, failing_read, NULL), MERKLE_READ);
    merkle_edge_free(kept);
    merkle_edge_free(loaded);
    merkle_edge_free(saved);
    merkle_edge_free(NULL);
    free(stored);
}

/* SHA-256(salt || event), checked against a value computed with Python's hashlib. */
static void test_commitment(void **state)
{
    uint8_t salt[MERKLE_SALT_LEN];
    merkle_hash c, want;

    (void)state;
    memset(salt, 0, sizeof(salt));
    merkle_commitment(salt, "{}", 2, &c);
    from_hex("fb1634c4e6cd4b1f1afe3ce2d6ef080f7ac5d1f357d723ad4dfca782733b62db", &want);
    assert_true(equal(&c, &want));
}

/* Plain SHA-256: FIPS 180-2's "abc" and a text longer than one block. */
static void test_sha256(void **state)
{
    merkle_hash h, want;
    char text[1000];

    (void)state;
    merkle_sha256("abc", 3, &h);
    from_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", &want);
    assert_true(equal(&h, &want));
    memset(text, 'a', sizeof text);
    merkle_sha256(text, sizeof text, &h);
    from_hex("41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3", &want);
    assert_true(equal(&h, &want));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_ct_roots, ct_setup),
        cmocka_unit_test_setup(test_ct_inclusion, ct_setup),
        cmocka_unit_test_setup(test_ct_consistency, ct_setup),
        cmocka_unit_test_setup(test_edge_cases, ct_setup),
        cmocka_unit_test(test_stored_index),
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_edge_load_and_copy),
        cmocka_unit_test(test_commitment),
        cmocka_unit_test(test_sha256),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
