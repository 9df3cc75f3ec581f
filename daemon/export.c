#include "daemon/export.h"

#include "common/b64.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT_TIME_TEXT_MAX   40 /* longest time text worth parsing */
#define EXPORT_MS_DIGITS_MAX   15 /* Unix ms up to the year 33658      */
#define EXPORT_STATUS_TEXT_MAX 64

void export_csv_field(jbuf *b, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        jbuf_adds(b, s);
        return;
    }
    jbuf_add(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            jbuf_add(b, "\"\"", 2);
        else
            jbuf_add(b, p, 1);
    }
    jbuf_add(b, "\"", 1);
}

static void json_sha256(jbuf *b, const uint8_t sha256[32])
{
    char text[48];
    size_t n = b64url_encode(sha256, 32, text);
    jbuf_string(b, text, n);
}

void export_item_json(jbuf *b, const ledger_delivery *d, bool detail)
{
    jbuf_adds(b, "{");
    jbuf_member_str(b, "delivery", d->id);
    jbuf_member_str(b, "content", d->path);
    jbuf_key(b, "sha256");
    json_sha256(b, d->sha256);
    jbuf_member_u64(b, "size", d->size);
    jbuf_member_str(b, "kind", ledger_kind_name(d->kind));
    jbuf_key(b, "delivered");
    jbuf_adds(b, "{");
    jbuf_key(b, "sha256");
    json_sha256(b, d->delivered_sha256);
    jbuf_member_u64(b, "size", d->delivered_size);
    jbuf_adds(b, "}");
    jbuf_member_str(b, "status", ledger_status_name(d->status));
    jbuf_key(b, "client");
    jbuf_opt_str(b, d->client);
    jbuf_member_str(b, "client_addr", d->client_addr);
    jbuf_member_u64(b, "issued_at_ms", d->issued_ms);
    jbuf_key(b, "confirmed_at_ms");
    jbuf_opt_u64(b, d->confirmed_ms);
    jbuf_member_str(b, "server", d->server);
    if (detail) {
        jbuf_key(b, "user_agent");
        jbuf_opt_str(b, d->user_agent);
        jbuf_key(b, "bound_at_ms");
        jbuf_opt_u64(b, d->bound_ms);
        jbuf_key(b, "bound_addr");
        jbuf_opt_str(b, d->bound_addr);
        jbuf_key(b, "confirm_addr");
        jbuf_opt_str(b, d->confirm_addr);
        jbuf_key(b, "received");
        if (d->confirmed_ms == 0) {
            jbuf_adds(b, "null");
        } else {
            jbuf_adds(b, "{");
            jbuf_key(b, "sha256");
            if (d->received_has_sha256)
                json_sha256(b, d->received_sha256);
            else
                jbuf_adds(b, "null");
            jbuf_member_u64(b, "size", d->received_size);
            jbuf_member_u64(b, "at_ms", d->received_at_ms);
            jbuf_adds(b, "}");
        }
        jbuf_key(b, "receipt");
        jbuf_opt_str(b, d->receipt);
        jbuf_key(b, "nodes");
        jbuf_adds(b, "{");
        jbuf_key(b, "issued");
        jbuf_opt_str(b, d->issued_node);
        jbuf_key(b, "bound");
        jbuf_opt_str(b, d->bound_node);
        jbuf_key(b, "confirmed");
        jbuf_opt_str(b, d->confirmed_node);
        jbuf_adds(b, "}");
    }
    jbuf_adds(b, "}");
}

/* Columns added later go at the end, where they move none of the others. */
const char export_csv_header[] = "delivery,content,sha256,size,status,client,client_addr,"
                                 "issued_at_ms,confirmed_at_ms,server,kind,delivered_sha256,"
                                 "delivered_size\r\n";

void export_item_csv(jbuf *b, const ledger_delivery *d)
{
    char sha[48];
    b64url_encode(d->sha256, 32, sha);
    export_csv_field(b, d->id);
    jbuf_add(b, ",", 1);
    export_csv_field(b, d->path);
    jbuf_addf(b, ",%s,%llu,%s,", sha, (unsigned long long)d->size, ledger_status_name(d->status));
    export_csv_field(b, d->client);
    jbuf_add(b, ",", 1);
    export_csv_field(b, d->client_addr);
    jbuf_addf(b, ",%llu,", (unsigned long long)d->issued_ms);
    if (d->confirmed_ms != 0)
        jbuf_u64(b, d->confirmed_ms);
    jbuf_add(b, ",", 1);
    export_csv_field(b, d->server);
    b64url_encode(d->delivered_sha256, 32, sha);
    jbuf_addf(b, ",%s,%s,%llu\r\n", ledger_kind_name(d->kind), sha,
              (unsigned long long)d->delivered_size);
}

/* ---- filters -------------------------------------------------------------- */

