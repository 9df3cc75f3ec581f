#include "daemon/tlog_read.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- stored hashes ---- */

typedef struct commitments {
    uint64_t first;
    unsigned count;
    unsigned got;
    merkle_hash *leaves; /* count of them: the leaf hashes */
} commitments;

static int take_commitment(void *arg, const ledger_log_row *row)
{
    commitments *c = arg;
    if (row->leaf != c->first + c->got || c->got == c->count)
        return 1; /* a hole: the caller sees got short */
    merkle_leaf_hash(row->commitment, LEDGER_HASH_LEN, &c->leaves[c->got++]);
    return 0;
}

/* The hashes of leaves first .. first + count - 1 (count <= TILES_WIDTH). */
static int read_leaf_hashes(ledger *lg, uint64_t first, unsigned count, merkle_hash *out)
{
    commitments c = {.first = first, .count = count, .leaves = out};
    if (ledger_log_entries(lg, LEDGER_LOG_RANGE, first, count, NULL, true, take_commitment, &c) !=
            0 ||
        c.got != count)
        return -1;
    return 0;
}

int tlog_read_hashes(void *ctx, const uint64_t *indexes, size_t count, merkle_hash *out)
{
    ledger *lg = ctx;
    merkle_hash *entries = malloc(TILES_WIDTH * sizeof *entries);
    uint8_t *tile = malloc(TILES_WIDTH * LEDGER_HASH_LEN);
    int rc = -1;
    /* The tile last read, for the next hash in the same one. */
    int have_level = -1;
    uint64_t have_index = 0;
    unsigned have_width = 0;
    if (entries == NULL || tile == NULL)
        goto out;
    for (size_t i = 0; i < count; i++) {
        unsigned level;
        uint64_t n;
        tiles_tile t;
        unsigned start, span;
        merkle_stored_split(indexes[i], &level, &n);
        tiles_locate(level, n, &t, &start, &span);
        if (t.level == 0) {
            if (read_leaf_hashes(lg, t.index * TILES_WIDTH + start, span, entries) != 0)
                goto out;
            merkle_root_of(entries, span, &out[i]);
            continue;
        }
        if (t.level != have_level || t.index != have_index || have_width < start + span) {
            if (ledger_log_read_tile(lg, (unsigned)t.level, t.index, tile, &have_width) != 0)
                goto out;
            have_level = t.level;
            have_index = t.index;
            if (have_width < start + span)
                goto out; /* not stored (yet) */
        }
        memcpy(entries, tile + (size_t)start * LEDGER_HASH_LEN, (size_t)span * LEDGER_HASH_LEN);
        merkle_root_of(entries, span, &out[i]);
    }
    rc = 0;
out:
    free(entries);
    free(tile);
    return rc;
}

/* ---- tiles ---- */

typedef struct bundle {
    uint64_t first;
    unsigned width;
    unsigned got;
    bool hashes; /* the level-0 tile, else the entry bundle */
    uint8_t *out;
    size_t len;
} bundle;

static int take_entry(void *arg, const ledger_log_row *row)
{
    bundle *b = arg;
    if (row->leaf != b->first + b->got || b->got == b->width)
        return 1;
    if (b->hashes) {
        merkle_hash h;
        merkle_leaf_hash(row->commitment, LEDGER_HASH_LEN, &h);
        memcpy(b->out + b->len, h.bytes, MERKLE_HASH_LEN);
        b->len += MERKLE_HASH_LEN;
    } else if (!tiles_bundle_add(b->out, TLOG_READ_TILE_MAX, &b->len, row->commitment,
                                 LEDGER_HASH_LEN)) {
        return 1;
    }
    b->got++;
    return 0;
}

int tlog_read_tile(ledger *lg, const tiles_tile *tile, uint8_t *out, size_t *len, char *err,
                   size_t errlen)
{
    *len = 0;
    if (tile->level <= 0) {
        bundle b = {.first = tile->index * TILES_WIDTH,
                    .width = tile->width,
                    .hashes = tile->level == 0,
                    .out = out};
        if (ledger_log_entries(lg, LEDGER_LOG_RANGE, b.first, tile->width, NULL, true, take_entry,
                               &b) != 0) {
            snprintf(err, errlen, "%s", ledger_error(lg));
            return -1;
        }
        if (b.got != tile->width)
            return 0;
        *len = b.len;
        return 1;
    }
    if (tile->level > 7)
        return 0;
    unsigned width = 0;
    if (ledger_log_read_tile(lg, (unsigned)tile->level, tile->index, out, &width) != 0) {
        snprintf(err, errlen, "%s", ledger_error(lg));
        return -1;
    }
    if (width < tile->width)
        return 0;
    *len = (size_t)tile->width * MERKLE_HASH_LEN;
    return 1;
}

/* ---- checkpoints and proofs ---- */

typedef struct found_checkpoint {
    uint64_t size;
    char *note;
    size_t cap;
    bool found;
    bool fits;
} found_checkpoint;

