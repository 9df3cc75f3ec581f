#include "daemon/ledger_copy.h"
#include "common/checkpoint.h"
#include "common/merkle.h"
#include "daemon/tlog_read.h"
#include "daemon/tlog_verify.h"

#include <openssl/evp.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COPY_ERR_MAX        512
#define COPY_PROGRESS_EVERY 1.0 /* seconds between progress lines */

static const char ledger_usage[] =
    "usage: receiptd ledger copy [--batch N] FROM TO\n"
    "       receiptd ledger compare A B\n"
    "       receiptd ledger verify [--state-dir DIR] [--ledger URL]\n"
    "\n"
    "copy: copies every delivery row of the ledger FROM into the ledger TO, oldest\n"
    "first, in transactions of N rows (default 1000), then its evidence log as it\n"
    "is, then reads both side by side and checks that they hold the same rows (the\n"
    "same count and the same SHA-256 digest over every row) and the same log. TO\n"
    "is made (or migrated) if needed, and must be empty or an earlier copy of FROM\n"
    "cut short, which the copy then takes up where it stopped. Stop every receiptd\n"
    "that writes to FROM or TO first.\n"
    "\n"
    "compare: the check alone, writing nothing.\n"
    "\n"
    "verify: checks that the ledger and its evidence log agree (see receiptd ledger\n"
    "verify --help).\n"
    "\n"
    "A ledger is sqlite:PATH, postgresql://USER@HOST:PORT/DB (or postgres://), or a\n"
    "PostgreSQL key=value string; a password comes best from PGPASSWORD or a\n"
    "password file (~/.pgpass, PGPASSFILE) rather than the command line.\n"
    "\n"
    "Exit status: 0 copied and verified (or equal), 1 a ledger cannot be read or\n"
    "written or the two differ, 2 a usage error.\n";

/* ---- reading IDs ---- */

static int edge_id(ledger *lg, bool oldest, char out[UUID7_STR_LEN + 1])
{
    ledger_filter f = {.oldest_first = oldest, .limit = 1};
    ledger_delivery *row = malloc(sizeof *row);
    if (row == NULL)
        return -1;
    ledger_cursor *cur = ledger_query(lg, &f);
    int rc = cur != NULL ? ledger_cursor_next(cur, row) : -1;
    if (rc == 1)
        memcpy(out, row->id, UUID7_STR_LEN + 1);
    ledger_cursor_free(cur);
    free(row);
    return rc;
}

/* The time a UUIDv7 carries in its first 48 bits; 0 if it is not hex. */
static uint64_t id_time_ms(const char *id)
{
    uint64_t ms = 0;
    for (int i = 0; i < 13; i++) {
        char c = id[i];
        if (i == 8) {
            if (c != '-')
                return 0;
            continue;
        }
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return 0;
        ms = ms << 4 | (uint64_t)v;
    }
    return ms;
}

/* ---- rows compared and digested ---- */

/* The first field in which two rows differ, or NULL. */
static const char *row_diff(const ledger_delivery *a, const ledger_delivery *b)
{
#define TEXT(f)                                                                                    \
    if (strcmp(a->f, b->f) != 0)                                                                   \
        return #f;
#define NUMBER(f)                                                                                  \
    if (a->f != b->f)                                                                              \
        return #f;
    TEXT(id)
    TEXT(path)
    if (memcmp(a->sha256, b->sha256, 32) != 0)
        return "sha256";
    NUMBER(size)
    TEXT(server)
    TEXT(client_addr)
    TEXT(user_agent)
    NUMBER(issued_ms)
    NUMBER(status)
    TEXT(client)
    TEXT(bound_addr)
    NUMBER(bound_ms)
    NUMBER(confirmed_ms)
    TEXT(confirm_addr)
    NUMBER(received_has_sha256)
    if (a->received_has_sha256 && memcmp(a->received_sha256, b->received_sha256, 32) != 0)
        return "received_sha256";
    NUMBER(received_size)
    NUMBER(received_at_ms)
    TEXT(receipt)
    TEXT(issued_node)
    TEXT(bound_node)
    TEXT(confirmed_node)
    NUMBER(kind)
    if (memcmp(a->delivered_sha256, b->delivered_sha256, 32) != 0)
        return "delivered_sha256";
    NUMBER(delivered_size)
#undef TEXT
#undef NUMBER
    return NULL;
}

