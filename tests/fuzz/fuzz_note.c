/*
 * note: opening arbitrary bytes as a signed note never crashes and reports
 * only what holds, and text that can be signed opens again to the same
 * text, and fails once changed.
 */
#include "common/note_sign.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static note_signer *signer;
static note_verifier *known[2];

static void setup(void)
{
    static const uint8_t seed[32] = {7};
    static const char peter[] =
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

    if (signer != NULL)
        return;
    if (note_signer_new("fuzz.example/log", 16, seed, &signer) != NOTE_OK ||
        (known[0] = note_signer_verifier(signer)) == NULL ||
        note_verifier_parse(peter, strlen(peter), &known[1]) != NOTE_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *msg = (const char *)data;
    size_t text_len = 0, unknown = 0, len;
    bool signed_by[2];
    note_result r;
    char *note;

    setup();
    r = note_open(msg, size, known, 2, &text_len, signed_by, &unknown);
    if (r == NOTE_OK) {
        /* A text that ends in a newline, then a blank line, signed by a known key. */
        if (text_len == 0 || text_len + 2 > size || msg[text_len - 1] != '\n' ||
            msg[text_len] != '\n' || !(signed_by[0] || signed_by[1]))
            abort();
    } else if (text_len != 0 || signed_by[0] || signed_by[1]) {
        abort();
    }

    /* The input as a text to sign: a note made of it opens to it again. */
    if (note_sign(msg, size, &signer, 1, &note, &len) == NOTE_OK) {
        r = note_open(note, len, known, 2, &text_len, signed_by, &unknown);
        if (r != NOTE_OK || text_len != size || memcmp(note, msg, size) != 0 || !signed_by[0] ||
            signed_by[1] || unknown != 0)
            abort();
        /* Any one byte changed in the signed text makes it fail. */
        if (size > 0) {
            note[size / 2] ^= 0x20;
            if (note_open(note, len, known, 2, &text_len, NULL, NULL) == NOTE_OK)
                abort();
        }
        free(note);
    }
    return 0;
}
