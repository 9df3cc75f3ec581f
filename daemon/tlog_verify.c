#include "daemon/tlog_verify.h"

#include "common/checkpoint.h"
#include "common/merkle.h"
#include "common/note_sign.h"
#include "common/tiles.h"
#include "daemon/tlog_event.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERIFY_ENTRY_CHUNK      4096 /* leaves read at a time */
#define VERIFY_CHECKPOINT_CHUNK 1024 /* checkpoints read at a time */
#define VERIFY_ROW_CHUNK        1000 /* delivery rows read at a time */
#define VERIFY_LEVELS           8
#define VERIFY_PROBLEM_MAX      512
#define VERIFY_SUSPECTS_MAX     256 /* row problems of a page read again before they are told */
#define VERIFY_READS_AGAIN      3   /* times a row and its events are read again */

enum problem_kind { P_LEAF, P_CHECKPOINT, P_TILE, P_ROW, P_MISSING, P_KINDS };

/* A row problem as first seen: read again before it is told, since a running
 * server may have changed the row, or made it, between two reads. */
typedef struct suspect {
    char id[UUID7_STR_LEN + 1];
    bool missing;  /* logged, but no row was read */
    uint64_t leaf; /* missing: its first leaf seen */
} suspect;

typedef struct pending_checkpoint {
    uint64_t size;
    checkpoint cp;
    bool opened;
} pending_checkpoint;

typedef struct verifier {
    ledger *lg;
    note_verifier *keys[2 + KEYSTORE_RETIRED_MAX];
    size_t key_count;
    tlog_verify_report_fn fn;
    void *arg;
    tlog_verify_result *out;
    uint64_t told[P_KINDS];

    /* The log, read in leaf order. */
    merkle_edge *edge;
    bool broken; /* a leaf is missing: the tree cannot go on */
    pending_checkpoint *cps;
    size_t cp_count, cp_next;
    uint64_t cp_after; /* checkpoints of larger sizes are read next */
    bool cp_started;
    bool cp_done;
    uint64_t signed_size; /* the largest checkpoint size reached */
    uint64_t agreed_size; /* the largest checkpoint size whose tree the leaves make */
    uint8_t tile[VERIFY_LEVELS][TILES_WIDTH * MERKLE_HASH_LEN];
    uint64_t tile_index[VERIFY_LEVELS];
    unsigned tile_width[VERIFY_LEVELS];
    bool tile_loaded[VERIFY_LEVELS];
    int read_failed;
    char err[VERIFY_PROBLEM_MAX];

    /* The rows: a page of them, in ID order, merged with their events. */
    const ledger_delivery *page;
    size_t page_count, page_at;
    char missing[UUID7_STR_LEN + 1]; /* the last delivery logged without a row */
    tlog_event_row state;
    bool state_bad;
    char state_why[256];
    uint64_t state_events;
    suspect suspects[VERIFY_SUSPECTS_MAX];
    size_t suspect_count;

    /*
     * Every leaf that names a delivery must be found from that delivery's
     * row. The leaves read in order count those that name one (named); the
     * rows' reads count what they found, or named as having no row
     * (accounted), both below the log's size as read (counted_size). A
     * delivery's events come from its row on SQLite, and only those that
     * name it, each once, so the two counts differ exactly when a row lost
     * its way to one of its leaves (deleted, or its leaf numbers edited):
     * the leaves are then read again to name them (name_unreached()).
     */
    uint64_t named;
    uint64_t accounted;
    uint64_t counted_size;
    char told_ids[VERIFY_SUSPECTS_MAX][UUID7_STR_LEN + 1]; /* named unreached, recently */
    size_t told_count;
} verifier;

