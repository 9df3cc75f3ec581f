/*
 * http_internal: what the route handlers of the public listener share
 * (http.c, plugin.c, confirm.c). Not a public contract: only these files
 * include it.
 */
#ifndef RECEIPT_DAEMON_HTTP_INTERNAL_H
#define RECEIPT_DAEMON_HTTP_INTERNAL_H

#include "daemon/clientkeys.h"
#include "daemon/delivery.h"
#include "daemon/http.h"
#include "daemon/ledger.h"
#include "daemon/metrics.h"

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define HTTP_RAW_URI_MAX          4096 /* request-target bytes; longer: 414 */
#define HTTP_REFERER_MAX          255
#define HTTP_JWKS_MAX             4096
#define HTTP_CONFIRM_BODY_MAX     (16 * 1024)   /* PROTOCOL.md section 6: 413 above */
#define HTTP_CONFIRM_DISCARD_MAX  (1024 * 1024) /* read past the cap for the 413, then close */
#define HTTP_CONFIRM_URL_MAX      (CONFIG_URL_MAX + 32)
#define HTTP_CLIENTKEYS_CACHE     65536
#define HTTP_CONFIRM_TIMEOUT_MS   10000 /* a ledger slower than this: 503 */
#define HTTP_DRAIN_AFTER_ABORT_MS 2000  /* for the 503s of aborted confirmations */

typedef struct confirm_waits confirm_waits;
typedef struct confirm_call confirm_call;

struct http_server {
    http_services svc;
    struct MHD_Daemon *mhd;
    atomic_long in_flight;
    atomic_bool stopping; /* draining: confirmations get 503 at once */
    char jwks[HTTP_JWKS_MAX];
    size_t jwks_len;
    char jwks_etag[48];
    char agent_etag[48];
    char confirm_url[HTTP_CONFIRM_URL_MAX];
    unsigned port;
    clientkeys *client_keys;
    confirm_waits *waits;
};

typedef enum request_phase {
    REQUEST_NEW = 0,
    REQUEST_RECEIVING, /* reading a confirmation body            */
    REQUEST_WAITING,   /* suspended until the ledger has answered */
} request_phase;

/* Per request: made by the URI callback, freed when the request completes. */
typedef struct request {
    http_server *srv;
    unsigned status;
    uint64_t bytes;
    request_phase phase;
    metrics_route route;
    bool raw_path_has_nul;
    bool started;
    bool too_large; /* a confirmation body past the cap: 413 once it ends */
    size_t uri_len;
    char *body; /* confirmation body, at most HTTP_CONFIRM_BODY_MAX */
    size_t body_len;
    confirm_call *call;
    char client_addr[LEDGER_ADDR_MAX + 1];
    char user_agent[LEDGER_UA_MAX + 1];
    char referer[HTTP_REFERER_MAX + 1];
    char method[16];
    char version[16];
    char uri[]; /* as received, at most HTTP_RAW_URI_MAX bytes kept */
} request;

uint64_t http_now_ms(void);

/* Counts a request refused because the ledger queue is full, and logs the
 * count at most once a second: an overload must not also flood the log. */
void http_note_queue_full(void);

/* Queues r (destroying the handle) and records status and body size. */
enum MHD_Result http_queue(request *req, struct MHD_Connection *c, unsigned status,
                           struct MHD_Response *r, uint64_t body_bytes);

/* The JSON error body of PROTOCOL.md section 6. */
struct MHD_Response *http_error_response(unsigned status, const char *code, const char *message,
                                         size_t *len);
enum MHD_Result http_reply_error(request *req, struct MHD_Connection *c, unsigned status,
                                 const char *code, const char *message);
enum MHD_Result http_reply_method_not_allowed(request *req, struct MHD_Connection *c,
                                              const char *allow);
/* 204 to a CORS preflight for the protocol endpoints. */
enum MHD_Result http_reply_preflight(request *req, struct MHD_Connection *c, const char *allow);

/* Writes s as the contents of a JSON string (no quotes); -1 if it does not
 * fit or is not valid UTF-8. */
int http_json_escape(const char *s, size_t n, char *out, size_t cap, size_t *out_len);

/*
 * Starts a ledger event of kind from a ticket's issuance fields (ID, path,
 * digest, size, issue time) and this server's ID; everything else is
 * cleared but the receipt, which only a confirmation carries (2 KiB less to
 * clear per delivery): it is set to "".
 */
void http_event_from_ticket(const http_server *srv, ledger_event_kind kind, const ticket_claims *t,
                            ledger_event *ev);

/* The "content" member of plug-in data and receipts (path, sha256, size of
 * the ticket's content); returns its length, or -1 if it does not fit. */
#define HTTP_CONTENT_JSON_MAX (TICKET_PATH_MAX * 6 + 160)
int http_content_json(const ticket_claims *t, char *out, size_t cap);

/* ---- plugin.c ---- */

#define PLUGIN_PAYLOAD_MAX 4096

/*
 * The plug-in JWE of PROTOCOL.md section 5 for delivery d (whose ticket is
 * bound to client ck), seen from client_addr. *out is malloc'd.
 */
int plugin_seal(const http_server *srv, const delivery *d, const clientkey *ck,
                const char *client_addr, char **out);

/* GET /_receipt/plugin/<ticket> */
enum MHD_Result plugin_serve(http_server *srv, request *req, struct MHD_Connection *c,
                             const char *ticket);

/* Looks up Receipt-Client-Key: 1 found and valid (ck set), 0 absent, -1 invalid. */
int plugin_client_key(http_server *srv, struct MHD_Connection *c, clientkey *ck);

/* ---- confirm.c ---- */

confirm_waits *confirm_waits_new(unsigned timeout_ms);
/* Answers every waiting confirmation 503 now; returns how many there were. */
size_t confirm_waits_abort(confirm_waits *waits);
/* Only once the ledger writer is stopped: its callbacks use the waits. */
void confirm_waits_free(confirm_waits *waits);

/* POST /_receipt/confirm, every call of the request (body chunks, resume). */
enum MHD_Result confirm_serve(http_server *srv, request *req, struct MHD_Connection *c,
                              const char *upload_data, size_t *upload_data_size);

/* Drops the request's hold on its confirmation, if any (request completed). */
void confirm_release(request *req);

#endif
