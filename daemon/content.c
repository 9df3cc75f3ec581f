#include "daemon/content.h"

#include "common/b64.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CONTENT_HASH_CHUNK         (256u * 1024) /* pread size when hashing files not in memory */
#define CONTENT_CHANGE_RETRIES     3 /* a file that keeps changing while read is an error */
#define CONTENT_RESOLVE_RETRIES    4 /* openat2 EAGAIN: a rename raced the resolution */
#define CONTENT_DIGEST_ENTRIES_MAX (1u << 24)
#define CONTENT_BODY_BUCKETS_MIN   256
#define CONTENT_BODY_BUCKETS_MAX   (1u << 20)
#define CONTENT_MIME_BUCKETS       1024
#define CONTENT_MIME_ENTRIES_MAX   8192 /* extensions taken from a mime.types file */
#define CONTENT_MIME_LINE_MAX      1024 /* longer lines of a mime.types file are skipped */
#define CONTENT_MIME_TYPE_MAX      127  /* bytes of a type, without the charset */
#define CONTENT_EXT_MAX            32   /* longer extensions have no type */
#define CONTENT_DEFAULT_MIME       "application/octet-stream"
#define CONTENT_CHARSET            "; charset=utf-8"

/* ---------------------------------------------------------------- MIME */

typedef struct mime_entry {
    struct mime_entry *next;
    const char *type;
    char ext[CONTENT_EXT_MAX + 1];
} mime_entry;

/* A type string read from a file; entries point into it. */
typedef struct mime_string {
    struct mime_string *next;
    char text[];
} mime_string;

typedef struct mime_table {
    mime_entry *buckets[CONTENT_MIME_BUCKETS];
    size_t count;
    mime_string *strings;
} mime_table;

