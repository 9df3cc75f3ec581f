/*
 * tiles: the arithmetic and the paths of C2SP tlog-tiles, tile height 8.
 *
 * A tile at level L, index N holds the hashes (8 L, N * 256 + i) of
 * merkle.h, i from 0 to its width - 1: at level 0 leaf hashes, at level L the
 * roots of the full tiles of level L - 1. A full tile is 256 hashes (8,192
 * bytes); the rightmost tile of a level may be partial, of the width
 * floor(size / 256^L) mod 256, and is then named with a ".p/W" suffix. An
 * entry bundle holds the entries whose leaf hashes make the level-0 tile of
 * the same index and width, each as a big-endian uint16 length and the
 * entry's bytes (for this log, 32-byte commitments).
 *
 * Paths, relative to the log's prefix:
 *
 *     tile/<L>/<N>[.p/<W>]          tile/entries/<N>[.p/<W>]
 *
 * with L in decimal (0 to 63), W in decimal (1 to 255), and N in groups of
 * three digits, every group but the last prefixed with "x" (1234067 is
 * x001/x234/067). Parsing is strict: only the one spelling this module
 * writes for a tile is accepted, so that every resource has one name.
 *
 * Nothing here allocates or reads; tiles_read() reads through the callback
 * of merkle.h.
 */
#ifndef RECEIPT_COMMON_TILES_H
#define RECEIPT_COMMON_TILES_H

#include "common/merkle.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TILES_HEIGHT    8
#define TILES_WIDTH     256  /* hashes in a full tile */
#define TILES_MAX_LEVEL 63   /* in paths; a tree of fewer than 2^63 leaves uses 0 .. 7 */
#define TILES_ENTRIES   (-1) /* the level of entry bundles */
#define TILES_PATH_MAX  64   /* bytes of the longest path, with the NUL */

typedef struct tiles_tile {
    int level;      /* 0 .. TILES_MAX_LEVEL, or TILES_ENTRIES */
    uint64_t index; /* N */
    unsigned width; /* 1 .. TILES_WIDTH; TILES_WIDTH for a full tile */
} tiles_tile;

/*
 * The path of a tile into out (TILES_PATH_MAX bytes, NUL-terminated); its
 * length, or 0 when the tile is not one (level, width out of range, or an
 * index beyond the largest tree).
 */
size_t tiles_path(const tiles_tile *tile, char out[TILES_PATH_MAX]);

/* Parses n bytes of a path as tiles_path() writes it; false if not exactly one. */
bool tiles_parse_path(const char *path, size_t n, tiles_tile *out);

/*
 * The width of tile (level, index) in the tree of size leaves: TILES_WIDTH
 * when full, 1 .. 255 when it is the partial rightmost one, 0 when the tree
 * does not have it. Entry bundles (TILES_ENTRIES) have their level-0 tile's.
 */
unsigned tiles_width(int level, uint64_t index, uint64_t size);

/*
 * The tiles that growing the tree from old_size to new_size leaves makes
 * exist: every full tile completed by the new leaves, then the partial tile
 * of each level at new_size, level by level from 0. Entry bundles are the
 * level-0 tiles. Writes at most cap into out and returns how many there are
 * (so cap 0 counts them).
 */
size_t tiles_grown(uint64_t old_size, uint64_t new_size, tiles_tile *out, size_t cap);

/*
 * The stored-hash numbers (merkle.h) of the hashes in a tile, width of them,
 * strictly increasing, into out (TILES_WIDTH entries). level >= 0.
 */
void tiles_hash_indexes(const tiles_tile *tile, uint64_t *out);

/*
 * Reads a tile's hashes (level >= 0) through read, in one call, into out
 * (tile->width * 32 bytes): the tile's content as served.
 */
merkle_result tiles_read(const tiles_tile *tile, merkle_read_fn read, void *ctx, uint8_t *out);

/*
 * Where stored hash (level, n) is found by a client that has only tiles: the
 * tile at level / 8 whose entries start .. start + count - 1 (count a power
 * of two up to 128, or 1) are the leaves of the subtree whose root it is; a
 * client folds them with merkle_root_of(). *tile's width is the least width
 * that holds them (a tile of that width or wider will do).
 */
void tiles_locate(unsigned level, uint64_t n, tiles_tile *tile, unsigned *start, unsigned *count);

/* ---- entry bundles ---- */

#define TILES_ENTRY_MAX 65535 /* bytes of one entry: the uint16 length */

/*
 * Appends one entry (len bytes, at most TILES_ENTRY_MAX) to a bundle being
 * built in out (cap bytes, *used of them used). false when it does not fit.
 */
bool tiles_bundle_add(uint8_t *out, size_t cap, size_t *used, const uint8_t *entry, size_t len);

/*
 * Splits a bundle: the entry at *offset into *entry / *len (borrowed from
 * data), then advances *offset. Returns 1 for an entry, 0 at the clean end of
 * the bundle, -1 when the bundle is truncated.
 */
int tiles_bundle_next(const uint8_t *data, size_t n, size_t *offset, const uint8_t **entry,
                      size_t *len);

#endif
