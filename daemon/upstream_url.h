/*
 * upstream_url: the address of an upstream (--upstream, --upstream-for) and
 * the URL a proxied request goes to.
 *
 * An upstream is "http://HOST[:PORT][/PATH]", "https://HOST[:PORT][/PATH]"
 * or "unix:/SOCKET[:/PATH]" (HTTP over a Unix domain socket). As with
 * nginx's proxy_pass, an upstream without a path gets the request's target
 * unchanged, and one with a path (even "/") gets the part of the request's
 * path after the matched prefix appended to that path.
 *
 * Pure functions over caller memory, fuzzed on their own.
 */
#ifndef RECEIPT_DAEMON_UPSTREAM_URL_H
#define RECEIPT_DAEMON_UPSTREAM_URL_H

#include <stdbool.h>
#include <stddef.h>

#define UPSTREAM_URL_MAX    512                                /* an upstream as given */
#define UPSTREAM_HOST_MAX   300                                /* HOST[:PORT] */
#define UPSTREAM_SOCKET_MAX 107                                /* sun_path less its NUL */
#define UPSTREAM_TARGET_MAX (UPSTREAM_URL_MAX + 3 * 4096 + 16) /* base, path, query, encoded */

typedef enum upstream_scheme {
    UPSTREAM_HTTP = 0,
    UPSTREAM_HTTPS,
    UPSTREAM_UNIX, /* HTTP over a Unix domain socket */
} upstream_scheme;

typedef struct upstream_url {
    upstream_scheme scheme;
    char text[UPSTREAM_URL_MAX + 1];       /* as given, for the log and /metrics */
    char base[UPSTREAM_URL_MAX + 1];       /* "http://HOST:PORT": what the path is appended to */
    char authority[UPSTREAM_HOST_MAX + 1]; /* HOST[:PORT] as given; "localhost" for a socket */
    char socket[UPSTREAM_SOCKET_MAX + 1];  /* the socket's path (UPSTREAM_UNIX) */
    char path[UPSTREAM_URL_MAX + 1];       /* "" or a path starting with '/' */
    bool has_path;                         /* the URL names a path: replace the prefix */
} upstream_url;

/*
 * Parses an upstream. Refused: other schemes, user information, a query or
 * fragment, an empty host, a port outside 1..65535, characters a URL cannot
 * hold, a socket path that is not absolute or too long for sun_path.
 * Returns 0, or -1 with err saying why.
 */
int upstream_url_parse(const char *text, upstream_url *out, char *err, size_t errlen);

/*
 * Whether an upstream routing prefix is acceptable: it starts with '/',
 * holds no character a URL cannot, and does not claim /_receipt/.
 */
bool upstream_url_prefix_valid(const char *prefix);

/*
 * Writes into out (cap bytes) the URL a request goes to: the upstream's
 * base, then the request's target (raw_target, the path and query as
 * received) with the matched prefix replaced by the upstream's path when it
 * has one. path is the decoded request path the prefix matched; when the
 * raw path does not start with the prefix byte for byte (a percent-encoded
 * prefix), the decoded path is encoded again. Bytes that may not appear in
 * a request target are percent-encoded. Returns the length, or 0 if the
 * URL would not fit.
 */
size_t upstream_url_target(const upstream_url *u, const char *prefix, const char *raw_target,
                           const char *path, char *out, size_t cap);

#endif