static int take_checkpoint(void *arg, uint64_t size, uint64_t time_ms, const char *note)
{
    (void)time_ms;
    found_checkpoint *f = arg;
    f->found = true;
    f->size = size;
    size_t n = strlen(note);
    f->fits = n < f->cap;
    if (f->fits)
        memcpy(f->note, note, n + 1);
    return 1;
}

int tlog_read_latest(ledger *lg, uint64_t *size, char *note, size_t cap, char *err, size_t errlen)
{
    found_checkpoint f = {.note = note, .cap = cap};
    if (ledger_log_checkpoints(lg, 0, UINT64_MAX, true, 1, take_checkpoint, &f) != 0) {
        snprintf(err, errlen, "%s", ledger_error(lg));
        return -1;
    }
    if (!f.found)
        return 0;
    if (!f.fits) {
        snprintf(err, errlen, "the checkpoint of size %llu is longer than %zu bytes",
                 (unsigned long long)f.size, cap - 1);
        return -1;
    }
    *size = f.size;
    return 1;
}

typedef struct one_entry {
    ledger_proof *out;
    bool found;
    bool fits;
} one_entry;

static int take_leaf(void *arg, const ledger_log_row *row)
{
    one_entry *e = arg;
    e->found = true;
    e->fits = row->event != NULL && row->event_len <= LEDGER_EVENT_TEXT_MAX;
    if (e->fits) {
        memcpy(e->out->salt, row->salt, LEDGER_SALT_LEN);
        memcpy(e->out->event, row->event, row->event_len);
        e->out->event[row->event_len] = '\0';
    }
    return 1;
}

int tlog_read_proof(ledger *lg, uint64_t leaf, uint64_t size, ledger_proof *out, char *err,
                    size_t errlen)
{
    memset(out, 0, offsetof(ledger_proof, hashes));
    one_entry e = {.out = out};
    if (ledger_log_entries(lg, LEDGER_LOG_RANGE, leaf, 1, NULL, false, take_leaf, &e) != 0) {
        snprintf(err, errlen, "%s", ledger_error(lg));
        return -1;
    }
    if (!e.found || !e.fits) {
        snprintf(err, errlen, "the log has no leaf %llu", (unsigned long long)leaf);
        return -1;
    }
    found_checkpoint f = {.note = out->checkpoint, .cap = sizeof out->checkpoint};
    uint64_t min = size != 0 ? size : leaf + 1;
    uint64_t max = size != 0 ? size : UINT64_MAX;
    if (ledger_log_checkpoints(lg, min, max, false, 1, take_checkpoint, &f) != 0) {
        snprintf(err, errlen, "%s", ledger_error(lg));
        return -1;
    }
    if (!f.found || !f.fits) {
        snprintf(err, errlen, "the log has no checkpoint of %s %llu",
                 size != 0 ? "size" : "a size above", (unsigned long long)min);
        return -1;
    }
    merkle_hash hashes[MERKLE_MAX_PROOF];
    merkle_result mr =
        merkle_prove_inclusion(leaf, f.size, tlog_read_hashes, lg, hashes, &out->hash_count);
    if (mr != MERKLE_OK) {
        snprintf(err, errlen, "the proof of leaf %llu: %s", (unsigned long long)leaf,
                 merkle_result_str(mr));
        return -1;
    }
    for (size_t i = 0; i < out->hash_count; i++)
        memcpy(out->hashes[i], hashes[i].bytes, LEDGER_HASH_LEN);
    out->index = leaf;
    out->size = f.size;
    out->present = true;
    return 0;
}

typedef struct confirmation {
    uint64_t leaf;
    bool found;
} confirmation;

/* Whether an event (canonical text) records a final status: a confirmation,
 * or a row that was final when the log began. */
static bool records_final(const char *text, size_t n)
{
    json_t *obj = json_loadb(text, n, 0, NULL);
    const char *type = json_string_value(json_object_get(obj, "type"));
    const char *status = json_string_value(json_object_get(obj, "status"));
    bool final = type != NULL && status != NULL &&
                 (strcmp(type, "confirmed") == 0 || strcmp(type, "corrupted") == 0 ||
                  (strcmp(type, "existing") == 0 &&
                   (strcmp(status, "confirmed") == 0 || strcmp(status, "corrupted") == 0)));
    json_decref(obj);
    return final;
}

static int take_confirmation(void *arg, const ledger_log_row *row)
{
    confirmation *c = arg;
    if (row->event != NULL && records_final(row->event, row->event_len)) {
        c->leaf = row->leaf;
        c->found = true;
        return 1; /* the first: a final status is never changed */
    }
    return 0;
}

int tlog_read_confirmation_leaf(ledger *lg, const char *delivery, uint64_t *leaf, char *err,
                                size_t errlen)
{
    confirmation c = {0};
    if (ledger_log_entries(lg, LEDGER_LOG_DELIVERY, 0, 0, delivery, false, take_confirmation, &c) !=
        0) {
        snprintf(err, errlen, "%s", ledger_error(lg));
        return -1;
    }
    if (!c.found)
        return 0;
    *leaf = c.leaf;
    return 1;
}