static void digest_text(EVP_MD_CTX *md, const char *s)
{
    size_t n = strlen(s);
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    EVP_DigestUpdate(md, len, 4);
    EVP_DigestUpdate(md, s, n);
}

static void digest_number(EVP_MD_CTX *md, uint64_t v)
{
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(v >> (56 - 8 * i));
    EVP_DigestUpdate(md, be, 8);
}

void ledger_copy_digest_row(void *md_ctx, const ledger_delivery *r)
{
    EVP_MD_CTX *md = md_ctx;
    static const uint8_t absent = 0, present = 1;
    digest_text(md, r->id);
    digest_text(md, r->path);
    EVP_DigestUpdate(md, r->sha256, 32);
    digest_number(md, r->size);
    digest_text(md, r->server);
    digest_text(md, r->client_addr);
    digest_text(md, r->user_agent);
    digest_number(md, r->issued_ms);
    digest_text(md, ledger_status_name(r->status));
    digest_text(md, r->client);
    digest_text(md, r->bound_addr);
    digest_number(md, r->bound_ms);
    digest_number(md, r->confirmed_ms);
    digest_text(md, r->confirm_addr);
    if (r->received_has_sha256) {
        EVP_DigestUpdate(md, &present, 1);
        EVP_DigestUpdate(md, r->received_sha256, 32);
    } else {
        EVP_DigestUpdate(md, &absent, 1);
    }
    digest_number(md, r->received_size);
    digest_number(md, r->received_at_ms);
    digest_text(md, r->receipt);
    digest_text(md, r->issued_node);
    digest_text(md, r->bound_node);
    digest_text(md, r->confirmed_node);
    digest_text(md, ledger_kind_name(r->kind));
    EVP_DigestUpdate(md, r->delivered_sha256, 32);
    digest_number(md, r->delivered_size);
}

/* ---- the evidence log ---- */

typedef struct newest_checkpoint {
    uint64_t size;
    char note[LEDGER_NOTE_MAX + 1];
} newest_checkpoint;

static int take_newest(void *arg, uint64_t size, uint64_t time_ms, const char *note)
{
    (void)time_ms;
    newest_checkpoint *n = arg;
    n->size = size;
    snprintf(n->note, sizeof n->note, "%s", note);
    return 1;
}

