/* b64url: decoding never overruns, and whatever decodes re-encodes to the same text. */
#include "common/b64.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t out[FUZZ_MAX];
    char text[FUZZ_MAX / 3 * 4 + 8];
    char std[FUZZ_MAX / 3 * 4 + 8];
    long n;

    if (size > FUZZ_MAX)
        return 0;
    n = b64url_decode((const char *)data, size, out, b64url_decoded_max(size));
    if (n >= 0) {
        size_t len = b64url_encode(out, (size_t)n, text);

        if (len != size || memcmp(text, data, size) != 0)
            abort();
    }
    /* A tight cap must be honoured too. */
    if (size > 4)
        (void)b64url_decode((const char *)data, size, out, b64url_decoded_max(size) - 1);
    b64url_encode(data, size, text);
    if (b64url_decode(text, strlen(text), out, sizeof(out)) != (long)size ||
        memcmp(out, data, size) != 0)
        abort();
    b64std_encode(data, size, std);
    return 0;
}
