#include "common/tiles.h"

#include <stdio.h>
#include <string.h>

/* Tile indexes: a full level-0 tile past the largest tree does not exist. */
#define TILES_MAX_INDEX ((MERKLE_MAX_SIZE >> TILES_HEIGHT) - 1)

static bool tile_valid(const tiles_tile *t)
{
    return t->level >= TILES_ENTRIES && t->level <= TILES_MAX_LEVEL && t->width >= 1 &&
           t->width <= TILES_WIDTH && t->index <= TILES_MAX_INDEX;
}

size_t tiles_path(const tiles_tile *tile, char out[TILES_PATH_MAX])
{
    char groups[8][4];
    size_t ngroups = 0, o;
    uint64_t n = tile->index;
    int w;

    if (!tile_valid(tile)) {
        out[0] = '\0';
        return 0;
    }
    do {
        snprintf(groups[ngroups++], sizeof(groups[0]), "%03u", (unsigned)(n % 1000));
        n /= 1000;
    } while (n > 0);
    if (tile->level == TILES_ENTRIES)
        w = snprintf(out, TILES_PATH_MAX, "tile/entries/");
    else
        w = snprintf(out, TILES_PATH_MAX, "tile/%d/", tile->level);
    o = (size_t)w;
    while (ngroups > 1) {
        memcpy(out + o, "x", 1);
        memcpy(out + o + 1, groups[--ngroups], 3);
        out[o + 4] = '/';
        o += 5;
    }
    memcpy(out + o, groups[0], 3);
    o += 3;
    out[o] = '\0';
    if (tile->width < TILES_WIDTH)
        o += (size_t)snprintf(out + o, TILES_PATH_MAX - o, ".p/%u", tile->width);
    return o;
}

/* A decimal of 1 to maxdigits digits without a leading zero (but "0" itself). */
static bool parse_decimal(const char **p, const char *end, unsigned maxdigits, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    unsigned d = 0;

    while (s < end && *s >= '0' && *s <= '9' && d <= maxdigits) {
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
        d++;
    }
    if (d == 0 || d > maxdigits || (d > 1 && **p == '0'))
        return false;
    *p = s;
    *out = v;
    return true;
}

bool tiles_parse_path(const char *path, size_t n, tiles_tile *out)
{
    const char *p = path, *end = path + n;
    tiles_tile t = {0, 0, TILES_WIDTH};
    size_t groups = 0;
    uint64_t v;

    if (n < 5 || memcmp(p, "tile/", 5) != 0)
        return false;
    p += 5;
    if ((size_t)(end - p) >= 8 && memcmp(p, "entries/", 8) == 0) {
        t.level = TILES_ENTRIES;
        p += 8;
    } else {
        if (!parse_decimal(&p, end, 2, &v) || v > TILES_MAX_LEVEL || p == end || *p != '/')
            return false;
        t.level = (int)v;
        p++;
    }
    /* x ddd / x ddd / ... / ddd */
    for (;;) {
        bool more = p < end && *p == 'x';
        unsigned g = 0;

        if (more)
            p++;
        if (end - p < 3)
            return false;
        for (int i = 0; i < 3; i++) {
            if (p[i] < '0' || p[i] > '9')
                return false;
            g = g * 10 + (unsigned)(p[i] - '0');
        }
        p += 3;
        if (groups == 0 && more && g == 0)
            return false; /* a leading x000 group: not the one spelling */
        if (++groups > 7 || t.index > (UINT64_MAX - g) / 1000)
            return false;
        t.index = t.index * 1000 + g;
        if (!more)
            break;
        if (p == end || *p != '/')
            return false;
        p++;
    }
    if (p < end) {
        if (end - p < 4 || memcmp(p, ".p/", 3) != 0)
            return false;
        p += 3;
        if (!parse_decimal(&p, end, 3, &v) || v == 0 || v >= TILES_WIDTH)
            return false;
        t.width = (unsigned)v;
    }
    if (p != end || !tile_valid(&t))
        return false;
    *out = t;
    return true;
}

