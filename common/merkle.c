/*
 * SHA-256 through the low-level interface: OpenSSL 3.0's EVP_DigestInit_ex2()
 * frees and re-allocates the provider context on every call, which is one
 * allocation per node on paths that hash millions of nodes. The SHA256_CTX
 * functions work on the stack and are a third faster. They are deprecated in
 * OpenSSL 3 but present in every 3.x release.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "common/merkle.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

struct merkle_edge {
    uint64_t size;
    merkle_hash hashes[MERKLE_MAX_EDGE]; /* popcount(size) of them, largest first */
};

const char *merkle_result_str(merkle_result r)
{
    switch (r) {
    case MERKLE_OK:
        return "ok";
    case MERKLE_RANGE:
        return "index or tree size out of range";
    case MERKLE_READ:
        return "a stored hash could not be read";
    case MERKLE_PROOF:
        return "the proof does not verify";
    case MERKLE_NOMEM:
        return "out of memory";
    }
    return "unknown error";
}

/* ---- hashes ---- */

void merkle_leaf_hash(const uint8_t *data, size_t n, merkle_hash *out)
{
    static const uint8_t prefix = 0x00;
    SHA256_CTX c;

    SHA256_Init(&c);
    SHA256_Update(&c, &prefix, 1);
    SHA256_Update(&c, data, n);
    SHA256_Final(out->bytes, &c);
}

void merkle_node_hash(const merkle_hash *left, const merkle_hash *right, merkle_hash *out)
{
    uint8_t block[1 + 2 * MERKLE_HASH_LEN];
    SHA256_CTX c;

    block[0] = 0x01;
    memcpy(block + 1, left->bytes, MERKLE_HASH_LEN);
    memcpy(block + 1 + MERKLE_HASH_LEN, right->bytes, MERKLE_HASH_LEN);
    SHA256_Init(&c);
    SHA256_Update(&c, block, sizeof(block));
    SHA256_Final(out->bytes, &c);
}

void merkle_empty_root(merkle_hash *out)
{
    SHA256_CTX c;

    SHA256_Init(&c);
    SHA256_Final(out->bytes, &c);
}

void merkle_sha256(const void *data, size_t n, merkle_hash *out)
{
    SHA256_CTX c;

    SHA256_Init(&c);
    SHA256_Update(&c, data, n);
    SHA256_Final(out->bytes, &c);
}

void merkle_commitment(const uint8_t salt[MERKLE_SALT_LEN], const char *event, size_t n,
                       merkle_hash *out)
{
    SHA256_CTX c;

    SHA256_Init(&c);
    SHA256_Update(&c, salt, MERKLE_SALT_LEN);
    SHA256_Update(&c, event, n);
    SHA256_Final(out->bytes, &c);
}

/* ---- bits ---- */

static unsigned popcount64(uint64_t x)
{
    return (unsigned)__builtin_popcountll(x);
}

/* Trailing one bits of x. */
static unsigned trailing_ones(uint64_t x)
{
    return ~x == 0 ? 64 : (unsigned)__builtin_ctzll(~x);
}

/* The largest power of two strictly below n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
    return UINT64_C(1) << (63 - __builtin_clzll(n - 1));
}

/* ---- folding complete subtrees ---- */

/*
 * The hashes of complete subtrees, left to right, folded into one root the
 * way RFC 9162 builds a tree: the right-most pair first. For the subtrees of
 * a range, largest first (as from merkle_edge or decompose()).
 */
static void fold_right(const merkle_hash *hashes, size_t count, merkle_hash *out)
{
    merkle_hash acc = hashes[count - 1];

    for (size_t i = count - 1; i-- > 0;)
        merkle_node_hash(&hashes[i], &acc, &acc);
    *out = acc;
}

void merkle_root_of(const merkle_hash *hashes, size_t count, merkle_hash *out)
{
    /* An edge over the given hashes, appended one at a time. */
    merkle_hash stack[MERKLE_MAX_EDGE];
    size_t depth = 0;

    for (uint64_t i = 0; i < count; i++) {
        merkle_hash cur = hashes[i];
        for (uint64_t s = i; s & 1; s >>= 1)
            merkle_node_hash(&stack[--depth], &cur, &cur);
        stack[depth++] = cur;
    }
    fold_right(stack, depth, out);
}

