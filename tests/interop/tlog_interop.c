/*
 * The C side of the cross-check with Go's golang.org/x/mod/sumdb/tlog and
 * sumdb/note (tests/interop/checker.go drives it): reads one request a line
 * on standard input and writes one answer a line, so that the checker can
 * compare our stored hashes, tree heads, proofs, tiles and notes with its
 * own, and hand us its proofs and notes to verify.
 *
 * Requests (hashes in hex, texts and notes in standard base64):
 *
 *   leaves N               a log of the records "record <i>\n", i < N -> "ok"
 *   stored I               stored hash number I
 *   root N                 tree head of size N
 *   incl I N               inclusion proof of leaf I in tree N: hashes, space separated
 *   cons M N               consistency proof from M to N
 *   tile L N W             the tile's bytes in hex
 *   bundle N W             the entry bundle's bytes in hex
 *   path L N W             the tile's path (L = -1: entry bundle)
 *   grown OLD NEW          the tiles that growth makes, as L/N/W words
 *   vincl I N LEAF ROOT P..    "ok" or "fail <reason>"
 *   vcons M N ROOT1 ROOT2 P..  "ok" or "fail <reason>"
 *   genkey NAME            a new signer: "<signer key> <verifier key>"
 *   sign SKEY TEXT         the signed note
 *   open TEXT VKEY..       "ok <text> <unknown count> <signed-by flags>" or "fail <reason>"
 *   checkpoint ORIGIN N ROOT   the checkpoint text
 *   cparse TEXT            "<origin> <size> <root>" or "fail"
 *
 * Anything it cannot do is answered "fail ..." and the program goes on;
 * it exits non-zero only on a request it does not understand.
 */
#include "common/b64.h"
#include "common/checkpoint.h"
#include "common/merkle.h"
#include "common/note_sign.h"
#include "common/tiles.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct store {
    merkle_hash *hashes;
    uint64_t count, cap;
    uint64_t leaves;
} store;

static store log_store;

static int store_read(void *ctx, const uint64_t *indexes, size_t count, merkle_hash *out)
{
    store *s = ctx;

    for (size_t i = 0; i < count; i++) {
        if (indexes[i] >= s->count)
            return -1;
        out[i] = s->hashes[indexes[i]];
    }
    return 0;
}

static size_t record(uint64_t i, char *buf, size_t cap)
{
    return (size_t)snprintf(buf, cap, "record %" PRIu64 "\n", i);
}

static void put_hex(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
}

static bool get_hex(const char *s, merkle_hash *out)
{
    if (s == NULL || strlen(s) != 64)
        return false;
    for (int i = 0; i < 32; i++) {
        unsigned b;
        if (sscanf(s + 2 * i, "%2x", &b) != 1)
            return false;
        out->bytes[i] = (uint8_t)b;
    }
    return true;
}

static void put_b64(const char *s, size_t n)
{
    char *out = malloc(4 * (n / 3 + 1) + 1);
    b64std_encode((const uint8_t *)s, n, out);
    fputs(out, stdout);
    free(out);
}

/* Decodes a base64 argument in place; its length, or -1. */
static long get_b64(char *s)
{
    size_t n = strlen(s);
    return b64std_decode(s, n, (uint8_t *)s, n);
}

static void build(uint64_t n)
{
    merkle_edge *edge = merkle_edge_new();

    log_store.count = 0;
    log_store.leaves = n;
    if (log_store.cap < 2 * n + 1) {
        log_store.cap = 2 * n + 1;
        log_store.hashes = realloc(log_store.hashes, log_store.cap * sizeof(merkle_hash));
    }
    for (uint64_t i = 0; i < n; i++) {
        merkle_hash leaf, out[MERKLE_MAX_WRITE];
        char data[64];
        size_t count;

        merkle_leaf_hash((const uint8_t *)data, record(i, data, sizeof(data)), &leaf);
        merkle_edge_append(edge, &leaf, out, &count, NULL);
        memcpy(log_store.hashes + log_store.count, out, count * sizeof(merkle_hash));
        log_store.count += count;
    }
    merkle_edge_free(edge);
}

