/*
 * mime: media types of content by the extension of its name.
 *
 * A table is read once from a mime.types file (by default /etc/mime.types
 * when it exists; one an operator names must be readable), and extensions
 * the file does not name come from a built-in table of the web's common
 * types. Text, JavaScript and JSON types carry "; charset=utf-8", so that a
 * type goes into a Content-Type header as it is. Lookups ignore case. A
 * table is immutable once made and may be shared between threads.
 */
#ifndef RECEIPT_DAEMON_MIME_H
#define RECEIPT_DAEMON_MIME_H

#include <stdbool.h>
#include <stddef.h>

#define MIME_DEFAULT "application/octet-stream"

typedef struct mime_table mime_table;

/* Reads path (NULL: /etc/mime.types, if it exists) and adds the built-in
 * types. NULL with err set on failure. */
mime_table *mime_table_new(const char *path, char *err, size_t errlen);
void mime_table_free(mime_table *t); /* NULL-safe */

/* The type of a file name (its last segment's extension); never NULL:
 * MIME_DEFAULT when unknown. A NULL table uses the built-in types only.
 * The string is owned by the table (or static). */
const char *mime_lookup(const mime_table *t, const char *name);

/* Whether a type is text/html, with or without parameters. */
bool mime_is_html(const char *type);

#endif
