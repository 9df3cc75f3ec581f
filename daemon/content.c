#include "daemon/content.h"

#include "common/b64.h"
#include "daemon/content_cache.h"
#include "daemon/hash.h"
#include "daemon/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
#define MIME_DEFAULT               "application/octet-stream"
#define CONTENT_CHARSET            "; charset=utf-8"

/* ---------------------------------------------------------- the store */

_Static_assert(CONTENT_PATH_MAX <= CONTENT_CACHE_PATH_MAX, "a cached body holds any content path");

struct content_store {
    int root_fd;
    EVP_MD *md;
    content_options opts;
    mime_table *mime;
    content_cache *cache;
    size_t element_len; /* 0: no injected forms */
    char element[CONTENT_ELEMENT_MAX + 1];
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
    opts->inject_element = NULL;
}

static uint64_t now_ms(void)
{
    /* The coarse clock is read from the vDSO: no system call on the hit path. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void format_etag(const uint8_t sha256[32], char out[48])
{
    /* 128 bits of the digest are plenty to tell versions apart. */
    out[0] = '"';
    size_t n = b64url_encode(sha256, 16, out + 1);
    out[1 + n] = '"';
    out[2 + n] = '\0';
}

void content_repr_digest(const uint8_t sha256[32], char out[64])
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

static bool fstat_same(int fd, const content_cache_id *id)
{
    struct stat st;
    content_cache_id now;
    if (fstat(fd, &st) != 0)
        return false;
    content_cache_id_of(&now, &st);
    return content_cache_id_eq(&now, id);
}

size_t content_inject_offset(const uint8_t *html, size_t n)
{
    static const char tag[] = "</body>";
    const size_t tag_len = sizeof tag - 1;
    size_t end = n;
    /* Backwards: pages are long and the tag sits near the end. */
    while (end >= tag_len) {
        const uint8_t *lt = memrchr(html, '<', end - tag_len + 1);
        if (lt == NULL)
            break;
        if (strncasecmp((const char *)lt, tag, tag_len) == 0)
            return (size_t)(lt - html);
        end = (size_t)(lt - html) + tag_len - 1;
        if (lt == html)
            break;
    }
    return n;
}

