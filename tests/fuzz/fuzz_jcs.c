/*
 * jcs: whatever parses canonicalises, the canonical text parses to the same
 * value (numbers included: the shortest form reads back to the same double),
 * and canonicalising it again changes nothing.
 */
#include "common/jcs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v, *again;
    char *text, *text2;
    size_t len, len2;
    jcs_result r;

    if (jcs_parse((const char *)data, size, &v) != JCS_OK)
        return 0;
    r = jcs_dump(v, &text, &len);
    if (r != JCS_OK) {
        /* only depth and length can stop what parsed */
        if (r != JCS_TOO_DEEP && r != JCS_TOO_LONG)
            abort();
        json_decref(v);
        return 0;
    }
    if (jcs_parse(text, len, &again) != JCS_OK || !json_equal(v, again))
        abort();
    if (jcs_dump(again, &text2, &len2) != JCS_OK || len2 != len || memcmp(text, text2, len) != 0)
        abort();
    if (!jcs_is_canonical(text, len))
        abort();
    free(text);
    free(text2);
    json_decref(again);
    json_decref(v);
    return 0;
}