/* Used for extensions that the mime.types file does not name. */
static const struct {
    const char *ext;
    const char *type;
} builtin_mime[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    /* RFC 9239 made text/javascript the one type for scripts. */
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json; charset=utf-8"},
    {"map", "application/json; charset=utf-8"},
    {"jsonld", "application/ld+json; charset=utf-8"},
    {"webmanifest", "application/manifest+json; charset=utf-8"},
    {"txt", "text/plain; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"xml", "text/xml; charset=utf-8"},
    {"ics", "text/calendar; charset=utf-8"},
    {"xhtml", "application/xhtml+xml"},
    {"rss", "application/rss+xml"},
    {"atom", "application/atom+xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"apng", "image/apng"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"bmp", "image/bmp"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"ico", "image/x-icon"},
    {"pdf", "application/pdf"},
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"bin", "application/octet-stream"},
};

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool mime_is_html(const char *type)
{
    return strncmp(type, "text/html", 9) == 0 && (type[9] == '\0' || type[9] == ';');
}

static mime_entry *mime_find(const mime_table *t, const char *ext, size_t n)
{
    mime_entry *e = t->buckets[fnv1a(ext, n) & (CONTENT_MIME_BUCKETS - 1)];
    for (; e; e = e->next) {
        if (strncmp(e->ext, ext, n) == 0 && e->ext[n] == '\0')
            return e;
    }
    return NULL;
}

/* First definition of an extension wins. ext is lower case. Returns -1 on OOM. */
static int mime_add(mime_table *t, const char *ext, size_t n, const char *type)
{
    if (n == 0 || n > CONTENT_EXT_MAX || mime_find(t, ext, n))
        return 0;
    mime_entry *e = malloc(sizeof *e);
    if (!e)
        return -1;
    memcpy(e->ext, ext, n);
    e->ext[n] = '\0';
    e->type = type;
    size_t b = fnv1a(ext, n) & (CONTENT_MIME_BUCKETS - 1);
    e->next = t->buckets[b];
    t->buckets[b] = e;
    t->count++;
    return 0;
}

static void mime_free(mime_table *t)
{
    for (size_t i = 0; i < CONTENT_MIME_BUCKETS; i++) {
        mime_entry *e = t->buckets[i];
        while (e) {
            mime_entry *next = e->next;
            free(e);
            e = next;
        }
        t->buckets[i] = NULL;
    }
    while (t->strings) {
        mime_string *next = t->strings->next;
        free(t->strings);
        t->strings = next;
    }
    t->count = 0;
}

static bool mime_wants_charset(const char *type, size_t n)
{
    if (n >= 5 && strncmp(type, "text/", 5) == 0)
        return true;
    if (n == 22 && strncmp(type, "application/javascript", 22) == 0)
        return true;
    if (n == 16 && strncmp(type, "application/json", 16) == 0)
        return true;
    return n > 17 && strncmp(type, "application/", 12) == 0 &&
           strncmp(type + n - 5, "+json", 5) == 0;
}

/* Token characters of RFC 9110, so that a type can go into a header as is. */
static bool mime_tchar(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool mime_type_valid(const char *type, size_t n)
{
    size_t slashes = 0;
    if (n == 0 || n > CONTENT_MIME_TYPE_MAX || type[0] == '/' || type[n - 1] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (type[i] == '/')
            slashes++;
        else if (!mime_tchar(type[i]))
            return false;
    }
    return slashes == 1;
}

static bool mime_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* One "type ext ext ..." line. Returns -1 on OOM; malformed lines are skipped. */
static int mime_parse_line(mime_table *t, char *line)
{
    char *p = line;
    while (mime_space(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    const char *type = p;
    while (*p && !mime_space(*p))
        p++;
    size_t type_len = (size_t)(p - type);
    if (!mime_type_valid(type, type_len))
        return 0;

    mime_string *str = NULL;
    for (;;) {
        while (mime_space(*p))
            p++;
        if (*p == '\0' || *p == '#')
            break;
        char *ext = p;
        bool ok = true;
        while (*p && !mime_space(*p)) {
            *p = ascii_lower(*p);
            if (!mime_tchar(*p) || *p == '.')
                ok = false;
            p++;
        }
        size_t ext_len = (size_t)(p - ext);
        if (!ok || ext_len > CONTENT_EXT_MAX || mime_find(t, ext, ext_len))
            continue;
        if (t->count >= CONTENT_MIME_ENTRIES_MAX)
            break;
        if (!str) {
            /* The charset goes into the stored string so that lookups return it as is. */
            bool cs = mime_wants_charset(type, type_len);
            size_t len = type_len + (cs ? sizeof CONTENT_CHARSET - 1 : 0);
            str = malloc(sizeof *str + len + 1);
            if (!str)
                return -1;
            memcpy(str->text, type, type_len);
            str->text[type_len] = '\0';
            if (cs)
                memcpy(str->text + type_len, CONTENT_CHARSET, sizeof CONTENT_CHARSET);
            str->next = t->strings;
            t->strings = str;
        }
        if (mime_add(t, ext, ext_len, str->text) < 0)
            return -1;
    }
    return 0;
}

/* Returns 0, or -1 with errno set (ENOENT when the file does not exist). */
static int mime_load_file(mime_table *t, const char *path)
{
    char line[CONTENT_MIME_LINE_MAX + 2];
    int rc = -1;
    FILE *f = fopen(path, "re");
    if (!f)
        goto done;
    bool skipping = false;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        bool complete = len > 0 && line[len - 1] == '\n';
        if (skipping || (!complete && !feof(f))) {
            /* A line over the cap is dropped whole, not parsed in pieces. */
            skipping = !complete;
            continue;
        }
        if (mime_parse_line(t, line) < 0) {
            errno = ENOMEM;
            goto done;
        }
    }
    if (ferror(f)) {
        errno = EIO;
        goto done;
    }
    rc = 0;
done:
    if (f)
        fclose(f);
    return rc;
}

/* Pointer to the extension of the last segment of name, or NULL. */
static const char *mime_extension(const char *name, size_t *len)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    /* A leading dot names a hidden file, not an extension. */
    if (!dot || dot == base || dot[1] == '\0')
        return NULL;
    *len = strlen(dot + 1);
    return *len <= CONTENT_EXT_MAX ? dot + 1 : NULL;
}

static const char *mime_lookup(const mime_table *t, const char *name)
{
    size_t n = 0;
    const char *ext = mime_extension(name, &n);
    char lower[CONTENT_EXT_MAX + 1];
    if (!ext)
        return CONTENT_DEFAULT_MIME;
    for (size_t i = 0; i < n; i++)
        lower[i] = ascii_lower(ext[i]);
    lower[n] = '\0';
    if (t) {
        const mime_entry *e = mime_find(t, lower, n);
        return e ? e->type : CONTENT_DEFAULT_MIME;
    }
    for (size_t i = 0; i < sizeof builtin_mime / sizeof builtin_mime[0]; i++) {
        if (strcmp(builtin_mime[i].ext, lower) == 0)
            return builtin_mime[i].type;
    }
    return CONTENT_DEFAULT_MIME;
}

/* ---------------------------------------------------------- the store */

typedef struct file_id {
    dev_t dev;
    ino_t ino;
    uint64_t size;
    struct timespec mtime;
} file_id;

/*
 * A small file in memory. The cache holds one reference while the entry is
 * in the table, every content_file one more; the last one frees. Entries
 * need nothing from the store once taken, so releasing is lock-free.
 */
typedef struct body_entry {
    atomic_uint refs;
    bool cached;                    /* in the table and the LRU list */
    struct body_entry *hnext;       /* hash chain */
    struct body_entry *prev, *next; /* LRU, most recent first */
    uint64_t hash;
    uint64_t checked_ms; /* last time the file was seen to be this one */
    size_t cost;
    file_id id;
    const char *mime;
    bool is_html;
    uint8_t sha256[32];
    char etag[48];
    char repr_digest[64];
    char last_modified[40];
    size_t path_len;
    char path[CONTENT_PATH_MAX + 1];
    uint8_t data[];
} body_entry;

typedef struct digest_entry {
    struct digest_entry *hnext;
    struct digest_entry *prev, *next; /* LRU, most recent first */
    uint64_t hash;
    file_id id;
    uint8_t sha256[32];
} digest_entry;

struct content_store {
    int root_fd;
    EVP_MD *md;
    content_options opts;
    mime_table mime;

    bool body_lock_init;
    pthread_mutex_t body_lock;
    body_entry **body_buckets;
    size_t body_nbuckets; /* a power of two */
    size_t body_count;
    size_t body_bytes;
    body_entry *body_head, *body_tail;

    bool digest_lock_init;
    pthread_mutex_t digest_lock;
    digest_entry **digest_buckets;
    size_t digest_nbuckets; /* a power of two */
    size_t digest_count;
    digest_entry *digest_head, *digest_tail;
};

/* Marks a content_file whose data is a private mapping of size bytes. */
static char mapped_tag;

static void set_err(char *err, size_t errlen, const char *fmt, const char *arg)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, arg);
}

