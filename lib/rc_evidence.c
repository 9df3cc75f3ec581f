#include "lib/rc_evidence.h"

#include "common/b64.h"
#include "common/checkpoint.h"
#include "common/durable.h"
#include "common/jcs.h"
#include "common/jose.h"
#include "common/merkle.h"
#include "common/note.h"
#include "common/sjson.h"
#include "common/tiles.h"
#include "lib/rc_confirm.h"
#include "lib/rc_http.h"
#include "lib/rc_jwks.h"
#include "lib/rc_url.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EVIDENCE_EVENTS_MAX  64           /* events of one delivery in a bundle */
#define EVIDENCE_KEYS_MAX    64           /* log keys, and signing keys, of a bundle */
#define AUDIT_TILE_CACHE     16           /* tiles an audit keeps in memory */
#define AUDIT_CHECKPOINT_MAX 8192         /* bytes of a checkpoint, signatures and all */
#define AUDIT_KEYS_MAX       (256 * 1024) /* bytes of the log's key changes */
#define RECEIPT_HASH_LEN     43           /* base64url of SHA-256 */

/* Bytes of a pinned log's file: its key and the checkpoint kept, whose
 * newlines JSON doubles (a note has no other control character). */
#define AUDIT_PIN_MAX (2 * AUDIT_CHECKPOINT_MAX + NOTE_VKEY_MAX + 256)

/* ---- pieces of proofs ---- */

/* A hash in standard base64, as checkpoints and proofs write them. */
static bool hash_parse(const json_t *v, merkle_hash *out)
{
    return json_is_string(v) && b64std_decode(json_string_value(v), json_string_length(v),
                                              out->bytes, sizeof out->bytes) == MERKLE_HASH_LEN;
}

/* A list of at most MERKLE_MAX_PROOF hashes. Returns its length, or -1. */
static long hashes_parse(const json_t *list, merkle_hash *out)
{
    if (!json_is_array(list) || json_array_size(list) > MERKLE_MAX_PROOF)
        return -1;
    for (size_t i = 0; i < json_array_size(list); i++)
        if (!hash_parse(json_array_get(list, i), &out[i]))
            return -1;
    return (long)json_array_size(list);
}

/*
 * The trusted log keys in text: one verifier key, or several separated by
 * newlines (the keys a log has had), all of one log. Returns how many went
 * to out (at most max), or -1 with why set.
 */
static long log_keys_parse(const char *text, note_verifier **out, size_t max, char *why,
                           size_t whylen)
{
    size_t count = 0;
    for (const char *p = text; *p != '\0';) {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len > 0) {
            if (count == max) {
                snprintf(why, whylen, "more than %zu log keys", max);
                goto fail;
            }
            if (note_verifier_parse(p, len, &out[count]) != NOTE_OK) {
                snprintf(why, whylen, "%.*s is not a log's verifier key",
                         (int)(len > 300 ? 300 : len), p);
                goto fail;
            }
            if (strcmp(note_verifier_name(out[count]), note_verifier_name(out[0])) != 0) {
                snprintf(why, whylen, "the log keys given are of two logs, %.*s and %.*s", 200,
                         note_verifier_name(out[0]), 200, note_verifier_name(out[count]));
                count++;
                goto fail;
            }
            count++;
        }
        p += end != NULL ? (size_t)(end - p) + 1 : strlen(p);
    }
    if (count == 0) {
        snprintf(why, whylen, "no log key given");
        return -1;
    }
    return (long)count;
fail:
    for (size_t i = 0; i < count; i++)
        note_verifier_free(out[i]);
    return -1;
}

/*
 * Why a checkpoint does not open with the keys given: when its signatures
 * are by other keys of the same log, names them (by key ID) and says what
 * serves an auditor then. Else the reason note_open gave.
 */
static void signed_by_other(const char *note, note_verifier *const *known, size_t nknown,
                            note_result nr, char *why, size_t whylen)
{
    const char *name = note_verifier_name(known[0]);
    size_t name_len = strlen(name);
    char ids[128] = "";
    size_t found = 0;
    const char *sigs = strstr(note, "\n\n");
    for (const char *line = sigs != NULL ? sigs + 2 : ""; *line != '\0' && found < 8;) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        static const char dash[] = "\xe2\x80\x94 ";
        size_t prefix = sizeof dash - 1 + name_len + 1; /* "— name " */
        uint8_t blob[NOTE_SIG_MAX];
        if (len > prefix && memcmp(line, dash, sizeof dash - 1) == 0 &&
            memcmp(line + sizeof dash - 1, name, name_len) == 0 && line[prefix - 1] == ' ' &&
            b64std_decode(line + prefix, len - prefix, blob, sizeof blob) >= 4) {
            size_t at = strlen(ids);
            snprintf(ids + at, sizeof ids - at, "%s%02x%02x%02x%02x", found > 0 ? ", " : "",
                     blob[0], blob[1], blob[2], blob[3]);
            found++;
        }
        line += end != NULL ? len + 1 : len;
    }
    if (nr != NOTE_UNVERIFIED || found == 0) {
        snprintf(why, whylen, "its checkpoint does not open with the log's key (%s)",
                 note_result_str(nr));
        return;
    }
    snprintf(why, whylen,
             "its checkpoint is signed by another key of log %.*s (key ID %.40s), not by the "
             "key%s given",
             120, name, ids, nknown > 1 ? "s" : "");
}

/*
 * A signed checkpoint: opened with the known keys when there are any, else
 * only parsed (its signature unchecked). Returns 0, or -1 with why set.
 */
static int checkpoint_read_signed(const char *note, note_verifier *const *known, size_t nknown,
                                  checkpoint *cp, bool *signed_by, char *why, size_t whylen)
{
    size_t n = strlen(note);
    if (nknown > 0) {
        note_result nr = checkpoint_open(note, n, known, nknown, cp, signed_by);
        if (nr != NOTE_OK) {
            signed_by_other(note, known, nknown, nr, why, whylen);
            return -1;
        }
    } else {
        const char *end = strstr(note, "\n\n");
        if (end == NULL || !checkpoint_parse(note, (size_t)(end - note) + 1, cp)) {
            snprintf(why, whylen, "its checkpoint is not a signed checkpoint");
            return -1;
        }
    }
    if (nknown > 0 && strcmp(cp->origin, note_verifier_name(known[0])) != 0) {
        snprintf(why, whylen, "its checkpoint is of log %s, not %s", cp->origin,
                 note_verifier_name(known[0]));
        return -1;
    }
    return 0;
}

static int checkpoint_read(const char *note, note_verifier *const *known, size_t nknown,
                           checkpoint *cp, char *why, size_t whylen)
{
    return checkpoint_read_signed(note, known, nknown, cp, NULL, why, whylen);
}

/* The receipt's digest as events name it. */
static void receipt_hash(const char *receipt, char out[RECEIPT_HASH_LEN + 1])
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)receipt, strlen(receipt), digest);
    b64url_encode(digest, sizeof digest, out);
}

/*
 * One leaf: {"index", "leaf": {"salt", "event"}, "hashes"} proved in the
 * tree of cp. The event, parsed, into *event (a new reference); its leaf
 * hash into *leaf_out (when not NULL).
 * Returns 0, or -1 with why set.
 */
static int leaf_check(const json_t *obj, const checkpoint *cp, json_t **event, uint64_t *index,
                      merkle_hash *leaf_out, char *why, size_t whylen)
{
    *event = NULL;
    const json_t *leaf = json_object_get(obj, "leaf");
    const json_t *salt_v = json_object_get(leaf, "salt");
    const json_t *event_v = json_object_get(leaf, "event");
    merkle_hash proof[MERKLE_MAX_PROOF];
    uint8_t salt[MERKLE_SALT_LEN];
    if (!sjson_uint(obj, "index", index) || !json_is_object(leaf) || !json_is_string(salt_v) ||
        !json_is_string(event_v) || json_object_size(leaf) != 2) {
        snprintf(why, whylen, "it is not a proof (index, leaf with salt and event, hashes)");
        return -1;
    }
    long count = hashes_parse(json_object_get(obj, "hashes"), proof);
    if (count < 0) {
        snprintf(why, whylen, "its hashes are not a list of base64 SHA-256 hashes");
        return -1;
    }
    if (b64url_decode(json_string_value(salt_v), json_string_length(salt_v), salt, sizeof salt) !=
        MERKLE_SALT_LEN) {
        snprintf(why, whylen, "its salt is not 32 bytes of base64url");
        return -1;
    }
    const char *text = json_string_value(event_v);
    size_t len = json_string_length(event_v);
    if (!jcs_is_canonical(text, len)) {
        snprintf(why, whylen, "its event is not canonical JSON (RFC 8785)");
        return -1;
    }
    merkle_hash commitment, leaf_hash;
    merkle_commitment(salt, text, len, &commitment);
    merkle_leaf_hash(commitment.bytes, sizeof commitment.bytes, &leaf_hash);
    merkle_result mr =
        merkle_verify_inclusion(*index, cp->size, &leaf_hash, proof, (size_t)count, &cp->root);
    if (mr != MERKLE_OK) {
        snprintf(why, whylen,
                 "leaf %llu (the commitment to its event and salt) is not in the tree of %llu "
                 "leaves its checkpoint signs (%s)",
                 (unsigned long long)*index, (unsigned long long)cp->size, merkle_result_str(mr));
        return -1;
    }
    if (leaf_out != NULL)
        *leaf_out = leaf_hash;
    *event = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(*event)) {
        json_decref(*event);
        *event = NULL;
        snprintf(why, whylen, "its event is not a JSON object");
        return -1;
    }
    return 0;
}

/* Whether a parsed event names delivery (and, for a final event, receipt). */
static int event_names(const json_t *event, const char *delivery, const char *receipt, char *why,
                       size_t whylen)
{
    const char *named = sjson_string(event, "delivery", NULL);
    const char *type = sjson_string(event, "type", NULL);
    if (named == NULL || strcmp(named, delivery) != 0) {
        snprintf(why, whylen, "its event is not of delivery %s", delivery);
        return -1;
    }
    if (receipt == NULL || type == NULL ||
        (strcmp(type, "confirmed") != 0 && strcmp(type, "corrupted") != 0 &&
         strcmp(type, "existing") != 0))
        return 0;
    char want[RECEIPT_HASH_LEN + 1];
    const char *has = sjson_string(event, "receipt_sha256", NULL);
    receipt_hash(receipt, want);
    if (has == NULL || strcmp(has, want) != 0) {
        snprintf(why, whylen, "its %s event names another receipt than this one", type);
        return -1;
    }
    return 0;
}

static void free_verifiers(note_verifier **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        note_verifier_free(v[i]);
}

