/*
 * rc_fetch: GET with the client's key, the body streamed and hashed, the
 * plug-in data opened and checked (docs/protocol.md sections 5 and 7).
 */
#include "lib/rc_delivery.h"

#include "common/b64.h"
#include "common/durable.h"
#include "common/sjson.h"
#include "lib/rc_client.h"
#include "lib/rc_http.h"
#include "lib/rc_jwks.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RC_FETCH_PLUGIN_MAX  JOSE_TOKEN_MAX
#define RC_FETCH_TICKET_MAX  512
#define RC_FETCH_PLUGIN_PATH "/_receipt/plugin/"

/* Where the body goes while it is hashed. */
typedef struct rc_fetch_sink {
    EVP_MD_CTX *md;
    uint64_t size;
    receipt_write_fn write; /* callback mode */
    void *user;
    int fd;          /* file mode, -1 otherwise */
    int write_errno; /* the file could not be written */
} rc_fetch_sink;

receipt_delivery *rc_delivery_new(void)
{
    receipt_delivery *d = calloc(1, sizeof(*d));
    if (d != NULL)
        d->status = RECEIPT_STATUS_RECEIVED;
    return d;
}

RECEIPT_API void receipt_delivery_free(receipt_delivery *d)
{
    if (d == NULL)
        return;
    OPENSSL_cleanse(d->k, sizeof(d->k));
    free(d->url);
    free(d->content_path);
    free(d->file);
    free(d->confirm_url);
    free(d->ticket);
    free(d->receipt);
    free(d->receipt_file);
    free(d->proof);
    free(d);
}

RECEIPT_API const char *receipt_status_name(receipt_status s)
{
    switch (s) {
    case RECEIPT_STATUS_RECEIVED:
        return "received";
    case RECEIPT_STATUS_CONFIRMED:
        return "confirmed";
    case RECEIPT_STATUS_CORRUPTED:
        return "corrupted";
    case RECEIPT_STATUS_SPOOLED:
        return "spooled";
    case RECEIPT_STATUS_REJECTED:
        return "rejected";
    }
    return "unknown";
}

RECEIPT_API const char *receipt_delivery_id(const receipt_delivery *d)
{
    return d ? d->id : NULL;
}

RECEIPT_API receipt_status receipt_delivery_status(const receipt_delivery *d)
{
    return d ? d->status : RECEIPT_STATUS_RECEIVED;
}

RECEIPT_API bool receipt_delivery_intact(const receipt_delivery *d)
{
    return d ? d->intact : false;
}

RECEIPT_API const char *receipt_delivery_url(const receipt_delivery *d)
{
    return d ? d->url : NULL;
}

RECEIPT_API const char *receipt_delivery_content_path(const receipt_delivery *d)
{
    return d ? d->content_path : NULL;
}

RECEIPT_API const char *receipt_delivery_sha256(const receipt_delivery *d)
{
    return d ? d->sha256 : NULL;
}

RECEIPT_API uint64_t receipt_delivery_size(const receipt_delivery *d)
{
    return d ? d->size : 0;
}

RECEIPT_API const char *receipt_delivery_expected_sha256(const receipt_delivery *d)
{
    return d ? d->expected_sha256 : NULL;
}

RECEIPT_API uint64_t receipt_delivery_expected_size(const receipt_delivery *d)
{
    return d ? d->expected_size : 0;
}

RECEIPT_API const char *receipt_delivery_file(const receipt_delivery *d)
{
    return d ? d->file : NULL;
}

RECEIPT_API const char *receipt_delivery_confirm_url(const receipt_delivery *d)
{
    return d ? d->confirm_url : NULL;
}

RECEIPT_API const char *receipt_delivery_receipt(const receipt_delivery *d)
{
    return d ? d->receipt : NULL;
}

RECEIPT_API const char *receipt_delivery_receipt_file(const receipt_delivery *d)
{
    return d ? d->receipt_file : NULL;
}

RECEIPT_API const char *receipt_delivery_proof(const receipt_delivery *d)
{
    return d ? d->proof : NULL;
}

static int rc_fetch_on_body(const void *data, size_t n, void *user)
{
    rc_fetch_sink *s = user;
    if (EVP_DigestUpdate(s->md, data, n) != 1)
        return -1;
    s->size += n;
    if (s->write != NULL)
        return s->write(data, n, s->user);
    if (s->fd >= 0 && durable_write_all(s->fd, data, n) != 0) {
        s->write_errno = errno;
        return -1;
    }
    return 0;
}

