/*
 * cycle: load client for the full delivery cycle of docs/protocol.md, run by
 * bench/run against receiptd.
 *
 * It makes --clients P-256 client keys, fetches /_receipt/jwks.json once and
 * derives K for every client. Then --connections keep-alive connections,
 * spread over --threads threads (one epoll loop each, non-blocking sockets),
 * each repeat:
 *
 *   GET PATH with Receipt-Client-Key     -> 200 with Receipt-Plugin (a JWE)
 *   decrypt it with the client's K       -> delivery, bound ticket, content
 *   encrypt the confirmation of section 6 (received.sha256 the digest of the
 *   received body when it matches the content's, null otherwise, as a browser
 *   sends)
 *   POST it to the plug-in data's confirm path -> 200 {"status":"confirmed"}
 *
 * The answer must be one JSON object naming the delivery, its status and a
 * receipt; every --parse-every'th (16th) is parsed whole and strictly, the
 * others are checked by those members (check_answer()), so that the client's
 * JSON does not weigh on the cores it shares with the server more than the
 * server's. Answers that carry an evidence-log proof are counted.
 *
 * A cycle counts when its confirmation is answered inside the measured
 * window (after --warmup seconds, for --duration seconds). Every failure is
 * counted by kind or HTTP status, and the connection is opened anew.
 *
 * Output: a summary on stderr and, with --json, one JSON object on stdout.
 * Exit status 0 when cycles completed without a single error, 1 otherwise.
 */
#include "common/b64.h"
#include "common/eckey.h"
#include "common/jose.h"
#include "common/kdf.h"
#include "common/sjson.h"
#include "common/uuid7.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RESP_MAX         (256 * 1024) /* one response, head and body */
#define REQ_MAX          (32 * 1024)  /* one request, head and body */
#define CLIENTS_MAX      4096
#define CONNECTIONS_MAX  10000
#define THREADS_MAX      64
#define DURATION_MAX     3600
#define PATH_MAX_LEN     1024
#define EVENTS_MAX       256
#define JWKS_TIMEOUT_S   5
#define STATUS_MAX       600
#define CONNECT_PAUSE_NS (10 * 1000 * 1000)
#define STALL_NS         (2000ull * 1000 * 1000) /* no answer for this long: say who waits */

typedef enum err_kind {
    E_CONNECT,
    E_IO,
    E_CLOSED,
    E_HTTP,
    E_NO_PLUGIN,
    E_DECRYPT,
    E_PLUGIN,
    E_ENCRYPT,
    E_ANSWER,
    E_CORRUPTED,
    E_KINDS
} err_kind;

static const char *const err_names[E_KINDS] = {
    "connect",
    "io",
    "closed_by_server",
    "malformed_http",
    "no_plugin_header",
    "decrypt",
    "bad_plugin_data",
    "encrypt",
    "bad_confirm_answer",
    "corrupted",
};

typedef struct options {
    const char *host;
    int port;
    const char *path;
    long clients;
    long connections;
    long threads;
    double duration;
    double warmup;
    long parse_every;
    bool json;
} options;

typedef struct client {
    eckey *key;
    char id[ECKEY_THUMBPRINT_LEN + 1];
    char header[ECKEY_POINT_B64_LEN + 1];
    uint8_t k[KDF_KEY_LEN];
} client;

typedef struct stats {
    uint64_t cycles;          /* confirmed inside the measured window */
    uint64_t all_cycles;      /* confirmed, warm-up included */
    uint64_t digests;         /* confirmations that carried a sha256 */
    uint64_t proofs;          /* answers with an evidence-log proof */
    uint64_t answers;         /* confirmation answers checked, warm-up included */
    uint64_t reconnects;      /* connections the server closed with Connection: close */
    uint64_t waiting_get;     /* at the end: GETs sent and not answered */
    uint64_t waiting_confirm; /* at the end: confirmations sent and not answered */
    uint64_t errors[E_KINDS];
    uint64_t get_status[STATUS_MAX];
    uint64_t post_status[STATUS_MAX];
    uint32_t *lat_us; /* cycle latencies inside the window, microseconds */
    size_t lat_n;
    size_t lat_cap;
} stats;

typedef struct response {
    int status;
    const char *body;
    size_t body_len;
    size_t total; /* bytes of the buffer this response took */
    const char *plugin;
    size_t plugin_len;
    bool close;
    char *chunked; /* decoded body when chunked; malloc'd */
} response;

typedef enum conn_state { ST_IDLE, ST_CONNECTING, ST_SEND, ST_RECV } conn_state;
typedef enum conn_phase { PH_GET, PH_POST } conn_phase;

typedef struct conn {
    int fd;
    uint32_t gen; /* bumped on every open, to drop stale events */
    uint32_t events;
    conn_state st;
    conn_phase ph;
    client *cl;
    char *out;
    size_t out_len;
    size_t out_off;
    char *in;
    size_t in_len;
    uint64_t started_ns;
    uint64_t sent_ns;  /* when the request now on the wire was started */
    bool pending_post; /* the confirmation waits for a new connection */
    bool digest_sent;
    char delivery[UUID7_STR_LEN + 1];
} conn;

