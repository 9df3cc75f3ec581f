/*
 * http_log: the evidence log's public, read-only endpoints (docs/api.md,
 * docs/evidence.md), C2SP tlog-tiles under /_receipt/log/:
 *
 *     checkpoint                 the newest signed checkpoint (text/plain)
 *     key                        the log's verifier key, name+id+key
 *     keys                       every key the log has had: the proof of each
 *                                log_key leaf in the checkpoint that
 *                                announced it (JSON), to follow rotations
 *     tile/<L>/<N>[.p/<W>]       tiles of hashes
 *     tile/entries/<N>[.p/<W>]   entry bundles: the commitments
 *
 * Tiles never change once they exist and are cached for a year; the
 * checkpoint is revalidated. Anyone may fetch them (CORS *). Reads that are
 * not in memory go through the context's reading handles.
 */
#ifndef RECEIPT_DAEMON_HTTP_LOG_H
#define RECEIPT_DAEMON_HTTP_LOG_H

#include "daemon/http_internal.h"

#include <microhttpd.h>
#include <stdbool.h>

/* Serves route (the path after /_receipt/log/, "" for the log itself). */
enum MHD_Result http_log_serve(http_context *ctx, request *req, struct MHD_Connection *c,
                               const char *route, bool head);

#endif
