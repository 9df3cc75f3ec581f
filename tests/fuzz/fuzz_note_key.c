/*
 * note keys: verifier and signer key texts parse only when they are the one
 * spelling of a key, which is then written back byte for byte.
 */
#include "common/note_sign.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    note_verifier *v = NULL;
    note_signer *s = NULL;

    if (note_verifier_parse(text, size, &v) == NOTE_OK) {
        char back[NOTE_VKEY_MAX];
        size_t n = note_verifier_text(v, back);
        if (n != size || memcmp(back, text, size) != 0)
            abort();
        note_verifier_free(v);
    } else if (v != NULL) {
        abort();
    }
    if (note_signer_parse(text, size, &s) == NOTE_OK) {
        char back[NOTE_SKEY_MAX];
        size_t n = note_signer_text(s, back);
        note_verifier *from = note_signer_verifier(s);
        if (n != size || memcmp(back, text, size) != 0 || from == NULL ||
            note_verifier_id(from) != note_signer_id(s))
            abort();
        OPENSSL_cleanse(back, sizeof(back));
        note_verifier_free(from);
        note_signer_free(s);
    } else if (s != NULL) {
        abort();
    }
    return 0;
}