/* Hashes that a tree of size leaves has at tile level level (hash level 8 level). */
static uint64_t hashes_at(int level, uint64_t size)
{
    unsigned shift;

    if (level == TILES_ENTRIES)
        level = 0;
    shift = (unsigned)level * TILES_HEIGHT;
    return shift >= 64 ? 0 : size >> shift;
}

unsigned tiles_width(int level, uint64_t index, uint64_t size)
{
    uint64_t hashes;

    if (level < TILES_ENTRIES || level > TILES_MAX_LEVEL || size >= MERKLE_MAX_SIZE)
        return 0;
    hashes = hashes_at(level, size);
    if (index < hashes / TILES_WIDTH)
        return TILES_WIDTH;
    if (index == hashes / TILES_WIDTH)
        return (unsigned)(hashes % TILES_WIDTH);
    return 0;
}

size_t tiles_grown(uint64_t old_size, uint64_t new_size, tiles_tile *out, size_t cap)
{
    size_t count = 0;

    if (old_size > new_size || new_size >= MERKLE_MAX_SIZE)
        return 0;
    for (int level = 0; hashes_at(level, new_size) > 0; level++) {
        uint64_t old_n = hashes_at(level, old_size), new_n = hashes_at(level, new_size);

        for (uint64_t i = old_n / TILES_WIDTH; i < new_n / TILES_WIDTH; i++) {
            if (count < cap)
                out[count] = (tiles_tile){level, i, TILES_WIDTH};
            count++;
        }
        if (new_n > old_n && new_n % TILES_WIDTH != 0) {
            if (count < cap)
                out[count] =
                    (tiles_tile){level, new_n / TILES_WIDTH, (unsigned)(new_n % TILES_WIDTH)};
            count++;
        }
    }
    return count;
}

void tiles_hash_indexes(const tiles_tile *tile, uint64_t *out)
{
    unsigned level = (unsigned)(tile->level < 0 ? 0 : tile->level) * TILES_HEIGHT;
    uint64_t first = tile->index * TILES_WIDTH;

    for (unsigned i = 0; i < tile->width; i++)
        out[i] = merkle_stored_index(level, first + i);
}

merkle_result tiles_read(const tiles_tile *tile, merkle_read_fn read, void *ctx, uint8_t *out)
{
    uint64_t indexes[TILES_WIDTH];
    merkle_hash hashes[TILES_WIDTH];

    if (!tile_valid(tile) || tile->level < 0)
        return MERKLE_RANGE;
    tiles_hash_indexes(tile, indexes);
    if (read(ctx, indexes, tile->width, hashes) != 0)
        return MERKLE_READ;
    for (unsigned i = 0; i < tile->width; i++)
        memcpy(out + (size_t)i * MERKLE_HASH_LEN, hashes[i].bytes, MERKLE_HASH_LEN);
    return MERKLE_OK;
}

void tiles_locate(unsigned level, uint64_t n, tiles_tile *tile, unsigned *start, unsigned *count)
{
    unsigned below = level % TILES_HEIGHT; /* levels folded inside the tile */
    uint64_t first = n << below;           /* among the tile level's hashes */

    tile->level = (int)(level / TILES_HEIGHT);
    tile->index = first / TILES_WIDTH;
    *start = (unsigned)(first % TILES_WIDTH);
    *count = 1u << below;
    tile->width = *start + *count;
}

bool tiles_bundle_add(uint8_t *out, size_t cap, size_t *used, const uint8_t *entry, size_t len)
{
    if (len > TILES_ENTRY_MAX || *used > cap || cap - *used < 2 || cap - *used - 2 < len)
        return false;
    out[*used] = (uint8_t)(len >> 8);
    out[*used + 1] = (uint8_t)len;
    memcpy(out + *used + 2, entry, len);
    *used += 2 + len;
    return true;
}

int tiles_bundle_next(const uint8_t *data, size_t n, size_t *offset, const uint8_t **entry,
                      size_t *len)
{
    size_t o = *offset, l;

    if (o == n)
        return 0;
    if (o > n || n - o < 2)
        return -1;
    l = (size_t)data[o] << 8 | data[o + 1];
    if (n - o - 2 < l)
        return -1;
    *entry = data + o + 2;
    *len = l;
    *offset = o + 2 + l;
    return 1;
}
