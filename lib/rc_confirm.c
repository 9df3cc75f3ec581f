#include "lib/rc_confirm.h"
#include "lib/rc_evidence.h"

#include "common/b64.h"
#include "common/durable.h"
#include "common/jose.h"
#include "common/sjson.h"
#include "lib/rc_http.h"
#include "lib/rc_jwks.h"
#include "lib/rc_spool.h"
#include "lib/rc_url.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

void rc_confirm_answer_clear(rc_confirm_answer *a)
{
    if (a == NULL)
        return;
    free(a->receipt);
    free(a->proof);
    memset(a, 0, sizeof(*a));
    a->retry_after_s = -1;
}

receipt_result rc_confirm_seal(receipt_client *c, const receipt_delivery *d, uint64_t now_ms,
                               char **jwe)
{
    *jwe = NULL;
    if (!d->has_k || d->ticket == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "the delivery cannot be confirmed again");
    json_t *obj = json_pack("{s:i, s:s, s:s, s:{s:s}, s:{s:s, s:I, s:I}}", "v", 1, "delivery",
                            d->id, "ticket", d->ticket, "client", "id", d->client_id, "received",
                            "sha256", d->sha256, "size", (json_int_t)d->size, "at_ms",
                            (json_int_t)(d->received_at_ms ? d->received_at_ms : now_ms));
    char *text = obj ? sjson_dump(obj) : NULL;
    json_decref(obj);
    if (text == NULL)
        return rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
    jose_result jr = jwe_encrypt(d->k, d->client_id, d->skid, JOSE_CTY_CONFIRM,
                                 (const uint8_t *)text, strlen(text), NULL, jwe);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    if (jr != JOSE_OK)
        return rc_fail(c, RECEIPT_ERR_INTERNAL, "cannot seal the confirmation: %s",
                       jose_result_str(jr));
    return RECEIPT_OK;
}

static int rc_confirm_status_parse(const char *s, receipt_status *out)
{
    if (s != NULL && strcmp(s, "confirmed") == 0)
        *out = RECEIPT_STATUS_CONFIRMED;
    else if (s != NULL && strcmp(s, "corrupted") == 0)
        *out = RECEIPT_STATUS_CORRUPTED;
    else
        return -1;
    return 0;
}

receipt_result rc_confirm_check_receipt(receipt_client *c, const json_t *set, const char *jws,
                                        const char *delivery, const char *client_id,
                                        receipt_status *status, char **payload)
{
    receipt_result r = RECEIPT_ERR_VERIFY;
    eckey *key = NULL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    json_t *obj = NULL;
    jose_header h;
    size_t n = strlen(jws);

    if (n > RC_RECEIPT_MAX || jws_peek(jws, n, &h) != JOSE_OK) {
        r = rc_fail(c, RECEIPT_ERR_VERIFY, "not a receipt (an ES256 JWS)");
        goto out;
    }
    if ((key = rc_jwks_find(set, h.kid, "sig")) == NULL) {
        r = rc_fail(c, RECEIPT_ERR_VERIFY, "the key set has no signing key with kid %s", h.kid);
        goto out;
    }
    jose_result jr = jws_verify(key, jws, n, &h, &plain, &plain_len);
    if (jr != JOSE_OK) {
        r = rc_fail(c, RECEIPT_ERR_VERIFY, "the receipt's signature does not verify: %s",
                    jose_result_str(jr));
        goto out;
    }
    char err[128];
    obj = sjson_parse_object((const char *)plain, plain_len, SJSON_MAX_DEPTH, err, sizeof(err));
    uint64_t v = 0;
    receipt_status st;
    const json_t *client = obj ? sjson_object(obj, "client") : NULL;
    const char *pdelivery = obj ? sjson_string(obj, "delivery", NULL) : NULL;
    const char *pclient = client ? sjson_string(client, "id", NULL) : NULL;
    if (obj == NULL || !sjson_uint(obj, "v", &v) || v != 1 || pdelivery == NULL ||
        rc_confirm_status_parse(sjson_string(obj, "status", NULL), &st) != 0) {
        r = rc_fail(c, RECEIPT_ERR_VERIFY, "the receipt's payload is not a version 1 receipt");
        goto out;
    }
    if ((delivery != NULL && strcmp(delivery, pdelivery) != 0) ||
        (client_id != NULL && (pclient == NULL || strcmp(client_id, pclient) != 0)) ||
        (status != NULL && *status != RECEIPT_STATUS_RECEIVED && *status != st)) {
        r = rc_fail(c, RECEIPT_ERR_VERIFY, "the receipt is for another delivery, client or status");
        goto out;
    }
    if (status != NULL)
        *status = st;
    if (payload != NULL) {
        *payload = (char *)plain;
        plain = NULL;
    }
    r = RECEIPT_OK;
out:
    json_decref(obj);
    free(plain);
    eckey_free(key);
    return r;
}

