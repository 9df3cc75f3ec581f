#include "daemon/tlog.h"

#include "common/checkpoint.h"
#include "common/merkle.h"
#include "common/note_sign.h"
#include "common/rnd.h"
#include "common/tiles.h"
#include "daemon/clock.h"
#include "daemon/log.h"
#include "daemon/tlog_event.h"
#include "daemon/tlog_read.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(TLOG_EVENT_MAX == LEDGER_EVENT_TEXT_MAX, "one bound for event texts");
_Static_assert(MERKLE_HASH_LEN == LEDGER_HASH_LEN && MERKLE_SALT_LEN == LEDGER_SALT_LEN,
               "the ledger stores the tree's hashes");
_Static_assert(MERKLE_MAX_PROOF == LEDGER_PROOF_MAX, "a proof fits a ledger_proof");

#define TLOG_LEVELS 8 /* tile levels: 0 (the commitments) .. 7, for trees below 2^63 */

/* One leaf of the batch being written. */
typedef struct tlog_leaf {
    uint64_t index;
    size_t entry;    /* the batch entry it records; SIZE_MAX for the log's own */
    size_t event_at; /* offset of its text in the batch's arena */
    size_t event_len;
    const uint8_t *packed; /* the text packed, made ahead with it; NULL: none */
    size_t packed_len;
    const char *delivery;
    uint8_t salt[MERKLE_SALT_LEN];
    merkle_hash commitment;
} tlog_leaf;

/* The tile of one level (1 .. 7) that is being filled. */
typedef struct tlog_partial {
    uint64_t index;
    unsigned width;
    uint8_t hashes[TILES_WIDTH * MERKLE_HASH_LEN];
} tlog_partial;

struct tlog {
    const keystore *keys;
    note_verifier *known[2 + KEYSTORE_RETIRED_MAX]; /* current, previous, history */
    size_t known_count;
    char key_text[NOTE_VKEY_MAX];      /* the current key's verifier key */
    char previous_text[NOTE_VKEY_MAX]; /* the previous key's, "" when none */

    /* The committed tree, and the one the batch grows. */
    merkle_edge *committed;
    merkle_edge *edge;
    tlog_partial partial[TLOG_LEVELS]; /* [1..7]; committed state */

    /* What the log must record before new events. */
    bool need_genesis;           /* no log_key leaf yet */
    bool need_rotation;          /* the log's key is the previous one */
    bool previous_gone;          /* the log announced the current key */
    bool adopting;               /* rows kept before the log wait for "existing" leaves */
    ledger_delivery *adopt_rows; /* catch-up's chunk, handed to the hook */
    size_t adopt_count;

    /* The batch. */
    tlog_leaf *leaves;
    size_t leaf_count, leaf_cap;
    size_t *entry_leaf; /* per entry: its leaf's position in leaves, or SIZE_MAX */
    size_t entry_cap;
    char *arena; /* event texts */
    size_t arena_len, arena_cap;
    merkle_hash *batch_hashes; /* the stored hashes the batch made, in order */
    size_t batch_hash_count, batch_hash_cap;
    uint64_t batch_first_stored;
    merkle_hash old_edge[MERKLE_MAX_EDGE]; /* the committed edge it grew from */
    uint64_t old_edge_index[MERKLE_MAX_EDGE];
    size_t old_edge_count;
    uint64_t batch_size; /* the tree's after the batch */
    bool batch_open;     /* the hook ran and made leaves; tlog_batch_end() decides */
    bool batch_rotated;  /* the batch announces the key: both keys sign */
    tlog_partial batch_partial[TLOG_LEVELS];
    bool batch_touched[TLOG_LEVELS];
    ledger_log_entry *rows;
    size_t row_cap;
    ledger_log_tile tiles[2 * TLOG_LEVELS];
    uint8_t full_tiles[TLOG_LEVELS][TILES_WIDTH * MERKLE_HASH_LEN];
    size_t tile_count;
    char *note;
    ledger_log_write write;
    ledger_log_hook hook;
    uint64_t appended;

    /* Pipelined commits: a committed batch's checkpoint is published once
     * the batch is durable (tlog_publish()), not at its commit. */
    bool deferred;
    char *committed_note; /* the committed tree's checkpoint */

