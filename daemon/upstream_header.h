/*
 * upstream_header: the header rules of a reverse proxy (RFC 9110 section 7.6
 * and RFC 9112), as pure functions over strings, fuzzed on their own.
 *
 * Which fields are hop-by-hop (Connection and the fields it names,
 * Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, the Proxy-* fields),
 * whether a list field holds a token or a directive (Connection: close,
 * Cache-Control: no-store), the status line of an answer, and a capped list
 * that collects an answer's header lines as they arrive, refusing the
 * malformed and folding obsolete continuation lines into the field before.
 *
 * The list is one growing buffer of "name\0value\0" pairs; it belongs to
 * whoever made it and is used by one thread at a time.
 */
#ifndef RECEIPT_DAEMON_UPSTREAM_HEADER_H
#define RECEIPT_DAEMON_UPSTREAM_HEADER_H

#include <stdbool.h>
#include <stddef.h>

/* Whether a field is hop-by-hop by its name alone (case-insensitive). */
bool upstream_header_hop_by_hop(const char *name);

/* Whether name is one of the n names (case-insensitive). */
bool upstream_header_named(const char *name, const char *const *names, size_t n);

/*
 * Whether the list field value (comma-separated, as Connection or
 * Cache-Control) holds name as a token, or as a directive "name=..."
 * (case-insensitive; quoted strings are skipped whole).
 */
bool upstream_header_lists(const char *value, const char *name);

/*
 * Parses the status line of an answer ("HTTP/1.1 200 OK", CRLF optional):
 * 1 with *status set, 0 if line is not a status line.
 */
int upstream_header_status_line(const char *line, size_t len, unsigned *status);

/*
 * The growth of the upstream modules' byte buffers: room for more bytes
 * after len in *data (capacity *cap), doubling from first, never past max.
 * false, and nothing changed, past max or out of memory.
 */
bool upstream_buffer_reserve(char **data, size_t *cap, size_t len, size_t more, size_t first,
                             size_t max);

typedef struct upstream_header_list {
    char *data; /* "name\0value\0" pairs, malloc'd */
    size_t len, cap;
    size_t max;   /* bytes at most, names and values together */
    size_t count; /* pairs */
} upstream_header_list;

typedef enum upstream_header_add {
    UPSTREAM_HEADER_ADDED = 0,
    UPSTREAM_HEADER_MALFORMED, /* no colon, a bad name, a control character */
    UPSTREAM_HEADER_TOO_LARGE, /* past max, or out of memory */
} upstream_header_add;

/* An empty list of at most max bytes; allocates nothing yet. */
void upstream_header_list_init(upstream_header_list *l, size_t max);
/* Forgets the pairs, keeps the memory. */
void upstream_header_list_clear(upstream_header_list *l);
/* Frees the memory. NULL-safe. */
void upstream_header_list_free(upstream_header_list *l);

/*
 * Adds one header line as received (CRLF or LF at its end allowed). A line
 * that starts with a space or tab continues the field before it (obs-fold,
 * replaced by one space, RFC 9112 section 5.2).
 */
upstream_header_add upstream_header_list_add(upstream_header_list *l, const char *line, size_t len);

/*
 * Iterates: *cursor starts at 0; returns the next name and sets *value, or
 * NULL at the end.
 */
const char *upstream_header_list_next(const upstream_header_list *l, size_t *cursor,
                                      const char **value);

/* The first value of the field name (case-insensitive), or NULL. */
const char *upstream_header_list_get(const upstream_header_list *l, const char *name);

/* Whether any field name of l lists token (upstream_header_lists()): a list
 * may be split over several fields (RFC 9110 section 5.3). */
bool upstream_header_list_lists(const upstream_header_list *l, const char *name, const char *token);

#endif