receipt_result rc_evidence_check_proof(receipt_client *c, const json_t *proof, const char *receipt,
                                       const char *delivery, const char *log_key)
{
    note_verifier *keys[EVIDENCE_KEYS_MAX];
    long nkeys = 0;
    json_t *event = NULL;
    checkpoint cp;
    char why[640];
    uint64_t index = 0;
    receipt_result r = RECEIPT_ERR_VERIFY;
    if (log_key != NULL &&
        (nkeys = log_keys_parse(log_key, keys, EVIDENCE_KEYS_MAX, why, sizeof why)) < 0)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "%s", why);
    const char *note = sjson_string(proof, "checkpoint", NULL);
    if (!json_is_object(proof) || note == NULL || json_object_size(proof) != 4) {
        snprintf(why, sizeof why, "it is not a proof (index, leaf, hashes, checkpoint)");
        goto fail;
    }
    if (checkpoint_read(note, keys, (size_t)nkeys, &cp, why, sizeof why) != 0) {
        /* A proof is signed by the key in use when it was given: an older
         * one than the log's key now, after a rotation. */
        if (strstr(why, "signed by another key") != NULL)
            snprintf(why + strlen(why), sizeof why - strlen(why), "%s",
                     ": if the log's key has changed since, trust the older key too, or check "
                     "the delivery's evidence bundle, which carries the log's key changes");
        goto fail;
    }
    if (leaf_check(proof, &cp, &event, &index, NULL, why, sizeof why) != 0 ||
        event_names(event, delivery, receipt, why, sizeof why) != 0)
        goto fail;
    const char *type = sjson_string(event, "type", NULL);
    if (type == NULL || (strcmp(type, "confirmed") != 0 && strcmp(type, "corrupted") != 0)) {
        snprintf(why, sizeof why, "its event is no confirmation");
        goto fail;
    }
    r = RECEIPT_OK;
    goto out;
fail:
    r = rc_fail(c, RECEIPT_ERR_VERIFY, "the proof of delivery %s: %s", delivery, why);
out:
    json_decref(event);
    free_verifiers(keys, (size_t)nkeys);
    return r;
}

/* A string the receipt's payload names, as payload[object][member] (object
 * NULL: payload[member]); its signature not checked. Returns 0, or -1. */
static int receipt_claim(const char *receipt, const char *object, const char *member, char *out,
                         size_t cap)
{
    const char *dot = strchr(receipt, '.');
    const char *end = dot != NULL ? strchr(dot + 1, '.') : NULL;
    if (end == NULL || (size_t)(end - dot - 1) > 8192)
        return -1;
    uint8_t payload[6200];
    long n = b64url_decode(dot + 1, (size_t)(end - dot - 1), payload, sizeof payload);
    if (n <= 0)
        return -1;
    json_t *obj = json_loadb((const char *)payload, (size_t)n, 0, NULL);
    const char *value =
        sjson_string(object != NULL ? json_object_get(obj, object) : obj, member, NULL);
    int rc = value != NULL && strlen(value) < cap ? 0 : -1;
    if (rc == 0)
        snprintf(out, cap, "%s", value);
    json_decref(obj);
    return rc;
}

/* The delivery a receipt's payload names (its signature not checked). */
static int receipt_delivery_of(const char *receipt, char out[64])
{
    return receipt_claim(receipt, NULL, "delivery", out, 64);
}

RECEIPT_API receipt_result receipt_verify_proof(receipt_client *c, const char *receipt,
                                                const char *proof, const char *log_key)
{
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (receipt == NULL || proof == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "a receipt and its proof are required");
    c->errmsg[0] = '\0';
    char delivery[64], err[128];
    if (receipt_delivery_of(receipt, delivery) != 0)
        return rc_fail(c, RECEIPT_ERR_VERIFY, "the receipt names no delivery");
    json_t *obj = sjson_parse_object(proof, strnlen(proof, RC_EVIDENCE_PROOF_MAX + 1),
                                     SJSON_MAX_DEPTH, err, sizeof err);
    if (obj == NULL || strlen(proof) > RC_EVIDENCE_PROOF_MAX) {
        json_decref(obj);
        return rc_fail(c, RECEIPT_ERR_VERIFY, "the proof is not JSON: %s", err);
    }
    receipt_result r = rc_evidence_check_proof(c, obj, receipt, delivery, log_key);
    json_decref(obj);
    return r;
}

/* ---- bundles ---- */

/* When a key was in use, per the bundle's key history: 0 is open (unknown,
 * or still in use). */
typedef struct key_window {
    uint64_t since_ms;
    uint64_t until_ms;
} key_window;

typedef struct bundle_keys {
    note_verifier *log[EVIDENCE_KEYS_MAX];
    key_window log_window[EVIDENCE_KEYS_MAX];
    size_t log_count;
} bundle_keys;

/* since_ms and until_ms of a key history entry (null or absent: open). */
static bool window_parse(const json_t *entry, key_window *w)
{
    const json_t *since = json_object_get(entry, "since_ms");
    const json_t *until = json_object_get(entry, "until_ms");
    w->since_ms = w->until_ms = 0;
    if ((since != NULL && !json_is_null(since) && !sjson_uint(entry, "since_ms", &w->since_ms)) ||
        (until != NULL && !json_is_null(until) && !sjson_uint(entry, "until_ms", &w->until_ms)))
        return false;
    return w->until_ms == 0 || w->until_ms >= w->since_ms;
}

/* Whether the key was in use at some time in [from, to]. */
static bool window_meets(const key_window *w, uint64_t from, uint64_t to)
{
    return (w->since_ms == 0 || w->since_ms <= to) && (w->until_ms == 0 || w->until_ms >= from);
}

/* A time as RFC 3339 UTC with milliseconds, or what an open bound means. */
static void time_text(uint64_t ms, const char *open, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms == 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(out, 40, "%s", open);
        return;
    }
    char day[24];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 40, "%s.%03uZ", day, (unsigned)(ms % 1000));
}

/* "in use from A until B, not at C" for a key and the time it signed. */
static void window_text(const key_window *w, uint64_t from, uint64_t to, char *out, size_t len)
{
    char since[40], until[40], at[40], at_to[40];
    time_text(w->since_ms, "an unknown time", since);
    time_text(w->until_ms, "now", until);
    time_text(from, "?", at);
    time_text(to, "?", at_to);
    if (from == to)
        snprintf(out, len, "in use from %s until %s, not at %s", since, until, at);
    else
        snprintf(out, len, "in use from %s until %s, not between %s and %s", since, until, at,
                 at_to);
}

/*
 * Whether one of the log keys that signed a checkpoint (signed_by) was in
 * use at some time in [from, to], when it was signed. Returns 0, or -1
 * with why set.
 */
static int log_key_in_use(const bundle_keys *keys, const bool *signed_by, uint64_t from,
                          uint64_t to, const char *what, char *why, size_t whylen)
{
    size_t first = keys->log_count;
    for (size_t i = 0; i < keys->log_count; i++) {
        if (!signed_by[i])
            continue;
        if (window_meets(&keys->log_window[i], from, to))
            return 0;
        if (first == keys->log_count)
            first = i;
    }
    if (first == keys->log_count)
        return 0;
    char text[NOTE_VKEY_MAX], when[200];
    note_verifier_text(keys->log[first], text);
    window_text(&keys->log_window[first], from, to, when, sizeof when);
    if (snprintf(why, whylen, "%s is signed by log key %s, %s", what, text, when) >= (int)whylen)
        why[whylen - 1] = '\0'; /* cut short, but still names the key */
    return -1;
}

/* The time an event was recorded, by the server's clock (0: none). */
static uint64_t event_time_ms(const json_t *event)
{
    const char *type = sjson_string(event, "type", NULL);
    const char *member = NULL;
    uint64_t ms = 0;
    if (type == NULL)
        return 0;
    if (strcmp(type, "issued") == 0)
        member = "issued_ms";
    else if (strcmp(type, "bound") == 0)
        member = "bound_ms";
    else if (strcmp(type, "confirmed") == 0 || strcmp(type, "corrupted") == 0)
        member = "confirmed_ms";
    else if (strcmp(type, "log_key") == 0)
        member = "time_ms";
    if (member == NULL || !sjson_uint(event, member, &ms))
        return 0;
    return ms;
}

/* The log keys to open checkpoints with: the pinned one, or the bundle's. */
static int bundle_log_keys(const json_t *bundle, const char *origin, const char *pinned,
                           bundle_keys *keys, char *why, size_t whylen)
{
    const json_t *list = json_object_get(json_object_get(bundle, "keys"), "log");
    if (pinned != NULL) {
        long n = log_keys_parse(pinned, keys->log, EVIDENCE_KEYS_MAX, why, whylen);
        if (n < 0)
            return -1;
        keys->log_count = (size_t)n;
        /* Each trusted key's time in use, when the bundle's history has it. */
        for (size_t k = 0; k < keys->log_count; k++) {
            char text[NOTE_VKEY_MAX];
            note_verifier_text(keys->log[k], text);
            keys->log_window[k] = (key_window){0, 0};
            for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++) {
                const json_t *entry = json_array_get(list, i);
                const char *known = sjson_string(entry, "key", NULL);
                if (known != NULL && strcmp(known, text) == 0 &&
                    !window_parse(entry, &keys->log_window[k])) {
                    snprintf(why, whylen,
                             "log key %zu of the bundle has no valid since_ms, until_ms", i + 1);
                    return -1;
                }
            }
        }
    } else {
        if (!json_is_array(list) || json_array_size(list) == 0 ||
            json_array_size(list) > EVIDENCE_KEYS_MAX) {
            snprintf(why, whylen, "the bundle names no log key");
            return -1;
        }
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t *entry = json_array_get(list, i);
            const char *text = sjson_string(entry, "key", NULL);
            if (text == NULL ||
                note_verifier_parse(text, strlen(text), &keys->log[keys->log_count]) != NOTE_OK) {
                snprintf(why, whylen, "log key %zu of the bundle is not a verifier key", i + 1);
                return -1;
            }
            keys->log_count++;
            if (!window_parse(entry, &keys->log_window[i])) {
                snprintf(why, whylen, "log key %zu of the bundle has no valid since_ms, until_ms",
                         i + 1);
                return -1;
            }
        }
    }
    for (size_t i = 0; i < keys->log_count; i++) {
        if (strcmp(note_verifier_name(keys->log[i]), origin) != 0) {
            snprintf(why, whylen, "the log key %s is not of the bundle's log %s",
                     note_verifier_name(keys->log[i]), origin);
            return -1;
        }
    }
    return 0;
}

/* Adds key (text) to the trusted log keys, with its time in use from the
 * bundle's history. Returns 0, or -1 with why set. */
