/*
 * http_redirect: the plain-HTTP listener of --redirect-http.
 *
 * Answers every request with 308 Permanent Redirect to the same path and
 * query under the (https) public URL, and nothing else: no content, no
 * protocol endpoint, no delivery. 308 keeps the method and body, so a
 * confirmation POSTed to http:// is re-sent to https:// by clients that
 * follow it. An absolute-form target's path and query are kept
 * (http_target.h); a target that is neither (or too long) gets the JSON
 * error of PROTOCOL.md section 6. One thread serves it (http_loop.h).
 * The services are borrowed.
 */
#ifndef RECEIPT_DAEMON_HTTP_REDIRECT_H
#define RECEIPT_DAEMON_HTTP_REDIRECT_H

#include "common/compiler.h"
#include "daemon/accesslog.h"
#include "daemon/config.h"

#include <stddef.h>

typedef struct http_redirect http_redirect;

/* Listens on cfg->redirect_http; NULL with err set on failure. */
WARN_UNUSED_RESULT http_redirect *http_redirect_start(const config *cfg, accesslog *access_log,
                                                      char *err, size_t errlen);

/* The port actually bound. */
unsigned http_redirect_port(const http_redirect *r);

/* Closes every connection and frees the listener. NULL-safe. */
void http_redirect_stop(http_redirect *r);

#endif