typedef struct worker {
    pthread_t tid;
    size_t index;
    int ep;
    conn *conns;
    size_t n;
    size_t next_client;
    uint64_t connect_failed_ns; /* last failure to connect */
    uint64_t answered_ns;       /* last response of any connection */
    bool stall_reported;        /* since that response */
    stats st;
    bool failed;
} worker;

static struct {
    options opt;
    client *clients;
    eckey *server_enc;
    char server_kid[JOSE_KID_MAX + 1];
    struct sockaddr_in addr;
    char hostport[64];
    uint64_t measure_from_ns;
    uint64_t end_ns;
    EVP_MD *sha256;
} g;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool is_b64url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return n > 0;
}

/* -------------------------------------------------------------------------
 * HTTP/1.1 responses
 */

static bool header_is(const char *line, size_t n, const char *name, const char **value,
                      size_t *value_len)
{
    size_t len = strlen(name);
    if (n <= len || line[len] != ':' || strncasecmp(line, name, len) != 0)
        return false;
    const char *v = line + len + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *value = v;
    *value_len = (size_t)(end - v);
    return true;
}

/* Decodes a chunked body starting at p; 1 done, 0 need more, -1 malformed. */
static int parse_chunked(const char *p, size_t n, response *r)
{
    size_t off = 0, out = 0;
    char *body = malloc(n + 1);
    int rc = -1;
    if (body == NULL)
        goto cleanup;
    for (;;) {
        const char *eol = memmem(p + off, n - off, "\r\n", 2);
        if (eol == NULL) {
            rc = 0;
            goto cleanup;
        }
        char *endp = NULL;
        unsigned long size = strtoul(p + off, &endp, 16);
        if (endp == p + off || size > RESP_MAX)
            goto cleanup;
        off = (size_t)(eol - p) + 2;
        if (size == 0)
            break;
        if (n - off < size + 2) {
            rc = 0;
            goto cleanup;
        }
        if (p[off + size] != '\r' || p[off + size + 1] != '\n')
            goto cleanup;
        memcpy(body + out, p + off, size);
        out += size;
        off += size + 2;
    }
    /* Trailers, if any, end with an empty line. */
    for (;;) {
        const char *eol = memmem(p + off, n - off, "\r\n", 2);
        if (eol == NULL) {
            rc = 0;
            goto cleanup;
        }
        bool empty = eol == p + off;
        off = (size_t)(eol - p) + 2;
        if (empty)
            break;
    }
    body[out] = '\0';
    r->chunked = body;
    r->body = body;
    r->body_len = out;
    r->total += off;
    body = NULL;
    rc = 1;
cleanup:
    free(body);
    return rc;
}

/* 1: a whole response is in buf; 0: need more bytes; -1: malformed. */
static int parse_response(const char *buf, size_t len, response *r)
{
    memset(r, 0, sizeof(*r));
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (end == NULL)
        return len >= RESP_MAX ? -1 : 0;
    size_t head = (size_t)(end - buf) + 4;
    if (head < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return -1;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        status = status * 10 + (buf[i] - '0');
    }
    r->status = status;
    if (memcmp(buf, "HTTP/1.0", 8) == 0)
        r->close = true;

    bool have_length = false, chunked = false;
    uint64_t length = 0;
    const char *line = (const char *)memchr(buf, '\n', head) + 1;
    while (line < buf + head - 2) {
        const char *eol = memmem(line, (size_t)(buf + head - line), "\r\n", 2);
        size_t n = (size_t)(eol - line);
        const char *v;
        size_t vn;
        if (header_is(line, n, "Content-Length", &v, &vn)) {
            char tmp[24];
            char *endp = NULL;
            if (vn == 0 || vn >= sizeof(tmp))
                return -1;
            memcpy(tmp, v, vn);
            tmp[vn] = '\0';
            length = strtoull(tmp, &endp, 10);
            if (*endp != '\0' || length > RESP_MAX)
                return -1;
            have_length = true;
        } else if (header_is(line, n, "Transfer-Encoding", &v, &vn)) {
            chunked = vn >= 7 && strncasecmp(v + vn - 7, "chunked", 7) == 0;
        } else if (header_is(line, n, "Connection", &v, &vn)) {
            if (vn == 5 && strncasecmp(v, "close", 5) == 0)
                r->close = true;
        } else if (header_is(line, n, "Receipt-Plugin", &v, &vn)) {
            r->plugin = v;
            r->plugin_len = vn;
        }
        line = eol + 2;
    }

    r->total = head;
    if (status == 204 || status == 304 || (status >= 100 && status < 200))
        return 1;
    if (chunked)
        return parse_chunked(buf + head, len - head, r);
    if (!have_length)
        return -1; /* a body up to the close: not on a keep-alive benchmark */
    if (len - head < length)
        return len >= RESP_MAX ? -1 : 0;
    r->body = buf + head;
    r->body_len = (size_t)length;
    r->total = head + (size_t)length;
    return 1;
}

/* -------------------------------------------------------------------------
 * statistics
 */

static void count_error(worker *w, err_kind kind)
{
    w->st.errors[kind]++;
}

