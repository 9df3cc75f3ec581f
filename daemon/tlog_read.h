/*
 * tlog_read: the evidence log as the ledger stores it, read back: stored
 * hashes, tiles, checkpoints and proofs (docs/evidence.md).
 *
 * The ledger keeps the log's leaves (their commitments among them), the
 * tiles of hashes above level 0 and a checkpoint per batch (ledger.h).
 * Every stored hash of merkle.h is a fold of one tile's entries: hash (l, n)
 * is the root of 2^(l mod 8) consecutive entries of the tile at level l / 8
 * (tiles_locate()), the level-0 tile's entries being the leaves' hashes.
 * tlog_read_hashes() reads them so, as the merkle_read_fn of merkle.h, so
 * that tree heads and proofs are computed straight from the ledger.
 *
 * Every function reads through the handle it is given, on the caller's
 * thread (a ledger handle is one thread's at a time). Errors: 0 or -1 with
 * err set, for a person.
 */
#ifndef RECEIPT_DAEMON_TLOG_READ_H
#define RECEIPT_DAEMON_TLOG_READ_H

#include "common/compiler.h"
#include "common/merkle.h"
#include "common/tiles.h"
#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of the largest tile or entry bundle served. */
#define TLOG_READ_TILE_MAX (TILES_WIDTH * (2 + MERKLE_HASH_LEN))

/* A merkle_read_fn whose ctx is a ledger handle. */
int tlog_read_hashes(void *lg, const uint64_t *indexes, size_t count, merkle_hash *out);

/*
 * A tile or an entry bundle as tlog-tiles serves it, into out
 * (TLOG_READ_TILE_MAX bytes), *len bytes. Returns 1, 0 when the log does
 * not hold it (yet), or -1.
 */
WARN_UNUSED_RESULT int tlog_read_tile(ledger *lg, const tiles_tile *tile, uint8_t *out, size_t *len,
                                      char *err, size_t errlen);

/*
 * The newest checkpoint: its size and signed note (cap bytes). Returns 1,
 * 0 when the log has none yet, or -1.
 */
WARN_UNUSED_RESULT int tlog_read_latest(ledger *lg, uint64_t *size, char *note, size_t cap,
                                        char *err, size_t errlen);

/*
 * The proof of leaf in the tree of size leaves (its checkpoint stored), or,
 * with size 0, in the checkpoint of the batch that appended it: the leaf
 * (salt and event), the inclusion proof and the signed checkpoint. Returns
 * 0, or -1.
 */
WARN_UNUSED_RESULT int tlog_read_proof(ledger *lg, uint64_t leaf, uint64_t size, ledger_proof *out,
                                       char *err, size_t errlen);

/*
 * The leaf of a delivery's confirmation (confirmed or corrupted, or the row
 * as it stood when the log began once it was final). Returns 1 with *leaf
 * set, 0 when the log holds none, or -1.
 */
WARN_UNUSED_RESULT int tlog_read_confirmation_leaf(ledger *lg, const char *delivery, uint64_t *leaf,
                                                   char *err, size_t errlen);

#endif
