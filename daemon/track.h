/*
 * track: which requests for content are deliveries, and of which kind
 * (docs/protocol.md, "Which requests are deliveries").
 *
 * The operator's path rules come first: of the --track and --untrack
 * globs, the last one that matches the content path decides, whatever the
 * request's fetch metadata says. Where none matches, the request decides:
 * the agent's own fetch (Receipt-Fetch: download) is a download; a request
 * without Sec-Fetch-Dest (devices, scripts, browsers on origins that are
 * not secure) is a device's; a navigation to a document, a frame or an
 * embedded object is a page view of HTML or a view of anything else; a
 * navigation whose destination is empty is a browser download; and what is
 * left, a page's subresources, is no delivery unless --track-subresources
 * says every 200 is one.
 *
 * Pure functions of their arguments; thread-safe.
 */
#ifndef RECEIPT_DAEMON_TRACK_H
#define RECEIPT_DAEMON_TRACK_H

#include "daemon/config.h"
#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>

/* The request header by which the agent marks the fetch of a download, and
 * the one value that does. */
#define TRACK_FETCH_HEADER   "Receipt-Fetch"
#define TRACK_FETCH_DOWNLOAD "download"

/* What the decision looks at; strings are borrowed, NULL when absent. */
typedef struct track_request {
    const char *path;          /* canonical content path, NUL-terminated */
    bool is_html;              /* the content is text/html               */
    const char *fetch_dest;    /* Sec-Fetch-Dest                         */
    const char *fetch_mode;    /* Sec-Fetch-Mode                         */
    const char *receipt_fetch; /* Receipt-Fetch                          */
} track_request;

/*
 * Whether a 200 to request r is a delivery under cfg's rules; when it is,
 * *kind says which kind.
 */
bool track_decide(const config *cfg, const track_request *r, ledger_kind *kind);

/*
 * Whether glob matches the whole of path: '*' stands for any run of
 * characters without '/', '**' for any run at all, '?' for one byte but
 * '/' (a character outside ASCII is several); every other byte stands for
 * itself.
 */
bool track_glob_match(const char *glob, const char *path);

#endif
