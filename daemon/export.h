/*
 * export: how ledger rows look outside the server, shared by the admin API
 * and `receiptd report` so that both say the same thing: the JSON item of
 * a delivery, its CSV line, the filter words (status names, times), and a
 * bounded text builder to write them with.
 *
 * Nothing here allocates: every rendering goes into a caller's buffer of a
 * fixed size, and one that does not fit is reported, never truncated
 * silently.
 */
#ifndef RECEIPT_DAEMON_EXPORT_H
#define RECEIPT_DAEMON_EXPORT_H

#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Room for one rendered item, detail included: the receipt (2 KiB), the path
 * and user agent escaped at worst 6 bytes per byte (3 KiB), and the rest.
 */
#define EXPORT_ITEM_MAX 8192
#define EXPORT_TIME_MAX 32 /* "2025-11-25T19:46:40.123Z" and its NUL */
#define EXPORT_ERR_MAX  256

typedef struct export_buf {
    char *data;
    size_t len;
    size_t cap;
    bool overflow; /* something did not fit; data holds a prefix */
} export_buf;

void export_buf_init(export_buf *b, char *data, size_t cap);
void export_putn(export_buf *b, const char *s, size_t n);
void export_puts(export_buf *b, const char *s);
void export_printf(export_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void export_u64(export_buf *b, uint64_t v);
/* A JSON string with its quotes; invalid UTF-8 becomes U+FFFD. */
void export_json_string(export_buf *b, const char *s);
/* A JSON string, or null for "". */
void export_json_opt_string(export_buf *b, const char *s);
/* The shortest decimal that reads back as v (JSON has no NaN: null). */
void export_json_double(export_buf *b, double v);
/* One CSV field (RFC 4180): quoted, quotes doubled, when it needs it. */
void export_csv_field(export_buf *b, const char *s);

/*
 * One delivery as a JSON object: delivery, content, sha256 (base64url),
 * size, status, client, client_addr, issued_at_ms, confirmed_at_ms, server.
 * detail adds user_agent, bound_at_ms, bound_addr, confirm_addr, received
 * and receipt.
 */
void export_item_json(export_buf *b, const ledger_delivery *d, bool detail);

/* The CSV header line and one row of the same columns, each ending CRLF. */
extern const char export_csv_header[];
void export_item_csv(export_buf *b, const ledger_delivery *d);

/*
 * A time for since/until: Unix milliseconds (digits only), a date
 * (YYYY-MM-DD, midnight UTC) or an RFC 3339 time
 * (YYYY-MM-DDTHH:MM[:SS[.fff]] then Z or +HH:MM / -HH:MM). Returns 0 or -1.
 */
int export_parse_time(const char *text, uint64_t *out_ms);
/* RFC 3339 in UTC with milliseconds. */
void export_format_time(uint64_t ms, char out[EXPORT_TIME_MAX]);

/*
 * A status filter: issued, bound, confirmed, corrupted, or pending (issued
 * or bound); several may be joined with commas. Returns 0 with *statuses
 * set (LEDGER_STATUS_BIT()s), or -1.
 */
int export_parse_status(const char *text, unsigned *statuses);

/*
 * Fills a filter from the textual options (each NULL or "" when absent);
 * strings are borrowed. Returns 0, or -1 with err naming the bad one.
 */
int export_filter_parse(ledger_filter *f, const char *content, const char *client,
                        const char *status, const char *since, const char *until, char *err,
                        size_t errlen);

#endif
