/*
 * rc_url: what the library accepts as a URL, and the origin of one.
 *
 * URLs are parsed with libcurl's own parser (the one that will use them),
 * so the policy is decided on exactly the host curl would connect to.
 * Only http and https are accepted. A confirmation carries proof of
 * receipt: rc_url_confirm_allowed() refuses plain http unless the host is
 * loopback (localhost, 127.0.0.0/8, ::1) or the caller allows it.
 */
#ifndef RECEIPT_LIB_RC_URL_H
#define RECEIPT_LIB_RC_URL_H

#include <stdbool.h>
#include <stddef.h>

#define RC_URL_MAX    4096
#define RC_ORIGIN_MAX 512

typedef enum rc_url_verdict {
    RC_URL_OK = 0,
    RC_URL_MALFORMED, /* not an absolute URL curl can parse, or too long */
    RC_URL_SCHEME,    /* neither http nor https                          */
    RC_URL_INSECURE,  /* plain http to a host that is not loopback       */
} rc_url_verdict;

/* Whether host (as in a URL, IPv6 with or without brackets) is loopback. */
bool rc_url_host_is_loopback(const char *host);

/* Parses url; on RC_URL_OK, https tells the scheme and host (when not NULL,
 * RC_ORIGIN_MAX bytes) receives the host. */
rc_url_verdict rc_url_check(const char *url, bool *https, char *host);

/* The policy for a confirm URL; err receives the reason on refusal. */
rc_url_verdict rc_url_confirm_allowed(const char *url, bool allow_insecure, char *err,
                                      size_t errlen);

/*
 * "scheme://host[:port]" of url, lowercase scheme and host, the port only
 * when it is not the scheme's default. Returns 0 or -1.
 */
int rc_url_origin(const char *url, char origin[RC_ORIGIN_MAX]);

#endif
