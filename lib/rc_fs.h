/*
 * rc_fs: durable, atomic files.
 *
 * A file is written in two steps so that a crash leaves either the old
 * state or the new one, never a torn file under the final name:
 * rc_fs_stage() writes the bytes to a temporary name beside the target
 * (".NAME.tmp-XXXXXX", created exclusively) and fsyncs it; rc_fs_commit()
 * renames it over the target and fsyncs the directory. Temporary names
 * start with a dot and end in RC_FS_TMP_MARK plus six characters, so that
 * directory scans can skip them and sweep the ones a crash left behind.
 *
 * Error messages are written to a caller's buffer, for a person.
 */
#ifndef RECEIPT_LIB_RC_FS_H
#define RECEIPT_LIB_RC_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RC_FS_PATH_MAX 4096
#define RC_FS_TMP_MARK ".tmp-"

/* Opens a new temporary file beside path with mode (subject to the umask);
 * tmp (RC_FS_PATH_MAX bytes) receives its name. Returns the fd or -1. */
int rc_fs_open_temp(const char *path, mode_t mode, char *tmp, char *err, size_t errlen);

/* Writes all n bytes to fd, retrying short writes. Returns 0 or -1. */
int rc_fs_write_all(int fd, const void *data, size_t n);

/* Writes data to a new temporary file beside path and fsyncs it. */
int rc_fs_stage(const char *path, const void *data, size_t n, mode_t mode, char *tmp, char *err,
                size_t errlen);

/*
 * Renames tmp to path and fsyncs the directory. Without overwrite an
 * existing path is kept, tmp is removed and the result is 1. Returns 0 on
 * success, -1 on failure (tmp removed).
 */
int rc_fs_commit(const char *tmp, const char *path, bool overwrite, char *err, size_t errlen);

/* rc_fs_stage() then rc_fs_commit(). */
int rc_fs_write_atomic(const char *path, const void *data, size_t n, mode_t mode, bool overwrite,
                       char *err, size_t errlen);

/* fsyncs the directory that holds path (durability of a rename or unlink). */
int rc_fs_sync_parent(const char *path);

/* Creates dir and its missing parents with mode. Returns 0 or -1. */
int rc_fs_mkdirs(const char *dir, mode_t mode, char *err, size_t errlen);

/*
 * Reads a whole regular file of at most cap bytes into *out (malloc'd,
 * NUL-terminated). st_mode, when not NULL, receives the file's mode.
 * Returns 0, or -1 (missing: errno ENOENT; too large: EFBIG).
 */
int rc_fs_read(const char *path, size_t cap, char **out, size_t *len, mode_t *st_mode, char *err,
               size_t errlen);

/* Whether a directory entry name is a temporary file of rc_fs. */
bool rc_fs_is_temp_name(const char *name);

#endif