static int record_latency(stats *st, uint64_t ns)
{
    if (st->lat_n == st->lat_cap) {
        size_t cap = st->lat_cap ? st->lat_cap * 2 : 65536;
        uint32_t *p = realloc(st->lat_us, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        st->lat_us = p;
        st->lat_cap = cap;
    }
    uint64_t us = ns / 1000u;
    st->lat_us[st->lat_n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double percentile_ms(const uint32_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0.0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1000.0;
}

/* -------------------------------------------------------------------------
 * connections
 */

static void conn_close(worker *w, conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->st = ST_IDLE;
    c->events = 0;
    c->in_len = 0;
    c->out_off = 0;
}

static int set_events(worker *w, conn *c, uint32_t events)
{
    if (c->events == events)
        return 0;
    struct epoll_event ev = {.events = events,
                             .data.u64 = ((uint64_t)(size_t)(c - w->conns) << 32) | c->gen};
    int op = c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(w->ep, op, c->fd, &ev) != 0)
        return -1;
    c->events = events;
    return 0;
}

static int flush(worker *w, conn *c);
static void conn_fail(worker *w, conn *c, err_kind kind);

static void start_get(worker *w, conn *c)
{
    c->cl = &g.clients[w->next_client++ % (size_t)g.opt.clients];
    int n = snprintf(c->out, REQ_MAX,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nReceipt-Client-Key: %s\r\n"
                     "User-Agent: receipt-bench-cycle\r\n\r\n",
                     g.opt.path, g.hostport, c->cl->header);
    c->out_len = (size_t)n;
    c->out_off = 0;
    c->in_len = 0;
    c->ph = PH_GET;
    c->st = ST_SEND;
    c->started_ns = now_ns();
    c->sent_ns = c->started_ns;
    flush(w, c);
}

/* A connection is up: sends the waiting confirmation or starts a cycle. */
static void on_connected(worker *w, conn *c)
{
    if (c->pending_post) {
        c->pending_post = false;
        c->ph = PH_POST;
        c->st = ST_SEND;
        c->sent_ns = now_ns();
        c->out_off = 0;
        c->in_len = 0;
        flush(w, c);
        return;
    }
    start_get(w, c);
}

static void conn_open(worker *w, conn *c)
{
    c->gen++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail(w, c, E_CONNECT);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (const struct sockaddr *)&g.addr, sizeof(g.addr)) == 0) {
        on_connected(w, c);
        return;
    }
    if (errno != EINPROGRESS) {
        conn_fail(w, c, E_CONNECT);
        return;
    }
    c->st = ST_CONNECTING;
    if (set_events(w, c, EPOLLOUT) != 0)
        conn_fail(w, c, E_IO);
}

/* Counts the failure and closes; the worker loop opens the connection
 * again, after a pause when connecting failed (no spinning on a dead server). */
static void conn_fail(worker *w, conn *c, err_kind kind)
{
    count_error(w, kind);
    conn_close(w, c);
    c->pending_post = false;
    if (kind == E_CONNECT)
        w->connect_failed_ns = now_ns();
}

static int flush(worker *w, conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (set_events(w, c, EPOLLOUT) != 0)
                goto fail;
            return 0;
        }
        goto fail;
    }
    c->st = ST_RECV;
    c->in_len = 0;
    if (set_events(w, c, EPOLLIN) != 0)
        goto fail;
    return 0;
fail:
    conn_fail(w, c, E_IO);
    return -1;
}

/* The confirm path from the plug-in data's absolute URL, or the default. */
static const char *confirm_path(const char *url, size_t n)
{
    const char *p = memmem(url, n, "://", 3);
    if (p == NULL)
        return "/_receipt/confirm";
    p = memchr(p + 3, '/', n - (size_t)(p + 3 - url));
    return p == NULL ? "/_receipt/confirm" : p;
}

