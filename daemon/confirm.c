/*
 * confirm: POST /_receipt/confirm (PROTOCOL.md section 6).
 *
 * A confirmation is checked completely on the worker thread (header key,
 * JWE header allow-list, decryption, payload, ticket), its receipt signed,
 * and then handed to the ledger writer while the connection is suspended.
 * The writer resumes it once the batch holding the confirmation is durable;
 * a watchdog resumes it with 503 if the ledger has not answered within the
 * bound, so a stuck disk never hangs clients. A confirm_call is shared by
 * the connection, the writer callback and the watchdog: it is reference
 * counted, and whoever moves it out of PENDING first decides the answer.
 */
#include "common/b64.h"
#include "common/jose.h"
#include "common/sjson.h"
#include "daemon/http_internal.h"
#include "daemon/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CONFIRM_RECEIPT_PAYLOAD_MAX 4096
#define CONFIRM_WATCHDOG_TICK_MS    50

typedef enum call_state {
    CALL_PENDING = 0,
    CALL_DONE,     /* the ledger answered: result is set */
    CALL_FAILED,   /* the ledger could not commit        */
    CALL_TIMEDOUT, /* the watchdog gave up waiting       */
} call_state;

struct confirm_call {
    atomic_int refs;
    atomic_int state;
    struct MHD_Connection *conn;
    confirm_waits *waits;
    uint64_t deadline_ms;
    confirm_call *prev, *next; /* in the watchdog's list while pending */
    bool listed;
    ledger_result result;
};

