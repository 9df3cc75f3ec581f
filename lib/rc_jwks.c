#include "lib/rc_jwks.h"

#include "common/sjson.h"
#include "lib/rc_client.h"
#include "lib/rc_http.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *rc_jwks_parse(const char *text, size_t n, char *err, size_t errlen)
{
    json_t *set = sjson_parse_object(text, n, SJSON_MAX_DEPTH, err, errlen);
    if (set == NULL)
        return NULL;
    json_t *keys = json_object_get(set, "keys");
    if (!json_is_array(keys) || json_array_size(keys) > RC_JWKS_KEYS_MAX) {
        snprintf(err, errlen, "not a JWK Set (\"keys\" missing, not an array or too long)");
        json_decref(set);
        return NULL;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (!json_is_object(k)) {
            snprintf(err, errlen, "not a JWK Set (a key is not an object)");
            json_decref(set);
            return NULL;
        }
    }
    return set;
}

eckey *rc_jwks_find(const json_t *set, const char *kid, const char *use)
{
    const json_t *keys = json_object_get(set, "keys");
    size_t i;
    const json_t *k;
    json_array_foreach(keys, i, k)
    {
        const char *kkid = sjson_string(k, "kid", NULL);
        if (kkid == NULL || strcmp(kkid, kid) != 0)
            continue;
        const char *kuse = sjson_string(k, "use", NULL);
        if (kuse != NULL && strcmp(kuse, use) != 0)
            continue;
        if (json_object_get(k, "use") != NULL && kuse == NULL)
            continue;
        eckey *key = eckey_from_jwk(k);
        if (key == NULL)
            continue;
        /* A kid is the key's thumbprint (docs/protocol.md section 3.2): a set that
         * names a key by another's kid is not trusted for it. */
        if (strcmp(eckey_thumbprint(key), kid) != 0) {
            eckey_free(key);
            continue;
        }
        return key;
    }
    return NULL;
}

static void rc_jwks_entry_free(rc_jwks_entry *e)
{
    if (e == NULL)
        return;
    OPENSSL_cleanse(e->derived, sizeof(e->derived));
    json_decref(e->set);
    free(e->text);
    free(e);
}

void rc_jwks_cache_forget_keys(rc_jwks_cache *cache)
{
    for (size_t i = 0; i < RC_JWKS_ORIGINS_MAX; i++) {
        rc_jwks_entry *e = cache->entries[i];
        if (e == NULL)
            continue;
        OPENSSL_cleanse(e->derived, sizeof(e->derived));
        e->nderived = 0;
    }
}

void rc_jwks_cache_clear(rc_jwks_cache *cache)
{
    for (size_t i = 0; i < RC_JWKS_ORIGINS_MAX; i++) {
        rc_jwks_entry_free(cache->entries[i]);
        cache->entries[i] = NULL;
    }
    cache->next = 0;
}

static receipt_result rc_jwks_fetch_entry(receipt_client *c, const char *origin,
                                          rc_jwks_entry **out)
{
    char url[RC_ORIGIN_MAX + sizeof(RC_JWKS_PATH)];
    snprintf(url, sizeof(url), "%s%s", origin, RC_JWKS_PATH);
    rc_http_request req = {
        .url = url,
        .accept = "application/jwk-set+json, application/json",
        .body_cap = RC_JWKS_TEXT_MAX,
    };
    rc_http_response resp = {.retry_after_s = -1};
    rc_jwks_entry *e = NULL;
    receipt_result r = rc_http_perform(c, &req, &resp);
    if (r != RECEIPT_OK)
        goto out;
    if (resp.status != 200) {
        char why[256];
        rc_http_describe_error(&resp, why, sizeof(why));
        r = rc_fail(c, RECEIPT_ERR_HTTP, "%s: %s", url, why);
        goto out;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        r = rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory");
        goto out;
    }
    char err[256];
    e->set = rc_jwks_parse(resp.body ? resp.body : "", resp.body_len, err, sizeof(err));
    if (e->set == NULL) {
        r = rc_fail(c, RECEIPT_ERR_PROTOCOL, "%s: %s", url, err);
        goto out;
    }
    snprintf(e->origin, sizeof(e->origin), "%s", origin);
    e->text = resp.body;
    resp.body = NULL;
    *out = e;
    e = NULL;
    rc_log(c, RECEIPT_LOG_DEBUG, "key set of %s fetched", origin);
out:
    rc_jwks_entry_free(e);
    rc_http_response_clear(&resp);
    return r;
}

receipt_result rc_jwks_get(receipt_client *c, const char *origin, bool refresh, rc_jwks_entry **out)
{
    rc_jwks_cache *cache = &c->jwks;
    size_t slot = RC_JWKS_ORIGINS_MAX;
    for (size_t i = 0; i < RC_JWKS_ORIGINS_MAX; i++) {
        rc_jwks_entry *e = cache->entries[i];
        if (e != NULL && strcmp(e->origin, origin) == 0) {
            if (!refresh) {
                *out = e;
                return RECEIPT_OK;
            }
            slot = i;
            break;
        }
    }
    rc_jwks_entry *fresh = NULL;
    receipt_result r = rc_jwks_fetch_entry(c, origin, &fresh);
    if (r != RECEIPT_OK)
        return r;
    if (slot == RC_JWKS_ORIGINS_MAX) {
        for (size_t i = 0; i < RC_JWKS_ORIGINS_MAX && slot == RC_JWKS_ORIGINS_MAX; i++)
            if (cache->entries[i] == NULL)
                slot = i;
        if (slot == RC_JWKS_ORIGINS_MAX) {
            slot = cache->next;
            cache->next = (cache->next + 1) % RC_JWKS_ORIGINS_MAX;
        }
    }
    rc_jwks_entry_free(cache->entries[slot]);
    cache->entries[slot] = fresh;
    *out = fresh;
    return RECEIPT_OK;
}

receipt_result rc_jwks_derive(receipt_client *c, const char *origin, const char *skid,
                              uint8_t k[KDF_KEY_LEN])
{
    if (c->key == NULL)
        return rc_fail(c, RECEIPT_ERR_NO_KEY, "the client has no key");
    rc_jwks_entry *e = NULL;
    receipt_result r = rc_jwks_get(c, origin, false, &e);
    if (r != RECEIPT_OK)
        return r;
    for (size_t i = 0; i < e->nderived; i++) {
        if (strcmp(e->derived[i].kid, skid) == 0) {
            memcpy(k, e->derived[i].k, KDF_KEY_LEN);
            return RECEIPT_OK;
        }
    }
    eckey *server = rc_jwks_find(e->set, skid, "enc");
    if (server == NULL) {
        r = rc_jwks_get(c, origin, true, &e);
        if (r != RECEIPT_OK)
            return r;
        server = rc_jwks_find(e->set, skid, "enc");
    }
    if (server == NULL)
        return rc_fail(c, RECEIPT_ERR_PROTOCOL,
                       "the key set of %s has no encryption key with kid %s", origin, skid);
    int rc = kdf_derive(c->key, server, c->client_id, skid, k);
    eckey_free(server);
    if (rc != 0)
        return rc_fail(c, RECEIPT_ERR_INTERNAL, "key derivation failed");
    size_t slot = e->nderived < RC_JWKS_DERIVED_MAX ? e->nderived++ : 0;
    snprintf(e->derived[slot].kid, sizeof(e->derived[slot].kid), "%s", skid);
    memcpy(e->derived[slot].k, k, KDF_KEY_LEN);
    return RECEIPT_OK;
}