/* The plug-in data received: builds and queues the confirmation. */
static err_kind make_confirmation(conn *c, const response *r)
{
    err_kind kind = E_PLUGIN;
    jose_header hdr;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    json_t *obj = NULL;
    char *token = NULL;
    char payload[2048];

    if (jwe_decrypt(c->cl->k, r->plugin, r->plugin_len, &hdr, &plain, &plain_len) != JOSE_OK) {
        kind = E_DECRYPT;
        goto cleanup;
    }
    if (strcmp(hdr.cty, JOSE_CTY_PLUGIN) != 0 || strcmp(hdr.kid, c->cl->id) != 0 ||
        strcmp(hdr.skid, g.server_kid) != 0)
        goto cleanup;
    obj = sjson_parse_object((const char *)plain, plain_len, SJSON_MAX_DEPTH, NULL, 0);
    if (obj == NULL)
        goto cleanup;

    size_t delivery_len = 0, ticket_len = 0, sha_len = 0, confirm_len = 0;
    const char *delivery = sjson_string(obj, "delivery", &delivery_len);
    const char *ticket = sjson_string(obj, "ticket", &ticket_len);
    const json_t *content = sjson_object(obj, "content");
    const json_t *server = sjson_object(obj, "server");
    const char *sha = content ? sjson_string(content, "sha256", &sha_len) : NULL;
    const char *confirm = server ? sjson_string(server, "confirm", &confirm_len) : NULL;
    uuid7 id;
    if (delivery == NULL || uuid7_parse(delivery, delivery_len, &id) != 0 || ticket == NULL ||
        ticket_len > 512 || !is_b64url(ticket, ticket_len) || sha == NULL)
        goto cleanup;
    memcpy(c->delivery, delivery, UUID7_STR_LEN);
    c->delivery[UUID7_STR_LEN] = '\0';

    /* The digest of what was received, sent when it is the stored one. */
    uint8_t md[32];
    char got[48];
    char digest[52] = "null";
    c->digest_sent = false;
    if (EVP_Digest(r->body, r->body_len, md, NULL, g.sha256, NULL) != 1) {
        kind = E_ENCRYPT;
        goto cleanup;
    }
    b64url_encode(md, sizeof(md), got);
    if (sha_len == strlen(got) && memcmp(sha, got, sha_len) == 0) {
        snprintf(digest, sizeof(digest), "\"%s\"", got);
        c->digest_sent = true;
    }

    int n =
        snprintf(payload, sizeof(payload),
                 "{\"v\":1,\"delivery\":\"%s\",\"ticket\":\"%.*s\",\"client\":{\"id\":\"%s\"},"
                 "\"received\":{\"sha256\":%s,\"size\":%zu,\"at_ms\":%" PRIu64 "}}",
                 c->delivery, (int)ticket_len, ticket, c->cl->id, digest, r->body_len, unix_ms());
    if (n < 0 || (size_t)n >= sizeof(payload))
        goto cleanup;
    if (jwe_encrypt(c->cl->k, c->cl->id, g.server_kid, JOSE_CTY_CONFIRM, (const uint8_t *)payload,
                    (size_t)n, NULL, &token) != JOSE_OK) {
        kind = E_ENCRYPT;
        goto cleanup;
    }

    /* jansson's strings are NUL-terminated: so is the path. */
    const char *path = confirm ? confirm_path(confirm, confirm_len) : "/_receipt/confirm";
    size_t plen = strlen(path);
    if (plen > PATH_MAX_LEN)
        goto cleanup;
    for (size_t i = 0; i < plen; i++) {
        if ((unsigned char)path[i] <= ' ' || path[i] == 0x7f)
            goto cleanup;
    }

    size_t token_len = strlen(token);
    int m = snprintf(c->out, REQ_MAX,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/jose\r\n"
                     "Receipt-Client-Key: %s\r\nContent-Length: %zu\r\n"
                     "User-Agent: receipt-bench-cycle\r\n\r\n",
                     path, g.hostport, c->cl->header, token_len);
    if (m < 0 || (size_t)m + token_len > REQ_MAX)
        goto cleanup;
    memcpy(c->out + m, token, token_len);
    c->out_len = (size_t)m + token_len;
    c->out_off = 0;
    kind = E_KINDS; /* no error */
cleanup:
    free(token);
    json_decref(obj);
    free(plain);
    return kind;
}

/* The string value of member "name" in the JSON text, found by its key:
 * a quote in a JSON text that is not inside a string opens a key or a value,
 * so "name":" can only be a member. NULL when absent or not a plain string
 * (one with escapes is not taken). */
static const char *find_member(const char *body, size_t n, const char *name, size_t *len)
{
    char key[32];
    int k = snprintf(key, sizeof key, "\"%s\":\"", name);
    if (k < 0 || (size_t)k >= sizeof key)
        return NULL;
    const char *at = memmem(body, n, key, (size_t)k);
    if (at == NULL)
        return NULL;
    const char *v = at + k, *end = body + n;
    const char *q = memchr(v, '"', (size_t)(end - v));
    if (q == NULL || memchr(v, '\\', (size_t)(q - v)) != NULL)
        return NULL;
    *len = (size_t)(q - v);
    return v;
}

/*
 * Checks the confirmation's answer; E_KINDS when confirmed for this delivery.
 * Every --parse-every'th answer of a thread is parsed whole, strictly
 * (sjson); the others are checked by their members alone: one object, the
 * delivery, the status and a receipt. jansson takes about 15 ns a byte, and
 * an answer with its proof is 2 KB: parsing each would make the load client
 * spend on the answers' JSON as much CPU as receiptd spends on the log
 * (bench/README.md).
 */
static err_kind check_answer(worker *w, const conn *c, const response *r)
{
    err_kind kind = E_ANSWER;
    const char *status = NULL, *delivery = NULL, *receipt = NULL;
    size_t status_len = 0, delivery_len = 0, receipt_len = 0;
    json_t *obj = NULL;
    bool proof = false;
    if (++w->st.answers % (uint64_t)g.opt.parse_every == 0) {
        obj = sjson_parse_object(r->body, r->body_len, SJSON_MAX_DEPTH, NULL, 0);
        if (obj == NULL)
            goto cleanup;
        status = sjson_string(obj, "status", &status_len);
        delivery = sjson_string(obj, "delivery", &delivery_len);
        receipt = sjson_string(obj, "receipt", &receipt_len);
        proof = sjson_object(obj, "proof") != NULL;
    } else {
        if (r->body_len < 2 || r->body[0] != '{' || r->body[r->body_len - 1] != '}')
            goto cleanup;
        status = find_member(r->body, r->body_len, "status", &status_len);
        delivery = find_member(r->body, r->body_len, "delivery", &delivery_len);
        receipt = find_member(r->body, r->body_len, "receipt", &receipt_len);
        proof = memmem(r->body, r->body_len, "\"proof\":{", 9) != NULL;
    }
    if (status == NULL || delivery == NULL || receipt == NULL || receipt_len == 0 ||
        delivery_len != strlen(c->delivery) || memcmp(delivery, c->delivery, delivery_len) != 0)
        goto cleanup;
    w->st.proofs += proof;
    if (status_len == 9 && memcmp(status, "corrupted", 9) == 0)
        kind = E_CORRUPTED;
    else if (status_len == 9 && memcmp(status, "confirmed", 9) == 0)
        kind = E_KINDS;
cleanup:
    json_decref(obj);
    return kind;
}

