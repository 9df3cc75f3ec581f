/*
 * admin_token: the file that holds the bearer token of the admin API.
 *
 * STATE_DIR/admin-token holds 32 random bytes in base64url, made at first
 * start (mode 0600, through common/durable) and refused when it grants
 * group or other access, as the keys are. The listener (admin.c) compares
 * presented tokens with it.
 */
#ifndef RECEIPT_DAEMON_ADMIN_TOKEN_H
#define RECEIPT_DAEMON_ADMIN_TOKEN_H

#include "common/compiler.h"

#include <stdbool.h>
#include <stddef.h>

#define ADMIN_TOKEN_FILE "admin-token"
#define ADMIN_TOKEN_MIN  22 /* characters: 128 bits of base64url at least */
#define ADMIN_TOKEN_MAX  128

/*
 * Reads STATE_DIR/admin-token, or, with create, makes it when there is
 * none; *created tells which. A file that does not hold ADMIN_TOKEN_MIN to
 * ADMIN_TOKEN_MAX base64url characters is refused too. token holds
 * ADMIN_TOKEN_MAX + 1 bytes. Returns 0, 1 when the file is missing and
 * create is false, or -1 with err set. Start-up and --check both call it,
 * so that --check refuses what start-up would.
 */
WARN_UNUSED_RESULT int admin_token_load(const char *state_dir, bool create, char *token,
                                        bool *created, char *err, size_t errlen);

#endif
