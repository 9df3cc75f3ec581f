/*
 * content: the content store under --root.
 *
 * Resolves URL paths to files strictly beneath the root (openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, from a directory fd opened once),
 * refuses dot segments and dotfiles, maps names to MIME types (mime.h), and
 * keeps two caches (content_cache.h):
 *  - digests: SHA-256 of a file keyed by (device, inode, size, mtime), so a
 *    changed file is hashed again and an unchanged one never;
 *  - bodies: the bytes of small files (<= body_max each, <= cache_bytes in
 *    all, least recently used evicted), revalidated with stat() at most every
 *    revalidate_ms, so a hot page costs no system call. Cached bytes and their
 *    digest are always taken together: a response never pairs a digest with
 *    other bytes.
 *
 * Injection. With an inject_element, every HTML file of at most
 * CONTENT_HTML_MAX bytes also has an injected form: the element right
 * before its last "</body>" (content_inject_offset()). The element is the
 * same for every response, so the injected form of a version is fixed: it
 * is made and hashed once per version (kept with a small file's cached
 * body, its digest in the digest cache for larger ones), never per
 * response.
 *
 * A content_store is thread-safe. content_open() fills a content_file that
 * holds references (an fd and/or a cache entry or mapping) until
 * content_file_release(); every content_file is released before
 * content_store_free().
 *
 * Paths. url_path is the decoded request path. It must start with '/' and
 * hold no control byte (NUL included): else CONTENT_BAD_PATH. Empty segments
 * collapse ("//a" is "/a"). Any segment that starts with '.' ("." and ".."
 * included, so a decoded "%2e%2e" too) is CONTENT_NOT_FOUND, which tells a
 * prober nothing. A backslash is an ordinary character. A trailing '/' names
 * the directory's index.html. Symlinks are followed while they stay beneath
 * the root; one that leaves it is CONTENT_NOT_FOUND.
 *
 * Content is best replaced by rename(): a file truncated in place while it
 * is mapped for a response (HTML over body_max) raises SIGBUS.
 */
#ifndef RECEIPT_DAEMON_CONTENT_H
#define RECEIPT_DAEMON_CONTENT_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define CONTENT_URL_MAX     1024 /* longer decoded paths: CONTENT_TOO_LONG (414) */
#define CONTENT_PATH_MAX    200 /* canonical path bytes that a ticket can carry (TICKET_PATH_MAX) */
#define CONTENT_HTML_MAX    (16u * 1024 * 1024) /* larger HTML is not injected */
#define CONTENT_ELEMENT_MAX 256                 /* bytes of an inject_element */
/* A cached body of at least CONTENT_SNAPSHOT_MIN bytes that is sent as
 * stored is kept in a sealed memory file, which sendfile sends without
 * copying it through user space; below it one copy costs less than the
 * descriptor. At most CONTENT_SNAPSHOTS_MAX such files are open in the
 * process (out of main.c's reserve of descriptors); others stay plain
 * memory. */
#define CONTENT_SNAPSHOT_MIN  (16u * 1024)
#define CONTENT_SNAPSHOTS_MAX 64u

typedef struct content_options {
    size_t body_max;            /* largest file kept in memory (default 256 KiB) */
    size_t cache_bytes;         /* all bodies together, with a per-entry overhead
                                   of about 500 bytes (default 64 MiB) */
    size_t digest_entries;      /* digest cache entries (default 65536; 0: none) */
    unsigned revalidate_ms;     /* stat() a cached body at most this often (1000;
                                   0: on every request) */
    const char *mime_types;     /* NULL: /etc/mime.types if it exists; a named
                                   file must be readable. Extensions it lacks
                                   come from a built-in table. Read once. */
    const char *inject_element; /* NULL: no injected forms; else copied */
} content_options;

void content_options_default(content_options *opts);

