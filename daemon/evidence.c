#include "daemon/evidence.h"

#include "common/b64.h"
#include "common/jose.h"
#include "common/merkle.h"
#include "common/uuid7.h"
#include "daemon/clock.h"
#include "daemon/tlog_read.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVIDENCE_CHUNK (64 * 1024) /* a bundle's first allocation */

/* Base64 text (n bytes at text + 1) closed in quotes: plain JSON string
 * text, added as it is. text has room for n + 2 bytes. */
static void quoted_b64(jbuf *b, char *text, size_t n)
{
    text[0] = '"';
    text[n + 1] = '"';
    jbuf_add(b, text, n + 2);
}

static void hash_b64(jbuf *b, const uint8_t hash[LEDGER_HASH_LEN])
{
    char text[48];
    quoted_b64(b, text, b64std_encode(hash, LEDGER_HASH_LEN, text + 1));
}

static void leaf_json(jbuf *b, const ledger_proof *p)
{
    char salt[48];
    jbuf_member_u64(b, "index", p->index);
    jbuf_key(b, "leaf");
    jbuf_adds(b, "{");
    jbuf_key(b, "salt");
    quoted_b64(b, salt, b64url_encode(p->salt, LEDGER_SALT_LEN, salt + 1));
    jbuf_member_str(b, "event", p->event);
    jbuf_adds(b, "}");
    jbuf_key(b, "hashes");
    jbuf_adds(b, "[");
    for (size_t i = 0; i < p->hash_count; i++) {
        if (i > 0)
            jbuf_adds(b, ",");
        hash_b64(b, p->hashes[i]);
    }
    jbuf_adds(b, "]");
}

void evidence_proof_json(jbuf *b, const ledger_proof *p)
{
    jbuf_adds(b, "{");
    leaf_json(b, p);
    jbuf_member_str(b, "checkpoint", p->checkpoint);
    jbuf_adds(b, "}");
}

/* ---- bundles ---- */

typedef struct leaves {
    uint64_t leaf[EVIDENCE_EVENTS_MAX];
    size_t count;
    bool more;
} leaves;

static int take_leaf_number(void *arg, const ledger_log_row *row)
{
    leaves *l = arg;
    if (l->count == EVIDENCE_EVENTS_MAX) {
        l->more = true;
        return 1;
    }
    l->leaf[l->count++] = row->leaf;
    return 0;
}

static void time_or_null(jbuf *b, const char *key, uint64_t ms)
{
    jbuf_key(b, key);
    if (ms == 0)
        jbuf_adds(b, "null");
    else
        jbuf_u64(b, ms);
}

static void log_key_json(jbuf *b, const note_verifier *v, uint64_t since, uint64_t until)
{
    char text[NOTE_VKEY_MAX];
    note_verifier_text(v, text);
    jbuf_adds(b, "{");
    jbuf_member_str(b, "key", text);
    time_or_null(b, "since_ms", since);
    time_or_null(b, "until_ms", until);
    jbuf_adds(b, "}");
}

static void sig_key_json(jbuf *b, const eckey *key, uint64_t since, uint64_t until)
{
    json_t *jwk = eckey_to_jwk(key, false);
    char *text = NULL;
    if (jwk != NULL && json_object_set_new(jwk, "kid", json_string(eckey_thumbprint(key))) == 0 &&
        json_object_set_new(jwk, "use", json_string("sig")) == 0 &&
        json_object_set_new(jwk, "alg", json_string("ES256")) == 0)
        text = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(jwk);
    if (text == NULL) {
        b->failed = true;
        return;
    }
    jbuf_adds(b, "{");
    jbuf_key(b, "jwk");
    jbuf_adds(b, text);
    time_or_null(b, "since_ms", since);
    time_or_null(b, "until_ms", until);
    jbuf_adds(b, "}");
    free(text);
}

/* The site's public keys, each with the time it was in use: the members
 * log and signing of the object "keys", left open. */
