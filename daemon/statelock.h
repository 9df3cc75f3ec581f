/*
 * statelock: one receiptd at a time serves from a state directory, and the
 * commands that rewrite its keys wait for none.
 *
 * A serving receiptd holds an exclusive flock(2) on STATE_DIR/receiptd.lock
 * until it exits; `receiptd keys rotate` and `receiptd keys import` take the
 * same lock for their change, so they refuse while a server runs (a running
 * server would go on signing with the key they retire). The lock belongs to
 * the open file, so a crashed server leaves none behind. --check, report,
 * ledger and evidence only read, and take no lock.
 */
#ifndef RECEIPT_DAEMON_STATELOCK_H
#define RECEIPT_DAEMON_STATELOCK_H

#include "common/compiler.h"

#include <stddef.h>

#define STATELOCK_FILE "receiptd.lock"

enum { STATELOCK_HELD = -2 };

/*
 * Takes the lock of state_dir (which must exist). Returns the descriptor
 * that holds it (close it to release; a server keeps it until it exits),
 * STATELOCK_HELD when another process holds it, or -1 on another failure;
 * err says which either way.
 */
WARN_UNUSED_RESULT int statelock_acquire(const char *state_dir, char *err, size_t errlen);

#endif
