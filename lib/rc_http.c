#include "lib/rc_http.h"

#include "common/sjson.h"

#include <openssl/x509_vfy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RC_HTTP_USER_AGENT "libreceipt/" RECEIPT_VERSION

typedef struct rc_http_xfer {
    receipt_client *c;
    const rc_http_request *req;
    rc_http_response *resp;
    size_t cap;     /* for the collected body */
    bool oversized; /* a field or body went past its cap */
} rc_http_xfer;

void rc_http_response_clear(rc_http_response *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    free(resp->delivery);
    free(resp->repr_digest);
    free(resp->plugin);
    free(resp->ticket);
    free(resp->content_type);
    free(resp->effective_url);
    memset(resp, 0, sizeof(*resp));
    resp->retry_after_s = -1;
}

bool rc_http_retryable(long status)
{
    return status == 0 || status == 429 || (status >= 500 && status <= 599);
}

/* Forgets the fields of an earlier response (a redirect, a 100 Continue). */
static void rc_http_reset_fields(rc_http_response *resp)
{
    char **fields[] = {&resp->delivery, &resp->repr_digest, &resp->plugin, &resp->ticket,
                       &resp->content_type};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        free(*fields[i]);
        *fields[i] = NULL;
    }
    resp->retry_after_s = -1;
}

static size_t rc_http_on_header(char *data, size_t size, size_t nmemb, void *user)
{
    rc_http_xfer *x = user;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        rc_http_reset_fields(x->resp);
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (colon == NULL)
        return n;
    size_t name_len = (size_t)(colon - data);
    const char *v = colon + 1;
    const char *end = data + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);

    static const struct {
        const char *name;
        size_t off;
    } wanted[] = {
        {"receipt-delivery", offsetof(rc_http_response, delivery)},
        {"repr-digest", offsetof(rc_http_response, repr_digest)},
        {"receipt-plugin", offsetof(rc_http_response, plugin)},
        {"receipt-ticket", offsetof(rc_http_response, ticket)},
        {"content-type", offsetof(rc_http_response, content_type)},
        {"retry-after", 0},
    };
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        if (strlen(wanted[i].name) != name_len || strncasecmp(data, wanted[i].name, name_len))
            continue;
        if (vlen > RC_HTTP_FIELD_MAX) {
            x->oversized = true;
            return 0;
        }
        char *copy = strndup(v, vlen);
        if (copy == NULL)
            return 0;
        if (wanted[i].off == 0) {
            x->resp->retry_after_s = rc_http_parse_retry_after(copy, rc_now_ms());
            free(copy);
            return n;
        }
        char **slot = (char **)((char *)x->resp + wanted[i].off);
        /* A field sent twice is ambiguous; keep none rather than guess. */
        if (*slot != NULL) {
            free(copy);
            copy = strdup("");
            if (copy == NULL)
                return 0;
        }
        free(*slot);
        *slot = copy;
        return n;
    }
    return n;
}

static int rc_http_collect(rc_http_xfer *x, const char *data, size_t n, size_t cap)
{
    rc_http_response *r = x->resp;
    if (r->body_len + n > cap) {
        x->oversized = true;
        return -1;
    }
    char *grown = realloc(r->body, r->body_len + n + 1);
    if (grown == NULL)
        return -1;
    memcpy(grown + r->body_len, data, n);
    r->body = grown;
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}

static size_t rc_http_on_body(char *data, size_t size, size_t nmemb, void *user)
{
    rc_http_xfer *x = user;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200 && x->req->sink != NULL) {
        if (x->req->sink(data, n, x->req->sink_user) != 0) {
            x->resp->sink_stopped = true;
            return 0;
        }
        return n;
    }
    size_t cap = status == 200 ? x->req->body_cap : RC_HTTP_ERROR_BODY_MAX;
    if (status != 200 && x->resp->body_len + n > cap) {
        /* An error body is only for the message: keep its start. */
        size_t room = cap - x->resp->body_len;
        if (room > 0 && rc_http_collect(x, data, room, cap) != 0)
            return 0;
        return n;
    }
    return rc_http_collect(x, data, n, cap) == 0 ? n : 0;
}

/* Whether curl's TLS backend is OpenSSL, whose verification codes
 * CURLINFO_SSL_VERIFYRESULT then reports. */
static bool rc_http_backend_is_openssl(void)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    return v != NULL && v->ssl_version != NULL && strncmp(v->ssl_version, "OpenSSL/", 8) == 0;
}

static bool rc_http_is_tls_error(CURLcode cc)
{
    switch (cc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return true;
    default:
        return false;
    }
}

/*
 * Says what failed in a TLS connection, in words that do not depend on
 * curl's generic strings (one of which blames "SSL peer certificate or SSH
 * remote key"): which host, and whether its certificate's issuer is
 * unknown, its name does not match, it expired, or the handshake broke.
 */
