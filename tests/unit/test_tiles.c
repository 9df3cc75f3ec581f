/*
 * tiles: the examples of C2SP tlog-tiles (the path of index 1234067, the
 * tiles of trees of 70,000 and 256 leaves), strict path parsing, and a
 * client that has nothing but tiles computing the same tree heads and
 * proofs as the log from its stored hashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/tiles.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void assert_path(int level, uint64_t index, unsigned width, const char *want)
{
    tiles_tile t = {level, index, width}, back;
    char path[TILES_PATH_MAX];

    assert_int_equal(tiles_path(&t, path), strlen(want));
    assert_string_equal(path, want);
    assert_true(tiles_parse_path(path, strlen(path), &back));
    assert_int_equal(back.level, level);
    assert_int_equal(back.index, index);
    assert_int_equal(back.width, width);
}

static void test_paths(void **state)
{
    (void)state;
    assert_path(0, 1234067, 256, "tile/0/x001/x234/067");
    assert_path(TILES_ENTRIES, 1234067, 256, "tile/entries/x001/x234/067");
    assert_path(0, 0, 256, "tile/0/000");
    assert_path(1, 0, 17, "tile/1/000.p/17");
    assert_path(2, 0, 1, "tile/2/000.p/1");
    assert_path(0, 273, 112, "tile/0/273.p/112");
    assert_path(TILES_ENTRIES, 273, 112, "tile/entries/273.p/112");
    assert_path(3, 1000, 255, "tile/3/x001/000.p/255");
    assert_path(63, 999, 256, "tile/63/999");
    assert_path(0, (UINT64_C(1) << 55) - 1, 256, "tile/0/x036/x028/x797/x018/x963/967");
}

static void test_path_refusals(void **state)
{
    static const char *const bad[] = {
        "",
        "tile",
        "tile/",
        "tile/0",
        "tile/0/",
        "tile/0/1234067",
        "tile/0/x001/x234/67",
        "tile/0/x001/x234/0677",
        "tile/00/000",
        "tile/01/000",
        "tile/64/000",
        "tile/-1/000",
        "tile/data/000",
        "tile/8/0/000",
        "tile/0/x000/001",
        "tile/0/x001",
        "tile/0/x001/",
        "tile/0/X001/002",
        "tile/0/001/002",
        "tile/0/000/",
        "tile//000",
        "/tile/0/000",
        "tile/0/000.p/256",
        "tile/0/000.p/0",
        "tile/0/000.p/012",
        "tile/0/000.p/",
        "tile/0/000.p/1x",
        "tile/0/000.p/1/",
        "tile/0/000.q/1",
        "tile/0/000p/1",
        "tile/entries/",
        "tile/entries/000.p/",
        "tile/entries/x000/000",
        "tile/0/x036/x028/x797/x018/x963/968",      /* past the largest tree */
        "tile/0/x999/x999/x999/x999/x999/x999/999", /* and far past */
        "tile/0/x1/x2/x3/x4/x5/x6/x7/x8/000",
    };
    tiles_tile t;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tiles_parse_path(bad[i], strlen(bad[i]), &t))
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* a NUL inside is not the end of the path */
    assert_false(tiles_parse_path("tile/0/000\0", 11, &t));
    /* writing refuses what is not a tile */
    {
        char path[TILES_PATH_MAX];
        tiles_tile w0 = {0, 0, 0}, w257 = {0, 0, 257}, l64 = {64, 0, 256}, lm2 = {-2, 0, 256};
        assert_int_equal(tiles_path(&w0, path), 0);
        assert_int_equal(tiles_path(&w257, path), 0);
        assert_int_equal(tiles_path(&l64, path), 0);
        assert_int_equal(tiles_path(&lm2, path), 0);
    }
}

static void test_widths(void **state)
{
    (void)state;
    assert_int_equal(tiles_width(0, 0, 0), 0);
    assert_int_equal(tiles_width(0, 0, 1), 1);
    assert_int_equal(tiles_width(0, 0, 256), 256);
    assert_int_equal(tiles_width(0, 1, 256), 0);
    assert_int_equal(tiles_width(1, 0, 256), 1);
    assert_int_equal(tiles_width(TILES_ENTRIES, 0, 300), 256);
    assert_int_equal(tiles_width(TILES_ENTRIES, 1, 300), 44);
    assert_int_equal(tiles_width(0, 272, 70000), 256);
    assert_int_equal(tiles_width(0, 273, 70000), 112);
    assert_int_equal(tiles_width(1, 0, 70000), 256);
    assert_int_equal(tiles_width(1, 1, 70000), 17);
    assert_int_equal(tiles_width(2, 0, 70000), 1);
    assert_int_equal(tiles_width(3, 0, 70000), 0);
    assert_int_equal(tiles_width(7, 0, MERKLE_MAX_SIZE - 1), 127);
    assert_int_equal(tiles_width(8, 0, MERKLE_MAX_SIZE - 1), 0);
    assert_int_equal(tiles_width(63, 0, MERKLE_MAX_SIZE - 1), 0);
}

