#include "daemon/tlog_event.h"

#include "common/b64.h"
#include "common/decimal.h"
#include "common/evpack.h"
#include "common/jcs.h"
#include "common/merkle.h"
#include "common/unicode.h"
#include "daemon/jbuf.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_SAFE_MAX ((UINT64_C(1) << 53) - 1) /* integers a double holds exactly */

static const char *const type_names[] = {
    [TLOG_EVENT_ISSUED] = "issued",       [TLOG_EVENT_BOUND] = "bound",
    [TLOG_EVENT_CONFIRMED] = "confirmed", [TLOG_EVENT_CORRUPTED] = "corrupted",
    [TLOG_EVENT_EXISTING] = "existing",   [TLOG_EVENT_LOG_KEY] = "log_key",
};
#define TYPE_COUNT (sizeof type_names / sizeof type_names[0])

const char *tlog_event_type_name(tlog_event_type type)
{
    return (size_t)type < TYPE_COUNT ? type_names[type] : "unknown";
}

/* ---- the members an event has ---- */

/*
 * Every member name of every event, in RFC 8785's order (the names are
 * ASCII, for which its UTF-16 order is byte order), so that an event is
 * written in order by its members' places here rather than sorted each
 * time. The unit tests check that every kind of event comes out canonical.
 */
#define EVENT_NAMES(X)                                                                             \
    X(bound_addr)                                                                                  \
    X(bound_ms)                                                                                    \
    X(bound_node)                                                                                  \
    X(client)                                                                                      \
    X(client_addr)                                                                                 \
    X(confirm_addr)                                                                                \
    X(confirmed_ms)                                                                                \
    X(confirmed_node)                                                                              \
    X(delivered_sha256)                                                                            \
    X(delivered_size)                                                                              \
    X(delivery)                                                                                    \
    X(issued_ms)                                                                                   \
    X(issued_node)                                                                                 \
    X(key)                                                                                         \
    X(kind)                                                                                        \
    X(path)                                                                                        \
    X(previous)                                                                                    \
    X(receipt_sha256)                                                                              \
    X(received_at_ms)                                                                              \
    X(received_sha256)                                                                             \
    X(received_size)                                                                               \
    X(server)                                                                                      \
    X(sha256)                                                                                      \
    X(size)                                                                                        \
    X(status)                                                                                      \
    X(time_ms)                                                                                     \
    X(type)                                                                                        \
    X(user_agent)                                                                                  \
    X(v)

#define NAME_ID(n) NAME_##n,
typedef enum name_id { EVENT_NAMES(NAME_ID) NAME_COUNT } name_id;
/* Each name, and as a member's start (`,"name":`; without the comma first). */
#define NAME_TEXT(n) {#n, sizeof #n - 1, ",\"" #n "\":", sizeof #n + 3},
static const struct {
    const char *text;
    size_t len;
    const char *key;
    size_t key_len;
} names[NAME_COUNT] = {EVENT_NAMES(NAME_TEXT)};

/* ---- the columns an event carries ---- */

typedef enum col_type {
    COL_TEXT,
    COL_U64,
    COL_SHA,     /* 32 bytes, base64url */
    COL_SHA_OPT, /* received_sha256: null when the client sent none */
    COL_KIND,    /* the delivery's kind, by name */
} col_type;

/* Which group of columns a column belongs to. */
enum {
    SET_ISSUE = 1,   /* written by the delivery, or from its ticket */
    SET_BIND = 2,    /* the binding to a client */
    SET_CONFIRM = 4, /* the confirmation */
};

typedef struct column {
    name_id name; /* the ledger's column name, and the member's */
    col_type type;
    size_t offset; /* in ledger_delivery */
    size_t cap;    /* of a text field, with its NUL */
    unsigned set;
} column;

#define TEXT(field, set)                                                                           \
    {                                                                                              \
        NAME_##field, COL_TEXT, offsetof(ledger_delivery, field),                                  \
            sizeof(((ledger_delivery *)0)->field), set                                             \
    }
#define U64(field, set)                                                                            \
    {                                                                                              \
        NAME_##field, COL_U64, offsetof(ledger_delivery, field), 0, set                            \
    }