static int trust_log_key(const json_t *bundle, const char *text, bundle_keys *keys, char *why,
                         size_t whylen)
{
    const json_t *list = json_object_get(json_object_get(bundle, "keys"), "log");
    if (keys->log_count == EVIDENCE_KEYS_MAX) {
        snprintf(why, whylen, "the bundle names more than %d log keys", EVIDENCE_KEYS_MAX);
        return -1;
    }
    key_window *w = &keys->log_window[keys->log_count];
    *w = (key_window){0, 0};
    for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++) {
        const json_t *entry = json_array_get(list, i);
        const char *known = sjson_string(entry, "key", NULL);
        if (known != NULL && strcmp(known, text) == 0 && !window_parse(entry, w)) {
            snprintf(why, whylen, "log key %zu of the bundle has no valid since_ms, until_ms",
                     i + 1);
            return -1;
        }
    }
    if (note_verifier_parse(text, strlen(text), &keys->log[keys->log_count]) != NOTE_OK) {
        snprintf(why, whylen, "%s is not a log's verifier key", text);
        return -1;
    }
    keys->log_count++;
    return 0;
}

static bool log_key_trusted(const bundle_keys *keys, const char *text)
{
    char known[NOTE_VKEY_MAX];
    for (size_t i = 0; i < keys->log_count; i++) {
        note_verifier_text(keys->log[i], known);
        if (strcmp(known, text) == 0)
            return true;
    }
    return false;
}

/*
 * One of the bundle's log key changes (keys.log_changes, proved as its
 * events are), checked against the bundle's checkpoint newest, not yet
 * opened: the log_key leaf is in newest's tree, and the checkpoint of its
 * batch is signed by both the key it names and the one it replaces, and is
 * consistent with newest. Sets *key and *previous (in *event), and *leaf.
 * Returns 0, 1 for the log's first key (no change), or -1 with why set when
 * it is no such change.
 */
static int log_change_check(const json_t *change, const checkpoint *newest, json_t **event,
                            const char **key, const char **previous, uint64_t *leaf, char *why,
                            size_t whylen)
{
    uint64_t index = 0;
    if (leaf_check(change, newest, event, &index, NULL, why, whylen) != 0)
        return -1;
    *leaf = index;
    const char *type = sjson_string(*event, "type", NULL);
    *key = sjson_string(*event, "key", NULL);
    *previous = sjson_string(*event, "previous", NULL);
    const json_t *batch = json_object_get(change, "batch");
    const char *note = sjson_string(batch, "checkpoint", NULL);
    merkle_hash proof[MERKLE_MAX_PROOF];
    long count = hashes_parse(json_object_get(batch, "consistency"), proof);
    if (type != NULL && strcmp(type, "log_key") == 0 && *key != NULL && *previous == NULL)
        return 1; /* the log's first key: no change */
    if (type == NULL || strcmp(type, "log_key") != 0 || *key == NULL || *previous == NULL) {
        snprintf(why, whylen, "leaf %llu is no change of the log's key", (unsigned long long)index);
        return -1;
    }
    if (note == NULL || count < 0) {
        snprintf(why, whylen, "it has no batch checkpoint with a consistency proof");
        return -1;
    }
    note_verifier *both[2] = {NULL, NULL};
    checkpoint cp;
    int rc = -1;
    if (note_verifier_parse(*previous, strlen(*previous), &both[0]) != NOTE_OK ||
        note_verifier_parse(*key, strlen(*key), &both[1]) != NOTE_OK)
        snprintf(why, whylen, "leaf %llu names no verifier keys", (unsigned long long)index);
    else if (strcmp(note_verifier_name(both[0]), newest->origin) != 0 ||
             strcmp(note_verifier_name(both[1]), newest->origin) != 0)
        snprintf(why, whylen, "leaf %llu names a key of another log than %.120s",
                 (unsigned long long)index, newest->origin);
    else if (checkpoint_open(note, strlen(note), &both[0], 1, &cp, NULL) != NOTE_OK)
        snprintf(why, whylen,
                 "the checkpoint that announced leaf %llu is not signed by the key it replaces",
                 (unsigned long long)index);
    else if (checkpoint_open(note, strlen(note), &both[1], 1, &cp, NULL) != NOTE_OK)
        snprintf(why, whylen,
                 "the checkpoint that announced leaf %llu is not signed by the new key",
                 (unsigned long long)index);
    else if (strcmp(cp.origin, newest->origin) != 0)
        snprintf(why, whylen, "the checkpoint that announced leaf %llu is of another log, %.120s",
                 (unsigned long long)index, cp.origin);
    else if (cp.size <= index || cp.size > newest->size ||
             merkle_verify_consistency(cp.size, newest->size, &cp.root, &newest->root, proof,
                                       (size_t)count) != MERKLE_OK)
        snprintf(why, whylen,
                 "the checkpoint that announced leaf %llu (%llu leaves) is not consistent with "
                 "the bundle's",
                 (unsigned long long)index, (unsigned long long)cp.size);
    else
        rc = 0;
    free_verifiers(both, 2);
    return rc;
}

/* The event of a change (its leaf, checked before) and the keys it names. */
static json_t *change_event(const json_t *change, const char **key, const char **previous)
{
    json_t *event = json_loads(sjson_string(json_object_get(change, "leaf"), "event", NULL),
                               JSON_REJECT_DUPLICATES, NULL);
    *key = sjson_string(event, "key", NULL);
    *previous = sjson_string(event, "previous", NULL);
    return event;
}

/*
 * The log's key history as a chain: the changes (valid[i]), in log order
 * (by leaf, leaf[i]), each replacing the key that the one before named. A
 * change that replaces another key would be a second history of the log's
 * keys (whoever holds a key that was replaced, often because it leaked,
 * could announce a successor of their own under it): its valid[i] is
 * cleared, the first such one's position goes to *forked (SIZE_MAX: none)
 * and the key it should have replaced to expected. The key the chain ends
 * at goes to current ("" when there is no change).
 */
static void changes_chain(const json_t *list, bool *valid, const uint64_t *leaf,
                          char current[NOTE_VKEY_MAX], size_t *forked, char expected[NOTE_VKEY_MAX])
{
    size_t count = json_array_size(list);
    bool done[EVIDENCE_KEYS_MAX] = {false};
    current[0] = '\0';
    expected[0] = '\0';
    *forked = SIZE_MAX;
    for (;;) {
        size_t next = count;
        for (size_t i = 0; i < count; i++)
            if (valid[i] && !done[i] && (next == count || leaf[i] < leaf[next]))
                next = i;
        if (next == count)
            return;
        done[next] = true;
        const char *key = NULL, *previous = NULL;
        json_t *event = change_event(json_array_get(list, next), &key, &previous);
        if (key != NULL && previous != NULL &&
            (current[0] == '\0' || strcmp(previous, current) == 0)) {
            snprintf(current, NOTE_VKEY_MAX, "%s", key);
        } else {
            valid[next] = false;
            if (*forked == SIZE_MAX) {
                *forked = next;
                snprintf(expected, NOTE_VKEY_MAX, "%s", current);
            }
        }
        json_decref(event);
    }
}

/*
 * From the log keys given (keys), the keys their changes reach: a change
 * announced under both keys links them, forwards (the new key of a trusted
 * one) and backwards (the key a trusted one replaced), so that an auditor
 * who holds any one of the log's keys checks a bundle that spans a
 * rotation. A change that is not one, or that is not of the chain of the
 * log's key history (changes_chain), is not followed; the first such goes
 * to skipped (for a failure's message). The key the chain ends at goes to
 * current: the only key that signs a later tree. Returns 0, or -1 with why
 * set.
 */
static int follow_log_changes(const json_t *bundle, const char *note, bundle_keys *keys,
                              char current[NOTE_VKEY_MAX], char *skipped, size_t skippedlen,
                              char *why, size_t whylen)
{
    current[0] = '\0';
    const json_t *changes = json_object_get(json_object_get(bundle, "keys"), "log_changes");
    checkpoint newest;
    if (!json_is_array(changes) || json_array_size(changes) == 0)
        return 0;
    if (json_array_size(changes) > EVIDENCE_KEYS_MAX) {
        snprintf(why, whylen, "the bundle names more than %d log key changes", EVIDENCE_KEYS_MAX);
        return -1;
    }
    /* Opened with the keys reached at the end; until then only parsed. */
    if (checkpoint_read(note, NULL, 0, &newest, why, whylen) != 0)
        return -1;
    bool valid[EVIDENCE_KEYS_MAX] = {false};
    uint64_t leaf[EVIDENCE_KEYS_MAX] = {0};
    for (size_t i = 0; i < json_array_size(changes); i++) {
        json_t *event = NULL;
        const char *key = NULL, *previous = NULL;
        char sub[256];
        int checked = log_change_check(json_array_get(changes, i), &newest, &event, &key, &previous,
                                       &leaf[i], sub, sizeof sub);
        valid[i] = checked == 0;
        if (checked < 0 && skipped[0] == '\0')
            snprintf(skipped, skippedlen, "key change %zu of the bundle was not followed: %s",
                     i + 1, sub);
        json_decref(event);
    }
    size_t forked;
    char expected[NOTE_VKEY_MAX];
    changes_chain(changes, valid, leaf, current, &forked, expected);
    if (forked != SIZE_MAX && skipped[0] == '\0')
        snprintf(skipped, skippedlen,
                 "key change %zu of the bundle was not followed: it replaces another key than "
                 "the log's key at leaf %llu, %.120s",
                 forked + 1, (unsigned long long)leaf[forked], expected);
    for (bool grew = true; grew;) {
        grew = false;
        for (size_t i = 0; i < json_array_size(changes); i++) {
            if (!valid[i])
                continue;
            const char *key = NULL, *previous = NULL;
            json_t *event = change_event(json_array_get(changes, i), &key, &previous);
            bool has_key = log_key_trusted(keys, key);
            bool has_previous = log_key_trusted(keys, previous);
            int rc = 0;
            if (has_key != has_previous) {
                rc = trust_log_key(bundle, has_key ? previous : key, keys, why, whylen);
                grew = true;
            }
            json_decref(event);
            if (rc != 0)
                return -1;
        }
    }
    return 0;
}

/*
 * With keys given, whether the bundle's checkpoint (newest, signed_by the
 * keys that signed it) is signed by the key its key history ends at
 * (current; "": no change), the only one that signs after the last change:
 * whoever holds a key that was replaced could sign a tree of their own
 * with it, which the backward links would trust. Returns 0, or -1 with why
 * set.
 */
static int bundle_newest_in_use(const bundle_keys *keys, const bool *signed_by,
                                const checkpoint *newest, const char *current, char *why,
                                size_t whylen)
{
    if (current[0] == '\0')
        return 0;
    for (size_t i = 0; i < keys->log_count; i++) {
        char text[NOTE_VKEY_MAX];
        note_verifier_text(keys->log[i], text);
        if (signed_by[i] && strcmp(text, current) == 0)
            return 0;
    }
    snprintf(why, whylen,
             "its checkpoint (%llu leaves) is not signed by %.120s, the log's key since the last "
             "key change in the bundle: a key that was replaced signs no later tree",
             (unsigned long long)newest->size, current);
    return -1;
}