/* The examples of the specification, from an empty tree. */
static void test_grown(void **state)
{
    tiles_tile t[300];
    size_t n;

    (void)state;
    n = tiles_grown(0, 70000, t, 300);
    assert_int_equal(n, 273 + 1 + 1 + 1 + 1);
    for (size_t i = 0; i < 273; i++) {
        assert_int_equal(t[i].level, 0);
        assert_int_equal(t[i].index, i);
        assert_int_equal(t[i].width, 256);
    }
    assert_true(t[273].level == 0 && t[273].index == 273 && t[273].width == 112);
    assert_true(t[274].level == 1 && t[274].index == 0 && t[274].width == 256);
    assert_true(t[275].level == 1 && t[275].index == 1 && t[275].width == 17);
    assert_true(t[276].level == 2 && t[276].index == 0 && t[276].width == 1);

    n = tiles_grown(0, 256, t, 300);
    assert_int_equal(n, 2);
    assert_true(t[0].level == 0 && t[0].index == 0 && t[0].width == 256);
    assert_true(t[1].level == 1 && t[1].index == 0 && t[1].width == 1);

    /* growing by a few leaves inside one tile changes only that partial tile */
    n = tiles_grown(70000, 70001, t, 300);
    assert_int_equal(n, 1);
    assert_true(t[0].level == 0 && t[0].index == 273 && t[0].width == 113);
    /* completing a tile changes the level above too */
    n = tiles_grown(70143, 70144, t, 300);
    assert_int_equal(n, 2);
    assert_true(t[0].level == 0 && t[0].index == 273 && t[0].width == 256);
    assert_true(t[1].level == 1 && t[1].index == 1 && t[1].width == 18);
    /* counting without room, and sizes in the wrong order */
    assert_int_equal(tiles_grown(0, 70000, NULL, 0), 277);
    assert_int_equal(tiles_grown(5, 4, t, 300), 0);
    assert_int_equal(tiles_grown(0, 0, t, 300), 0);
}

/* ---- a log and a client that sees only its tiles ---- */

#define TREE 70000

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

/* The client: fetches tiles of the published tree size from the log, as bytes. */
typedef struct tile_client {
    store *log;
    uint64_t size; /* the checkpoint's */
    size_t fetches;
} tile_client;

static int tile_client_read(void *ctx, const uint64_t *indexes, size_t count, merkle_hash *out)
{
    tile_client *c = ctx;

    for (size_t i = 0; i < count; i++) {
        uint8_t data[TILES_WIDTH * MERKLE_HASH_LEN];
        merkle_hash entries[TILES_WIDTH];
        tiles_tile tile;
        unsigned level, start, n, width;
        uint64_t idx;
        char path[TILES_PATH_MAX], back[TILES_PATH_MAX];

        merkle_stored_split(indexes[i], &level, &idx);
        tiles_locate(level, idx, &tile, &start, &n);
        /* fetch the tile the checkpoint's size publishes, by its path */
        width = tiles_width(tile.level, tile.index, c->size);
        if (width < tile.width)
            fail_msg("hash (%u, %llu) is not in the published tiles", level,
                     (unsigned long long)idx);
        tile.width = width;
        assert_true(tiles_path(&tile, path) > 0);
        assert_true(tiles_parse_path(path, strlen(path), &tile));
        assert_true(tiles_path(&tile, back) > 0);
        assert_string_equal(path, back);
        assert_int_equal(tiles_read(&tile, store_read, c->log, data), MERKLE_OK);
        c->fetches++;
        for (unsigned j = 0; j < n; j++)
            memcpy(entries[j].bytes, data + (size_t)(start + j) * MERKLE_HASH_LEN, MERKLE_HASH_LEN);
        merkle_root_of(entries, n, &out[i]);
    }
    return 0;
}