static int keys_json(jbuf *b, const keystore *ks)
{
    jbuf_key(b, "keys");
    jbuf_adds(b, "{");
    jbuf_key(b, "log");
    jbuf_adds(b, "[");
    note_verifier *current = note_signer_verifier(ks->log);
    note_verifier *previous = ks->log_previous ? note_signer_verifier(ks->log_previous) : NULL;
    if (current == NULL || (ks->log_previous != NULL && previous == NULL)) {
        note_verifier_free(current);
        return -1;
    }
    log_key_json(b, current, ks->log_since_ms, 0);
    if (previous != NULL) {
        jbuf_adds(b, ",");
        log_key_json(b, previous, ks->log_previous_since_ms, ks->log_since_ms);
    }
    note_verifier_free(current);
    note_verifier_free(previous);
    for (size_t i = 0; i < ks->old_log_count; i++) {
        jbuf_adds(b, ",");
        log_key_json(b, ks->old_log[i].key, ks->old_log[i].since_ms, ks->old_log[i].retired_ms);
    }
    jbuf_adds(b, "]");
    jbuf_key(b, "signing");
    jbuf_adds(b, "[");
    sig_key_json(b, ks->sig, ks->sig_since_ms, 0);
    for (size_t i = 0; i < ks->old_sig_count; i++) {
        jbuf_adds(b, ",");
        sig_key_json(b, ks->old_sig[i].key, ks->old_sig[i].since_ms, ks->old_sig[i].retired_ms);
    }
    jbuf_adds(b, "]");
    return 0;
}

/* One event: its leaf and inclusion proof in the bundle's checkpoint of
 * size; the checkpoint of its batch and the consistency proof from it. */
static int event_json(jbuf *b, ledger *lg, uint64_t leaf, uint64_t size, ledger_proof *in_newest,
                      ledger_proof *in_batch, char *err, size_t errlen)
{
    if (tlog_read_proof(lg, leaf, size, in_newest, err, errlen) != 0 ||
        tlog_read_proof(lg, leaf, 0, in_batch, err, errlen) != 0)
        return -1;
    merkle_hash consistency[MERKLE_MAX_PROOF];
    size_t count = 0;
    if (in_batch->size < size) {
        merkle_result mr = merkle_prove_consistency(in_batch->size, size, tlog_read_hashes, lg,
                                                    consistency, &count);
        if (mr != MERKLE_OK) {
            snprintf(err, errlen, "the consistency proof from %llu to %llu: %s",
                     (unsigned long long)in_batch->size, (unsigned long long)size,
                     merkle_result_str(mr));
            return -1;
        }
    }
    jbuf_adds(b, "{");
    leaf_json(b, in_newest);
    jbuf_key(b, "batch");
    jbuf_adds(b, "{");
    jbuf_member_str(b, "checkpoint", in_batch->checkpoint);
    jbuf_key(b, "consistency");
    jbuf_adds(b, "[");
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            jbuf_adds(b, ",");
        hash_b64(b, consistency[i].bytes);
    }
    jbuf_adds(b, "]}}");
    return 0;
}

