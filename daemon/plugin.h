/*
 * plugin: plug-in data (docs/protocol.md section 7): the JWE a client gets for a
 * delivery, encrypted to the key it named. Made for the device path of a
 * content GET (http_file) and for GET /_receipt/plugin/<ticket>, which also
 * binds a browser's ticket to its key.
 */
#ifndef RECEIPT_DAEMON_PLUGIN_H
#define RECEIPT_DAEMON_PLUGIN_H

#include "daemon/clientkeys.h"
#include "daemon/delivery.h"
#include "daemon/http_internal.h"

#include <microhttpd.h>

#define PLUGIN_PAYLOAD_MAX 4096

/*
 * The plug-in JWE for delivery d (whose ticket is bound to client ck), seen
 * from client_addr. *out is malloc'd. Returns 0 or -1.
 */
int plugin_seal(const http_context *ctx, const delivery *d, const clientkey *ck,
                const char *client_addr, char **out);

/* GET /_receipt/plugin/<ticket> */
enum MHD_Result plugin_serve(http_context *ctx, request *req, struct MHD_Connection *c,
                             const char *ticket);

#endif