static void test_client_from_tiles(void **state)
{
    merkle_hash *hashes = calloc(2 * TREE, sizeof(merkle_hash));
    store log = {hashes, 0};
    merkle_edge *edge = merkle_edge_new();
    static const uint64_t sizes[] = {1, 2, 255, 256, 257, 511, 512, 65535, 65536, 65537, 70000};

    (void)state;
    assert_non_null(hashes);
    for (uint64_t i = 0; i < TREE; i++) {
        merkle_hash leaf, out[MERKLE_MAX_WRITE];
        uint8_t entry[8];
        size_t count;

        for (int b = 0; b < 8; b++)
            entry[b] = (uint8_t)(i >> (8 * b));
        merkle_leaf_hash(entry, sizeof(entry), &leaf);
        assert_int_equal(merkle_edge_append(edge, &leaf, out, &count, NULL), MERKLE_OK);
        memcpy(hashes + log.count, out, count * sizeof(merkle_hash));
        log.count += count;
    }
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        uint64_t n = sizes[s];
        tile_client client = {&log, n, 0};
        merkle_hash a, b, pa[MERKLE_MAX_PROOF], pb[MERKLE_MAX_PROOF];
        size_t la, lb;

        assert_int_equal(merkle_tree_hash(n, store_read, &log, &a), MERKLE_OK);
        assert_int_equal(merkle_tree_hash(n, tile_client_read, &client, &b), MERKLE_OK);
        assert_memory_equal(&a, &b, sizeof(a));
        for (uint64_t m = 0; m < n; m += 1 + n / 17) {
            assert_int_equal(merkle_prove_inclusion(m, n, store_read, &log, pa, &la), MERKLE_OK);
            assert_int_equal(merkle_prove_inclusion(m, n, tile_client_read, &client, pb, &lb),
                             MERKLE_OK);
            assert_int_equal(la, lb);
            assert_memory_equal(pa, pb, la * sizeof(merkle_hash));
            assert_int_equal(merkle_prove_consistency(m + 1, n, store_read, &log, pa, &la),
                             MERKLE_OK);
            assert_int_equal(merkle_prove_consistency(m + 1, n, tile_client_read, &client, pb, &lb),
                             MERKLE_OK);
            assert_int_equal(la, lb);
            assert_memory_equal(pa, pb, la * sizeof(merkle_hash));
        }
    }
    /* A level-1 tile is the roots of the level-0 tiles below it. */
    {
        tiles_tile l1 = {1, 0, 256}, l0 = {0, 7, 256};
        uint8_t d1[TILES_WIDTH * MERKLE_HASH_LEN], d0[TILES_WIDTH * MERKLE_HASH_LEN];
        merkle_hash root;

        assert_int_equal(tiles_read(&l1, store_read, &log, d1), MERKLE_OK);
        assert_int_equal(tiles_read(&l0, store_read, &log, d0), MERKLE_OK);
        merkle_root_of((const merkle_hash *)d0, TILES_WIDTH, &root);
        assert_memory_equal(d1 + 7 * MERKLE_HASH_LEN, root.bytes, MERKLE_HASH_LEN);
    }
    merkle_edge_free(edge);
    free(hashes);
}

static void test_bundles(void **state)
{
    uint8_t bundle[3 * (2 + 32)], entry[32];
    size_t used = 0, off = 0, len;
    const uint8_t *e;

    (void)state;
    for (int i = 0; i < 3; i++) {
        memset(entry, i, sizeof(entry));
        assert_true(tiles_bundle_add(bundle, sizeof(bundle), &used, entry, sizeof(entry)));
    }
    assert_false(tiles_bundle_add(bundle, sizeof(bundle), &used, entry, 1));
    assert_int_equal(used, sizeof(bundle));
    assert_int_equal(bundle[0], 0);
    assert_int_equal(bundle[1], 32);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tiles_bundle_next(bundle, used, &off, &e, &len), 1);
        assert_int_equal(len, 32);
        assert_int_equal(e[0], i);
    }
    assert_int_equal(tiles_bundle_next(bundle, used, &off, &e, &len), 0);
    off = 0;
    assert_int_equal(tiles_bundle_next(bundle, 33, &off, &e, &len), -1);
    off = 0;
    assert_int_equal(tiles_bundle_next(bundle, 1, &off, &e, &len), -1);
    {
        static uint8_t big[TILES_ENTRY_MAX + 3];
        size_t u = 0;
        assert_false(tiles_bundle_add(big, sizeof(big), &u, big, TILES_ENTRY_MAX + 1));
        assert_true(tiles_bundle_add(big, sizeof(big), &u, big + 2, TILES_ENTRY_MAX));
        assert_int_equal(big[0], 0xff);
        assert_int_equal(big[1], 0xff);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_path_refusals),
        cmocka_unit_test(test_widths),
        cmocka_unit_test(test_grown),
        cmocka_unit_test(test_client_from_tiles),
        cmocka_unit_test(test_bundles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