int evidence_bundle(ledger *lg, const keystore *ks, const char *id, jbuf *b, char *err,
                    size_t errlen)
{
    ledger_delivery *row = malloc(sizeof *row);
    ledger_proof *in_newest = malloc(sizeof *in_newest);
    ledger_proof *in_batch = malloc(sizeof *in_batch);
    char *note = malloc(LEDGER_NOTE_MAX + 1);
    leaves found = {0};
    int rc = -1;
    if (row == NULL || in_newest == NULL || in_batch == NULL || note == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (ks->log == NULL) {
        snprintf(err, errlen, "the server has no evidence log key yet");
        goto out;
    }
    int got = ledger_get(lg, id, row);
    if (got < 0) {
        snprintf(err, errlen, "%s", ledger_error(lg));
        goto out;
    }
    if (ledger_log_entries(lg, LEDGER_LOG_DELIVERY, 0, 0, id, true, take_leaf_number, &found) !=
        0) {
        snprintf(err, errlen, "%s", ledger_error(lg));
        goto out;
    }
    if (got == 0 || found.count == 0) {
        rc = 0;
        goto out;
    }
    if (found.more) {
        snprintf(err, errlen, "delivery %s has more than %d events in the log", id,
                 EVIDENCE_EVENTS_MAX);
        goto out;
    }
    uint64_t size = 0;
    int latest = tlog_read_latest(lg, &size, note, LEDGER_NOTE_MAX + 1, err, errlen);
    if (latest <= 0) {
        if (latest == 0)
            snprintf(err, errlen, "the log has no checkpoint");
        goto out;
    }

    jbuf_adds(b, "{");
    jbuf_member_u64(b, "v", EVIDENCE_VERSION);
    jbuf_member_str(b, "delivery", id);
    jbuf_member_str(b, "origin", note_signer_name(ks->log));
    jbuf_member_u64(b, "made_ms", clock_wall_ms());
    jbuf_member_str(b, "checkpoint", note);
    jbuf_key(b, "events");
    jbuf_adds(b, "[");
    for (size_t i = 0; i < found.count; i++) {
        if (i > 0)
            jbuf_adds(b, ",");
        if (event_json(b, lg, found.leaf[i], size, in_newest, in_batch, err, errlen) != 0)
            goto out;
    }
    jbuf_adds(b, "]");
    jbuf_key(b, "receipt");
    jbuf_opt_str(b, row->receipt);
    if (keys_json(b, ks) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* The log's key changes, proved as the events are: a verifier who
     * trusts one log key follows them to the keys that signed the other
     * checkpoints (each change is in a checkpoint signed by both keys). */
    leaves changes = {0};
    if (ledger_log_entries(lg, LEDGER_LOG_OWN, 0, 0, NULL, true, take_leaf_number, &changes) != 0) {
        snprintf(err, errlen, "%s", ledger_error(lg));
        goto out;
    }
    if (changes.more) {
        snprintf(err, errlen, "the log has more than %d key changes", EVIDENCE_EVENTS_MAX);
        goto out;
    }
    jbuf_key(b, "log_changes");
    jbuf_adds(b, "[");
    for (size_t i = 0, written = 0; i < changes.count && changes.leaf[i] < size; i++) {
        if (written++ > 0)
            jbuf_adds(b, ",");
        if (event_json(b, lg, changes.leaf[i], size, in_newest, in_batch, err, errlen) != 0)
            goto out;
    }
    jbuf_adds(b, "]}}");
    if (b->failed) {
        snprintf(err, errlen, "the bundle is larger than %d bytes", EVIDENCE_BUNDLE_MAX);
        goto out;
    }
    rc = 1;
out:
    free(row);
    free(in_newest);
    free(in_batch);
    free(note);
    return rc;
}

/* ---- receiptd evidence ---- */

static const char evidence_usage[] =
    "usage: receiptd evidence [--state-dir DIR] [--ledger URL] DELIVERY_ID\n"
    "\n"
    "Writes the evidence bundle of one delivery to standard output: its events\n"
    "in the evidence log with their salts, inclusion proofs of each in the\n"
    "newest checkpoint, that checkpoint, the receipt, and the site's public\n"
    "keys with the time each was in use. receipt verify --bundle FILE checks it\n"
    "offline (docs/evidence.md). Read directly from the ledger: no running\n"
    "server needed, and safe while one runs.\n"
    "\n"
    "  --state-dir DIR   the server's state directory: its keys, and its\n"
    "                    DIR/ledger.sqlite unless --ledger (default /var/lib/receiptd)\n"
    "  --ledger URL      the ledger: sqlite:PATH, or PostgreSQL (postgresql://...\n"
    "                    or a key=value string)\n"
    "  --help            this text\n"
    "\n"
    "Exit status: 0 written, 1 failed, 2 a usage error, 4 no such delivery (or\n"
    "none of its events in the log).\n";

int evidence_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"ledger", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state_dir = "/var/lib/receiptd";
    const char *url = NULL;
    char err[EVIDENCE_ERR_MAX] = "";
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
            fputs(evidence_usage, stdout);
            return 0;
        default:
            fprintf(stderr, "receiptd evidence: an option needs a value or is unknown\n"
                            "Try 'receiptd evidence --help'.\n");
            return 2;
        }
    }
    uuid7 parsed;
    if (argc - optind != 1 || uuid7_parse(argv[optind], strlen(argv[optind]), &parsed) != 0) {
        fprintf(stderr, "receiptd evidence: give one delivery ID (a lowercase UUID)\n"
                        "Try 'receiptd evidence --help'.\n");
        return 2;
    }
    const char *id = argv[optind];
    keystore *ks = keystore_open(state_dir, false, NULL, err, sizeof err);
    if (ks == NULL) {
        fprintf(stderr, "receiptd evidence: %s\n", err);
        return 1;
    }
    ledger *lg = ledger_open(url, state_dir, true, err, sizeof err);
    if (lg == NULL) {
        fprintf(stderr, "receiptd evidence: %s\n", err);
        keystore_free(ks);
        return 1;
    }
    jbuf b;
    jbuf_init_growing(&b, NULL, 0, EVIDENCE_BUNDLE_MAX);
    int rc = evidence_bundle(lg, ks, id, &b, err, sizeof err);
    int status = 0;
    if (rc < 0) {
        fprintf(stderr, "receiptd evidence: %s\n", err);
        status = 1;
    } else if (rc == 0) {
        fprintf(stderr,
                "receiptd evidence: no delivery %s in the ledger, or none of its events "
                "in the evidence log\n",
                id);
        status = 4;
    } else if (fwrite(b.data, 1, b.len, stdout) != b.len || fputc('\n', stdout) == EOF ||
               fflush(stdout) != 0) {
        fprintf(stderr, "receiptd evidence: cannot write the bundle\n");
        status = 1;
    }
    jbuf_free(&b);
    ledger_close(lg);
    keystore_free(ks);
    return status;
}
