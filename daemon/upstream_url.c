#include "daemon/upstream_url.h"

#include <stdio.h>
#include <string.h>

/* What a path may hold literally (RFC 3986 pchar, '/' and '%'). */
static bool path_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("/-._~!$&'()*+,;=:@%", c) != NULL);
}

static bool host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

static bool ipv6_char(unsigned char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
           c == '.';
}

static bool valid_path(const char *p, size_t n)
{
    if (n == 0 || p[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!path_char((unsigned char)p[i]))
            return false;
    }
    return true;
}

/* HOST[:PORT] of an http(s) URL, n bytes at a. */
static int parse_authority(const char *a, size_t n, char *err, size_t errlen)
{
    if (memchr(a, '@', n) != NULL) {
        snprintf(err, errlen, "user information is not allowed in an upstream URL");
        return -1;
    }
    size_t host_end;
    if (n > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (close == NULL || close == a + 1) {
            snprintf(err, errlen, "the IPv6 address is not closed by ']'");
            return -1;
        }
        for (const char *p = a + 1; p < close; p++) {
            if (!ipv6_char((unsigned char)*p)) {
                snprintf(err, errlen, "'%.*s' is not an IPv6 address", (int)n, a);
                return -1;
            }
        }
        host_end = (size_t)(close - a) + 1;
    } else {
        host_end = 0;
        while (host_end < n && a[host_end] != ':') {
            if (!host_char((unsigned char)a[host_end])) {
                snprintf(err, errlen, "'%.*s' is not a host name or address", (int)n, a);
                return -1;
            }
            host_end++;
        }
    }
    if (host_end == 0) {
        snprintf(err, errlen, "the upstream URL names no host");
        return -1;
    }
    if (host_end == n)
        return 0;
    if (a[host_end] != ':' || host_end + 1 == n) {
        snprintf(err, errlen, "'%.*s' is not HOST:PORT", (int)n, a);
        return -1;
    }
    unsigned long port = 0;
    for (size_t i = host_end + 1; i < n; i++) {
        if (a[i] < '0' || a[i] > '9' || port > 65535) {
            snprintf(err, errlen, "the port of '%.*s' is not a number", (int)n, a);
            return -1;
        }
        port = port * 10 + (unsigned long)(a[i] - '0');
    }
    if (port == 0 || port > 65535) {
        snprintf(err, errlen, "the port of '%.*s' is not from 1 to 65535", (int)n, a);
        return -1;
    }
    return 0;
}

static int parse_http(const char *text, size_t scheme_len, upstream_url *out, char *err,
                      size_t errlen)
{
    const char *a = text + scheme_len;
    size_t rest = strlen(a);
    const char *slash = memchr(a, '/', rest);
    size_t alen = slash != NULL ? (size_t)(slash - a) : rest;
    if (strpbrk(a, "?#") != NULL) {
        snprintf(err, errlen, "an upstream URL has no query or fragment");
        return -1;
    }
    if (alen > UPSTREAM_HOST_MAX) {
        snprintf(err, errlen, "the host of the upstream URL is too long");
        return -1;
    }
    if (parse_authority(a, alen, err, errlen) != 0)
        return -1;
    memcpy(out->authority, a, alen);
    out->authority[alen] = '\0';
    snprintf(out->base, sizeof out->base, "%.*s%s", (int)scheme_len, text, out->authority);
    if (slash != NULL) {
        size_t plen = rest - alen;
        if (!valid_path(slash, plen)) {
            snprintf(err, errlen, "the path of the upstream URL has a character a URL cannot hold");
            return -1;
        }
        memcpy(out->path, slash, plen);
        out->path[plen] = '\0';
        out->has_path = true;
    }
    return 0;
}

static int parse_unix(const char *text, upstream_url *out, char *err, size_t errlen)
{
    const char *sock = text + strlen("unix:");
    /* unix:/run/app.sock or unix:/run/app.sock:/prefix, as nginx writes it. */
    const char *colon = strstr(sock, ":/");
    size_t slen = colon != NULL ? (size_t)(colon - sock) : strlen(sock);
    if (slen == 0 || sock[0] != '/') {
        snprintf(err, errlen, "a socket upstream is unix:/ABSOLUTE/PATH");
        return -1;
    }
    if (slen > UPSTREAM_SOCKET_MAX) {
        snprintf(err, errlen, "the socket path is longer than %d bytes", UPSTREAM_SOCKET_MAX);
        return -1;
    }
    for (size_t i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)sock[i];
        if (c < 0x20 || c == 0x7f) {
            snprintf(err, errlen, "the socket path has a control character");
            return -1;
        }
    }
    memcpy(out->socket, sock, slen);
    out->socket[slen] = '\0';
    snprintf(out->authority, sizeof out->authority, "localhost");
    snprintf(out->base, sizeof out->base, "http://localhost");
    if (colon != NULL) {
        const char *path = colon + 1;
        size_t plen = strlen(path);
        if (strpbrk(path, "?#") != NULL || !valid_path(path, plen)) {
            snprintf(err, errlen, "the path after the socket is not a URL path");
            return -1;
        }
        memcpy(out->path, path, plen + 1);
        out->has_path = true;
    }
    return 0;
}