    /* The newest checkpoint, for readers on other threads. */
    pthread_mutex_t latest_lock;
    uint64_t committed_size; /* this node's committed tree, durable or not */
    uint64_t latest_size;
    char latest[LEDGER_NOTE_MAX + 1];
    uint64_t observed_size; /* the ledger's newest, another node's perhaps */
    char observed[LEDGER_NOTE_MAX + 1];
    uint64_t refreshed_ms; /* when a refresh was last claimed (monotonic) */
    bool refreshed;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int tlog_batch_hook(void *ctx, ledger *lg, uint64_t head, ledger_batch_entry *entries,
                           size_t n, const ledger_log_write **out, char *err, size_t errlen);
static void tlog_batch_end(void *ctx, bool committed);

tlog *tlog_new(const keystore *ks)
{
    if (ks == NULL || ks->log == NULL)
        return NULL;
    tlog *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->keys = ks;
    t->committed = merkle_edge_new();
    t->edge = merkle_edge_new();
    t->note = malloc(LEDGER_NOTE_MAX + 1);
    t->committed_note = calloc(1, LEDGER_NOTE_MAX + 1);
    if (t->committed == NULL || t->edge == NULL || t->note == NULL || t->committed_note == NULL)
        goto fail;
    if (pthread_mutex_init(&t->latest_lock, NULL) != 0)
        goto fail;
    note_verifier *current = note_signer_verifier(ks->log);
    if (current == NULL)
        goto fail_mutex;
    t->known[t->known_count++] = current;
    note_verifier_text(current, t->key_text);
    if (ks->log_previous != NULL) {
        note_verifier *previous = note_signer_verifier(ks->log_previous);
        if (previous == NULL)
            goto fail_mutex;
        t->known[t->known_count++] = previous;
        note_verifier_text(previous, t->previous_text);
    }
    for (size_t i = 0; i < ks->old_log_count; i++) {
        char text[NOTE_VKEY_MAX];
        note_verifier_text(ks->old_log[i].key, text);
        note_verifier *v = NULL;
        if (note_verifier_parse(text, strlen(text), &v) != NOTE_OK)
            goto fail_mutex;
        t->known[t->known_count++] = v;
    }
    t->hook.batch = tlog_batch_hook;
    t->hook.end = tlog_batch_end;
    t->hook.ctx = t;
    return t;
fail_mutex:
    pthread_mutex_destroy(&t->latest_lock);
fail:
    for (size_t i = 0; i < t->known_count; i++)
        note_verifier_free(t->known[i]);
    merkle_edge_free(t->committed);
    merkle_edge_free(t->edge);
    free(t->note);
    free(t->committed_note);
    free(t);
    return NULL;
}

void tlog_free(tlog *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->known_count; i++)
        note_verifier_free(t->known[i]);
    merkle_edge_free(t->committed);
    merkle_edge_free(t->edge);
    free(t->leaves);
    free(t->entry_leaf);
    free(t->arena);
    free(t->batch_hashes);
    free(t->rows);
    free(t->note);
    free(t->committed_note);
    pthread_mutex_destroy(&t->latest_lock);
    free(t);
}

const ledger_log_hook *tlog_hook(tlog *t)
{
    return &t->hook;
}

bool tlog_previous_announced(const tlog *t)
{
    return t->previous_gone;
}

uint64_t tlog_appended(tlog *t)
{
    return __atomic_load_n(&t->appended, __ATOMIC_RELAXED);
}

uint64_t tlog_latest(tlog *t, char *note, size_t cap)
{
    pthread_mutex_lock(&t->latest_lock);
    uint64_t size = t->latest_size;
    snprintf(note, cap, "%s", t->latest);
    pthread_mutex_unlock(&t->latest_lock);
    return size;
}

bool tlog_refresh_due(tlog *t, uint64_t now_ms, uint64_t interval_ms)
{
    pthread_mutex_lock(&t->latest_lock);
    bool due = !t->refreshed || now_ms - t->refreshed_ms >= interval_ms;
    if (due) {
        t->refreshed = true;
        t->refreshed_ms = now_ms;
    }
    pthread_mutex_unlock(&t->latest_lock);
    return due;
}

void tlog_observe(tlog *t, uint64_t size, const char *note)
{
    pthread_mutex_lock(&t->latest_lock);
    if (size > t->observed_size) {
        t->observed_size = size;
        snprintf(t->observed, sizeof t->observed, "%s", note);
    }
    pthread_mutex_unlock(&t->latest_lock);
}

uint64_t tlog_newest(tlog *t, char *note, size_t cap)
{
    pthread_mutex_lock(&t->latest_lock);
    bool theirs = t->observed_size > t->latest_size;
    uint64_t size = theirs ? t->observed_size : t->latest_size;
    snprintf(note, cap, "%s", theirs ? t->observed : t->latest);
    pthread_mutex_unlock(&t->latest_lock);
    return size;
}

/* A tree that is durable: loaded, or committed without a pipeline. */
static void publish(tlog *t, uint64_t size, const char *note)
{
    if (note != t->committed_note)
        snprintf(t->committed_note, LEDGER_NOTE_MAX + 1, "%s", note);
    pthread_mutex_lock(&t->latest_lock);
    t->latest_size = size;
    t->committed_size = size;
    snprintf(t->latest, sizeof t->latest, "%s", note);
    pthread_mutex_unlock(&t->latest_lock);
}