/* The key set to verify a receipt signed with kid: the given text if it
 * names kid, else origin's (fetched again once if needed). */
static receipt_result rc_confirm_key_set(receipt_client *c, const char *jwks_text,
                                         const char *origin, const char *jws, json_t **set)
{
    *set = NULL;
    jose_header h;
    if (jws_peek(jws, strlen(jws), &h) != JOSE_OK)
        return rc_fail(c, RECEIPT_ERR_VERIFY, "the receipt is not an ES256 JWS");
    if (jwks_text != NULL) {
        char err[128];
        json_t *s = rc_jwks_parse(jwks_text, strlen(jwks_text), err, sizeof(err));
        eckey *k = s ? rc_jwks_find(s, h.kid, "sig") : NULL;
        if (k != NULL) {
            eckey_free(k);
            *set = s;
            return RECEIPT_OK;
        }
        json_decref(s);
    }
    for (int refresh = 0; refresh < 2; refresh++) {
        rc_jwks_entry *e = NULL;
        receipt_result r = rc_jwks_get(c, origin, refresh == 1, &e);
        if (r != RECEIPT_OK)
            return r;
        eckey *k = rc_jwks_find(e->set, h.kid, "sig");
        if (k != NULL) {
            eckey_free(k);
            *set = json_incref(e->set);
            return RECEIPT_OK;
        }
    }
    return rc_fail(c, RECEIPT_ERR_VERIFY, "the key set of %s has no signing key with kid %s",
                   origin, h.kid);
}