struct confirm_waits {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool stopping;
    unsigned timeout_ms;
    confirm_call *head;
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void call_unref(confirm_call *call)
{
    if (call != NULL && atomic_fetch_sub(&call->refs, 1) == 1)
        free(call);
}

/* Caller holds waits->lock. */
static void unlist(confirm_waits *w, confirm_call *call)
{
    if (!call->listed)
        return;
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        w->head = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    call->listed = false;
}

/* Moves a pending call to state and wakes its connection; false if someone
 * else already decided. */
static bool finish(confirm_call *call, call_state state)
{
    int expected = CALL_PENDING;
    if (!atomic_compare_exchange_strong(&call->state, &expected, state))
        return false;
    MHD_resume_connection(call->conn);
    return true;
}

static void *watchdog(void *arg)
{
    confirm_waits *w = arg;
    size_t expired = 0;
    uint64_t logged_ms = 0;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += CONFIRM_WATCHDOG_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
        uint64_t now = monotonic_ms();
        confirm_call *call = w->head;
        while (call != NULL) {
            confirm_call *next = call->next;
            if (now >= call->deadline_ms) {
                unlist(w, call);
                expired += finish(call, CALL_TIMEDOUT);
                call_unref(call); /* the list's reference */
            }
            call = next;
        }
        /* A stuck disk expires many at once: one line a second at most. */
        if (expired > 0 && now - logged_ms >= 1000) {
            log_error("ledger did not commit within %u ms: %zu confirmations answered 503",
                      w->timeout_ms, expired);
            expired = 0;
            logged_ms = now;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

confirm_waits *confirm_waits_new(unsigned timeout_ms)
{
    confirm_waits *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->timeout_ms = timeout_ms;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (pthread_create(&w->thread, NULL, watchdog, w) != 0) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

size_t confirm_waits_abort(confirm_waits *w)
{
    if (w == NULL)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&w->lock);
    while (w->head != NULL) {
        confirm_call *call = w->head;
        unlist(w, call);
        n += finish(call, CALL_FAILED);
        call_unref(call); /* the list's */
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}

void confirm_waits_free(confirm_waits *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    /* The daemon is stopped: nothing can be resumed any more. */
    while (w->head != NULL) {
        confirm_call *call = w->head;
        unlist(w, call);
        call_unref(call);
    }
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* Writer thread: the batch holding the confirmation committed, or failed. */
static void on_ledger_done(void *arg, bool ok, const ledger_result *result)
{
    confirm_call *call = arg;
    if (ok)
        call->result = *result;
    confirm_waits *w = call->waits;
    pthread_mutex_lock(&w->lock);
    bool was_listed = call->listed;
    unlist(w, call);
    pthread_mutex_unlock(&w->lock);
    /* When the watchdog answered 503 first, the row is written all the same,
     * and the client's retry gets it back unchanged. */
    finish(call, ok ? CALL_DONE : CALL_FAILED);
    if (was_listed)
        call_unref(call); /* the list's, unless the watchdog took it */
    call_unref(call);     /* the writer's */
}

void confirm_release(request *req)
{
    call_unref(req->call);
    req->call = NULL;
}

/* ---- checking a confirmation -------------------------------------------- */

typedef struct checked {
    ticket_claims ticket;
    clientkey client;
    bool has_sha256;
    uint8_t received_sha256[32];
    uint64_t received_size;
    uint64_t received_at_ms;
} checked;

typedef struct failure {
    unsigned status;
    const char *code;
    const char *message;
} failure;

#define FAIL(s, c, m)                                                                              \
    do {                                                                                           \
        fail->status = (s);                                                                        \
        fail->code = (c);                                                                          \
        fail->message = (m);                                                                       \
        goto out;                                                                                  \
    } while (0)

static bool content_type_is_jose(const char *value)
{
    if (value == NULL)
        return false;
    size_t n = strlen("application/jose");
    if (strncasecmp(value, "application/jose", n) != 0)
        return false;
    return value[n] == '\0' || value[n] == ';' || value[n] == ' ';
}

static int check(http_server *srv, struct MHD_Connection *c, const request *req, checked *out,
                 failure *fail)
{
    int rc = -1;
    uint8_t *plaintext = NULL;
    size_t plaintext_len = 0;
    json_t *msg = NULL;
    jose_header jh;

    int has_key = plugin_client_key(srv, c, &out->client);
    if (has_key == 0)
        FAIL(400, "missing_client_key", "Send your public key in Receipt-Client-Key.");
    if (has_key < 0)
        FAIL(400, "bad_client_key", "Receipt-Client-Key is not a valid P-256 public key.");

    switch (jwe_peek(req->body, req->body_len, &jh)) {
    case JOSE_OK:
        break;
    case JOSE_BAD_HEADER:
        FAIL(400, "bad_jose_header", "The JWE header is not the one the protocol allows.");
    default:
        FAIL(400, "malformed_jose", "The body is not a JWE compact serialisation.");
    }
    if (strcmp(jh.kid, out->client.id) != 0)
        FAIL(400, "kid_mismatch", "The JWE kid is not the thumbprint of Receipt-Client-Key.");
    if (strcmp(jh.skid, eckey_thumbprint(srv->svc.keys->enc)) != 0)
        FAIL(400, "unknown_server_key", "The JWE skid names no key of this server.");
    if (strcmp(jh.cty, JOSE_CTY_CONFIRM) != 0)
        FAIL(400, "bad_jose_header", "The JWE cty must be receipt-confirm+json.");

    switch (
        jwe_decrypt(out->client.key, req->body, req->body_len, &jh, &plaintext, &plaintext_len)) {
    case JOSE_OK:
        break;
    case JOSE_DECRYPT:
        FAIL(401, "decrypt_failed", "The confirmation does not decrypt with this client's key.");
    case JOSE_INTERNAL:
        FAIL(500, "internal_error", "The confirmation could not be decrypted.");
    default:
        FAIL(400, "malformed_jose", "The body is not a JWE compact serialisation.");
    }

    char why[128];
    msg = sjson_parse_object((const char *)plaintext, plaintext_len, SJSON_MAX_DEPTH, why,
                             sizeof why);
    if (msg == NULL)
        FAIL(400, "malformed_json", "The confirmation payload is not a valid JSON object.");

    uint64_t version;
    size_t delivery_len, ticket_len, client_len;
    const char *delivery_id = sjson_string(msg, "delivery", &delivery_len);
    const char *ticket = sjson_string(msg, "ticket", &ticket_len);
    const json_t *client = sjson_object(msg, "client");
    const json_t *received = sjson_object(msg, "received");
    const char *client_id = client != NULL ? sjson_string(client, "id", &client_len) : NULL;
    if (!sjson_uint(msg, "v", &version) || delivery_id == NULL || ticket == NULL ||
        client_id == NULL || received == NULL)
        FAIL(400, "bad_payload", "The confirmation lacks v, delivery, ticket, client or received.");
    if (version != 1)
        FAIL(400, "bad_version", "Only version 1 confirmations are understood.");
    if (!sjson_uint(received, "size", &out->received_size) ||
        !sjson_uint(received, "at_ms", &out->received_at_ms))
        FAIL(400, "bad_payload", "received.size and received.at_ms must be whole numbers.");
    const json_t *sha = json_object_get(received, "sha256");
    if (sha == NULL || json_is_null(sha)) {
        out->has_sha256 = false;
    } else if (json_is_string(sha) &&
               b64url_decode(json_string_value(sha), json_string_length(sha), out->received_sha256,
                             sizeof out->received_sha256) == 32) {
        out->has_sha256 = true;
    } else {
        FAIL(400, "bad_payload", "received.sha256 must be null or base64url of 32 bytes.");
    }
    if (strcmp(client_id, out->client.id) != 0)
        FAIL(400, "client_mismatch", "client.id is not the thumbprint of Receipt-Client-Key.");

    switch (ticket_open(srv->svc.sealer, ticket, ticket_len, http_now_ms(), &out->ticket)) {
    case TICKET_OK:
        break;
    case TICKET_EXPIRED:
        FAIL(410, "ticket_expired", "This delivery can no longer be confirmed.");
    default:
        FAIL(401, "ticket_invalid", "The ticket is not one this server sealed.");
    }
    if (!out->ticket.bound || memcmp(out->ticket.client_id, out->client.id_raw, 32) != 0)
        FAIL(401, "ticket_not_yours", "The ticket is not bound to this client.");
    char ticket_delivery[UUID7_STR_LEN + 1];
    uuid7_format(&out->ticket.delivery, ticket_delivery);
    if (delivery_len != UUID7_STR_LEN || strcmp(ticket_delivery, delivery_id) != 0)
        FAIL(400, "delivery_mismatch", "delivery is not the ticket's delivery.");
    rc = 0;
out:
    json_decref(msg);
    if (plaintext != NULL) {
        explicit_bzero(plaintext, plaintext_len);
        free(plaintext);
    }
    return rc;
}

/* K and what it decrypted leave no copy on the stack. */
static void checked_wipe(checked *ck)
{
    explicit_bzero(ck, sizeof *ck);
}

/* The receipt JWS (PROTOCOL.md section 6); *out is malloc'd. */
static int sign_receipt(const http_server *srv, const checked *ck, const char *delivery_id,
                        ledger_status status, uint64_t confirmed_ms, char **out)
{
    char content[HTTP_CONTENT_JSON_MAX];
    char payload[CONFIRM_RECEIPT_PAYLOAD_MAX];
    const ticket_claims *t = &ck->ticket;
    if (http_content_json(t, content, sizeof content) < 0)
        return -1;
    int n = snprintf(payload, sizeof payload,
                     "{\"v\":1,\"delivery\":\"%s\",\"status\":\"%s\",%s,"
                     "\"client\":{\"id\":\"%s\"},\"server\":{\"id\":\"%s\"},"
                     "\"issued_at_ms\":%llu,\"confirmed_at_ms\":%llu}",
                     delivery_id, ledger_status_name(status), content, ck->client.id,
                     srv->svc.cfg->server_id, (unsigned long long)t->issued_ms,
                     (unsigned long long)confirmed_ms);
    if (n < 0 || (size_t)n >= sizeof payload)
        return -1;
    const eckey *sig = srv->svc.keys->sig;
    return jws_sign(sig, eckey_thumbprint(sig), (const uint8_t *)payload, (size_t)n, out) == JOSE_OK
               ? 0
               : -1;
}

static void fill_confirm_event(const http_server *srv, const request *req, const checked *ck,
                               ledger_status status, uint64_t confirmed_ms, const char *receipt,
                               ledger_event *ev)
{
    http_event_from_ticket(srv, LEDGER_EVENT_CONFIRM, &ck->ticket, ev);
    ledger_delivery *row = &ev->row;
    row->status = status;
    memcpy(row->client, ck->client.id, sizeof row->client);
    row->confirmed_ms = confirmed_ms;
    memcpy(row->confirm_addr, req->client_addr, sizeof row->confirm_addr);
    row->received_has_sha256 = ck->has_sha256;
    memcpy(row->received_sha256, ck->received_sha256, 32);
    row->received_size = ck->received_size;
    row->received_at_ms = ck->received_at_ms;
    snprintf(row->receipt, sizeof row->receipt, "%s", receipt);
}

/* Checks, signs, suspends, submits. */
static enum MHD_Result start(http_server *srv, request *req, struct MHD_Connection *c)
{
    if (atomic_load(&srv->stopping))
        return http_reply_error(req, c, 503, "shutting_down",
                                "The server is shutting down; retry shortly.");
    checked ck __attribute__((cleanup(checked_wipe)));
    failure fail = {500, "internal_error", "The confirmation could not be processed."};
    if (check(srv, c, req, &ck, &fail) != 0) {
        metrics_count_confirm(METRICS_CONFIRM_REJECTED);
        return http_reply_error(req, c, fail.status, fail.code, fail.message);
    }

    char delivery_id[UUID7_STR_LEN + 1];
    uuid7_format(&ck.ticket.delivery, delivery_id);
    ledger_status status = ck.has_sha256 && memcmp(ck.received_sha256, ck.ticket.sha256, 32) != 0
                               ? LEDGER_CORRUPTED
                               : LEDGER_CONFIRMED;
    uint64_t confirmed_ms = http_now_ms();
    char *receipt = NULL;
    if (sign_receipt(srv, &ck, delivery_id, status, confirmed_ms, &receipt) != 0 ||
        strlen(receipt) > LEDGER_RECEIPT_MAX) {
        free(receipt);
        return http_reply_error(req, c, 500, "internal_error", "The receipt could not be signed.");
    }
    ledger_event *ev = malloc(sizeof *ev);
    confirm_call *call = calloc(1, sizeof *call);
    if (ev == NULL || call == NULL) {
        free(ev);
        free(call);
        free(receipt);
        return MHD_NO;
    }
    fill_confirm_event(srv, req, &ck, status, confirmed_ms, receipt, ev);
    free(receipt);

    /* Three holders: this request, the writer's callback, the watchdog list. */
    atomic_init(&call->refs, 3);
    atomic_init(&call->state, CALL_PENDING);
    call->conn = c;
    call->waits = srv->waits;
    call->deadline_ms = monotonic_ms() + srv->waits->timeout_ms;
    req->call = call;
    req->phase = REQUEST_WAITING;

    /* Suspend before anyone can resume: a resume that came first would be
     * lost. */
    MHD_suspend_connection(c);
    confirm_waits *w = srv->waits;
    pthread_mutex_lock(&w->lock);
    call->next = w->head;
    if (w->head != NULL)
        w->head->prev = call;
    w->head = call;
    call->listed = true;
    pthread_mutex_unlock(&w->lock);

    if (writer_submit(srv->svc.ledger_writer, ev, on_ledger_done, call) != 0) {
        pthread_mutex_lock(&w->lock);
        bool was_listed = call->listed;
        unlist(w, call);
        pthread_mutex_unlock(&w->lock);
        finish(call, CALL_FAILED);
        if (was_listed)
            call_unref(call);
        call_unref(call); /* the writer's, which it will never take */
        http_note_queue_full();
    }
    free(ev);
    return MHD_YES;
}

static enum MHD_Result answer(request *req, struct MHD_Connection *c)
{
    confirm_call *call = req->call;
    int state = atomic_load(&call->state);
    if (state == CALL_FAILED || state == CALL_TIMEDOUT || state == CALL_PENDING) {
        metrics_count_confirm(METRICS_CONFIRM_UNAVAILABLE);
        return http_reply_error(req, c, 503, "ledger_unavailable",
                                "The ledger cannot record this now; retry shortly.");
    }
    const ledger_result *res = &call->result;
    if (res->outcome == LEDGER_CONFLICT) {
        metrics_count_confirm(METRICS_CONFIRM_CONFLICT);
        return http_reply_error(req, c, 409, "already_confirmed",
                                "This delivery was already confirmed by another client.");
    }
    metrics_count_confirm(res->outcome == LEDGER_SAME           ? METRICS_CONFIRM_REPEATED
                          : res->row.status == LEDGER_CORRUPTED ? METRICS_CONFIRM_CORRUPTED
                                                                : METRICS_CONFIRM_CONFIRMED);
    char body[LEDGER_RECEIPT_MAX + 256];
    int n =
        snprintf(body, sizeof body, "{\"delivery\":\"%s\",\"status\":\"%s\",\"receipt\":\"%s\"}",
                 res->row.id, ledger_status_name(res->row.status), res->row.receipt);
    if (n < 0 || (size_t)n >= sizeof body)
        return http_reply_error(req, c, 500, "internal_error", "The receipt is too large.");
    struct MHD_Response *r =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    }
    return http_queue(req, c, 200, r, (uint64_t)n);
}

enum MHD_Result confirm_serve(http_server *srv, request *req, struct MHD_Connection *c,
                              const char *upload_data, size_t *upload_data_size)
{
    switch (req->phase) {
    case REQUEST_NEW: {
        const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        if (!content_type_is_jose(type))
            return http_reply_error(req, c, 415, "unsupported_media_type",
                                    "Send the confirmation as application/jose.");
        const char *length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (length != NULL && strtoull(length, NULL, 10) > HTTP_CONFIRM_BODY_MAX)
            return http_reply_error(req, c, 413, "body_too_large",
                                    "A confirmation is at most 16 KiB.");
        req->body = malloc(HTTP_CONFIRM_BODY_MAX + 1);
        if (req->body == NULL)
            return MHD_NO;
        req->phase = REQUEST_RECEIVING;
        /* The first call has headers only; should it ever carry body bytes,
         * they must be taken now: libmicrohttpd waits for more data, not
         * for another call, when they are left unconsumed. */
        if (*upload_data_size == 0)
            return MHD_YES;
    }
        /* fall through */
    case REQUEST_RECEIVING:
        if (*upload_data_size > 0) {
            /* No answer can be queued while a body is arriving: read on,
             * keep nothing, and say 413 at the end (a chunked body has no
             * Content-Length to refuse it by up front). */
            if (req->body_len > HTTP_CONFIRM_DISCARD_MAX)
                return MHD_NO; /* past any honest mistake: close */
            if (req->too_large || req->body_len + *upload_data_size > HTTP_CONFIRM_BODY_MAX)
                req->too_large = true;
            else
                memcpy(req->body + req->body_len, upload_data, *upload_data_size);
            req->body_len += *upload_data_size;
            *upload_data_size = 0;
            return MHD_YES;
        }
        if (req->too_large)
            return http_reply_error(req, c, 413, "body_too_large",
                                    "A confirmation is at most 16 KiB.");
        req->body[req->body_len] = '\0';
        return start(srv, req, c);
    case REQUEST_WAITING:
    default:
        return answer(req, c);
    }
}
