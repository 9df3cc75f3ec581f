/* sjson: the depth pre-scan and strict parse under arbitrary text. */
#include "common/sjson.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    json_t *v = sjson_parse_object((const char *)data, size, 0, err, sizeof(err));
    const char *key;
    json_t *member;

    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        abort();
    json_object_foreach(v, key, member)
    {
        uint64_t u;
        size_t len;

        (void)member;
        (void)sjson_string(v, key, &len);
        (void)sjson_object(v, key);
        (void)sjson_uint(v, key, &u);
    }
    /* Our own output parses again. */
    {
        char *text = sjson_dump(v);
        json_t *again;

        if (text == NULL)
            abort();
        again = sjson_parse_object(text, strlen(text), 0, NULL, 0);
        if (again == NULL || !json_equal(v, again))
            abort();
        json_decref(again);
        free(text);
    }
    json_decref(v);
    return 0;
}
