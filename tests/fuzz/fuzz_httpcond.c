/* Fuzzes the Range, If-None-Match and date parsers with arbitrary header values. */
#include "daemon/httpcond.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t file_size;
    memcpy(&file_size, data, sizeof file_size);
    file_size %= UINT64_C(1) << 40;
    char *text = malloc(size - 8 + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data + 8, size - 8);
    text[size - 8] = '\0';

    uint64_t start = 0, len = 0;
    if (httpcond_parse_range(text, file_size, &start, &len) == HTTPCOND_RANGE_PARTIAL) {
        if (len == 0 || start >= file_size || len > file_size - start)
            abort();
    }
    httpcond_etag_matches(text, "\"abcdefghijklmnop\"");
    time_t t;
    httpcond_parse_date(text, &t);
    free(text);
    return 0;
}
