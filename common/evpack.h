/*
 * evpack: the evidence log's event texts stored compactly, losslessly.
 *
 * An event is canonical JSON (RFC 8785), which never holds a raw byte below
 * 0x20, so those bytes can stand for what every event repeats: a member's
 * start (`,"client_addr":`), a frequent value (`"issued"`), a quoted
 * lowercase UUID (16 bytes), a quoted base64url SHA-256 (32 bytes) and a
 * decimal integer (a varint). A packed text is one format byte
 * (EVPACK_FORMAT) and then:
 *
 *   0x20 .. 0xff   the byte itself
 *   0x01 .. 0x1a   one of the first 26 pieces of the fixed table
 *   0x1b i         piece 26 + i of the table
 *   0x1c + 16      `"` the UUID in lowercase 8-4-4-4-12 form `"`
 *   0x1d + 32      `"` the 32 bytes in unpadded base64url `"`
 *   0x1e varint    the number in decimal (LEB128, up to 2^64 - 1)
 *   0x1f b         the byte b (any byte: an input that is not canonical
 *                  JSON round-trips too)
 *   0x00           never (refused)
 *
 * The table is part of the stored format: entries are only ever appended
 * (a stored text names pieces by number). The packing is a storage detail
 * of the SQLite ledger: commitments, proofs and bundles are always over the
 * canonical text itself.
 */
#ifndef RECEIPT_COMMON_EVPACK_H
#define RECEIPT_COMMON_EVPACK_H

#include <stddef.h>
#include <stdint.h>

#define EVPACK_FORMAT 1
/* Room that packing a text of n bytes may take, at most. */
#define EVPACK_MAX(n) (2 * (size_t)(n) + 1)

/*
 * Packs text (len bytes, any bytes) into out (cap bytes, EVPACK_MAX(len)
 * always suffice). Returns the packed length, or 0 when cap is too small.
 */
size_t evpack_encode(const char *text, size_t len, uint8_t *out, size_t cap);

/*
 * A packed text written piece by piece, as its text is written (the
 * event writer, daemon/tlog_event.c, which knows each member's name and
 * value and so has nothing to search for): evpack_start(), the puts in the
 * text's order, evpack_end(). What it makes unpacks to the text, as
 * evpack_encode()'s does, though it need not be the same bytes. A put that
 * does not fit makes evpack_end() return 0.
 */
typedef struct evpack_out {
    uint8_t *p;
    size_t cap;
    size_t len;
    int full;
} evpack_out;

void evpack_start(evpack_out *o, uint8_t *buf, size_t cap);
/* The number of the piece whose text is s (n bytes), or -1 for none. */
int evpack_piece_number(const char *s, size_t n);
/* Puts the piece of that number (0 <= number < the table's size). */
void evpack_put_piece(evpack_out *o, int number);
/* Puts text (n bytes, any) as it is. */
void evpack_put_text(evpack_out *o, const char *s, size_t n);
/* Puts a member's value that is a JSON string: quoted, n bytes with its
 * quotes, as the text has it. */
void evpack_put_string(evpack_out *o, const char *quoted, size_t n);
/* Puts a quoted unpadded base64url of 32 bytes (a SHA-256) from the bytes. */
void evpack_put_sha256(evpack_out *o, const uint8_t digest[32]);
/* Puts a non-negative integer as plain decimal. */
void evpack_put_number(evpack_out *o, uint64_t v);
/* The packed length, or 0 when something did not fit. */
size_t evpack_end(const evpack_out *o);

/*
 * Unpacks in (len bytes) into out (cap bytes). Returns the text's length,
 * or -1 when in is not a packed text or its text needs more than cap bytes.
 * out is not NUL-terminated.
 */
long evpack_decode(const uint8_t *in, size_t len, char *out, size_t cap);

#endif
