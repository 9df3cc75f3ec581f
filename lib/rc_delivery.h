/*
 * rc_delivery: the inside of a receipt_delivery.
 *
 * A delivery is made by a fetch (from the response and the plug-in data),
 * or read back from a spool entry by a flush; it then lacks what only the
 * fetch knew (K, the ticket) and carries the sealed confirmation instead.
 * The delivery owns every string it points to and wipes K when freed.
 */
#ifndef RECEIPT_LIB_RC_DELIVERY_H
#define RECEIPT_LIB_RC_DELIVERY_H

#include "receipt/receipt.h"

#include "common/eckey.h"
#include "common/jose.h"
#include "common/kdf.h"
#include "common/uuid7.h"
#include "lib/rc_url.h"

#include <stdbool.h>
#include <stdint.h>

#define RC_SHA256_B64_LEN 43

struct receipt_delivery {
    char id[UUID7_STR_LEN + 1];
    receipt_status status;
    bool intact;

    char *url;                  /* fetched URL (NULL when read from the spool)   */
    char origin[RC_ORIGIN_MAX]; /* of the answering URL: its key set      */
    char *content_path;
    char sha256[RC_SHA256_B64_LEN + 1]; /* received             */
    uint64_t size;
    char expected_sha256[RC_SHA256_B64_LEN + 1]; /* from the plug-in data */
    uint64_t expected_size;
    char *file;
    uint64_t received_at_ms;

    /* From the plug-in data, for the confirmation. */
    char *confirm_url;
    char *ticket;
    char client_id[ECKEY_THUMBPRINT_LEN + 1];
    char skid[JOSE_KID_MAX + 1];
    bool has_k;
    uint8_t k[KDF_KEY_LEN];

    char *receipt;
    char *receipt_file;
    char *proof; /* the answer's "proof" (JSON text), or NULL */
};

receipt_delivery *rc_delivery_new(void);

#endif
