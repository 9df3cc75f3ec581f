/*
 * http_proxy: the requests the listener passes to an upstream (--upstream,
 * --upstream-for), as http_file serves those of the content directory.
 *
 * The request goes on with its method, target, end-to-end headers and body
 * (streamed, never held whole); hop-by-hop headers stay behind, and the
 * upstream learns who asked from X-Forwarded-For, X-Forwarded-Proto,
 * X-Forwarded-Host and Forwarded. The answer comes back streamed, its
 * hop-by-hop headers dropped, status, Set-Cookie, Location and the rest
 * unchanged. An upstream that cannot be reached, times out or answers
 * garbage is answered 502 or 504 with the JSON error of docs/protocol.md
 * section 10. WebSocket upgrades are answered 501.
 *
 * A GET that the delivery rules may make a delivery (http_deliver.h) is the
 * exception: its answer is asked for uncompressed and, when it is a 200,
 * read whole (upstream_call_read_whole()) before anything is sent, so that
 * http_deliver decides, injects and records it as it does a file's, with
 * the digest of the bytes sent (docs/protocol.md section 5.8). A page view
 * that would be injected, were the answer HTML, goes without the client's
 * conditional and range fields, as an injected file ignores them.
 *
 * The worker never blocks: while the upstream or the client is slow, the
 * connection is suspended and the upstream's thread resumes it
 * (upstream.h).
 */
#ifndef RECEIPT_DAEMON_HTTP_PROXY_H
#define RECEIPT_DAEMON_HTTP_PROXY_H

#include "daemon/http_internal.h"

#include <microhttpd.h>
#include <stddef.h>

/* Every call of a request whose path req->upstream claims: the first (the
 * headers), the body's, the last, and those after a resume. url is the
 * decoded path. */
enum MHD_Result http_proxy_serve(http_context *ctx, request *req, struct MHD_Connection *c,
                                 const char *url, const char *upload_data,
                                 size_t *upload_data_size);

/* The request completed: sets req->bytes of a streamed answer for the access
 * log, and lets go of the upstream call (cancelling it if it still runs).
 * Does nothing for a request that was not proxied. */
void http_proxy_release(request *req);

#endif
