/*
 * accesslog: the combined-format access log (--access-log FILE).
 *
 * Each line is formatted into a stack buffer and written with one write()
 * to an O_APPEND descriptor, so workers need no lock and lines never
 * interleave. accesslog_reopen() (on SIGHUP, after rotation) swaps the file
 * under the same descriptor number with dup2(), which is atomic for writers.
 */
#ifndef RECEIPT_DAEMON_ACCESSLOG_H
#define RECEIPT_DAEMON_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#define ACCESSLOG_LINE_MAX 4096

typedef struct accesslog accesslog;

typedef struct accesslog_entry {
    const char *client_addr;
    const char *method;
    const char *uri; /* as received, may be NULL */
    const char *version;
    unsigned status;
    uint64_t bytes;
    const char *referer;    /* NULL: "-" */
    const char *user_agent; /* NULL: "-" */
} accesslog_entry;

/* Opens (creates, mode 0640) path for appending; NULL with err set. */
accesslog *accesslog_open(const char *path, char *err, size_t errlen);
int accesslog_reopen(accesslog *log);
void accesslog_write(accesslog *log, const accesslog_entry *entry);
void accesslog_close(accesslog *log);

#endif
