/* jws: the header allow-list and the signature parser under arbitrary tokens. */
#include "common/jose.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 7515 appendix A.3 public key. */
static eckey *fuzz_pub(void)
{
    static eckey *key;

    if (key == NULL) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x",
                              "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y",
                              "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0");
        key = eckey_from_jwk(j);
        json_decref(j);
        if (key == NULL)
            abort();
    }
    return key;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jose_header h;
    uint8_t *payload = NULL;
    size_t n = 0;
    jose_result peek = jws_peek((const char *)data, size, &h);
    jose_result r = jws_verify(fuzz_pub(), (const char *)data, size, &h, &payload, &n);

    if (peek != JOSE_OK && r != peek)
        abort();
    if ((r == JOSE_OK) != (payload != NULL))
        abort();
    free(payload);
    return 0;
}
