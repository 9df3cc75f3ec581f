/*
 * rc_spool: confirmations waiting to be sent, one file each.
 *
 * An entry is a JSON object in SPOOL/<created_ms, 16 digits>-<delivery>.json,
 * so that the lexical order of names is the order of creation. It holds
 * everything a later process needs to send the confirmation without the
 * fetch's state: the confirm URL, the sealed confirmation (JWE), the
 * Receipt-Client-Key value, the server's key set (to verify the receipt),
 * what was received, and the retry state (attempts, next_attempt_ms).
 *
 * Entries are written through durable (temporary file, fsync, rename, fsync
 * of the directory): a crash leaves the old entry or the new one. A
 * temporary file that a crash left behind is ignored by listings and swept
 * once older than RC_SPOOL_TEMP_MAX_AGE_MS (younger ones may belong to a
 * process still writing). An entry that cannot be parsed is renamed to
 * NAME.bad and skipped, so that it is neither lost nor retried forever.
 *
 * Retries back off exponentially: after the n-th failed attempt the next
 * one waits rc_spool_backoff_ms(n, random), between half and all of
 * min(1 s * 2^(n-1), 1 h) ("equal jitter"), or the server's Retry-After
 * when that is longer (at most RC_SPOOL_RETRY_AFTER_MAX_MS).
 */
#ifndef RECEIPT_LIB_RC_SPOOL_H
#define RECEIPT_LIB_RC_SPOOL_H

#include "common/eckey.h"
#include "common/sjson.h"
#include "common/uuid7.h"
#include "lib/rc_delivery.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_SPOOL_ENTRY_MAX          SJSON_MAX_LEN /* bytes of one entry file        */
#define RC_SPOOL_LIST_MAX           100000        /* entries one flush looks at     */
#define RC_SPOOL_NAME_MAX           64
#define RC_SPOOL_SUFFIX             ".json"
#define RC_SPOOL_BAD_SUFFIX         ".bad"
#define RC_SPOOL_BACKOFF_BASE_MS    1000ull
#define RC_SPOOL_BACKOFF_CAP_MS     (3600ull * 1000)
#define RC_SPOOL_RETRY_AFTER_MAX_MS (24ull * 3600 * 1000)
#define RC_SPOOL_TEMP_MAX_AGE_MS    (3600ull * 1000)
#define RC_SPOOL_ERROR_MAX          256

typedef struct rc_spool_entry {
    char name[RC_SPOOL_NAME_MAX + 1]; /* file name; "" until written     */
    char delivery[UUID7_STR_LEN + 1];
    char *confirm_url;
    char *body; /* the confirmation JWE            */
    char client_key[ECKEY_POINT_B64_LEN + 1];
    char client_id[ECKEY_THUMBPRINT_LEN + 1];
    char *jwks; /* the server's key set, or NULL   */
    char *url;  /* fetched URL, or NULL            */
    char *content_path;
    char sha256[RC_SHA256_B64_LEN + 1];
    uint64_t size;
    char expected_sha256[RC_SHA256_B64_LEN + 1]; /* as the server stated */
    uint64_t expected_size;
    bool intact;
    char *file; /* local copy, or NULL             */
    uint64_t created_ms;
    uint64_t next_attempt_ms;
    unsigned attempts;
    char last_error[RC_SPOOL_ERROR_MAX];
} rc_spool_entry;

/* Frees the strings of an entry and zeroes it. */
void rc_spool_entry_clear(rc_spool_entry *e);

/* The file name for an entry: "%016llu-<delivery>.json". */
void rc_spool_entry_name(uint64_t created_ms, const char *delivery,
                         char name[RC_SPOOL_NAME_MAX + 1]);

/* Writes (or rewrites) an entry atomically; sets e->name when empty. */
int rc_spool_write(const char *dir, rc_spool_entry *e, char *err, size_t errlen);

/*
 * The first half of rc_spool_write(): the entry's bytes are durable under a
 * temporary name (tmp, DURABLE_PATH_MAX bytes) but not yet visible.
 * rc_spool_write() is rc_spool_stage() then durable_commit(); tests stop
 * between the two to play a crash.
 */
int rc_spool_stage(const char *dir, rc_spool_entry *e, char *tmp, char *final_path, char *err,
                   size_t errlen);

/* Reads an entry by file name. Returns 0, -1 on I/O error, -2 when the
 * file is not a valid entry. */
int rc_spool_read(const char *dir, const char *name, rc_spool_entry *e, char *err, size_t errlen);

/* Removes an entry (and syncs the directory). A missing entry is not an
 * error: another process may have sent it. */
int rc_spool_remove(const char *dir, const char *name, char *err, size_t errlen);

/* Sets a corrupt entry aside as NAME.bad. */
int rc_spool_quarantine(const char *dir, const char *name);

/*
 * The names of the entries, sorted (= oldest first), at most
 * RC_SPOOL_LIST_MAX. *names is an array of *count malloc'd strings; free
 * with rc_spool_list_free(). Temporary and quarantined files are skipped.
 */
int rc_spool_list(const char *dir, char ***names, size_t *count, char *err, size_t errlen);
void rc_spool_list_free(char **names, size_t count);

/* Removes temporary files older than max_age_ms; returns how many. */
size_t rc_spool_sweep(const char *dir, uint64_t now_ms, uint64_t max_age_ms);

/*
 * The wait after the attempts-th failed attempt (attempts >= 1), given a
 * uniformly random 64-bit value: in [d/2, d] with
 * d = min(RC_SPOOL_BACKOFF_BASE_MS << (attempts - 1), RC_SPOOL_BACKOFF_CAP_MS).
 * Pure: the same arguments give the same answer.
 */
uint64_t rc_spool_backoff_ms(unsigned attempts, uint64_t random);

/*
 * Records a failed attempt at now_ms: attempts + 1, next_attempt_ms from
 * the backoff (or retry_after_s when >= 0 and longer), last_error.
 */
void rc_spool_entry_failed(rc_spool_entry *e, uint64_t now_ms, uint64_t random, long retry_after_s,
                           const char *why);

/* Whether an entry's next attempt is due at now_ms. */
bool rc_spool_due(const rc_spool_entry *e, uint64_t now_ms);

#endif
