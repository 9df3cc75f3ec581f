/*
 * tlog and tlog_read: the evidence log as the writer keeps it and as the
 * ledger stores it. Every test runs against both backends (SQLite, and
 * PostgreSQL on the server of tests/with-postgres): the proofs of a batch
 * from memory, the proofs and tiles read back, the tree rebuilt from the
 * stored commitments, a restart that carries on, a ledger whose log was
 * altered refused, and a key rotation announced under both keys.
 */
#include "common/checkpoint.h"
#include "common/evpack.h"
#include "common/merkle.h"
#include "common/note_sign.h"
#include "common/tiles.h"
#include "daemon/keystore.h"
#include "daemon/ledger.h"
#include "daemon/tlog.h"
#include "daemon/tlog_event.h"
#include "daemon/tlog_read.h"
#include "daemon/tlog_verify.h"
#include "pgtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>

#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ORIGIN   "deliveries.example.com/_receipt/log"
#define CLIENT_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define T0       UINT64_C(1764100000000)

typedef struct fixture {
    bool pg;
    char dir[64];
    char db[PGTEST_NAME_MAX];
    char url[PGTEST_URL_MAX];
    keystore *ks;
    ledger *lg;
    tlog *t;
} fixture;

static void make_id(char out[UUID7_STR_LEN + 1], unsigned n)
{
    snprintf(out, UUID7_STR_LEN + 1, "01900000-0000-7000-8000-%012x", n);
}

static void fill_issue(ledger_event *ev, unsigned n)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = LEDGER_EVENT_ISSUE;
    make_id(ev->row.id, n);
    snprintf(ev->row.path, sizeof ev->row.path, "/docs/%u.html", n % 7);
    for (int i = 0; i < 32; i++)
        ev->row.sha256[i] = (uint8_t)(i + n);
    ev->row.size = 1000 + n;
    snprintf(ev->row.server, sizeof ev->row.server, "site-1");
    snprintf(ev->row.client_addr, sizeof ev->row.client_addr, "192.0.2.%u", n % 250);
    snprintf(ev->row.user_agent, sizeof ev->row.user_agent, "test/1.0");
    ev->row.issued_ms = T0 + n;
    ev->row.status = LEDGER_ISSUED;
    snprintf(ev->row.issued_node, sizeof ev->row.issued_node, "node-a");
}

static void fill_confirm(ledger_event *ev, unsigned n)
{
    fill_issue(ev, n);
    ev->kind = LEDGER_EVENT_CONFIRM;
    ev->row.status = LEDGER_CONFIRMED;
    snprintf(ev->row.client, sizeof ev->row.client, CLIENT_A);
    snprintf(ev->row.bound_addr, sizeof ev->row.bound_addr, "198.51.100.7");
    ev->row.bound_ms = ev->row.issued_ms + 10;
    snprintf(ev->row.bound_node, sizeof ev->row.bound_node, "node-b");
    ev->row.confirmed_ms = ev->row.issued_ms + 50;
    snprintf(ev->row.confirm_addr, sizeof ev->row.confirm_addr, "2001:db8::%u", n);
    ev->row.received_has_sha256 = true;
    memcpy(ev->row.received_sha256, ev->row.sha256, 32);
    ev->row.received_size = ev->row.size;
    ev->row.received_at_ms = ev->row.confirmed_ms - 5;
    snprintf(ev->row.receipt, sizeof ev->row.receipt, "eyJhbGciOiJFUzI1NiJ9.%u.sig", n);
    snprintf(ev->row.confirmed_node, sizeof ev->row.confirmed_node, "node-c");
}

static void open_log(fixture *f)
{
    char err[TLOG_ERR_MAX];
    f->t = tlog_new(f->ks);
    assert_non_null(f->t);
    if (tlog_load(f->t, f->lg, err, sizeof err) != 0 ||
        tlog_catch_up(f->t, f->lg, 100, err, sizeof err) != 0)
        fail_msg("log: %s", err);
}