static void put_proof(merkle_result r, const merkle_hash *proof, size_t len)
{
    if (r != MERKLE_OK) {
        printf("fail %s", merkle_result_str(r));
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (i > 0)
            putchar(' ');
        put_hex(proof[i].bytes, 32);
    }
}

static size_t get_proof(char **save, merkle_hash *proof, bool *ok)
{
    size_t len = 0;
    char *w;

    while ((w = strtok_r(NULL, " ", save)) != NULL) {
        if (len == MERKLE_MAX_PROOF + 1 || !get_hex(w, &proof[len])) {
            *ok = false;
            return 0;
        }
        len++;
    }
    return len;
}

static void request(char *line)
{
    char *save = NULL;
    char *verb = strtok_r(line, " ", &save);
    char *a1 = strtok_r(NULL, " ", &save);
    char *a2 = a1 ? strtok_r(NULL, " ", &save) : NULL;
    char *a3 = a2 ? strtok_r(NULL, " ", &save) : NULL;
    uint64_t x = a1 ? strtoull(a1, NULL, 10) : 0, y = a2 ? strtoull(a2, NULL, 10) : 0;
    merkle_hash h, proof[MERKLE_MAX_PROOF + 1];
    size_t len;

    if (verb == NULL) {
        fprintf(stderr, "tlog_interop: empty request\n");
        exit(2);
    }
    if (strcmp(verb, "leaves") == 0) {
        build(x);
        printf("ok");
    } else if (strcmp(verb, "stored") == 0) {
        if (x < log_store.count)
            put_hex(log_store.hashes[x].bytes, 32);
        else
            printf("fail beyond the store");
    } else if (strcmp(verb, "root") == 0) {
        merkle_result r = merkle_tree_hash(x, store_read, &log_store, &h);
        put_proof(r, &h, 1);
    } else if (strcmp(verb, "incl") == 0) {
        merkle_result r = merkle_prove_inclusion(x, y, store_read, &log_store, proof, &len);
        put_proof(r, proof, len);
    } else if (strcmp(verb, "cons") == 0) {
        merkle_result r = merkle_prove_consistency(x, y, store_read, &log_store, proof, &len);
        put_proof(r, proof, len);
    } else if (strcmp(verb, "tile") == 0 || strcmp(verb, "bundle") == 0 ||
               strcmp(verb, "path") == 0) {
        bool bundle = strcmp(verb, "bundle") == 0;
        tiles_tile t;
        static uint8_t data[TILES_WIDTH * (2 + 64)];

        if (bundle)
            t = (tiles_tile){TILES_ENTRIES, x, (unsigned)y};
        else
            t = (tiles_tile){(int)strtol(a1, NULL, 10), y,
                             a3 ? (unsigned)strtoul(a3, NULL, 10) : 0};
        if (strcmp(verb, "path") == 0) {
            char path[TILES_PATH_MAX];
            if (tiles_path(&t, path) > 0)
                printf("%s", path);
            else
                printf("fail");
        } else if (bundle) {
            size_t used = 0;
            for (unsigned i = 0; i < t.width; i++) {
                char rec[64];
                size_t n = record(t.index * TILES_WIDTH + i, rec, sizeof(rec));
                tiles_bundle_add(data, sizeof(data), &used, (const uint8_t *)rec, n);
            }
            put_hex(data, used);
        } else if (tiles_read(&t, store_read, &log_store, data) == MERKLE_OK) {
            put_hex(data, (size_t)t.width * 32);
        } else {
            printf("fail");
        }
    } else if (strcmp(verb, "grown") == 0) {
        size_t n = tiles_grown(x, y, NULL, 0);
        tiles_tile *t = calloc(n + 1, sizeof(*t));
        tiles_grown(x, y, t, n);
        for (size_t i = 0; i < n; i++)
            printf("%s%d/%" PRIu64 "/%u", i ? " " : "", t[i].level, t[i].index, t[i].width);
        free(t);
    } else if (strcmp(verb, "vincl") == 0 || strcmp(verb, "vcons") == 0) {
        char *a4 = a3 ? strtok_r(NULL, " ", &save) : NULL;
        merkle_hash h2;
        bool ok = get_hex(a3, &h) && get_hex(a4, &h2);
        merkle_result r;

        len = get_proof(&save, proof, &ok);
        if (!ok)
            r = MERKLE_RANGE;
        else if (verb[1] == 'i')
            r = merkle_verify_inclusion(x, y, &h, proof, len, &h2);
        else
            r = merkle_verify_consistency(x, y, &h, &h2, proof, len);
        if (r == MERKLE_OK)
            printf("ok");
        else
            printf("fail %s", merkle_result_str(r));
    } else if (strcmp(verb, "genkey") == 0) {
        note_signer *s;
        note_verifier *v;
        char skey[NOTE_SKEY_MAX], vkey[NOTE_VKEY_MAX];

        if (a1 == NULL || note_signer_generate(a1, strlen(a1), &s) != NOTE_OK) {
            printf("fail");
        } else {
            v = note_signer_verifier(s);
            note_signer_text(s, skey);
            note_verifier_text(v, vkey);
            printf("%s %s", skey, vkey);
            note_verifier_free(v);
            note_signer_free(s);
        }
    } else if (strcmp(verb, "sign") == 0) {
        note_signer *s = NULL;
        long n = a2 ? get_b64(a2) : -1;
        note_result r = a1 ? note_signer_parse(a1, strlen(a1), &s) : NOTE_MALFORMED;
        char *note;
        size_t nlen;

        if (r == NOTE_OK && n >= 0)
            r = note_sign(a2, (size_t)n, &s, 1, &note, &nlen);
        if (r != NOTE_OK || n < 0) {
            printf("fail %s", note_result_str(r));
        } else {
            put_b64(note, nlen);
            free(note);
        }
        note_signer_free(s);
    } else if (strcmp(verb, "open") == 0) {
        note_verifier *known[8];
        bool signed_by[8];
        size_t nknown = 0, unknown = 0, text_len = 0;
        long n = a1 ? get_b64(a1) : -1;
        note_result r = NOTE_OK;

        for (char *k = a2; k != NULL && nknown < 8;
             k = nknown == 1 ? a3 : strtok_r(NULL, " ", &save)) {
            r = note_verifier_parse(k, strlen(k), &known[nknown]);
            if (r != NOTE_OK)
                break;
            nknown++;
        }
        if (r == NOTE_OK && n >= 0)
            r = note_open(a1, (size_t)n, known, nknown, &text_len, signed_by, &unknown);
        if (r != NOTE_OK || n < 0) {
            printf("fail %s", note_result_str(r));
        } else {
            printf("ok ");
            put_b64(a1, text_len);
            printf(" %zu ", unknown);
            for (size_t i = 0; i < nknown; i++)
                putchar(signed_by[i] ? '1' : '0');
        }
        for (size_t i = 0; i < nknown; i++)
            note_verifier_free(known[i]);
    } else if (strcmp(verb, "checkpoint") == 0) {
        checkpoint c;
        char text[CHECKPOINT_MAX_LEN + 1];
        size_t n;

        memset(&c, 0, sizeof(c));
        if (a1 != NULL && strlen(a1) <= CHECKPOINT_ORIGIN_MAX)
            snprintf(c.origin, sizeof(c.origin), "%s", a1);
        c.size = y;
        if (!get_hex(a3, &c.root) || (n = checkpoint_format(&c, text, sizeof(text))) == 0)
            printf("fail");
        else
            put_b64(text, n);
    } else if (strcmp(verb, "cparse") == 0) {
        checkpoint c;
        long n = a1 ? get_b64(a1) : -1;

        if (n < 0 || !checkpoint_parse(a1, (size_t)n, &c)) {
            printf("fail");
        } else {
            put_b64(c.origin, strlen(c.origin));
            printf(" %" PRIu64 " ", c.size);
            put_hex(c.root.bytes, 32);
        }
    } else {
        fprintf(stderr, "tlog_interop: unknown request %s\n", verb);
        exit(2);
    }
    putchar('\n');
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        request(line);
    }
    free(line);
    free(log_store.hashes);
    return ferror(stdout) ? 1 : 0;
}
