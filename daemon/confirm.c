#include "daemon/confirm.h"

#include "common/jose.h"
#include "daemon/clock.h"
#include "daemon/confirm_check.h"
#include "daemon/delivery.h"
#include "daemon/evidence.h"
#include "daemon/http_reply.h"
#include "daemon/log.h"
#include "daemon/lru.h"
#include "daemon/tlog_read.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CONFIRM_RECEIPT_PAYLOAD_MAX 4096
#define CONFIRM_ANSWER_MAX          (64 * 1024) /* the receipt and the proof, escaped */
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
    http_loop *loop; /* that resumes conn */
    confirm_waits *waits;
    uint64_t deadline_ms;
    lru_link link; /* in the watchdog's list while pending (listed) */
    bool listed;
    writer_result refused; /* why the writer did not take it, if it did not */
    ledger_result *result; /* the writer's, once it called back with ok */
};

struct confirm_waits {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool stopping;
    unsigned timeout_ms;
    lru_list pending; /* calls waiting for the ledger, newest first */
};

static void call_unref(confirm_call *call)
{
    if (call == NULL)
        return;
    int before = atomic_fetch_sub(&call->refs, 1);
    assert(before > 0);
    if (before == 1) {
        assert(!call->listed); /* the watchdog's list holds a reference */
        writer_result_free(call->result);
        free(call);
    }
}

/* Caller holds waits->lock. */
static void unlist(confirm_waits *w, confirm_call *call)
{
    if (!call->listed)
        return;
    lru_unlink(&w->pending, &call->link);
    call->listed = false;
}

/* Moves a pending call to state and wakes its connection; false if someone
 * else already decided. */
