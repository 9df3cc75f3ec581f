/* jwe: the header allow-list and the compact parser under arbitrary tokens. */
#include "common/b64.h"
#include "common/jose.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_key[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                     7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};

/*
 * Input that starts with '{' is taken as a protected header and wrapped into
 * a token, so that the allow-list sees JSON rather than base64url noise.
 */
static char *wrap_header(const uint8_t *data, size_t size, size_t *len)
{
    static const char rest[] = "..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA";
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
    jose_header h, h2;
    uint8_t *pt = NULL;
    size_t n = 0;
    jose_result peek, r;

    if (size > 0 && size < 4096 && data[0] == '{') {
        wrapped = wrap_header(data, size, &size);
        data = (const uint8_t *)wrapped;
    }
    peek = jwe_peek((const char *)data, size, &h);
    r = jwe_decrypt(fuzz_key, (const char *)data, size, &h2, &pt, &n);

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
    /* After a peek that accepts, the header left unparsed changes nothing. */
    if (peek == JOSE_OK) {
        uint8_t *pt2 = NULL;
        size_t n2 = 0;
        jose_result r2 = jwe_decrypt_peeked(fuzz_key, (const char *)data, size, &pt2, &n2);
        if (r2 != r || n2 != n || (r2 == JOSE_OK && memcmp(pt, pt2, n + 1) != 0) ||
            (r2 != JOSE_OK && pt2 != NULL))
            abort();
        free(pt2);
    }
    free(pt);
    free(wrapped);
    return 0;
}
