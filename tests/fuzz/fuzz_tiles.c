/*
 * tiles: a path parses only when it is the one spelling of a tile, written
 * back byte for byte; an entry bundle splits without reading past its end.
 */
#include "common/tiles.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tiles_tile t;
    size_t off = 0, entries = 0, len;
    const uint8_t *entry;
    int r;

    if (tiles_parse_path((const char *)data, size, &t)) {
        char back[TILES_PATH_MAX];
        if (tiles_path(&t, back) != size || memcmp(back, data, size) != 0)
            abort();
    }
    while ((r = tiles_bundle_next(data, size, &off, &entry, &len)) == 1) {
        if (entry < data || entry + len > data + size || off > size)
            abort();
        entries++;
    }
    if (r == 0 && off != size)
        abort();
    (void)entries;
    return 0;
}