/* The bundle's signing keys as a JWK Set. */
static json_t *bundle_jwks(const json_t *bundle)
{
    const json_t *list = json_object_get(json_object_get(bundle, "keys"), "signing");
    json_t *set = json_pack("{s:[]}", "keys");
    if (!json_is_array(list) || set == NULL || json_array_size(list) > EVIDENCE_KEYS_MAX) {
        json_decref(set);
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *jwk = json_object_get(json_array_get(list, i), "jwk");
        if (!json_is_object(jwk) || json_array_append(json_object_get(set, "keys"), jwk) != 0) {
            json_decref(set);
            return NULL;
        }
    }
    return set;
}

/*
 * One event of a bundle: its leaf in the bundle's checkpoint (newest), the
 * checkpoint of its batch and the consistency proof from it to newest.
 * Returns RECEIPT_OK, RECEIPT_ERR_INCONSISTENT or RECEIPT_ERR_VERIFY with
 * why set; *event the parsed event.
 */
static receipt_result bundle_event(const json_t *obj, const checkpoint *newest,
                                   const bundle_keys *keys, json_t **event, uint64_t *index,
                                   char *why, size_t whylen)
{
    if (leaf_check(obj, newest, event, index, NULL, why, whylen) != 0)
        return RECEIPT_ERR_VERIFY;
    const json_t *batch = json_object_get(obj, "batch");
    const char *note = sjson_string(batch, "checkpoint", NULL);
    merkle_hash proof[MERKLE_MAX_PROOF];
    long count = hashes_parse(json_object_get(batch, "consistency"), proof);
    checkpoint cp;
    if (note == NULL || count < 0) {
        snprintf(why, whylen, "it has no batch checkpoint with a consistency proof");
        return RECEIPT_ERR_VERIFY;
    }
    bool signed_by[EVIDENCE_KEYS_MAX] = {false};
    if (checkpoint_read_signed(note, keys->log, keys->log_count, &cp, signed_by, why, whylen) != 0)
        return RECEIPT_ERR_VERIFY;
    /* The batch's checkpoint was signed when the event was recorded. */
    uint64_t at = event_time_ms(*event);
    if (at != 0 &&
        log_key_in_use(keys, signed_by, at, at, "the checkpoint of its batch", why, whylen) != 0)
        return RECEIPT_ERR_VERIFY;
    if (cp.size <= *index || cp.size > newest->size) {
        snprintf(why, whylen, "its batch's checkpoint (%llu leaves) cannot hold it",
                 (unsigned long long)cp.size);
        return RECEIPT_ERR_VERIFY;
    }
    merkle_result mr = merkle_verify_consistency(cp.size, newest->size, &cp.root, &newest->root,
                                                 proof, (size_t)count);
    if (mr != MERKLE_OK) {
        snprintf(why, whylen,
                 "the checkpoint of its batch (%llu leaves) and the bundle's (%llu) are not "
                 "consistent: the log was rewritten or forked",
                 (unsigned long long)cp.size, (unsigned long long)newest->size);
        return RECEIPT_ERR_INCONSISTENT;
    }
    return RECEIPT_OK;
}

/*
 * Whether the key that signed the receipt (payload its verified payload)
 * was in use, per the bundle's key history, when the receipt says it was
 * signed (confirmed_at_ms). Returns 0, or -1 with why set.
 */
static int signing_key_in_use(const json_t *bundle, const char *receipt, const char *payload,
                              char *why, size_t whylen)
{
    jose_header h;
    const json_t *list = json_object_get(json_object_get(bundle, "keys"), "signing");
    json_t *claims = json_loads(payload, 0, NULL);
    uint64_t at = 0;
    int rc = -1;
    if (jws_peek(receipt, strlen(receipt), &h) != JOSE_OK || claims == NULL ||
        !sjson_uint(claims, "confirmed_at_ms", &at)) {
        snprintf(why, whylen, "its receipt has no confirmed_at_ms");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *entry = json_array_get(list, i);
        const char *kid = sjson_string(json_object_get(entry, "jwk"), "kid", NULL);
        key_window w;
        if (kid == NULL || strcmp(kid, h.kid) != 0)
            continue;
        if (!window_parse(entry, &w)) {
            snprintf(why, whylen, "signing key %zu of the bundle has no valid since_ms, until_ms",
                     i + 1);
            goto out;
        }
        if (!window_meets(&w, at, at)) {
            char when[200];
            window_text(&w, at, at, when, sizeof when);
            snprintf(why, whylen, "its receipt is signed by key %s, %s (its confirmed_at_ms)",
                     h.kid, when);
            goto out;
        }
        rc = 0;
        goto out;
    }
    snprintf(why, whylen, "its receipt's key %s is not in the bundle's key history", h.kid);
out:
    json_decref(claims);
    return rc;
}

static const char *delivery_or_empty(const json_t *bundle)
{
    const char *d = bundle != NULL ? sjson_string(bundle, "delivery", NULL) : NULL;
    return d != NULL ? d : "";
}

RECEIPT_API receipt_result receipt_verify_bundle(receipt_client *c, const char *text,
                                                 const char *log_key, char **report)
{
    if (report != NULL)
        *report = NULL;
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (text == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "a bundle is required");
    c->errmsg[0] = '\0';
    bundle_keys keys = {.log_count = 0};
    bool newest_signed_by[EVIDENCE_KEYS_MAX] = {false};
    uint64_t last_time = 0, made_ms = 0;
    json_t *bundle = NULL, *set = NULL, *event = NULL, *out = NULL, *types = NULL;
    char *payload = NULL;
    char err[128] = "", why[768] = "", skipped[320] = "", current[NOTE_VKEY_MAX] = "";
    receipt_result r = RECEIPT_ERR_VERIFY;
    uint64_t version = 0, last_index = 0;
    const char *delivery = NULL, *origin = NULL, *note = NULL, *receipt = NULL;
    const char *final_type = NULL;
    const json_t *events = NULL, *receipt_v = NULL;
    checkpoint newest;
    size_t n = strnlen(text, RC_EVIDENCE_BUNDLE_MAX + 1);
    if (n > RC_EVIDENCE_BUNDLE_MAX) {
        snprintf(why, sizeof why, "it is larger than %d bytes", RC_EVIDENCE_BUNDLE_MAX);
        goto fail;
    }
    bundle = sjson_parse_object(text, n, SJSON_MAX_DEPTH, err, sizeof err);
    if (bundle == NULL) {
        snprintf(why, sizeof why, "it is not JSON: %s", err);
        goto fail;
    }
    delivery = sjson_string(bundle, "delivery", NULL);
    origin = sjson_string(bundle, "origin", NULL);
    note = sjson_string(bundle, "checkpoint", NULL);
    events = json_object_get(bundle, "events");
    receipt_v = json_object_get(bundle, "receipt");
    if (!sjson_uint(bundle, "v", &version) || version != 1) {
        snprintf(why, sizeof why, "it is not an evidence bundle of version 1");
        goto fail;
    }
    /* made_ms bounds the time the bundle's checkpoint was signed: without
     * it, a key used after its time would pass. */
    if (delivery == NULL || origin == NULL || note == NULL || !json_is_array(events) ||
        json_array_size(events) == 0 || json_array_size(events) > EVIDENCE_EVENTS_MAX ||
        !(json_is_null(receipt_v) || json_is_string(receipt_v)) ||
        !sjson_uint(bundle, "made_ms", &made_ms) || made_ms == 0) {
        snprintf(why, sizeof why,
                 "it lacks a member (delivery, origin, made_ms, checkpoint, events, receipt, "
                 "keys)");
        goto fail;
    }
    receipt = json_is_string(receipt_v) ? json_string_value(receipt_v) : NULL;
    if (bundle_log_keys(bundle, origin, log_key, &keys, why, sizeof why) != 0 ||
        (log_key != NULL && follow_log_changes(bundle, note, &keys, current, skipped,
                                               sizeof skipped, why, sizeof why) != 0))
        goto fail;
    if (checkpoint_read_signed(note, keys.log, keys.log_count, &newest, newest_signed_by, why,
                               sizeof why) != 0 ||
        bundle_newest_in_use(&keys, newest_signed_by, &newest, current, why, sizeof why) != 0)
        goto fail;

    /* Every event: in the newest tree, its batch consistent with it, of
     * this delivery, in the order of the log; the final one names the
     * receipt. */
    types = json_array();
    for (size_t i = 0; i < json_array_size(events); i++) {
        uint64_t index = 0;
        json_decref(event);
        event = NULL;
        char sub[320] = "";
        r = bundle_event(json_array_get(events, i), &newest, &keys, &event, &index, sub,
                         sizeof sub);
        if (r == RECEIPT_OK && event_names(event, delivery, receipt, sub, sizeof sub) != 0)
            r = RECEIPT_ERR_VERIFY;
        if (r == RECEIPT_OK && i > 0 && index <= last_index) {
            snprintf(sub, sizeof sub, "it is not after the event before it in the log");
            r = RECEIPT_ERR_VERIFY;
        }
        if (r != RECEIPT_OK) {
            snprintf(why, sizeof why, "event %zu: %s", i + 1, sub);
            goto fail_r;
        }
        last_index = index;
        if (event_time_ms(event) > last_time)
            last_time = event_time_ms(event);
        const char *type = sjson_string(event, "type", NULL);
        if (type != NULL && (strcmp(type, "confirmed") == 0 || strcmp(type, "corrupted") == 0))
            final_type = strcmp(type, "confirmed") == 0 ? "confirmed" : "corrupted";
        json_array_append_new(types, json_string(type != NULL ? type : "?"));
    }
    r = RECEIPT_ERR_VERIFY;
    /* The bundle's checkpoint was signed after its events were recorded
     * and before the bundle was made. */
    if (log_key_in_use(&keys, newest_signed_by, last_time, made_ms, "its checkpoint", why,
                       sizeof why) != 0)
        goto fail;

    /* The receipt: signed by one of the site's signing keys, of this
     * delivery, named by the final event. */
    if (receipt != NULL) {
        set = bundle_jwks(bundle);
        if (set == NULL) {
            snprintf(why, sizeof why, "its signing keys are not JWKs");
            goto fail;
        }
        if (final_type == NULL) {
            snprintf(why, sizeof why, "it holds a receipt, but no confirmation event");
            goto fail;
        }
        if (rc_confirm_check_receipt(c, set, receipt, delivery, NULL, NULL, &payload) !=
            RECEIPT_OK) {
            snprintf(why, sizeof why, "its receipt: %.360s", c->errmsg);
            goto fail;
        }
        if (signing_key_in_use(bundle, receipt, payload, why, sizeof why) != 0)
            goto fail;
    }
    out = json_pack("{s:s,s:s,s:I,s:s?,s:o,s:b,s:s}", "delivery", delivery, "origin", origin,
                    "size", (json_int_t)newest.size, "status", final_type, "events", types,
                    "receipt", receipt != NULL, "keys", log_key != NULL ? "pinned" : "bundle");
    types = NULL;
    if (out == NULL || (report != NULL && (*report = json_dumps(out, JSON_COMPACT)) == NULL)) {
        r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
        goto out;
    }
    r = RECEIPT_OK;
    goto out;
fail:
    r = RECEIPT_ERR_VERIFY;
fail_r:
    /* A key not reached, or not the last one reached: a change not
     * followed may be why. */
    if (log_key != NULL && strstr(why, "signed by another key") != NULL)
        snprintf(why + strlen(why), sizeof why - strlen(why), "%s",
                 ", nor by a key that the bundle's key changes link to them");
    if (log_key != NULL && skipped[0] != '\0' &&
        (strstr(why, "signed by another key") != NULL ||
         strstr(why, "does not open with the log's key") != NULL ||
         strstr(why, "signs no later tree") != NULL))
        snprintf(why + strlen(why), sizeof why - strlen(why), "; %s", skipped);
    rc_fail(c, r, "the bundle%s%s: %s", delivery_or_empty(bundle)[0] != '\0' ? " of " : "",
            delivery_or_empty(bundle), why);
out:
    free(payload);
    json_decref(out);
    json_decref(types);
    json_decref(event);
    json_decref(set);
    json_decref(bundle);
    free_verifiers(keys.log, keys.log_count);
    return r;
}