static void on_response(worker *w, conn *c, response *r)
{
    int status = r->status < STATUS_MAX ? r->status : 0;
    w->answered_ns = now_ns();
    w->stall_reported = false;
    bool close_after = r->close;
    err_kind kind = E_KINDS;

    if (c->ph == PH_GET) {
        w->st.get_status[status]++;
        if (r->status != 200)
            goto next; /* counted by status */
        if (r->plugin == NULL) {
            kind = E_NO_PLUGIN;
            goto failed;
        }
        kind = make_confirmation(c, r);
        if (kind != E_KINDS)
            goto failed;
        if (close_after) {
            /* Allowed, if slow: the confirmation goes on a new connection. */
            w->st.reconnects++;
            conn_close(w, c);
            c->pending_post = true;
            conn_open(w, c);
            return;
        }
        c->ph = PH_POST;
        c->st = ST_SEND;
        c->sent_ns = now_ns();
        c->in_len = 0;
        flush(w, c);
        return;
    }

    w->st.post_status[status]++;
    if (r->status != 200)
        goto next;
    kind = check_answer(w, c, r);
    if (kind != E_KINDS)
        goto failed;
    uint64_t t = now_ns();
    w->st.all_cycles++;
    if (t >= g.measure_from_ns && t < g.end_ns) {
        w->st.cycles++;
        w->st.digests += c->digest_sent;
        if (record_latency(&w->st, t - c->started_ns) != 0)
            w->failed = true;
    }
next:
    if (close_after) {
        w->st.reconnects++;
        conn_close(w, c); /* the worker loop opens it again */
        return;
    }
    start_get(w, c);
    return;
failed:
    conn_fail(w, c, kind);
}

static void on_readable(worker *w, conn *c)
{
    bool eof = false;
    for (;;) {
        if (c->in_len >= RESP_MAX) {
            conn_fail(w, c, E_HTTP);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, RESP_MAX - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n == 0) {
            eof = true; /* after the response, with Connection: close */
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        conn_fail(w, c, E_IO);
        return;
    }
    response r;
    int rc = parse_response(c->in, c->in_len, &r);
    if (rc == 0 && !eof)
        return;
    if (rc <= 0 || r.total != c->in_len) {
        free(r.chunked);
        conn_fail(w, c, rc == 0 ? E_CLOSED : E_HTTP);
        return;
    }
    r.close |= eof;
    on_response(w, c, &r);
    free(r.chunked);
}

static void on_event(worker *w, conn *c, uint32_t events)
{
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            conn_fail(w, c, E_CONNECT);
            return;
        }
        on_connected(w, c);
        return;
    }
    if (c->st == ST_SEND) {
        flush(w, c);
        return;
    }
    if (c->st == ST_RECV && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        on_readable(w, c);
}

/*
 * No connection of this thread has had an answer for STALL_NS: says on
 * stderr, once per stall, what each connection waits for and since when, so
 * that a server that stopped answering is told from a client that stopped
 * asking (and the server's stacks can be taken while it lasts).
 */
