/*
 * walbuf: an SQLite VFS over the default one that writes a transaction's
 * WAL frames with one pwrite() instead of two a frame.
 *
 * SQLite writes each WAL frame as two writes (its 24-byte header, then the
 * page), each a system call: a commit of 70 frames made 140 of them, about
 * 2.5 µs each on the machine measured (docs/performance.md, "The writer's
 * fixed cost per commit"). This VFS gathers the WAL writes that follow each
 * other in a buffer and writes them at the end of the frame that commits
 * (the one whose header gives the database's size), so that a commit
 * returns with all of its frames written, as before: what a later fsync
 * makes durable is the same, and so is what a crash or SIGKILL leaves.
 * The buffer is also written before anything else touches the WAL (a read,
 * a sync, a truncation, its size, closing it), when a write does not follow
 * the buffered ones, and when it is full. Other files pass through.
 */
#ifndef RECEIPT_DAEMON_WALBUF_H
#define RECEIPT_DAEMON_WALBUF_H

#include <sqlite3.h>

/* The VFS's name, for sqlite3_open_v2(). */
#define WALBUF_VFS "receipt-walbuf"

/* Registers the VFS (not as the default) over the default one; idempotent
 * and thread-safe. Returns SQLITE_OK or SQLite's error. */
int walbuf_register(void);

/*
 * Writes what is buffered for connection db's WAL, if anything (a commit
 * leaves nothing buffered: a check that costs one file control). Returns
 * SQLITE_OK or the write's error.
 */
int walbuf_flush(sqlite3 *db);

#endif