/* The tree a batch committed: durable now, or once tlog_publish() says. */
static void commit_tree(tlog *t, uint64_t size, const char *note)
{
    if (!t->deferred) {
        publish(t, size, note);
        return;
    }
    snprintf(t->committed_note, LEDGER_NOTE_MAX + 1, "%s", note);
    pthread_mutex_lock(&t->latest_lock);
    t->committed_size = size;
    pthread_mutex_unlock(&t->latest_lock);
}

void tlog_defer_publish(tlog *t)
{
    t->deferred = true;
}

uint64_t tlog_committed(const tlog *t, char *note, size_t cap)
{
    snprintf(note, cap, "%s", t->committed_note);
    return merkle_edge_size(t->committed);
}

void tlog_publish(tlog *t, uint64_t size, const char *note)
{
    pthread_mutex_lock(&t->latest_lock);
    if (size > t->latest_size || (size == 0 && t->latest[0] == '\0')) {
        t->latest_size = size;
        snprintf(t->latest, sizeof t->latest, "%s", note);
    }
    pthread_mutex_unlock(&t->latest_lock);
}

bool tlog_durable(tlog *t, uint64_t leaves)
{
    pthread_mutex_lock(&t->latest_lock);
    bool durable = leaves <= t->latest_size || leaves > t->committed_size;
    pthread_mutex_unlock(&t->latest_lock);
    return durable;
}

int tlog_origin(const char *public_url, char *out, size_t cap)
{
    const char *rest = strstr(public_url, "://");
    size_t scheme = rest != NULL ? (size_t)(rest - public_url) : 0;
    rest = rest != NULL ? rest + 3 : public_url;
    size_t n = strlen(rest);
    while (n > 0 && rest[n - 1] == '/')
        n--;
    /* The host as a URL parser gives it, so that an auditor who derives the
     * origin from the public URL gets this one: lower case, and without
     * the scheme's default port. */
    size_t host = strcspn(rest, "/");
    if (host > n)
        host = n;
    size_t shown = host;
    if ((scheme == 5 && strncasecmp(public_url, "https", 5) == 0 && host >= 4 &&
         memcmp(rest + host - 4, ":443", 4) == 0) ||
        (scheme == 4 && strncasecmp(public_url, "http", 4) == 0 && host >= 3 &&
         memcmp(rest + host - 3, ":80", 3) == 0))
        shown = host - (scheme == 5 ? 4 : 3);
    int len =
        snprintf(out, cap, "%.*s%.*s/_receipt/log", (int)shown, rest, (int)(n - host), rest + host);
    if (len < 0 || (size_t)len >= cap || !note_valid_name(out, (size_t)len)) {
        if (cap > 0)
            out[0] = '\0';
        return -1;
    }
    for (size_t i = 0; i < shown; i++)
        if (out[i] >= 'A' && out[i] <= 'Z')
            out[i] = (char)(out[i] - 'A' + 'a');
    return 0;
}

/* ---- loading ---- */

typedef struct own_scan {
    bool genesis;
    char key[NOTE_VKEY_MAX]; /* the last log_key event's key */
    char err[TLOG_ERR_MAX];
} own_scan;

static int take_own(void *arg, const ledger_log_row *row)
{
    own_scan *s = arg;
    tlog_event_info info;
    tlog_event_row scratch = {0};
    char why[256];
    if (row->event == NULL ||
        tlog_event_fold(row->event, row->event_len, &info, &scratch, why, sizeof why) != 0 ||
        info.type != TLOG_EVENT_LOG_KEY) {
        snprintf(s->err, sizeof s->err, "leaf %llu, the log's own, is not a log_key event",
                 (unsigned long long)row->leaf);
        return 1;
    }
    s->genesis = true;
    snprintf(s->key, sizeof s->key, "%s", info.key);
    return 0;
}

typedef struct last_leaf {
    char delivery[UUID7_STR_LEN + 1];
    bool found;
} last_leaf;

static int take_last(void *arg, const ledger_log_row *row)
{
    last_leaf *l = arg;
    snprintf(l->delivery, sizeof l->delivery, "%s", row->delivery);
    l->found = true;
    return 1;
}

/* The partial tile of each level at size, from the ledger. */
static int load_partials(tlog *t, ledger *lg, uint64_t size, char *err, size_t errlen)
{
    for (unsigned level = 1; level < TLOG_LEVELS; level++) {
        tlog_partial *p = &t->partial[level];
        uint64_t hashes = size >> (TILES_HEIGHT * level); /* of level 8 L */
        p->index = hashes / TILES_WIDTH;
        p->width = (unsigned)(hashes % TILES_WIDTH);
        if (p->width == 0)
            continue;
        unsigned stored = 0;
        if (ledger_log_read_tile(lg, level, p->index, p->hashes, &stored) != 0) {
            set_err(err, errlen, "the log's tile %u/%llu: %s", level, (unsigned long long)p->index,
                    ledger_error(lg));
            return -1;
        }
        if (stored < p->width) {
            set_err(err, errlen, "the log's tile %u/%llu holds %u hashes, its tree needs %u", level,
                    (unsigned long long)p->index, stored, p->width);
            return -1;
        }
    }
    return 0;
}