static void report_stall(worker *w, uint64_t t)
{
    size_t connecting = 0, sending = 0, get = 0, post = 0, partial = 0, closed = 0;
    uint64_t oldest = 0;
    const conn *oldest_conn = NULL;
    for (size_t i = 0; i < w->n; i++) {
        const conn *c = &w->conns[i];
        if (c->fd < 0) {
            closed++;
            continue;
        }
        connecting += c->st == ST_CONNECTING;
        sending += c->st == ST_SEND;
        if (c->st == ST_RECV) {
            get += c->ph == PH_GET;
            post += c->ph == PH_POST;
            partial += c->in_len > 0;
        }
        if (c->st != ST_IDLE && t - c->sent_ns > oldest) {
            oldest = t - c->sent_ns;
            oldest_conn = c;
        }
    }
    int port = 0;
    if (oldest_conn != NULL) {
        struct sockaddr_in local;
        socklen_t len = sizeof local;
        if (getsockname(oldest_conn->fd, (struct sockaddr *)&local, &len) == 0)
            port = ntohs(local.sin_port);
    }
    fprintf(stderr,
            "cycle: thread %zu: no answer for %.1f s; of %zu connections, %zu wait for a GET's "
            "answer, %zu for a confirmation's (%zu with part of it read), %zu are sending, "
            "%zu connecting, %zu closed; the oldest request (local port %d) is %.1f s old\n",
            w->index, (double)(t - w->answered_ns) / 1e9, w->n, get, post, partial, sending,
            connecting, closed, port, (double)oldest / 1e9);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    struct epoll_event evs[EVENTS_MAX];

    for (size_t i = 0; i < w->n; i++)
        w->conns[i].fd = -1;
    for (size_t i = 0; i < w->n; i++) {
        conn *c = &w->conns[i];
        c->out = malloc(REQ_MAX);
        c->in = malloc(RESP_MAX);
        if (c->out == NULL || c->in == NULL) {
            w->failed = true;
            goto cleanup;
        }
    }
    w->answered_ns = now_ns();
    for (size_t i = 0; i < w->n; i++)
        conn_open(w, &w->conns[i]);

    while (now_ns() < g.end_ns) {
        int n = epoll_wait(w->ep, evs, EVENTS_MAX, 50);
        if (n < 0 && errno != EINTR) {
            w->failed = true;
            break;
        }
        for (int i = 0; i < n; i++) {
            size_t idx = (size_t)(evs[i].data.u64 >> 32);
            uint32_t gen = (uint32_t)evs[i].data.u64;
            if (idx >= w->n)
                continue;
            conn *c = &w->conns[idx];
            if (c->gen != gen || c->fd < 0)
                continue;
            on_event(w, c, evs[i].events);
        }
        uint64_t t = now_ns();
        if (!w->stall_reported && t - w->answered_ns >= STALL_NS) {
            report_stall(w, t);
            w->stall_reported = true;
        }
        if (t - w->connect_failed_ns < CONNECT_PAUSE_NS)
            continue;
        for (size_t i = 0; i < w->n && t < g.end_ns; i++) {
            if (w->conns[i].fd < 0)
                conn_open(w, &w->conns[i]);
        }
    }
cleanup:
    for (size_t i = 0; i < w->n; i++) {
        const conn *c = &w->conns[i];
        if (c->fd >= 0 && c->st == ST_RECV && c->ph == PH_GET)
            w->st.waiting_get++;
        if (c->fd >= 0 && c->st == ST_RECV && c->ph == PH_POST)
            w->st.waiting_confirm++;
    }
    for (size_t i = 0; i < w->n; i++) {
        conn_close(w, &w->conns[i]);
        free(w->conns[i].out);
        free(w->conns[i].in);
    }
    return NULL;
}

/* -------------------------------------------------------------------------
 * set-up
 */

/* GET /_receipt/jwks.json on a blocking connection; NULL on failure. */
static json_t *fetch_jwks(void)
{
    json_t *jwks = NULL;
    char *buf = malloc(RESP_MAX);
    int fd = -1;
    size_t len = 0;
    response r = {0};

    if (buf == NULL)
        goto cleanup;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto cleanup;
    struct timeval tv = {JWKS_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (const struct sockaddr *)&g.addr, sizeof(g.addr)) != 0) {
        fprintf(stderr, "cycle: cannot connect to %s: %s\n", g.hostport, strerror(errno));
        goto cleanup;
    }
    int n = snprintf(buf, RESP_MAX,
                     "GET /_receipt/jwks.json HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     g.hostport);
    if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
        goto cleanup;
    int rc = 0;
    while (rc == 0 && len < RESP_MAX - 1) {
        ssize_t got = recv(fd, buf + len, RESP_MAX - 1 - len, 0);
        if (got <= 0)
            break;
        len += (size_t)got;
        rc = parse_response(buf, len, &r);
    }
    if (rc != 1 || r.status != 200) {
        fprintf(stderr, "cycle: GET /_receipt/jwks.json failed (status %d)\n", r.status);
        goto cleanup;
    }
    jwks = sjson_parse_object(r.body, r.body_len, SJSON_MAX_DEPTH, NULL, 0);
cleanup:
    free(r.chunked);
    if (fd >= 0)
        close(fd);
    free(buf);
    return jwks;
}

static int load_server_key(void)
{
    int rc = -1;
    json_t *jwks = fetch_jwks();
    if (jwks == NULL)
        goto cleanup;
    json_t *keys = json_object_get(jwks, "keys");
    size_t i;
    json_t *jwk;
    json_array_foreach(keys, i, jwk)
    {
        const char *use = sjson_string(jwk, "use", NULL);
        size_t kid_len = 0;
        const char *kid = sjson_string(jwk, "kid", &kid_len);
        if (use == NULL || strcmp(use, "enc") != 0 || kid == NULL || kid_len > JOSE_KID_MAX)
            continue;
        g.server_enc = eckey_from_jwk(jwk);
        if (g.server_enc == NULL)
            break;
        memcpy(g.server_kid, kid, kid_len + 1);
        if (strcmp(g.server_kid, eckey_thumbprint(g.server_enc)) != 0)
            fprintf(stderr, "cycle: warning: server kid is not the key's thumbprint\n");
        rc = 0;
        break;
    }
    if (rc != 0)
        fprintf(stderr, "cycle: no usable encryption key in /_receipt/jwks.json\n");
cleanup:
    json_decref(jwks);
    return rc;
}

