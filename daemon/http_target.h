/*
 * http_target: the form of a request target (RFC 9112 section 3.2).
 *
 * A server takes the origin form ("/path?query") and, as RFC 9112 section
 * 3.2.2 requires of it, the absolute form ("http://host:port/path?query")
 * that clients speaking as to a proxy send. The absolute form's path and
 * query are what the origin form would carry (an empty path is "/"), and
 * its authority stands for the Host header field, which is still required
 * in HTTP/1.1 but ignored (RFC 9110 section 7.2). Every other target (the
 * asterisk and authority forms, another scheme, an authority with
 * userinfo, none, a percent-encoded one, or a longer one than a host and
 * port) is bad, with a sentence for the client that says why.
 *
 * Pure functions over the target's bytes, as received (before the library
 * decodes it); nothing is allocated, and the results point into the
 * target.
 */
#ifndef RECEIPT_DAEMON_HTTP_TARGET_H
#define RECEIPT_DAEMON_HTTP_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_TARGET_AUTHORITY_MAX 262 /* "[" a host name of 253 "]" ":" a port */

typedef enum http_target_form {
    HTTP_TARGET_ORIGIN = 0, /* starts with "/" */
    HTTP_TARGET_ABSOLUTE,   /* http:// or https://, then an authority fit for Host */
    HTTP_TARGET_BAD,
} http_target_form;

typedef struct http_target {
    http_target_form form;
    /* ABSOLUTE: the scheme, "://" and the authority, before the path (or
     * the query, or the end); 0 otherwise. The same bytes begin the
     * target once decoded: none of them is a '%'. */
    size_t prefix_len;
    const char *authority; /* ABSOLUTE: into the target, authority_len bytes */
    size_t authority_len;
    bool empty_path;    /* ABSOLUTE without a path: the origin form's path is "/" */
    const char *reason; /* BAD: why, a sentence for a JSON error */
} http_target;

/* Reads target (NUL-terminated). Never fails: a target it cannot take is BAD. */
void http_target_parse(const char *target, http_target *out);

#endif
