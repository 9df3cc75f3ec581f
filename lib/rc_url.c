#include "lib/rc_url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool rc_url_host_is_loopback(const char *host)
{
    char buf[RC_ORIGIN_MAX];
    size_t n = strlen(host);
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, host, n + 1);
    if (buf[n - 1] == '.') /* "localhost." is the same name, fully qualified */
        buf[--n] = '\0';
    if (strcasecmp(buf, "localhost") == 0)
        return true;
    if (n > 10 && strcasecmp(buf + n - 10, ".localhost") == 0)
        return true; /* RFC 6761: names under localhost resolve to loopback */
    struct in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    char *v6 = buf;
    if (v6[0] == '[' && n > 2 && v6[n - 1] == ']') {
        v6[n - 1] = '\0';
        v6++;
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET6, v6, &a6) == 1) {
        static const uint8_t loop6[16] = {[15] = 1};
        if (memcmp(a6.s6_addr, loop6, 16) == 0)
            return true;
        /* ::ffff:127.x.y.z, IPv4-mapped loopback */
        static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
        return memcmp(a6.s6_addr, mapped, 12) == 0 && a6.s6_addr[12] == 127;
    }
    return false;
}

/* The parsed parts of an absolute http(s) URL. */
typedef struct rc_url_parts {
    char scheme[8];
    char host[RC_ORIGIN_MAX];
    char port[8]; /* "" for the scheme's default */
} rc_url_parts;

static rc_url_verdict rc_url_parse(const char *url, rc_url_parts *parts)
{
    if (url == NULL || strlen(url) >= RC_URL_MAX)
        return RC_URL_MALFORMED;
    rc_url_verdict v = RC_URL_MALFORMED;
    char *scheme = NULL, *host = NULL, *port = NULL;
    CURLU *u = curl_url();
    if (u == NULL)
        return RC_URL_MALFORMED;
    /* No guessing of a scheme: "example.com/x" is not a URL here. */
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
        goto out;
    for (char *p = scheme; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        v = RC_URL_SCHEME;
        goto out;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
        goto out;
    if (strlen(host) >= sizeof(parts->host))
        goto out;
    CURLUcode pc = curl_url_get(u, CURLUPART_PORT, &port, 0);
    if (pc != CURLUE_OK && pc != CURLUE_NO_PORT)
        goto out;
    snprintf(parts->scheme, sizeof(parts->scheme), "%s", scheme);
    for (size_t i = 0; host[i]; i++)
        parts->host[i] = (char)tolower((unsigned char)host[i]);
    parts->host[strlen(host)] = '\0';
    parts->port[0] = '\0';
    if (port != NULL) {
        bool is_default = (strcmp(scheme, "http") == 0 && strcmp(port, "80") == 0) ||
                          (strcmp(scheme, "https") == 0 && strcmp(port, "443") == 0);
        if (!is_default) {
            if (strlen(port) >= sizeof(parts->port))
                goto out;
            snprintf(parts->port, sizeof(parts->port), "%s", port);
        }
    }
    v = RC_URL_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return v;
}

rc_url_verdict rc_url_check(const char *url, bool *https, char *host)
{
    rc_url_parts parts;
    rc_url_verdict v = rc_url_parse(url, &parts);
    if (v != RC_URL_OK)
        return v;
    if (https != NULL)
        *https = strcmp(parts.scheme, "https") == 0;
    if (host != NULL)
        memcpy(host, parts.host, strlen(parts.host) + 1);
    return RC_URL_OK;
}

rc_url_verdict rc_url_confirm_allowed(const char *url, bool allow_insecure, char *err,
                                      size_t errlen)
{
    rc_url_parts parts;
    rc_url_verdict v = rc_url_parse(url, &parts);
    switch (v) {
    case RC_URL_OK:
        break;
    case RC_URL_SCHEME:
        snprintf(err, errlen, "confirm URL is neither http nor https");
        return v;
    default:
        snprintf(err, errlen, "confirm URL is not a valid absolute URL");
        return RC_URL_MALFORMED;
    }
    if (strcmp(parts.scheme, "https") == 0 || allow_insecure || rc_url_host_is_loopback(parts.host))
        return RC_URL_OK;
    snprintf(err, errlen,
             "refusing to send a confirmation over plain http to %s "
             "(allow insecure confirmation to override)",
             parts.host);
    return RC_URL_INSECURE;
}

int rc_url_origin(const char *url, char origin[RC_ORIGIN_MAX])
{
    rc_url_parts parts;
    if (rc_url_parse(url, &parts) != RC_URL_OK)
        return -1;
    int n = snprintf(origin, RC_ORIGIN_MAX, "%s://%s%s%s", parts.scheme, parts.host,
                     parts.port[0] ? ":" : "", parts.port);
    return n > 0 && n < RC_ORIGIN_MAX ? 0 : -1;
}