static void problem(verifier *v, enum problem_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(verifier *v, enum problem_kind kind, const char *fmt, ...)
{
    v->out->problems++;
    if (v->told[kind]++ >= TLOG_VERIFY_REPORT_MAX || v->fn == NULL)
        return;
    char text[VERIFY_PROBLEM_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    v->fn(v->arg, text);
}

/* ---- checkpoints, in ascending size ---- */

static int take_checkpoint(void *arg, uint64_t size, uint64_t time_ms, const char *note)
{
    (void)time_ms;
    verifier *v = arg;
    pending_checkpoint *p = &v->cps[v->cp_count++];
    p->size = size;
    p->opened = checkpoint_open(note, strlen(note), v->keys, v->key_count, &p->cp, NULL) == NOTE_OK;
    v->cp_after = size;
    return 0;
}

static int next_checkpoints(verifier *v)
{
    v->cp_count = v->cp_next = 0;
    if (v->cp_done)
        return 0;
    uint64_t from = v->cp_started ? v->cp_after + 1 : 0;
    v->cp_started = true;
    if (ledger_log_checkpoints(v->lg, from, UINT64_MAX, false, VERIFY_CHECKPOINT_CHUNK,
                               take_checkpoint, v) != 0) {
        snprintf(v->err, sizeof v->err, "the log's checkpoints: %s", ledger_error(v->lg));
        return -1;
    }
    v->cp_done = v->cp_count < VERIFY_CHECKPOINT_CHUNK;
    return 0;
}

/* Checks the checkpoints of the tree's size now; -1 when they cannot be read. */
static int check_checkpoints(verifier *v)
{
    uint64_t size = merkle_edge_size(v->edge);
    for (;;) {
        if (v->cp_next == v->cp_count && next_checkpoints(v) != 0)
            return -1;
        if (v->cp_next == v->cp_count)
            return 0;
        pending_checkpoint *p = &v->cps[v->cp_next];
        if (p->size > size)
            return 0;
        v->cp_next++;
        v->out->checkpoints++;
        if (p->size > v->signed_size)
            v->signed_size = p->size;
        if (!p->opened) {
            problem(v, P_CHECKPOINT,
                    "the checkpoint of %llu leaves is not signed by the site's log keys",
                    (unsigned long long)p->size);
            continue;
        }
        if (p->cp.size != p->size) {
            problem(v, P_CHECKPOINT, "the checkpoint stored as size %llu signs %llu leaves",
                    (unsigned long long)p->size, (unsigned long long)p->cp.size);
            continue;
        }
        merkle_hash root;
        merkle_edge_root(v->edge, &root);
        /* The checkpoint before it that agrees bounds the leaf changed
         * from below: for the first that does not, the leaves between the
         * two are the suspects, a single one when a leaf was moved. */
        if (p->size == size && memcmp(root.bytes, p->cp.root.bytes, MERKLE_HASH_LEN) != 0)
            problem(v, P_CHECKPOINT,
                    "the checkpoint of %llu leaves signs another tree than the stored leaves "
                    "make: a leaf from %llu to %llu (the checkpoint of %llu agrees) was altered, "
                    "moved, removed or inserted",
                    (unsigned long long)p->size, (unsigned long long)v->agreed_size,
                    (unsigned long long)p->size - 1, (unsigned long long)v->agreed_size);
        else if (p->size == size)
            v->agreed_size = size;
        if (p->size < size)
            problem(v, P_CHECKPOINT,
                    "the checkpoint of %llu leaves was not reached: a leaf is missing before it",
                    (unsigned long long)p->size);
    }
}

/* ---- tiles ---- */

/* Compares a hash the tree made at level 8 L with the stored tile's entry. */
static void check_tile_hash(verifier *v, unsigned level, uint64_t n, const merkle_hash *h)
{
    uint64_t index = n / TILES_WIDTH;
    unsigned at = (unsigned)(n % TILES_WIDTH);
    /* A partial tile read before a running server's later batches grew it
     * is read again: the hashes it holds do not change, its width does. */
    bool again =
        v->tile_loaded[level] && v->tile_index[level] == index && at >= v->tile_width[level];
    if (again || !v->tile_loaded[level] || v->tile_index[level] != index) {
        unsigned width = 0;
        if (ledger_log_read_tile(v->lg, level, index, v->tile[level], &width) != 0) {
            snprintf(v->err, sizeof v->err, "the log's tile %u/%llu: %s", level,
                     (unsigned long long)index, ledger_error(v->lg));
            v->read_failed = 1;
            return;
        }
        v->tile_loaded[level] = true;
        v->tile_index[level] = index;
        v->tile_width[level] = width;
        if (width > 0 && !again)
            v->out->tiles++;
    }
    if (at >= v->tile_width[level]) {
        problem(v, P_TILE, "the log's tile %u/%llu lacks hash %u", level, (unsigned long long)index,
                at);
        return;
    }
    if (memcmp(v->tile[level] + (size_t)at * MERKLE_HASH_LEN, h->bytes, MERKLE_HASH_LEN) != 0)
        problem(v, P_TILE, "the log's tile %u/%llu holds another hash %u than its leaves make",
                level, (unsigned long long)index, at);
}

/* ---- leaves ---- */

static int take_leaf(void *arg, const ledger_log_row *row)
{
    verifier *v = arg;
    uint64_t expected = merkle_edge_size(v->edge);
    if (row->leaf != expected) {
        problem(v, P_LEAF, "leaf %llu is missing (the next stored is %llu)",
                (unsigned long long)expected, (unsigned long long)row->leaf);
        v->broken = true;
        return 1;
    }
    v->out->leaves++;
    if (row->delivery[0] != '\0')
        v->named++;
    merkle_hash commitment, leaf, made[MERKLE_MAX_WRITE];
    merkle_commitment(row->salt, row->event != NULL ? row->event : "", row->event_len, &commitment);
    if (memcmp(commitment.bytes, row->commitment, MERKLE_HASH_LEN) != 0)
        problem(v, P_LEAF, "leaf %llu: its event or salt was altered (its commitment differs)",
                (unsigned long long)row->leaf);
    merkle_leaf_hash(row->commitment, MERKLE_HASH_LEN, &leaf);
    size_t count = 0;
    if (merkle_edge_append(v->edge, &leaf, made, &count, NULL) != MERKLE_OK) {
        v->broken = true;
        return 1;
    }
    for (size_t l = TILES_HEIGHT; l < count; l += TILES_HEIGHT)
        check_tile_hash(v, (unsigned)(l / TILES_HEIGHT), ((row->leaf + 1) >> l) - 1, &made[l]);
    if (v->read_failed || check_checkpoints(v) != 0) {
        v->read_failed = 1;
        return 1;
    }
    return 0;
}

static int verify_log(verifier *v)
{
    for (;;) {
        uint64_t first = merkle_edge_size(v->edge);
        uint64_t before = v->out->leaves;
        if (ledger_log_entries(v->lg, LEDGER_LOG_RANGE, first, VERIFY_ENTRY_CHUNK, NULL, false,
                               take_leaf, v) != 0) {
            snprintf(v->err, sizeof v->err, "the log's leaves: %s", ledger_error(v->lg));
            return -1;
        }
        if (v->read_failed)
            return -1;
        if (v->broken || v->out->leaves - before < VERIFY_ENTRY_CHUNK)
            break;
    }
    /* The writer signs a checkpoint in the transaction that adds a batch's
     * leaves: leaves past the newest checkpoint were added, or their
     * checkpoint removed, behind the server (whose next batch then cannot be
     * written). The checkpoints were read in pages, perhaps before a running
     * server's last batch: the newest is asked for once more, and one that
     * covers every leaf read clears them. */
    uint64_t leaves = merkle_edge_size(v->edge);
    uint64_t newest = 0;
    if (!v->broken && leaves > v->signed_size) {
        if (ledger_log_size(v->lg, &newest) != 0) {
            snprintf(v->err, sizeof v->err, "the log's newest checkpoint: %s", ledger_error(v->lg));
            return -1;
        }
        if (newest < leaves && leaves == v->signed_size + 1)
            problem(v, P_CHECKPOINT,
                    "leaf %llu is in no checkpoint (the newest signs %llu leaves): a checkpoint "
                    "was deleted, or a leaf was added behind the server",
                    (unsigned long long)v->signed_size, (unsigned long long)v->signed_size);
        else if (newest < leaves)
            problem(v, P_CHECKPOINT,
                    "leaves %llu to %llu are in no checkpoint (the newest signs %llu leaves): a "
                    "checkpoint was deleted, or leaves were added behind the server",
                    (unsigned long long)v->signed_size, (unsigned long long)leaves - 1,
                    (unsigned long long)v->signed_size);
    }
    /* Checkpoints beyond the leaves there are. */
    for (;;) {
        if (v->cp_next == v->cp_count && next_checkpoints(v) != 0)
            return -1;
        if (v->cp_next == v->cp_count)
            break;
        pending_checkpoint *p = &v->cps[v->cp_next++];
        v->out->checkpoints++;
        problem(v, P_CHECKPOINT, "the checkpoint of %llu leaves, but the log holds %llu",
                (unsigned long long)p->size, (unsigned long long)merkle_edge_size(v->edge));
    }
    return 0;
}

/* ---- rows ---- */

static int fold_event(void *arg, const ledger_log_row *row)
{
    verifier *v = arg;
    tlog_event_info info;
    v->state_events++;
    if (v->state_bad)
        return 0;
    if (row->event == NULL || tlog_event_fold(row->event, row->event_len, &info, &v->state,
                                              v->state_why, sizeof v->state_why) != 0) {
        v->state_bad = true;
        char why[sizeof v->state_why];
        snprintf(why, sizeof why, "%s", row->event == NULL ? "no event" : v->state_why);
        snprintf(v->state_why, sizeof v->state_why, "leaf %llu: %.200s",
                 (unsigned long long)row->leaf, why);
    }
    return 0;
}

static void row_begin(verifier *v)
{
    memset(&v->state, 0, sizeof v->state);
    v->state_bad = false;
    v->state_events = 0;
}

/* Whether the folded events make row; when not, why says so (a whole
 * problem's text). */
static bool row_agrees(verifier *v, const ledger_delivery *row, char *why, size_t whylen)
{
    char diff[256];
    if (v->state_events == 0)
        snprintf(why, whylen, "delivery %s: its row is not in the log (inserted behind the server)",
                 row->id);
    else if (v->state_bad)
        snprintf(why, whylen, "delivery %s: its logged events do not make a row: %s", row->id,
                 v->state_why);
    else if (!tlog_event_row_matches(&v->state, row, diff, sizeof diff))
        snprintf(why, whylen, "delivery %s: its row differs from its logged events in: %s", row->id,
                 diff);
    else
        return true;
    return false;
}

/* A row problem: kept to be read again, or told at once when too many are. */
static void suspect_add(verifier *v, const char *id, bool missing, uint64_t leaf, const char *why)
{
    if (v->suspect_count == VERIFY_SUSPECTS_MAX) {
        problem(v, missing ? P_MISSING : P_ROW, "%s", why);
        return;
    }
    suspect *s = &v->suspects[v->suspect_count++];
    snprintf(s->id, sizeof s->id, "%s", id);
    s->missing = missing;
    s->leaf = leaf;
}

/* A row whose events were all folded: the row they make is compared. */
static void row_end(verifier *v, const ledger_delivery *row)
{
    v->out->rows++;
    char why[VERIFY_PROBLEM_MAX];
    if (!row_agrees(v, row, why, sizeof why))
        suspect_add(v, row->id, false, 0, why);
    row_begin(v);
}

/* An event of the page's ID range (by delivery, then leaf): the rows
 * before its delivery are complete; a delivery without a row is named. */
static int merge_event(void *arg, const ledger_log_row *row)
{
    verifier *v = arg;
    if (row->leaf < v->counted_size)
        v->accounted++;
    while (v->page_at < v->page_count && strcmp(v->page[v->page_at].id, row->delivery) < 0)
        row_end(v, &v->page[v->page_at++]);
    if (v->page_at < v->page_count && strcmp(v->page[v->page_at].id, row->delivery) == 0)
        return fold_event(v, row);
    if (strcmp(v->missing, row->delivery) != 0) {
        snprintf(v->missing, sizeof v->missing, "%s", row->delivery);
        suspect_add(v, row->delivery, true, row->leaf, "");
    }
    return 0;
}

/*
 * The page's row problems, read again one by one now that the page's query
 * is done: a row made since the page was read, or changed between the read
 * of the rows and that of their events, is no problem; one that stays wrong
 * is told. -1 when the ledger cannot be read.
 */
static int confirm_suspects(verifier *v)
{
    for (size_t i = 0; i < v->suspect_count; i++) {
        const suspect *s = &v->suspects[i];
        ledger_delivery row;
        char why[VERIFY_PROBLEM_MAX] = "";
        bool agrees = false;
        for (int attempt = 0; attempt < VERIFY_READS_AGAIN && !agrees; attempt++) {
            int found = ledger_get(v->lg, s->id, &row);
            if (found < 0) {
                snprintf(v->err, sizeof v->err, "the row of delivery %s: %s", s->id,
                         ledger_error(v->lg));
                return -1;
            }
            if (s->missing) {
                agrees = found == 1;
                snprintf(why, sizeof why,
                         "delivery %s: logged (leaf %llu) but it has no row (deleted behind the "
                         "server)",
                         s->id, (unsigned long long)s->leaf);
                break;
            }
            if (found == 0) {
                snprintf(why, sizeof why, "delivery %s: its row went away while it was checked",
                         s->id);
                break;
            }
            row_begin(v);
            if (ledger_log_entries(v->lg, LEDGER_LOG_DELIVERY, 0, 0, s->id, false, fold_event, v) !=
                0) {
                snprintf(v->err, sizeof v->err, "the log's events of delivery %s: %s", s->id,
                         ledger_error(v->lg));
                return -1;
            }
            agrees = row_agrees(v, &row, why, sizeof why);
        }
        if (!agrees)
            problem(v, s->missing ? P_MISSING : P_ROW, "%s", why);
    }
    v->suspect_count = 0;
    row_begin(v);
    return 0;
}

/*
 * A page of rows (IDs after after, NULL: the first page) against the
 * events of its range of IDs, read in one query; the last page's range
 * runs to the end, so that every logged delivery falls in one page's.
 */
static int check_page(verifier *v, const ledger_delivery *rows, size_t n, const char *after,
                      bool last)
{
    v->page = rows;
    v->page_count = n;
    v->page_at = 0;
    row_begin(v);
    const char *upto = last ? NULL : rows[n - 1].id;
    if (ledger_log_deliveries(v->lg, after, upto, merge_event, v) != 0) {
        snprintf(v->err, sizeof v->err, "the log's events of deliveries after %s: %s",
                 after != NULL ? after : "the first", ledger_error(v->lg));
        return -1;
    }
    while (v->page_at < v->page_count)
        row_end(v, &v->page[v->page_at++]);
    return confirm_suspects(v);
}

static int verify_rows(verifier *v)
{
    ledger_delivery *rows = malloc(VERIFY_ROW_CHUNK * sizeof *rows);
    char after[UUID7_STR_LEN + 1] = "";
    int rc = -1;
    if (rows == NULL) {
        snprintf(v->err, sizeof v->err, "out of memory");
        return -1;
    }
    for (;;) {
        ledger_filter f = {.after_id = after[0] != '\0' ? after : NULL,
                           .oldest_first = true,
                           .limit = VERIFY_ROW_CHUNK};
        ledger_cursor *cur = ledger_query(v->lg, &f);
        if (cur == NULL) {
            snprintf(v->err, sizeof v->err, "the deliveries: %s", ledger_error(v->lg));
            goto out;
        }
        size_t n = 0;
        int got;
        while (n < VERIFY_ROW_CHUNK && (got = ledger_cursor_next(cur, &rows[n])) == 1)
            n++;
        ledger_cursor_free(cur);
        if (got < 0) {
            snprintf(v->err, sizeof v->err, "the deliveries: %s", ledger_error(v->lg));
            goto out;
        }
        /* The cursor is closed before the log is read: one query at a time. */
        bool last = n < VERIFY_ROW_CHUNK;
        if (check_page(v, rows, n, after[0] != '\0' ? after : NULL, last) != 0)
            goto out;
        if (n < VERIFY_ROW_CHUNK)
            break;
        snprintf(after, sizeof after, "%s", rows[n - 1].id);
    }
    rc = 0;
out:
    free(rows);
    return rc;
}

/* ---- leaves no row leads to ---- */

typedef struct named_leaf {
    char id[UUID7_STR_LEN + 1];
    uint64_t leaf;
} named_leaf;

typedef struct leaf_chunk {
    named_leaf *at;
    size_t count;
} leaf_chunk;

static int take_named(void *arg, const ledger_log_row *row)
{
    leaf_chunk *c = arg;
    if (row->delivery[0] != '\0') {
        memcpy(c->at[c->count].id, row->delivery, sizeof c->at[c->count].id);
        c->at[c->count].leaf = row->leaf;
        c->count++;
    }
    return 0;
}

typedef struct reach {
    uint64_t leaf;
    bool found;
} reach;

static int take_reached(void *arg, const ledger_log_row *row)
{
    reach *r = arg;
    r->found |= row->leaf == r->leaf;
    return r->found;
}

/* Whether the delivery's problem was told already (recently: its leaves
 * are near each other in the log); remembers it when not. */
static bool told_before(verifier *v, const char *id)
{
    for (size_t i = 0; i < v->told_count && i < VERIFY_SUSPECTS_MAX; i++)
        if (strcmp(v->told_ids[i], id) == 0)
            return true;
    snprintf(v->told_ids[v->told_count++ % VERIFY_SUSPECTS_MAX], UUID7_STR_LEN + 1, "%s", id);
    return false;
}

/*
 * The rows found fewer of the leaves below counted_size than name a
 * delivery: the leaves are read again, in order, and each asked of its
 * delivery's row, until every one of the difference is named. Only when
 * the ledger was altered (a row deleted, a row's leaf numbers edited).
 */
static int name_unreached(verifier *v)
{
    uint64_t missing = v->named - v->accounted;
    uint64_t found = 0;
    leaf_chunk c = {.at = malloc(VERIFY_ENTRY_CHUNK * sizeof *c.at)};
    int rc = -1;
    if (c.at == NULL) {
        snprintf(v->err, sizeof v->err, "out of memory");
        return -1;
    }
    for (uint64_t first = 0; first < v->counted_size && found < missing;
         first += VERIFY_ENTRY_CHUNK) {
        uint64_t count = v->counted_size - first < VERIFY_ENTRY_CHUNK ? v->counted_size - first
                                                                      : VERIFY_ENTRY_CHUNK;
        c.count = 0;
        if (ledger_log_entries(v->lg, LEDGER_LOG_RANGE, first, count, NULL, true, take_named, &c) !=
            0) {
            snprintf(v->err, sizeof v->err, "the log's leaves: %s", ledger_error(v->lg));
            goto out;
        }
        for (size_t i = 0; i < c.count && found < missing; i++) {
            const named_leaf *n = &c.at[i];
            reach r = {.leaf = n->leaf};
            ledger_delivery row;
            if (ledger_log_entries(v->lg, LEDGER_LOG_DELIVERY, 0, 0, n->id, true, take_reached,
                                   &r) != 0) {
                snprintf(v->err, sizeof v->err, "the log's events of delivery %s: %s", n->id,
                         ledger_error(v->lg));
                goto out;
            }
            if (r.found)
                continue;
            found++;
            if (told_before(v, n->id))
                continue;
            int got = ledger_get(v->lg, n->id, &row);
            if (got < 0) {
                snprintf(v->err, sizeof v->err, "the row of delivery %s: %s", n->id,
                         ledger_error(v->lg));
                goto out;
            }
            if (got == 0)
                problem(v, P_MISSING,
                        "delivery %s: logged (leaf %llu) but it has no row (deleted behind the "
                        "server)",
                        n->id, (unsigned long long)n->leaf);
            else
                problem(v, P_ROW,
                        "delivery %s: its row does not lead to its logged event at leaf %llu "
                        "(the row's leaf numbers were edited behind the server)",
                        n->id, (unsigned long long)n->leaf);
        }
    }
    rc = 0;
out:
    free(c.at);
    return rc;
}

int tlog_verify_run(ledger *lg, const keystore *ks, tlog_verify_report_fn fn, void *arg,
                    tlog_verify_result *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    verifier *v = calloc(1, sizeof *v);
    int rc = -1;
    if (v == NULL || (v->edge = merkle_edge_new()) == NULL ||
        (v->cps = malloc(VERIFY_CHECKPOINT_CHUNK * sizeof *v->cps)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    v->lg = lg;
    v->fn = fn;
    v->arg = arg;
    v->out = out;
    const note_signer *signers[2] = {ks->log, ks->log_previous};
    for (int i = 0; i < 2; i++)
        if (signers[i] != NULL &&
            (v->keys[v->key_count] = note_signer_verifier(signers[i])) != NULL)
            v->key_count++;
    for (size_t i = 0; i < ks->old_log_count; i++) {
        char text[NOTE_VKEY_MAX];
        note_verifier_text(ks->old_log[i].key, text);
        if (note_verifier_parse(text, strlen(text), &v->keys[v->key_count]) == NOTE_OK)
            v->key_count++;
    }
    if (v->key_count == 0) {
        snprintf(err, errlen, "the server's keys hold no evidence log key");
        goto out;
    }
    bool checked = verify_log(v) == 0;
    v->counted_size = merkle_edge_size(v->edge);
    checked =
        checked && verify_rows(v) == 0 && (v->accounted >= v->named || name_unreached(v) == 0);
    if (!checked) {
        snprintf(err, errlen, "%s", v->err);
        goto out;
    }
    rc = 0;
out:
    if (v != NULL) {
        for (size_t i = 0; i < v->key_count; i++)
            note_verifier_free(v->keys[i]);
        merkle_edge_free(v->edge);
        free(v->cps);
        free(v);
    }
    return rc;
}

/* ---- receiptd ledger verify ---- */

static const char verify_usage[] =
    "usage: receiptd ledger verify [--state-dir DIR] [--ledger URL]\n"
    "\n"
    "Checks that the ledger and its evidence log agree (docs/evidence.md): every\n"
    "leaf's commitment is that of its stored event and salt, the leaves make the\n"
    "tree that each stored checkpoint signs with one of the site's log keys, the\n"
    "stored tiles hold that tree's hashes, every delivery row is the row its\n"
    "logged events make, and every delivery the log names has a row that leads\n"
    "to each of its leaves. A row edited, deleted or inserted behind the server,\n"
    "or a log altered, is named. Then the counts that the dashboard and the admin\n"
    "API show (the ledger's rollups) against a recount of the rows: each\n"
    "difference is named.\n"
    "Reads only: safe while receiptd runs (rows written meanwhile may be named).\n"
    "\n"
    "  --state-dir DIR   the server's state directory: its keys, and its\n"
    "                    DIR/ledger.sqlite unless --ledger (default /var/lib/receiptd)\n"
    "  --ledger URL      the ledger: sqlite:PATH, or PostgreSQL (postgresql://...\n"
    "                    or a key=value string)\n"
    "  --help            this text\n"
    "\n"
    "Exit status: 0 they agree, 1 the ledger or the keys cannot be read, 2 a\n"
    "usage error, 5 a problem was found (each named on standard error).\n";

static void print_problem(void *arg, const char *text)
{
    (void)arg;
    fprintf(stderr, "receiptd ledger verify: %s\n", text);
}

int tlog_verify_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"ledger", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state_dir = "/var/lib/receiptd";
    const char *url = NULL;
    char err[VERIFY_PROBLEM_MAX] = "";
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            state_dir = optarg;
            break;
        case 'l':
            url = optarg;
            break;
        case 'h':
            fputs(verify_usage, stdout);
            return 0;
        default:
            fprintf(stderr, "receiptd ledger verify: an option needs a value or is unknown\n"
                            "Try 'receiptd ledger verify --help'.\n");
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "receiptd ledger verify: no argument expected\n"
                        "Try 'receiptd ledger verify --help'.\n");
        return 2;
    }
    keystore *ks = keystore_open(state_dir, false, NULL, err, sizeof err);
    if (ks == NULL) {
        fprintf(stderr, "receiptd ledger verify: %s\n", err);
        return 1;
    }
    ledger *lg = ledger_open(url, state_dir, true, err, sizeof err);
    if (lg == NULL) {
        fprintf(stderr, "receiptd ledger verify: %s\n", err);
        keystore_free(ks);
        return 1;
    }
    tlog_verify_result r;
    int status = 1;
    long rollup_problems = 0;
    if (tlog_verify_run(lg, ks, print_problem, NULL, &r, err, sizeof err) != 0) {
        fprintf(stderr, "receiptd ledger verify: %s\n", err);
    } else if ((rollup_problems = ledger_rollups_check(lg, print_problem, NULL)) < 0) {
        fprintf(stderr, "receiptd ledger verify: %s\n", ledger_error(lg));
    } else {
        r.problems += (uint64_t)rollup_problems;
        printf("receiptd ledger verify: %s: %llu leaves, %llu checkpoints, %llu tiles, %llu "
               "rows: %s\n",
               ledger_where(lg), (unsigned long long)r.leaves, (unsigned long long)r.checkpoints,
               (unsigned long long)r.tiles, (unsigned long long)r.rows,
               r.problems == 0 ? "the ledger and its log agree" : "PROBLEMS FOUND");
        if (r.problems > 0)
            fprintf(stderr, "receiptd ledger verify: %llu %s\n", (unsigned long long)r.problems,
                    r.problems == 1 ? "problem" : "problems");
        status = r.problems == 0 ? 0 : 5;
    }
    ledger_close(lg);
    keystore_free(ks);
    return status;
}
