/*
 * ticket: opening arbitrary text never succeeds without the secret, and
 * arbitrary claims survive a seal/open round trip.
 */
#include "daemon/ticket.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ticket_sealer *fuzz_sealer(void)
{
    static ticket_sealer *s;
    static const uint8_t secret[TICKET_SECRET_LEN] = {42};

    if (s == NULL)
        s = ticket_sealer_new(secret);
    if (s == NULL)
        abort();
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ticket_claims c, got;
    char t[TICKET_MAX_LEN + 1];
    size_t n = 0;
    ticket_result r;

    /* A late "now" lets any epoch through to the tag check. */
    r = ticket_open(fuzz_sealer(), (const char *)data, size, UINT64_C(1) << 62, &got);
    /* Forging a tag by chance is not going to happen. */
    if (r == TICKET_OK || r == TICKET_EXPIRED)
        abort();

    /* Claims from the input: fixed fields, then the path. */
    if (size < 113)
        return 0;
    memset(&c, 0, sizeof(c));
    c.bound = data[0] & 1;
    c.kind = (uint8_t)(data[0] >> 1 & 7);
    memcpy(c.delivery.bytes, data + 1, 16);
    memcpy(c.sha256, data + 17, 32);
    memcpy(&c.size, data + 49, 8);
    memcpy(&c.issued_ms, data + 57, 8);
    memcpy(&c.expires_ms, data + 65, 8);
    c.issued_ms %= UINT64_C(4000000000000000);
    /* The delivered bytes: the stored ones when bit 4 is clear. */
    if (data[0] & 16) {
        memcpy(c.delivered_sha256, data + 73, 32);
        memcpy(&c.delivered_size, data + 105, 8);
    } else {
        memcpy(c.delivered_sha256, c.sha256, 32);
        c.delivered_size = c.size;
    }
    data += 40;
    size -= 40;
    c.path_len = size - 73;
    if (c.path_len > TICKET_PATH_MAX + 1)
        c.path_len = TICKET_PATH_MAX + 1;
    memcpy(c.path, data + 73, c.path_len > TICKET_PATH_MAX ? TICKET_PATH_MAX : c.path_len);
    r = ticket_seal(fuzz_sealer(), &c, t, &n);
    if (c.path_len > TICKET_PATH_MAX) {
        if (r != TICKET_TOO_LONG)
            abort();
        return 0;
    }
    if (memchr(c.path, '\0', c.path_len) != NULL) {
        if (r != TICKET_INVALID)
            abort();
        return 0;
    }
    if (r != TICKET_OK || n > TICKET_MAX_LEN)
        abort();
    /* Opened at its issue time: a ticket from the future is refused. */
    r = ticket_open(fuzz_sealer(), t, n, c.issued_ms, &got);
    if (r != (c.issued_ms >= c.expires_ms ? TICKET_EXPIRED : TICKET_OK))
        abort();
    if (got.size != c.size || got.issued_ms != c.issued_ms || got.path_len != c.path_len ||
        memcmp(got.path, c.path, c.path_len) != 0 || got.bound != c.bound || got.kind != c.kind ||
        got.delivered_size != c.delivered_size ||
        memcmp(got.delivered_sha256, c.delivered_sha256, 32) != 0 ||
        memcmp(got.sha256, c.sha256, 32) != 0)
        abort();
    return 0;
}