/* The stored tree of size leaves into memory; its root must be root. */
static int load_tree(tlog *t, ledger *lg, uint64_t size, const merkle_hash *root, char *err,
                     size_t errlen)
{
    merkle_result mr = merkle_edge_load(t->committed, size, tlog_read_hashes, lg);
    if (mr != MERKLE_OK) {
        set_err(err, errlen, "the log's tree of %llu leaves cannot be read: %s (%s)",
                (unsigned long long)size, merkle_result_str(mr), ledger_error(lg));
        return -1;
    }
    merkle_hash have;
    merkle_edge_root(t->committed, &have);
    if (memcmp(have.bytes, root->bytes, MERKLE_HASH_LEN) != 0) {
        set_err(err, errlen,
                "the log is damaged: the tree of %llu leaves stored in the ledger is not the "
                "one its newest checkpoint signs (run receiptd ledger verify)",
                (unsigned long long)size);
        return -1;
    }
    merkle_edge_copy(t->edge, t->committed);
    return load_partials(t, lg, size, err, errlen);
}

/* Reads the newest checkpoint and the tree it signs. */
static int load_head(tlog *t, ledger *lg, char *err, size_t errlen)
{
    uint64_t size = 0;
    int found = tlog_read_latest(lg, &size, t->note, LEDGER_NOTE_MAX + 1, err, errlen);
    if (found < 0)
        return -1;
    if (found == 0) {
        merkle_edge *empty = merkle_edge_new();
        if (empty == NULL) {
            set_err(err, errlen, "out of memory");
            return -1;
        }
        merkle_edge_copy(t->committed, empty);
        merkle_edge_copy(t->edge, empty);
        merkle_edge_free(empty);
        memset(t->partial, 0, sizeof t->partial);
        publish(t, 0, "");
        return 0;
    }
    checkpoint cp;
    note_result nr = checkpoint_open(t->note, strlen(t->note), t->known, t->known_count, &cp, NULL);
    if (nr != NOTE_OK) {
        set_err(err, errlen,
                "the log's newest checkpoint (size %llu) does not open with this node's log "
                "keys (%s): import the site's keys (receiptd keys import), or restore the ledger",
                (unsigned long long)size, note_result_str(nr));
        return -1;
    }
    if (cp.size != size) {
        set_err(err, errlen, "the log's checkpoint stored as size %llu says %llu",
                (unsigned long long)size, (unsigned long long)cp.size);
        return -1;
    }
    if (load_tree(t, lg, size, &cp.root, err, errlen) != 0)
        return -1;
    publish(t, size, t->note);
    return 0;
}

/* What the log's own leaves say: whether it has its first key, and which
 * key it has now, against this node's. */
static int load_own(tlog *t, ledger *lg, char *err, size_t errlen)
{
    own_scan own = {0};
    if (ledger_log_entries(lg, LEDGER_LOG_OWN, 0, 0, NULL, false, take_own, &own) != 0) {
        set_err(err, errlen, "the log's own leaves: %s", ledger_error(lg));
        return -1;
    }
    if (own.err[0] != '\0') {
        set_err(err, errlen, "%s", own.err);
        return -1;
    }
    t->need_genesis = !own.genesis;
    t->need_rotation = false;
    t->previous_gone = false;
    if (own.genesis) {
        if (strcmp(own.key, t->key_text) == 0) {
            t->previous_gone = t->previous_text[0] != '\0';
        } else if (t->previous_text[0] != '\0' && strcmp(own.key, t->previous_text) == 0) {
            t->need_rotation = true;
        } else {
            set_err(err, errlen,
                    "the log's key is %s, and this node's log key (%s) does not succeed it: "
                    "import the keys of the node that made or rotated it (receiptd keys "
                    "import)",
                    own.key, t->key_text);
            return -1;
        }
    }
    /* Before its first key, a log holds only the rows kept before it. */
    t->adopting = t->need_genesis;
    return 0;
}

/*
 * A leaf and the checkpoint that signs it are committed together, so a
 * leaf past the newest checkpoint means that checkpoint's row was lost or
 * deleted: every batch would then collide with that leaf. A leaf found
 * there while another node commits is covered by the newer checkpoint a
 * second read of the head gives; the same head twice is the damage.
 */
