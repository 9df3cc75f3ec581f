#include "daemon/recovery.h"

#include "daemon/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECOVERY_TAG         0x32564352u /* "RCV2" read little-endian */
#define RECOVERY_TAG_1       0x31564352u /* "RCV1": records without kind and bytes sent */
#define RECOVERY_DIGEST_LEN  8
#define RECOVERY_FIXED_LEN_1 (4 + 6 * 8 + 2 * 32)
#define RECOVERY_FIXED_LEN   (RECOVERY_FIXED_LEN_1 + 32 + 8) /* and the bytes sent */
#define RECOVERY_STRINGS     9
#define RECOVERY_WRITE_CHUNK (64 * 1024)
#define RECOVERY_FILE_MODE   0600

static const char recovery_magic[RECOVERY_HEADER_LEN] = "receiptd ledger recovery v1\n";

struct recovery_file {
    int fd;
    char path[PATH_MAX];
    char dir[PATH_MAX];
    uint64_t end; /* where the next record goes */
    uint64_t reserved;
    uint64_t saved;
};

/* The string fields of a row, in file order, with their capacities. */
typedef struct string_field {
    size_t offset;
    size_t cap; /* including the NUL */
} string_field;

#define STRING_FIELD(name)                                                                         \
    {                                                                                              \
        offsetof(ledger_delivery, name), sizeof(((ledger_delivery *)0)->name)                      \
    }

static const string_field string_fields[RECOVERY_STRINGS] = {
    STRING_FIELD(id),          STRING_FIELD(path),         STRING_FIELD(server),
    STRING_FIELD(client_addr), STRING_FIELD(user_agent),   STRING_FIELD(client),
    STRING_FIELD(bound_addr),  STRING_FIELD(confirm_addr), STRING_FIELD(receipt),
};

/* The receipt comes last: only confirmations carry one. */
#define RECOVERY_RECEIPT_FIELD (RECOVERY_STRINGS - 1)

static size_t payload_max(bool with_receipt)
{
    size_t n = RECOVERY_FIXED_LEN;
    for (size_t i = 0; i < RECOVERY_STRINGS; i++) {
        if (i == RECOVERY_RECEIPT_FIELD && !with_receipt)
            n += 2;
        else
            n += 2 + string_fields[i].cap - 1;
    }
    return n;
}

size_t recovery_record_max(void)
{
    /* Issuances and bindings: the events answered 200 before they are
     * durable. A confirmation is answered only after its commit, so the
     * reservation need not cover its receipt. */
    return 8 + payload_max(false) + RECOVERY_DIGEST_LEN;
}

uint64_t recovery_size_for(size_t events)
{
    return RECOVERY_HEADER_LEN + (uint64_t)events * recovery_record_max();
}

/* ---- encoding ---- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void digest(const uint8_t *data, size_t len, uint8_t out[RECOVERY_DIGEST_LEN])
{
    uint8_t full[SHA256_DIGEST_LENGTH];
    SHA256(data, len, full);
    memcpy(out, full, RECOVERY_DIGEST_LEN);
}

/* Encodes one event at out (room for 8 + payload_max(true) + digest); returns its length. */
static size_t encode(const ledger_event *ev, uint8_t *out)
{
    const ledger_delivery *r = &ev->row;
    uint8_t *p = out + 8;
    p[0] = (uint8_t)ev->kind;
    p[1] = (uint8_t)r->status;
    p[2] = r->received_has_sha256 ? 1 : 0;
    p[3] = (uint8_t)r->kind;
    p += 4;
    const uint64_t numbers[6] = {r->size,         r->issued_ms,     r->bound_ms,
                                 r->confirmed_ms, r->received_size, r->received_at_ms};
    for (int i = 0; i < 6; i++, p += 8)
        put_u64(p, numbers[i]);
    memcpy(p, r->sha256, 32);
    memcpy(p + 32, r->received_sha256, 32);
    p += 64;
    memcpy(p, r->delivered_sha256, 32);
    put_u64(p + 32, r->delivered_size);
    p += 40;
    for (size_t i = 0; i < RECOVERY_STRINGS; i++) {
        const char *s = (const char *)r + string_fields[i].offset;
        size_t n = strnlen(s, string_fields[i].cap - 1);
        put_u16(p, (uint16_t)n);
        memcpy(p + 2, s, n);
        p += 2 + n;
    }
    size_t payload = (size_t)(p - (out + 8));
    put_u32(out, RECOVERY_TAG);
    put_u32(out + 4, (uint32_t)payload);
    digest(out, 8 + payload, p);
    return 8 + payload + RECOVERY_DIGEST_LEN;
}

/*
 * Decodes a payload whose digest matched; false if it is not a valid event.
 * A record of the first version (tag 1) has no kind and no bytes sent: it
 * is tracked, and sent what it stored, as every 200 was then.
 */