/* ---- stored hashes ---- */

uint64_t merkle_stored_count(uint64_t size)
{
    return 2 * size - popcount64(size);
}

uint64_t merkle_stored_index(unsigned level, uint64_t n)
{
    uint64_t last_leaf = ((n + 1) << level) - 1;
    return merkle_stored_count(last_leaf) + level;
}

void merkle_stored_split(uint64_t index, unsigned *level, uint64_t *n)
{
    /*
     * The leaf whose append wrote hash number index is the largest i with
     * merkle_stored_count(i) <= index. Since 2i - 64 <= count(i) <= 2i, it
     * lies in [index / 2, index / 2 + 32]; count() is strictly increasing.
     */
    uint64_t lo = index / 2, hi = index / 2 + 33;

    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (merkle_stored_count(mid) <= index)
            lo = mid;
        else
            hi = mid;
    }
    *level = (unsigned)(index - merkle_stored_count(lo));
    *n = ((lo + 1) >> *level) - 1;
}

/*
 * The complete subtrees that make up leaves [lo, hi), largest first, as
 * stored-hash numbers. Every range a tree head or a proof names starts at a
 * multiple of its largest subtree, so the binary digits of its width give
 * the subtrees. Returns how many (at most 64).
 */
static size_t decompose(uint64_t lo, uint64_t hi, uint64_t *indexes)
{
    size_t k = 0;

    while (lo < hi) {
        unsigned level = 63 - (unsigned)__builtin_clzll(hi - lo);
        indexes[k++] = merkle_stored_index(level, lo >> level);
        lo += UINT64_C(1) << level;
    }
    return k;
}

/* ---- reading plans ---- */

/*
 * A proof names up to MERKLE_MAX_PROOF ranges of leaves whose roots it
 * carries. All but one are complete subtrees: only the sibling met where the
 * path leaves the tree's right edge can be incomplete, and it has at most 63
 * subtrees. So a proof reads at most 64 + 63 stored hashes.
 */
#define PLAN_MAX (MERKLE_MAX_PROOF + MERKLE_MAX_EDGE)

typedef struct plan {
    uint64_t lo[MERKLE_MAX_PROOF], hi[MERKLE_MAX_PROOF];
    size_t ranges;
    uint64_t need[PLAN_MAX]; /* stored-hash numbers, sorted and unique after sort_unique() */
    size_t count;
} plan;

static void plan_range(plan *p, uint64_t lo, uint64_t hi)
{
    p->lo[p->ranges] = lo;
    p->hi[p->ranges] = hi;
    p->ranges++;
    p->count += decompose(lo, hi, p->need + p->count);
}