static receipt_result rc_http_tls_failure(receipt_client *c, CURL *h, CURLcode cc, const char *url,
                                          const char *detail)
{
    char host[256] = "the server";
    CURLU *u = curl_url();
    char *eff = NULL, *name = NULL;
    if (u != NULL && curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK &&
        eff != NULL && curl_url_set(u, CURLUPART_URL, eff, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &name, 0) == CURLUE_OK)
        snprintf(host, sizeof(host), "%s", name);
    curl_free(name);
    curl_url_cleanup(u);

    char what[384];
    long verify = 0;
    if (cc == CURLE_PEER_FAILED_VERIFICATION && rc_http_backend_is_openssl() &&
        curl_easy_getinfo(h, CURLINFO_SSL_VERIFYRESULT, &verify) == CURLE_OK) {
        /* curl checks the name itself after OpenSSL's chain check, and
         * reports a mismatch as an unspecified error with its own words. */
        bool name_mismatch = verify == X509_V_ERR_HOSTNAME_MISMATCH ||
                             verify == X509_V_ERR_IP_ADDRESS_MISMATCH ||
                             ((verify == X509_V_OK || verify == X509_V_ERR_UNSPECIFIED) &&
                              strstr(detail, "subject name") != NULL);
        if (name_mismatch)
            verify = X509_V_ERR_HOSTNAME_MISMATCH;
        switch (verify) {
        case X509_V_ERR_HOSTNAME_MISMATCH:
            snprintf(what, sizeof(what), "the certificate is not valid for the host name %s", host);
            break;
        case X509_V_OK:
        case X509_V_ERR_UNSPECIFIED:
            snprintf(what, sizeof(what), "the certificate of %s did not verify (%s)", host,
                     detail[0] ? detail : "no detail");
            break;
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            snprintf(what, sizeof(what),
                     "the certificate of %s was issued by an unknown authority (%s)", host,
                     X509_verify_cert_error_string(verify));
            break;
        case X509_V_ERR_CERT_HAS_EXPIRED:
            snprintf(what, sizeof(what), "the certificate of %s has expired", host);
            break;
        case X509_V_ERR_CERT_NOT_YET_VALID:
            snprintf(what, sizeof(what), "the certificate of %s is not valid yet", host);
            break;
        case X509_V_ERR_CERT_REVOKED:
            snprintf(what, sizeof(what), "the certificate of %s has been revoked", host);
            break;
        default:
            snprintf(what, sizeof(what), "the certificate of %s did not verify (%s)", host,
                     X509_verify_cert_error_string(verify));
            break;
        }
    } else if (cc == CURLE_PEER_FAILED_VERIFICATION) {
        snprintf(what, sizeof(what), "the certificate of %s did not verify (%s)", host,
                 detail[0] ? detail : "no detail");
    } else if (cc == CURLE_SSL_CACERT_BADFILE) {
        snprintf(what, sizeof(what), "the trusted CA certificates cannot be read (%s)",
                 detail[0] ? detail : "no detail");
    } else {
        snprintf(what, sizeof(what), "the handshake with %s failed (%s)", host,
                 detail[0] ? detail : "no detail");
    }
    return rc_fail(c, RECEIPT_ERR_TLS, "%s: TLS: %s", url, what);
}

static int rc_http_on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                               curl_off_t ulnow)
{
    rc_http_xfer *x = user;
    if (x->c->progress == NULL)
        return 0;
    /* Called before the answer too (with zeros), so that a caller can stop
     * a transfer that is still connecting. */
    long status = 0;
    curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200)
        dlnow = dltotal = 0;
    if (x->c->progress((uint64_t)(dlnow < 0 ? 0 : dlnow), (uint64_t)(dltotal < 0 ? 0 : dltotal),
                       x->c->progress_user) != 0) {
        x->resp->progress_stopped = true;
        return 1;
    }
    return 0;
}