static bool rc_fetch_is_b64url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

/* Trades a ticket for plug-in data (section 5), when the answer carried a
 * ticket instead of plug-in data. */
static receipt_result rc_fetch_trade_ticket(receipt_client *c, const char *origin,
                                            const char *ticket, char **plugin)
{
    size_t tlen = strlen(ticket);
    if (tlen == 0 || tlen > RC_FETCH_TICKET_MAX || !rc_fetch_is_b64url(ticket, tlen))
        return rc_fail(c, RECEIPT_ERR_PROTOCOL, "the server sent a malformed Receipt-Ticket");
    char url[RC_ORIGIN_MAX + sizeof(RC_FETCH_PLUGIN_PATH) + RC_FETCH_TICKET_MAX];
    snprintf(url, sizeof(url), "%s%s%s", origin, RC_FETCH_PLUGIN_PATH, ticket);
    rc_http_request req = {
        .url = url,
        .client_key = c->key_header,
        .accept = "application/jose",
        .body_cap = RC_FETCH_PLUGIN_MAX,
    };
    rc_http_response resp = {.retry_after_s = -1};
    receipt_result r = rc_http_perform(c, &req, &resp);
    if (r == RECEIPT_OK && resp.status != 200) {
        char why[256];
        rc_http_describe_error(&resp, why, sizeof(why));
        r = rc_fail(c, RECEIPT_ERR_HTTP, "plug-in data: %s", why);
    }
    if (r == RECEIPT_OK) {
        while (resp.body_len > 0 &&
               (resp.body[resp.body_len - 1] == '\n' || resp.body[resp.body_len - 1] == '\r'))
            resp.body[--resp.body_len] = '\0';
        *plugin = resp.body;
        resp.body = NULL;
    }
    rc_http_response_clear(&resp);
    return r;
}

static int rc_fetch_b64url32(const char *s, uint8_t out[32])
{
    if (s == NULL || strlen(s) != RC_SHA256_B64_LEN)
        return -1;
    return b64url_decode(s, RC_SHA256_B64_LEN, out, 32) == 32 ? 0 : -1;
}

/*
 * Opens the plug-in data and fills d from it. Everything that the
 * confirmation relies on is checked here, so that a bad answer fails the
 * fetch rather than a later confirmation.
 */
static receipt_result rc_fetch_open_plugin(receipt_client *c, receipt_delivery *d,
                                           const char *plugin, const char *delivery_header,
                                           uint8_t expected[32])
{
    receipt_result r = RECEIPT_ERR_PROTOCOL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    json_t *obj = NULL;
    size_t plen = strlen(plugin);
    jose_header h;

    if (plen > RC_FETCH_PLUGIN_MAX || jwe_peek(plugin, plen, &h) != JOSE_OK) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "the plug-in data is not a valid JWE");
        goto out;
    }
    if (strcmp(h.kid, c->client_id) != 0 || strcmp(h.cty, JOSE_CTY_PLUGIN) != 0) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL,
                    "the plug-in data is addressed to another client or is not plug-in data");
        goto out;
    }
    r = rc_jwks_derive(c, d->origin, h.skid, d->k);
    if (r != RECEIPT_OK)
        goto out;
    d->has_k = true;
    snprintf(d->skid, sizeof(d->skid), "%s", h.skid);
    jose_result jr = jwe_decrypt(d->k, plugin, plen, &h, &plain, &plain_len);
    if (jr != JOSE_OK) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "the plug-in data does not open: %s",
                    jose_result_str(jr));
        goto out;
    }
    char err[128];
    obj = sjson_parse_object((const char *)plain, plain_len, SJSON_MAX_DEPTH, err, sizeof(err));
    if (obj == NULL) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "the plug-in data is not JSON: %s", err);
        goto out;
    }
    uint64_t v = 0, size = 0;
    const char *delivery = sjson_string(obj, "delivery", NULL);
    const char *ticket = sjson_string(obj, "ticket", NULL);
    const json_t *content = sjson_object(obj, "content");
    const json_t *client = sjson_object(obj, "client");
    const json_t *server = sjson_object(obj, "server");
    const char *path = content ? sjson_string(content, "path", NULL) : NULL;
    const char *sha = content ? sjson_string(content, "sha256", NULL) : NULL;
    const char *cid = client ? sjson_string(client, "id", NULL) : NULL;
    const char *skid = server ? sjson_string(server, "kid", NULL) : NULL;
    const char *confirm = server ? sjson_string(server, "confirm", NULL) : NULL;
    uuid7 id;
    if (!sjson_uint(obj, "v", &v) || v != 1) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "the plug-in data is not version 1");
        goto out;
    }
    if (delivery == NULL || uuid7_parse(delivery, strlen(delivery), &id) != 0 ||
        (delivery_header != NULL && strcmp(delivery_header, delivery) != 0)) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL,
                    "the plug-in data names no delivery, or not the one of the answer");
        goto out;
    }
    if (ticket == NULL || ticket[0] == '\0' || strlen(ticket) > RC_FETCH_TICKET_MAX ||
        path == NULL || rc_fetch_b64url32(sha, expected) != 0 ||
        !sjson_uint(content, "size", &size) || confirm == NULL) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "the plug-in data lacks a member or has a bad one");
        goto out;
    }
    if (cid == NULL || strcmp(cid, c->client_id) != 0 || skid == NULL ||
        strcmp(skid, h.skid) != 0) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL,
                    "the plug-in data names another client or another server key");
        goto out;
    }
    if (rc_url_check(confirm, NULL, NULL) != RC_URL_OK) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "the plug-in data's confirm URL is not a URL");
        goto out;
    }
    memcpy(d->id, delivery, UUID7_STR_LEN + 1);
    memcpy(d->expected_sha256, sha, RC_SHA256_B64_LEN + 1);
    memcpy(d->client_id, c->client_id, sizeof(d->client_id));
    d->expected_size = size;
    if ((d->ticket = strdup(ticket)) == NULL || (d->content_path = strdup(path)) == NULL ||
        (d->confirm_url = strdup(confirm)) == NULL) {
        r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
        goto out;
    }
    r = RECEIPT_OK;
