#include "daemon/http_target.h"

#include <string.h>
#include <strings.h>

/* RFC 3986: a scheme starts with a letter, then letters, digits, + - . */
static size_t scheme_len(const char *s)
{
    if (!((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z'))
        return 0;
    size_t n = 1;
    while (((s[n] | 0x20) >= 'a' && (s[n] | 0x20) <= 'z') || (s[n] >= '0' && s[n] <= '9') ||
           s[n] == '+' || s[n] == '-' || s[n] == '.')
        n++;
    return s[n] == ':' ? n : 0;
}

/*
 * A byte of a host and port as Host may carry it: unreserved, sub-delims,
 * ':' and the brackets of an IP literal (RFC 3986 section 3.2.2). '%' is
 * left out: a percent-encoded host is no host a client names this server
 * by, and without it the target's first bytes survive the decoding of the
 * path unchanged.
 */
static bool authority_byte(unsigned char c)
{
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return true;
    if (c >= '0' && c <= '9')
        return true;
    return c != '\0' && strchr("-._~!$&'()*+,;=:[]", c) != NULL;
}

static void bad(http_target *out, const char *reason)
{
    out->form = HTTP_TARGET_BAD;
    out->reason = reason;
}

void http_target_parse(const char *target, http_target *out)
{
    *out = (http_target){.form = HTTP_TARGET_ORIGIN};
    if (target[0] == '/')
        return;
    size_t scheme = scheme_len(target);
    if (scheme == 0 || strncmp(target + scheme, "://", 3) != 0) {
        bad(out, "The request target is neither a path nor an absolute http or https URL.");
        return;
    }
    if (!((scheme == 4 && strncasecmp(target, "http", 4) == 0) ||
          (scheme == 5 && strncasecmp(target, "https", 5) == 0))) {
        bad(out, "An absolute request target must be an http or https URL.");
        return;
    }
    const char *authority = target + scheme + 3;
    size_t len = strcspn(authority, "/?#");
    if (len == 0) {
        bad(out, "The absolute request target names no host.");
        return;
    }
    if (memchr(authority, '@', len) != NULL) {
        bad(out, "The absolute request target carries user information, which is not taken.");
        return;
    }
    if (len > HTTP_TARGET_AUTHORITY_MAX) {
        bad(out, "The host of the absolute request target is too long.");
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (!authority_byte((unsigned char)authority[i])) {
            bad(out, "The host of the absolute request target is not valid.");
            return;
        }
    }
    if (authority[len] == '#') {
        bad(out, "A request target carries no fragment.");
        return;
    }
    out->form = HTTP_TARGET_ABSOLUTE;
    out->prefix_len = scheme + 3 + len;
    out->authority = authority;
    out->authority_len = len;
    out->empty_path = authority[len] != '/';
}
