/* eckey: point, header, JWK and PEM constructors under arbitrary input. */
#include "common/eckey.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(eckey *k)
{
    json_t *jwk;
    eckey *back;

    if (k == NULL)
        return;
    if (eckey_point(k)[0] != 0x04 || strlen(eckey_thumbprint(k)) != ECKEY_THUMBPRINT_LEN)
        abort();
    jwk = eckey_to_jwk(k, true);
    back = eckey_from_jwk(jwk);
    if (back == NULL || strcmp(eckey_thumbprint(back), eckey_thumbprint(k)) != 0 ||
        eckey_has_private(back) != eckey_has_private(k))
        abort();
    eckey_free(back);
    json_decref(jwk);
    eckey_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j;

    if (size < 1)
        return 0;
    switch (data[0] % 4) {
    case 0:
        check(eckey_from_point(data + 1, size - 1));
        break;
    case 1:
        check(eckey_from_header((const char *)data + 1, size - 1));
        break;
    case 2:
        j = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
        check(eckey_from_jwk(j));
        json_decref(j);
        break;
    default:
        check(eckey_from_pem((const char *)data + 1, size - 1));
        break;
    }
    return 0;
}
