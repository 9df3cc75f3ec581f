#include "daemon/mime.h"

#include "daemon/hash.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIME_BUCKETS     1024
#define MIME_ENTRIES_MAX 8192 /* extensions taken from a mime.types file */
#define MIME_LINE_MAX    1024 /* longer lines of a mime.types file are skipped */
#define MIME_TYPE_MAX    127  /* bytes of a type, without the charset */
#define MIME_EXT_MAX     32   /* longer extensions have no type */
#define MIME_CHARSET     "; charset=utf-8"
#define MIME_SYSTEM_FILE "/etc/mime.types"

typedef struct mime_entry {
    struct mime_entry *next;
    const char *type;
    char ext[MIME_EXT_MAX + 1];
} mime_entry;

/* A type string read from a file; entries point into it. */
typedef struct mime_string {
    struct mime_string *next;
    char text[];
} mime_string;

struct mime_table {
    mime_entry *buckets[MIME_BUCKETS];
    size_t count;
    mime_string *strings;
};

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

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool mime_is_html(const char *type)
{
    /* A media type's name is case-insensitive (RFC 9110 section 8.3.1). */
    return strncasecmp(type, "text/html", 9) == 0 &&
           (type[9] == '\0' || type[9] == ';' || type[9] == ' ' || type[9] == '\t');
}

static mime_entry *mime_find(const mime_table *t, const char *ext, size_t n)
{
    mime_entry *e = t->buckets[hash_fnv1a(ext, n) & (MIME_BUCKETS - 1)];
    for (; e; e = e->next) {
        if (strncmp(e->ext, ext, n) == 0 && e->ext[n] == '\0')
            return e;
    }
    return NULL;
}

/* First definition of an extension wins. ext is lower case. Returns -1 on OOM. */
static int mime_add(mime_table *t, const char *ext, size_t n, const char *type)
{
    if (n == 0 || n > MIME_EXT_MAX || mime_find(t, ext, n))
        return 0;
    mime_entry *e = malloc(sizeof *e);
    if (!e)
        return -1;
    memcpy(e->ext, ext, n);
    e->ext[n] = '\0';
    e->type = type;
    size_t b = hash_fnv1a(ext, n) & (MIME_BUCKETS - 1);
    e->next = t->buckets[b];
    t->buckets[b] = e;
    t->count++;
    return 0;
}

static void mime_clear(mime_table *t)
{
    for (size_t i = 0; i < MIME_BUCKETS; i++) {
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
    if (n == 0 || n > MIME_TYPE_MAX || type[0] == '/' || type[n - 1] == '/')
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
        if (!ok || ext_len > MIME_EXT_MAX || mime_find(t, ext, ext_len))
            continue;
        if (t->count >= MIME_ENTRIES_MAX)
            break;
        if (!str) {
            /* The charset goes into the stored string so that lookups return it as is. */
            bool cs = mime_wants_charset(type, type_len);
            size_t len = type_len + (cs ? sizeof MIME_CHARSET - 1 : 0);
            str = malloc(sizeof *str + len + 1);
            if (!str)
                return -1;
            memcpy(str->text, type, type_len);
            str->text[type_len] = '\0';
            if (cs)
                memcpy(str->text + type_len, MIME_CHARSET, sizeof MIME_CHARSET);
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
    char line[MIME_LINE_MAX + 2];
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
    return *len <= MIME_EXT_MAX ? dot + 1 : NULL;
}

const char *mime_lookup(const mime_table *t, const char *name)
{
    size_t n = 0;
    const char *ext = mime_extension(name, &n);
    char lower[MIME_EXT_MAX + 1];
    if (!ext)
        return MIME_DEFAULT;
    for (size_t i = 0; i < n; i++)
        lower[i] = ascii_lower(ext[i]);
    lower[n] = '\0';
    if (t) {
        const mime_entry *e = mime_find(t, lower, n);
        return e ? e->type : MIME_DEFAULT;
    }
    for (size_t i = 0; i < sizeof builtin_mime / sizeof builtin_mime[0]; i++) {
        if (strcmp(builtin_mime[i].ext, lower) == 0)
            return builtin_mime[i].type;
    }
    return MIME_DEFAULT;
}

mime_table *mime_table_new(const char *path, char *err, size_t errlen)
{
    const char *file = path != NULL ? path : MIME_SYSTEM_FILE;
    mime_table *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (mime_load_file(t, file) != 0) {
        /* The system file is optional; a file the operator named is not. */
        if (path != NULL || errno != ENOENT) {
            snprintf(err, errlen, "cannot read MIME types from %s", file);
            goto fail;
        }
    }
    for (size_t i = 0; i < sizeof builtin_mime / sizeof builtin_mime[0]; i++) {
        if (mime_add(t, builtin_mime[i].ext, strlen(builtin_mime[i].ext), builtin_mime[i].type) <
            0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return t;
fail:
    mime_table_free(t);
    return NULL;
}

void mime_table_free(mime_table *t)
{
    if (t == NULL)
        return;
    mime_clear(t);
    free(t);
}
