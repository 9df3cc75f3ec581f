/* Fuzzes upstream URLs, routing prefixes and the target a request goes to:
 * what parses has its parts in bounds, and a target never overruns. */
#include "daemon/upstream_url.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Three NUL-separated parts: the upstream, the prefix, the raw target. */
    char *text = malloc(size + 3);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = text[size + 1] = text[size + 2] = '\0';
    const char *url = text;
    const char *prefix = url + strlen(url) + 1;
    const char *raw = prefix + strlen(prefix) + 1;
    if (raw > text + size)
        raw = text + size;

    upstream_url u;
    char err[256];
    if (upstream_url_parse(url, &u, err, sizeof err) == 0) {
        if (strlen(u.base) > UPSTREAM_URL_MAX || strlen(u.path) > UPSTREAM_URL_MAX)
            abort();
        if (u.has_path != (u.path[0] == '/'))
            abort();
        if (upstream_url_prefix_valid(prefix) && strncmp(raw, prefix, strlen(prefix)) == 0) {
            char out[512];
            size_t n = upstream_url_target(&u, prefix, raw, raw, out, sizeof out);
            if (n >= sizeof out || (n > 0 && strlen(out) != n))
                abort();
            /* What goes to libcurl holds no byte a target may not. */
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)out[i];
                if (c <= 0x20 || c >= 0x7f || c == '#')
                    abort();
            }
        }
    }
    free(text);
    return 0;
}
