/*
 * checkpoint: parsing arbitrary text never crashes, and a checkpoint that
 * parses and that the log could write is written back byte for byte.
 */
#include "common/checkpoint.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char out[CHECKPOINT_MAX_LEN + 1];
    checkpoint c;
    size_t n;

    if (!checkpoint_parse(text, size, &c))
        return 0;
    if (c.size >= MERKLE_MAX_SIZE || strlen(c.origin) == 0)
        abort();
    n = checkpoint_format(&c, out, sizeof(out));
    if (n != 0 && (n != size || memcmp(out, text, size) != 0))
        abort();
    /* and the parse of what was written is the same checkpoint */
    if (n != 0) {
        checkpoint again;
        if (!checkpoint_parse(out, n, &again) || memcmp(&again, &c, sizeof(c)) != 0)
            abort();
    }
    return 0;
}