/* Reads exactly n digits at *p into *out; advances *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

int export_parse_time(const char *text, uint64_t *out_ms)
{
    size_t n = text != NULL ? strnlen(text, EXPORT_TIME_TEXT_MAX + 1) : 0;
    if (n == 0 || n > EXPORT_TIME_TEXT_MAX)
        return -1;
    if (strspn(text, "0123456789") == n) {
        if (n > EXPORT_MS_DIGITS_MAX)
            return -1;
        *out_ms = strtoull(text, NULL, 10);
        return 0;
    }

    const char *p = text;
    int year, month, day, hour = 0, minute = 0, second = 0, ms = 0, offset_min = 0;
    if (!digits(&p, 4, &year) || *p++ != '-' || !digits(&p, 2, &month) || *p++ != '-' ||
        !digits(&p, 2, &day))
        return -1;
    if (year < 1970 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month))
        return -1;
    if (*p != '\0') {
        if (*p != 'T' && *p != 't' && *p != ' ')
            return -1;
        p++;
        if (!digits(&p, 2, &hour) || *p++ != ':' || !digits(&p, 2, &minute))
            return -1;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &second))
                return -1;
            if (*p == '.') {
                p++;
                int scale = 100, seen = 0;
                while (isdigit((unsigned char)*p)) {
                    ms += (*p - '0') * scale; /* beyond milliseconds: dropped */
                    scale /= 10;
                    p++;
                    seen++;
                }
                if (seen == 0)
                    return -1;
            }
        }
        if (hour > 23 || minute > 59 || second > 60)
            return -1;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
                return -1;
            offset_min = sign * (oh * 60 + om);
        } else {
            return -1; /* RFC 3339 times name their offset */
        }
        if (*p != '\0')
            return -1;
    }
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = month - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = minute,
                    .tm_sec = second > 59 ? 59 : second};
    time_t t = timegm(&tm);
    long long s = (long long)t - (long long)offset_min * 60;
    if (t == (time_t)-1 || s < 0)
        return -1;
    *out_ms = (uint64_t)s * 1000 + (uint64_t)ms;
    return 0;
}

void export_format_time(uint64_t ms, char out[EXPORT_TIME_MAX])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, EXPORT_TIME_MAX, "%llu", (unsigned long long)ms);
        return;
    }
    /* Room for any int the compiler imagines; real years fit out. */
    char text[96];
    int n = snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (unsigned)(ms % 1000));
    size_t len = n > 0 ? (size_t)n : 0;
    if (len >= EXPORT_TIME_MAX)
        len = EXPORT_TIME_MAX - 1;
    memcpy(out, text, len);
    out[len] = '\0';
}

/* A comma-separated list of words, each turned into bits by word_bits
 * (false: not a word of the list). At least one word. */
static int parse_words(const char *text, bool (*word_bits)(const char *w, unsigned *bits),
                       unsigned *out)
{
    char words[EXPORT_STATUS_TEXT_MAX + 1];
    size_t n = text != NULL ? strnlen(text, sizeof words) : 0;
    if (n == 0 || n >= sizeof words)
        return -1;
    memcpy(words, text, n + 1);
    unsigned bits = 0;
    char *save = NULL;
    for (char *w = strtok_r(words, ",", &save); w != NULL; w = strtok_r(NULL, ",", &save)) {
        if (!word_bits(w, &bits))
            return -1;
    }
    if (bits == 0)
        return -1;
    *out = bits;
    return 0;
}

static bool status_bits(const char *w, unsigned *bits)
{
    ledger_status s;
    if (strcmp(w, "pending") == 0)
        *bits |= LEDGER_STATUS_PENDING;
    else if (ledger_status_parse(w, &s) == 0)
        *bits |= LEDGER_STATUS_BIT(s);
    else
        return false;
    return true;
}

static bool kind_bits(const char *w, unsigned *bits)
{
    ledger_kind k;
    if (ledger_kind_parse(w, &k) != 0)
        return false;
    *bits |= LEDGER_KIND_BIT(k);
    return true;
}

int export_parse_status(const char *text, unsigned *statuses)
{
    return parse_words(text, status_bits, statuses);
}

int export_parse_kind(const char *text, unsigned *kinds)
{
    return parse_words(text, kind_bits, kinds);
}

static bool given(const char *s)
{
    return s != NULL && s[0] != '\0';
}

int export_filter_parse(ledger_filter *f, const export_filter_text *t, char *err, size_t errlen)
{
    const char *content = t->content, *client = t->client, *status = t->status;
    const char *since = t->since, *until = t->until;
    memset(f, 0, sizeof *f);
    if (given(content)) {
        if (strlen(content) > LEDGER_PATH_MAX) {
            snprintf(err, errlen, "content: a path has at most %d bytes", LEDGER_PATH_MAX);
            return -1;
        }
        f->path = content;
    }
    if (given(client)) {
        if (strlen(client) != ECKEY_THUMBPRINT_LEN) {
            snprintf(err, errlen, "client: a client ID has %d characters", ECKEY_THUMBPRINT_LEN);
            return -1;
        }
        f->client = client;
    }
    if (given(status) && export_parse_status(status, &f->statuses) != 0) {
        snprintf(err, errlen,
                 "status: use issued, bound, confirmed, corrupted or pending (comma-separated)");
        return -1;
    }
    if (given(t->kind) && export_parse_kind(t->kind, &f->kinds) != 0) {
        snprintf(err, errlen,
                 "kind: use page, download, view, device or tracked (comma-separated)");
        return -1;
    }
    if (given(since) && export_parse_time(since, &f->since_ms) != 0) {
        snprintf(err, errlen, "since: use Unix milliseconds, YYYY-MM-DD or an RFC 3339 time");
        return -1;
    }
    if (given(until) && (export_parse_time(until, &f->until_ms) != 0 || f->until_ms == 0)) {
        snprintf(err, errlen, "until: use Unix milliseconds, YYYY-MM-DD or an RFC 3339 time");
        return -1;
    }
    if (f->until_ms != 0 && f->until_ms <= f->since_ms) {
        snprintf(err, errlen, "until must be later than since");
        return -1;
    }
    return 0;
}