out:
    if (plain != NULL) {
        OPENSSL_cleanse(plain, plain_len);
        free(plain);
    }
    json_decref(obj);
    return r;
}

/* The GET, the digest, the plug-in data and the comparison, for both modes. */
static receipt_result rc_fetch_run(receipt_client *c, const char *url, rc_fetch_sink *sink,
                                   receipt_delivery **out)
{
    *out = NULL;
    receipt_delivery *d = NULL;
    rc_http_response resp = {.retry_after_s = -1};
    char *traded = NULL;
    receipt_result r;

    if (c->key == NULL) {
        r = rc_fail(c, RECEIPT_ERR_NO_KEY, "the client has no key");
        goto out;
    }
    if (rc_url_check(url, NULL, NULL) != RC_URL_OK) {
        r = rc_fail(c, RECEIPT_ERR_ARGUMENT, "%s is not an http or https URL", url);
        goto out;
    }
    if ((sink->md = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestInit_ex(sink->md, EVP_sha256(), NULL) != 1) {
        r = rc_fail(c, RECEIPT_ERR_INTERNAL, "SHA-256 unavailable");
        goto out;
    }
    rc_http_request req = {
        .url = url,
        .client_key = c->key_header,
        .sink = rc_fetch_on_body,
        .sink_user = sink,
        .download = true,
        .follow = true,
    };
    r = rc_http_perform(c, &req, &resp);
    if (r != RECEIPT_OK) {
        if (sink->write_errno != 0)
            r = rc_fail(c, RECEIPT_ERR_IO, "cannot write the content: %s",
                        strerror(sink->write_errno));
        goto out;
    }
    if (resp.status != 200) {
        char why[256];
        rc_http_describe_error(&resp, why, sizeof(why));
        r = rc_fail(c, RECEIPT_ERR_HTTP, "%s: %s", url, why);
        goto out;
    }
    if ((d = rc_delivery_new()) == NULL || (d->url = strdup(url)) == NULL) {
        r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
        goto out;
    }
    d->received_at_ms = rc_now_ms();
    d->size = sink->size;
    uint8_t got[32];
    unsigned int md_len = 0;
    if (EVP_DigestFinal_ex(sink->md, got, &md_len) != 1 || md_len != 32) {
        r = rc_fail(c, RECEIPT_ERR_INTERNAL, "SHA-256 failed");
        goto out;
    }
    b64url_encode(got, 32, d->sha256);

    if (rc_url_origin(resp.effective_url ? resp.effective_url : url, d->origin) != 0) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "the answering URL has no origin");
        goto out;
    }
    const char *plugin = resp.plugin;
    if ((plugin == NULL || plugin[0] == '\0') && resp.ticket != NULL && resp.ticket[0]) {
        rc_log(c, RECEIPT_LOG_INFO, "no plug-in data in the answer; trading its ticket");
        r = rc_fetch_trade_ticket(c, d->origin, resp.ticket, &traded);
        if (r != RECEIPT_OK)
            goto out;
        plugin = traded;
    }
    if (plugin == NULL || plugin[0] == '\0') {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL,
                    "%s: the answer carries no plug-in data and no ticket: the server "
                    "does not track this path (or is no receipt server); nothing was saved",
                    url);
        goto out;
    }
    const char *delivery_header =
        resp.delivery != NULL && resp.delivery[0] != '\0' ? resp.delivery : NULL;
    uint8_t expected[32];
    r = rc_fetch_open_plugin(c, d, plugin, delivery_header, expected);
    if (r != RECEIPT_OK)
        goto out;

    /* The plug-in data is authenticated; Repr-Digest is not. The bytes are
     * judged by the former, and a disagreeing header is only reported. */
    uint8_t repr[32];
    if (resp.repr_digest == NULL)
        rc_log(c, RECEIPT_LOG_WARN, "%s: the answer has no Repr-Digest", url);
    else if (rc_http_parse_repr_digest(resp.repr_digest, repr) != 0)
        rc_log(c, RECEIPT_LOG_WARN, "%s: malformed Repr-Digest", url);
    else if (memcmp(repr, expected, 32) != 0)
        rc_log(c, RECEIPT_LOG_WARN, "%s: Repr-Digest differs from the plug-in data's digest", url);

    d->intact = memcmp(got, expected, 32) == 0 && d->size == d->expected_size;
    *out = d;
    d = NULL;
    if ((*out)->intact) {
        r = RECEIPT_OK;
    } else {
        r = rc_fail(c, RECEIPT_ERR_DIGEST,
                    "%s: received %llu bytes with SHA-256 %s; the content has %llu bytes with "
                    "SHA-256 %s",
                    url, (unsigned long long)(*out)->size, (*out)->sha256,
                    (unsigned long long)(*out)->expected_size, (*out)->expected_sha256);
    }