/* ---- audits ---- */

typedef struct audit_tile {
    bool used;
    tiles_tile tile;
    uint8_t data[TILES_WIDTH * MERKLE_HASH_LEN];
} audit_tile;

typedef struct audit {
    receipt_client *c;
    char base[RC_URL_MAX];
    uint64_t size; /* the tree whose tiles are read */
    audit_tile *cache;
    size_t next;
    bool fetch_failed; /* a tile could not be fetched (not: did not check) */
} audit;

/* GETs base/path into *resp (body up to cap). */
static receipt_result audit_get(audit *a, const char *path, size_t cap, rc_http_response *resp)
{
    char url[RC_URL_MAX + 64];
    if (snprintf(url, sizeof url, "%s/%s", a->base, path) >= (int)sizeof url)
        return rc_fail(a->c, RECEIPT_ERR_ARGUMENT, "the log's URL is too long");
    rc_http_request req = {.url = url, .body_cap = cap};
    memset(resp, 0, sizeof *resp);
    resp->retry_after_s = -1;
    receipt_result r = rc_http_perform(a->c, &req, resp);
    if (r != RECEIPT_OK)
        return r;
    if (resp->status != 200) {
        char why[256];
        rc_http_describe_error(resp, why, sizeof why);
        return rc_fail(a->c, RECEIPT_ERR_HTTP, "GET %s: %s", url, why);
    }
    return RECEIPT_OK;
}

static const uint8_t *audit_tile_get(audit *a, const tiles_tile *t)
{
    for (size_t i = 0; i < AUDIT_TILE_CACHE; i++) {
        const audit_tile *k = &a->cache[i];
        if (k->used && k->tile.level == t->level && k->tile.index == t->index &&
            k->tile.width == t->width)
            return k->data;
    }
    char path[TILES_PATH_MAX];
    if (tiles_path(t, path) == 0)
        return NULL;
    rc_http_response resp;
    size_t want = (size_t)t->width * MERKLE_HASH_LEN;
    receipt_result r = audit_get(a, path, want + 1, &resp);
    const uint8_t *data = NULL;
    if (r != RECEIPT_OK || resp.body_len != want) {
        if (r == RECEIPT_OK)
            rc_fail(a->c, RECEIPT_ERR_PROTOCOL, "the log's %s is %zu bytes, not %zu", path,
                    resp.body_len, want);
        a->fetch_failed = true;
    } else {
        audit_tile *k = &a->cache[a->next];
        a->next = (a->next + 1) % AUDIT_TILE_CACHE;
        k->used = true;
        k->tile = *t;
        memcpy(k->data, resp.body, want);
        data = k->data;
    }
    rc_http_response_clear(&resp);
    return data;
}

/* merkle_read_fn over the log's tiles for the tree of a->size leaves. */
static int audit_read(void *ctx, const uint64_t *indexes, size_t count, merkle_hash *out)
{
    audit *a = ctx;
    merkle_hash span_hashes[TILES_WIDTH];
    for (size_t i = 0; i < count; i++) {
        unsigned level, start, span;
        uint64_t n;
        tiles_tile t;
        merkle_stored_split(indexes[i], &level, &n);
        tiles_locate(level, n, &t, &start, &span);
        t.width = tiles_width(t.level, t.index, a->size);
        if (t.width < start + span)
            return -1;
        const uint8_t *data = audit_tile_get(a, &t);
        if (data == NULL)
            return -1;
        memcpy(span_hashes, data + (size_t)start * MERKLE_HASH_LEN, (size_t)span * MERKLE_HASH_LEN);
        merkle_root_of(span_hashes, span, &out[i]);
    }
    return 0;
}

/* The readable part of a pin's name: the URL without its scheme, every
 * byte but letters, digits, '.' and '-' made '_', cut at max bytes. */
static size_t pin_readable(const char *base, size_t max, char *out)
{
    const char *rest = strstr(base, "://");
    rest = rest != NULL ? rest + 3 : base;
    size_t k = 0;
    for (; *rest != '\0' && k < max; rest++)
        out[k++] = (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-",
                           *rest) != NULL)
                       ? *rest
                       : '_';
    out[k] = '\0';
    return k;
}

int rc_evidence_pin_name(const char *base, char *out, size_t cap)
{
    char readable[RC_EVIDENCE_PIN_READABLE + 1];
    pin_readable(base, RC_EVIDENCE_PIN_READABLE, readable);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)base, strlen(base), digest);
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    int n = snprintf(out, cap, "%s-%s.json", readable, hex);
    return n >= 0 && (size_t)n < cap ? 0 : -1;
}

int rc_evidence_pin_legacy_name(const char *base, char *out, size_t cap)
{
    char readable[RC_EVIDENCE_PIN_LEGACY_READABLE + 1];
    pin_readable(base, RC_EVIDENCE_PIN_LEGACY_READABLE, readable);
    int n = snprintf(out, cap, "%s.json", readable);
    return n >= 0 && (size_t)n < cap ? 0 : -1;
}

/* dir/name, or -1 when it does not fit. */
static int pin_join(const char *dir, const char *name, const char *suffix, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s%s", dir, name, suffix);
    return n >= 0 && (size_t)n < cap ? 0 : -1;
}

/* dir/NAME.lock beside dir/NAME.json. */
static int pin_lock_path(const char *dir, const char *pin_name, char *out, size_t cap)
{
    size_t n = strlen(pin_name);
    if (n > 5 && strcmp(pin_name + n - 5, ".json") == 0)
        n -= 5;
    int k = snprintf(out, cap, "%s/%.*s.lock", dir, (int)n, pin_name);
    return k >= 0 && (size_t)k < cap ? 0 : -1;
}

/*
 * Takes the lock of a log's pin (dir/NAME.lock, an flock held until
 * *fd is closed): audits of one log run one after the other, each reading
 * the pin the one before it saved. Waits for an audit that holds it.
 */