static int load_checked_head(tlog *t, ledger *lg, char *err, size_t errlen)
{
    if (load_head(t, lg, err, errlen) != 0)
        return -1;
    for (;;) {
        uint64_t size = merkle_edge_size(t->committed);
        last_leaf past = {0};
        if (ledger_log_entries(lg, LEDGER_LOG_RANGE, size, 1, NULL, true, take_last, &past) != 0) {
            set_err(err, errlen, "the log's leaf %llu: %s", (unsigned long long)size,
                    ledger_error(lg));
            return -1;
        }
        if (!past.found)
            return 0;
        if (load_head(t, lg, err, errlen) != 0)
            return -1;
        if (merkle_edge_size(t->committed) == size) {
            set_err(err, errlen,
                    "the log is damaged: leaf %llu is stored, but its newest checkpoint signs "
                    "%llu leaves (a checkpoint was deleted or lost): run receiptd ledger "
                    "verify, and restore the ledger from a backup",
                    (unsigned long long)size, (unsigned long long)size);
            return -1;
        }
    }
}

int tlog_load(tlog *t, ledger *lg, char *err, size_t errlen)
{
    if (load_checked_head(t, lg, err, errlen) != 0)
        return -1;
    return load_own(t, lg, err, errlen);
}

/* ---- a batch ---- */

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(*p, cap2 * size);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = cap2;
    return 0;
}

/* Appends one leaf whose text is in the arena at event_at. */
/*
 * Appends the leaf of the text at event_at in the arena: with the salt and
 * commitment made ahead (ahead, whose text was copied there), or a fresh
 * salt and its commitment.
 */
static int append_leaf(tlog *t, size_t entry, const char *delivery, size_t event_at,
                       size_t event_len, const ledger_leaf *ahead)
{
    if (grow((void **)&t->leaves, &t->leaf_cap, t->leaf_count + 1, sizeof *t->leaves) != 0 ||
        grow((void **)&t->batch_hashes, &t->batch_hash_cap, t->batch_hash_count + MERKLE_MAX_WRITE,
             sizeof *t->batch_hashes) != 0)
        return -1;
    tlog_leaf *leaf = &t->leaves[t->leaf_count];
    leaf->index = merkle_edge_size(t->edge);
    leaf->entry = entry;
    leaf->event_at = event_at;
    leaf->event_len = event_len;
    leaf->delivery = delivery;
    leaf->packed = ahead != NULL ? ahead->packed : NULL;
    leaf->packed_len = ahead != NULL ? ahead->packed_len : 0;
    if (ahead != NULL) {
        memcpy(leaf->salt, ahead->salt, sizeof leaf->salt);
        memcpy(leaf->commitment.bytes, ahead->commitment, sizeof leaf->commitment.bytes);
    } else {
        if (rnd_bytes(leaf->salt, sizeof leaf->salt) != 0)
            return -1;
        merkle_commitment(leaf->salt, t->arena + event_at, event_len, &leaf->commitment);
    }
    merkle_hash hash;
    merkle_leaf_hash(leaf->commitment.bytes, MERKLE_HASH_LEN, &hash);
    size_t count = 0;
    merkle_hash *made = &t->batch_hashes[t->batch_hash_count];
    if (merkle_edge_append(t->edge, &hash, made, &count, NULL) != MERKLE_OK)
        return -1;
    /* Hashes of levels 8, 16, ... go into the tiles above level 0. */
    for (size_t l = TILES_HEIGHT; l < count; l += TILES_HEIGHT) {
        unsigned level = (unsigned)(l / TILES_HEIGHT);
        tlog_partial *p = &t->batch_partial[level];
        if (!t->batch_touched[level]) {
            *p = t->partial[level];
            t->batch_touched[level] = true;
        }
        if (p->width == TILES_WIDTH) {
            /* Completed earlier in this batch: kept for the write. */
            memcpy(t->full_tiles[level], p->hashes, sizeof p->hashes);
            t->tiles[t->tile_count++] = (ledger_log_tile){.level = level,
                                                          .index = p->index,
                                                          .hashes = t->full_tiles[level],
                                                          .width = TILES_WIDTH};
            p->index++;
            p->width = 0;
        }
        memcpy(p->hashes + (size_t)p->width * MERKLE_HASH_LEN, made[l].bytes, MERKLE_HASH_LEN);
        p->width++;
    }
    t->batch_hash_count += count;
    t->leaf_count++;
    return 0;
}

/* Puts an event's text into the arena; its offset, or SIZE_MAX. */
static size_t arena_reserve(tlog *t)
{
    if (grow((void **)&t->arena, &t->arena_cap, t->arena_len + TLOG_EVENT_MAX + 1, 1) != 0)
        return SIZE_MAX;
    return t->arena_len;
}

static int append_text(tlog *t, size_t entry, const char *delivery, size_t len,
                       const ledger_leaf *made)
{
    if (len == 0)
        return -1;
    size_t at = t->arena_len;
    t->arena_len += len + 1;
    return append_leaf(t, entry, delivery, at, len, made);
}

