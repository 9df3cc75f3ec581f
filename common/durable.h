/*
 * durable: files that survive a crash whole, for everything this project
 * keeps on disk: the server's keys and admin token, the client's key,
 * receipts, spool entries and downloads.
 *
 * A file is written in two steps so that a crash leaves either the old
 * state or the new one, never a torn file under the final name:
 * durable_stage() writes the bytes to a temporary name beside the target
 * (".NAME.tmp-XXXXXX", created exclusively) and fsyncs it; durable_commit()
 * renames it over the target and fsyncs the directory. Temporary names
 * start with a dot and end in DURABLE_TMP_MARK plus six characters, so that
 * directory scans can skip them and sweep the ones a crash left behind.
 *
 * Error messages are written to a caller's buffer, for a person; errno is
 * left as the failing call set it. Thread-safe (no state).
 */
#ifndef RECEIPT_COMMON_DURABLE_H
#define RECEIPT_COMMON_DURABLE_H

#include "common/compiler.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DURABLE_PATH_MAX 4096
#define DURABLE_TMP_MARK ".tmp-"

/* Opens a new temporary file beside path with mode (subject to the umask);
 * tmp (DURABLE_PATH_MAX bytes) receives its name. Returns the fd or -1. */
WARN_UNUSED_RESULT int durable_open_temp(const char *path, mode_t mode, char *tmp, char *err,
                                         size_t errlen);

/* Writes all n bytes to fd, retrying short writes. Returns 0 or -1. */
WARN_UNUSED_RESULT int durable_write_all(int fd, const void *data, size_t n);

/* Writes data to a new temporary file beside path and fsyncs it. */
WARN_UNUSED_RESULT int durable_stage(const char *path, const void *data, size_t n, mode_t mode,
                                     char *tmp, char *err, size_t errlen);

/*
 * Renames tmp to path and fsyncs the directory. Without overwrite an
 * existing path is kept, tmp is removed and the result is 1. Returns 0 on
 * success, -1 on failure (tmp removed).
 */
WARN_UNUSED_RESULT int durable_commit(const char *tmp, const char *path, bool overwrite, char *err,
                                      size_t errlen);

/* durable_stage() then durable_commit(). */
WARN_UNUSED_RESULT int durable_write_atomic(const char *path, const void *data, size_t n,
                                            mode_t mode, bool overwrite, char *err, size_t errlen);

/* fsyncs the directory that holds path (durability of a rename or unlink). */
WARN_UNUSED_RESULT int durable_sync_parent(const char *path);

/* Creates dir and its missing parents with mode. Returns 0 or -1. */
WARN_UNUSED_RESULT int durable_mkdirs(const char *dir, mode_t mode, char *err, size_t errlen);

/*
 * Reads a whole regular file of at most cap bytes into *out (malloc'd,
 * NUL-terminated). st_mode, when not NULL, receives the file's mode.
 * Returns 0, or -1 (missing: errno ENOENT; too large: EFBIG; not a regular
 * file: EINVAL, at once, a FIFO included).
 */
WARN_UNUSED_RESULT int durable_read(const char *path, size_t cap, char **out, size_t *len,
                                    mode_t *st_mode, char *err, size_t errlen);

/* Whether a directory entry name is a temporary file of durable. */
bool durable_is_temp_name(const char *name);

#endif