static bool finish(confirm_call *call, call_state state)
{
    int expected = CALL_PENDING;
    if (!atomic_compare_exchange_strong(&call->state, &expected, state))
        return false;
    http_loop_resume(call->loop, call->conn);
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
        uint64_t now = clock_mono_ms();
        lru_link *link = w->pending.head;
        while (link != NULL) {
            lru_link *next = link->next;
            confirm_call *call = LRU_ENTRY(link, confirm_call, link);
            if (now >= call->deadline_ms) {
                unlist(w, call);
                expired += finish(call, CALL_TIMEDOUT);
                call_unref(call); /* the list's reference */
            }
            link = next;
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
    while (w->pending.head != NULL) {
        confirm_call *call = LRU_ENTRY(w->pending.head, confirm_call, link);
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
    while (w->pending.head != NULL) {
        confirm_call *call = LRU_ENTRY(w->pending.head, confirm_call, link);
        unlist(w, call);
        call_unref(call);
    }
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/*
 * The writer's part ends: takes the call off the watchdog's list, decides
 * the answer unless the watchdog did first, and drops the writer's
 * reference (and the list's, unless the watchdog took it). For the
 * callback of a batch and for a submit that was refused alike.
 */
static void settle(confirm_call *call, call_state state)
{
    confirm_waits *w = call->waits;
    pthread_mutex_lock(&w->lock);
    bool was_listed = call->listed;
    unlist(w, call);
    pthread_mutex_unlock(&w->lock);
    finish(call, state);
    if (was_listed)
        call_unref(call);
    call_unref(call);
}

/* Writer thread: the batch holding the confirmation committed, or failed. */
static void on_ledger_done(void *arg, bool ok, ledger_result *result)
{
    confirm_call *call = arg;
    if (ok)
        call->result = result;
    /* When the watchdog answered 503 first, the row is written all the same,
     * and the client's retry gets it back unchanged. */
    settle(call, ok ? CALL_DONE : CALL_FAILED);
}

void confirm_release(request *req)
{
    call_unref(req->call);
    req->call = NULL;
}

/* ---- answering ---------------------------------------------------------- */

static bool content_type_is_jose(const char *value)
{
    if (value == NULL)
        return false;
    size_t n = strlen("application/jose");
    if (strncasecmp(value, "application/jose", n) != 0)
        return false;
    return value[n] == '\0' || value[n] == ';' || value[n] == ' ';
}

/* The receipt JWS (docs/protocol.md section 8.4); *out is malloc'd. */
static int sign_receipt(const http_context *ctx, const confirm_check_result *ck,
                        uint64_t confirmed_ms, char **out)
{
    char payload[CONFIRM_RECEIPT_PAYLOAD_MAX];
    const ticket_claims *t = &ck->ticket;
    jbuf b;
    jbuf_init(&b, payload, sizeof payload);
    jbuf_adds(&b, "{\"v\":1");
    jbuf_member_str(&b, "delivery", ck->delivery_id);
    jbuf_member_str(&b, "status", ledger_status_name(ck->status));
    delivery_content_json(&b, t);
    jbuf_key(&b, "client");
    jbuf_adds(&b, "{");
    jbuf_member_str(&b, "id", ck->client.id);
    jbuf_adds(&b, "}");
    jbuf_key(&b, "server");
    jbuf_adds(&b, "{");
    jbuf_member_str(&b, "id", ctx->cfg->server_id);
    jbuf_member_str(&b, "node", ctx->cfg->node_id);
    jbuf_member_str(&b, "url", ctx->cfg->public_url);
    jbuf_member_str(&b, "jwks", ctx->jwks_url);
    jbuf_adds(&b, "}");
    jbuf_member_u64(&b, "issued_at_ms", t->issued_ms);
    jbuf_member_u64(&b, "confirmed_at_ms", confirmed_ms);
    jbuf_adds(&b, "}");
    if (b.failed)
        return -1;
    const eckey *sig = ctx->keys->sig;
    return jws_sign(sig, eckey_thumbprint(sig), (const uint8_t *)b.data, b.len, out) == JOSE_OK
               ? 0
               : -1;
}

static void fill_confirm_event(const http_context *ctx, const request *req,
                               const confirm_check_result *ck, uint64_t confirmed_ms,
                               const char *receipt, ledger_event *ev)
{
    delivery_event_start(LEDGER_EVENT_CONFIRM, &ck->ticket, ctx->cfg->server_id, ctx->cfg->node_id,
                         ev);
    ledger_delivery *row = &ev->row;
    row->status = ck->status;
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
static enum MHD_Result start(http_context *ctx, request *req, struct MHD_Connection *c)
{
    if (atomic_load(&ctx->stopping))
        return http_reply_error(req, c, 503, "shutting_down",
                                "The server is shutting down; retry shortly.");
    const confirm_check_keys keys = {
        .client_keys = ctx->client_keys,
        .server_kid = eckey_thumbprint(ctx->keys->enc),
        .sealer = ctx->sealer,
    };
    confirm_check_result ck __attribute__((cleanup(confirm_check_wipe)));
    confirm_check_failure fail;
    if (confirm_check(&keys, MHD_lookup_connection_value(c, MHD_HEADER_KIND, CLIENTKEYS_HEADER),
                      req->body, req->body_len, clock_wall_ms(), &ck, &fail) != 0) {
        metrics_count_confirm(METRICS_CONFIRM_REJECTED);
        return http_reply_error(req, c, fail.status, fail.code, fail.message);
    }

    uint64_t confirmed_ms = clock_wall_ms();
    char *receipt = NULL;
    if (sign_receipt(ctx, &ck, confirmed_ms, &receipt) != 0 ||
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
    fill_confirm_event(ctx, req, &ck, confirmed_ms, receipt, ev);
    free(receipt);

    /* Three holders: this request, the writer's callback, the watchdog list. */
    atomic_init(&call->refs, 3);
    atomic_init(&call->state, CALL_PENDING);
    call->conn = c;
    call->loop = ctx->loop;
    call->waits = ctx->waits;
    call->deadline_ms = clock_mono_ms() + ctx->waits->timeout_ms;
    req->call = call;
    req->phase = REQUEST_WAITING;

    /* Suspend before anyone can resume: a resume that came first would be
     * lost. */
    MHD_suspend_connection(c);
    confirm_waits *w = ctx->waits;
    pthread_mutex_lock(&w->lock);
    lru_push_front(&w->pending, &call->link);
    call->listed = true;
    pthread_mutex_unlock(&w->lock);

    writer_result refused = writer_submit(ctx->ledger_writer, ev, on_ledger_done, call);
    if (refused != WRITER_OK) {
        /* The writer will never call back: its part ends here. */
        call->refused = refused;
        settle(call, CALL_FAILED);
    }
    free(ev);
    return MHD_YES;
}

/*
 * The proof of a delivery's confirmation leaf, read from the ledger (on a
 * reading handle: the writer's thread has other work). Returns 1 with *out
 * malloc'd, 0 when the log has no leaf of it (confirmed while no log was
 * kept), or -1 when it cannot be read now.
 */
static int repeated_proof(http_context *ctx, const char *id, ledger_proof **out)
{
    char err[LEDGER_ERR_MAX] = "";
    uint64_t leaf = 0;
    *out = NULL;
    ledger *lg = readpool_take(ctx->log_readers);
    if (lg == NULL)
        return -1;
    int found = tlog_read_confirmation_leaf(lg, id, &leaf, err, sizeof err);
    if (found == 1) {
        *out = malloc(sizeof **out);
        if (*out == NULL || tlog_read_proof(lg, leaf, 0, *out, err, sizeof err) != 0) {
            free(*out);
            *out = NULL;
            found = -1;
        }
    }
    readpool_give(ctx->log_readers, lg, found < 0);
    if (found < 0)
        log_error("evidence log: the proof of the confirmation of %s: %s", id, err);
    return found;
}

static enum MHD_Result answer(request *req, struct MHD_Connection *c)
{
    confirm_call *call = req->call;
    int state = atomic_load(&call->state);
    if (state == CALL_FAILED || state == CALL_TIMEDOUT || state == CALL_PENDING) {
        metrics_count_confirm(METRICS_CONFIRM_UNAVAILABLE);
        return http_reply_refused(req, c,
                                  call->refused != WRITER_OK ? call->refused : WRITER_FAILING);
    }
    const ledger_result *res = call->result;
    if (res->outcome == LEDGER_CONFLICT) {
        metrics_count_confirm(METRICS_CONFIRM_CONFLICT);
        return http_reply_error(req, c, 409, "already_confirmed",
                                "This delivery was already confirmed by another client.");
    }
    metrics_count_confirm(res->outcome == LEDGER_SAME           ? METRICS_CONFIRM_REPEATED
                          : res->row.status == LEDGER_CORRUPTED ? METRICS_CONFIRM_CORRUPTED
                                                                : METRICS_CONFIRM_CONFIRMED);
    const ledger_proof *proof = res->proof.present ? &res->proof : NULL;
    ledger_proof *repeated = NULL;
    if (res->outcome == LEDGER_SAME && req->ctx->log != NULL) {
        /* The same receipt again, and the proof of the first answer's leaf. */
        int found = repeated_proof(req->ctx, res->row.id, &repeated);
        if (found < 0)
            return http_reply_error(req, c, 503, "proof_unavailable",
                                    "The log's proof cannot be read now; retry shortly.");
        proof = repeated;
    }
    jbuf b;
    jbuf_init_growing(&b, NULL, 0, CONFIRM_ANSWER_MAX);
    jbuf_adds(&b, "{");
    jbuf_member_str(&b, "delivery", res->row.id);
    jbuf_member_str(&b, "status", ledger_status_name(res->row.status));
    jbuf_member_str(&b, "receipt", res->row.receipt);
    if (proof != NULL) {
        jbuf_key(&b, "proof");
        evidence_proof_json(&b, proof);
    }
    jbuf_adds(&b, "}");
    free(repeated);
    if (b.failed) {
        jbuf_free(&b);
        return http_reply_error(req, c, 500, "internal_error", "The answer is too large.");
    }
    size_t len = b.len;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, jbuf_take(&b, NULL), MHD_RESPMEM_MUST_FREE);
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    }
    return http_reply_queue(req, c, 200, r, len);
}

enum MHD_Result confirm_serve(http_context *ctx, request *req, struct MHD_Connection *c,
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
        return start(ctx, req, c);
    case REQUEST_WAITING:
    default:
        return answer(req, c);
    }
}