int tlog_leaf_make(const ledger_event *ev, char *text, size_t cap, uint8_t *packed,
                   size_t packed_cap, ledger_leaf *out)
{
    size_t packed_len = 0;
    size_t len = tlog_event_text_packed(ev, text, cap, packed, packed_cap, &packed_len);
    if (len == 0 || rnd_bytes(out->salt, sizeof out->salt) != 0)
        return -1;
    out->packed = packed_len > 0 ? packed : NULL;
    out->packed_len = packed_len;
    merkle_hash commitment;
    merkle_commitment(out->salt, text, len, &commitment);
    memcpy(out->commitment, commitment.bytes, sizeof out->commitment);
    out->text = text;
    out->text_len = len;
    return 0;
}

static void batch_reset(tlog *t)
{
    merkle_edge_copy(t->edge, t->committed);
    t->leaf_count = 0;
    t->arena_len = 0;
    t->batch_hash_count = 0;
    t->tile_count = 0;
    t->batch_open = false;
    t->batch_rotated = false;
    memset(t->batch_touched, 0, sizeof t->batch_touched);
}

static int own_events(tlog *t, ledger *lg, char *err, size_t errlen)
{
    if (t->adopting) {
        /* Rows already recorded (another node adopting too) are skipped. */
        last_leaf last = {0};
        uint64_t size = merkle_edge_size(t->edge);
        if (size > 0 && ledger_log_entries(lg, LEDGER_LOG_RANGE, size - 1, 1, NULL, true, take_last,
                                           &last) != 0) {
            set_err(err, errlen, "the log's last leaf: %s", ledger_error(lg));
            return -1;
        }
        for (size_t i = 0; i < t->adopt_count; i++) {
            const ledger_delivery *row = &t->adopt_rows[i];
            if (last.found && strcmp(row->id, last.delivery) <= 0)
                continue;
            size_t at = arena_reserve(t);
            if (at == SIZE_MAX ||
                append_text(t, SIZE_MAX, row->id,
                            tlog_event_existing(row, t->arena + at, TLOG_EVENT_MAX + 1),
                            NULL) != 0) {
                set_err(err, errlen, "cannot record delivery %s as it stands", row->id);
                return -1;
            }
        }
        if (t->adopt_count > 0)
            return 0; /* the key comes once every row is in */
    }
    if (t->need_genesis || t->need_rotation) {
        size_t at = arena_reserve(t);
        size_t len =
            at == SIZE_MAX
                ? 0
                : tlog_event_log_key(t->key_text, t->need_rotation ? t->previous_text : NULL,
                                     clock_wall_ms(), t->arena + at, TLOG_EVENT_MAX + 1);
        if (append_text(t, SIZE_MAX, NULL, len, NULL) != 0) {
            set_err(err, errlen, "cannot record the log's key");
            return -1;
        }
        t->batch_rotated = t->need_rotation;
    }
    return 0;
}

static int sign_batch(tlog *t, char *err, size_t errlen)
{
    checkpoint cp;
    memset(&cp, 0, sizeof cp);
    snprintf(cp.origin, sizeof cp.origin, "%s", note_signer_name(t->keys->log));
    cp.size = merkle_edge_size(t->edge);
    merkle_edge_root(t->edge, &cp.root);
    char text[CHECKPOINT_MAX_LEN + 1];
    size_t len = checkpoint_format(&cp, text, sizeof text);
    if (len == 0) {
        set_err(err, errlen, "cannot write the checkpoint of origin %s", cp.origin);
        return -1;
    }
    note_signer *signers[2];
    size_t nsigners = 0;
    /* The checkpoint that announces a new key is signed by the old one too,
     * so that whoever trusts the old key can follow. */
    if (t->batch_rotated)
        signers[nsigners++] = t->keys->log_previous;
    signers[nsigners++] = t->keys->log;
    char *note = NULL;
    size_t note_len = 0;
    note_result nr = note_sign(text, len, signers, nsigners, &note, &note_len);
    if (nr != NOTE_OK || note_len > LEDGER_NOTE_MAX) {
        free(note);
        set_err(err, errlen, "cannot sign the checkpoint: %s", note_result_str(nr));
        return -1;
    }
    memcpy(t->note, note, note_len + 1);
    free(note);
    return 0;
}

/* The tiles the batch changed: those that filled, then each level's partial. */
static void batch_tiles(tlog *t)
{
    for (unsigned level = 1; level < TLOG_LEVELS; level++) {
        if (!t->batch_touched[level])
            continue;
        const tlog_partial *p = &t->batch_partial[level];
        t->tiles[t->tile_count++] = (ledger_log_tile){
            .level = level, .index = p->index, .hashes = p->hashes, .width = p->width};
    }
}