static bool decode(uint32_t tag, const uint8_t *p, size_t len, ledger_event *ev)
{
    const uint8_t *end = p + len;
    ledger_delivery *r = &ev->row;
    bool first = tag == RECOVERY_TAG_1;
    memset(ev, 0, sizeof *ev);
    if (len < (first ? RECOVERY_FIXED_LEN_1 : RECOVERY_FIXED_LEN))
        return false;
    if (p[0] > LEDGER_EVENT_CONFIRM || p[1] > LEDGER_CORRUPTED || p[2] > 1 ||
        (!first && p[3] >= LEDGER_KIND_COUNT))
        return false;
    ev->kind = (ledger_event_kind)p[0];
    r->status = (ledger_status)p[1];
    r->received_has_sha256 = p[2] == 1;
    r->kind = first ? LEDGER_KIND_TRACKED : (ledger_kind)p[3];
    p += 4;
    uint64_t *numbers[6] = {&r->size,         &r->issued_ms,     &r->bound_ms,
                            &r->confirmed_ms, &r->received_size, &r->received_at_ms};
    for (int i = 0; i < 6; i++, p += 8)
        *numbers[i] = get_u64(p);
    memcpy(r->sha256, p, 32);
    memcpy(r->received_sha256, p + 32, 32);
    p += 64;
    if (first) {
        memcpy(r->delivered_sha256, r->sha256, 32);
        r->delivered_size = r->size;
    } else {
        memcpy(r->delivered_sha256, p, 32);
        r->delivered_size = get_u64(p + 32);
        p += 40;
    }
    for (size_t i = 0; i < RECOVERY_STRINGS; i++) {
        if (end - p < 2)
            return false;
        size_t n = get_u16(p);
        p += 2;
        if (n >= string_fields[i].cap || (size_t)(end - p) < n || memchr(p, '\0', n) != NULL)
            return false;
        char *s = (char *)r + string_fields[i].offset;
        memcpy(s, p, n);
        s[n] = '\0';
        p += n;
    }
    return p == end;
}

/* ---- saving ---- */

static int split_path(const char *state_dir, char *dir, char *path, char *err, size_t errlen)
{
    int n = snprintf(path, PATH_MAX, "%s/%s", state_dir, RECOVERY_FILE);
    if (n < 0 || n >= PATH_MAX || strlen(state_dir) >= PATH_MAX) {
        snprintf(err, errlen, "the state directory path is too long");
        return -1;
    }
    if (dir != NULL)
        snprintf(dir, PATH_MAX, "%s", state_dir);
    return 0;
}

static int sync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

