/*
 * merkle: the Merkle tree of RFC 9162 (and RFC 6962) with SHA-256, as an
 * append-only log keeps it.
 *
 * Hashes. A leaf's hash is SHA-256(0x00 || entry), an interior node's
 * SHA-256(0x01 || left || right); the tree of n leaves splits at the largest
 * power of two below n; the empty tree's hash is SHA-256 of nothing. The log's
 * entries are 32-byte commitments, SHA-256(salt || canonical event), so that
 * the public tree reveals nothing of the events it commits to.
 *
 * Stored hashes. A log keeps the hash of every complete subtree, and nothing
 * else: the subtree of 2^l leaves starting at leaf n * 2^l, "hash (l, n)",
 * for every one that a tree of the current size contains in full. They are
 * numbered in the order in which appends complete them: appending leaf i
 * writes its leaf hash (0, i) and then, bottom up, the hash of every subtree
 * that leaf i completes, (l, ((i + 1) >> l) - 1) for l = 1 .. t where t is the
 * number of trailing one bits of i. So each append writes a contiguous run of
 * 1 + t hashes at the end, and a tree of n leaves has stored
 *
 *     merkle_stored_count(n) = sum over i < n of (1 + t(i)) = 2n - popcount(n)
 *
 * hashes: two per leaf, less one per one bit of n. Hash (l, n) completes with
 * leaf i = ((n + 1) << l) - 1, after that leaf's own hash and the l - 1 hashes
 * below it, so its number is
 *
 *     merkle_stored_index(l, n) = merkle_stored_count(i) + l.
 *
 * (This is the numbering of Go's golang.org/x/mod/sumdb/tlog, so that a
 * store written by one can be read by the other.) Every hash a tree head or
 * a proof needs is a stored hash or a fold of stored hashes, and a tile of
 * C2SP tlog-tiles is a run of them (see tiles.h).
 *
 * Reading. Tree heads and proofs read stored hashes through a callback, in
 * one batch per call, so that a database backend answers each with one
 * query. Appends need no reads at all once a merkle_edge (the hashes of the
 * complete subtrees along the tree's right edge, at most 64) is loaded.
 *
 * Limits: trees of fewer than 2^63 leaves (MERKLE_MAX_SIZE); proofs of at
 * most MERKLE_MAX_PROOF hashes. Nothing on the hashing paths allocates:
 * SHA-256 runs on the stack (OpenSSL 3.0 re-creates the provider context of
 * an EVP_MD_CTX on every EVP_DigestInit, one allocation per node).
 * Everything is thread-safe; a merkle_edge is used by one thread at a time.
 */
#ifndef RECEIPT_COMMON_MERKLE_H
#define RECEIPT_COMMON_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH_LEN  32
#define MERKLE_SALT_LEN  32
#define MERKLE_MAX_SIZE  (UINT64_C(1) << 63) /* trees hold fewer leaves */
#define MERKLE_MAX_PROOF 64                  /* hashes in any proof */
#define MERKLE_MAX_EDGE  64                  /* complete subtrees on the right edge */
#define MERKLE_MAX_WRITE 64                  /* hashes stored by one append */
#define MERKLE_MAX_READ  256                 /* indexes in one read callback */

typedef struct merkle_hash {
    uint8_t bytes[MERKLE_HASH_LEN];
} merkle_hash;

typedef enum merkle_result {
    MERKLE_OK = 0,
    MERKLE_RANGE, /* an index or size out of range, or sizes in the wrong order */
    MERKLE_READ,  /* the read callback failed                                   */
    MERKLE_PROOF, /* the proof does not prove the claim                         */
    MERKLE_NOMEM,
} merkle_result;

const char *merkle_result_str(merkle_result r);

/* ---- hashes ---- */

/* SHA-256(0x00 || data). */
void merkle_leaf_hash(const uint8_t *data, size_t n, merkle_hash *out);

/* SHA-256(0x01 || left || right). out may alias left or right. */
void merkle_node_hash(const merkle_hash *left, const merkle_hash *right, merkle_hash *out);

/* The root of the empty tree, SHA-256 of the empty string. */
void merkle_empty_root(merkle_hash *out);

/*
 * Plain SHA-256 of n bytes, for the digests the log's events name (a
 * receipt's): without the digest lookup by name that OpenSSL 3's one-shot
 * SHA256() does on every call, which costs more than hashing a receipt.
 */
void merkle_sha256(const void *data, size_t n, merkle_hash *out);

/*
 * A log entry: SHA-256(salt || event), event being the canonical JSON text
 * (RFC 8785) of the ledger event, n bytes.
 */
void merkle_commitment(const uint8_t salt[MERKLE_SALT_LEN], const char *event, size_t n,
                       merkle_hash *out);

/*
 * The root of a tree whose leaves' hashes (or whose complete subtrees'
 * hashes, all of one size) are the count hashes given, count > 0: the
 * Merkle tree hash built over them as RFC 9162 builds it over leaves.
 */
