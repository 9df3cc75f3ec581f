#include "daemon/http_framing.h"

#include "daemon/http_reply.h"

#include <string.h>
#include <strings.h>

void http_framing_init(http_framing *f)
{
    f->lengths = f->codings = f->hosts = 0;
    f->length = f->host = NULL;
    f->lengths_differ = f->chunked_only = f->chunked_final = f->bare_cr = false;
}

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

/*
 * The codings of all Transfer-Encoding fields form one list, in order (RFC
 * 9110 section 5.3), whose empty elements count for nothing (section
 * 5.6.1). A field with a coding in it decides whether the last is chunked;
 * one without leaves that as it was. A chunked with parameters is not the
 * chunked coding, which has none (RFC 9112 section 7.1).
 */
static void note_codings(http_framing *f, const char *value)
{
    const char *end = value + strlen(value);
    while (end > value && (is_ows(end[-1]) || end[-1] == ','))
        end--;
    if (end == value)
        return; /* no coding in this field */
    const char *start = end;
    while (start > value && start[-1] != ',')
        start--;
    while (is_ows(*start))
        start++;
    f->chunked_final = (size_t)(end - start) == 7 && strncasecmp(start, "chunked", 7) == 0;
}

void http_framing_note(http_framing *f, const char *name, const char *value)
{
    if (value == NULL)
        value = "";
    if (strchr(name, '\r') != NULL || strchr(value, '\r') != NULL)
        f->bare_cr = true;
    /* By the first letter: most fields are compared with one name or none. */
    switch (name[0] | 0x20) {
    case 'c':
        if (strcasecmp(name, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
            if (f->lengths++ == 0)
                f->length = value;
            else if (strcmp(f->length, value) != 0)
                f->lengths_differ = true;
        }
        break;
    case 't':
        if (strcasecmp(name, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
            f->chunked_only = f->codings++ == 0 && strcasecmp(value, "chunked") == 0;
            note_codings(f, value);
        }
        break;
    case 'h':
        if (strcasecmp(name, MHD_HTTP_HEADER_HOST) == 0 && f->hosts++ == 0)
            f->host = value;
        break;
    default:
        break;
    }
}

static enum MHD_Result note_field(void *cls, enum MHD_ValueKind kind, const char *name,
                                  const char *value)
{
    (void)kind;
    http_framing_note(cls, name, value);
    return MHD_YES;
}

void http_framing_read(struct MHD_Connection *c, http_framing *f)
{
    http_framing_init(f);
    MHD_get_connection_values(c, MHD_HEADER_KIND, note_field, f);
}

static const http_framing_fault bare_cr = {400, "bad_header",
                                           "A header field holds a CR that does not end a line."};
static const http_framing_fault lengths_differ = {
    400, "conflicting_length", "Content-Length is given more than once, with different values."};
static const http_framing_fault length_and_coding = {
    400, "conflicting_length", "Content-Length and Transfer-Encoding cannot both frame a request."};
static const http_framing_fault coding_in_http10 = {
    400, "bad_transfer_coding",
    "Transfer-Encoding is not part of HTTP/1.0: the request's framing cannot be trusted."};
static const http_framing_fault chunked_not_final = {
    400, "bad_transfer_coding",
    "Transfer-Encoding does not end in chunked: the request body's end cannot be found."};
static const http_framing_fault unknown_coding = {
    501, "unsupported_transfer_coding", "The only transfer coding understood is chunked."};
static const http_framing_fault no_host = {400, "bad_host",
                                           "An HTTP/1.1 request needs a Host header."};
static const http_framing_fault two_hosts = {400, "bad_host", "Host is given more than once."};

const http_framing_fault *http_framing_check(const http_framing *f, const char *version)
{
    if (f->bare_cr)
        return &bare_cr;
    if (f->lengths_differ)
        return &lengths_differ;
    if (f->lengths > 0 && f->codings > 0)
        return &length_and_coding;
    /*
     * RFC 9112 section 6.1: "A server or client that receives an HTTP/1.0
     * message containing a Transfer-Encoding header field MUST treat the
     * message as if the framing is faulty, even if a Content-Length is
     * present, and close the connection after processing the message": an
     * HTTP/1.0 hop may have passed the chunked body on undecoded.
     */
    if (f->codings > 0 && strcmp(version, MHD_HTTP_VERSION_1_0) == 0)
        return &coding_in_http10;
    /*
     * Section 6.3, rule 4: "If a Transfer-Encoding header field is present
     * in a request and the chunked transfer coding is not the final
     * encoding, the message body length cannot be determined reliably; the
     * server MUST respond with the 400 (Bad Request) status code and then
     * close the connection." A field without a coding ends in none.
     */
    if (f->codings > 0 && !f->chunked_final)
        return &chunked_not_final;
    /*
     * With chunked last, the body's end is known, and what is left is a
     * coding this server does not decode (gzip, chunked; chunked twice;
     * the list split over fields, which libmicrohttpd does not join).
     * Section 6.1: "A server that receives a request message with a
     * transfer coding it does not understand SHOULD respond with 501 (Not
     * Implemented)."
     */
    if (f->codings > 0 && !f->chunked_only)
        return &unknown_coding;
    if (f->hosts != 1 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)
        return f->hosts == 0 ? &no_host : &two_hosts;
    return NULL;
}

struct MHD_Response *http_framing_response(const http_framing_fault *fault, size_t *len)
{
    struct MHD_Response *r =
        http_reply_error_response(fault->status, fault->code, fault->message, len);
    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    return r;
}
