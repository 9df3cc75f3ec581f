/*
 * rc_http: one HTTP exchange on the client's curl handle, and the parsing
 * of the response fields the protocol uses.
 *
 * The body of a 200 answer goes to a sink as it arrives (nothing is held
 * in memory), or is collected up to a cap; other answers' bodies are
 * collected up to RC_HTTP_ERROR_BODY_MAX for the error message. Only the
 * response fields named in rc_http_response are kept, each up to
 * RC_HTTP_FIELD_MAX bytes; longer ones fail the exchange.
 */
#ifndef RECEIPT_LIB_RC_HTTP_H
#define RECEIPT_LIB_RC_HTTP_H

#include "lib/rc_client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_HTTP_FIELD_MAX      (16 * 1024)
#define RC_HTTP_ERROR_BODY_MAX (4 * 1024)
#define RC_HTTP_MAX_REDIRECTS  5

/* Receives body bytes of a 200 answer; non-zero stops the transfer. */
typedef int (*rc_http_sink)(const void *data, size_t n, void *user);

typedef struct rc_http_request {
    const char *url;
    const char *client_key; /* Receipt-Client-Key value, or NULL        */
    const char *accept;     /* Accept value, or NULL                    */
    const char *body;       /* POST when not NULL                       */
    size_t body_len;
    const char *content_type; /* of the POST body                         */
    rc_http_sink sink;        /* NULL: collect the body, up to body_cap   */
    void *sink_user;
    size_t body_cap;
    bool download; /* stall timeout and progress, no total one */
    bool follow;   /* follow redirects (http and https only)   */
} rc_http_request;

typedef struct rc_http_response {
    long status; /* 0 when no HTTP answer came                      */
    char *body;  /* collected body (malloc'd, NUL-terminated)       */
    size_t body_len;
    char *delivery;        /* Receipt-Delivery                                */
    char *repr_digest;     /* Repr-Digest                                     */
    char *plugin;          /* Receipt-Plugin                                  */
    char *ticket;          /* Receipt-Ticket                                  */
    char *content_type;    /* Content-Type                                    */
    long retry_after_s;    /* Retry-After in seconds, -1 when absent          */
    char *effective_url;   /* the URL finally answered, after redirects       */
    bool sink_stopped;     /* the sink asked to stop                          */
    bool progress_stopped; /* the progress callback asked to stop             */
} rc_http_response;

/*
 * Performs the request. Returns RECEIPT_OK when an HTTP answer came (any
 * status: the caller judges it), RECEIPT_ERR_NETWORK when none did,
 * RECEIPT_ERR_ABORTED when a callback stopped it, RECEIPT_ERR_PROTOCOL for
 * an oversized field or body; the client's message is set on failure.
 * resp must be zeroed or cleared; it is filled in every case.
 */
receipt_result rc_http_perform(receipt_client *c, const rc_http_request *req,
                               rc_http_response *resp);

void rc_http_response_clear(rc_http_response *resp);

/* Whether a status (0: no answer) is worth retrying: 429 and 5xx. */
bool rc_http_retryable(long status);

/*
 * Parses a Repr-Digest field value and extracts the sha-256 member
 * ("sha-256=:<standard base64>:", among others, in any order). Returns 0
 * and fills out, or -1 when there is no well-formed sha-256 member.
 */
int rc_http_parse_repr_digest(const char *value, uint8_t out[32]);

/* Retry-After as delay-seconds or an HTTP date; -1 when unparseable. */
long rc_http_parse_retry_after(const char *value, uint64_t now_ms);

/*
 * A short description of an error answer for a person:
 * "HTTP 409 already_confirmed: <message>" from the JSON error body when
 * there is one, else "HTTP 409".
 */
void rc_http_describe_error(const rc_http_response *resp, char *out, size_t outlen);

#endif