receipt_result rc_http_perform(receipt_client *c, const rc_http_request *req,
                               rc_http_response *resp)
{
    rc_http_response_clear(resp);
    rc_http_xfer x = {.c = c, .req = req, .resp = resp, .cap = req->body_cap};
    struct curl_slist *headers = NULL;
    char line[RC_HTTP_FIELD_MAX];
    char curl_error[CURL_ERROR_SIZE] = "";
    receipt_result r = RECEIPT_ERR_INTERNAL;
    CURL *h = c->curl;

    /* Reset keeps the connection cache, so connections are reused. */
    curl_easy_reset(h);
    if (req->client_key != NULL) {
        snprintf(line, sizeof(line), "Receipt-Client-Key: %s", req->client_key);
        if ((headers = curl_slist_append(headers, line)) == NULL)
            goto nomem;
    }
    if (req->accept != NULL) {
        snprintf(line, sizeof(line), "Accept: %s", req->accept);
        struct curl_slist *h2 = curl_slist_append(headers, line);
        if (h2 == NULL)
            goto nomem;
        headers = h2;
    }
    if (req->body != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s",
                 req->content_type ? req->content_type : "application/octet-stream");
        struct curl_slist *h2 = curl_slist_append(headers, line);
        if (h2 == NULL)
            goto nomem;
        headers = h2;
        /* No "Expect: 100-continue" round trip for a small body. */
        if ((h2 = curl_slist_append(headers, "Expect:")) == NULL)
            goto nomem;
        headers = h2;
    }

    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, RC_HTTP_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, rc_http_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rc_http_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    /* A delivery is per request: no content coding that would change the
     * bytes whose digest is checked. */
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_error);
    if (c->ca_file != NULL || c->ca_path != NULL) {
        /* Named CAs replace the system's (both its bundle and directory). */
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
        curl_easy_setopt(h, CURLOPT_CAPATH, c->ca_path);
    }
    if (req->follow) {
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)RC_HTTP_MAX_REDIRECTS);
        /* Never from https down to http: what a redirect reaches decides
         * where the key set comes from. */
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR,
                         strncasecmp(req->url, "https:", 6) == 0 ? "https" : "http,https");
    }
    if (req->body != NULL) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    }
    if (req->download) {
        long stall_s = (c->stall_ms + 999) / 1000;
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall_s);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, rc_http_on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
    } else {
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->request_ms);
    }

    rc_log(c, RECEIPT_LOG_DEBUG, "%s %s", req->body != NULL ? "POST" : "GET", req->url);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    char *eff = NULL;
    if (curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff != NULL &&
        (resp->effective_url = strdup(eff)) == NULL)
        goto nomem;

    if (x.oversized) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "%s: response field or body too large", req->url);
        goto out;
    }
    if (resp->sink_stopped || resp->progress_stopped) {
        r = rc_fail(c, RECEIPT_ERR_ABORTED, "%s: transfer stopped", req->url);
        goto out;
    }
    if (cc != CURLE_OK) {
        /* An answer that came but broke off is no answer. */
        resp->status = 0;
        if (rc_http_is_tls_error(cc))
            r = rc_http_tls_failure(c, h, cc, req->url, curl_error);
        else
            r = rc_fail(c, cc == CURLE_WRITE_ERROR ? RECEIPT_ERR_IO : RECEIPT_ERR_NETWORK, "%s: %s",
                        req->url, curl_error[0] ? curl_error : curl_easy_strerror(cc));
        goto out;
    }
    r = RECEIPT_OK;
    goto out;
nomem:
    r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
out:
    /* The handle must not keep pointers into this call's stack. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);
    return r;
}

int rc_http_parse_repr_digest(const char *value, uint8_t out[32])
{
    /* A dictionary of byte sequences (RFC 8941): members split by commas,
     * none of which can appear inside ":base64:". */
    const char *p = value;
    while (p != NULL && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        static const char prefix[] = "sha-256=:";
        if (len > sizeof(prefix) && strncmp(p, prefix, sizeof(prefix) - 1) == 0 &&
            p[len - 1] == ':') {
            const char *b = p + sizeof(prefix) - 1;
            size_t blen = len - (sizeof(prefix) - 1) - 1;
            /* Standard base64 with padding, 44 characters for 32 bytes. */
            if (blen != 44 || b[43] != '=')
                return -1;
            uint32_t acc = 0;
            int bits = 0;
            size_t o = 0;
            for (size_t i = 0; i < 43; i++) {
                int v;
                char ch = b[i];
                if (ch >= 'A' && ch <= 'Z')
                    v = ch - 'A';
                else if (ch >= 'a' && ch <= 'z')
                    v = ch - 'a' + 26;
                else if (ch >= '0' && ch <= '9')
                    v = ch - '0' + 52;
                else if (ch == '+')
                    v = 62;
                else if (ch == '/')
                    v = 63;
                else
                    return -1;
                acc = (acc << 6) | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                    bits -= 8;
                    if (o >= 32)
                        return -1;
                    out[o++] = (uint8_t)(acc >> bits);
                    acc &= (1u << bits) - 1;
                }
            }
            return o == 32 && acc == 0 ? 0 : -1;
        }
        p = end;
    }
    return -1;
}

long rc_http_parse_retry_after(const char *value, uint64_t now_ms)
{
    while (*value == ' ')
        value++;
    if (*value >= '0' && *value <= '9') {
        char *end = NULL;
        unsigned long long s = strtoull(value, &end, 10);
        while (end && *end == ' ')
            end++;
        if (end == NULL || *end != '\0' || s > 365ull * 24 * 3600)
            return -1;
        return (long)s;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0')
        return -1;
    time_t at = timegm(&tm);
    time_t now = (time_t)(now_ms / 1000);
    return at <= now ? 0 : (long)(at - now);
}

void rc_http_describe_error(const rc_http_response *resp, char *out, size_t outlen)
{
    json_t *obj = NULL;
    if (resp->body != NULL && resp->body_len > 0)
        obj = sjson_parse_object(resp->body, resp->body_len, SJSON_MAX_DEPTH, NULL, 0);
    const char *code = obj ? sjson_string(obj, "error", NULL) : NULL;
    const char *msg = obj ? sjson_string(obj, "message", NULL) : NULL;
    if (code != NULL && msg != NULL)
        snprintf(out, outlen, "HTTP %ld %s: %s", resp->status, code, msg);
    else if (code != NULL)
        snprintf(out, outlen, "HTTP %ld %s", resp->status, code);
    else
        snprintf(out, outlen, "HTTP %ld", resp->status);
    /* The server's words go to a terminal: no control characters. */
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    json_decref(obj);
}