static receipt_result pin_lock(receipt_client *c, const char *dir, const char *lock_path,
                               const char *base, int *fd)
{
    char err[256];
    if (durable_mkdirs(dir, 0700, err, sizeof err) != 0)
        return rc_fail(c, RECEIPT_ERR_IO, "%s", err);
    *fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return rc_fail(c, RECEIPT_ERR_IO, "%s: %s", lock_path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
        return RECEIPT_OK;
    if (errno == EWOULDBLOCK) {
        rc_log(c, RECEIPT_LOG_INFO, "another audit of the log at %s is running: waiting for it",
               base);
        int rc;
        while ((rc = flock(*fd, LOCK_EX)) != 0 && errno == EINTR)
            ;
        if (rc == 0)
            return RECEIPT_OK;
    }
    receipt_result r = rc_fail(c, RECEIPT_ERR_IO, "%s: %s", lock_path, strerror(errno));
    close(*fd);
    *fd = -1;
    return r;
}

/* The name a note's key or checkpoint gives its log: up to the first '+'
 * of a verifier key, or the first line of a checkpoint. */
static bool same_log_name(const char *key, const char *note)
{
    const char *plus = strchr(key, '+');
    const char *eol = strchr(note, '\n');
    if (plus == NULL || eol == NULL)
        return false;
    size_t n = (size_t)(plus - key);
    return n == (size_t)(eol - note) && memcmp(key, note, n) == 0;
}

/* The pinned key and last checkpoint of a log; 1 found, 0 none, -1 bad. */
static int pin_load(receipt_client *c, const char *path, char **key, char **note)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        rc_fail(c, RECEIPT_ERR_IO, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *text = malloc(AUDIT_PIN_MAX + 1);
    if (text == NULL) {
        fclose(f);
        rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
        return -1;
    }
    size_t n = fread(text, 1, AUDIT_PIN_MAX + 1, f);
    fclose(f);
    char err[128];
    json_t *obj =
        n <= AUDIT_PIN_MAX ? sjson_parse_object(text, n, SJSON_MAX_DEPTH, err, sizeof err) : NULL;
    free(text);
    const char *k = obj != NULL ? sjson_string(obj, "key", NULL) : NULL;
    const char *cp = obj != NULL ? sjson_string(obj, "checkpoint", NULL) : NULL;
    if (k == NULL || cp == NULL) {
        json_decref(obj);
        rc_fail(c, RECEIPT_ERR_IO,
                "%s is not a pinned log (key, checkpoint): remove it to pin again", path);
        return -1;
    }
    *key = strdup(k);
    *note = strdup(cp);
    json_decref(obj);
    if (*key == NULL || *note == NULL) {
        rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
        return -1;
    }
    return 1;
}

static receipt_result pin_save(receipt_client *c, const char *dir, const char *path,
                               const char *key, const char *note)
{
    char err[256];
    if (durable_mkdirs(dir, 0700, err, sizeof err) != 0)
        return rc_fail(c, RECEIPT_ERR_IO, "%s", err);
    json_t *obj = json_pack("{s:s,s:s}", "key", key, "checkpoint", note);
    char *text = obj != NULL ? json_dumps(obj, JSON_INDENT(2)) : NULL;
    json_decref(obj);
    if (text == NULL)
        return rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
    int rc = durable_write_atomic(path, text, strlen(text), 0600, true, err, sizeof err);
    free(text);
    return rc == 0 ? RECEIPT_OK : rc_fail(c, RECEIPT_ERR_IO, "%s", err);
}

/* One change of the log's key that an audit follows: the log_key leaf,
 * the key it names, and the checkpoint that announced it (signed by the
 * key it replaces and by the new one). */
typedef struct rotation {
    uint64_t leaf;
    merkle_hash leaf_hash;
    char key[NOTE_VKEY_MAX];
    checkpoint announced;
} rotation;

/* The chain of changes from the pinned key to the newest key reached. */
typedef struct rotations {
    rotation link[EVIDENCE_KEYS_MAX];
    size_t count;
    char key[NOTE_VKEY_MAX];
} rotations;

/* "key change N (leaf L, to key K)", which names a link in messages. */
static void link_name(const rotation *r, size_t n, char *out, size_t len)
{
    snprintf(out, len, "key change %zu (leaf %llu, to key %.*s)", n, (unsigned long long)r->leaf,
             120, r->key);
}

/*
 * One link: the change (a proof of a log_key leaf in the checkpoint that
 * announced it, as GET keys serves it) replaces trusted and is announced
 * in a checkpoint that opens with trusted and with the new key alike.
 * Fills *link. Returns 0, or -1 with why set.
 */
static int rotation_check(const json_t *event, const char *note, const char *trusted,
                          rotation *link, char *why, size_t whylen)
{
    const char *key = sjson_string(event, "key", NULL);
    const char *previous = sjson_string(event, "previous", NULL);
    note_verifier *old_key = NULL, *new_key = NULL;
    checkpoint cp;
    int rc = -1;
    if (previous == NULL) {
        snprintf(why, whylen, "it names no key that it replaces (a second first key)");
        goto out;
    }
    if (strcmp(previous, trusted) != 0) {
        snprintf(why, whylen,
                 "it replaces key %.*s, which this audit never trusted (the key trusted then is "
                 "%.*s)",
                 120, previous, 120, trusted);
        goto out;
    }
    if (note_verifier_parse(key, strlen(key), &new_key) != NOTE_OK ||
        note_verifier_parse(previous, strlen(previous), &old_key) != NOTE_OK) {
        snprintf(why, whylen, "it names no verifier key");
        goto out;
    }
    note_result by_old = checkpoint_open(note, strlen(note), &old_key, 1, &cp, NULL);
    note_result by_new = checkpoint_open(note, strlen(note), &new_key, 1, &link->announced, NULL);
    if (by_old != NOTE_OK || by_new != NOTE_OK) {
        snprintf(why, whylen,
                 "the checkpoint that announces it is not signed by %s (%s): a change must be "
                 "signed by the key it replaces and by the new one",
                 by_old != NOTE_OK && by_new != NOTE_OK ? "either key"
                 : by_old != NOTE_OK                    ? "the key it replaces"
                                                        : "the new key",
                 note_result_str(by_old != NOTE_OK ? by_old : by_new));
        goto out;
    }
    if (strcmp(link->announced.origin, note_verifier_name(new_key)) != 0 ||
        strcmp(note_verifier_name(old_key), note_verifier_name(new_key)) != 0) {
        snprintf(why, whylen, "its key is not of the log %.*s", 255, note_verifier_name(old_key));
        goto out;
    }
    snprintf(link->key, sizeof link->key, "%s", key);
    rc = 0;
out:
    note_verifier_free(old_key);
    note_verifier_free(new_key);
    return rc;
}

/*
 * Follows the log's key changes (GET keys) from the pinned key: the log's
 * own leaves, in log order, each proved in the checkpoint that announced
 * it. Every change after the one that named the pinned key must replace
 * the key trusted so far and be announced in a checkpoint signed by both
 * keys; each such link goes to out, and the newest key reached to
 * out->key. The links' checkpoints are checked against the tree later
 * (rotations_check). Returns 0, or -1 with why set: a forged or broken
 * link, named; RECEIPT_ERR_HTTP in *r when the changes cannot be read.
 */
static int follow_rotations(audit *a, const char *pinned, rotations *out, receipt_result *r,
                            char *why, size_t whylen)
{
    rc_http_response resp;
    json_t *obj = NULL, *event = NULL;
    bool reached = false;
    int rc = -1;
    *r = RECEIPT_ERR_INCONSISTENT;
    out->count = 0;
    snprintf(out->key, sizeof out->key, "%s", pinned);
    if (audit_get(a, "keys", AUDIT_KEYS_MAX, &resp) != RECEIPT_OK) {
        snprintf(why, whylen, "its key changes cannot be read (%.200s)", a->c->errmsg);
        *r = RECEIPT_ERR_HTTP;
        return -1;
    }
    char err[128];
    obj = sjson_parse_object(resp.body != NULL ? resp.body : "", resp.body_len, SJSON_MAX_DEPTH,
                             err, sizeof err);
    const json_t *list = json_object_get(obj, "keys");
    if (!json_is_array(list) || json_array_size(list) > EVIDENCE_KEYS_MAX) {
        snprintf(why, whylen, "its key changes are not a list of at most %d proofs",
                 EVIDENCE_KEYS_MAX);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *proof = json_array_get(list, i);
        const char *note = sjson_string(proof, "checkpoint", NULL);
        rotation *link = &out->link[out->count];
        checkpoint cp;
        char sub[320];
        json_decref(event);
        event = NULL;
        if (note == NULL || checkpoint_read(note, NULL, 0, &cp, sub, sizeof sub) != 0 ||
            leaf_check(proof, &cp, &event, &link->leaf, &link->leaf_hash, sub, sizeof sub) != 0) {
            snprintf(why, whylen, "its key change %zu (GET keys) is not proved: %s", i + 1,
                     note == NULL ? "it has no checkpoint" : sub);
            goto out;
        }
        const char *key = sjson_string(event, "key", NULL);
        const char *type = sjson_string(event, "type", NULL);
        if (type == NULL || strcmp(type, "log_key") != 0 || key == NULL) {
            snprintf(why, whylen, "its key change %zu (leaf %llu) is no log_key leaf", i + 1,
                     (unsigned long long)link->leaf);
            goto out;
        }
        if (!reached) {
            /* The history before the pinned key is not ours to check. */
            reached = strcmp(key, pinned) == 0;
            continue;
        }
        if (out->count > 0 && link->leaf <= out->link[out->count - 1].leaf) {
            snprintf(why, whylen, "its key change %zu (leaf %llu) is not after the one before it",
                     i + 1, (unsigned long long)link->leaf);
            goto out;
        }
        snprintf(link->key, sizeof link->key, "%s", key);
        char name[200];
        link_name(link, out->count + 1, name, sizeof name);
        if (rotation_check(event, note, out->key, link, sub, sizeof sub) != 0) {
            snprintf(why, whylen, "%s: %.300s", name, sub);
            goto out;
        }
        snprintf(out->key, sizeof out->key, "%s", key);
        out->count++;
    }
    if (!reached) {
        snprintf(why, whylen, "its key changes do not name the pinned key");
        goto out;
    }
    rc = 0;
out:
    json_decref(event);
    json_decref(obj);
    rc_http_response_clear(&resp);
    return rc;
}

/*
 * Whether checkpoints x and y (either the larger) sign one tree, by a
 * consistency proof computed from the tiles of the tree of a->size leaves,
 * which holds both. Nothing is proved about the empty tree.
 */
static merkle_result audit_consistent(audit *a, const checkpoint *x, const checkpoint *y)
{
    const checkpoint *small = x->size <= y->size ? x : y;
    const checkpoint *large = small == x ? y : x;
    merkle_hash proof[MERKLE_MAX_PROOF];
    size_t len = 0;
    if (small->size == 0)
        return MERKLE_OK;
    if (large->size > a->size)
        return MERKLE_RANGE;
    merkle_result mr =
        merkle_prove_consistency(small->size, large->size, audit_read, a, proof, &len);
    if (mr != MERKLE_OK)
        return mr;
    return merkle_verify_consistency(small->size, large->size, &small->root, &large->root, proof,
                                     len);
}

/*
 * Each link of a followed chain against the tree of now (its tiles
 * checked): the checkpoint that announced it is consistent with the
 * checkpoint trusted before it (pinned first, then the link before) and
 * with now, and its leaf is in now's tree. Returns RECEIPT_OK, or
 * RECEIPT_ERR_INCONSISTENT (or RECEIPT_ERR_HTTP) with the link named.
 */
static receipt_result rotations_check(audit *a, const rotations *chain, const checkpoint *pinned,
                                      const checkpoint *now)
{
    const checkpoint *prior = pinned;
    for (size_t i = 0; i < chain->count; i++) {
        const rotation *link = &chain->link[i];
        char name[200];
        link_name(link, i + 1, name, sizeof name);
        merkle_result mr = audit_consistent(a, prior, &link->announced);
        const char *against = "the checkpoint trusted before it";
        uint64_t against_size = prior->size;
        if (mr == MERKLE_OK) {
            mr = audit_consistent(a, &link->announced, now);
            against = "the log's checkpoint";
            against_size = now->size;
        }
        if (mr != MERKLE_OK && a->fetch_failed)
            return RECEIPT_ERR_HTTP;
        if (mr != MERKLE_OK)
            return rc_fail(a->c, RECEIPT_ERR_INCONSISTENT,
                           "the log at %s: %s: the checkpoint that announced it (%llu leaves) is "
                           "not consistent with %s (%llu leaves): the log was rewritten or forked",
                           a->base, name, (unsigned long long)link->announced.size, against,
                           (unsigned long long)against_size);
        merkle_hash proof[MERKLE_MAX_PROOF];
        size_t len = 0;
        mr = merkle_prove_inclusion(link->leaf, now->size, audit_read, a, proof, &len);
        if (mr != MERKLE_OK && a->fetch_failed)
            return RECEIPT_ERR_HTTP;
        if (mr == MERKLE_OK)
            mr = merkle_verify_inclusion(link->leaf, now->size, &link->leaf_hash, proof, len,
                                         &now->root);
        if (mr != MERKLE_OK)
            return rc_fail(a->c, RECEIPT_ERR_INCONSISTENT,
                           "the log at %s: %s: its leaf is not in the tree of %llu leaves", a->base,
                           name, (unsigned long long)now->size);
        prior = &link->announced;
    }
    return RECEIPT_OK;
}

/* The body of a response as a trimmed string (in place). */
static char *body_text(rc_http_response *resp)
{
    char *s = resp->body != NULL ? resp->body : (char *)"";
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    s[n] = '\0';
    return s;
}

RECEIPT_API receipt_result receipt_audit(receipt_client *c, const char *url, const char *dir,
                                         char **report)
{
    if (report != NULL)
        *report = NULL;
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (url == NULL || dir == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "a URL and a directory are required");
    c->errmsg[0] = '\0';
    audit a = {.c = c};
    rc_http_response key_resp = {0}, cp_resp = {0};
    char *pinned_key = NULL, *pinned_note = NULL;
    note_verifier *key = NULL;
    char name[RC_URL_MAX + 16], path[RC_URL_MAX + 64], lock_path[RC_URL_MAX + 64],
        legacy[RC_URL_MAX + 64];
    int lock_fd = -1;
    bool migrating = false;
    rotations *chain = NULL;
    bool key_changed = false;
    receipt_result r;
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    if (n == 0 ||
        snprintf(a.base, sizeof a.base, "%.*s/_receipt/log", (int)n, url) >= (int)sizeof a.base)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "%s is no URL of a server", url);
    if ((a.cache = calloc(AUDIT_TILE_CACHE, sizeof *a.cache)) == NULL)
        return rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
    if (rc_evidence_pin_name(a.base, name, sizeof name) != 0 ||
        pin_join(dir, name, "", path, sizeof path) != 0 ||
        pin_lock_path(dir, name, lock_path, sizeof lock_path) != 0 ||
        rc_evidence_pin_legacy_name(a.base, name, sizeof name) != 0 ||
        pin_join(dir, name, "", legacy, sizeof legacy) != 0) {
        r = rc_fail(c, RECEIPT_ERR_ARGUMENT, "the state directory's name is too long");
        goto out;
    }
    /* Held from reading the pin to its rename: the checkpoint kept only
     * grows, as each audit checks the one the audit before it saved. */
    if ((r = pin_lock(c, dir, lock_path, a.base, &lock_fd)) != RECEIPT_OK)
        goto out;
    int pinned = pin_load(c, path, &pinned_key, &pinned_note);
    if (pinned == 0) {
        /* A pin of an older version, named by a part of the URL that other
         * URLs share: whether it is this log's is known from the log's
         * checkpoint below. */
        pinned = pin_load(c, legacy, &pinned_key, &pinned_note);
        migrating = pinned > 0;
    }
    if (pinned < 0) {
        r = RECEIPT_ERR_IO;
        goto out;
    }
    if ((r = audit_get(&a, "checkpoint", AUDIT_CHECKPOINT_MAX, &cp_resp)) != RECEIPT_OK)
        goto out;
    if (migrating && !same_log_name(pinned_key, cp_resp.body != NULL ? cp_resp.body : "")) {
        /* Another log's pin (a log's name is fixed with its first key and
         * kept by every key after it): left for that log, never read. */
        rc_log(c, RECEIPT_LOG_INFO, "%s pins another log than the one at %s: left alone", legacy,
               a.base);
        free(pinned_key);
        free(pinned_note);
        pinned_key = pinned_note = NULL;
        pinned = 0;
        migrating = false;
    }
    const char *served_key = NULL;
    if (pinned == 0) {
        /* First use: the key the server names, from now on. */
        if ((r = audit_get(&a, "key", 1024, &key_resp)) != RECEIPT_OK)
            goto out;
        served_key = body_text(&key_resp);
    }
    const char *key_text = pinned ? pinned_key : served_key;
    if (note_verifier_parse(key_text, strlen(key_text), &key) != NOTE_OK) {
        r = rc_fail(c, pinned ? RECEIPT_ERR_IO : RECEIPT_ERR_PROTOCOL,
                    "%s is not a log's verifier key", key_text);
        goto out;
    }
    checkpoint now, before;
    char why[384];
    const char *note = cp_resp.body != NULL ? cp_resp.body : "";
    /* The checkpoint seen last, signed by the pinned key. */
    if (pinned && checkpoint_read(pinned_note, &key, 1, &before, why, sizeof why) != 0) {
        r = rc_fail(c, RECEIPT_ERR_IO, "%s: the checkpoint kept there: %s",
                    migrating ? legacy : path, why);
        goto out;
    }
    int opened = checkpoint_read(note, &key, 1, &now, why, sizeof why);
    if (opened != 0 && !pinned) {
        r = rc_fail(c, RECEIPT_ERR_VERIFY, "the log at %s: %s", a.base, why);
        goto out;
    }
    if (opened != 0) {
        /* Not signed by the pinned key: a chain of rotations the log
         * announced, each signed by both keys, is followed; anything else
         * is a forged checkpoint or a log that changed hands. */
        char rwhy[512] = "";
        if ((chain = calloc(1, sizeof *chain)) == NULL) {
            r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
            goto out;
        }
        receipt_result fr;
        if (follow_rotations(&a, pinned_key, chain, &fr, rwhy, sizeof rwhy) != 0 ||
            chain->count == 0) {
            r = rc_fail(c, fr == RECEIPT_ERR_HTTP ? RECEIPT_ERR_HTTP : RECEIPT_ERR_INCONSISTENT,
                        "the log at %s: its checkpoint is not signed by the pinned key, and %s",
                        a.base, rwhy[0] != '\0' ? rwhy : "it announces no new key signed by it");
            goto out;
        }
        note_verifier_free(key);
        key = NULL;
        key_text = chain->key;
        if (note_verifier_parse(key_text, strlen(key_text), &key) != NOTE_OK ||
            checkpoint_read(note, &key, 1, &now, why, sizeof why) != 0) {
            r = rc_fail(c, RECEIPT_ERR_INCONSISTENT,
                        "the log at %s: its checkpoint is signed neither by the pinned key nor "
                        "by the newest key its changes announce (%s)",
                        a.base, key_text);
            goto out;
        }
        key_changed = true;
    }
    /* The tiles must make the tree the checkpoint signs. */
    a.size = now.size;
    merkle_hash root;
    if (now.size > 0) {
        merkle_result mr = merkle_tree_hash(now.size, audit_read, &a, &root);
        if (mr != MERKLE_OK && a.fetch_failed) {
            r = c->errmsg[0] != '\0'
                    ? RECEIPT_ERR_HTTP
                    : rc_fail(c, RECEIPT_ERR_HTTP, "the log's tiles: %s", merkle_result_str(mr));
            goto out;
        }
        if (mr != MERKLE_OK || memcmp(root.bytes, now.root.bytes, MERKLE_HASH_LEN) != 0) {
            r = rc_fail(c, RECEIPT_ERR_INCONSISTENT,
                        "the log at %s: its tiles do not make the tree of %llu leaves that its "
                        "checkpoint signs",
                        a.base, (unsigned long long)now.size);
            goto out;
        }
    }
    uint64_t previous = 0;
    if (pinned) {
        previous = before.size;
        if (now.size < before.size) {
            r = rc_fail(c, RECEIPT_ERR_INCONSISTENT,
                        "the log at %s holds %llu leaves, fewer than the %llu of the checkpoint "
                        "seen before: it was rewritten",
                        a.base, (unsigned long long)now.size, (unsigned long long)before.size);
            goto out;
        }
        merkle_result mr = audit_consistent(&a, &before, &now);
        if (mr != MERKLE_OK && a.fetch_failed) {
            r = RECEIPT_ERR_HTTP;
            goto out;
        }
        if (mr != MERKLE_OK) {
            r = rc_fail(c, RECEIPT_ERR_INCONSISTENT,
                        "the log at %s is not consistent with the checkpoint of %llu leaves seen "
                        "before: it was rewritten or forked",
                        a.base, (unsigned long long)before.size);
            goto out;
        }
        /* Every link of the chain that led to the new key is of this tree. */
        if (key_changed && (r = rotations_check(&a, chain, &before, &now)) != RECEIPT_OK)
            goto out;
    }
    if ((r = pin_save(c, dir, path, key_text, note)) != RECEIPT_OK)
        goto out;
    if (migrating) {
        /* Saved under its own name: the older one is this log's no more. */
        if (unlink(legacy) != 0 || durable_sync_parent(legacy) != 0)
            rc_log(c, RECEIPT_LOG_WARN, "%s: %s (the pin is now %s)", legacy, strerror(errno),
                   path);
        else
            rc_log(c, RECEIPT_LOG_INFO, "%s: moved to %s", legacy, path);
    }
    if (report != NULL) {
        char root_b64[48];
        b64std_encode(now.root.bytes, MERKLE_HASH_LEN, root_b64);
        json_t *obj =
            json_pack("{s:s,s:s,s:I,s:s,s:I,s:b,s:b,s:I}", "origin", now.origin, "key", key_text,
                      "size", (json_int_t)now.size, "root", root_b64, "previous",
                      (json_int_t)previous, "first_use", pinned == 0, "key_changed", key_changed,
                      "key_changes", (json_int_t)(chain != NULL ? chain->count : 0));
        *report = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
        json_decref(obj);
        if (*report == NULL) {
            r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    r = RECEIPT_OK;
out:
    if (lock_fd >= 0)
        close(lock_fd);
    free(chain);
    note_verifier_free(key);
    free(pinned_key);
    free(pinned_note);
    rc_http_response_clear(&key_resp);
    rc_http_response_clear(&cp_resp);
    free(a.cache);
    return r;
}

/* ---- a proof against the log online ---- */

/* The trusted log keys of an online check, grown along the log's changes. */
typedef struct trusted_keys {
    note_verifier *key[EVIDENCE_KEYS_MAX];
    size_t count;
} trusted_keys;

static bool trusted_has(const trusted_keys *t, const char *text)
{
    char known[NOTE_VKEY_MAX];
    for (size_t i = 0; i < t->count; i++) {
        note_verifier_text(t->key[i], known);
        if (strcmp(known, text) == 0)
            return true;
    }
    return false;
}

/*
 * One of the log's key changes (GET keys), checked against newest (its
 * tiles checked): the leaf proved in the checkpoint that announced it,
 * that checkpoint signed by the key it replaces and by the new one and
 * consistent with newest, the leaf in newest's tree. *key and *previous
 * point into *event, its leaf goes to *leaf. Returns 0, 1 for the log's
 * first key (no change), or -1 with why set (RECEIPT_ERR_HTTP in *r when
 * tiles could not be read).
 */
static int online_change_check(audit *a, const json_t *change, const checkpoint *newest,
                               json_t **event, const char **key, const char **previous,
                               uint64_t *leaf, receipt_result *r, char *why, size_t whylen)
{
    const char *note = sjson_string(change, "checkpoint", NULL);
    rotation link;
    checkpoint cp;
    char sub[320];
    *r = RECEIPT_ERR_INCONSISTENT;
    if (note == NULL || checkpoint_read(note, NULL, 0, &cp, sub, sizeof sub) != 0 ||
        leaf_check(change, &cp, event, &link.leaf, &link.leaf_hash, sub, sizeof sub) != 0) {
        snprintf(why, whylen, "it is not proved: %s", note == NULL ? "it has no checkpoint" : sub);
        return -1;
    }
    *leaf = link.leaf;
    const char *type = sjson_string(*event, "type", NULL);
    *key = sjson_string(*event, "key", NULL);
    *previous = sjson_string(*event, "previous", NULL);
    if (type == NULL || strcmp(type, "log_key") != 0 || *key == NULL) {
        snprintf(why, whylen, "leaf %llu is no log_key leaf", (unsigned long long)link.leaf);
        return -1;
    }
    if (*previous == NULL)
        return 1;
    /* Signed by both keys: rotation_check, with the key it replaces as the
     * one trusted. */
    if (rotation_check(*event, note, *previous, &link, why, whylen) != 0)
        return -1;
    merkle_result mr = audit_consistent(a, &link.announced, newest);
    merkle_hash proof[MERKLE_MAX_PROOF];
    size_t len = 0;
    if (mr == MERKLE_OK)
        mr = merkle_prove_inclusion(link.leaf, newest->size, audit_read, a, proof, &len);
    if (mr == MERKLE_OK)
        mr = merkle_verify_inclusion(link.leaf, newest->size, &link.leaf_hash, proof, len,
                                     &newest->root);
    if (mr != MERKLE_OK) {
        *r = a->fetch_failed ? RECEIPT_ERR_HTTP : RECEIPT_ERR_INCONSISTENT;
        snprintf(why, whylen,
                 "the checkpoint that announced it (%llu leaves) is not consistent with the "
                 "log's newest (%llu), or its leaf is not in it",
                 (unsigned long long)link.announced.size, (unsigned long long)newest->size);
        return -1;
    }
    return 0;
}

/*
 * The keys the log's changes link to the trusted ones, forwards and
 * backwards (each change checked by online_change_check, every one of them:
 * the log serves them as its own, and they must make one chain, as
 * changes_chain says). The key the chain ends at goes to current ("": the
 * log serves no change). Returns RECEIPT_OK with *followed the number of
 * keys added, or an error with the change named.
 */
static receipt_result online_follow(audit *a, const checkpoint *newest, trusted_keys *t,
                                    char current[NOTE_VKEY_MAX], size_t *followed)
{
    rc_http_response resp;
    json_t *obj = NULL;
    receipt_result r = audit_get(a, "keys", AUDIT_KEYS_MAX, &resp);
    *followed = 0;
    if (r != RECEIPT_OK)
        return r;
    char err[128];
    obj = sjson_parse_object(resp.body != NULL ? resp.body : "", resp.body_len, SJSON_MAX_DEPTH,
                             err, sizeof err);
    const json_t *list = json_object_get(obj, "keys");
    bool valid[EVIDENCE_KEYS_MAX] = {false};
    uint64_t leaf[EVIDENCE_KEYS_MAX] = {0};
    current[0] = '\0';
    if (!json_is_array(list) || json_array_size(list) > EVIDENCE_KEYS_MAX) {
        r = rc_fail(a->c, RECEIPT_ERR_PROTOCOL,
                    "the log at %s: its key changes are not a list of at most %d proofs", a->base,
                    EVIDENCE_KEYS_MAX);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *event = NULL;
        const char *key = NULL, *previous = NULL;
        char why[512];
        int rc = online_change_check(a, json_array_get(list, i), newest, &event, &key, &previous,
                                     &leaf[i], &r, why, sizeof why);
        json_decref(event);
        if (rc < 0) {
            r = rc_fail(a->c, r, "the log at %s: its key change %zu (GET keys): %s", a->base, i + 1,
                        why);
            goto out;
        }
        valid[i] = rc == 0;
    }
    size_t forked;
    char expected[NOTE_VKEY_MAX];
    changes_chain(list, valid, leaf, current, &forked, expected);
    if (forked != SIZE_MAX) {
        r = rc_fail(a->c, RECEIPT_ERR_INCONSISTENT,
                    "the log at %s: its key change %zu (GET keys, leaf %llu) replaces another key "
                    "than the log's key then, %.120s: a second history of its keys",
                    a->base, forked + 1, (unsigned long long)leaf[forked], expected);
        goto out;
    }
    for (bool grew = true; grew;) {
        grew = false;
        for (size_t i = 0; i < json_array_size(list); i++) {
            if (!valid[i])
                continue;
            const char *key = NULL, *previous = NULL;
            json_t *event = change_event(json_array_get(list, i), &key, &previous);
            bool has_key = key != NULL && trusted_has(t, key);
            bool has_previous = previous != NULL && trusted_has(t, previous);
            const char *add = has_key && !has_previous   ? previous
                              : has_previous && !has_key ? key
                                                         : NULL;
            if (add != NULL && t->count < EVIDENCE_KEYS_MAX &&
                note_verifier_parse(add, strlen(add), &t->key[t->count]) == NOTE_OK) {
                t->count++;
                (*followed)++;
                grew = true;
            }
            json_decref(event);
        }
    }
    r = RECEIPT_OK;
out:
    json_decref(obj);
    rc_http_response_clear(&resp);
    return r;
}

RECEIPT_API receipt_result receipt_verify_proof_in_log(receipt_client *c, const char *receipt,
                                                       const char *proof, const char *log_key,
                                                       const char *url, char **report)
{
    if (report != NULL)
        *report = NULL;
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (receipt == NULL || proof == NULL || log_key == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "a receipt, its proof and a log key are required");
    c->errmsg[0] = '\0';
    audit a = {.c = c};
    trusted_keys t = {.count = 0};
    rc_http_response cp_resp = {0};
    json_t *obj = NULL;
    char *keys_text = NULL;
    char why[640], err[128], server[RC_URL_MAX], delivery[64], current[NOTE_VKEY_MAX];
    checkpoint newest, given;
    size_t followed = 0;
    receipt_result r;
    long n = log_keys_parse(log_key, t.key, EVIDENCE_KEYS_MAX, why, sizeof why);
    if (n < 0)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "%s", why);
    t.count = (size_t)n;
    if (url == NULL && receipt_claim(receipt, "server", "url", server, sizeof server) != 0) {
        r = rc_fail(c, RECEIPT_ERR_VERIFY, "the receipt names no server (server.url)");
        goto out;
    }
    const char *base = url != NULL ? url : server;
    size_t len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        len--;
    if (rc_url_check(base, NULL, NULL) != RC_URL_OK ||
        snprintf(a.base, sizeof a.base, "%.*s/_receipt/log", (int)len, base) >=
            (int)sizeof a.base) {
        r = rc_fail(c, RECEIPT_ERR_ARGUMENT, "%s is not an http or https URL", base);
        goto out;
    }
    if (receipt_delivery_of(receipt, delivery) != 0) {
        r = rc_fail(c, RECEIPT_ERR_VERIFY, "the receipt names no delivery");
        goto out;
    }
    obj = sjson_parse_object(proof, strnlen(proof, RC_EVIDENCE_PROOF_MAX + 1), SJSON_MAX_DEPTH, err,
                             sizeof err);
    const char *proof_note = sjson_string(obj, "checkpoint", NULL);
    if (obj == NULL || strlen(proof) > RC_EVIDENCE_PROOF_MAX || proof_note == NULL ||
        checkpoint_read(proof_note, NULL, 0, &given, why, sizeof why) != 0) {
        r = rc_fail(c, RECEIPT_ERR_VERIFY, "the proof is not one: %s",
                    obj == NULL ? err : "it has no signed checkpoint");
        goto out;
    }
    if ((a.cache = calloc(AUDIT_TILE_CACHE, sizeof *a.cache)) == NULL) {
        r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* The log's newest checkpoint, its tree made by the tiles: opened at
     * the end, with the keys its changes link to the ones given. */
    if ((r = audit_get(&a, "checkpoint", AUDIT_CHECKPOINT_MAX, &cp_resp)) != RECEIPT_OK)
        goto out;
    const char *note = cp_resp.body != NULL ? cp_resp.body : "";
    if (checkpoint_read(note, NULL, 0, &newest, why, sizeof why) != 0) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "the log at %s: %s", a.base, why);
        goto out;
    }
    a.size = newest.size;
    merkle_hash root;
    merkle_empty_root(&root);
    merkle_result mr =
        newest.size > 0 ? merkle_tree_hash(newest.size, audit_read, &a, &root) : MERKLE_OK;
    if (mr != MERKLE_OK && a.fetch_failed) {
        r = RECEIPT_ERR_HTTP;
        goto out;
    }
    if (mr != MERKLE_OK || memcmp(root.bytes, newest.root.bytes, MERKLE_HASH_LEN) != 0) {
        r = rc_fail(c, RECEIPT_ERR_INCONSISTENT,
                    "the log at %s: its tiles do not make the tree of %llu leaves that its "
                    "checkpoint signs",
                    a.base, (unsigned long long)newest.size);
        goto out;
    }
    if ((r = online_follow(&a, &newest, &t, current, &followed)) != RECEIPT_OK)
        goto out;
    if (checkpoint_read(note, t.key, t.count, &newest, why, sizeof why) != 0) {
        r = rc_fail(c, RECEIPT_ERR_INCONSISTENT,
                    "the log at %s: %s, nor by a key that the log's key changes link to it", a.base,
                    why);
        goto out;
    }
    /* After its last change, only the key it names signs: whoever holds a
     * key that was replaced (often because it leaked) could sign a tree of
     * their own with it, which the backward links would trust. */
    if (current[0] != '\0') {
        note_verifier *now_key = NULL;
        bool in_use = trusted_has(&t, current) &&
                      note_verifier_parse(current, strlen(current), &now_key) == NOTE_OK &&
                      checkpoint_read(note, &now_key, 1, &newest, why, sizeof why) == 0;
        note_verifier_free(now_key);
        if (!in_use) {
            r = rc_fail(c, RECEIPT_ERR_INCONSISTENT,
                        "the log at %s: its newest checkpoint (%llu leaves) is not signed by "
                        "%.120s, its key since its last key change: a key that was replaced "
                        "signs no later tree",
                        a.base, (unsigned long long)newest.size, current);
            goto out;
        }
    }
    /* The proof, with the keys so trusted. */
    size_t cap = t.count * NOTE_VKEY_MAX;
    if ((keys_text = calloc(1, cap)) == NULL) {
        r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < t.count; i++) {
        char text[NOTE_VKEY_MAX];
        note_verifier_text(t.key[i], text);
        snprintf(keys_text + strlen(keys_text), cap - strlen(keys_text), "%s%s", i > 0 ? "\n" : "",
                 text);
    }
    if ((r = rc_evidence_check_proof(c, obj, receipt, delivery, keys_text)) != RECEIPT_OK)
        goto out;
    /* Step 4: the proof's checkpoint is of the log's tree. */
    if (given.size > newest.size) {
        r = rc_fail(c, RECEIPT_ERR_HTTP,
                    "the log at %s serves a checkpoint of %llu leaves, older than the proof's "
                    "(%llu): a node may lag a second behind another's; ask again",
                    a.base, (unsigned long long)newest.size, (unsigned long long)given.size);
        goto out;
    }
    mr = audit_consistent(&a, &given, &newest);
    if (mr != MERKLE_OK) {
        r = a.fetch_failed ? RECEIPT_ERR_HTTP
                           : rc_fail(c, RECEIPT_ERR_INCONSISTENT,
                                     "the proof of delivery %s: its checkpoint (%llu leaves) is "
                                     "not consistent with the newest of the log at %s (%llu): "
                                     "the log was rewritten or forked",
                                     delivery, (unsigned long long)given.size, a.base,
                                     (unsigned long long)newest.size);
        goto out;
    }
    if (report != NULL) {
        json_t *out = json_pack("{s:s,s:s,s:I,s:I,s:I}", "log", a.base, "origin", newest.origin,
                                "size", (json_int_t)newest.size, "proof_size",
                                (json_int_t)given.size, "keys_followed", (json_int_t)followed);
        *report = out != NULL ? json_dumps(out, JSON_COMPACT) : NULL;
        json_decref(out);
        if (*report == NULL) {
            r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    r = RECEIPT_OK;
out:
    free(keys_text);
    json_decref(obj);
    rc_http_response_clear(&cp_resp);
    free(a.cache);
    free_verifiers(t.key, t.count);
    return r;
}