bool content_injected_sha256(const EVP_MD *md, const uint8_t *html, size_t n, size_t at,
                             const char *element, size_t element_len, uint8_t out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestInit_ex2(ctx, md != NULL ? md : EVP_sha256(), NULL) &&
              EVP_DigestUpdate(ctx, html, at) && EVP_DigestUpdate(ctx, element, element_len) &&
              EVP_DigestUpdate(ctx, html + at, n - at) && EVP_DigestFinal_ex(ctx, out, NULL);
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* The SHA-256 of the injected form of the n bytes of html, the element at at. */
static bool injected_digest(content_store *s, const uint8_t *html, size_t n, size_t at,
                            uint8_t out[32])
{
    return content_injected_sha256(s->md, html, n, at, s->element, s->element_len, out);
}

/* Whether a file of this name and size gets an injected form. */
static bool injectable(const content_store *s, const char *mime, uint64_t size)
{
    return s->element_len > 0 && mime_is_html(mime) && size <= CONTENT_HTML_MAX;
}

/*
 * The digests of the file behind fd, which fstat() described as id: from
 * the cache, or from map (size bytes) when given, else read with pread;
 * with the injected form's when inject (which needs map). Sets *changed
 * when the file was seen to change while it was read.
 */
static content_status file_digest(content_store *s, int fd, const content_cache_id *id,
                                  const uint8_t *map, bool inject, content_cache_digests *out,
                                  bool *changed)
{
    content_status rc = CONTENT_ERROR;
    uint8_t *buf = NULL;
    EVP_MD_CTX *ctx = NULL;
    uint64_t h = content_cache_id_hash(id);

    if (content_cache_digest_get(s->cache, id, h, out)) {
        if (!inject || out->has_injected)
            return CONTENT_OK;
        /* Hashed before as something not injected (another name of the
         * same file): add the injected form's digest. */
        out->inject_at = content_inject_offset(map, id->size);
        if (!injected_digest(s, map, id->size, out->inject_at, out->injected_sha256))
            return CONTENT_ERROR;
        out->has_injected = true;
        if (!fstat_same(fd, id)) {
            *changed = true;
            return CONTENT_OK;
        }
        content_cache_digest_put(s->cache, id, h, out);
        return CONTENT_OK;
    }
    out->has_injected = false;

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
    if (!EVP_DigestFinal_ex(ctx, out->sha256, NULL))
        goto done;
    if (inject) {
        out->inject_at = content_inject_offset(map, id->size);
        if (!injected_digest(s, map, id->size, out->inject_at, out->injected_sha256))
            goto done;
        out->has_injected = true;
    }
    /* Only a digest of one stable version may be cached, or recorded. */
    if (!fstat_same(fd, id)) {
        *changed = true;
        rc = CONTENT_OK;
        goto done;
    }
    content_cache_digest_put(s->cache, id, h, out);
    rc = CONTENT_OK;
done:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

static void set_injected(const content_store *s, content_file *out, const uint8_t sha256[32])
{
    out->injectable = true;
    out->injected_size = out->size + s->element_len;
    out->element = s->element;
    out->element_len = s->element_len;
    memcpy(out->injected_sha256, sha256, 32);
    content_repr_digest(sha256, out->injected_repr_digest);
}

static void fill_from_entry(const content_store *s, content_file *out, content_cache_body *e)
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
    out->data = e->bytes;
    out->fd = -1;
    out->snapshot_fd = e->snapshot_fd;
    out->priv = e;
    if (e->injectable) {
        out->injectable = true;
        out->inject_at = e->inject_at;
        out->injected_size = e->injected_size;
        out->injected_data = e->bytes + e->id.size;
        out->element = s->element;
        out->element_len = s->element_len;
        memcpy(out->injected_sha256, e->injected_sha256, 32);
        memcpy(out->injected_repr_digest, e->injected_repr_digest,
               sizeof out->injected_repr_digest);
    }
}

/* Snapshots open in the process, against CONTENT_SNAPSHOTS_MAX. */
static atomic_uint content_snapshots;

/*
 * A new body whose bytes live in a memory file of size bytes, mapped
 * writable at e->bytes (snapshot_seal() makes it read-only); NULL
 * when the cap is reached or the system refuses (memfd_create can be
 * filtered): the caller keeps the bytes in plain memory then.
 */
static content_cache_body *snapshot_body_new(uint64_t size)
{
    if (atomic_fetch_add_explicit(&content_snapshots, 1, memory_order_relaxed) >=
        CONTENT_SNAPSHOTS_MAX) {
        atomic_fetch_sub_explicit(&content_snapshots, 1, memory_order_relaxed);
        return NULL;
    }
    content_cache_body *e = NULL;
    void *map = MAP_FAILED;
    int mfd = memfd_create("receiptd-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0 || ftruncate(mfd, (off_t)size) != 0)
        goto fail;
    map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (map == MAP_FAILED)
        goto fail;
    e = content_cache_body_new(0);
    if (e == NULL)
        goto fail;
    e->cost += (size_t)size;
    e->id.size = size; /* what the mapping spans, for the body's unref */
    e->bytes = map;
    e->snapshot_fd = mfd;
    e->snapshots = &content_snapshots;
    return e;
fail:
    if (map != MAP_FAILED)
        munmap(map, (size_t)size);
    if (mfd >= 0)
        close(mfd);
    atomic_fetch_sub_explicit(&content_snapshots, 1, memory_order_relaxed);
    return NULL;
}

/* Seals a snapshot's bytes as they are: no write, shrink or growth. */
static bool snapshot_seal(content_cache_body *e)
{
    size_t size = (size_t)e->id.size;
    /* A writable shared mapping would keep F_SEAL_WRITE from being set. */
    munmap((void *)e->bytes, size);
    e->bytes = NULL;
    if (fcntl(e->snapshot_fd, F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
        goto fail;
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, e->snapshot_fd, 0);
    if (map == MAP_FAILED)
        goto fail;
    e->bytes = map;
    return true;
fail:
    /* Nothing mapped for the body's unref to undo. */
    close(e->snapshot_fd);
    e->snapshot_fd = -1;
    atomic_fetch_sub_explicit(e->snapshots, 1, memory_order_relaxed);
    e->snapshots = NULL;
    return false;
}

/*
 * Reads a small file into a new entry with its digest taken from exactly
 * those bytes, and its injected form after them when it has one. Sets
 * *changed when the file changed while it was read. A body sent as stored
 * from CONTENT_SNAPSHOT_MIN bytes up goes into a snapshot when one can be
 * had.
 */
static content_status body_load(content_store *s, int fd, const content_cache_id *id,
                                const char *path, size_t len, uint64_t h, uint64_t now,
                                content_cache_body **out, bool *changed)
{
    content_status rc = CONTENT_ERROR;
    const char *mime = mime_lookup(s->mime, path);
    bool inject = injectable(s, mime, id->size);
    size_t room = id->size + (inject ? id->size + s->element_len : 0);
    content_cache_body *e =
        !inject && id->size >= CONTENT_SNAPSHOT_MIN ? snapshot_body_new(id->size) : NULL;
    if (!e)
        e = content_cache_body_new(room);
    if (!e)
        goto done;
    uint8_t *bytes = (uint8_t *)e->bytes;
    uint64_t off = 0;
    while (off < id->size) {
        ssize_t got = pread(fd, bytes + off, id->size - off, (off_t)off);
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
    if (!EVP_Digest(bytes, id->size, e->sha256, NULL, s->md, NULL))
        goto done;
    if (e->snapshot_fd >= 0 && !snapshot_seal(e))
        goto done;
    e->hash = h;
    e->checked_ms = now;
    e->id = *id;
    memcpy(e->path, path, len + 1);
    e->path_len = len;
    e->mime = mime;
    e->is_html = mime_is_html(e->mime);
    e->injectable = inject;
    if (inject) {
        uint8_t *page = bytes + id->size;
        size_t at = content_inject_offset(bytes, id->size);
        memcpy(page, bytes, at);
        memcpy(page + at, s->element, s->element_len);
        memcpy(page + at + s->element_len, bytes + at, id->size - at);
        e->inject_at = at;
        e->injected_size = id->size + s->element_len;
        if (!EVP_Digest(page, e->injected_size, e->injected_sha256, NULL, s->md, NULL))
            goto done;
        content_repr_digest(e->injected_sha256, e->injected_repr_digest);
    }
    format_etag(e->sha256, e->etag);
    content_repr_digest(e->sha256, e->repr_digest);
    format_http_date(&id->mtime, e->last_modified);
    *out = e;
    e = NULL;
    rc = CONTENT_OK;
done:
    content_cache_body_unref(e);
    return rc;
}

/* A small file: the cached entry when it is still this file, else a fresh one. */
static content_status serve_cached(content_store *s, int fd, const content_cache_id *id,
                                   const char *path, size_t len, uint64_t h, uint64_t now,
                                   content_file *out, bool *changed)
{
    content_cache_body *e = content_cache_body_same(s->cache, h, path, len, id, now);
    if (!e) {
        content_status rc = body_load(s, fd, id, path, len, h, now, &e, changed);
        if (rc != CONTENT_OK || *changed)
            return rc;
        content_cache_body_put(s->cache, e);
    }
    fill_from_entry(s, out, e);
    return CONTENT_OK;
}

static void fill_meta(content_store *s, content_file *out, const content_cache_id *id,
                      const char *path, size_t len, const content_cache_digests *d)
{
    memcpy(out->sha256, d->sha256, 32);
    memcpy(out->path, path, len + 1);
    out->path_len = len;
    out->mime = mime_lookup(s->mime, path);
    out->is_html = mime_is_html(out->mime);
    out->size = id->size;
    out->mtime = id->mtime;
    format_etag(out->sha256, out->etag);
    content_repr_digest(out->sha256, out->repr_digest);
    format_http_date(&id->mtime, out->last_modified);
    /* The digest cache knows versions, not names: the same file under a
     * name that is not HTML has no injected form. */
    if (d->has_injected && injectable(s, out->mime, id->size)) {
        out->inject_at = d->inject_at;
        set_injected(s, out, d->injected_sha256);
    }
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
    out->mime = MIME_DEFAULT;
    out->is_html = false;
    out->size = 0;
    out->data = NULL;
    out->fd = -1;
    out->snapshot_fd = -1;
    out->injectable = false;
    out->injected_data = NULL;
    out->element = NULL;
    out->element_len = 0;
    out->priv = NULL;
}

static content_status open_slow(content_store *s, const char *canon, size_t len, uint64_t h,
                                bool trailing, uint64_t now, content_file *out)
{
    content_status rc = CONTENT_ERROR;
    bool from_cache = false;
    void *map = MAP_FAILED;
    content_cache_id id = {0};
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
        content_cache_id_of(&id, &st);

        if (id.size <= s->opts.body_max) {
            rc = serve_cached(s, fd, &id, canon, len, h, now, out, &changed);
            from_cache = rc == CONTENT_OK && !changed;
        } else if (mime_is_html(mime_lookup(s->mime, canon)) && id.size <= CONTENT_HTML_MAX) {
            map = mmap(NULL, id.size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (map == MAP_FAILED) {
                rc = CONTENT_ERROR;
                goto done;
            }
            content_cache_digests d;
            rc = file_digest(s, fd, &id, map, s->element_len > 0, &d, &changed);
            if (rc == CONTENT_OK && !changed) {
                fill_meta(s, out, &id, canon, len, &d);
                out->data = map;
                out->priv = &mapped_tag;
                map = MAP_FAILED;
            }
        } else {
            content_cache_digests d;
            rc = file_digest(s, fd, &id, NULL, false, &d, &changed);
            if (rc == CONTENT_OK && !changed) {
                fill_meta(s, out, &id, canon, len, &d);
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
        content_cache_body_forget(s->cache, h, canon, len);
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

    uint64_t h = hash_fnv1a(canon, len);
    uint64_t now = now_ms();
    content_cache_body *e =
        content_cache_body_fresh(s->cache, h, canon, len, now, s->opts.revalidate_ms);
    if (e) {
        fill_from_entry(s, out, e);
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
        content_cache_body_unref(file->priv);
    if (file->fd >= 0)
        close(file->fd);
    file->priv = NULL;
    file->data = NULL;
    file->snapshot_fd = -1;
    file->fd = -1;
}

const char *content_mime_for(const content_store *store, const char *name)
{
    if (!name)
        return MIME_DEFAULT;
    return mime_lookup(store ? store->mime : NULL, name);
}

/* ------------------------------------------------------ life and death */

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
    s->opts.inject_element = NULL;
    if (opts && opts->inject_element) {
        s->element_len = strlen(opts->inject_element);
        if (s->element_len > CONTENT_ELEMENT_MAX) {
            set_err(err, errlen, "%s", "the element to inject is too long");
            goto done;
        }
        memcpy(s->element, opts->inject_element, s->element_len + 1);
    }

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
    s->cache = content_cache_new(s->opts.cache_bytes, s->opts.digest_entries);
    if (!s->cache) {
        set_err(err, errlen, "%s", "out of memory");
        goto done;
    }
    s->mime = mime_table_new(opts ? opts->mime_types : NULL, err, errlen);
    if (!s->mime)
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
    content_cache_free(s->cache);
    mime_table_free(s->mime);
    EVP_MD_free(s->md);
    if (s->root_fd >= 0)
        close(s->root_fd);
    free(s);
}
