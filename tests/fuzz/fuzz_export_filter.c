/* Fuzzes the admin API's and the report's filter parsing (content, client,
 * status, kind, since, until as six NUL-separated fields) and the escaping of
 * what ends up in CSV and JSON: whatever the bytes, the JSON string is one
 * that a JSON parser takes, and valid UTF-8 reads back as it was. */
#include "common/unicode.h"
#include "daemon/export.h"
#include "daemon/jbuf.h"

#include <jansson.h>
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

    const char *field[6] = {"", "", "", "", "", ""};
    size_t at = 0;
    for (int i = 0; i < 6 && at <= size; i++) {
        field[i] = text + at;
        at += strlen(text + at) + 1;
    }
    ledger_filter f;
    char err[256];
    const export_filter_text t = {field[0], field[1], field[2], field[3], field[4], field[5]};
    export_filter_parse(&f, &t, err, sizeof err);
    uint64_t ms;
    if (export_parse_time(text, &ms) == 0) {
        char back[EXPORT_TIME_MAX];
        export_format_time(ms, back);
    }
    unsigned statuses;
    export_parse_status(text, &statuses);
    unsigned kinds;
    export_parse_kind(text, &kinds);

    jbuf b;
    jbuf_init_growing(&b, NULL, 0, 6 * size + 8);
    export_csv_field(&b, text);
    jbuf_reset(&b);
    jbuf_string(&b, (const char *)data, size);
    if (b.failed)
        abort(); /* 6 bytes a byte at most, and the quotes */
    json_error_t error;
    json_t *back = json_loadb(b.data, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    if (back == NULL || !json_is_string(back))
        abort();
    if (unicode_valid((const char *)data, size) &&
        (json_string_length(back) != size || memcmp(json_string_value(back), data, size) != 0))
        abort();
    json_decref(back);
    jbuf_free(&b);
    free(text);
    return 0;
}