static int setup_backend(void **state, bool pg)
{
    fixture *f = calloc(1, sizeof *f);
    char err[LEDGER_ERR_MAX];
    bool created = false;
    assert_non_null(f);
    f->pg = pg;
    snprintf(f->dir, sizeof f->dir, "/tmp/test_tlog.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->ks = keystore_open(f->dir, true, &created, err, sizeof err);
    if (f->ks == NULL || keystore_add_log_key(f->ks, f->dir, ORIGIN, T0, err, sizeof err) != 1)
        fail_msg("keys: %s", err);
    if (pg)
        assert_int_equal(pgtest_create(f->db, f->url, false), 0);
    else
        snprintf(f->url, sizeof f->url, "sqlite:%s/ledger.sqlite", f->dir);
    f->lg = ledger_open(f->url, NULL, false, err, sizeof err);
    if (f->lg == NULL)
        fail_msg("open: %s", err);
    open_log(f);
    *state = f;
    return 0;
}

static int setup_sqlite(void **state)
{
    return setup_backend(state, false);
}

static int setup_pg(void **state)
{
    return setup_backend(state, true);
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    tlog_free(f->t);
    ledger_close(f->lg);
    keystore_free(f->ks);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    if (f->pg && pgtest_drop(f->db) != 0)
        return -1;
    free(f);
    return 0;
}

/* Runs SQL on the fixture's ledger directly, as an intruder would. */
static void tamper(fixture *f, const char *sql_sqlite, const char *sql_pg)
{
    if (f->pg) {
        assert_int_equal(pgtest_exec(f->db, sql_pg, NULL, 0), 0);
        return;
    }
    char file[128];
    sqlite3 *db = NULL;
    snprintf(file, sizeof file, "%s/ledger.sqlite", f->dir);
    assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql_sqlite, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Opens a checkpoint with the fixture's log key. */
static checkpoint open_checkpoint(const fixture *f, const char *note)
{
    note_verifier *v = note_signer_verifier(f->ks->log);
    checkpoint cp;
    assert_non_null(v);
    assert_int_equal(checkpoint_open(note, strlen(note), &v, 1, &cp, NULL), NOTE_OK);
    note_verifier_free(v);
    assert_string_equal(cp.origin, ORIGIN);
    return cp;
}

/* Checks a proof as a client would: commitment, leaf hash, path, root. */
static void check_proof(const fixture *f, const ledger_proof *p)
{
    assert_true(p->present);
    checkpoint cp = open_checkpoint(f, p->checkpoint);
    assert_int_equal(cp.size, p->size);
    assert_true(p->index < p->size);
    merkle_hash commitment, leaf, hashes[LEDGER_PROOF_MAX];
    merkle_commitment(p->salt, p->event, strlen(p->event), &commitment);
    merkle_leaf_hash(commitment.bytes, sizeof commitment.bytes, &leaf);
    for (size_t i = 0; i < p->hash_count; i++)
        memcpy(hashes[i].bytes, p->hashes[i], LEDGER_HASH_LEN);
    assert_int_equal(
        merkle_verify_inclusion(p->index, p->size, &leaf, hashes, p->hash_count, &cp.root),
        MERKLE_OK);
}

/* Writes a batch of n fresh deliveries (issue, confirm), starting at first;
 * checks every confirmation's proof from memory and from the ledger. */
static void write_batch(fixture *f, unsigned first, unsigned n)
{
    ledger_event *ev = calloc(2 * n, sizeof *ev);
    ledger_result *res = calloc(2 * n, sizeof *res);
    ledger_batch_entry *entries = calloc(2 * n, sizeof *entries);
    assert_non_null(ev);
    assert_non_null(res);
    assert_non_null(entries);
    for (unsigned i = 0; i < n; i++) {
        fill_issue(&ev[2 * i], first + i);
        fill_confirm(&ev[2 * i + 1], first + i);
    }
    for (unsigned i = 0; i < 2 * n; i++)
        entries[i] = (ledger_batch_entry){.event = &ev[i], .result = &res[i]};
    assert_int_equal(ledger_write_logged(f->lg, entries, 2 * n, tlog_hook(f->t)), 0);
    for (unsigned i = 0; i < 2 * n; i++) {
        assert_int_equal(entries[i].status, 0);
        ledger_proof proof, stored;
        assert_true(tlog_prove(f->t, i, &proof));
        check_proof(f, &proof);
        char text[TLOG_EVENT_MAX + 1];
        assert_int_not_equal(tlog_event_text(&ev[i], text, sizeof text), 0);
        assert_string_equal(proof.event, text);
        char err[256];
        assert_int_equal(tlog_read_proof(f->lg, proof.index, 0, &stored, err, sizeof err), 0);
        assert_int_equal(stored.index, proof.index);
        assert_int_equal(stored.size, proof.size);
        assert_int_equal(stored.hash_count, proof.hash_count);
        assert_memory_equal(stored.hashes, proof.hashes, proof.hash_count * LEDGER_HASH_LEN);
        assert_memory_equal(stored.salt, proof.salt, LEDGER_SALT_LEN);
        assert_string_equal(stored.event, proof.event);
        assert_string_equal(stored.checkpoint, proof.checkpoint);
    }
    free(entries);
    free(res);
    free(ev);
}

static uint64_t latest_size(fixture *f, char *note, size_t cap)
{
    char err[256];
    uint64_t size = 0;
    assert_int_equal(tlog_read_latest(f->lg, &size, note, cap, err, sizeof err), 1);
    assert_int_equal(size, open_checkpoint(f, note).size);
    return size;
}

/* ---- tests ---- */

static void test_origin(void **state)
{
    (void)state;
    char out[NOTE_VKEY_MAX];
    assert_int_equal(tlog_origin("https://example.com", out, sizeof out), 0);
    assert_string_equal(out, "example.com/_receipt/log");
    assert_int_equal(tlog_origin("https://example.com/site/", out, sizeof out), 0);
    assert_string_equal(out, "example.com/site/_receipt/log");
    assert_int_equal(tlog_origin("http://127.0.0.1:8080", out, sizeof out), 0);
    assert_string_equal(out, "127.0.0.1:8080/_receipt/log");
    /* the host as a URL parser gives it: lower case, no default port */
    assert_int_equal(tlog_origin("https://Deliveries.Example.COM:443/Path/", out, sizeof out), 0);
    assert_string_equal(out, "deliveries.example.com/Path/_receipt/log");
    assert_int_equal(tlog_origin("http://Example.org:80", out, sizeof out), 0);
    assert_string_equal(out, "example.org/_receipt/log");
    assert_int_equal(tlog_origin("http://example.org:8080/x", out, sizeof out), 0);
    assert_string_equal(out, "example.org:8080/x/_receipt/log");
    assert_int_equal(tlog_origin("https://example.org:80/", out, sizeof out), 0);
    assert_string_equal(out, "example.org:80/_receipt/log");
    assert_int_equal(tlog_origin("https://[::1]:443/a", out, sizeof out), 0);
    assert_string_equal(out, "[::1]/a/_receipt/log");
    assert_int_equal(tlog_origin("https://example.com/a+b", out, sizeof out), -1);
    assert_string_equal(out, "");
    assert_int_equal(tlog_origin("https://example.com/a b", out, sizeof out), -1);
}

/* A new log's first leaf names its key, in a checkpoint of size 1. */
static void test_genesis(void **state)
{
    fixture *f = *state;
    char note[LEDGER_NOTE_MAX + 1];
    assert_int_equal(latest_size(f, note, sizeof note), 1);
    assert_int_equal(tlog_latest(f->t, note, sizeof note), 1);
    char err[256];
    ledger_proof p;
    assert_int_equal(tlog_read_proof(f->lg, 0, 0, &p, err, sizeof err), 0);
    check_proof(f, &p);
    tlog_event_info info;
    tlog_event_row row = {0};
    assert_int_equal(tlog_event_fold(p.event, strlen(p.event), &info, &row, err, sizeof err), 0);
    assert_int_equal(info.type, TLOG_EVENT_LOG_KEY);
    char key[NOTE_VKEY_MAX];
    note_verifier *v = note_signer_verifier(f->ks->log);
    note_verifier_text(v, key);
    note_verifier_free(v);
    assert_string_equal(info.key, key);
    assert_string_equal(info.previous, "");
}

/* Another node's checkpoint: read at most once per interval, served when
 * it is newer than this node's own, never going back. */
static void test_observed_checkpoint(void **state)
{
    fixture *f = *state;
    char note[LEDGER_NOTE_MAX + 1];
    assert_true(tlog_refresh_due(f->t, 5000, 1000));
    assert_false(tlog_refresh_due(f->t, 5000, 1000));
    assert_false(tlog_refresh_due(f->t, 5999, 1000));
    assert_true(tlog_refresh_due(f->t, 6000, 1000));
    assert_false(tlog_refresh_due(f->t, 6500, 1000));

    char own[LEDGER_NOTE_MAX + 1];
    assert_int_equal(tlog_latest(f->t, own, sizeof own), 1);
    tlog_observe(f->t, 1, "not newer\n");
    assert_int_equal(tlog_newest(f->t, note, sizeof note), 1);
    assert_string_equal(note, own);
    tlog_observe(f->t, 7, "seven\n");
    tlog_observe(f->t, 5, "five\n");
    assert_int_equal(tlog_newest(f->t, note, sizeof note), 7);
    assert_string_equal(note, "seven\n");
    /* This node's own checkpoint is unchanged by what it observed. */
    assert_int_equal(tlog_latest(f->t, note, sizeof note), 1);
    assert_string_equal(note, own);
}

/* Batches across tile boundaries: every proof verifies, the stored tree is
 * the signed one, the tiles and entry bundles agree with the leaves. */
static void test_batches_and_tiles(void **state)
{
    fixture *f = *state;
    unsigned first = 1;
    /* 1 + 2 * (3 + 100 + 61 + 199) = 727 leaves: two full level-0 tiles;
     * batches of leaves stored eight to a statement, one by one, and both. */
    const unsigned sizes[] = {3, 100, 61, 199};
    for (size_t b = 0; b < sizeof sizes / sizeof sizes[0]; b++) {
        write_batch(f, first, sizes[b]);
        first += sizes[b];
    }
    char note[LEDGER_NOTE_MAX + 1];
    uint64_t size = latest_size(f, note, sizeof note);
    assert_int_equal(size, 727);
    assert_int_equal(tlog_appended(f->t), 727); /* the key's leaf too */
    checkpoint cp = open_checkpoint(f, note);
    merkle_hash root;
    assert_int_equal(merkle_tree_hash(size, tlog_read_hashes, f->lg, &root), MERKLE_OK);
    assert_memory_equal(root.bytes, cp.root.bytes, MERKLE_HASH_LEN);

    /* The tiles and entry bundles as served, rebuilt from the commitments. */
    uint8_t tile[TLOG_READ_TILE_MAX], bundle[TLOG_READ_TILE_MAX];
    size_t tile_len = 0, bundle_len = 0;
    char err[256];
    merkle_hash level0[727];
    for (uint64_t n = 0; n < 3; n++) {
        unsigned width = tiles_width(0, n, size);
        tiles_tile t0 = {.level = 0, .index = n, .width = width};
        tiles_tile te = {.level = TILES_ENTRIES, .index = n, .width = width};
        assert_int_equal(tlog_read_tile(f->lg, &t0, tile, &tile_len, err, sizeof err), 1);
        assert_int_equal(tlog_read_tile(f->lg, &te, bundle, &bundle_len, err, sizeof err), 1);
        assert_int_equal(tile_len, width * MERKLE_HASH_LEN);
        assert_int_equal(bundle_len, width * (2 + MERKLE_HASH_LEN));
        size_t offset = 0;
        for (unsigned j = 0; j < width; j++) {
            const uint8_t *entry = NULL;
            size_t len = 0;
            assert_int_equal(tiles_bundle_next(bundle, bundle_len, &offset, &entry, &len), 1);
            assert_int_equal(len, MERKLE_HASH_LEN);
            merkle_leaf_hash(entry, len, &level0[n * TILES_WIDTH + j]);
            assert_memory_equal(level0[n * TILES_WIDTH + j].bytes, tile + j * MERKLE_HASH_LEN,
                                MERKLE_HASH_LEN);
        }
        assert_int_equal(offset, bundle_len);
    }
    /* A partial tile wider than the tree, and a tile past its end, are not there. */
    tiles_tile wide = {.level = 0, .index = 2, .width = 255};
    assert_int_equal(tlog_read_tile(f->lg, &wide, tile, &tile_len, err, sizeof err), 0);
    tiles_tile past = {.level = 0, .index = 3, .width = 256};
    assert_int_equal(tlog_read_tile(f->lg, &past, tile, &tile_len, err, sizeof err), 0);
    merkle_root_of(level0, 727, &root);
    assert_memory_equal(root.bytes, cp.root.bytes, MERKLE_HASH_LEN);

    /* Level 1: the roots of the two full level-0 tiles. */
    tiles_tile t1 = {.level = 1, .index = 0, .width = 2};
    assert_int_equal(tlog_read_tile(f->lg, &t1, tile, &tile_len, err, sizeof err), 1);
    assert_int_equal(tile_len, 2 * MERKLE_HASH_LEN);
    for (int k = 0; k < 2; k++) {
        merkle_root_of(level0 + k * TILES_WIDTH, TILES_WIDTH, &root);
        assert_memory_equal(root.bytes, tile + k * MERKLE_HASH_LEN, MERKLE_HASH_LEN);
    }

    /* Every checkpoint is consistent with the newest. */
    ledger_proof p;
    for (uint64_t leaf = 0; leaf < size; leaf += 97) {
        assert_int_equal(tlog_read_proof(f->lg, leaf, size, &p, err, sizeof err), 0);
        check_proof(f, &p);
        assert_int_equal(p.size, size);
    }
}

/* Refused, ignored and repeated events add no leaf; a batch of nothing but
 * them signs no checkpoint. */
static void test_no_leaf_without_change(void **state)
{
    fixture *f = *state;
    write_batch(f, 1, 2);
    char note[LEDGER_NOTE_MAX + 1];
    uint64_t before = latest_size(f, note, sizeof note);
    ledger_event ev[3];
    ledger_result res[3];
    ledger_batch_entry entries[3];
    fill_issue(&ev[0], 1);   /* issued again: ignored */
    fill_confirm(&ev[1], 2); /* the same confirmation again: a repeat */
    fill_confirm(&ev[2], 2);
    ev[2].row.confirmed_ms += 1000; /* another confirmation of a confirmed row: refused */
    snprintf(ev[2].row.client, sizeof ev[2].row.client, "%s",
             "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB");
    for (int i = 0; i < 3; i++)
        entries[i] = (ledger_batch_entry){.event = &ev[i], .result = &res[i]};
    assert_int_equal(ledger_write_logged(f->lg, entries, 3, tlog_hook(f->t)), 0);
    for (int i = 0; i < 3; i++) {
        ledger_proof p;
        assert_false(entries[i].status == 0 && entries[i].outcome == LEDGER_APPLIED);
        assert_false(tlog_prove(f->t, (size_t)i, &p));
        assert_false(p.present);
    }
    assert_int_equal(latest_size(f, note, sizeof note), before);
}

typedef struct stored_leaf {
    bool found;
    ledger_log_row row;
    char event[TLOG_EVENT_MAX + 1];
} stored_leaf;

static int take_leaf(void *arg, const ledger_log_row *row)
{
    stored_leaf *out = arg;
    out->found = true;
    out->row = *row;
    snprintf(out->event, sizeof out->event, "%.*s", (int)row->event_len, row->event);
    out->row.event = out->event;
    return 0;
}

/* Leaves made ahead by the submitter (tlog_leaf_make()) are the ones stored
 * and proved; the leaf of an event that does not apply is left unused. */
static void test_leaf_made_ahead(void **state)
{
    fixture *f = *state;
    write_batch(f, 1, 1);
    char note[LEDGER_NOTE_MAX + 1];
    uint64_t before = latest_size(f, note, sizeof note);
    ledger_event ev[2];
    ledger_result res[2];
    ledger_batch_entry entries[2];
    ledger_leaf leaf[2];
    char text[2][TLOG_EVENT_MAX + 1];
    uint8_t packed[2][TLOG_EVENT_MAX + 1];
    char unpacked[TLOG_EVENT_MAX];
    fill_issue(&ev[0], 1); /* issued again: ignored */
    fill_issue(&ev[1], 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            tlog_leaf_make(&ev[i], text[i], sizeof text[i], packed[i], sizeof packed[i], &leaf[i]),
            0);
        assert_int_equal(leaf[i].text_len, strlen(text[i]));
        /* Its packed form, made beside it, is the same text. */
        assert_ptr_equal(leaf[i].packed, packed[i]);
        assert_true(leaf[i].packed_len < leaf[i].text_len);
        assert_int_equal(
            evpack_decode(leaf[i].packed, leaf[i].packed_len, unpacked, sizeof unpacked),
            (long)leaf[i].text_len);
        assert_memory_equal(unpacked, text[i], leaf[i].text_len);
        entries[i] = (ledger_batch_entry){.event = &ev[i], .result = &res[i], .leaf = &leaf[i]};
    }
    assert_int_equal(ledger_write_logged(f->lg, entries, 2, tlog_hook(f->t)), 0);
    assert_int_equal(latest_size(f, note, sizeof note), before + 1);
    ledger_proof p;
    assert_false(tlog_prove(f->t, 0, &p));
    assert_true(tlog_prove(f->t, 1, &p));
    assert_int_equal(p.index, before);
    assert_memory_equal(p.salt, leaf[1].salt, sizeof p.salt);
    assert_string_equal(p.event, text[1]);

    stored_leaf got = {0};
    assert_int_equal(
        ledger_log_entries(f->lg, LEDGER_LOG_RANGE, before, 1, NULL, false, take_leaf, &got), 0);
    assert_true(got.found);
    assert_memory_equal(got.row.salt, leaf[1].salt, sizeof got.row.salt);
    assert_memory_equal(got.row.commitment, leaf[1].commitment, sizeof got.row.commitment);
    assert_string_equal(got.event, text[1]);
    merkle_hash expect;
    merkle_commitment(leaf[1].salt, text[1], strlen(text[1]), &expect);
    assert_memory_equal(got.row.commitment, expect.bytes, sizeof expect.bytes);
    check_proof(f, &p);
}

#define PROBLEMS_MAX 2048

static void count_problem(void *arg, const char *problem)
{
    char *all = arg;
    size_t used = strlen(all);
    snprintf(all + used, PROBLEMS_MAX - used, "%s\n", problem);
}

/* receiptd ledger verify on f's ledger: its problems, told into all. */
static uint64_t verify_problems(fixture *f, char all[PROBLEMS_MAX])
{
    tlog_verify_result r;
    char err[256];
    all[0] = '\0';
    assert_int_equal(tlog_verify_run(f->lg, f->ks, count_problem, all, &r, err, sizeof err), 0);
    return r.problems;
}

typedef struct leaf_text {
    uint64_t leaf;
    char text[TLOG_EVENT_MAX + 1];
    size_t len;
    size_t total; /* of every leaf read */
} leaf_text;

static int take_text(void *arg, const ledger_log_row *row)
{
    leaf_text *t = arg;
    t->total += row->event_len;
    if (row->leaf == t->leaf) {
        assert_true(row->event_len <= TLOG_EVENT_MAX);
        memcpy(t->text, row->event, row->event_len);
        t->text[row->event_len] = '\0';
        t->len = row->event_len;
    }
    return 0;
}

/* Rewrites one stored event of the SQLite ledger: fn edits its bytes. */
static void edit_stored_event(fixture *f, uint64_t leaf, void (*fn)(uint8_t *, int *))
{
    char file[128];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    uint8_t bytes[2 * TLOG_EVENT_MAX + 2];
    int len;
    snprintf(file, sizeof file, "%s/ledger.sqlite", f->dir);
    assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT event FROM log_entries WHERE leaf = ?1", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)leaf);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_type(st, 0), SQLITE_BLOB);
    len = sqlite3_column_bytes(st, 0);
    assert_true(len > 2 && (size_t)len <= sizeof bytes);
    memcpy(bytes, sqlite3_column_blob(st, 0), (size_t)len);
    sqlite3_finalize(st);
    fn(bytes, &len);
    assert_int_equal(
        sqlite3_prepare_v2(db, "UPDATE log_entries SET event = ?1 WHERE leaf = ?2", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_blob(st, 1, bytes, len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)leaf);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A byte of a delivery's UUID changed: it still unpacks, to another text. */
static void flip_uuid_byte(uint8_t *b, int *len)
{
    for (int i = 1; i + 16 < *len; i++)
        if (b[i] == 0x1c) { /* the UUID's code, then its 16 bytes */
            b[i + 16] ^= 0x01;
            return;
        }
    fail_msg("no packed UUID in the event");
}

/* A format that is not evpack's: the stored bytes go to verify as they are. */
static void break_format(uint8_t *b, int *len)
{
    (void)len;
    b[0] = 0x7f;
}

/*
 * Events are stored packed on SQLite (evpack), both the ones made ahead
 * and the ones the log writes itself, and read back as their texts; a row
 * stored as TEXT before (or by another version) reads as it is; a packed
 * row edited, so that it unpacks to another text or not at all, is found
 * by `receiptd ledger verify`.
 */
static void test_stored_events(void **state)
{
    fixture *f = *state;
    char last[PROBLEMS_MAX];
    write_batch(f, 1, 20);
    assert_int_equal(verify_problems(f, last), 0);
    leaf_text t = {.leaf = 3};
    assert_int_equal(
        ledger_log_entries(f->lg, LEDGER_LOG_RANGE, 0, 100, NULL, false, take_text, &t), 0);
    assert_true(t.len > 0 && t.total > 0);
    if (f->pg)
        return; /* PostgreSQL stores the texts as text: nothing packed to check */

    char file[128];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(file, sizeof file, "%s/ledger.sqlite", f->dir);
    assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*), sum(typeof(event) = 'blob'),"
                                        " sum(length(event)) FROM log_entries",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long rows = sqlite3_column_int64(st, 0);
    assert_true(rows > 40);
    assert_int_equal(sqlite3_column_int64(st, 1), rows);
    /* Well under the texts' bytes. */
    assert_true((uint64_t)sqlite3_column_int64(st, 2) * 10 < t.total * 7);
    sqlite3_finalize(st);

    /* A row of the form before: TEXT. */
    assert_int_equal(
        sqlite3_prepare_v2(db, "UPDATE log_entries SET event = ?1 WHERE leaf = 3", -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, t.text, (int)t.len, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
    leaf_text again = {.leaf = 3};
    assert_int_equal(
        ledger_log_entries(f->lg, LEDGER_LOG_RANGE, 0, 100, NULL, false, take_text, &again), 0);
    assert_int_equal(again.len, t.len);
    assert_string_equal(again.text, t.text);
    assert_int_equal(again.total, t.total);
    assert_int_equal(verify_problems(f, last), 0);

    /* The one edited leaf names another delivery now: its row's events
     * differ too. */
    edit_stored_event(f, 5, flip_uuid_byte);
    assert_true(verify_problems(f, last) >= 1);
    assert_non_null(strstr(last, "leaf 5: its event or salt was altered"));
    edit_stored_event(f, 8, break_format);
    assert_true(verify_problems(f, last) >= 2);
    assert_non_null(strstr(last, "leaf 5: its event or salt was altered"));
    assert_non_null(strstr(last, "leaf 8: its event or salt was altered"));
}

/* A new tlog on the same ledger (a restart) carries on from the stored tree;
 * the checkpoints before and after are consistent. */
static void test_restart(void **state)
{
    fixture *f = *state;
    write_batch(f, 1, 300);
    char note[LEDGER_NOTE_MAX + 1], err[256];
    uint64_t first = latest_size(f, note, sizeof note);
    checkpoint old = open_checkpoint(f, note);
    tlog_free(f->t);
    open_log(f);
    assert_int_equal(tlog_latest(f->t, note, sizeof note), first);
    write_batch(f, 301, 5);
    uint64_t second = latest_size(f, note, sizeof note);
    assert_int_equal(second, first + 10);
    checkpoint now = open_checkpoint(f, note);
    merkle_hash proof[MERKLE_MAX_PROOF];
    size_t len = 0;
    assert_int_equal(merkle_prove_consistency(first, second, tlog_read_hashes, f->lg, proof, &len),
                     MERKLE_OK);
    assert_int_equal(merkle_verify_consistency(first, second, &old.root, &now.root, proof, len),
                     MERKLE_OK);
    (void)err;
}

/* A log whose stored commitments or tiles were altered does not load. */
static void test_altered_log_refused(void **state)
{
    fixture *f = *state;
    write_batch(f, 1, 150); /* 301 leaves: a level-1 tile of one hash */
    char err[TLOG_ERR_MAX];
    tlog_free(f->t);
    f->t = NULL;

    tamper(f, "UPDATE log_entries SET commitment = zeroblob(32) WHERE leaf = 300",
           "UPDATE log_entries SET commitment = '\\x" /* 32 zero bytes */
           "0000000000000000000000000000000000000000000000000000000000000000' WHERE leaf = 300");
    tlog *t = tlog_new(f->ks);
    assert_non_null(t);
    assert_int_equal(tlog_load(t, f->lg, err, sizeof err), -1);
    assert_non_null(strstr(err, "damaged"));
    tlog_free(t);
}

static void test_altered_tile_refused(void **state)
{
    fixture *f = *state;
    write_batch(f, 1, 150);
    char err[TLOG_ERR_MAX];
    tlog_free(f->t);
    f->t = NULL;
    tamper(f, "UPDATE log_tiles SET hashes = zeroblob(32) WHERE level = 1 AND idx = 0",
           "UPDATE log_tiles SET hashes = '\\x"
           "0000000000000000000000000000000000000000000000000000000000000000'"
           " WHERE level = 1 AND idx = 0");
    tlog *t = tlog_new(f->ks);
    assert_non_null(t);
    assert_int_equal(tlog_load(t, f->lg, err, sizeof err), -1);
    assert_non_null(strstr(err, "damaged"));
    tlog_free(t);
}

/* A ledger whose newest checkpoint is signed by an unknown key is refused. */
static void test_foreign_key_refused(void **state)
{
    fixture *f = *state;
    char dir[64], err[TLOG_ERR_MAX];
    bool created = false;
    snprintf(dir, sizeof dir, "/tmp/test_tlog_other.XXXXXX");
    assert_non_null(mkdtemp(dir));
    keystore *other = keystore_open(dir, true, &created, err, sizeof err);
    assert_non_null(other);
    assert_int_equal(keystore_add_log_key(other, dir, ORIGIN, T0, err, sizeof err), 1);
    tlog *t = tlog_new(other);
    assert_non_null(t);
    assert_int_equal(tlog_load(t, f->lg, err, sizeof err), -1);
    assert_non_null(strstr(err, "keys import"));
    tlog_free(t);
    keystore_free(other);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* A new log key for the site, and the log loaded again with it. */
static void rotate_log_key(fixture *f)
{
    char err[TLOG_ERR_MAX];
    keystore *old = f->ks;
    tlog_free(f->t);
    f->ks = keystore_rotate(f->dir, KEYSTORE_LOG, T0 + 1000, err, sizeof err);
    if (f->ks == NULL)
        fail_msg("rotate: %s", err);
    keystore_free(old);
    f->t = tlog_new(f->ks);
    assert_non_null(f->t);
    assert_int_equal(tlog_load(f->t, f->lg, err, sizeof err), 0);
}

/* A rotated log key: the next batch announces it, its checkpoint signed by
 * both keys; from then on the new key alone signs. */
static void test_rotation(void **state)
{
    fixture *f = *state;
    char err[TLOG_ERR_MAX];
    write_batch(f, 1, 2);
    note_verifier *old_v = note_signer_verifier(f->ks->log);
    assert_non_null(old_v);
    rotate_log_key(f);
    assert_false(tlog_previous_announced(f->t));
    assert_int_equal(tlog_catch_up(f->t, f->lg, 100, err, sizeof err), 0);
    assert_true(tlog_previous_announced(f->t));

    char note[LEDGER_NOTE_MAX + 1];
    uint64_t size = latest_size(f, note, sizeof note);
    assert_int_equal(size, 6);
    /* Signed by the old key too. */
    checkpoint cp;
    assert_int_equal(checkpoint_open(note, strlen(note), &old_v, 1, &cp, NULL), NOTE_OK);
    ledger_proof p;
    assert_int_equal(tlog_read_proof(f->lg, 5, 0, &p, err, sizeof err), 0);
    tlog_event_info info;
    tlog_event_row row = {0};
    assert_int_equal(tlog_event_fold(p.event, strlen(p.event), &info, &row, err, sizeof err), 0);
    assert_int_equal(info.type, TLOG_EVENT_LOG_KEY);
    assert_string_not_equal(info.previous, "");

    write_batch(f, 3, 1);
    size = latest_size(f, note, sizeof note);
    assert_int_equal(checkpoint_open(note, strlen(note), &old_v, 1, &cp, NULL), NOTE_UNVERIFIED);
    note_verifier_free(old_v);
}

/*
 * A key change recorded in the same batch as events (the log's own leaf
 * first, before the events' leaves were numbered): the rows lead to their
 * leaves all the same, and the ledger verifies.
 */
static void test_rotation_with_events(void **state)
{
    fixture *f = *state;
    char err[TLOG_ERR_MAX], all[PROBLEMS_MAX];
    write_batch(f, 1, 2);
    rotate_log_key(f);
    write_batch(f, 3, 2); /* the key change is leaf 5, the events 6 to 9 */
    assert_true(tlog_previous_announced(f->t));
    uint64_t leaf = 0;
    char id[UUID7_STR_LEN + 1];
    make_id(id, 4);
    assert_int_equal(tlog_read_confirmation_leaf(f->lg, id, &leaf, err, sizeof err), 1);
    assert_int_equal(leaf, 9);
    assert_int_equal(verify_problems(f, all), 0);
}

/* The leaf numbers a row keeps (SQLite's), edited: `receiptd ledger verify`
 * names the row, and a delivery whose row was deleted. */
static void test_row_leaves_altered(void **state)
{
    fixture *f = *state;
    char all[PROBLEMS_MAX], id[UUID7_STR_LEN + 1], sql[512];
    write_batch(f, 1, 8); /* leaf 0 the key; delivery n issued at 2n - 1, confirmed at 2n */
    assert_int_equal(verify_problems(f, all), 0);
    static const struct {
        unsigned n;
        const char *set;
    } edits[] = {
        {1, "log_leaf = NULL"},                                    /* a leaf dropped */
        {2, "log_leaf = log_leaf_prev, log_leaf_prev = log_leaf"}, /* reordered */
        {3, "log_leaf = 999999"},                                  /* a leaf that is not there */
        {4, "log_leaf_prev = 2"},                                  /* another delivery's leaf */
        {5, "log_leaf_prev = log_leaf"},                           /* one leaf twice */
        {6, "log_leaf_prev2 = 1"},                                 /* one more, not its own */
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        make_id(id, edits[i].n);
        snprintf(sql, sizeof sql, "UPDATE deliveries SET %s WHERE id = '%s'", edits[i].set, id);
        tamper(f, sql, NULL);
        assert_true(verify_problems(f, all) >= 1);
        char named[128];
        snprintf(named, sizeof named, "delivery %s: ", id);
        if (strstr(all, named) == NULL)
            fail_msg("%s: not named in:\n%s", edits[i].set, all);
    }
    /* A deleted row, told once for its two leaves. */
    make_id(id, 7);
    snprintf(sql, sizeof sql, "DELETE FROM deliveries WHERE id = '%s'", id);
    tamper(f, sql, NULL);
    verify_problems(f, all);
    snprintf(sql, sizeof sql, "delivery %s: logged (leaf 13) but it has no row", id);
    assert_non_null(strstr(all, sql));
    assert_null(strstr(strstr(all, sql) + strlen(sql), id));
    /* Delivery 8, untouched: its confirmation is still found. */
    make_id(id, 8);
    uint64_t leaf = 0;
    char err[256];
    assert_int_equal(tlog_read_confirmation_leaf(f->lg, id, &leaf, err, sizeof err), 1);
    assert_int_equal(leaf, 16);
}

/*
 * A SQLite ledger of schema 6 (the log indexed by delivery) migrates: it verifies,
 * its deliveries' confirmations are found, and the log goes on.
 */
static void test_migrated_ledger(void **state)
{
    fixture *f = *state;
    char all[PROBLEMS_MAX], err[LEDGER_ERR_MAX], id[UUID7_STR_LEN + 1];
    write_batch(f, 1, 10);
    tlog_free(f->t);
    f->t = NULL;
    ledger_close(f->lg);
    tamper(f,
           "ALTER TABLE deliveries DROP COLUMN log_leaf;"
           "ALTER TABLE deliveries DROP COLUMN log_leaf_prev;"
           "ALTER TABLE deliveries DROP COLUMN log_leaf_prev2;"
           "CREATE INDEX log_entries_delivery ON log_entries (delivery) WHERE delivery IS NOT NULL;"
           "DROP TABLE rollup_status; DROP TABLE rollup_minutes; DROP TABLE rollup_latest;"
           "PRAGMA user_version = 6",
           NULL);
    f->lg = ledger_open(f->url, NULL, false, err, sizeof err);
    if (f->lg == NULL)
        fail_msg("open: %s", err);
    open_log(f);
    assert_int_equal(verify_problems(f, all), 0);
    uint64_t leaf = 0;
    make_id(id, 4);
    assert_int_equal(tlog_read_confirmation_leaf(f->lg, id, &leaf, err, sizeof err), 1);
    assert_int_equal(leaf, 8);
    write_batch(f, 11, 3);
    assert_int_equal(verify_problems(f, all), 0);
}

/* ---- two nodes: one log ---- */

typedef struct node {
    fixture f; /* its own ledger handle and tlog on the same ledger and keys */
    unsigned first;
    int failed;
    char err[LEDGER_ERR_MAX];
} node;

#define NODE_BATCHES 15
#define NODE_BATCH   4

static void *node_run(void *arg)
{
    node *nd = arg;
    ledger_event ev[2 * NODE_BATCH];
    ledger_result res[2 * NODE_BATCH];
    ledger_batch_entry entries[2 * NODE_BATCH];
    for (unsigned b = 0; b < NODE_BATCHES && !nd->failed; b++) {
        for (unsigned i = 0; i < NODE_BATCH; i++) {
            unsigned id = nd->first + b * NODE_BATCH + i;
            fill_issue(&ev[2 * i], id);
            fill_confirm(&ev[2 * i + 1], id);
        }
        for (unsigned i = 0; i < 2 * NODE_BATCH; i++)
            entries[i] = (ledger_batch_entry){.event = &ev[i], .result = &res[i]};
        if (ledger_write_logged(nd->f.lg, entries, 2 * NODE_BATCH, tlog_hook(nd->f.t)) != 0) {
            snprintf(nd->err, sizeof nd->err, "%s", ledger_error(nd->f.lg));
            nd->failed = 1;
            break;
        }
        for (unsigned i = 0; i < 2 * NODE_BATCH; i++) {
            ledger_proof p;
            if (!tlog_prove(nd->f.t, i, &p)) {
                snprintf(nd->err, sizeof nd->err, "no proof of entry %u", i);
                nd->failed = 1;
            }
        }
    }
    return NULL;
}

static int count_checkpoint(void *arg, uint64_t size, uint64_t time_ms, const char *note)
{
    (void)time_ms;
    (void)note;
    uint64_t *sizes = arg;
    sizes[sizes[0] + 1] = size;
    sizes[0]++;
    return sizes[0] == 256;
}

/* Two writers on one ledger (two nodes) append to one log: their batches
 * interleave, each grows the tree the other left, every checkpoint is
 * consistent with the newest. */
static void test_two_nodes(void **state)
{
    fixture *f = *state;
    char err[LEDGER_ERR_MAX];
    node nodes[2];
    memset(nodes, 0, sizeof nodes);
    for (int k = 0; k < 2; k++) {
        nodes[k].f = *f;
        nodes[k].f.lg = ledger_open(f->url, NULL, false, err, sizeof err);
        if (nodes[k].f.lg == NULL)
            fail_msg("open: %s", err);
        open_log(&nodes[k].f);
        nodes[k].first = 1 + (unsigned)k * 1000;
    }
    pthread_t threads[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&threads[k], NULL, node_run, &nodes[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(threads[k], NULL);
    for (int k = 0; k < 2; k++) {
        if (nodes[k].failed)
            fail_msg("node %d: %s", k, nodes[k].err);
        tlog_free(nodes[k].f.t);
        ledger_close(nodes[k].f.lg);
    }
    char note[LEDGER_NOTE_MAX + 1];
    uint64_t size = latest_size(f, note, sizeof note);
    assert_int_equal(size, 1 + 2 * NODE_BATCHES * NODE_BATCH * 2);
    checkpoint newest = open_checkpoint(f, note);
    merkle_hash root;
    assert_int_equal(merkle_tree_hash(size, tlog_read_hashes, f->lg, &root), MERKLE_OK);
    assert_memory_equal(root.bytes, newest.root.bytes, MERKLE_HASH_LEN);
    uint64_t sizes[258] = {0};
    assert_int_equal(
        ledger_log_checkpoints(f->lg, 0, UINT64_MAX, false, 0, count_checkpoint, sizes), 0);
    assert_int_equal(sizes[0], 1 + 2 * NODE_BATCHES);
    for (uint64_t i = 1; i <= sizes[0]; i++) {
        ledger_proof p;
        assert_int_equal(tlog_read_proof(f->lg, sizes[i] - 1, 0, &p, err, sizeof err), 0);
        check_proof(f, &p);
        assert_int_equal(p.size, sizes[i]);
        if (sizes[i] == size)
            continue;
        checkpoint old = open_checkpoint(f, p.checkpoint);
        merkle_hash proof[MERKLE_MAX_PROOF];
        size_t len = 0;
        assert_int_equal(
            merkle_prove_consistency(sizes[i], size, tlog_read_hashes, f->lg, proof, &len),
            MERKLE_OK);
        assert_int_equal(
            merkle_verify_consistency(sizes[i], size, &old.root, &newest.root, proof, len),
            MERKLE_OK);
    }
}

static void test_pg_unavailable(void **state)
{
    (void)state;
    printf("# %s\n", pgtest_unavailable());
    skip();
}

#define BACKEND_TESTS(setup)                                                                       \
    cmocka_unit_test_setup_teardown(test_genesis, setup, teardown),                                \
        cmocka_unit_test_setup_teardown(test_observed_checkpoint, setup, teardown),                \
        cmocka_unit_test_setup_teardown(test_batches_and_tiles, setup, teardown),                  \
        cmocka_unit_test_setup_teardown(test_no_leaf_without_change, setup, teardown),             \
        cmocka_unit_test_setup_teardown(test_leaf_made_ahead, setup, teardown),                    \
        cmocka_unit_test_setup_teardown(test_stored_events, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(test_restart, setup, teardown),                            \
        cmocka_unit_test_setup_teardown(test_altered_log_refused, setup, teardown),                \
        cmocka_unit_test_setup_teardown(test_altered_tile_refused, setup, teardown),               \
        cmocka_unit_test_setup_teardown(test_foreign_key_refused, setup, teardown),                \
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(test_rotation_with_events, setup, teardown),               \
        cmocka_unit_test_setup_teardown(test_two_nodes, setup, teardown)

int main(void)
{
    const struct CMUnitTest common[] = {cmocka_unit_test(test_origin)};
    const struct CMUnitTest sqlite[] = {
        BACKEND_TESTS(setup_sqlite),
        cmocka_unit_test_setup_teardown(test_row_leaves_altered, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_migrated_ledger, setup_sqlite, teardown),
    };
    const struct CMUnitTest pg[] = {BACKEND_TESTS(setup_pg)};
    const struct CMUnitTest pg_missing[] = {cmocka_unit_test(test_pg_unavailable)};
    int failed = cmocka_run_group_tests_name("tlog", common, NULL, NULL);
    failed += cmocka_run_group_tests_name("tlog_sqlite", sqlite, NULL, NULL);
    if (pgtest_unavailable() == NULL)
        failed += cmocka_run_group_tests_name("tlog_postgresql", pg, NULL, NULL);
    else
        failed += cmocka_run_group_tests_name("tlog_postgresql", pg_missing, NULL, NULL);
    return failed;
}