typedef enum content_status {
    CONTENT_OK = 0,
    CONTENT_NOT_FOUND, /* missing, outside the root, dotfile, not regular */
    CONTENT_REDIRECT,  /* a directory named without its trailing slash */
    CONTENT_BAD_PATH,  /* empty, not absolute, a control byte (NUL) */
    CONTENT_TOO_LONG,  /* over CONTENT_URL_MAX or CONTENT_PATH_MAX */
    CONTENT_FORBIDDEN, /* exists, but cannot be read (permissions) */
    CONTENT_ERROR,     /* I/O error */
} content_status;

typedef struct content_file {
    /* Canonical content path: "/" + the file's path under the root, so "/"
     * and "/index.html" name the same content. NUL-terminated. */
    char path[CONTENT_PATH_MAX + 1];
    size_t path_len;
    const char *mime; /* e.g. "text/html; charset=utf-8", owned by the store */
    bool is_html;
    uint64_t size;
    struct timespec mtime;
    uint8_t sha256[32];
    char etag[48];          /* strong ETag, quoted, from the digest */
    char repr_digest[64];   /* Repr-Digest value: sha-256=:<base64>: (RFC 9530) */
    char last_modified[40]; /* IMF-fixdate */
    /* The body: data (size bytes) when in memory or mapped (always for HTML
     * up to CONTENT_HTML_MAX), else fd for sendfile. One of them is set;
     * both stay valid until release. fd is owned by the content_file: the
     * caller may take it with content_file_take_fd(). */
    const uint8_t *data;
    int fd;
    /* With data, for a body of at least CONTENT_SNAPSHOT_MIN bytes: a
     * sealed memory file of exactly those bytes (they cannot change), or
     * -1. Borrowed: valid until release; dup() it to keep it longer. */
    int snapshot_fd;
    /* The injected form, when injectable: injected_size bytes, in memory at
     * injected_data, or (injected_data NULL) data[0, inject_at), the
     * element, data[inject_at, size). The element is owned by the store. */
    bool injectable;
    uint64_t inject_at;
    uint64_t injected_size;
    const uint8_t *injected_data;
    const char *element;
    size_t element_len;
    uint8_t injected_sha256[32];
    char injected_repr_digest[64];
    void *priv; /* internal reference */
} content_file;

typedef struct content_store content_store;

content_store *content_store_new(const char *root, const content_options *opts, char *err,
                                 size_t errlen);
void content_store_free(content_store *store);

/*
 * url_path is the decoded path of the request (no query), length n. On
 * CONTENT_OK *out is filled; on CONTENT_REDIRECT out->path holds the
 * location to redirect to: the canonical path plus '/', decoded (the caller
 * percent-encodes it for the Location header). Nothing needs releasing on
 * other results, but content_file_release() is harmless after any result.
 * A file that keeps changing while it is read is CONTENT_ERROR: it has no
 * stable version to name.
 */
content_status content_open(content_store *store, const char *url_path, size_t n,
                            content_file *out);

/* Offset of the last "</body>" (any case) in html, or n when there is none:
 * where the element goes. */
size_t content_inject_offset(const uint8_t *html, size_t n);

/* The SHA-256 of the n bytes of html with element inserted at at (md: a
 * SHA-256 of the caller's, or NULL). false if OpenSSL fails. */
bool content_injected_sha256(const EVP_MD *md, const uint8_t *html, size_t n, size_t at,
                             const char *element, size_t element_len, uint8_t out[32]);

/* The Repr-Digest field value (RFC 9530) of a SHA-256; made once per
 * version of a file, not per response. */
void content_repr_digest(const uint8_t sha256[32], char out[64]);

/* Hands the fd to the caller (who must close it); -1 if there is none. */
int content_file_take_fd(content_file *file);

/* Drops the references of a file from content_open(). NULL-safe, idempotent. */
void content_file_release(content_file *file);

/*
 * MIME type for a file name by the extension of its last segment, without
 * regard to case; never NULL. Text, JavaScript and JSON types carry
 * "; charset=utf-8"; unknown is application/octet-stream. A NULL store
 * uses the built-in table only.
 */
const char *content_mime_for(const content_store *store, const char *name);

#endif