int upstream_url_parse(const char *text, upstream_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t n = strlen(text);
    if (n == 0 || n > UPSTREAM_URL_MAX) {
        snprintf(err, errlen, "an upstream URL has 1 to %d characters", UPSTREAM_URL_MAX);
        return -1;
    }
    memcpy(out->text, text, n + 1);
    if (strncmp(text, "http://", 7) == 0) {
        out->scheme = UPSTREAM_HTTP;
        return parse_http(text, 7, out, err, errlen);
    }
    if (strncmp(text, "https://", 8) == 0) {
        out->scheme = UPSTREAM_HTTPS;
        return parse_http(text, 8, out, err, errlen);
    }
    if (strncmp(text, "unix:", 5) == 0) {
        out->scheme = UPSTREAM_UNIX;
        return parse_unix(text, out, err, errlen);
    }
    snprintf(err, errlen, "'%s' is not http://HOST[:PORT][/PATH], https://... or unix:/PATH", text);
    return -1;
}

bool upstream_url_prefix_valid(const char *prefix)
{
    size_t n = strlen(prefix);
    if (n > UPSTREAM_URL_MAX || !valid_path(prefix, n))
        return false;
    /* The protocol's own endpoints are never passed on. */
    return strncmp(prefix, "/_receipt/", 10) != 0 && strcmp(prefix, "/_receipt") != 0;
}

/* Appends n bytes of s to out, percent-encoding what a target may not hold
 * literally (controls, space, '#', non-ASCII); false if out is full. */
static bool append_target(char *out, size_t cap, size_t *len, const char *s, size_t n,
                          bool encode_reserved)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool literal =
            encode_reserved ? path_char(c) && c != '%' : c > 0x20 && c < 0x7f && c != '#';
        if (literal) {
            if (*len + 1 >= cap)
                return false;
            out[(*len)++] = (char)c;
        } else {
            if (*len + 3 >= cap)
                return false;
            out[(*len)++] = '%';
            out[(*len)++] = hex[c >> 4];
            out[(*len)++] = hex[c & 15];
        }
    }
    out[*len] = '\0';
    return true;
}

size_t upstream_url_target(const upstream_url *u, const char *prefix, const char *raw_target,
                           const char *path, char *out, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return 0;
    out[0] = '\0';
    const char *query = strchr(raw_target, '?');
    size_t raw_path_len = query != NULL ? (size_t)(query - raw_target) : strlen(raw_target);
    size_t prefix_len = strlen(prefix);
    if (!append_target(out, cap, &len, u->base, strlen(u->base), false))
        return 0;
    if (!u->has_path) {
        if (!append_target(out, cap, &len, raw_target, strlen(raw_target), false))
            return 0;
        return len;
    }
    const char *rest;
    size_t rest_len;
    bool encode_rest = false;
    if (raw_path_len >= prefix_len && memcmp(raw_target, prefix, prefix_len) == 0) {
        rest = raw_target + prefix_len;
        rest_len = raw_path_len - prefix_len;
    } else {
        /* The client encoded what the prefix spells out: the rest of the
         * decoded path, encoded again. */
        size_t path_len = strlen(path);
        if (path_len < prefix_len || memcmp(path, prefix, prefix_len) != 0)
            return 0;
        rest = path + prefix_len;
        rest_len = path_len - prefix_len;
        encode_rest = true;
    }
    /* The prefix and the URL's path are joined with one '/' between them
     * whether either ends with one or not: "/" to http://h/app sends /x as
     * /app/x (not /appx), "/api" to http://h/v1/ sends /api/x as /v1/x (not
     * /v1//x). */
    size_t path_len = strlen(u->path);
    bool path_slash = u->path[path_len - 1] == '/';
    bool prefix_slash = prefix_len > 0 && prefix[prefix_len - 1] == '/';
    if (rest_len > 0 && path_slash && !prefix_slash && rest[0] == '/') {
        rest++;
        rest_len--;
    }
    if (!append_target(out, cap, &len, u->path, path_len, false))
        return 0;
    if (rest_len > 0 && !path_slash && prefix_slash &&
        !append_target(out, cap, &len, "/", 1, false))
        return 0;
    if (!append_target(out, cap, &len, rest, rest_len, encode_rest))
        return 0;
    if (query != NULL && !append_target(out, cap, &len, query, strlen(query), false))
        return 0;
    return len;
}