static int write_all(int fd, const void *buf, size_t len, uint64_t offset)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len, uint64_t offset, size_t *got)
{
    uint8_t *p = buf;
    *got = 0;
    while (*got < len) {
        ssize_t n = pread(fd, p + *got, len - *got, (off_t)(offset + *got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return 0;
}

/* Reserves [0, size): real blocks, so that later writes need no free space. */
static int reserve(int fd, uint64_t size)
{
    if (fallocate(fd, 0, 0, (off_t)size) == 0)
        return 0;
    if (errno != EOPNOTSUPP)
        return -1;
    int rc = posix_fallocate(fd, 0, (off_t)size); /* writes zeros where unsupported */
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

recovery_file *recovery_open(const char *state_dir, size_t events, char *err, size_t errlen)
{
    recovery_file *rf = calloc(1, sizeof *rf);
    uint8_t head[RECOVERY_HEADER_LEN + 8];
    size_t got = 0;
    struct stat st;
    if (rf == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rf->fd = -1;
    if (split_path(state_dir, rf->dir, rf->path, err, errlen) != 0)
        goto fail;
    rf->fd = open(rf->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, RECOVERY_FILE_MODE);
    if (rf->fd < 0 || fstat(rf->fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", rf->path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", rf->path);
        goto fail;
    }
    if (read_all(rf->fd, head, sizeof head, 0, &got) != 0) {
        snprintf(err, errlen, "%s: %s", rf->path, strerror(errno));
        goto fail;
    }
    if (got >= RECOVERY_HEADER_LEN && memcmp(head, recovery_magic, RECOVERY_HEADER_LEN) != 0) {
        snprintf(err, errlen, "%s is not a receiptd recovery file; move it away", rf->path);
        goto fail;
    }
    if (got == sizeof head && get_u32(head + RECOVERY_HEADER_LEN) != 0) {
        snprintf(err, errlen, "%s still holds events: they must be applied first", rf->path);
        goto fail;
    }

    rf->reserved = recovery_size_for(events);
    if (reserve(rf->fd, rf->reserved) != 0) {
        snprintf(err, errlen,
                 "cannot reserve %llu bytes for %s (%s): free space, or lower --queue or --batch",
                 (unsigned long long)rf->reserved, rf->path, strerror(errno));
        goto fail;
    }
    /* A smaller --queue than last time: give the rest back. */
    if ((uint64_t)st.st_size > rf->reserved && ftruncate(rf->fd, (off_t)rf->reserved) != 0) {
        snprintf(err, errlen, "%s: %s", rf->path, strerror(errno));
        goto fail;
    }
    if (write_all(rf->fd, recovery_magic, RECOVERY_HEADER_LEN, 0) != 0 || fsync(rf->fd) != 0 ||
        sync_dir(rf->dir) != 0) {
        snprintf(err, errlen, "%s: %s", rf->path, strerror(errno));
        goto fail;
    }
    rf->end = RECOVERY_HEADER_LEN;
    return rf;
fail:
    recovery_close(rf);
    return NULL;
}

size_t recovery_save(recovery_file *rf, const ledger_event *const *events, size_t n, char *err,
                     size_t errlen)
{
    size_t record_cap = 8 + payload_max(true) + RECOVERY_DIGEST_LEN;
    size_t written = 0; /* events whose records are wholly written */
    size_t pending = 0; /* events in buf */
    size_t used = 0;
    uint64_t offset;
    uint8_t *buf;

    if (rf == NULL || n == 0)
        return 0;
    buf = malloc(RECOVERY_WRITE_CHUNK);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    offset = rf->end;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || used + record_cap > RECOVERY_WRITE_CHUNK) {
            if (used > 0 && write_all(rf->fd, buf, used, offset) != 0) {
                snprintf(err, errlen, "%s: %s", rf->path, strerror(errno));
                break;
            }
            offset += used;
            written += pending;
            used = 0;
            pending = 0;
        }
        if (i < n) {
            used += encode(events[i], buf + used);
            pending++;
        }
    }
    free(buf);
    if (written > 0 && fsync(rf->fd) != 0) {
        /* Whatever the kernel did with the pages, none of it is known durable. */
        snprintf(err, errlen, "%s: fsync: %s", rf->path, strerror(errno));
        return 0;
    }
    rf->end = offset;
    rf->saved += written;
    return written;
}

uint64_t recovery_reserved(const recovery_file *rf)
{
    return rf != NULL ? rf->reserved : 0;
}

uint64_t recovery_saved(const recovery_file *rf)
{
    return rf != NULL ? rf->saved : 0;
}

void recovery_close(recovery_file *rf)
{
    if (rf == NULL)
        return;
    if (rf->fd >= 0)
        close(rf->fd);
    free(rf);
}

/* ---- reading ---- */

typedef int (*event_fn)(void *arg, const ledger_event *ev);

/*
 * Calls fn for each readable event of path, in order; fn returning non-zero
 * stops with -1 (err is fn's). Returns 0 with out filled, or -1.
 */
static int read_events(const char *path, event_fn fn, void *arg, recovery_summary *out, char *err,
                       size_t errlen)
{
    size_t payload_cap = payload_max(true);
    uint8_t head[RECOVERY_HEADER_LEN];
    uint8_t *rec = NULL;
    ledger_event *ev = NULL;
    uint64_t offset = RECOVERY_HEADER_LEN;
    size_t got = 0;
    int ret = -1;

    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    out->exists = true;
    rec = malloc(8 + payload_cap + RECOVERY_DIGEST_LEN);
    ev = malloc(sizeof *ev);
    if (rec == NULL || ev == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (read_all(fd, head, sizeof head, 0, &got) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (got == 0) { /* made, never written: nothing saved */
        ret = 0;
        goto out;
    }
    if (got < sizeof head || memcmp(head, recovery_magic, sizeof head) != 0) {
        snprintf(err, errlen, "%s is not a receiptd recovery file", path);
        goto out;
    }
    for (;;) {
        if (read_all(fd, rec, 8, offset, &got) != 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        uint32_t tag = got == 8 ? get_u32(rec) : 0;
        uint32_t len = got == 8 ? get_u32(rec + 4) : 0;
        if (got < 8 || (tag == 0 && len == 0))
            break; /* the end of what was saved */
        size_t body = (size_t)len + RECOVERY_DIGEST_LEN;
        uint8_t check[RECOVERY_DIGEST_LEN];
        if ((tag != RECOVERY_TAG && tag != RECOVERY_TAG_1) || len > payload_cap ||
            read_all(fd, rec + 8, body, offset + 8, &got) != 0 || got < body) {
            out->damaged_at = offset;
            break;
        }
        digest(rec, 8 + len, check);
        if (memcmp(check, rec + 8 + len, RECOVERY_DIGEST_LEN) != 0 ||
            !decode(tag, rec + 8, len, ev)) {
            out->damaged_at = offset;
            break;
        }
        if (fn != NULL && fn(arg, ev) != 0)
            goto out;
        out->events++;
        offset += 8 + body;
    }
    ret = 0;
out:
    free(rec);
    free(ev);
    close(fd);
    return ret;
}

int recovery_inspect(const char *state_dir, recovery_summary *out, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (split_path(state_dir, NULL, path, err, errlen) != 0)
        return -1;
    return read_events(path, NULL, NULL, out, err, errlen);
}

#define RECOVERY_APPLY_BATCH_MAX 256 /* events per transaction, whatever batch_max */

typedef struct apply_ctx {
    ledger *lg;
    const ledger_log_hook *hook;
    size_t batch_max;
    size_t in_batch;
    ledger_event *events; /* batch_max of them */
    ledger_batch_entry *entries;
    uint64_t refused;
    char *err;
    size_t errlen;
} apply_ctx;

/* Writes the events gathered so far as one transaction. */
static int flush_batch(apply_ctx *ctx)
{
    if (ctx->in_batch == 0)
        return 0;
    for (size_t i = 0; i < ctx->in_batch; i++)
        ctx->entries[i] = (ledger_batch_entry){.event = &ctx->events[i]};
    if (ledger_write_logged(ctx->lg, ctx->entries, ctx->in_batch, ctx->hook) != 0) {
        snprintf(ctx->err, ctx->errlen, "%s", ledger_error(ctx->lg));
        return -1;
    }
    for (size_t i = 0; i < ctx->in_batch; i++) {
        if (ctx->entries[i].status != LEDGER_APPLY_EVENT_FAILED)
            continue;
        log_warn("recovery: event for delivery %s refused by the ledger: %s", ctx->events[i].row.id,
                 ctx->entries[i].why ? ctx->entries[i].why : "refused");
        ctx->refused++;
    }
    ctx->in_batch = 0;
    return 0;
}

static int apply_one(void *arg, const ledger_event *ev)
{
    apply_ctx *ctx = arg;
    memcpy(&ctx->events[ctx->in_batch++], ev, sizeof *ev);
    return ctx->in_batch == ctx->batch_max ? flush_batch(ctx) : 0;
}

int recovery_apply(const char *state_dir, ledger *lg, size_t batch_max, const ledger_log_hook *hook,
                   recovery_summary *out, char *err, size_t errlen)
{
    char path[PATH_MAX];
    char dir[PATH_MAX];
    char why[LEDGER_ERR_MAX] = "";
    if (split_path(state_dir, dir, path, err, errlen) != 0)
        return -1;
    if (batch_max == 0)
        batch_max = 1;
    if (batch_max > RECOVERY_APPLY_BATCH_MAX)
        batch_max = RECOVERY_APPLY_BATCH_MAX;
    apply_ctx ctx = {.lg = lg,
                     .hook = hook,
                     .batch_max = batch_max,
                     .events = malloc(batch_max * sizeof(ledger_event)),
                     .entries = malloc(batch_max * sizeof(ledger_batch_entry)),
                     .err = why,
                     .errlen = sizeof why};
    if (ctx.events == NULL || ctx.entries == NULL) {
        free(ctx.events);
        free(ctx.entries);
        snprintf(err, errlen, "cannot apply %s: out of memory", path);
        return -1;
    }
    int read = read_events(path, apply_one, &ctx, out, err, errlen);
    if (read == 0 && flush_batch(&ctx) != 0)
        read = -1;
    free(ctx.events);
    free(ctx.entries);
    if (read != 0) {
        if (why[0] != '\0')
            snprintf(err, errlen, "cannot apply %s to the ledger: %s", path, why);
        return -1;
    }
    if (!out->exists)
        return 0;
    if (out->damaged_at != 0) {
        char kept[PATH_MAX + 32];
        snprintf(kept, sizeof kept, "%s.damaged-%lld", path, (long long)time(NULL));
        log_error("recovery: %s is damaged at byte %llu (a save cut short); the %llu events "
                  "before it were applied, the file is kept as %s",
                  path, (unsigned long long)out->damaged_at, (unsigned long long)out->events, kept);
        if (rename(path, kept) != 0) {
            snprintf(err, errlen, "cannot rename %s: %s", path, strerror(errno));
            return -1;
        }
    } else if (unlink(path) != 0) {
        snprintf(err, errlen, "cannot remove %s after applying it: %s", path, strerror(errno));
        return -1;
    }
    if (sync_dir(dir) != 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (ctx.refused > 0)
        log_warn("recovery: %llu events refused by the ledger were skipped",
                 (unsigned long long)ctx.refused);
    return 0;
}
