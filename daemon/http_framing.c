#include "daemon/http_framing.h"

#include "daemon/http_reply.h"

#include <string.h>
#include <strings.h>

void http_framing_init(http_framing *f)
{
    f->lengths = f->codings = f->hosts = 0;
    f->length = f->host = NULL;
    f->lengths_differ = f->chunked_only = f->bare_cr = false;
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
        if (strcasecmp(name, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
            f->chunked_only = f->codings++ == 0 && strcasecmp(value, "chunked") == 0;
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
