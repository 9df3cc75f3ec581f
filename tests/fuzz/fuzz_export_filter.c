/* Fuzzes the admin API's and the report's filter parsing (content, client,
 * status, since, until as five NUL-separated fields) and the escaping of
 * what ends up in CSV and JSON. */
#include "daemon/export.h"

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

    const char *field[5] = {"", "", "", "", ""};
    size_t at = 0;
    for (int i = 0; i < 5 && at <= size; i++) {
        field[i] = text + at;
        at += strlen(text + at) + 1;
    }
    ledger_filter f;
    char err[256];
    export_filter_parse(&f, field[0], field[1], field[2], field[3], field[4], err, sizeof err);
    uint64_t ms;
    if (export_parse_time(text, &ms) == 0) {
        char back[EXPORT_TIME_MAX];
        export_format_time(ms, back);
    }
    unsigned statuses;
    export_parse_status(text, &statuses);

    char out[1024];
    export_buf b;
    export_buf_init(&b, out, sizeof out);
    export_csv_field(&b, text);
    export_json_string(&b, text);
    free(text);
    return 0;
}