/* Both logs hold the same newest checkpoint, and b's tree is the one it signs. */
static int compare_logs(ledger *a, ledger *b, ledger_copy_result *out, char *err, size_t errlen)
{
    newest_checkpoint *na = calloc(1, sizeof *na), *nb = calloc(1, sizeof *nb);
    int ret = -1;
    if (na == NULL || nb == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (ledger_log_checkpoints(a, 0, UINT64_MAX, true, 1, take_newest, na) != 0 ||
        ledger_log_checkpoints(b, 0, UINT64_MAX, true, 1, take_newest, nb) != 0) {
        snprintf(err, errlen, "reading the evidence logs: %s", ledger_error(a));
        goto out;
    }
    out->log_size = na->size;
    ret = 0;
    if (na->size != nb->size || strcmp(na->note, nb->note) != 0) {
        snprintf(out->mismatch, sizeof out->mismatch,
                 "the evidence logs differ: %llu and %llu leaves", (unsigned long long)na->size,
                 (unsigned long long)nb->size);
        goto out;
    }
    if (nb->size == 0)
        goto out;
    checkpoint cp;
    merkle_hash root;
    const char *end = strstr(nb->note, "\n\n");
    if (end == NULL || !checkpoint_parse(nb->note, (size_t)(end - nb->note) + 1, &cp) ||
        merkle_tree_hash(nb->size, tlog_read_hashes, b, &root) != MERKLE_OK ||
        memcmp(root.bytes, cp.root.bytes, MERKLE_HASH_LEN) != 0)
        snprintf(out->mismatch, sizeof out->mismatch,
                 "the second ledger's evidence log does not make the tree its newest checkpoint "
                 "signs");
out:
    free(na);
    free(nb);
    return ret;
}

typedef struct log_chunk {
    ledger_log_entry *entries;
    char (*deliveries)[UUID7_STR_LEN + 1];
    uint8_t (*salts)[LEDGER_SALT_LEN];
    uint8_t (*commitments)[LEDGER_HASH_LEN];
    char **events;
    size_t count, cap;
    uint64_t next; /* the leaf expected next */
    bool hole;
} log_chunk;

static int take_log_entry(void *arg, const ledger_log_row *row)
{
    log_chunk *k = arg;
    if (row->leaf != k->next || row->event == NULL) {
        k->hole = true;
        return 1;
    }
    if (k->count == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 256;
        void *e = realloc(k->entries, cap * sizeof *k->entries);
        if (e != NULL)
            k->entries = e;
        void *d = realloc(k->deliveries, cap * sizeof *k->deliveries);
        if (d != NULL)
            k->deliveries = d;
        void *s = realloc(k->salts, cap * sizeof *k->salts);
        if (s != NULL)
            k->salts = s;
        void *m = realloc(k->commitments, cap * sizeof *k->commitments);
        if (m != NULL)
            k->commitments = m;
        void *t = realloc(k->events, cap * sizeof *k->events);
        if (t != NULL)
            k->events = t;
        if (e == NULL || d == NULL || s == NULL || m == NULL || t == NULL)
            return 1;
        k->cap = cap;
    }
    size_t i = k->count;
    if ((k->events[i] = malloc(row->event_len + 1)) == NULL)
        return 1;
    memcpy(k->events[i], row->event, row->event_len);
    k->events[i][row->event_len] = '\0';
    memcpy(k->deliveries[i], row->delivery, sizeof k->deliveries[i]);
    memcpy(k->salts[i], row->salt, LEDGER_SALT_LEN);
    memcpy(k->commitments[i], row->commitment, LEDGER_HASH_LEN);
    /* The pointers are set once every entry is in (the arrays may move). */
    k->entries[i] = (ledger_log_entry){.leaf = row->leaf, .event_len = row->event_len};
    k->count++;
    k->next++;
    return 0;
}

static void chunk_clear(log_chunk *k)
{
    for (size_t i = 0; i < k->count; i++)
        free(k->events[i]);
    k->count = 0;
}

typedef struct checkpoint_list {
    uint64_t size[LEDGER_COPY_LOG_CHECKPOINTS];
    uint64_t time_ms[LEDGER_COPY_LOG_CHECKPOINTS];
    char *note[LEDGER_COPY_LOG_CHECKPOINTS];
    size_t count;
} checkpoint_list;

static int take_checkpoint_copy(void *arg, uint64_t size, uint64_t time_ms, const char *note)
{
    checkpoint_list *l = arg;
    if ((l->note[l->count] = strdup(note)) == NULL)
        return 1;
    l->size[l->count] = size;
    l->time_ms[l->count] = time_ms;
    l->count++;
    return 0;
}

/*
 * Copies the evidence log of from after what to holds already (a copy cut
 * short resumes at to's newest checkpoint): each checkpoint with the leaves
 * it added, in one transaction, then every tile as from holds it.
 */
static int copy_log(ledger *from, ledger *to, ledger_copy_result *out, char *err, size_t errlen)
{
    uint64_t have = 0, want = 0;
    log_chunk chunk = {.count = 0};
    checkpoint_list *list = calloc(1, sizeof *list);
    uint8_t *tile = malloc(256 * LEDGER_HASH_LEN);
    int ret = -1;
    if (list == NULL || tile == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (ledger_log_size(to, &have) != 0 || ledger_log_size(from, &want) != 0) {
        snprintf(err, errlen, "reading the evidence logs: %s", ledger_error(from));
        goto out;
    }
    if (have > want) {
        snprintf(err, errlen,
                 "the destination's evidence log holds %llu leaves, the source's %llu: it is "
                 "not a copy of it",
                 (unsigned long long)have, (unsigned long long)want);
        goto out;
    }
    while (have < want) {
        for (size_t i = 0; i < list->count; i++)
            free(list->note[i]);
        list->count = 0;
        if (ledger_log_checkpoints(from, have + 1, want, false, LEDGER_COPY_LOG_CHECKPOINTS,
                                   take_checkpoint_copy, list) != 0 ||
            list->count == 0) {
            snprintf(err, errlen, "reading the source's checkpoints: %s", ledger_error(from));
            goto out;
        }
        for (size_t i = 0; i < list->count; i++) {
            chunk_clear(&chunk);
            chunk.next = have;
            chunk.hole = false;
            uint64_t leaves = list->size[i] - have;
            if (ledger_log_entries(from, LEDGER_LOG_RANGE, have, leaves, NULL, false,
                                   take_log_entry, &chunk) != 0 ||
                chunk.hole || chunk.count != leaves) {
                snprintf(err, errlen, "reading the source's log leaves from %llu: %s",
                         (unsigned long long)have,
                         chunk.hole ? "a leaf is missing" : ledger_error(from));
                goto out;
            }
            for (size_t e = 0; e < chunk.count; e++) {
                ledger_log_entry *entry = &chunk.entries[e];
                entry->delivery = chunk.deliveries[e][0] ? chunk.deliveries[e] : NULL;
                entry->salt = chunk.salts[e];
                entry->commitment = chunk.commitments[e];
                entry->event = chunk.events[e];
            }
            ledger_log_write w = {.entries = chunk.entries,
                                  .entry_count = chunk.count,
                                  .size = list->size[i],
                                  .time_ms = list->time_ms[i],
                                  .checkpoint = list->note[i]};
            if (ledger_log_import(to, &w) != 0) {
                snprintf(err, errlen, "writing the evidence log: %s", ledger_error(to));
                goto out;
            }
            out->log_leaves += chunk.count;
            out->log_checkpoints++;
            have = list->size[i];
        }
    }
    /* The tiles, as the source holds them for its tree. */
    for (unsigned level = 1; level < 8; level++) {
        for (uint64_t index = 0;; index++) {
            unsigned width = 0;
            if (ledger_log_read_tile(from, level, index, tile, &width) != 0) {
                snprintf(err, errlen, "reading the source's tiles: %s", ledger_error(from));
                goto out;
            }
            if (width == 0)
                break;
            ledger_log_tile t = {.level = level, .index = index, .hashes = tile, .width = width};
            ledger_log_write w = {.tiles = &t, .tile_count = 1, .size = want};
            if (ledger_log_import(to, &w) != 0) {
                snprintf(err, errlen, "writing the evidence log's tiles: %s", ledger_error(to));
                goto out;
            }
        }
    }
    ret = 0;
out:
    chunk_clear(&chunk);
    free(chunk.entries);
    free(chunk.deliveries);
    free(chunk.salts);
    free(chunk.commitments);
    free(chunk.events);
    if (list != NULL)
        for (size_t i = 0; i < list->count; i++)
            free(list->note[i]);
    free(list);
    free(tile);
    return ret;
}

int ledger_copy_compare(ledger *a, ledger *b, ledger_copy_result *out, char *err, size_t errlen)
{
    ledger_filter f = {.oldest_first = true};
    ledger_delivery *ra = malloc(sizeof *ra);
    ledger_delivery *rb = malloc(sizeof *rb);
    EVP_MD_CTX *mda = EVP_MD_CTX_new();
    EVP_MD_CTX *mdb = EVP_MD_CTX_new();
    ledger_cursor *ca = NULL, *cb = NULL;
    int ret = -1;
    uint64_t rows = 0;

    out->verified = false;
    out->mismatch[0] = '\0';
    if (ra == NULL || rb == NULL || mda == NULL || mdb == NULL ||
        EVP_DigestInit_ex(mda, EVP_sha256(), NULL) != 1 ||
        EVP_DigestInit_ex(mdb, EVP_sha256(), NULL) != 1) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    long long count_a = ledger_count(a);
    long long count_b = ledger_count(b);
    if (count_a < 0 || count_b < 0) {
        snprintf(err, errlen, "counting rows: %s", ledger_error(count_a < 0 ? a : b));
        goto out;
    }
    ca = ledger_query(a, &f);
    cb = ledger_query(b, &f);
    if (ca == NULL || cb == NULL) {
        snprintf(err, errlen, "reading rows: %s", ledger_error(ca == NULL ? a : b));
        goto out;
    }
    for (;;) {
        int na = ledger_cursor_next(ca, ra);
        int nb = ledger_cursor_next(cb, rb);
        if (na < 0 || nb < 0) {
            snprintf(err, errlen, "reading rows: %s", ledger_error(na < 0 ? a : b));
            goto out;
        }
        if (na == 0 && nb == 0)
            break;
        if (na == 0 || nb == 0 || strcmp(ra->id, rb->id) != 0) {
            bool only_a = nb == 0 || (na == 1 && strcmp(ra->id, rb->id) < 0);
            snprintf(out->mismatch, sizeof out->mismatch, "row %s is only in %s",
                     only_a ? ra->id : rb->id, only_a ? "the first ledger" : "the second ledger");
            break;
        }
        const char *field = row_diff(ra, rb);
        if (field != NULL) {
            snprintf(out->mismatch, sizeof out->mismatch, "row %s differs in %s", ra->id, field);
            break;
        }
        ledger_copy_digest_row(mda, ra);
        ledger_copy_digest_row(mdb, rb);
        rows++;
    }
    uint8_t db[32];
    unsigned len = 0;
    EVP_DigestFinal_ex(mda, out->digest, &len);
    EVP_DigestFinal_ex(mdb, db, &len);
    out->rows = rows;
    if (out->mismatch[0] == '\0' && (count_a != count_b || (uint64_t)count_a != rows))
        snprintf(out->mismatch, sizeof out->mismatch,
                 "the counts differ: %lld and %lld rows (%llu compared)", count_a, count_b,
                 (unsigned long long)rows);
    if (out->mismatch[0] == '\0' && memcmp(out->digest, db, 32) != 0)
        snprintf(out->mismatch, sizeof out->mismatch, "the digests differ");
    if (out->mismatch[0] == '\0' && compare_logs(a, b, out, err, errlen) != 0)
        goto out;
    out->verified = out->mismatch[0] == '\0';
    ret = 0;
out:
    ledger_cursor_free(ca);
    ledger_cursor_free(cb);
    EVP_MD_CTX_free(mda);
    EVP_MD_CTX_free(mdb);
    free(ra);
    free(rb);
    return ret;
}

/* ---- the copy ---- */

static int write_batch(ledger *to, ledger_batch_entry *entries, size_t n, char *err, size_t errlen)
{
    if (ledger_write(to, entries, n) != 0) {
        snprintf(err, errlen, "writing rows: %s", ledger_error(to));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (entries[i].status != 0) {
            snprintf(err, errlen, "row %s was refused: %s", entries[i].event->row.id,
                     entries[i].why != NULL ? entries[i].why : "refused");
            return -1;
        }
    }
    return 0;
}

/*
 * Where an earlier copy stopped: after TO's newest row, which FROM must hold
 * the same. Sets after[0] = '\0' when TO is empty.
 */
static int resume_point(ledger *from, ledger *to, char after[UUID7_STR_LEN + 1], char *err,
                        size_t errlen)
{
    ledger_delivery *theirs = malloc(sizeof *theirs);
    ledger_delivery *ours = malloc(sizeof *ours);
    int ret = -1;
    after[0] = '\0';
    if (theirs == NULL || ours == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    int rc = edge_id(to, false, after);
    if (rc < 0) {
        snprintf(err, errlen, "reading the destination: %s", ledger_error(to));
        goto out;
    }
    if (rc == 0) {
        ret = 0;
        goto out;
    }
    int in_to = ledger_get(to, after, ours);
    int in_from = ledger_get(from, after, theirs);
    if (in_to < 0 || in_from < 0) {
        snprintf(err, errlen, "reading rows: %s", ledger_error(in_to < 0 ? to : from));
        goto out;
    }
    if (in_from == 0 || row_diff(ours, theirs) != NULL) {
        snprintf(err, errlen,
                 "the destination's newest row %s is not the source's: the destination must be "
                 "empty, or a copy of the source cut short",
                 after);
        goto out;
    }
    ret = 0;
out:
    free(theirs);
    free(ours);
    return ret;
}

int ledger_copy_run(ledger *from, ledger *to, size_t batch, ledger_copy_progress_fn progress,
                    void *arg, ledger_copy_result *out, char *err, size_t errlen)
{
    char after[UUID7_STR_LEN + 1];
    char first[UUID7_STR_LEN + 1], last[UUID7_STR_LEN + 1];
    ledger_event *events = NULL;
    ledger_batch_entry *entries = NULL;
    ledger_cursor *cur = NULL;
    int ret = -1;

    memset(out, 0, sizeof *out);
    if (batch == 0 || batch > LEDGER_COPY_BATCH_MAX) {
        snprintf(err, errlen, "a batch is 1 to %d rows", LEDGER_COPY_BATCH_MAX);
        return -1;
    }
    long long total = ledger_count(from);
    long long present = ledger_count(to);
    if (total < 0 || present < 0) {
        snprintf(err, errlen, "counting rows: %s", ledger_error(total < 0 ? from : to));
        return -1;
    }
    out->source_rows = (uint64_t)total;
    if (resume_point(from, to, after, err, errlen) != 0)
        return -1;
    out->resumed_after = (uint64_t)present;

    /* Room in the destination for every month the source spans. */
    int fr = edge_id(from, true, first);
    int lr = edge_id(from, false, last);
    if (fr < 0 || lr < 0) {
        snprintf(err, errlen, "reading the source: %s", ledger_error(from));
        return -1;
    }
    if (fr == 1 && lr == 1 && id_time_ms(first) != 0 && id_time_ms(last) >= id_time_ms(first) &&
        ledger_prepare(to, id_time_ms(first), id_time_ms(last)) < 0) {
        snprintf(err, errlen, "preparing the destination: %s", ledger_error(to));
        return -1;
    }

    events = calloc(batch, sizeof *events);
    entries = calloc(batch, sizeof *entries);
    if (events == NULL || entries == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    ledger_filter f = {.oldest_first = true, .after_id = after[0] ? after : NULL};
    cur = ledger_query(from, &f);
    if (cur == NULL) {
        snprintf(err, errlen, "reading the source: %s", ledger_error(from));
        goto out;
    }
    size_t n = 0;
    for (;;) {
        int rc = ledger_cursor_next(cur, &events[n].row);
        if (rc < 0) {
            snprintf(err, errlen, "reading the source: %s", ledger_error(from));
            goto out;
        }
        if (rc == 1) {
            events[n].kind = LEDGER_EVENT_COPY;
            entries[n] = (ledger_batch_entry){.event = &events[n]};
            n++;
        }
        if (n == batch || (rc == 0 && n > 0)) {
            if (write_batch(to, entries, n, err, errlen) != 0)
                goto out;
            out->copied += n;
            n = 0;
            if (progress != NULL)
                progress(arg, out->resumed_after + out->copied, out->source_rows);
        }
        if (rc == 0)
            break;
    }
    ledger_cursor_free(cur);
    cur = NULL;
    if (copy_log(from, to, out, err, errlen) != 0)
        goto out;
    if (ledger_copy_compare(from, to, out, err, errlen) != 0)
        goto out;
    ret = 0;
out:
    ledger_cursor_free(cur);
    free(events);
    free(entries);
    return ret;
}

/* ---- the command ---- */

typedef struct progress_state {
    double last;
} progress_state;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void show_progress(void *arg, uint64_t done, uint64_t total)
{
    progress_state *p = arg;
    double t = now_s();
    if (t - p->last < COPY_PROGRESS_EVERY && done < total)
        return;
    p->last = t;
    fprintf(stderr, "receiptd ledger copy: %llu of %llu rows\n", (unsigned long long)done,
            (unsigned long long)total);
}

static void print_digest(const uint8_t digest[32])
{
    for (int i = 0; i < 32; i++)
        printf("%02x", digest[i]);
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("receiptd ledger: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'receiptd ledger --help'.\n", stderr);
    return 2;
}

int ledger_copy_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"batch", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char err[COPY_ERR_MAX] = "";
    unsigned long batch = LEDGER_COPY_BATCH_DEFAULT;
    ledger *from = NULL, *to = NULL;
    ledger_copy_result result;
    int status = 1;
    int opt;

    if (argc < 2)
        return usage_error("%s", "name a command: copy, compare or verify");
    if (strcmp(argv[1], "verify") == 0)
        return tlog_verify_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "--help") == 0) {
        fputs(ledger_usage, stdout);
        return 0;
    }
    const char *command = argv[1];
    bool copy = strcmp(command, "copy") == 0;
    if (!copy && strcmp(command, "compare") != 0)
        return usage_error("unknown command '%s' (copy, compare or verify)", command);

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc - 1, argv + 1, "", options, NULL)) != -1) {
        switch (opt) {
        case 'b': {
            char *end = NULL;
            batch = strtoul(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || batch == 0 ||
                batch > LEDGER_COPY_BATCH_MAX)
                return usage_error("--batch '%s': a whole number from 1 to 10000", optarg);
            break;
        }
        case 'h':
            fputs(ledger_usage, stdout);
            return 0;
        default:
            return usage_error("option '%s' needs a value or is unknown", argv[optind]);
        }
    }
    if (!copy && batch != LEDGER_COPY_BATCH_DEFAULT)
        return usage_error("%s", "--batch is for copy");
    if (argc - 1 - optind != 2)
        return usage_error("%s", copy ? "copy needs FROM and TO" : "compare needs two ledgers");
    const char *from_url = argv[1 + optind];
    const char *to_url = argv[2 + optind];

    from = ledger_open(from_url, NULL, true, err, sizeof err);
    if (from == NULL)
        goto out;
    to = ledger_open(to_url, NULL, !copy, err, sizeof err);
    if (to == NULL)
        goto out;
    if (strcmp(ledger_backend(from), ledger_backend(to)) == 0 &&
        strcmp(ledger_where(from), ledger_where(to)) == 0) {
        snprintf(err, sizeof err, "%s and %s are the same ledger", ledger_where(from),
                 ledger_where(to));
        goto out;
    }
    printf("receiptd ledger %s: %s -> %s\n", command, ledger_where(from), ledger_where(to));
    fflush(stdout);
    if (copy) {
        progress_state p = {.last = now_s()};
        if (ledger_copy_run(from, to, batch, isatty(STDERR_FILENO) ? show_progress : NULL, &p,
                            &result, err, sizeof err) != 0)
            goto out;
        printf("copied %llu rows (%llu were there from an earlier run), and %llu evidence log "
               "leaves in %llu checkpoints\n",
               (unsigned long long)result.copied, (unsigned long long)result.resumed_after,
               (unsigned long long)result.log_leaves, (unsigned long long)result.log_checkpoints);
    } else if (ledger_copy_compare(from, to, &result, err, sizeof err) != 0) {
        goto out;
    }
    if (!result.verified) {
        snprintf(err, sizeof err, "the ledgers differ: %.400s", result.mismatch);
        goto out;
    }
    printf("verified: %llu rows in each, digest sha256:", (unsigned long long)result.rows);
    print_digest(result.digest);
    printf("; evidence log of %llu leaves in each\n", (unsigned long long)result.log_size);
    status = 0;
out:
    if (status != 0)
        fprintf(stderr, "receiptd ledger %s: %s\n", command, err);
    ledger_close(from);
    ledger_close(to);
    if (fflush(stdout) != 0 && status == 0)
        status = 1;
    return status;
}
