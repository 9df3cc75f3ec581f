/*
 * tlog_event: event texts as `receiptd ledger verify` and the bundle
 * checker read them. Up to four texts separated by newlines fold into one
 * delivery's state; whatever state they make is written again as an
 * "existing" event, which must read back to the same row.
 */
#include "daemon/tlog_event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tlog_event_row state, again;
    static char text[TLOG_EVENT_MAX + 1];
    tlog_event_info info;
    char err[256];
    const char *p = (const char *)data;
    const char *end = p + size;
    memset(&state, 0, sizeof state);
    for (int i = 0; i < 4 && p <= end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        tlog_event_row before = state;
        if (tlog_event_fold(p, n, &info, &state, err, sizeof err) != 0 &&
            memcmp(&before, &state, sizeof state) != 0)
            abort(); /* a refused event changes nothing */
        p += n + 1;
    }
    if (!state.exists)
        return 0;
    size_t n = tlog_event_existing(&state.row, text, sizeof text);
    if (n == 0)
        return 0; /* a number beyond 2^53 - 1 that jansson read */
    memset(&again, 0, sizeof again);
    if (tlog_event_fold(text, n, &info, &again, err, sizeof err) != 0)
        abort();
    ledger_delivery row = state.row;
    row.receipt[0] = '\0';
    again.receipt_hash[0] = '\0';
    if (!tlog_event_row_matches(&again, &row, err, sizeof err))
        abort();
    return 0;
}