static const column columns[] = {
    {NAME_delivery, COL_TEXT, offsetof(ledger_delivery, id), UUID7_STR_LEN + 1, SET_ISSUE},
    TEXT(path, SET_ISSUE),
    {NAME_sha256, COL_SHA, offsetof(ledger_delivery, sha256), 0, SET_ISSUE},
    {NAME_kind, COL_KIND, offsetof(ledger_delivery, kind), 0, SET_ISSUE},
    {NAME_delivered_sha256, COL_SHA, offsetof(ledger_delivery, delivered_sha256), 0, SET_ISSUE},
    U64(delivered_size, SET_ISSUE),
    U64(size, SET_ISSUE),
    TEXT(server, SET_ISSUE),
    TEXT(client_addr, SET_ISSUE),
    TEXT(user_agent, SET_ISSUE),
    U64(issued_ms, SET_ISSUE),
    TEXT(issued_node, SET_ISSUE),
    TEXT(client, SET_BIND),
    TEXT(bound_addr, SET_BIND),
    U64(bound_ms, SET_BIND),
    TEXT(bound_node, SET_BIND),
    U64(confirmed_ms, SET_CONFIRM),
    TEXT(confirm_addr, SET_CONFIRM),
    {NAME_received_sha256, COL_SHA_OPT, offsetof(ledger_delivery, received_sha256), 0, SET_CONFIRM},
    U64(received_size, SET_CONFIRM),
    U64(received_at_ms, SET_CONFIRM),
    TEXT(confirmed_node, SET_CONFIRM),
};
#define COLUMN_COUNT (sizeof columns / sizeof columns[0])

/* The columns of each type of event, besides type, v and status. */
static unsigned sets_of(tlog_event_type type, bool bound)
{
    switch (type) {
    case TLOG_EVENT_ISSUED:
        return SET_ISSUE | (bound ? SET_BIND : 0);
    case TLOG_EVENT_BOUND:
        return SET_ISSUE | SET_BIND;
    case TLOG_EVENT_CONFIRMED:
    case TLOG_EVENT_CORRUPTED:
    case TLOG_EVENT_EXISTING:
        return SET_ISSUE | SET_BIND | SET_CONFIRM;
    case TLOG_EVENT_LOG_KEY:
        break;
    }
    return 0;
}

/* ---- writing canonical JSON ---- */

typedef enum member_kind { M_NONE, M_TEXT, M_U64, M_NULL } member_kind;

typedef struct member {
    member_kind kind;
    const char *text;
    size_t len;
    uint64_t u;
    const uint8_t *digest; /* a digest's bytes, which text is the base64url of */
} member;

/* An event's members, each in its name's place (M_NONE: absent). */
typedef struct members {
    member m[NAME_COUNT];
    bool bad;
    /* base64url texts of the digests, which members point into */
    char digests[4][48];
    size_t digest_count;
} members;

static member *slot(members *ms, name_id name)
{
    if (ms->m[name].kind != M_NONE) {
        ms->bad = true; /* a member twice */
        return NULL;
    }
    return &ms->m[name];
}

static void add_text(members *ms, name_id name, const char *text, size_t len)
{
    member *m = slot(ms, name);
    if (m != NULL)
        *m = (member){.kind = M_TEXT, .text = text, .len = len};
}

static void add_str(members *ms, name_id name, const char *text)
{
    add_text(ms, name, text, strlen(text));
}

static void add_u64(members *ms, name_id name, uint64_t v)
{
    member *m = slot(ms, name);
    if (v > JSON_SAFE_MAX)
        ms->bad = true;
    else if (m != NULL)
        *m = (member){.kind = M_U64, .u = v};
}

static void add_null(members *ms, name_id name)
{
    member *m = slot(ms, name);
    if (m != NULL)
        *m = (member){.kind = M_NULL};
}

static void add_digest(members *ms, name_id name, const uint8_t digest[32])
{
    if (ms->digest_count == 4) {
        ms->bad = true;
        return;
    }
    char *text = ms->digests[ms->digest_count++];
    size_t len = b64url_encode(digest, 32, text);
    add_text(ms, name, text, len);
    if (!ms->bad)
        ms->m[name].digest = digest;
}

typedef struct out_buf {
    char *p;
    size_t cap;
    size_t len;
    bool full;
} out_buf;

