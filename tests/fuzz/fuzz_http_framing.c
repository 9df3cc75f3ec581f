/* Fuzzes the request checks of every listener: the first line is the HTTP
 * version, each further line a field ("name:value"). A request is refused
 * exactly when its fields break a rule of http_framing.h, and then with a
 * status of 400 or 501 (which of them, for Transfer-Encoding) and a code
 * and message. */
#include "daemon/http_framing.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FIELDS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *names[FIELDS_MAX], *values[FIELDS_MAX];
    size_t n = 0;
    char *version = text;
    char *line = strchr(text, '\n');
    if (line != NULL)
        *line++ = '\0';
    while (line != NULL && n < FIELDS_MAX) {
        char *next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        if (colon != NULL) {
            *colon = '\0';
            names[n] = line;
            values[n++] = colon + 1;
        }
        line = next;
    }

    http_framing f;
    http_framing_init(&f);
    for (size_t i = 0; i < n; i++)
        http_framing_note(&f, names[i], i % 2 == 0 || values[i][0] != '\0' ? values[i] : NULL);
    const http_framing_fault *fault = http_framing_check(&f, version);

    /* The rules, read again from the fields themselves. */
    bool cr = false, lengths_differ = false, chunked_last = false;
    unsigned lengths = 0, codings = 0, hosts = 0;
    const char *length = NULL, *coding = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strchr(names[i], '\r') != NULL || strchr(values[i], '\r') != NULL)
            cr = true;
        if (strcasecmp(names[i], "Content-Length") == 0) {
            if (lengths++ == 0)
                length = values[i];
            else if (strcmp(length, values[i]) != 0)
                lengths_differ = true;
        }
        if (strcasecmp(names[i], "Transfer-Encoding") == 0) {
            if (codings++ == 0)
                coding = values[i];
            /* The field's last element that is not empty, if any, read forwards. */
            const char *last = NULL;
            size_t last_len = 0;
            for (const char *e = values[i];;) {
                size_t n = strcspn(e, ",");
                size_t lead = strspn(e, " \t");
                size_t len = n > lead ? n - lead : 0;
                while (len > 0 && (e[lead + len - 1] == ' ' || e[lead + len - 1] == '\t'))
                    len--;
                if (len > 0) {
                    last = e + lead;
                    last_len = len;
                }
                if (e[n] == '\0')
                    break;
                e += n + 1;
            }
            if (last != NULL)
                chunked_last = last_len == 7 && strncasecmp(last, "chunked", 7) == 0;
        }
        if (strcasecmp(names[i], "Host") == 0)
            hosts++;
    }
    bool framing = cr || lengths_differ || (lengths > 0 && codings > 0);
    bool unframed = codings > 0 && (strcmp(version, "HTTP/1.0") == 0 || !chunked_last);
    bool not_understood = codings > 0 && (codings > 1 || strcasecmp(coding, "chunked") != 0);
    bool bad =
        framing || unframed || not_understood || (hosts != 1 && strcmp(version, "HTTP/1.1") == 0);
    if (bad != (fault != NULL))
        abort();
    /* A body whose end is unknown is a 400 (RFC 9112 6.1, 6.3 rule 4); a
     * coding not understood where the end is known, a 501. */
    if (!framing && (unframed || not_understood) && fault->status != (unframed ? 400u : 501u))
        abort();
    if (fault != NULL) {
        if ((fault->status != 400 && fault->status != 501) || fault->code == NULL ||
            fault->code[0] == '\0' || fault->message == NULL || fault->message[0] == '\0')
            abort();
        size_t len = 0;
        struct MHD_Response *r = http_framing_response(fault, &len);
        if (r == NULL || len == 0)
            abort();
        MHD_destroy_response(r);
    }
    free(text);
    return 0;
}
