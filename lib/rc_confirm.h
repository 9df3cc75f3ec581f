/*
 * rc_confirm: the confirmation of docs/protocol.md section 8 and the receipt
 * that answers it.
 *
 * rc_confirm_send() is shared by receipt_confirm() (a fresh delivery) and
 * receipt_flush() (a spooled one): it POSTs a sealed confirmation, judges
 * the answer and verifies the receipt. Whether to spool is the caller's
 * decision, from answer.retryable.
 */
#ifndef RECEIPT_LIB_RC_CONFIRM_H
#define RECEIPT_LIB_RC_CONFIRM_H

#include "receipt/receipt.h"

#include "lib/rc_client.h"
#include "lib/rc_delivery.h"

#include <jansson.h>
#include <stdbool.h>

#define RC_CONFIRM_ANSWER_MAX (16 * 1024)
#define RC_RECEIPT_MAX        4096
#define RC_RECEIPT_FILE_MODE  0644

typedef struct rc_confirm_answer {
    long http_status;      /* 0: no answer came                         */
    long retry_after_s;    /* -1: none                                  */
    bool retryable;        /* no answer, 429 or 5xx                     */
    receipt_status status; /* CONFIRMED or CORRUPTED on RECEIPT_OK       */
    char *receipt;         /* the verified JWS on RECEIPT_OK (malloc'd) */
    char *proof;           /* its checked proof (JSON text), or NULL    */
} rc_confirm_answer;

void rc_confirm_answer_clear(rc_confirm_answer *a);

/* The confirmation JWE of a fetched delivery (needs its K and ticket). */
receipt_result rc_confirm_seal(receipt_client *c, const receipt_delivery *d, uint64_t now_ms,
                               char **jwe);

/*
 * POSTs body to url with client_key. The receipt is verified with a "sig"
 * key from jwks_text (when not NULL) or else the key set of origin.
 */
receipt_result rc_confirm_send(receipt_client *c, const char *url, const char *client_key,
                               const char *body, const char *delivery, const char *client_id,
                               const char *jwks_text, const char *origin, rc_confirm_answer *a);

/*
 * Verifies a receipt with set and checks its payload: version 1, and, for
 * each of delivery, client_id and status that is given, the same value.
 * On RECEIPT_OK, *status and *payload (malloc'd) are set when asked for.
 */
receipt_result rc_confirm_check_receipt(receipt_client *c, const json_t *set, const char *jws,
                                        const char *delivery, const char *client_id,
                                        receipt_status *status, char **payload);

/* Saves d's receipt in the client's receipt directory, if it has one. */
receipt_result rc_confirm_save_receipt(receipt_client *c, receipt_delivery *d);

#endif
