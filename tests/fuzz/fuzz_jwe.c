/* jwe: the header allow-list and the compact parser under arbitrary tokens. */
#include "common/jose.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_key[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                     7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jose_header h, h2;
    uint8_t *pt = NULL;
    size_t n = 0;
    jose_result peek = jwe_peek((const char *)data, size, &h);
    jose_result r = jwe_decrypt(fuzz_key, (const char *)data, size, &h2, &pt, &n);

    /* Decryption never gets past a header that peek refuses. */
    if (peek != JOSE_OK && r != peek)
        abort();
    if (r == JOSE_OK) {
        char *tok = NULL;

        if (pt == NULL || pt[n] != '\0')
            abort();
        if (jwe_encrypt(fuzz_key, h2.kid, h2.skid, h2.cty, pt, n, NULL, &tok) != JOSE_OK)
            abort();
        free(tok);
    } else if (pt != NULL) {
        abort();
    }
    free(pt);
    return 0;
}