void merkle_root_of(const merkle_hash *hashes, size_t count, merkle_hash *out);

/* ---- stored hashes ---- */

/* Hashes stored for a tree of size leaves: 2 size - popcount(size). */
uint64_t merkle_stored_count(uint64_t size);

/* The number of stored hash (level, n); level <= 63, ((n + 1) << level) <= 2^63. */
uint64_t merkle_stored_index(unsigned level, uint64_t n);

/* The inverse: which hash (level, n) is stored as number index. */
void merkle_stored_split(uint64_t index, unsigned *level, uint64_t *n);

/*
 * Reads count (1 .. MERKLE_MAX_READ) stored hashes, by number, into out, in
 * the order given; the numbers are strictly increasing. Returns 0, or
 * non-zero when a hash cannot be read (which the caller sees as MERKLE_READ).
 */
typedef int (*merkle_read_fn)(void *ctx, const uint64_t *indexes, size_t count, merkle_hash *out);

/* The root of the tree of size leaves (the empty root for 0); one read. */
merkle_result merkle_tree_hash(uint64_t size, merkle_read_fn read, void *ctx, merkle_hash *out);

/*
 * The inclusion proof of leaf index in the tree of size leaves (RFC 9162
 * section 2.1.3.1), bottom up, into proof (MERKLE_MAX_PROOF entries); one
 * read. MERKLE_RANGE unless index < size.
 */
merkle_result merkle_prove_inclusion(uint64_t index, uint64_t size, merkle_read_fn read, void *ctx,
                                     merkle_hash *proof, size_t *len);

/*
 * The consistency proof from the tree of first leaves to that of second
 * leaves (RFC 9162 section 2.1.4.1), into proof (MERKLE_MAX_PROOF entries);
 * one read, none when first == second (the proof is empty). MERKLE_RANGE
 * unless 0 < first <= second.
 */
merkle_result merkle_prove_consistency(uint64_t first, uint64_t second, merkle_read_fn read,
                                       void *ctx, merkle_hash *proof, size_t *len);

/* ---- verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) ---- */

/*
 * MERKLE_OK when proof (len hashes) proves that leaf (a leaf hash) is leaf
 * index of the tree of size leaves whose root is root; MERKLE_RANGE when
 * index >= size or len > MERKLE_MAX_PROOF; MERKLE_PROOF otherwise.
 */
merkle_result merkle_verify_inclusion(uint64_t index, uint64_t size, const merkle_hash *leaf,
                                      const merkle_hash *proof, size_t len,
                                      const merkle_hash *root);

/*
 * MERKLE_OK when proof proves that the tree of first leaves with root
 * first_root is a prefix of the tree of second leaves with root second_root.
 * first == second needs an empty proof and equal roots. MERKLE_RANGE unless
 * 0 < first <= second (nothing is proved about the empty tree: every tree
 * extends it) and len <= MERKLE_MAX_PROOF; MERKLE_PROOF otherwise.
 */
merkle_result merkle_verify_consistency(uint64_t first, uint64_t second,
                                        const merkle_hash *first_root,
                                        const merkle_hash *second_root, const merkle_hash *proof,
                                        size_t len);

/* ---- appending ---- */

/*
 * The right edge of a tree: the hashes of its complete subtrees, largest
 * first, one per one bit of its size; all that an append needs.
 */
typedef struct merkle_edge merkle_edge;

/* The edge of the empty tree; NULL when out of memory. */
merkle_edge *merkle_edge_new(void);
void merkle_edge_free(merkle_edge *edge);

/* Makes dst a copy of src (to roll back appends whose transaction failed). */
void merkle_edge_copy(merkle_edge *dst, const merkle_edge *src);

/* Loads the edge of the stored tree of size leaves; one read. */
merkle_result merkle_edge_load(merkle_edge *edge, uint64_t size, merkle_read_fn read, void *ctx);

uint64_t merkle_edge_size(const merkle_edge *edge);

/*
 * The edge's complete subtrees, largest first: their hashes into hashes and
 * their stored-hash numbers into indexes (MERKLE_MAX_EDGE entries each);
 * returns how many (popcount of the size).
 */
size_t merkle_edge_subtrees(const merkle_edge *edge, merkle_hash *hashes, uint64_t *indexes);

/* The root of the tree the edge ends (the empty root for size 0). */
void merkle_edge_root(const merkle_edge *edge, merkle_hash *out);

/*
 * Appends the leaf whose hash is leaf. out (MERKLE_MAX_WRITE entries)
 * receives the hashes to store, *count of them (1 + the trailing one bits of
 * the old size), numbered from merkle_stored_count(old size) on, which
 * *first (when not NULL) receives: the leaf hash, then each subtree it
 * completes. MERKLE_RANGE when the tree is full (MERKLE_MAX_SIZE - 1 leaves).
 */
merkle_result merkle_edge_append(merkle_edge *edge, const merkle_hash *leaf, merkle_hash *out,
                                 size_t *count, uint64_t *first);

#endif
