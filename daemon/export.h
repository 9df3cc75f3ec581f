/*
 * export: how ledger rows look outside the server, shared by the admin API
 * and `receiptd report` so that both say the same thing: the JSON item of
 * a delivery, its CSV line, and the filter words (status names, times).
 *
 * Renderings go into a caller's jbuf; one that does not fit sets its
 * failed flag, and is never truncated silently.
 */
#ifndef RECEIPT_DAEMON_EXPORT_H
#define RECEIPT_DAEMON_EXPORT_H

#include "daemon/jbuf.h"
#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Room for one rendered item, detail included: the receipt (4 KiB), the path
 * and user agent escaped at worst 6 bytes per byte (3 KiB), and the rest.
 */
#define EXPORT_ITEM_MAX 12288
#define EXPORT_TIME_MAX 32 /* "2025-11-25T19:46:40.123Z" and its NUL */
#define EXPORT_ERR_MAX  256

/* One CSV field (RFC 4180): quoted, quotes doubled, when it needs it. */
void export_csv_field(jbuf *b, const char *s);

/*
 * One delivery as a JSON object: delivery, content, sha256 (base64url) and
 * size (the version), kind, delivered (sha256 and size of the bytes sent),
 * status, client, client_addr, issued_at_ms, confirmed_at_ms, server.
 * detail adds user_agent, bound_at_ms, bound_addr, confirm_addr, received
 * and receipt.
 */
void export_item_json(jbuf *b, const ledger_delivery *d, bool detail);

/* The CSV header line and one row of the same columns, each ending CRLF. */
extern const char export_csv_header[];
void export_item_csv(jbuf *b, const ledger_delivery *d);

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
 * A kind filter: page, download, view, device or tracked; several may be
 * joined with commas. Returns 0 with *kinds set (LEDGER_KIND_BIT()s), or
 * -1.
 */
int export_parse_kind(const char *text, unsigned *kinds);

/* The textual options of a filter, each NULL or "" when absent. */
typedef struct export_filter_text {
    const char *content, *client, *status, *kind, *since, *until;
} export_filter_text;

/*
 * Fills a filter from the textual options; strings are borrowed. Returns 0,
 * or -1 with err naming the bad one.
 */
int export_filter_parse(ledger_filter *f, const export_filter_text *t, char *err, size_t errlen);

#endif