void content_options_default(content_options *opts)
{
    if (!opts)
        return;
    opts->body_max = 256 * 1024;
    opts->cache_bytes = 64u * 1024 * 1024;
    opts->digest_entries = 65536;
    opts->revalidate_ms = 1000;
    opts->mime_types = NULL;
}

static uint64_t now_ms(void)
{
    /* The coarse clock is read from the vDSO: no system call on the hit path. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t pow2_at_least(size_t n, size_t min)
{
    size_t p = min;
    while (p < n)
        p <<= 1;
    return p;
}

static void file_id_from(file_id *id, const struct stat *st)
{
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = (uint64_t)st->st_size;
    id->mtime = st->st_mtim;
}

static bool file_id_eq(const file_id *a, const file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static uint64_t mix64(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15u + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9u;
    return h ^ (h >> 29);
}

static uint64_t file_id_hash(const file_id *id)
{
    uint64_t h = mix64(0, (uint64_t)id->dev);
    h = mix64(h, (uint64_t)id->ino);
    h = mix64(h, id->size);
    h = mix64(h, (uint64_t)id->mtime.tv_sec);
    return mix64(h, (uint64_t)id->mtime.tv_nsec);
}

static void format_etag(const uint8_t sha256[32], char out[48])
{
    /* 128 bits of the digest are plenty to tell versions apart. */
    out[0] = '"';
    size_t n = b64url_encode(sha256, 16, out + 1);
    out[1 + n] = '"';
    out[2 + n] = '\0';
}

/* Made once per version of a file, not per response. */
static void format_repr_digest(const uint8_t sha256[32], char out[64])
{
    char b64[48];
    b64std_encode(sha256, 32, b64);
    snprintf(out, 64, "sha-256=:%s:", b64);
}

static void format_http_date(const struct timespec *t, char out[40])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    time_t secs = t->tv_sec;
    /* Own names rather than strftime: the date must not follow the locale. */
    if (!gmtime_r(&secs, &tm) || tm.tm_year < 0 || tm.tm_year > 9999 - 1900) {
        secs = 0;
        gmtime_r(&secs, &tm);
    }
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* --------------------------------------------------------- the digests */

static bool digest_find(content_store *s, const file_id *id, uint64_t h, uint8_t out[32])
{
    bool found = false;
    if (!s->digest_buckets)
        return false;
    pthread_mutex_lock(&s->digest_lock);
    digest_entry *e = s->digest_buckets[h & (s->digest_nbuckets - 1)];
    for (; e; e = e->hnext) {
        if (e->hash == h && file_id_eq(&e->id, id))
            break;
    }
    if (e) {
        memcpy(out, e->sha256, 32);
        if (e != s->digest_head) {
            e->prev->next = e->next;
            if (e->next)
                e->next->prev = e->prev;
            else
                s->digest_tail = e->prev;
            e->prev = NULL;
            e->next = s->digest_head;
            s->digest_head->prev = e;
            s->digest_head = e;
        }
        found = true;
    }
    pthread_mutex_unlock(&s->digest_lock);
    return found;
}

