/*
 * evpack: any text packs and unpacks to itself; any packed input unpacks
 * without overrunning, and what it unpacks to round-trips too.
 */
#include "common/evpack.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t packed[EVPACK_MAX(FUZZ_MAX)];
    static char text[FUZZ_MAX];
    static char again[FUZZ_MAX];

    if (size > FUZZ_MAX)
        return 0;
    size_t n = evpack_encode((const char *)data, size, packed, sizeof packed);
    if (n == 0 || evpack_decode(packed, n, text, size) != (long)size ||
        memcmp(text, data, size) != 0)
        abort();
    long len = evpack_decode(data, size, text, sizeof text);
    if (len >= 0) {
        n = evpack_encode(text, (size_t)len, packed, sizeof packed);
        if (n == 0 || evpack_decode(packed, n, again, sizeof again) != len ||
            memcmp(again, text, (size_t)len) != 0)
            abort();
    }
    return 0;
}