static int tlog_batch_hook(void *ctx, ledger *lg, uint64_t head, ledger_batch_entry *entries,
                           size_t n, const ledger_log_write **out, char *err, size_t errlen)
{
    tlog *t = ctx;
    *out = NULL;
    batch_reset(t); /* the hook may run again: a batch retried in the same write */
    if (head != merkle_edge_size(t->committed)) {
        /* Another writer appended since: its tree is the one to grow. */
        if (load_head(t, lg, err, errlen) != 0 || load_own(t, lg, err, errlen) != 0)
            return -1;
        if (head != merkle_edge_size(t->committed)) {
            set_err(err, errlen, "the log's size moved from %llu while it was locked",
                    (unsigned long long)head);
            return -1;
        }
    }
    if (grow((void **)&t->entry_leaf, &t->entry_cap, n, sizeof *t->entry_leaf) != 0)
        goto nomem;
    if ((t->adopting || t->need_genesis || t->need_rotation) && own_events(t, lg, err, errlen))
        return -1;
    for (size_t i = 0; i < n; i++) {
        t->entry_leaf[i] = SIZE_MAX;
        /* A refused event, an ignored one and a repeat add nothing. */
        if (entries[i].status != 0 || entries[i].outcome != LEDGER_APPLIED)
            continue;
        size_t at = arena_reserve(t);
        if (at == SIZE_MAX)
            goto nomem;
        const ledger_event *ev = entries[i].event;
        const ledger_leaf *made = entries[i].leaf;
        size_t len = 0;
        if (made != NULL) {
            len = made->text_len <= TLOG_EVENT_MAX ? made->text_len : 0;
            if (len > 0)
                memcpy(t->arena + at, made->text, len + 1);
        } else {
            len = tlog_event_text(ev, t->arena + at, TLOG_EVENT_MAX + 1);
        }
        if (len == 0) {
            set_err(err, errlen, "the event of delivery %s cannot be written canonically",
                    ev->row.id);
            return -1;
        }
        t->entry_leaf[i] = t->leaf_count;
        if (append_text(t, i, ev->row.id, len, made) != 0)
            goto nomem;
    }
    if (t->leaf_count == 0)
        return 0;
    if (sign_batch(t, err, errlen) != 0)
        return -1;
    batch_tiles(t);
    if (grow((void **)&t->rows, &t->row_cap, t->leaf_count, sizeof *t->rows) != 0)
        goto nomem;
    for (size_t i = 0; i < t->leaf_count; i++) {
        const tlog_leaf *leaf = &t->leaves[i];
        t->rows[i] = (ledger_log_entry){.leaf = leaf->index,
                                        .delivery = leaf->delivery,
                                        .salt = leaf->salt,
                                        .commitment = leaf->commitment.bytes,
                                        .event = t->arena + leaf->event_at,
                                        .event_len = leaf->event_len,
                                        .packed = leaf->packed,
                                        .packed_len = leaf->packed_len};
    }
    t->old_edge_count = merkle_edge_subtrees(t->committed, t->old_edge, t->old_edge_index);
    t->batch_first_stored = merkle_stored_count(merkle_edge_size(t->committed));
    t->batch_size = merkle_edge_size(t->edge);
    t->write = (ledger_log_write){.entries = t->rows,
                                  .entry_count = t->leaf_count,
                                  .tiles = t->tiles,
                                  .tile_count = t->tile_count,
                                  .size = t->batch_size,
                                  .time_ms = clock_wall_ms(),
                                  .checkpoint = t->note};
    t->batch_open = true;
    *out = &t->write;
    return 0;
nomem:
    set_err(err, errlen, "the log: out of memory");
    return -1;
}

static void tlog_batch_end(void *ctx, bool committed)
{
    tlog *t = ctx;
    if (!t->batch_open) {
        merkle_edge_copy(t->edge, t->committed);
        return;
    }
    t->batch_open = false;
    if (!committed) {
        merkle_edge_copy(t->edge, t->committed);
        t->leaf_count = 0;
        return;
    }
    merkle_edge_copy(t->committed, t->edge);
    for (unsigned level = 1; level < TLOG_LEVELS; level++) {
        if (!t->batch_touched[level])
            continue;
        t->partial[level] = t->batch_partial[level];
        if (t->partial[level].width == TILES_WIDTH) {
            t->partial[level].index++;
            t->partial[level].width = 0;
        }
    }
    /* The rows kept before the log are in once a catch-up batch took none. */
    if (t->adopting && t->adopt_count == 0) {
        t->adopting = false;
    }
    if (t->need_genesis || t->need_rotation) {
        bool keyed = false;
        for (size_t i = 0; i < t->leaf_count; i++)
            keyed |= t->leaves[i].delivery == NULL;
        if (keyed) {
            t->previous_gone = t->need_rotation;
            t->need_genesis = false;
            t->need_rotation = false;
        }
    }
    __atomic_add_fetch(&t->appended, t->leaf_count, __ATOMIC_RELAXED);
    commit_tree(t, t->batch_size, t->note);
}

/* ---- proofs of the last batch, from memory ---- */