receipt_result rc_confirm_send(receipt_client *c, const char *url, const char *client_key,
                               const char *body, const char *delivery, const char *client_id,
                               const char *jwks_text, const char *origin, rc_confirm_answer *a)
{
    rc_confirm_answer_clear(a);
    rc_http_request req = {
        .url = url,
        .client_key = client_key,
        .accept = "application/json",
        .body = body,
        .body_len = strlen(body),
        .content_type = "application/jose",
        .body_cap = RC_CONFIRM_ANSWER_MAX,
    };
    rc_http_response resp = {.retry_after_s = -1};
    json_t *obj = NULL, *set = NULL;
    receipt_result r = rc_http_perform(c, &req, &resp);
    a->http_status = resp.status;
    a->retry_after_s = resp.retry_after_s;
    if (r != RECEIPT_OK) {
        a->retryable = r == RECEIPT_ERR_NETWORK || r == RECEIPT_ERR_TLS;
        goto out;
    }
    if (resp.status != 200) {
        char why[256];
        rc_http_describe_error(&resp, why, sizeof(why));
        a->retryable = rc_http_retryable(resp.status);
        r = rc_fail(c, a->retryable ? RECEIPT_ERR_HTTP : RECEIPT_ERR_REJECTED,
                    "confirmation of %s: %s", delivery, why);
        goto out;
    }
    char err[128];
    obj = sjson_parse_object(resp.body ? resp.body : "", resp.body_len, SJSON_MAX_DEPTH, err,
                             sizeof(err));
    const char *adelivery = obj ? sjson_string(obj, "delivery", NULL) : NULL;
    const char *receipt = obj ? sjson_string(obj, "receipt", NULL) : NULL;
    receipt_status st = RECEIPT_STATUS_RECEIVED;
    if (obj == NULL || adelivery == NULL || strcmp(adelivery, delivery) != 0 || receipt == NULL ||
        rc_confirm_status_parse(sjson_string(obj, "status", NULL), &st) != 0) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "confirmation of %s: malformed answer", delivery);
        goto out;
    }
    r = rc_confirm_key_set(c, jwks_text, origin, receipt, &set);
    if (r != RECEIPT_OK) {
        /* The server has the confirmation; a key set that could not be
         * fetched now is fetched on the retry, which confirming again
         * (idempotent) makes safe. */
        a->retryable = r == RECEIPT_ERR_NETWORK || r == RECEIPT_ERR_TLS || r == RECEIPT_ERR_HTTP;
        goto out;
    }
    a->status = st;
    r = rc_confirm_check_receipt(c, set, receipt, delivery, client_id, &st, NULL);
    if (r != RECEIPT_OK)
        goto out;
    /* A server that keeps the evidence log proves the confirmation is in
     * it (docs/evidence.md); a proof that does not check fails as a
     * receipt that does not would. */
    const json_t *proof = json_object_get(obj, "proof");
    if (proof != NULL) {
        r = rc_evidence_check_proof(c, proof, receipt, delivery, NULL);
        if (r != RECEIPT_OK)
            goto out;
        if ((a->proof = json_dumps(proof, JSON_COMPACT)) == NULL) {
            r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    if ((a->receipt = strdup(receipt)) == NULL)
        r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
out:
    json_decref(set);
    json_decref(obj);
    rc_http_response_clear(&resp);
    return r;
}

receipt_result rc_confirm_save_receipt(receipt_client *c, receipt_delivery *d)
{
    if (c->receipt_dir == NULL || d->receipt == NULL)
        return RECEIPT_OK;
    char path[DURABLE_PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s.jws", c->receipt_dir, d->id) >= (int)sizeof(path))
        return rc_fail(c, RECEIPT_ERR_IO, "receipt directory name too long");
    size_t n = strlen(d->receipt);
    char *text = malloc(n + 2);
    if (text == NULL)
        return rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
    memcpy(text, d->receipt, n);
    text[n] = '\n';
    text[n + 1] = '\0';
    char err[RC_ERRMSG_MAX];
    int rc = durable_write_atomic(path, text, n + 1, RC_RECEIPT_FILE_MODE, true, err, sizeof(err));
    free(text);
    if (rc != 0)
        return rc_fail(c, RECEIPT_ERR_IO, "cannot save the receipt: %s", err);
    free(d->receipt_file);
    if ((d->receipt_file = strdup(path)) == NULL)
        return rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
    if (d->proof == NULL)
        return RECEIPT_OK;
    /* The proof beside it: DELIVERY.proof.json. */
    if (snprintf(path, sizeof(path), "%s/%s.proof.json", c->receipt_dir, d->id) >=
        (int)sizeof(path))
        return rc_fail(c, RECEIPT_ERR_IO, "receipt directory name too long");
    n = strlen(d->proof);
    if ((text = malloc(n + 2)) == NULL)
        return rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
    memcpy(text, d->proof, n);
    text[n] = '\n';
    rc = durable_write_atomic(path, text, n + 1, RC_RECEIPT_FILE_MODE, true, err, sizeof(err));
    free(text);
    if (rc != 0)
        return rc_fail(c, RECEIPT_ERR_IO, "cannot save the receipt's proof: %s", err);
    return RECEIPT_OK;
}

static uint64_t rc_confirm_random(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        v = rc_now_ms() * 6364136223846793005ull; /* jitter only: any spread will do */
    return v;
}

/* Keeps a confirmation that could not be sent, as the first failed attempt. */
static receipt_result rc_confirm_spool(receipt_client *c, receipt_delivery *d, const char *body,
                                       long retry_after_s, const char *why)
{
    rc_spool_entry e;
    memset(&e, 0, sizeof(e));
    receipt_result r = RECEIPT_ERR_NOMEM;
    rc_jwks_entry *set = NULL;
    uint64_t now = rc_now_ms();
    memcpy(e.delivery, d->id, sizeof(e.delivery));
    memcpy(e.client_key, c->key_header, sizeof(e.client_key));
    memcpy(e.client_id, d->client_id, sizeof(e.client_id));
    memcpy(e.sha256, d->sha256, sizeof(e.sha256));
    e.size = d->size;
    memcpy(e.expected_sha256, d->expected_sha256, sizeof(e.expected_sha256));
    e.expected_size = d->expected_size;
    e.intact = d->intact;
    e.created_ms = now;
    /* The key set is kept so that the receipt can be verified even if the
     * origin that served the content is gone by the time of the retry. */
    if (rc_jwks_get(c, d->origin, false, &set) == RECEIPT_OK && set->text != NULL &&
        (e.jwks = strdup(set->text)) == NULL)
        goto out;
    if ((e.confirm_url = strdup(d->confirm_url)) == NULL || (e.body = strdup(body)) == NULL ||
        (d->url != NULL && (e.url = strdup(d->url)) == NULL) ||
        (d->content_path != NULL && (e.content_path = strdup(d->content_path)) == NULL) ||
        (d->file != NULL && (e.file = strdup(d->file)) == NULL))
        goto out;
    rc_spool_entry_failed(&e, now, rc_confirm_random(), retry_after_s, why);
    char err[RC_ERRMSG_MAX];
    if (rc_spool_write(c->spool_dir, &e, err, sizeof(err)) != 0) {
        r = rc_fail(c, RECEIPT_ERR_IO, "%s; and it could not be spooled: %s", why, err);
        goto out;
    }
    d->status = RECEIPT_STATUS_SPOOLED;
    rc_log(c, RECEIPT_LOG_INFO, "confirmation of %s spooled (%s)", d->id, why);
    r = rc_fail(c, RECEIPT_SPOOLED, "%s; spooled, retried later", why);
out:
    if (r == RECEIPT_ERR_NOMEM)
        rc_fail(c, r, "out of memory");
    rc_spool_entry_clear(&e);
    return r;
}

RECEIPT_API receipt_result receipt_confirm(receipt_client *c, receipt_delivery *d)
{
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (d == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "no delivery");
    c->errmsg[0] = '\0';
    if (d->status == RECEIPT_STATUS_CONFIRMED || d->status == RECEIPT_STATUS_CORRUPTED)
        return RECEIPT_OK;
    if (d->status != RECEIPT_STATUS_RECEIVED)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "the delivery was already %s",
                       receipt_status_name(d->status));
    if (c->key == NULL || strcmp(c->client_id, d->client_id) != 0)
        return rc_fail(c, RECEIPT_ERR_NO_KEY, "the client's key is not the one that fetched");
    char why[RC_ERRMSG_MAX];
    if (rc_url_confirm_allowed(d->confirm_url, (c->flags & RECEIPT_ALLOW_INSECURE_CONFIRM) != 0,
                               why, sizeof(why)) != RC_URL_OK)
        return rc_fail(c, RECEIPT_ERR_POLICY, "%s", why);

    char *body = NULL;
    rc_confirm_answer a = {.retry_after_s = -1};
    receipt_result r = rc_confirm_seal(c, d, rc_now_ms(), &body);
    if (r != RECEIPT_OK)
        goto out;
    r = rc_confirm_send(c, d->confirm_url, c->key_header, body, d->id, d->client_id, NULL,
                        d->origin, &a);
    if (r == RECEIPT_OK) {
        d->status = a.status;
        d->receipt = a.receipt;
        a.receipt = NULL;
        d->proof = a.proof;
        a.proof = NULL;
        rc_log(c, RECEIPT_LOG_INFO, "delivery %s %s", d->id, receipt_status_name(d->status));
        r = rc_confirm_save_receipt(c, d);
        goto out;
    }
    if (a.retryable && c->spool_dir != NULL) {
        snprintf(why, sizeof(why), "%s", c->errmsg);
        r = rc_confirm_spool(c, d, body, a.retry_after_s, why);
        goto out;
    }
    if (r == RECEIPT_ERR_REJECTED)
        d->status = RECEIPT_STATUS_REJECTED;
out:
    rc_confirm_answer_clear(&a);
    free(body);
    return r;
}

RECEIPT_API receipt_result receipt_jwks_fetch(receipt_client *c, const char *url, char **jwks)
{
    if (jwks != NULL)
        *jwks = NULL;
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (url == NULL || jwks == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "URL and result are required");
    c->errmsg[0] = '\0';
    if (rc_url_check(url, NULL, NULL) != RC_URL_OK)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "%s is not an http or https URL", url);
    rc_http_request req = {
        .url = url,
        .accept = "application/jwk-set+json, application/json",
        .body_cap = RC_JWKS_TEXT_MAX,
        .follow = true,
    };
    rc_http_response resp = {.retry_after_s = -1};
    receipt_result r = rc_http_perform(c, &req, &resp);
    if (r == RECEIPT_OK && resp.status != 200) {
        char why[256];
        rc_http_describe_error(&resp, why, sizeof(why));
        r = rc_fail(c, RECEIPT_ERR_HTTP, "%s: %s", url, why);
    }
    if (r == RECEIPT_OK) {
        char err[128];
        json_t *set = rc_jwks_parse(resp.body ? resp.body : "", resp.body_len, err, sizeof(err));
        if (set == NULL) {
            r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "%s: %s", url, err);
        } else {
            json_decref(set);
            *jwks = resp.body;
            resp.body = NULL;
        }
    }
    rc_http_response_clear(&resp);
    return r;
}