static int make_clients(void)
{
    g.clients = calloc((size_t)g.opt.clients, sizeof(*g.clients));
    if (g.clients == NULL)
        return -1;
    for (long i = 0; i < g.opt.clients; i++) {
        client *cl = &g.clients[i];
        cl->key = eckey_generate();
        if (cl->key == NULL)
            return -1;
        memcpy(cl->id, eckey_thumbprint(cl->key), ECKEY_THUMBPRINT_LEN + 1);
        eckey_header_value(cl->key, cl->header);
        if (kdf_derive(cl->key, g.server_enc, cl->id, g.server_kid, cl->k) != 0)
            return -1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: cycle --port PORT [--host 127.0.0.1] [--path /page.html]\n"
               "             [--clients 64] [--connections 64] [--threads 2]\n"
               "             [--duration 5] [--warmup 1] [--parse-every 16] [--json]\n"
               "  --parse-every N  parse every Nth confirmation answer of a thread whole with\n"
               "                   jansson, the others by their members (1: every answer)\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_seconds(const char *s, double lo, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= lo && v <= DURATION_MAX))
        return false;
    *out = v;
    return true;
}

static int parse_options(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"path", required_argument, NULL, 'P'},
        {"clients", required_argument, NULL, 'k'},
        {"connections", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"parse-every", required_argument, NULL, 'e'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    options *o = &g.opt;
    long port = 0;
    *o = (options){.host = "127.0.0.1",
                   .path = "/page.html",
                   .clients = 64,
                   .connections = 64,
                   .threads = 2,
                   .duration = 5,
                   .warmup = 1,
                   .parse_every = 16};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        bool ok = true;
        switch (ch) {
        case 'H':
            o->host = optarg;
            break;
        case 'p':
            ok = parse_long(optarg, 1, 65535, &port);
            break;
        case 'P':
            o->path = optarg;
            ok = optarg[0] == '/' && strlen(optarg) <= PATH_MAX_LEN &&
                 strpbrk(optarg, " \r\n\t") == NULL;
            break;
        case 'k':
            ok = parse_long(optarg, 1, CLIENTS_MAX, &o->clients);
            break;
        case 'c':
            ok = parse_long(optarg, 1, CONNECTIONS_MAX, &o->connections);
            break;
        case 't':
            ok = parse_long(optarg, 1, THREADS_MAX, &o->threads);
            break;
        case 'd':
            ok = parse_seconds(optarg, 0.1, &o->duration);
            break;
        case 'w':
            ok = parse_seconds(optarg, 0.0, &o->warmup);
            break;
        case 'e':
            ok = parse_long(optarg, 1, 1000000, &o->parse_every);
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            ok = false;
        }
        if (!ok) {
            if (ch != '?')
                fprintf(stderr, "cycle: bad value for option: %s\n", argv[optind - 1]);
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || port == 0) {
        usage(stderr);
        return -1;
    }
    o->port = (int)port;
    if (o->threads > o->connections)
        o->threads = o->connections;
    g.addr.sin_family = AF_INET;
    g.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, o->host, &g.addr.sin_addr) != 1) {
        fprintf(stderr, "cycle: --host must be an IPv4 address\n");
        return -1;
    }
    snprintf(g.hostport, sizeof(g.hostport), "%s:%d", o->host, o->port);
    return 0;
}

/* -------------------------------------------------------------------------
 * report
 */