static int read_memory(void *ctx, const uint64_t *indexes, size_t count, merkle_hash *out)
{
    const tlog *t = ctx;
    for (size_t i = 0; i < count; i++) {
        uint64_t index = indexes[i];
        if (index >= t->batch_first_stored && index - t->batch_first_stored < t->batch_hash_count) {
            out[i] = t->batch_hashes[index - t->batch_first_stored];
            continue;
        }
        size_t k = 0;
        while (k < t->old_edge_count && t->old_edge_index[k] != index)
            k++;
        if (k == t->old_edge_count)
            return -1;
        out[i] = t->old_edge[k];
    }
    return 0;
}

bool tlog_prove(tlog *t, size_t i, ledger_proof *out)
{
    out->present = false;
    if (i >= t->entry_cap || t->entry_leaf[i] == SIZE_MAX || t->entry_leaf[i] >= t->leaf_count)
        return false;
    const tlog_leaf *leaf = &t->leaves[t->entry_leaf[i]];
    merkle_hash hashes[MERKLE_MAX_PROOF];
    size_t count = 0;
    if (merkle_prove_inclusion(leaf->index, t->batch_size, read_memory, t, hashes, &count) !=
        MERKLE_OK)
        return false;
    out->index = leaf->index;
    out->size = t->batch_size;
    memcpy(out->salt, leaf->salt, sizeof out->salt);
    out->hash_count = count;
    for (size_t k = 0; k < count; k++)
        memcpy(out->hashes[k], hashes[k].bytes, MERKLE_HASH_LEN);
    memcpy(out->event, t->arena + leaf->event_at, leaf->event_len);
    out->event[leaf->event_len] = '\0';
    size_t note_len = strnlen(t->note, LEDGER_NOTE_MAX);
    memcpy(out->checkpoint, t->note, note_len);
    out->checkpoint[note_len] = '\0';
    out->present = true;
    return true;
}

/* ---- catching up at start-up ---- */

/* How often a long catch-up says how far it got. */
#define CATCH_UP_REPORT_MS 10000

int tlog_catch_up(tlog *t, ledger *lg, size_t batch, char *err, size_t errlen)
{
    if (batch == 0)
        batch = 1;
    /* Recording a large ledger's rows takes a while (about 40 s a million
     * rows), and receiptd does not listen until it is done: say so. */
    uint64_t adopted = 0;
    uint64_t started_ms = clock_mono_ms();
    uint64_t said_ms = started_ms;
    while (t->adopting || t->need_genesis || t->need_rotation) {
        t->adopt_count = 0;
        if (t->adopting) {
            /* The next rows after the last one recorded. */
            char after[UUID7_STR_LEN + 1] = "";
            last_leaf last = {0};
            uint64_t size = merkle_edge_size(t->committed);
            if (size > 0 && ledger_log_entries(lg, LEDGER_LOG_RANGE, size - 1, 1, NULL, true,
                                               take_last, &last) != 0) {
                set_err(err, errlen, "the log's last leaf: %s", ledger_error(lg));
                return -1;
            }
            if (last.found)
                snprintf(after, sizeof after, "%s", last.delivery);
            if (t->adopt_rows == NULL &&
                (t->adopt_rows = malloc(batch * sizeof *t->adopt_rows)) == NULL) {
                set_err(err, errlen, "out of memory");
                return -1;
            }
            ledger_filter f = {
                .after_id = after[0] != '\0' ? after : NULL, .oldest_first = true, .limit = batch};
            ledger_cursor *cur = ledger_query(lg, &f);
            if (cur == NULL) {
                set_err(err, errlen, "reading the rows to record: %s", ledger_error(lg));
                return -1;
            }
            int rc;
            while (t->adopt_count < batch &&
                   (rc = ledger_cursor_next(cur, &t->adopt_rows[t->adopt_count])) == 1)
                t->adopt_count++;
            ledger_cursor_free(cur);
            if (rc < 0) {
                set_err(err, errlen, "reading the rows to record: %s", ledger_error(lg));
                return -1;
            }
        }
        if (adopted == 0 && t->adopt_count > 0)
            log_info("evidence log: recording the rows the ledger held before the log began, "
                     "oldest first; receiptd listens once they are in");
        if (ledger_write_logged(lg, NULL, 0, &t->hook) != 0) {
            set_err(err, errlen, "%s", ledger_error(lg));
            free(t->adopt_rows);
            t->adopt_rows = NULL;
            return -1;
        }
        adopted += t->adopt_count;
        uint64_t now_ms = clock_mono_ms();
        if (t->adopt_count > 0 && now_ms - said_ms >= CATCH_UP_REPORT_MS) {
            log_info("evidence log: %llu rows held before the log recorded so far, in %llu s",
                     (unsigned long long)adopted,
                     (unsigned long long)((now_ms - started_ms) / 1000));
            said_ms = now_ms;
        }
    }
    if (adopted > 0)
        log_info("evidence log: the %llu rows held before the log recorded, in %.1f s",
                 (unsigned long long)adopted, (double)(clock_mono_ms() - started_ms) / 1000.0);
    free(t->adopt_rows);
    t->adopt_rows = NULL;
    t->adopt_count = 0;
    return 0;
}