out:
    receipt_delivery_free(d);
    free(traded);
    EVP_MD_CTX_free(sink->md);
    sink->md = NULL;
    rc_http_response_clear(&resp);
    return r;
}

RECEIPT_API receipt_result receipt_fetch(receipt_client *c, const char *url, receipt_write_fn write,
                                         void *user, receipt_delivery **out)
{
    if (out != NULL)
        *out = NULL;
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (url == NULL || write == NULL || out == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "URL, callback and result are required");
    c->errmsg[0] = '\0';
    rc_fetch_sink sink = {.write = write, .user = user, .fd = -1};
    return rc_fetch_run(c, url, &sink, out);
}

RECEIPT_API receipt_result receipt_fetch_file(receipt_client *c, const char *url, const char *path,
                                              receipt_delivery **out)
{
    if (out != NULL)
        *out = NULL;
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (url == NULL || path == NULL || path[0] == '\0' || out == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "URL, file and result are required");
    c->errmsg[0] = '\0';
    char tmp[DURABLE_PATH_MAX];
    char err[RC_ERRMSG_MAX];
    /* 0666 and the umask: the mode any new file of the user's would get. */
    int fd = durable_open_temp(path, 0666, tmp, err, sizeof(err));
    if (fd < 0)
        return rc_fail(c, RECEIPT_ERR_IO, "%s", err);
    rc_fetch_sink sink = {.fd = fd};
    receipt_result r = rc_fetch_run(c, url, &sink, out);
    bool keep = r == RECEIPT_OK;
    if (keep && fsync(fd) != 0) {
        r = rc_fail(c, RECEIPT_ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
        keep = false;
    }
    if (close(fd) != 0 && keep) {
        r = rc_fail(c, RECEIPT_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        keep = false;
    }
    if (!keep) {
        unlink(tmp);
        if (r != RECEIPT_ERR_DIGEST) {
            receipt_delivery_free(*out);
            *out = NULL;
        }
        return r;
    }
    if (durable_commit(tmp, path, true, err, sizeof(err)) != 0) {
        receipt_delivery_free(*out);
        *out = NULL;
        return rc_fail(c, RECEIPT_ERR_IO, "%s", err);
    }
    if (((*out)->file = strdup(path)) == NULL) {
        receipt_delivery_free(*out);
        *out = NULL;
        return rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
    }
    return RECEIPT_OK;
}