static void sort_unique(uint64_t *v, size_t *count)
{
    size_t n = *count, out = 0;

    for (size_t i = 1; i < n; i++) { /* insertion sort: at most 127, mostly in order */
        uint64_t x = v[i];
        size_t j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
    for (size_t i = 0; i < n; i++) {
        if (out == 0 || v[out - 1] != v[i])
            v[out++] = v[i];
    }
    *count = out;
}

static const merkle_hash *lookup(const uint64_t *sorted, const merkle_hash *values, size_t count,
                                 uint64_t index)
{
    size_t lo = 0, hi = count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sorted[mid] < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return &values[lo]; /* present: every looked-up number was read */
}

/* Reads what the plan needs, then writes the root of each range into out. */
static merkle_result plan_run(plan *p, merkle_read_fn read, void *ctx, merkle_hash *out)
{
    merkle_hash values[PLAN_MAX];
    uint64_t sorted[PLAN_MAX];
    size_t count = p->count;

    if (count == 0)
        return MERKLE_OK;
    memcpy(sorted, p->need, count * sizeof(sorted[0]));
    sort_unique(sorted, &count);
    if (read(ctx, sorted, count, values) != 0)
        return MERKLE_READ;
    for (size_t r = 0; r < p->ranges; r++) {
        uint64_t idx[MERKLE_MAX_EDGE];
        merkle_hash sub[MERKLE_MAX_EDGE];
        size_t k = decompose(p->lo[r], p->hi[r], idx);

        for (size_t i = 0; i < k; i++)
            sub[i] = *lookup(sorted, values, count, idx[i]);
        fold_right(sub, k, &out[r]);
    }
    return MERKLE_OK;
}

merkle_result merkle_tree_hash(uint64_t size, merkle_read_fn read, void *ctx, merkle_hash *out)
{
    plan p = {.ranges = 0, .count = 0};

    if (size >= MERKLE_MAX_SIZE)
        return MERKLE_RANGE;
    if (size == 0) {
        merkle_empty_root(out);
        return MERKLE_OK;
    }
    plan_range(&p, 0, size);
    return plan_run(&p, read, ctx, out);
}

/* The walks go from the root down; proofs list hashes from the leaf up. */
static void plan_reverse(plan *p)
{
    for (size_t i = 0; i < p->ranges / 2; i++) {
        size_t j = p->ranges - 1 - i;
        uint64_t lo = p->lo[i], hi = p->hi[i];
        p->lo[i] = p->lo[j];
        p->hi[i] = p->hi[j];
        p->lo[j] = lo;
        p->hi[j] = hi;
    }
}

merkle_result merkle_prove_inclusion(uint64_t index, uint64_t size, merkle_read_fn read, void *ctx,
                                     merkle_hash *proof, size_t *len)
{
    plan p = {.ranges = 0, .count = 0};
    uint64_t lo = 0, hi = size;
    merkle_result r;

    *len = 0;
    if (size >= MERKLE_MAX_SIZE || index >= size)
        return MERKLE_RANGE;
    /* PATH(m, D[lo:hi]): the sibling at each level, from the root down. */
    while (hi - lo > 1) {
        uint64_t k = split_point(hi - lo);
        if (index < lo + k) {
            plan_range(&p, lo + k, hi);
            hi = lo + k;
        } else {
            plan_range(&p, lo, lo + k);
            lo += k;
        }
    }
    plan_reverse(&p);
    r = plan_run(&p, read, ctx, proof);
    if (r == MERKLE_OK)
        *len = p.ranges;
    return r;
}

merkle_result merkle_prove_consistency(uint64_t first, uint64_t second, merkle_read_fn read,
                                       void *ctx, merkle_hash *proof, size_t *len)
{
    plan p = {.ranges = 0, .count = 0};
    uint64_t lo = 0, hi = second;
    bool whole = true; /* SUBPROOF's b: still on the path of the old tree's root */
    merkle_result r;

    *len = 0;
    if (second >= MERKLE_MAX_SIZE || first == 0 || first > second)
        return MERKLE_RANGE;
    if (first == second)
        return MERKLE_OK;
    /* SUBPROOF(m, D[lo:hi], b), unrolled: siblings from the top down. */
    for (;;) {
        uint64_t k;

        if (first == hi) {
            if (!whole)
                plan_range(&p, lo, hi);
            break;
        }
        k = split_point(hi - lo);
        if (first - lo <= k) {
            plan_range(&p, lo + k, hi);
            hi = lo + k;
        } else {
            plan_range(&p, lo, lo + k);
            lo += k;
            whole = false;
        }
    }
    plan_reverse(&p);
    r = plan_run(&p, read, ctx, proof);
    if (r == MERKLE_OK)
        *len = p.ranges;
    return r;
}

/* ---- verification ---- */

static bool same_hash(const merkle_hash *a, const merkle_hash *b)
{
    return memcmp(a->bytes, b->bytes, MERKLE_HASH_LEN) == 0;
}

merkle_result merkle_verify_inclusion(uint64_t index, uint64_t size, const merkle_hash *leaf,
                                      const merkle_hash *proof, size_t len, const merkle_hash *root)
{
    uint64_t fn = index, sn;
    merkle_hash r = *leaf;

    if (index >= size || size >= MERKLE_MAX_SIZE || len > MERKLE_MAX_PROOF)
        return MERKLE_RANGE;
    sn = size - 1;
    for (size_t i = 0; i < len; i++) {
        if (sn == 0)
            return MERKLE_PROOF;
        if ((fn & 1) || fn == sn) {
            merkle_node_hash(&proof[i], &r, &r);
            if (!(fn & 1)) {
                while (fn != 0 && !(fn & 1)) {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            merkle_node_hash(&r, &proof[i], &r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && same_hash(&r, root) ? MERKLE_OK : MERKLE_PROOF;
}

merkle_result merkle_verify_consistency(uint64_t first, uint64_t second,
                                        const merkle_hash *first_root,
                                        const merkle_hash *second_root, const merkle_hash *proof,
                                        size_t len)
{
    uint64_t fn, sn;
    merkle_hash fr, sr;
    size_t i;

    if (first == 0 || first > second || second >= MERKLE_MAX_SIZE || len > MERKLE_MAX_PROOF)
        return MERKLE_RANGE;
    if (first == second)
        return len == 0 && same_hash(first_root, second_root) ? MERKLE_OK : MERKLE_PROOF;
    if (len == 0)
        return MERKLE_PROOF;
    /*
     * When first is a power of two the old root is a node of the new tree and
     * the proof leaves it out: it stands in as the proof's first hash.
     */
    fn = first - 1;
    sn = second - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    if ((first & (first - 1)) == 0) {
        fr = sr = *first_root;
        i = 0;
    } else {
        fr = sr = proof[0];
        i = 1;
    }
    for (; i < len; i++) {
        if (sn == 0)
            return MERKLE_PROOF;
        if ((fn & 1) || fn == sn) {
            merkle_node_hash(&proof[i], &fr, &fr);
            merkle_node_hash(&proof[i], &sr, &sr);
            if (!(fn & 1)) {
                while (fn != 0 && !(fn & 1)) {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            merkle_node_hash(&sr, &proof[i], &sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && same_hash(&fr, first_root) && same_hash(&sr, second_root) ? MERKLE_OK
                                                                                : MERKLE_PROOF;
}

/* ---- appending ---- */

merkle_edge *merkle_edge_new(void)
{
    return calloc(1, sizeof(merkle_edge));
}

void merkle_edge_free(merkle_edge *edge)
{
    free(edge);
}

void merkle_edge_copy(merkle_edge *dst, const merkle_edge *src)
{
    if (dst != src)
        memcpy(dst, src, sizeof(*dst));
}

uint64_t merkle_edge_size(const merkle_edge *edge)
{
    return edge->size;
}

merkle_result merkle_edge_load(merkle_edge *edge, uint64_t size, merkle_read_fn read, void *ctx)
{
    uint64_t indexes[MERKLE_MAX_EDGE];
    size_t k;

    if (size >= MERKLE_MAX_SIZE)
        return MERKLE_RANGE;
    k = decompose(0, size, indexes);
    if (k > 0 && read(ctx, indexes, k, edge->hashes) != 0)
        return MERKLE_READ;
    edge->size = size;
    return MERKLE_OK;
}

void merkle_edge_root(const merkle_edge *edge, merkle_hash *out)
{
    if (edge->size == 0)
        merkle_empty_root(out);
    else
        fold_right(edge->hashes, popcount64(edge->size), out);
}

size_t merkle_edge_subtrees(const merkle_edge *edge, merkle_hash *hashes, uint64_t *indexes)
{
    size_t n = 0;
    for (unsigned l = 64; l-- > 0;) {
        if ((edge->size >> l & 1) == 0)
            continue;
        hashes[n] = edge->hashes[n];
        indexes[n] = merkle_stored_index(l, (edge->size >> l) - 1);
        n++;
    }
    return n;
}

merkle_result merkle_edge_append(merkle_edge *edge, const merkle_hash *leaf, merkle_hash *out,
                                 size_t *count, uint64_t *first)
{
    unsigned depth = popcount64(edge->size);
    merkle_hash cur = *leaf;
    size_t n = 0;

    if (edge->size >= MERKLE_MAX_SIZE - 1)
        return MERKLE_RANGE;
    if (first != NULL)
        *first = merkle_stored_count(edge->size);
    out[n++] = cur;
    /* Each trailing one bit of the size is a subtree that the new leaf completes. */
    for (unsigned t = trailing_ones(edge->size); t > 0; t--) {
        merkle_node_hash(&edge->hashes[--depth], &cur, &cur);
        out[n++] = cur;
    }
    edge->hashes[depth] = cur;
    edge->size++;
    *count = n;
    return MERKLE_OK;
}