RECEIPT_API receipt_result receipt_jwks_url(receipt_client *c, const char *receipt, char **url)
{
    if (url != NULL)
        *url = NULL;
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (receipt == NULL || url == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "receipt and result are required");
    c->errmsg[0] = '\0';
    receipt_result r = RECEIPT_ERR_PROTOCOL;
    uint8_t *plain = NULL;
    json_t *obj = NULL;
    size_t n = strlen(receipt);
    const char *first = memchr(receipt, '.', n);
    const char *second =
        first != NULL ? memchr(first + 1, '.', n - (size_t)(first + 1 - receipt)) : NULL;
    if (n > RC_RECEIPT_MAX || second == NULL) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "not a receipt (an ES256 JWS)");
        goto out;
    }
    size_t enc_len = (size_t)(second - first - 1);
    plain = malloc(b64url_decoded_max(enc_len) + 1);
    if (plain == NULL) {
        r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
        goto out;
    }
    long plain_len = b64url_decode(first + 1, enc_len, plain, b64url_decoded_max(enc_len));
    char err[128];
    obj = plain_len < 0 ? NULL
                        : sjson_parse_object((const char *)plain, (size_t)plain_len,
                                             SJSON_MAX_DEPTH, err, sizeof(err));
    const json_t *server = obj != NULL ? sjson_object(obj, "server") : NULL;
    const char *jwks = server != NULL ? sjson_string(server, "jwks", NULL) : NULL;
    const char *base = server != NULL ? sjson_string(server, "url", NULL) : NULL;
    if (jwks == NULL || base == NULL) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL,
                    "the receipt names no key set (server.url and server.jwks)");
        goto out;
    }
    bool https = false;
    char host[RC_ORIGIN_MAX];
    char jwks_origin[RC_ORIGIN_MAX], base_origin[RC_ORIGIN_MAX];
    if (rc_url_check(jwks, &https, host) != RC_URL_OK || rc_url_origin(jwks, jwks_origin) != 0 ||
        rc_url_origin(base, base_origin) != 0) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "the receipt's key set URL is not an http(s) URL");
        goto out;
    }
    if (!https && !rc_url_host_is_loopback(host)) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL,
                    "the receipt's key set %s is plain http to a host that is not loopback: "
                    "fetch it yourself over a channel you trust",
                    jwks);
        goto out;
    }
    if (strcmp(jwks_origin, base_origin) != 0) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "the receipt's key set %s is not on its server %s",
                    jwks, base_origin);
        goto out;
    }
    *url = strdup(jwks);
    r = *url != NULL ? RECEIPT_OK : rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
out:
    json_decref(obj);
    free(plain);
    return r;
}

RECEIPT_API receipt_result receipt_verify(receipt_client *c, const char *receipt, const char *jwks,
                                          char **payload)
{
    if (payload != NULL)
        *payload = NULL;
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    if (receipt == NULL || jwks == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "receipt and key set are required");
    c->errmsg[0] = '\0';
    char err[128];
    json_t *set = rc_jwks_parse(jwks, strlen(jwks), err, sizeof(err));
    if (set == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "key set: %s", err);
    receipt_result r = rc_confirm_check_receipt(c, set, receipt, NULL, NULL, NULL, payload);
    json_decref(set);
    return r;
}
