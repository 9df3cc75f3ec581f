/* jws: the header allow-list and the signature parser under arbitrary tokens. */
#include "common/b64.h"
#include "common/jose.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

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

/* Input that starts with '{' is a protected header, wrapped into a token. */
static char *wrap_header(const uint8_t *data, size_t size, size_t *len)
{
    /* an empty object payload and 86 characters: a 64-byte signature */
    static const char rest[] = ".e30."
                               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                               "AAAAAAAAAAAAAAAAAAAAAAAAAA";
    char *tok = malloc(b64url_encoded_len(size) + sizeof(rest));

    if (tok == NULL)
        abort();
    *len = b64url_encode(data, size, tok);
    memcpy(tok + *len, rest, sizeof(rest));
    *len += sizeof(rest) - 1;
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *wrapped = NULL;
    jose_header h;
    uint8_t *payload = NULL;
    size_t n = 0;
    jose_result peek, r;

    if (size > 0 && size < 4096 && data[0] == '{') {
        wrapped = wrap_header(data, size, &size);
        data = (const uint8_t *)wrapped;
    }
    peek = jws_peek((const char *)data, size, &h);
    r = jws_verify(fuzz_pub(), (const char *)data, size, &h, &payload, &n);

    if (peek != JOSE_OK && r != peek)
        abort();
    if ((r == JOSE_OK) != (payload != NULL))
        abort();
    free(payload);
    free(wrapped);
    return 0;
}
