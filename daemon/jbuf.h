/*
 * jbuf: one capped, growable text buffer and the JSON written into it, after
 * curl's dynbuf.
 *
 * Every JSON text receiptd makes (error bodies, plug-in data, receipts, the
 * admin API, exports; /metrics is text built here too) is built here, so
 * that there is one rule for strings (RFC 8259): '"' and '\' escaped with a backslash, control
 * characters and DEL (0x7f) as \u00XX, other valid UTF-8 as it is, and each
 * byte that is not part of valid UTF-8 replaced by U+FFFD. (Canonical JSON,
 * which is hashed and signed, has the spelling RFC 8785 fixes: common/jcs.)
 *
 * A jbuf starts in memory of the caller's (a stack buffer, so that the
 * request path allocates nothing) and, when it was made growable, moves to
 * the heap as it grows, up to its cap. What does not fit sets failed and
 * changes nothing more: a text is never cut short silently, and a caller
 * checks failed once, at the end. The text is NUL-terminated at all times.
 * A jbuf is used by one thread at a time.
 */
#ifndef RECEIPT_DAEMON_JBUF_H
#define RECEIPT_DAEMON_JBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct jbuf {
    char *data;  /* the text, NUL-terminated                          */
    size_t len;  /* its length                                        */
    size_t size; /* bytes at data                                     */
    size_t cap;  /* the longest text allowed                          */
    bool heap;   /* data was allocated here (jbuf_free() releases it) */
    bool failed; /* something did not fit: the text is a prefix      */
} jbuf;

/* A buffer of size bytes at mem (size > 0), which it never leaves: the
 * text may reach size - 1 bytes. Nothing to free. */
void jbuf_init(jbuf *b, char *mem, size_t size);

/* Starts in mem (size bytes, or NULL and 0) and grows on the heap up to a
 * text of cap bytes. jbuf_free() or jbuf_take() ends it. */
void jbuf_init_growing(jbuf *b, char *mem, size_t size, size_t cap);

/* Releases heap memory; the jbuf is empty and failed afterwards. NULL-safe. */
void jbuf_free(jbuf *b);

/* The text as malloc'd memory the caller frees (*len set when len is not
 * NULL), and the jbuf emptied as by jbuf_free(). NULL if it failed or
 * memory ran out. */
char *jbuf_take(jbuf *b, size_t *len);

/* Empties the text (keeping its memory) and clears failed. */
void jbuf_reset(jbuf *b);

/* ---- text ---- */

void jbuf_add(jbuf *b, const char *s, size_t n);
void jbuf_adds(jbuf *b, const char *s);
void jbuf_addf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- JSON ---- */

/* The length of the longest prefix of s (n bytes) that a JSON string holds
 * as it is: printable ASCII but '"' and '\\'. Eight bytes a step. */
size_t jbuf_plain_len(const char *s, size_t n);
/* s (n bytes) as the inside of a JSON string, by the rule above. */
void jbuf_escaped(jbuf *b, const char *s, size_t n);
/* A JSON string: quotes around jbuf_escaped(). */
void jbuf_string(jbuf *b, const char *s, size_t n);
/* jbuf_string() of a NUL-terminated s. */
void jbuf_str(jbuf *b, const char *s);
/* jbuf_str(), or null for NULL or "". */
void jbuf_opt_str(jbuf *b, const char *s);
void jbuf_u64(jbuf *b, uint64_t v);
void jbuf_i64(jbuf *b, int64_t v);
/* v, or null for 0 (a time that has not happened, a count that is none). */
void jbuf_opt_u64(jbuf *b, uint64_t v);
/* The shortest decimal that reads back as v; null for NaN and infinities,
 * which JSON lacks. */
void jbuf_double(jbuf *b, double v);

/*
 * A comma, unless the text is empty or ends in '{', '[' or ':', so that
 * members and elements can be written one after another without counting.
 */
void jbuf_sep(jbuf *b);
/* jbuf_sep() and "key": (key is a literal of this program: not escaped). */
void jbuf_key(jbuf *b, const char *key);
/* A member: jbuf_key() and the value. */
void jbuf_member_str(jbuf *b, const char *key, const char *s);
void jbuf_member_u64(jbuf *b, const char *key, uint64_t v);

/* The error object of both listeners (docs/protocol.md section 10, docs/api.md):
 * {"error":code,"message":message} and a newline. */
void jbuf_error(jbuf *b, const char *code, const char *message);

#endif