static void put(out_buf *o, const char *s, size_t n)
{
    if (o->full || o->len + n >= o->cap) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* A number as RFC 8785 writes an integer below 2^53: plain decimal. */
static void put_u64(out_buf *o, uint64_t v)
{
    char digits[DECIMAL_U64_MAX];
    size_t n;
    const char *first = decimal_u64(v, digits, &n);
    put(o, first, n);
}

/* A string as RFC 8785 writes it: only '"', '\\' and controls escaped. */
static void put_string(out_buf *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Most texts need no escape: written with their quotes in one step. */
    if (!o->full && n < o->cap - o->len && o->cap - o->len - n > 2 && jbuf_plain_len(s, n) == n) {
        char *at = o->p + o->len;
        at[0] = '"';
        memcpy(at + 1, s, n);
        at[n + 1] = '"';
        o->len += n + 2;
        return;
    }
    put(o, "\"", 1);
    size_t i = 0;
    while (i < n) {
        /* Runs of printable ASCII but '"' and '\\' eight bytes a step; DEL
         * and the bytes of UTF-8 sequences, which stop a run, go as they
         * are too. */
        size_t run = jbuf_plain_len(s + i, n - i);
        while (i + run < n && (unsigned char)s[i + run] >= 0x7f)
            run++;
        if (run > 0) {
            put(o, s + i, run);
            i += run;
            continue;
        }
        unsigned char c = (unsigned char)s[i++];
        char esc[6] = {'\\', (char)c};
        size_t esc_len = 2;
        switch (c) {
        case '"':
        case '\\':
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        default: /* another control character */
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc_len = 6;
        }
        put(o, esc, esc_len);
    }
    put(o, "\"", 1);
}

/*
 * The packed piece (common/evpack.h) of each member's start, `,"name":`,
 * and of the first member's, `{"name":` (-1: none).
 */
static struct {
    int comma[NAME_COUNT];
    int brace[NAME_COUNT];
} name_pieces;
static pthread_once_t name_pieces_once = PTHREAD_ONCE_INIT;

static void name_pieces_make(void)
{
    for (size_t i = 0; i < NAME_COUNT; i++) {
        char brace[32];
        name_pieces.comma[i] = evpack_piece_number(names[i].key, names[i].key_len);
        brace[0] = '{';
        memcpy(brace + 1, names[i].key + 1, names[i].key_len - 1);
        name_pieces.brace[i] = evpack_piece_number(brace, names[i].key_len);
    }
}

/* A member's start into pk: its piece, or its text. */
static void pack_start(evpack_out *pk, size_t name, bool first)
{
    int piece = first ? name_pieces.brace[name] : name_pieces.comma[name];
    if (piece >= 0) {
        evpack_put_piece(pk, piece);
        return;
    }
    if (first)
        evpack_put_text(pk, "{", 1);
    evpack_put_text(pk, names[name].key + 1, names[name].key_len - 1);
}

/*
 * The event's canonical text into out (cap bytes); its length, or 0. With
 * pk, its packed form too, written member by member beside the text: each
 * member's start, digest and number are known here, which spares the
 * packer the search that evpack_encode() makes of a text.
 */
static size_t emit(members *ms, char *out, size_t cap, evpack_out *pk)
{
    if (ms->bad || cap == 0)
        return 0;
    if (pk != NULL)
        pthread_once(&name_pieces_once, name_pieces_make);
    out_buf o = {.p = out, .cap = cap};
    put(&o, "{", 1);
    bool first = true;
    for (size_t i = 0; i < NAME_COUNT; i++) {
        const member *m = &ms->m[i];
        if (m->kind == M_NONE)
            continue;
        /* names need no escape */
        put(&o, names[i].key + first, names[i].key_len - first);
        if (pk != NULL)
            pack_start(pk, i, first);
        first = false;
        size_t value_at = o.len;
        if (m->kind == M_TEXT) {
            if (unicode_valid(m->text, m->len)) {
                put_string(&o, m->text, m->len);
            } else {
                /* As the PostgreSQL ledger stores it: whatever bytes a
                 * client sent (a user agent) never keep an event out. */
                char repaired[3 * TLOG_EVENT_MAX];
                if (m->len > TLOG_EVENT_MAX)
                    return 0;
                put_string(&o, repaired, unicode_repair(m->text, m->len, repaired));
            }
            if (pk != NULL && m->digest != NULL)
                evpack_put_sha256(pk, m->digest);
            else if (pk != NULL && !o.full)
                evpack_put_string(pk, out + value_at, o.len - value_at);
        } else if (m->kind == M_U64) {
            put_u64(&o, m->u);
            if (pk != NULL)
                evpack_put_number(pk, m->u);
        } else {
            put(&o, "null", 4);
            if (pk != NULL)
                evpack_put_text(pk, "null", 4);
        }
    }
    put(&o, "}", 1);
    if (pk != NULL)
        evpack_put_text(pk, "}", 1);
    if (o.full)
        return 0;
    out[o.len] = '\0';
    return o.len;
}

static void add_column(members *ms, const column *c, const ledger_delivery *row)
{
    const char *base = (const char *)row;
    switch (c->type) {
    case COL_TEXT: {
        const char *text = base + c->offset;
        add_text(ms, c->name, text, strnlen(text, c->cap - 1));
        break;
    }
    case COL_U64:
        add_u64(ms, c->name, *(const uint64_t *)(const void *)(base + c->offset));
        break;
    case COL_SHA:
        add_digest(ms, c->name, (const uint8_t *)(base + c->offset));
        break;
    case COL_KIND:
        add_str(ms, c->name, ledger_kind_name(row->kind));
        break;
    case COL_SHA_OPT:
        if (row->received_has_sha256)
            add_digest(ms, c->name, row->received_sha256);
        else
            add_null(ms, c->name);
        break;
    }
}

void tlog_event_receipt_hash(const char *receipt, char out[TLOG_RECEIPT_HASH_LEN + 1])
{
    merkle_hash digest;
    merkle_sha256(receipt, strnlen(receipt, LEDGER_RECEIPT_MAX), &digest);
    b64url_encode(digest.bytes, sizeof digest.bytes, out);
}

static size_t row_event(tlog_event_type type, const char *status, const ledger_delivery *row,
                        unsigned sets, char *out, size_t cap, evpack_out *pk)
{
    members ms;
    memset(&ms, 0, sizeof ms);
    merkle_hash receipt_digest;
    add_str(&ms, NAME_type, tlog_event_type_name(type));
    add_u64(&ms, NAME_v, TLOG_EVENT_VERSION);
    add_str(&ms, NAME_status, status);
    for (size_t i = 0; i < COLUMN_COUNT; i++)
        if ((columns[i].set & sets) != 0)
            add_column(&ms, &columns[i], row);
    if ((sets & SET_CONFIRM) != 0) {
        /* As tlog_event_receipt_hash() names it; "" for no receipt. */
        if (row->receipt[0] != '\0') {
            merkle_sha256(row->receipt, strnlen(row->receipt, LEDGER_RECEIPT_MAX), &receipt_digest);
            add_digest(&ms, NAME_receipt_sha256, receipt_digest.bytes);
        } else {
            add_str(&ms, NAME_receipt_sha256, "");
        }
    }
    return emit(&ms, out, cap, pk);
}

static size_t event_text(const ledger_event *ev, char *out, size_t cap, evpack_out *pk)
{
    ledger_event_columns cols;
    ledger_event_columns_of(ev, &cols);
    switch (ev->kind) {
    case LEDGER_EVENT_ISSUE:
        return row_event(TLOG_EVENT_ISSUED, cols.status, &ev->row,
                         sets_of(TLOG_EVENT_ISSUED, cols.binding), out, cap, pk);
    case LEDGER_EVENT_BIND:
        return row_event(TLOG_EVENT_BOUND, cols.status, &ev->row, sets_of(TLOG_EVENT_BOUND, true),
                         out, cap, pk);
    case LEDGER_EVENT_CONFIRM: {
        tlog_event_type type =
            ev->row.status == LEDGER_CORRUPTED ? TLOG_EVENT_CORRUPTED : TLOG_EVENT_CONFIRMED;
        return row_event(type, cols.status, &ev->row, sets_of(type, true), out, cap, pk);
    }
    case LEDGER_EVENT_COPY:
        return row_event(TLOG_EVENT_EXISTING, ledger_status_name(ev->row.status), &ev->row,
                         sets_of(TLOG_EVENT_EXISTING, true), out, cap, pk);
    }
    return 0;
}

size_t tlog_event_text(const ledger_event *ev, char *out, size_t cap)
{
    return event_text(ev, out, cap, NULL);
}

size_t tlog_event_text_packed(const ledger_event *ev, char *out, size_t cap, uint8_t *packed,
                              size_t packed_cap, size_t *packed_len)
{
    evpack_out pk;
    evpack_start(&pk, packed, packed_cap);
    size_t len = event_text(ev, out, cap, &pk);
    *packed_len = len > 0 ? evpack_end(&pk) : 0;
    return len;
}

size_t tlog_event_existing(const ledger_delivery *row, char *out, size_t cap)
{
    return row_event(TLOG_EVENT_EXISTING, ledger_status_name(row->status), row,
                     sets_of(TLOG_EVENT_EXISTING, true), out, cap, NULL);
}

size_t tlog_event_log_key(const char *key, const char *previous, uint64_t time_ms, char *out,
                          size_t cap)
{
    members ms;
    memset(&ms, 0, sizeof ms);
    add_str(&ms, NAME_type, tlog_event_type_name(TLOG_EVENT_LOG_KEY));
    add_u64(&ms, NAME_v, TLOG_EVENT_VERSION);
    add_str(&ms, NAME_key, key);
    if (previous != NULL)
        add_str(&ms, NAME_previous, previous);
    add_u64(&ms, NAME_time_ms, time_ms);
    return emit(&ms, out, cap, NULL);
}

/* ---- reading ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * An event's text member into a row's column of cap bytes. The event holds
 * the row's text repaired, up to three times the column's bytes; folded
 * back (unicode_fold_repaired()) it fits as the column's text did, and
 * tlog_event_row_matches() compares both sides repaired.
 */
static bool read_text(const json_t *v, char *out, size_t cap)
{
    return json_is_string(v) &&
           unicode_fold_repaired(json_string_value(v), json_string_length(v), out, cap) != SIZE_MAX;
}

/* Reads one column's member into a row; false when it is not of its type. */
static bool read_column(const json_t *obj, const column *c, ledger_delivery *row)
{
    char *base = (char *)row;
    const json_t *v = json_object_get(obj, names[c->name].text);
    switch (c->type) {
    case COL_TEXT:
        return read_text(v, base + c->offset, c->cap);
    case COL_U64:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return false;
        *(uint64_t *)(void *)(base + c->offset) = (uint64_t)json_integer_value(v);
        return true;
    case COL_KIND:
        return json_is_string(v) && ledger_kind_parse(json_string_value(v), &row->kind) == 0;
    case COL_SHA_OPT:
        if (json_is_null(v)) {
            row->received_has_sha256 = false;
            memset(row->received_sha256, 0, 32);
            return true;
        }
        row->received_has_sha256 = true;
        /* fall through */
    case COL_SHA:
        return json_is_string(v) && b64url_decode(json_string_value(v), json_string_length(v),
                                                  (uint8_t *)(base + c->offset), 32) == 32;
    }
    return false;
}

/* Copies the columns of sets from the event's row into a state's row. */
static void copy_columns(ledger_delivery *dst, const ledger_delivery *src, unsigned sets)
{
    for (size_t i = 0; i < COLUMN_COUNT; i++) {
        const column *c = &columns[i];
        if ((c->set & sets) == 0)
            continue;
        size_t size = c->type == COL_TEXT   ? c->cap
                      : c->type == COL_U64  ? sizeof(uint64_t)
                      : c->type == COL_KIND ? sizeof(ledger_kind)
                                            : 32;
        memcpy((char *)dst + c->offset, (const char *)src + c->offset, size);
        if (c->type == COL_SHA_OPT)
            dst->received_has_sha256 = src->received_has_sha256;
    }
}

static int parse_type(const char *name, tlog_event_type *out)
{
    for (size_t i = 0; i < TYPE_COUNT; i++) {
        if (strcmp(name, type_names[i]) == 0) {
            *out = (tlog_event_type)i;
            return 0;
        }
    }
    return -1;
}

static int fold_log_key(const json_t *obj, tlog_event_info *info, char *err, size_t errlen)
{
    const json_t *key = json_object_get(obj, "key");
    const json_t *previous = json_object_get(obj, "previous");
    const json_t *time = json_object_get(obj, "time_ms");
    size_t expected = 4 + (previous != NULL);
    if (!json_is_string(key) || json_string_length(key) >= sizeof info->key ||
        (previous != NULL &&
         (!json_is_string(previous) || json_string_length(previous) >= sizeof info->previous)) ||
        !json_is_integer(time) || json_integer_value(time) < 0 ||
        json_object_size(obj) != expected) {
        set_err(err, errlen, "a log_key event needs key, time_ms and nothing but previous");
        return -1;
    }
    snprintf(info->key, sizeof info->key, "%s", json_string_value(key));
    if (previous != NULL)
        snprintf(info->previous, sizeof info->previous, "%s", json_string_value(previous));
    info->time_ms = (uint64_t)json_integer_value(time);
    return 0;
}

int tlog_event_fold(const char *text, size_t n, tlog_event_info *info, tlog_event_row *state,
                    char *err, size_t errlen)
{
    json_t *obj = NULL;
    ledger_delivery *ev = NULL;
    int rc = -1;
    memset(info, 0, sizeof *info);
    if (n > TLOG_EVENT_MAX || !jcs_is_canonical(text, n)) {
        set_err(err, errlen, "the event is not canonical JSON (RFC 8785)");
        goto out;
    }
    obj = json_loadb(text, n, JSON_REJECT_DUPLICATES, NULL);
    const json_t *type = json_object_get(obj, "type");
    const json_t *version = json_object_get(obj, "v");
    if (!json_is_object(obj) || !json_is_string(type) ||
        parse_type(json_string_value(type), &info->type) != 0) {
        set_err(err, errlen, "the event has no known type");
        goto out;
    }
    if (!json_is_integer(version) || json_integer_value(version) != TLOG_EVENT_VERSION) {
        set_err(err, errlen, "the event is not of version %d", TLOG_EVENT_VERSION);
        goto out;
    }
    if (info->type == TLOG_EVENT_LOG_KEY) {
        rc = fold_log_key(obj, info, err, errlen);
        goto out;
    }

    const json_t *status_v = json_object_get(obj, "status");
    ledger_status status;
    if (!json_is_string(status_v) || ledger_status_parse(json_string_value(status_v), &status)) {
        set_err(err, errlen, "the event has no known status");
        goto out;
    }
    bool issued_bound = info->type == TLOG_EVENT_ISSUED && status == LEDGER_BOUND;
    unsigned sets = sets_of(info->type, issued_bound);
    ev = calloc(1, sizeof *ev);
    if (ev == NULL) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    size_t expected = 3;
    for (size_t i = 0; i < COLUMN_COUNT; i++) {
        if ((columns[i].set & sets) == 0)
            continue;
        expected++;
        if (!read_column(obj, &columns[i], ev)) {
            set_err(err, errlen, "the event's %s is missing or malformed",
                    names[columns[i].name].text);
            goto out;
        }
    }
    const json_t *receipt = json_object_get(obj, "receipt_sha256");
    if ((sets & SET_CONFIRM) != 0) {
        expected++;
        if (!json_is_string(receipt) || (json_string_length(receipt) != TLOG_RECEIPT_HASH_LEN &&
                                         json_string_length(receipt) != 0)) {
            set_err(err, errlen, "the event's receipt_sha256 is missing or malformed");
            goto out;
        }
    }
    if (json_object_size(obj) != expected) {
        set_err(err, errlen, "the event has members its type does not have");
        goto out;
    }
    snprintf(info->delivery, sizeof info->delivery, "%s", ev->id);
    ev->status = status;

    /* As the backends apply the ledger event (ledger.h). */
    ledger_delivery *row = &state->row;
    bool final =
        state->exists && (row->status == LEDGER_CONFIRMED || row->status == LEDGER_CORRUPTED);
    bool valid_status;
    switch (info->type) {
    case TLOG_EVENT_ISSUED:
        valid_status = status == LEDGER_ISSUED || status == LEDGER_BOUND;
        break;
    case TLOG_EVENT_BOUND:
        valid_status = status == LEDGER_BOUND;
        break;
    case TLOG_EVENT_CONFIRMED:
        valid_status = status == LEDGER_CONFIRMED;
        break;
    case TLOG_EVENT_CORRUPTED:
        valid_status = status == LEDGER_CORRUPTED;
        break;
    default:
        valid_status = true;
        break;
    }
    if (!valid_status) {
        set_err(err, errlen, "a %s event with status %s", tlog_event_type_name(info->type),
                ledger_status_name(status));
        goto out;
    }
    if (state->exists && strcmp(row->id, ev->id) != 0) {
        set_err(err, errlen, "the event is for delivery %s, not %s", ev->id, row->id);
        goto out;
    }
    if (!state->exists || info->type == TLOG_EVENT_EXISTING) {
        if (state->exists) {
            set_err(err, errlen, "an existing event for a delivery the log has seen");
            goto out;
        }
        memset(row, 0, sizeof *row);
        copy_columns(row, ev, sets);
        row->status = status;
        state->exists = true;
    } else if (info->type == TLOG_EVENT_ISSUED) {
        set_err(err, errlen, "an issued event for a delivery the log has seen");
        goto out;
    } else if (final) {
        set_err(err, errlen, "a %s event after the delivery was %s",
                tlog_event_type_name(info->type), ledger_status_name(row->status));
        goto out;
    } else if (info->type == TLOG_EVENT_BOUND) {
        if (row->status != LEDGER_ISSUED) {
            set_err(err, errlen, "a bound event for a delivery already bound");
            goto out;
        }
        copy_columns(row, ev, SET_BIND);
        row->status = LEDGER_BOUND;
    } else {
        /* A binding the event carries replaces another client's. */
        if (ev->bound_ms != 0 && strcmp(row->client, ev->client) != 0)
            copy_columns(row, ev, SET_BIND);
        memcpy(row->client, ev->client, sizeof row->client);
        copy_columns(row, ev, SET_CONFIRM);
        row->status = status;
    }
    if ((sets & SET_CONFIRM) != 0)
        snprintf(state->receipt_hash, sizeof state->receipt_hash, "%s", json_string_value(receipt));
    rc = 0;
out:
    free(ev);
    json_decref(obj);
    return rc;
}

static void note_diff(char *diff, size_t difflen, size_t *used, const char *name)
{
    if (diff == NULL || difflen == 0 || *used >= difflen - 1)
        return;
    int n = snprintf(diff + *used, difflen - *used, "%s%s", *used > 0 ? ", " : "", name);
    if (n > 0)
        *used += (size_t)n < difflen - *used ? (size_t)n : difflen - *used - 1;
}

/* Whether two texts of a column (cap bytes) are the same as the log records
 * them, repaired (read_text() keeps the event's side so). */
static bool same_repaired(const char *a, const char *b, size_t cap)
{
    size_t an = strnlen(a, cap), bn = strnlen(b, cap);
    if (unicode_valid(a, an) && unicode_valid(b, bn))
        return an == bn && memcmp(a, b, an) == 0;
    if (an > TLOG_EVENT_MAX || bn > TLOG_EVENT_MAX)
        return false;
    char ra[3 * TLOG_EVENT_MAX], rb[3 * TLOG_EVENT_MAX];
    size_t ran = unicode_repair(a, an, ra), rbn = unicode_repair(b, bn, rb);
    return ran == rbn && memcmp(ra, rb, ran) == 0;
}

bool tlog_event_row_matches(const tlog_event_row *state, const ledger_delivery *row, char *diff,
                            size_t difflen)
{
    size_t used = 0;
    const ledger_delivery *want = &state->row;
    if (diff != NULL && difflen > 0)
        diff[0] = '\0';
    if (!state->exists) {
        note_diff(diff, difflen, &used, "the row");
        return false;
    }
    for (size_t i = 0; i < COLUMN_COUNT; i++) {
        const column *c = &columns[i];
        const char *a = (const char *)want + c->offset;
        const char *b = (const char *)row + c->offset;
        bool same;
        switch (c->type) {
        case COL_TEXT:
            same = same_repaired(a, b, c->cap);
            break;
        case COL_U64:
            same = memcmp(a, b, sizeof(uint64_t)) == 0;
            break;
        case COL_KIND:
            same = want->kind == row->kind;
            break;
        case COL_SHA_OPT:
            same = want->received_has_sha256 == row->received_has_sha256 &&
                   (!row->received_has_sha256 || memcmp(a, b, 32) == 0);
            break;
        default:
            same = memcmp(a, b, 32) == 0;
            break;
        }
        if (!same)
            note_diff(diff, difflen, &used, names[c->name].text);
    }
    if (want->status != row->status)
        note_diff(diff, difflen, &used, "status");
    char receipt_hash[TLOG_RECEIPT_HASH_LEN + 1] = "";
    if (row->receipt[0] != '\0')
        tlog_event_receipt_hash(row->receipt, receipt_hash);
    if (strcmp(receipt_hash, state->receipt_hash) != 0)
        note_diff(diff, difflen, &used, "receipt");
    return used == 0;
}
