/*
 * checkpoint: the body of a C2SP tlog-checkpoint, the signed tree head.
 *
 *     <origin>\n
 *     <tree size in decimal, no leading zero>\n
 *     <base64 of the 32-byte root hash>\n
 *     [<extension line>\n ...]
 *
 * The text is then signed as a note (note.h), by a key whose name is the
 * origin. Parsing is strict: at most CHECKPOINT_MAX_LEN bytes, an origin of 1
 * to CHECKPOINT_ORIGIN_MAX bytes of UTF-8 without control characters, a size
 * below 2^63, a root of exactly 44 base64 characters, at most
 * CHECKPOINT_MAX_EXTENSIONS extension lines, none empty. Writing is stricter
 * still: the origin must also be a valid key name (no spaces, no plus sign).
 * Opening a checkpoint does not compare its origin with anything: the
 * caller checks that it is the log it expects.
 *
 * Nothing here allocates; a parsed checkpoint is a value that owns its
 * copies.
 */
#ifndef RECEIPT_COMMON_CHECKPOINT_H
#define RECEIPT_COMMON_CHECKPOINT_H

#include "common/merkle.h"
#include "common/note.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHECKPOINT_ORIGIN_MAX     NOTE_NAME_MAX /* bytes */
#define CHECKPOINT_MAX_EXTENSIONS 8
#define CHECKPOINT_EXTENSIONS_MAX 1024 /* bytes of all extension lines, newlines included */
#define CHECKPOINT_MAX_LEN                                                                         \
    (CHECKPOINT_ORIGIN_MAX + 1 + 20 + 44 + 1 + CHECKPOINT_EXTENSIONS_MAX) /* text, without NUL */

typedef struct checkpoint {
    char origin[CHECKPOINT_ORIGIN_MAX + 1];
    uint64_t size;
    merkle_hash root;
    /* the extension lines as they were, each with its newline; "" for none */
    char extensions[CHECKPOINT_EXTENSIONS_MAX + 1];
} checkpoint;

/*
 * Writes the checkpoint text into out (cap bytes; CHECKPOINT_MAX_LEN + 1
 * always suffice), NUL-terminated; returns its length, or 0 when the
 * checkpoint cannot be written (origin or extension lines invalid, size too
 * large, cap too small).
 */
size_t checkpoint_format(const checkpoint *c, char *out, size_t cap);

/* Parses n bytes of checkpoint text; false when it is not exactly one. */
bool checkpoint_parse(const char *text, size_t n, checkpoint *out);

/*
 * Opens a signed checkpoint: note_open() with the known verifiers, then
 * checkpoint_parse() of its text. NOTE_MALFORMED when the note is valid but
 * its text is not a checkpoint. signed_by as note_open().
 */
note_result checkpoint_open(const char *msg, size_t n, note_verifier *const *known, size_t nknown,
                            checkpoint *out, bool *signed_by);

#endif
