/*
 * rc_key: the client key file.
 *
 * A key file is the PKCS#8 PEM of a P-256 private key, mode 0600, written
 * atomically. Like ssh, loading refuses a file that group or others may
 * access, since anyone who reads it can confirm deliveries in the client's
 * name. The public receipt_client_*_key() functions are thin wrappers.
 */
#ifndef RECEIPT_LIB_RC_KEY_H
#define RECEIPT_LIB_RC_KEY_H

#include "receipt/receipt.h"

#include "common/eckey.h"

#include <stdbool.h>
#include <stddef.h>

#define RC_KEY_FILE_MAX  (16 * 1024)
#define RC_KEY_FILE_MODE 0600
#define RC_KEY_DIR_MODE  0700

/* Loads a private key; on failure returns an error code and writes err. */
receipt_result rc_key_load(const char *path, eckey **out, char *err, size_t errlen);

/* Saves a private key (see receipt_client_save_key()). */
receipt_result rc_key_save(const eckey *key, const char *path, bool overwrite, char *err,
                           size_t errlen);

#endif
