/* Fuzzes the form of a request target: what is taken as absolute has its
 * authority and path in bounds, and an authority fit for a Host field. */
#include "daemon/http_target.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    size_t len = strlen(text);
    http_target t;
    http_target_parse(text, &t);
    switch (t.form) {
    case HTTP_TARGET_ORIGIN:
        if (text[0] != '/' || t.prefix_len != 0)
            abort();
        break;
    case HTTP_TARGET_ABSOLUTE:
        if (t.prefix_len > len || t.authority < text ||
            t.authority + t.authority_len != text + t.prefix_len || t.authority_len == 0 ||
            t.authority_len > HTTP_TARGET_AUTHORITY_MAX)
            abort();
        /* Nothing the path decoding could change, no userinfo, no end of a field. */
        for (size_t i = 0; i < t.prefix_len; i++) {
            if (text[i] == '%' || (unsigned char)text[i] <= 0x20 || text[i] == 0x7f)
                abort();
        }
        if (memchr(t.authority, '@', t.authority_len) != NULL)
            abort();
        if (t.empty_path != (text[t.prefix_len] != '/'))
            abort();
        break;
    case HTTP_TARGET_BAD:
        if (t.reason == NULL || t.reason[0] == '\0')
            abort();
        break;
    default:
        abort();
    }
    free(text);
    return 0;
}
