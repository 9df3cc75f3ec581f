/* Fuzzes an upstream's header lines and the list rules: the list stays in
 * its cap, holds no control character, and iterates back what it counted. */
#include "daemon/upstream_header.h"

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

    unsigned status;
    if (upstream_header_status_line(text, size, &status) && (status < 100 || status > 599))
        abort();
    upstream_header_lists(text, "no-store");
    upstream_header_lists(text, "close");
    upstream_header_hop_by_hop(text);

    /* Every line of the input, as libcurl hands them over. */
    upstream_header_list l;
    upstream_header_list_init(&l, 2048);
    const char *line = text;
    while (line < text + size) {
        const char *nl = memchr(line, '\n', (size_t)(text + size - line));
        size_t n = nl != NULL ? (size_t)(nl - line) + 1 : (size_t)(text + size - line);
        upstream_header_list_add(&l, line, n);
        if (l.len > l.max)
            abort();
        line += n;
    }
    size_t cursor = 0, count = 0;
    const char *value;
    for (const char *name; (name = upstream_header_list_next(&l, &cursor, &value)) != NULL;) {
        count++;
        for (const char *p = value; *p; p++) {
            if ((unsigned char)*p < 0x20 && *p != '\t')
                abort();
        }
        if (name[0] == '\0')
            abort();
    }
    if (count != l.count)
        abort();
    upstream_header_list_free(&l);
    free(text);
    return 0;
}
