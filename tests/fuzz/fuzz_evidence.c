/*
 * Fuzzes what libreceipt reads of the evidence log from servers and files it
 * does not trust: a confirmation's proof (whose checkpoint's signatures are
 * read when a log key is given), an evidence bundle, and the log keys given
 * to check them. The first byte picks which; none may crash, and a made-up
 * input never checks.
 */
#include "receipt/receipt.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A receipt whose payload names a delivery; its signature does not matter here. */
#define RECEIPT                                                                                    \
    "eyJhbGciOiJFUzI1NiJ9."                                                                        \
    "eyJkZWxpdmVyeSI6IjAxOTAwMDAwLTAwMDAtNzAwMC04MDAwLTAwMDAwMDAwMDAwMSJ9.c2ln"

/* docs/evidence.md's example log key. */
#define LOG_KEY                                                                                    \
    "deliveries.example.com/_receipt/log+986b3c3d+AU/QmczUfXiT3+nsJEFOyw2bVCAjKq0w2RxGW+M8vmXE"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static receipt_client *c;
    if (c == NULL && receipt_client_new(&c) != RECEIPT_OK)
        abort();
    if (size == 0)
        return 0;
    char *text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *report = NULL;
    if (data[0] & 1) {
        /* With a log key given, the bundle's key changes are followed too. */
        receipt_result r = receipt_verify_bundle(c, text, data[0] & 2 ? LOG_KEY : NULL, &report);
        /* A bundle must carry a receipt signed by a key it names, or none;
         * either way its checkpoints must open: random bytes never do. */
        if (r == RECEIPT_OK && report == NULL)
            abort();
    } else if (data[0] & 4) {
        /* The log keys given (one a line): never a proof of "{}". */
        if (receipt_verify_proof(c, RECEIPT, "{}", text) == RECEIPT_OK)
            abort();
    } else if (receipt_verify_proof(c, RECEIPT, text, data[0] & 2 ? LOG_KEY "\n" LOG_KEY : NULL) ==
                   RECEIPT_OK &&
               strstr(text, "checkpoint") == NULL) {
        abort();
    }
    receipt_free(report);
    free(text);
    return 0;
}
