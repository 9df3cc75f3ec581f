/*
 * confirm: POST /_receipt/confirm (docs/protocol.md section 8).
 *
 * A confirmation is checked completely on the worker thread
 * (confirm_check), its receipt signed, and then handed to the ledger writer
 * while the connection is suspended. The writer resumes it once the batch
 * holding the confirmation is durable; a watchdog resumes it with 503 if the
 * ledger has not answered within the bound, so a stuck disk never hangs
 * clients. A confirmation in flight (confirm_call) is shared by the
 * connection, the writer callback and the watchdog: it is reference
 * counted, and whoever moves it out of pending first decides the answer.
 */
#ifndef RECEIPT_DAEMON_CONFIRM_H
#define RECEIPT_DAEMON_CONFIRM_H

#include "daemon/http_internal.h"

#include <microhttpd.h>
#include <stddef.h>

/* The watchdog: a thread that answers 503 to confirmations waiting longer
 * than timeout_ms. NULL when it cannot be started. */
confirm_waits *confirm_waits_new(unsigned timeout_ms);
/* Answers every waiting confirmation 503 now; returns how many there were. */
size_t confirm_waits_abort(confirm_waits *waits);
/* Only once the ledger writer is stopped: its callbacks use the waits.
 * NULL-safe. */
void confirm_waits_free(confirm_waits *waits);

/* POST /_receipt/confirm, every call of the request (body chunks, resume). */
enum MHD_Result confirm_serve(http_context *ctx, request *req, struct MHD_Connection *c,
                              const char *upload_data, size_t *upload_data_size);

/* Drops the request's hold on its confirmation, if any (request completed). */
void confirm_release(request *req);

#endif