static void report(const stats *total, double p50, double p99)
{
    double cps = (double)total->cycles / g.opt.duration;
    fprintf(stderr,
            "cycle: %" PRIu64 " confirmed deliveries in %.1f s: %.1f/s "
            "(p50 %.2f ms, p99 %.2f ms; %ld connections, %ld threads, %ld clients; "
            "%" PRIu64 " with a digest; %" PRIu64 " of %" PRIu64 " answers with a proof)\n",
            total->cycles, g.opt.duration, cps, p50, p99, g.opt.connections, g.opt.threads,
            g.opt.clients, total->digests, total->proofs, total->answers);
    if (total->waiting_get || total->waiting_confirm)
        fprintf(stderr,
                "cycle: at the end, %" PRIu64 " GETs and %" PRIu64
                " confirmations were waiting for an answer\n",
                total->waiting_get, total->waiting_confirm);
    if (total->reconnects)
        fprintf(stderr, "cycle: the server closed %" PRIu64 " connections after answering\n",
                total->reconnects);
    for (int k = 0; k < E_KINDS; k++) {
        if (total->errors[k])
            fprintf(stderr, "cycle: error %s: %" PRIu64 "\n", err_names[k], total->errors[k]);
    }
    for (int s = 0; s < STATUS_MAX; s++) {
        if (s != 200 && total->get_status[s])
            fprintf(stderr, "cycle: GET answered %d: %" PRIu64 "\n", s, total->get_status[s]);
        if (s != 200 && total->post_status[s])
            fprintf(stderr, "cycle: confirm answered %d: %" PRIu64 "\n", s, total->post_status[s]);
    }
    if (!g.opt.json)
        return;

    printf("{\"cycles\":%" PRIu64 ",\"seconds\":%.3f,\"cps\":%.1f,\"p50_ms\":%.3f,"
           "\"p99_ms\":%.3f,\"connections\":%ld,\"threads\":%ld,\"clients\":%ld,"
           "\"with_digest\":%" PRIu64 ",\"answers\":%" PRIu64 ",\"with_proof\":%" PRIu64
           ",\"reconnects\":%" PRIu64 ",\"waiting_get\":%" PRIu64 ",\"waiting_confirm\":%" PRIu64
           ",\"errors\":{",
           total->cycles, g.opt.duration, cps, p50, p99, g.opt.connections, g.opt.threads,
           g.opt.clients, total->digests, total->answers, total->proofs, total->reconnects,
           total->waiting_get, total->waiting_confirm);
    const char *sep = "";
    for (int k = 0; k < E_KINDS; k++) {
        if (total->errors[k]) {
            printf("%s\"%s\":%" PRIu64, sep, err_names[k], total->errors[k]);
            sep = ",";
        }
    }
    for (int s = 0; s < STATUS_MAX; s++) {
        if (s != 200 && total->get_status[s]) {
            printf("%s\"get_%d\":%" PRIu64, sep, s, total->get_status[s]);
            sep = ",";
        }
        if (s != 200 && total->post_status[s]) {
            printf("%s\"confirm_%d\":%" PRIu64, sep, s, total->post_status[s]);
            sep = ",";
        }
    }
    printf("}}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int rc = 1;
    worker *workers = NULL;
    conn *conns = NULL;
    stats total = {0};
    long started = 0;

    if (parse_options(argc, argv) != 0)
        return 2;
    g.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (g.sha256 == NULL)
        goto cleanup;
    if (load_server_key() != 0)
        goto cleanup;
    if (make_clients() != 0) {
        fprintf(stderr, "cycle: cannot make client keys\n");
        goto cleanup;
    }

    workers = calloc((size_t)g.opt.threads, sizeof(*workers));
    conns = calloc((size_t)g.opt.connections, sizeof(*conns));
    if (workers == NULL || conns == NULL)
        goto cleanup;
    uint64_t t0 = now_ns();
    g.measure_from_ns = t0 + (uint64_t)(g.opt.warmup * 1e9);
    g.end_ns = g.measure_from_ns + (uint64_t)(g.opt.duration * 1e9);
    for (long i = 0; i < g.opt.threads; i++) {
        worker *w = &workers[i];
        size_t from = (size_t)(g.opt.connections * i / g.opt.threads);
        size_t to = (size_t)(g.opt.connections * (i + 1) / g.opt.threads);
        w->index = (size_t)i;
        w->conns = conns + from;
        w->n = to - from;
        w->next_client = (size_t)i * (size_t)g.opt.clients / (size_t)g.opt.threads;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->ep < 0 || pthread_create(&w->tid, NULL, worker_main, w) != 0) {
            fprintf(stderr, "cycle: cannot start thread %ld\n", i);
            g.end_ns = 0; /* stops the threads already running */
            goto join;
        }
        started++;
    }
join:
    for (long i = 0; i < started; i++)
        pthread_join(workers[i].tid, NULL);
    if (started != g.opt.threads)
        goto cleanup;

    bool failed = false;
    for (long i = 0; i < g.opt.threads; i++) {
        stats *s = &workers[i].st;
        failed |= workers[i].failed;
        total.cycles += s->cycles;
        total.all_cycles += s->all_cycles;
        total.digests += s->digests;
        total.answers += s->answers;
        total.proofs += s->proofs;
        total.reconnects += s->reconnects;
        total.waiting_get += s->waiting_get;
        total.waiting_confirm += s->waiting_confirm;
        for (int k = 0; k < E_KINDS; k++)
            total.errors[k] += s->errors[k];
        for (int k = 0; k < STATUS_MAX; k++) {
            total.get_status[k] += s->get_status[k];
            total.post_status[k] += s->post_status[k];
        }
        if (s->lat_n) {
            uint32_t *p = realloc(total.lat_us, (total.lat_n + s->lat_n) * sizeof(*p));
            if (p == NULL)
                goto cleanup;
            total.lat_us = p;
            memcpy(total.lat_us + total.lat_n, s->lat_us, s->lat_n * sizeof(*p));
            total.lat_n += s->lat_n;
        }
    }
    if (failed) {
        fprintf(stderr, "cycle: a worker failed (out of memory or epoll)\n");
        goto cleanup;
    }
    if (total.lat_n)
        qsort(total.lat_us, total.lat_n, sizeof(*total.lat_us), cmp_u32);
    report(&total, percentile_ms(total.lat_us, total.lat_n, 0.50),
           percentile_ms(total.lat_us, total.lat_n, 0.99));

    bool errors = false;
    for (int k = 0; k < E_KINDS; k++)
        errors |= total.errors[k] != 0;
    for (int s = 0; s < STATUS_MAX; s++)
        errors |= s != 200 && (total.get_status[s] || total.post_status[s]);
    rc = total.cycles > 0 && !errors ? 0 : 1;
cleanup:
    if (workers != NULL) {
        for (long i = 0; i < g.opt.threads; i++) {
            if (workers[i].ep > 0)
                close(workers[i].ep);
            free(workers[i].st.lat_us);
        }
    }
    free(workers);
    free(conns);
    free(total.lat_us);
    if (g.clients != NULL) {
        for (long i = 0; i < g.opt.clients; i++)
            eckey_free(g.clients[i].key);
    }
    free(g.clients);
    eckey_free(g.server_enc);
    EVP_MD_free(g.sha256);
    return rc;
}