static void digest_unlink(content_store *s, digest_entry *e)
{
    digest_entry **pp = &s->digest_buckets[e->hash & (s->digest_nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        s->digest_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->digest_tail = e->prev;
    s->digest_count--;
}

static void digest_insert(content_store *s, const file_id *id, uint64_t h, const uint8_t sha[32])
{
    digest_entry *victim = NULL;
    if (!s->digest_buckets)
        return;
    digest_entry *e = malloc(sizeof *e);
    if (!e)
        return; /* the cache is an optimisation; hashing again next time is correct */
    e->hash = h;
    e->id = *id;
    memcpy(e->sha256, sha, 32);

    pthread_mutex_lock(&s->digest_lock);
    digest_entry *old = s->digest_buckets[h & (s->digest_nbuckets - 1)];
    for (; old; old = old->hnext) {
        if (old->hash == h && file_id_eq(&old->id, id))
            break;
    }
    if (old) {
        /* Another thread hashed the same version meanwhile. */
        victim = e;
    } else {
        if (s->digest_count >= s->opts.digest_entries) {
            victim = s->digest_tail;
            digest_unlink(s, victim);
        }
        size_t b = h & (s->digest_nbuckets - 1);
        e->hnext = s->digest_buckets[b];
        s->digest_buckets[b] = e;
        e->prev = NULL;
        e->next = s->digest_head;
        if (s->digest_head)
            s->digest_head->prev = e;
        else
            s->digest_tail = e;
        s->digest_head = e;
        s->digest_count++;
    }
    pthread_mutex_unlock(&s->digest_lock);
    free(victim);
}

static bool fstat_same(int fd, const file_id *id)
{
    struct stat st;
    file_id now;
    if (fstat(fd, &st) != 0)
        return false;
    file_id_from(&now, &st);
    return file_id_eq(&now, id);
}

/*
 * SHA-256 of the file behind fd, which fstat() described as id: from the
 * cache, or from map (size bytes) when given, else read with pread. Sets
 * *changed when the file was seen to change while it was read.
 */
static content_status file_digest(content_store *s, int fd, const file_id *id, const uint8_t *map,
                                  uint8_t out[32], bool *changed)
{
    content_status rc = CONTENT_ERROR;
    uint8_t *buf = NULL;
    EVP_MD_CTX *ctx = NULL;
    uint64_t h = file_id_hash(id);

    if (digest_find(s, id, h, out))
        return CONTENT_OK;

    ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex2(ctx, s->md, NULL))
        goto done;
    if (map) {
        if (!EVP_DigestUpdate(ctx, map, id->size))
            goto done;
    } else {
        buf = malloc(CONTENT_HASH_CHUNK);
        if (!buf)
            goto done;
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        uint64_t off = 0;
        while (off < id->size) {
            uint64_t want = id->size - off;
            ssize_t got =
                pread(fd, buf, want < CONTENT_HASH_CHUNK ? want : CONTENT_HASH_CHUNK, (off_t)off);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                goto done;
            if (got == 0) {
                *changed = true; /* shrunk under us */
                rc = CONTENT_OK;
                goto done;
            }
            if (!EVP_DigestUpdate(ctx, buf, (size_t)got))
                goto done;
            off += (uint64_t)got;
        }
    }
    if (!EVP_DigestFinal_ex(ctx, out, NULL))
        goto done;
    /* Only a digest of one stable version may be cached, or recorded. */
    if (!fstat_same(fd, id)) {
        *changed = true;
        rc = CONTENT_OK;
        goto done;
    }
    digest_insert(s, id, h, out);
    rc = CONTENT_OK;
done:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ the bodies */

static void body_unref(body_entry *e)
{
    if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        free(e);
}

static body_entry *body_find(content_store *s, uint64_t h, const char *path, size_t len)
{
    body_entry *e = s->body_buckets[h & (s->body_nbuckets - 1)];
    for (; e; e = e->hnext) {
        if (e->hash == h && e->path_len == len && memcmp(e->path, path, len) == 0)
            return e;
    }
    return NULL;
}

static void body_lru_front(content_store *s, body_entry *e)
{
    if (e == s->body_head)
        return;
    e->prev->next = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->body_tail = e->prev;
    e->prev = NULL;
    e->next = s->body_head;
    s->body_head->prev = e;
    s->body_head = e;
}

/* Takes e out of the table; the cache's reference goes onto *drop (freed unlocked). */
static void body_unlink(content_store *s, body_entry *e, body_entry **drop)
{
    body_entry **pp = &s->body_buckets[e->hash & (s->body_nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        s->body_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->body_tail = e->prev;
    e->cached = false;
    s->body_count--;
    s->body_bytes -= e->cost;
    e->hnext = *drop;
    *drop = e;
}

static void body_drop_all(body_entry *drop)
{
    while (drop) {
        body_entry *next = drop->hnext;
        body_unref(drop);
        drop = next;
    }
}

static void body_grow(content_store *s)
{
    size_t n = s->body_nbuckets * 2;
    if (n > CONTENT_BODY_BUCKETS_MAX)
        return;
    body_entry **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->body_nbuckets; i++) {
        body_entry *e = s->body_buckets[i];
        while (e) {
            body_entry *next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(s->body_buckets);
    s->body_buckets = b;
    s->body_nbuckets = n;
}

/* Forgets the cached body of path, if any: it is gone or no longer small. */
static void body_forget(content_store *s, uint64_t h, const char *path, size_t len)
{
    body_entry *drop = NULL;
    pthread_mutex_lock(&s->body_lock);
    body_entry *e = body_find(s, h, path, len);
    if (e)
        body_unlink(s, e, &drop);
    pthread_mutex_unlock(&s->body_lock);
    body_drop_all(drop);
}

/*
 * Puts e (holding the caller's reference) into the cache, replacing an entry
 * for the same path and evicting the least recently used ones to stay within
 * cache_bytes. An entry larger than the whole cache is served uncached.
 */
static void body_insert(content_store *s, body_entry *e)
{
    body_entry *drop = NULL;
    pthread_mutex_lock(&s->body_lock);
    body_entry *old = body_find(s, e->hash, e->path, e->path_len);
    if (old)
        body_unlink(s, old, &drop);
    if (e->cost <= s->opts.cache_bytes) {
        while (s->body_tail && s->body_bytes + e->cost > s->opts.cache_bytes)
            body_unlink(s, s->body_tail, &drop);
        if (s->body_count >= s->body_nbuckets)
            body_grow(s);
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        e->cached = true;
        size_t b = e->hash & (s->body_nbuckets - 1);
        e->hnext = s->body_buckets[b];
        s->body_buckets[b] = e;
        e->prev = NULL;
        e->next = s->body_head;
        if (s->body_head)
            s->body_head->prev = e;
        else
            s->body_tail = e;
        s->body_head = e;
        s->body_count++;
        s->body_bytes += e->cost;
    }
    pthread_mutex_unlock(&s->body_lock);
    body_drop_all(drop);
}

static void fill_from_entry(content_file *out, body_entry *e)
{
    memcpy(out->path, e->path, e->path_len + 1);
    out->path_len = e->path_len;
    out->mime = e->mime;
    out->is_html = e->is_html;
    out->size = e->id.size;
    out->mtime = e->id.mtime;
    memcpy(out->sha256, e->sha256, 32);
    memcpy(out->etag, e->etag, sizeof out->etag);
    memcpy(out->repr_digest, e->repr_digest, sizeof out->repr_digest);
    memcpy(out->last_modified, e->last_modified, sizeof out->last_modified);
    out->data = e->data;
    out->fd = -1;
    out->priv = e;
}

/*
 * Reads a small file into a new entry with its digest taken from exactly
 * those bytes. Sets *changed when the file changed while it was read.
 */
static content_status body_load(content_store *s, int fd, const file_id *id, const char *path,
                                size_t len, uint64_t h, uint64_t now, body_entry **out,
                                bool *changed)
{
    content_status rc = CONTENT_ERROR;
    body_entry *e = malloc(sizeof *e + id->size);
    if (!e)
        goto done;
    uint64_t off = 0;
    while (off < id->size) {
        ssize_t got = pread(fd, e->data + off, id->size - off, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            goto done;
        if (got == 0)
            break;
        off += (uint64_t)got;
    }
    if (off != id->size || !fstat_same(fd, id)) {
        *changed = true;
        rc = CONTENT_OK;
        goto done;
    }
    if (!EVP_Digest(e->data, id->size, e->sha256, NULL, s->md, NULL))
        goto done;
    atomic_init(&e->refs, 1);
    e->cached = false;
    e->hnext = e->prev = e->next = NULL;
    e->hash = h;
    e->checked_ms = now;
    e->cost = sizeof *e + id->size;
    e->id = *id;
    memcpy(e->path, path, len + 1);
    e->path_len = len;
    e->mime = mime_lookup(&s->mime, path);
    e->is_html = mime_is_html(e->mime);
    format_etag(e->sha256, e->etag);
    format_repr_digest(e->sha256, e->repr_digest);
    format_http_date(&id->mtime, e->last_modified);
    *out = e;
    e = NULL;
    rc = CONTENT_OK;
done:
    free(e);
    return rc;
}

/* A small file: the cached entry when it is still this file, else a fresh one. */
static content_status serve_cached(content_store *s, int fd, const file_id *id, const char *path,
                                   size_t len, uint64_t h, uint64_t now, content_file *out,
                                   bool *changed)
{
    body_entry *e = NULL;
    pthread_mutex_lock(&s->body_lock);
    e = body_find(s, h, path, len);
    if (e && file_id_eq(&e->id, id)) {
        e->checked_ms = now;
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        body_lru_front(s, e);
    } else {
        e = NULL;
    }
    pthread_mutex_unlock(&s->body_lock);
    if (!e) {
        content_status rc = body_load(s, fd, id, path, len, h, now, &e, changed);
        if (rc != CONTENT_OK || *changed)
            return rc;
        body_insert(s, e);
    }
    fill_from_entry(out, e);
    return CONTENT_OK;
}

static void fill_meta(content_store *s, content_file *out, const file_id *id, const char *path,
                      size_t len)
{
    memcpy(out->path, path, len + 1);
    out->path_len = len;
    out->mime = mime_lookup(&s->mime, path);
    out->is_html = mime_is_html(out->mime);
    out->size = id->size;
    out->mtime = id->mtime;
    format_etag(out->sha256, out->etag);
    format_repr_digest(out->sha256, out->repr_digest);
    format_http_date(&id->mtime, out->last_modified);
}

/* ---------------------------------------------------------- resolution */

/*
 * Checks the decoded URL path and writes its canonical form: segments joined
 * by single slashes, empty segments collapsed (so "//x" is "/x" and can never
 * become a scheme-relative redirect). A trailing slash names the directory's
 * index.html. Any segment starting with '.' (".", "..", dotfiles) is
 * NOT_FOUND: refusing it says nothing about what exists. Control bytes (NUL
 * included) are BAD_PATH: no file name of ours has them, and they must not
 * reach a header or the ledger.
 */
static content_status canonicalize(const char *url, size_t n, char *canon, size_t *canon_len,
                                   bool *trailing)
{
    if (n > CONTENT_URL_MAX)
        return CONTENT_TOO_LONG;
    if (n == 0 || !url || url[0] != '/')
        return CONTENT_BAD_PATH;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c < 0x20 || c == 0x7f)
            return CONTENT_BAD_PATH;
    }
    size_t len = 1;
    canon[0] = '/';
    size_t i = 0;
    while (i < n) {
        while (i < n && url[i] == '/')
            i++;
        if (i == n)
            break;
        size_t start = i;
        while (i < n && url[i] != '/')
            i++;
        if (url[start] == '.')
            return CONTENT_NOT_FOUND;
        size_t seg = i - start;
        size_t sep = len > 1 ? 1 : 0;
        if (len + sep + seg > CONTENT_PATH_MAX)
            return CONTENT_TOO_LONG;
        if (sep)
            canon[len++] = '/';
        memcpy(canon + len, url + start, seg);
        len += seg;
    }
    *trailing = url[n - 1] == '/';
    if (*trailing) {
        static const char index[] = "index.html";
        size_t sep = len > 1 ? 1 : 0;
        if (len + sep + sizeof index - 1 > CONTENT_PATH_MAX)
            return CONTENT_TOO_LONG;
        if (sep)
            canon[len++] = '/';
        memcpy(canon + len, index, sizeof index - 1);
        len += sizeof index - 1;
    }
    canon[len] = '\0';
    *canon_len = len;
    return CONTENT_OK;
}

static int open_beneath(int dirfd, const char *rel, uint64_t flags)
{
    struct open_how how = {
        .flags = flags,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    for (int tries = 0;; tries++) {
        long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        /* EAGAIN: the kernel saw a rename race with ".." and could not be sure. */
        if (errno == EINTR || (errno == EAGAIN && tries + 1 < CONTENT_RESOLVE_RETRIES))
            continue;
        return -1;
    }
}

static content_status status_from_errno(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
    case EXDEV: /* a symlink that leaves the root */
    case ELOOP:
    case ENAMETOOLONG:
    case ENXIO:
    case ENODEV:
    case EAGAIN:
        return CONTENT_NOT_FOUND;
    case EACCES:
    case EPERM:
        return CONTENT_FORBIDDEN;
    default:
        return CONTENT_ERROR;
    }
}

static void file_init(content_file *out)
{
    out->path[0] = '\0';
    out->path_len = 0;
    out->mime = CONTENT_DEFAULT_MIME;
    out->is_html = false;
    out->size = 0;
    out->data = NULL;
    out->fd = -1;
    out->priv = NULL;
}

static content_status open_slow(content_store *s, const char *canon, size_t len, uint64_t h,
                                bool trailing, uint64_t now, content_file *out)
{
    content_status rc = CONTENT_ERROR;
    bool from_cache = false;
    void *map = MAP_FAILED;
    file_id id = {0};
    /*
     * O_NONBLOCK so that a FIFO in the root cannot hang a worker in open();
     * it is cleared once the file is known to be regular.
     */
    int fd = open_beneath(s->root_fd, canon + 1,
                          O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_LARGEFILE);
    if (fd < 0) {
        rc = status_from_errno(errno);
        goto done;
    }
    for (int attempt = 0;; attempt++) {
        struct stat st;
        bool changed = false;
        if (fstat(fd, &st) != 0)
            goto done;
        if (S_ISDIR(st.st_mode) && !trailing) {
            if (len + 1 > CONTENT_PATH_MAX) {
                rc = CONTENT_TOO_LONG;
                goto done;
            }
            memcpy(out->path, canon, len);
            out->path[len] = '/';
            out->path[len + 1] = '\0';
            out->path_len = len + 1;
            rc = CONTENT_REDIRECT;
            goto done;
        }
        if (!S_ISREG(st.st_mode)) {
            rc = CONTENT_NOT_FOUND;
            goto done;
        }
        if (attempt == 0 && fcntl(fd, F_SETFL, 0) != 0)
            goto done;
        file_id_from(&id, &st);

        if (id.size <= s->opts.body_max) {
            rc = serve_cached(s, fd, &id, canon, len, h, now, out, &changed);
            from_cache = rc == CONTENT_OK && !changed;
        } else if (mime_is_html(mime_lookup(&s->mime, canon)) && id.size <= CONTENT_HTML_MAX) {
            map = mmap(NULL, id.size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (map == MAP_FAILED) {
                rc = CONTENT_ERROR;
                goto done;
            }
            rc = file_digest(s, fd, &id, map, out->sha256, &changed);
            if (rc == CONTENT_OK && !changed) {
                fill_meta(s, out, &id, canon, len);
                out->data = map;
                out->priv = &mapped_tag;
                map = MAP_FAILED;
            }
        } else {
            rc = file_digest(s, fd, &id, NULL, out->sha256, &changed);
            if (rc == CONTENT_OK && !changed) {
                fill_meta(s, out, &id, canon, len);
                out->fd = fd;
                fd = -1;
            }
        }
        if (rc != CONTENT_OK || !changed)
            goto done;
        if (map != MAP_FAILED) {
            munmap(map, id.size);
            map = MAP_FAILED;
        }
        if (attempt + 1 >= CONTENT_CHANGE_RETRIES) {
            /* No stable version to name in a receipt. */
            rc = CONTENT_ERROR;
            goto done;
        }
    }
done:
    if (!from_cache)
        body_forget(s, h, canon, len);
    if (rc != CONTENT_OK && rc != CONTENT_REDIRECT)
        file_init(out);
    if (map != MAP_FAILED)
        munmap(map, id.size);
    if (fd >= 0)
        close(fd);
    return rc;
}

content_status content_open(content_store *s, const char *url_path, size_t n, content_file *out)
{
    char canon[CONTENT_PATH_MAX + 1];
    size_t len = 0;
    bool trailing = false;

    if (!out)
        return CONTENT_ERROR;
    file_init(out);
    if (!s)
        return CONTENT_ERROR;
    content_status rc = canonicalize(url_path, n, canon, &len, &trailing);
    if (rc != CONTENT_OK)
        return rc;

    uint64_t h = fnv1a(canon, len);
    uint64_t now = now_ms();
    body_entry *e = NULL;
    pthread_mutex_lock(&s->body_lock);
    e = body_find(s, h, canon, len);
    /* checked_ms may be a little ahead when another thread just revalidated. */
    if (e && s->opts.revalidate_ms > 0 &&
        (now <= e->checked_ms || now - e->checked_ms < s->opts.revalidate_ms)) {
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
        body_lru_front(s, e);
    } else {
        e = NULL;
    }
    pthread_mutex_unlock(&s->body_lock);
    if (e) {
        fill_from_entry(out, e);
        return CONTENT_OK;
    }
    return open_slow(s, canon, len, h, trailing, now, out);
}

int content_file_take_fd(content_file *file)
{
    if (!file)
        return -1;
    int fd = file->fd;
    file->fd = -1;
    return fd;
}

void content_file_release(content_file *file)
{
    if (!file)
        return;
    if (file->priv == &mapped_tag)
        munmap((void *)file->data, file->size);
    else if (file->priv)
        body_unref(file->priv);
    if (file->fd >= 0)
        close(file->fd);
    file->priv = NULL;
    file->data = NULL;
    file->fd = -1;
}

const char *content_mime_for(const content_store *store, const char *name)
{
    if (!name)
        return CONTENT_DEFAULT_MIME;
    return mime_lookup(store ? &store->mime : NULL, name);
}

/* ------------------------------------------------------ life and death */

static int mime_init(mime_table *t, const char *path, char *err, size_t errlen)
{
    const char *file = path ? path : "/etc/mime.types";
    if (mime_load_file(t, file) != 0) {
        /* The system file is optional; a file the operator named is not. */
        if (path || errno != ENOENT) {
            set_err(err, errlen, "cannot read MIME types from %s", file);
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof builtin_mime / sizeof builtin_mime[0]; i++) {
        if (mime_add(t, builtin_mime[i].ext, strlen(builtin_mime[i].ext), builtin_mime[i].type) <
            0) {
            set_err(err, errlen, "%s", "out of memory");
            return -1;
        }
    }
    return 0;
}

content_store *content_store_new(const char *root, const content_options *opts, char *err,
                                 size_t errlen)
{
    content_store *ret = NULL;
    content_store *s = NULL;
    int probe = -1;

    if (!root) {
        set_err(err, errlen, "%s", "no content root");
        goto done;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, errlen, "%s", "out of memory");
        goto done;
    }
    s->root_fd = -1;
    if (opts)
        s->opts = *opts;
    else
        content_options_default(&s->opts);
    s->opts.mime_types = NULL; /* borrowed; only needed here */
    if (s->opts.digest_entries > CONTENT_DIGEST_ENTRIES_MAX)
        s->opts.digest_entries = CONTENT_DIGEST_ENTRIES_MAX;

    s->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        set_err(err, errlen, "cannot open content root %s", root);
        goto done;
    }
    /* Fail at start-up, not on the first request, where openat2 is missing or filtered. */
    probe = open_beneath(s->root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (probe < 0) {
        set_err(err, errlen, "openat2 with RESOLVE_BENEATH failed on %s", root);
        goto done;
    }
    s->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!s->md) {
        set_err(err, errlen, "%s", "SHA-256 is not available");
        goto done;
    }
    if (pthread_mutex_init(&s->body_lock, NULL) != 0) {
        set_err(err, errlen, "%s", "cannot create a mutex");
        goto done;
    }
    s->body_lock_init = true;
    if (pthread_mutex_init(&s->digest_lock, NULL) != 0) {
        set_err(err, errlen, "%s", "cannot create a mutex");
        goto done;
    }
    s->digest_lock_init = true;
    s->body_nbuckets = CONTENT_BODY_BUCKETS_MIN;
    s->body_buckets = calloc(s->body_nbuckets, sizeof *s->body_buckets);
    if (s->opts.digest_entries > 0) {
        s->digest_nbuckets = pow2_at_least(s->opts.digest_entries, 16);
        s->digest_buckets = calloc(s->digest_nbuckets, sizeof *s->digest_buckets);
    }
    if (!s->body_buckets || (s->opts.digest_entries > 0 && !s->digest_buckets)) {
        set_err(err, errlen, "%s", "out of memory");
        goto done;
    }
    if (mime_init(&s->mime, opts ? opts->mime_types : NULL, err, errlen) != 0)
        goto done;
    ret = s;
    s = NULL;
done:
    if (probe >= 0)
        close(probe);
    content_store_free(s);
    return ret;
}

void content_store_free(content_store *s)
{
    if (!s)
        return;
    if (s->body_buckets) {
        /* Entries still held by a content_file live on until released. */
        body_entry *drop = NULL;
        while (s->body_head)
            body_unlink(s, s->body_head, &drop);
        body_drop_all(drop);
    }
    free(s->body_buckets);
    if (s->digest_buckets) {
        while (s->digest_head) {
            digest_entry *e = s->digest_head;
            digest_unlink(s, e);
            free(e);
        }
    }
    free(s->digest_buckets);
    if (s->body_lock_init)
        pthread_mutex_destroy(&s->body_lock);
    if (s->digest_lock_init)
        pthread_mutex_destroy(&s->digest_lock);
    mime_free(&s->mime);
    EVP_MD_free(s->md);
    if (s->root_fd >= 0)
        close(s->root_fd);
    free(s);
}
