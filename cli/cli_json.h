/*
 * cli_json: JSON strings on a stream, for the command's --json output.
 *
 * The same rule as the server's JSON writer (daemon/jbuf.h), written again
 * here because the command uses nothing of the project but the public
 * header: '"' and '\' escaped with a backslash, control characters and DEL
 * as \u00XX, valid UTF-8 as it is, and each byte that is not part of valid
 * UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF) replaced by U+FFFD, so that file names and URLs of any bytes
 * still make valid JSON.
 */
#ifndef RECEIPT_CLI_CLI_JSON_H
#define RECEIPT_CLI_CLI_JSON_H

#include <stdio.h>

/* s as a JSON string literal on f, or null when s is NULL. */
void cli_json_str(FILE *f, const char *s);

#endif
