/* Fuzzes the Forwarded, X-Forwarded-For and X-Forwarded-Proto parsers and
 * the choice of the client: whatever the headers, the client is the peer
 * unless they were well-formed and came from a trusted proxy. */
#include "daemon/proxy.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static proxy_set set;
    static int ready;
    if (!ready) {
        char err[128];
        if (proxy_set_add(&set, "127.0.0.0/8", err, sizeof err) != 0 ||
            proxy_set_add(&set, "2001:db8::/32", err, sizeof err) != 0)
            abort();
        ready = 1;
    }
    if (size < 2)
        return 0;
    /* First byte: which header the rest goes to; second: the peer. */
    unsigned which = data[0] % 3;
    uint8_t peer[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
    if (data[1] & 1)
        peer[12] = 203; /* not trusted */
    char *text = malloc(size - 2 + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data + 2, size - 2);
    text[size - 2] = '\0';
    proxy_headers h = {which == 0 ? text : NULL, which == 1 ? text : NULL,
                       which == 2 ? text : NULL};
    proxy_client out;
    proxy_outcome o = proxy_resolve(&set, peer, &h, &out);
    if (o != PROXY_FORWARDED && memcmp(out.addr, peer, 16) != 0)
        abort();
    if ((data[1] & 1) && o != PROXY_UNTRUSTED)
        abort();
    char addr[PROXY_ADDR_TEXT_MAX];
    proxy_addr_format(out.addr, addr);

    proxy_set s = {.count = 0};
    char err[128];
    (void)proxy_set_add(&s, text, err, sizeof err);
    free(text);
    return 0;
}
