/* Fuzzes what libreceipt parses from servers it does not trust: a JWK Set,
 * and URLs (confirm URLs come from plug-in data). */
#include "lib/rc_jwks.h"
#include "lib/rc_url.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    json_t *set = rc_jwks_parse((const char *)data, size, err, sizeof err);
    if (set != NULL) {
        eckey_free(rc_jwks_find(set, "kid", "sig"));
        eckey_free(rc_jwks_find(set, "kid", "enc"));
        json_decref(set);
    }

    char *url = malloc(size + 1);
    if (url == NULL)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    bool https;
    char host[RC_ORIGIN_MAX];
    rc_url_check(url, &https, host);
    rc_url_confirm_allowed(url, false, err, sizeof err);
    char origin[RC_ORIGIN_MAX];
    rc_url_origin(url, origin);
    free(url);
    return 0;
}
