/*
 * recovery: the file that keeps ledger events the ledger could not take.
 *
 * STATE_DIR/ledger-recovery (mode 0600) is where the ledger writer saves the
 * events it still holds when it must give up on the ledger: at shutdown,
 * once --shutdown-grace has passed with the ledger still failing, and at
 * once after a fatal ledger failure. The next start applies the file to the
 * ledger before it serves anything, then empties it.
 *
 * Its space is reserved when it is opened (fallocate, sized for a full
 * queue plus a batch at the largest record), so that a full disk cannot
 * stop the save: records are written into blocks that already exist, and
 * one fsync makes them durable. (On copy-on-write filesystems such as btrfs
 * or ZFS a reservation does not guarantee that an overwrite finds room.)
 *
 * Format: a 32-byte header (RECOVERY_MAGIC), then records written one after
 * the other from the header on; the reserved space after the last record
 * reads as zeros, which ends the list. A record is
 *   u32 tag 'RCV2' | u32 payload length | payload | 8 bytes of the SHA-256
 *   of tag, length and payload
 * with the event's fields in the payload (little-endian integers, strings as
 * a u16 length and their bytes), the delivery's kind and the digest and size
 * of the bytes it sent among them. Records tagged 'RCV1', written before
 * kinds existed, are still read (as tracked deliveries that sent what they
 * stored). A record that is cut short or does not
 * match its digest (a crash during the save, which then never completed)
 * ends the list; anything readable after it is reported as damage.
 *
 * Applying an event twice changes nothing (an issue of an existing delivery
 * is ignored, a binding applies only to an issued row, a confirmation only
 * to an unconfirmed one), so a crash between applying the file and emptying
 * it is harmless. Not thread-safe: one thread uses a handle at a time.
 */
#ifndef RECEIPT_DAEMON_RECOVERY_H
#define RECEIPT_DAEMON_RECOVERY_H

#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECOVERY_FILE       "ledger-recovery"
#define RECOVERY_HEADER_LEN 32
#define RECOVERY_ERR_MAX    512

typedef struct recovery_file recovery_file;

/* The most bytes one event takes in the file. */
size_t recovery_record_max(void);

/* What the file reserves for `events` events: header plus the largest records. */
uint64_t recovery_size_for(size_t events);

/*
 * Opens STATE_DIR/ledger-recovery for saving, creating it when missing, and
 * reserves recovery_size_for(events) bytes. The file must hold no events:
 * apply it first (recovery_apply). Returns NULL with err set, e.g. when the
 * space cannot be reserved.
 */
recovery_file *recovery_open(const char *state_dir, size_t events, char *err, size_t errlen);

/*
 * Appends events[0..n) after the records already there and makes them
 * durable. Returns how many were saved (a prefix of the n, all of them
 * unless the reservation ran out or the disk failed; err then says why).
 */
size_t recovery_save(recovery_file *rf, const ledger_event *const *events, size_t n, char *err,
                     size_t errlen);

/* Bytes reserved on disk, and events saved through this handle. */
uint64_t recovery_reserved(const recovery_file *rf);
uint64_t recovery_saved(const recovery_file *rf);

void recovery_close(recovery_file *rf); /* NULL-safe */

/* What a read of the file found. */
typedef struct recovery_summary {
    uint64_t events;     /* readable events                                  */
    uint64_t damaged_at; /* 0, or the offset of a bad record followed by data */
    bool exists;
} recovery_summary;

/*
 * Reads the file of state_dir without changing it: counts the events and
 * notes damage. No file is a summary with exists false. Returns 0, or -1
 * with err set when the file cannot be read or is not a recovery file.
 */
int recovery_inspect(const char *state_dir, recovery_summary *out, char *err, size_t errlen);

/*
 * Applies every event of the file to lg, in order, in transactions of at
 * most batch_max events (each with the evidence log's hook, when not NULL:
 * the events are logged as the writer logs them), then removes the file (a
 * damaged one is renamed ledger-recovery.damaged-TIME for inspection
 * instead). Events the ledger refuses are logged and skipped. Returns 0
 * with the summary filled (no file: nothing to do), or -1 with err set; the
 * file is then left as it was.
 */
int recovery_apply(const char *state_dir, ledger *lg, size_t batch_max, const ledger_log_hook *hook,
                   recovery_summary *out, char *err, size_t errlen);

#endif
