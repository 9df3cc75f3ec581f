#include "daemon/content.h"
#include "daemon/mime.h"
#include "daemon/content_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#define BIG_SIZE     1000000u /* the million 'a' vector of FIPS 180-2 */
#define HTML_BIG_LEN 20000u
#define SMALL_MAX    4096u
#define OUTSIDE_MARK "OUTSIDE-SECRET-MARKER"

/* The temporary tree: TOP/outside-file and TOP/root/... */
static char top[64];
static char root[128];
static char empty_mime[160];

static void path_in(char *buf, size_t cap, const char *rel)
{
    int n = snprintf(buf, cap, "%s/%s", root, rel);
    assert_true(n > 0 && (size_t)n < cap);
}

static void write_at(const char *full, const void *data, size_t n)
{
    int fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
    assert_int_equal(close(fd), 0);
}

static void put(const char *rel, const void *data, size_t n)
{
    char full[512];
    path_in(full, sizeof full, rel);
    write_at(full, data, n);
}

static void put_str(const char *rel, const char *s)
{
    put(rel, s, strlen(s));
}

/* Sets the mtime of a root file to secs (and a distinct nsec), so tests never
 * depend on the timestamp granularity of the file system. */
static void set_mtime(const char *rel, time_t secs, long nsec)
{
    char full[512];
    path_in(full, sizeof full, rel);
    struct timespec ts[2] = {{secs, nsec}, {secs, nsec}};
    assert_int_equal(utimensat(AT_FDCWD, full, ts, 0), 0);
}

static void mk(const char *rel)
{
    char full[512];
    path_in(full, sizeof full, rel);
    assert_int_equal(mkdir(full, 0755), 0);
}

static void ln(const char *target, const char *rel)
{
    char full[512];
    path_in(full, sizeof full, rel);
    assert_int_equal(symlink(target, full), 0);
}

static uint8_t *big_bytes(void)
{
    uint8_t *b = malloc(BIG_SIZE);
    assert_non_null(b);
    memset(b, 'a', BIG_SIZE);
    return b;
}

static char *big_html(char fill)
{
    char *h = malloc(HTML_BIG_LEN + 1);
    assert_non_null(h);
    memset(h, fill, HTML_BIG_LEN);
    memcpy(h, "<html><body>", 12);
    memcpy(h + HTML_BIG_LEN - 14, "</body></html>", 14);
    h[HTML_BIG_LEN] = '\0';
    return h;
}

static int group_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(top, sizeof top, "%s/receipt-content-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(top))
        return -1;
    snprintf(root, sizeof root, "%s/root", top);
    if (mkdir(root, 0755) != 0)
        return -1;
    char full[512];
    snprintf(full, sizeof full, "%s/outside-file", top);
    write_at(full, OUTSIDE_MARK "\n", strlen(OUTSIDE_MARK) + 1);
    snprintf(empty_mime, sizeof empty_mime, "%s/empty.types", top);
    write_at(empty_mime, "", 0);

    put_str("index.html", "<html><body>root</body></html>\n");
    put_str("a.txt", "hello\n");
    put_str("abc.bin", "abc");
    put_str("empty.txt", "");
    put_str("style.css", "body{}\n");
    put_str("weird\\name.txt", "backslash\n");
    put_str(".hidden", "dotfile " OUTSIDE_MARK "\n");
    mk("sub");
    put_str("sub/index.html", "<html><body>sub</body></html>\n");
    put_str("sub/page.html", "<p>page</p>\n");
    mk("sub/.git");
    put_str("sub/.git/config", "[core] " OUTSIDE_MARK "\n");
    mk("sub/nested");
    mk(".well-known");
    put_str(".well-known/x", OUTSIDE_MARK);
    uint8_t *big = big_bytes();
    put("big.bin", big, BIG_SIZE);
    free(big);
    char *html = big_html('x');
    put("big.html", html, HTML_BIG_LEN);
    free(html);
    ln("a.txt", "link-inside");
    ln("sub", "link-dir");
    ln("/etc/passwd", "link-to-passwd");
    ln("../outside-file", "link-up");
    ln("../../outside-file", "sub/link-up2");
    ln("/tmp", "link-abs-dir");
    ln("/proc/self/root/etc/passwd", "link-proc");
    ln("link-loop", "link-loop");
    path_in(full, sizeof full, "fifo");
    if (mkfifo(full, 0644) != 0)
        return -1;
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static content_store *store_with(size_t body_max, size_t cache_bytes, size_t digests,
                                 unsigned revalidate_ms)
{
    content_options o;
    content_options_default(&o);
    o.body_max = body_max;
    o.cache_bytes = cache_bytes;
    o.digest_entries = digests;
    o.revalidate_ms = revalidate_ms;
    o.mime_types = empty_mime; /* built-in table only: the same on every host */
    char err[256] = "";
    content_store *s = content_store_new(root, &o, err, sizeof err);
    if (!s)
        fail_msg("content_store_new: %s", err);
    return s;
}

static content_status open_str(content_store *s, const char *url, content_file *f)
{
    return content_open(s, url, strlen(url), f);
}

/* The whole body of f, whether in memory or behind the fd. Caller frees. */
static uint8_t *body_of(content_file *f)
{
    uint8_t *b = malloc(f->size + 1);
    assert_non_null(b);
    if (f->data) {
        memcpy(b, f->data, f->size);
    } else {
        assert_true(f->fd >= 0);
        uint64_t off = 0;
        while (off < f->size) {
            ssize_t n = pread(f->fd, b + off, f->size - off, (off_t)off);
            assert_true(n > 0);
            off += (uint64_t)n;
        }
    }
    b[f->size] = 0;
    return b;
}

static void assert_sha(const content_file *f, const void *bytes, size_t n)
{
    uint8_t want[32];
    SHA256(bytes, n, want);
    assert_memory_equal(f->sha256, want, 32);
}

static void hex32(const char *hex, uint8_t out[32])
{
    for (int i = 0; i < 32; i++) {
        unsigned v = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

/* ------------------------------------------------------------- paths */

static void test_hostile_paths(void **state)
{
    (void)state;
    static const char nul_path[] = "/a.txt\0/../../outside-file";
    char over_url[CONTENT_URL_MAX + 2];
    char over_canon[CONTENT_PATH_MAX + 3];
    memset(over_url, 'a', sizeof over_url);
    over_url[0] = '/';
    memset(over_canon, 'b', sizeof over_canon);
    over_canon[0] = '/';
    over_canon[sizeof over_canon - 1] = '\0';

    const struct {
        const char *url;
        size_t n; /* 0: strlen */
        content_status want;
    } cases[] = {
        {"/../outside-file", 0, CONTENT_NOT_FOUND},
        {"/a/../../outside-file", 0, CONTENT_NOT_FOUND},
        {"/sub/../../outside-file", 0, CONTENT_NOT_FOUND},
        {"/..", 0, CONTENT_NOT_FOUND},
        {"/../", 0, CONTENT_NOT_FOUND},
        {"/./a.txt", 0, CONTENT_NOT_FOUND},
        {"/.", 0, CONTENT_NOT_FOUND},
        {"/.hidden", 0, CONTENT_NOT_FOUND},
        {"/sub/.git/config", 0, CONTENT_NOT_FOUND},
        {"/.well-known/x", 0, CONTENT_NOT_FOUND},
        {"/link-to-passwd", 0, CONTENT_NOT_FOUND},
        {"/link-up", 0, CONTENT_NOT_FOUND},
        {"/sub/link-up2", 0, CONTENT_NOT_FOUND},
        {"/link-dir/link-up2", 0, CONTENT_NOT_FOUND},
        {"/link-abs-dir/", 0, CONTENT_NOT_FOUND},
        {"/link-proc", 0, CONTENT_NOT_FOUND},
        {"/link-loop", 0, CONTENT_NOT_FOUND},
        {"/fifo", 0, CONTENT_NOT_FOUND},
        {"/a.txt/", 0, CONTENT_NOT_FOUND},
        {"/sub/nested/", 0, CONTENT_NOT_FOUND},
        {"/missing", 0, CONTENT_NOT_FOUND},
        {nul_path, sizeof nul_path - 1, CONTENT_BAD_PATH},
        {"/a.txt\r\nX-Injected: 1", 0, CONTENT_BAD_PATH},
        {"/\x7f", 0, CONTENT_BAD_PATH},
        {over_url, sizeof over_url, CONTENT_TOO_LONG},
        {over_canon, 0, CONTENT_TOO_LONG},
        {"relative", 0, CONTENT_BAD_PATH},
        {"a.txt", 0, CONTENT_BAD_PATH},
        {"", 0, CONTENT_BAD_PATH},
        {"//etc/passwd", 0, CONTENT_NOT_FOUND},
        {"/sub/..", 0, CONTENT_NOT_FOUND},
        {"/%2e%2e/x", 0, CONTENT_NOT_FOUND},
        {"/..\\..\\outside-file", 0, CONTENT_NOT_FOUND},
        {"/x\\..\\..\\outside-file", 0, CONTENT_NOT_FOUND},
        {"/\\..\\outside-file", 0, CONTENT_NOT_FOUND},
    };
    content_store *s = store_with(SMALL_MAX, 1 << 20, 64, 0);
    for (int round = 0; round < 2; round++) { /* cold, then with warm caches */
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            content_file f;
            size_t n = cases[i].n ? cases[i].n : strlen(cases[i].url);
            content_status st = content_open(s, cases[i].url, n, &f);
            if (st != cases[i].want)
                fail_msg("case %zu (%.40s): status %d, want %d", i, cases[i].url, st,
                         cases[i].want);
            assert_null(f.data);
            assert_int_equal(f.fd, -1);
            assert_null(f.priv);
            content_file_release(&f);
        }
    }
    content_store_free(s);
}

static void test_good_paths(void **state)
{
    (void)state;
    char many_slashes[600];
    memset(many_slashes, '/', sizeof many_slashes);
    memcpy(many_slashes + sizeof many_slashes - 7, "a.txt", 6);

    const struct {
        const char *url;
        content_status want;
        const char *path;
        const char *body; /* NULL: not checked */
    } cases[] = {
        {"/", CONTENT_OK, "/index.html", "<html><body>root</body></html>\n"},
        {"/index.html", CONTENT_OK, "/index.html", "<html><body>root</body></html>\n"},
        {"/a.txt", CONTENT_OK, "/a.txt", "hello\n"},
        {"//a.txt", CONTENT_OK, "/a.txt", "hello\n"},
        {many_slashes, CONTENT_OK, "/a.txt", "hello\n"},
        {"/sub/", CONTENT_OK, "/sub/index.html", "<html><body>sub</body></html>\n"},
        {"/sub//", CONTENT_OK, "/sub/index.html", "<html><body>sub</body></html>\n"},
        {"/sub//page.html", CONTENT_OK, "/sub/page.html", "<p>page</p>\n"},
        {"/sub", CONTENT_REDIRECT, "/sub/", NULL},
        {"//sub", CONTENT_REDIRECT, "/sub/", NULL},
        {"/sub/nested", CONTENT_REDIRECT, "/sub/nested/", NULL},
        {"/link-dir", CONTENT_REDIRECT, "/link-dir/", NULL},
        {"/link-inside", CONTENT_OK, "/link-inside", "hello\n"},
        {"/link-dir/page.html", CONTENT_OK, "/link-dir/page.html", "<p>page</p>\n"},
        {"/weird\\name.txt", CONTENT_OK, "/weird\\name.txt", "backslash\n"},
        {"/empty.txt", CONTENT_OK, "/empty.txt", ""},
    };
    content_store *s = store_with(SMALL_MAX, 1 << 20, 64, 0);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            content_file f;
            content_status st = open_str(s, cases[i].url, &f);
            if (st != cases[i].want)
                fail_msg("case %zu (%.40s): status %d, want %d", i, cases[i].url, st,
                         cases[i].want);
            assert_string_equal(f.path, cases[i].path);
            assert_int_equal(f.path_len, strlen(cases[i].path));
            if (st == CONTENT_OK) {
                assert_non_null(f.data); /* small files are in memory */
                assert_int_equal(f.fd, -1);
                uint8_t *b = body_of(&f);
                assert_int_equal(f.size, strlen(cases[i].body));
                assert_memory_equal(b, cases[i].body, f.size);
                assert_sha(&f, b, f.size);
                free(b);
            } else {
                assert_null(f.data);
                assert_int_equal(f.fd, -1);
            }
            content_file_release(&f);
            content_file_release(&f); /* idempotent */
        }
    }
    content_store_free(s);
}

static void test_forbidden(void **state)
{
    (void)state;
    put_str("secret.txt", "no");
    char full[512];
    path_in(full, sizeof full, "secret.txt");
    assert_int_equal(chmod(full, 0), 0);
    content_store *s = store_with(SMALL_MAX, 1 << 20, 64, 0);
    content_file f;
    if (geteuid() != 0) {
        assert_int_equal(open_str(s, "/secret.txt", &f), CONTENT_FORBIDDEN);
        assert_null(f.data);
    } else {
        /* Root reads every file: ask as nobody, from the root fd opened already. */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0)
                _exit(100);
            content_status st = open_str(s, "/secret.txt", &f);
            _exit(st == CONTENT_FORBIDDEN && !f.data && f.fd < 0 ? 0 : 10 + (int)st);
        }
        int wst = 0;
        assert_int_equal(waitpid(pid, &wst, 0), pid);
        assert_true(WIFEXITED(wst));
        assert_int_equal(WEXITSTATUS(wst), 0);
    }
    content_store_free(s);
    assert_int_equal(unlink(full), 0);
}

static void test_store_errors(void **state)
{
    (void)state;
    char err[256] = "";
    content_options o;
    content_options_default(&o);
    assert_null(content_store_new("/nonexistent/receipt-root", &o, err, sizeof err));
    assert_true(strlen(err) > 0);
    err[0] = '\0';
    o.mime_types = "/nonexistent/mime.types";
    assert_null(content_store_new(root, &o, err, sizeof err));
    assert_non_null(strstr(err, "mime.types"));
    assert_null(content_store_new(NULL, NULL, NULL, 0));

    /* Defaults, system MIME file: works and html is html anywhere. */
    content_store *s = content_store_new(root, NULL, err, sizeof err);
    assert_non_null(s);
    assert_string_equal(content_mime_for(s, "x.html"), "text/html; charset=utf-8");
    content_file f;
    assert_int_equal(open_str(NULL, "/a.txt", &f), CONTENT_ERROR);
    assert_int_equal(content_open(s, NULL, 0, &f), CONTENT_BAD_PATH);
    content_file_release(NULL);
    assert_int_equal(content_file_take_fd(NULL), -1);
    content_store_free(s);
    content_store_free(NULL);
}

/* -------------------------------------------------------------- MIME */

static void test_mime_builtin(void **state)
{
    (void)state;
    content_store *s = store_with(SMALL_MAX, 1 << 20, 64, 0);
    const struct {
        const char *name;
        const char *type;
    } cases[] = {
        {"a.html", "text/html; charset=utf-8"},
        {"A.HTML", "text/html; charset=utf-8"},
        {"x.htm", "text/html; charset=utf-8"},
        {"s.css", "text/css; charset=utf-8"},
        {"m.js", "text/javascript; charset=utf-8"},
        {"m.mjs", "text/javascript; charset=utf-8"},
        {"d.json", "application/json; charset=utf-8"},
        {"t.txt", "text/plain; charset=utf-8"},
        {"t.csv", "text/csv; charset=utf-8"},
        {"r.md", "text/markdown; charset=utf-8"},
        {"x.xml", "text/xml; charset=utf-8"},
        {"i.svg", "image/svg+xml"},
        {"i.png", "image/png"},
        {"i.PnG", "image/png"},
        {"i.jpg", "image/jpeg"},
        {"i.jpeg", "image/jpeg"},
        {"i.gif", "image/gif"},
        {"i.webp", "image/webp"},
        {"favicon.ico", "image/x-icon"},
        {"d.pdf", "application/pdf"},
        {"m.wasm", "application/wasm"},
        {"f.woff", "font/woff"},
        {"f.woff2", "font/woff2"},
        {"v.mp4", "video/mp4"},
        {"v.webm", "video/webm"},
        {"a.zip", "application/zip"},
        {"a.tar.gz", "application/gzip"},
        {"a.tar", "application/x-tar"},
        {"fw.bin", "application/octet-stream"},
        {"/dir.html/file", "application/octet-stream"},
        {"/dir/archive.TXT", "text/plain; charset=utf-8"},
        {"noext", "application/octet-stream"},
        {"trailing.", "application/octet-stream"},
        {".bashrc", "application/octet-stream"},
        {"x.unknownext", "application/octet-stream"},
        {"x.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "application/octet-stream"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_string_equal(content_mime_for(s, cases[i].name), cases[i].type);
        assert_string_equal(content_mime_for(NULL, cases[i].name), cases[i].type);
    }
    assert_string_equal(content_mime_for(s, NULL), "application/octet-stream");

    content_file f;
    assert_int_equal(open_str(s, "/a.txt", &f), CONTENT_OK);
    assert_string_equal(f.mime, "text/plain; charset=utf-8");
    assert_false(f.is_html);
    content_file_release(&f);
    assert_int_equal(open_str(s, "/", &f), CONTENT_OK);
    assert_string_equal(f.mime, "text/html; charset=utf-8");
    assert_true(f.is_html);
    content_file_release(&f);
    assert_int_equal(open_str(s, "/link-inside", &f), CONTENT_OK);
    assert_string_equal(f.mime, "application/octet-stream"); /* by the URL's name */
    content_file_release(&f);
    content_store_free(s);
}

static void test_mime_file(void **state)
{
    (void)state;
    char path[200];
    snprintf(path, sizeof path, "%s/test.types", top);
    char longline[3000];
    memset(longline, 'z', sizeof longline);
    memcpy(longline, "application/x-long ", 19);
    longline[sizeof longline - 1] = '\0';
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "# comment line\n"
            "\n"
            "application/x-receipt-test\trcpt RCPT2   # trailing comment\n"
            "text/x-foo foo\n"
            "application/x-custom-png png\n"
            "application/vnd.test+json tjson\n"
            "application/javascript ajs\n"
            "application/x-second rcpt\n"
            "not-a-type ntt\n"
            "bad/type;x=1 btt\n"
            "%s\n"
            "image/x-after-long after\n"
            "text/x-last last",
            longline);
    fclose(fp);

    content_options o;
    content_options_default(&o);
    o.mime_types = path;
    char err[256] = "";
    content_store *s = content_store_new(root, &o, err, sizeof err);
    assert_non_null(s);
    assert_string_equal(content_mime_for(s, "a.rcpt"), "application/x-receipt-test");
    assert_string_equal(content_mime_for(s, "a.RcPt2"), "application/x-receipt-test");
    assert_string_equal(content_mime_for(s, "a.foo"), "text/x-foo; charset=utf-8");
    assert_string_equal(content_mime_for(s, "a.png"), "application/x-custom-png");
    assert_string_equal(content_mime_for(s, "a.tjson"), "application/vnd.test+json; charset=utf-8");
    assert_string_equal(content_mime_for(s, "a.ajs"), "application/javascript; charset=utf-8");
    assert_string_equal(content_mime_for(s, "a.ntt"), "application/octet-stream");
    assert_string_equal(content_mime_for(s, "a.btt"), "application/octet-stream");
    assert_string_equal(content_mime_for(s, "a.zzzz"), "application/octet-stream");
    assert_string_equal(content_mime_for(s, "a.after"), "image/x-after-long");
    assert_string_equal(content_mime_for(s, "a.last"), "text/x-last; charset=utf-8");
    /* Not in the file: the built-in table. */
    assert_string_equal(content_mime_for(s, "a.html"), "text/html; charset=utf-8");
    assert_string_equal(content_mime_for(s, "a.wasm"), "application/wasm");
    content_store_free(s);
    unlink(path);
}

/* ----------------------------------------------------------- digests */

static void test_digest_vectors(void **state)
{
    (void)state;
    content_store *s = store_with(SMALL_MAX, 1 << 20, 64, 0);
    uint8_t want[32];
    content_file f;

    assert_int_equal(open_str(s, "/abc.bin", &f), CONTENT_OK);
    hex32("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want);
    assert_memory_equal(f.sha256, want, 32);
    content_file_release(&f);

    assert_int_equal(open_str(s, "/empty.txt", &f), CONTENT_OK);
    hex32("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want);
    assert_memory_equal(f.sha256, want, 32);
    assert_int_equal(f.size, 0);
    assert_non_null(f.data);
    content_file_release(&f);

    /* Over body_max: hashed from the file in chunks, served by fd. */
    hex32("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", want);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(open_str(s, "/big.bin", &f), CONTENT_OK);
        assert_memory_equal(f.sha256, want, 32);
        assert_int_equal(f.size, BIG_SIZE);
        assert_null(f.data);
        assert_true(f.fd >= 0);
        assert_int_equal(fcntl(f.fd, F_GETFL) & O_NONBLOCK, 0);
        assert_int_equal(fcntl(f.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        content_file_release(&f);
    }
    content_store_free(s);

    /* The same without a digest cache. */
    s = store_with(SMALL_MAX, 1 << 20, 0, 0);
    assert_int_equal(open_str(s, "/big.bin", &f), CONTENT_OK);
    assert_memory_equal(f.sha256, want, 32);
    int fd = content_file_take_fd(&f);
    assert_true(fd >= 0);
    assert_int_equal(f.fd, -1);
    content_file_release(&f);
    assert_int_equal(close(fd), 0); /* still ours after release */
    content_store_free(s);

    /* Everything over body_max when it is 0, and everything under when huge. */
    s = store_with(0, 1 << 20, 64, 0);
    assert_int_equal(open_str(s, "/abc.bin", &f), CONTENT_OK);
    hex32("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want);
    assert_memory_equal(f.sha256, want, 32);
    assert_true(f.fd >= 0);
    content_file_release(&f);
    content_store_free(s);
    s = store_with(4u << 20, 8u << 20, 64, 0);
    assert_int_equal(open_str(s, "/big.bin", &f), CONTENT_OK);
    hex32("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", want);
    assert_memory_equal(f.sha256, want, 32);
    assert_non_null(f.data);
    content_file_release(&f);
    content_store_free(s);
}

static void test_etag_last_modified(void **state)
{
    (void)state;
    put_str("same1.txt", "identical");
    put_str("same2.txt", "identical");
    put_str("other.txt", "different");
    set_mtime("same1.txt", 784887151, 0); /* Tue, 15 Nov 1994 08:12:31 GMT */
    content_store *s = store_with(SMALL_MAX, 1 << 20, 64, 0);
    content_file a, b, c;
    assert_int_equal(open_str(s, "/same1.txt", &a), CONTENT_OK);
    assert_int_equal(open_str(s, "/same2.txt", &b), CONTENT_OK);
    assert_int_equal(open_str(s, "/other.txt", &c), CONTENT_OK);
    assert_string_equal(a.last_modified, "Tue, 15 Nov 1994 08:12:31 GMT");
    assert_int_equal(a.mtime.tv_sec, 784887151);
    assert_int_equal(strlen(a.etag), 24);
    assert_int_equal(a.etag[0], '"');
    assert_int_equal(a.etag[23], '"');
    for (int i = 1; i < 23; i++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", a.etag[i]));
    assert_string_equal(a.etag, b.etag);
    assert_string_not_equal(a.etag, c.etag);
    content_file_release(&a);
    content_file_release(&b);
    content_file_release(&c);

    /* Large files get the same treatment. */
    set_mtime("big.bin", 784887151, 0);
    assert_int_equal(open_str(s, "/big.bin", &a), CONTENT_OK);
    assert_string_equal(a.last_modified, "Tue, 15 Nov 1994 08:12:31 GMT");
    assert_int_equal(strlen(a.etag), 24);
    content_file_release(&a);
    content_store_free(s);
}

static void test_digest_cache_invalidation(void **state)
{
    (void)state;
    content_store *s = store_with(SMALL_MAX, 1 << 20, 64, 0);
    content_file f;
    size_t n = 3 * SMALL_MAX;
    uint8_t *v1 = malloc(n + 1), *v2 = malloc(n + 1), *v3 = malloc(n + 1);
    assert_non_null(v1);
    assert_non_null(v2);
    assert_non_null(v3);
    memset(v1, '1', n + 1);
    memset(v2, '2', n + 1);
    memset(v3, '3', n + 1);

    put("dc.bin", v1, n);
    set_mtime("dc.bin", 1000000000, 1);
    assert_int_equal(open_str(s, "/dc.bin", &f), CONTENT_OK);
    assert_sha(&f, v1, n);
    assert_null(f.data);
    content_file_release(&f);

    /* Rewritten in place with another size. */
    put("dc.bin", v2, n + 1);
    set_mtime("dc.bin", 1000000000, 1);
    assert_int_equal(open_str(s, "/dc.bin", &f), CONTENT_OK);
    assert_int_equal(f.size, n + 1);
    assert_sha(&f, v2, n + 1);
    content_file_release(&f);

    /* Same size, new mtime. */
    put("dc.bin", v3, n + 1);
    set_mtime("dc.bin", 1000000000, 2);
    assert_int_equal(open_str(s, "/dc.bin", &f), CONTENT_OK);
    assert_sha(&f, v3, n + 1);
    content_file_release(&f);

    /* Same identity as before (size and mtime forced back): the cache answers,
     * which is what keying by identity means. */
    put("dc.bin", v2, n + 1);
    set_mtime("dc.bin", 1000000000, 2);
    assert_int_equal(open_str(s, "/dc.bin", &f), CONTENT_OK);
    assert_sha(&f, v3, n + 1);
    content_file_release(&f);
    set_mtime("dc.bin", 1000000000, 3);
    assert_int_equal(open_str(s, "/dc.bin", &f), CONTENT_OK);
    assert_sha(&f, v2, n + 1);
    content_file_release(&f);

    /* Eviction with a one-entry digest cache: alternate two files. */
    content_store_free(s);
    s = store_with(SMALL_MAX, 1 << 20, 1, 0);
    put("dc2.bin", v1, n);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(open_str(s, i % 2 ? "/dc2.bin" : "/dc.bin", &f), CONTENT_OK);
        if (i % 2)
            assert_sha(&f, v1, n);
        else
            assert_sha(&f, v2, n + 1);
        content_file_release(&f);
    }
    content_store_free(s);
    free(v1);
    free(v2);
    free(v3);
}

/* ------------------------------------------------------------ bodies */

static void test_body_revalidation(void **state)
{
    (void)state;
    content_file f, held;
    put_str("rv.txt", "version-1");
    set_mtime("rv.txt", 1100000000, 0);

    /* revalidate_ms = 0: every request checks the file. */
    content_store *s = store_with(SMALL_MAX, 1 << 20, 64, 0);
    assert_int_equal(open_str(s, "/rv.txt", &held), CONTENT_OK);
    assert_memory_equal(held.data, "version-1", 9);
    assert_int_equal(open_str(s, "/rv.txt", &f), CONTENT_OK);
    assert_ptr_equal(f.data, held.data); /* unchanged: the same entry */
    content_file_release(&f);

    put_str("rv.txt", "version-2"); /* same size, same inode */
    set_mtime("rv.txt", 1100000000, 5);
    assert_int_equal(open_str(s, "/rv.txt", &f), CONTENT_OK);
    assert_memory_equal(f.data, "version-2", 9);
    assert_sha(&f, "version-2", 9);
    /* The response in flight still has its own bytes and digest. */
    assert_memory_equal(held.data, "version-1", 9);
    assert_sha(&held, "version-1", 9);
    content_file_release(&f);
    content_file_release(&held);

    put_str("rv.txt", "v3 longer");
    set_mtime("rv.txt", 1100000001, 0);
    assert_int_equal(open_str(s, "/rv.txt", &f), CONTENT_OK);
    assert_memory_equal(f.data, "v3 longer", 9);
    content_file_release(&f);

    /* Replaced by rename: a new inode. */
    char tmp[512], dst[512];
    path_in(tmp, sizeof tmp, "rv.tmp");
    path_in(dst, sizeof dst, "rv.txt");
    write_at(tmp, "version-4", 9);
    assert_int_equal(rename(tmp, dst), 0);
    set_mtime("rv.txt", 1100000001, 0);
    assert_int_equal(open_str(s, "/rv.txt", &f), CONTENT_OK);
    assert_memory_equal(f.data, "version-4", 9);
    content_file_release(&f);

    /* Deleted: gone at once, and grown past body_max: no longer in memory. */
    assert_int_equal(unlink(dst), 0);
    assert_int_equal(open_str(s, "/rv.txt", &f), CONTENT_NOT_FOUND);
    put_str("rv.txt", "version-5");
    assert_int_equal(open_str(s, "/rv.txt", &f), CONTENT_OK);
    content_file_release(&f);
    uint8_t *big = big_bytes();
    put("rv.txt", big, SMALL_MAX + 1);
    assert_int_equal(open_str(s, "/rv.txt", &f), CONTENT_OK);
    assert_null(f.data);
    assert_sha(&f, big, SMALL_MAX + 1);
    content_file_release(&f);
    free(big);
    content_store_free(s);

    /* A long revalidate_ms: a fresh hit does not look at the file. */
    put_str("rv.txt", "version-6");
    s = store_with(SMALL_MAX, 1 << 20, 64, 3600 * 1000);
    assert_int_equal(open_str(s, "/rv.txt", &f), CONTENT_OK);
    content_file_release(&f);
    put_str("rv.txt", "version-7");
    set_mtime("rv.txt", 1100000002, 0);
    assert_int_equal(open_str(s, "/rv.txt", &f), CONTENT_OK);
    assert_memory_equal(f.data, "version-6", 9);
    assert_sha(&f, "version-6", 9); /* bytes and digest always agree */
    content_file_release(&f);
    content_store_free(s);
}

static void test_lru_eviction(void **state)
{
    (void)state;
    char body[1000];
    content_file f;
    memset(body, 'o', sizeof body);
    put("la.txt", body, sizeof body);
    put("lb.txt", body, sizeof body);
    put("lc.txt", body, sizeof body);
    /* Room for two entries (bytes plus overhead), not three. */
    content_store *s = store_with(SMALL_MAX, 2 * (sizeof body + sizeof(content_cache_body)) + 100,
                                  64, 3600 * 1000);
    const char *order[] = {"/la.txt", "/lb.txt", "/la.txt", "/lc.txt"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(open_str(s, order[i], &f), CONTENT_OK);
        content_file_release(&f);
    }
    /* Change all three on disk; only the evicted one (lb, least recently used) is read again. */
    memset(body, 'n', sizeof body);
    put("la.txt", body, sizeof body);
    put("lb.txt", body, sizeof body);
    put("lc.txt", body, sizeof body);
    set_mtime("la.txt", 1200000000, 0);
    set_mtime("lb.txt", 1200000000, 0);
    set_mtime("lc.txt", 1200000000, 0);
    const struct {
        const char *url;
        char first;
    } want[] = {{"/la.txt", 'o'}, {"/lc.txt", 'o'}, {"/lb.txt", 'n'}};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(open_str(s, want[i].url, &f), CONTENT_OK);
        assert_int_equal(f.data[0], want[i].first);
        assert_sha(&f, f.data, f.size);
        content_file_release(&f);
    }
    /* lb's reload evicted la (least recent after la, lc hits and lb load). */
    assert_int_equal(open_str(s, "/la.txt", &f), CONTENT_OK);
    assert_int_equal(f.data[0], 'n');
    content_file_release(&f);

    /* An entry evicted while a response holds it stays valid: the cache is
     * [la, lb] here; lc is loaded (evicting lb) and held, la is touched, and
     * lb's reload evicts lc. */
    content_file held;
    assert_int_equal(open_str(s, "/lc.txt", &held), CONTENT_OK);
    assert_int_equal(open_str(s, "/la.txt", &f), CONTENT_OK);
    content_file_release(&f);
    assert_int_equal(open_str(s, "/lb.txt", &f), CONTENT_OK);
    content_file_release(&f);
    assert_memory_equal(held.data, body, sizeof body);
    assert_sha(&held, body, sizeof body);
    content_file_release(&held);
    memset(body, 'q', sizeof body);
    put("lc.txt", body, sizeof body);
    set_mtime("lc.txt", 1200000001, 0);
    assert_int_equal(open_str(s, "/lc.txt", &f), CONTENT_OK);
    assert_int_equal(f.data[0], 'q'); /* it was evicted indeed */
    content_file_release(&f);
    content_store_free(s);

    /* A file larger than the whole cache is still served. */
    s = store_with(SMALL_MAX, 100, 64, 3600 * 1000);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(open_str(s, "/la.txt", &f), CONTENT_OK);
        assert_non_null(f.data);
        assert_int_equal(f.data[0], 'n');
        content_file_release(&f);
    }
    content_store_free(s);
}

static void test_large_files(void **state)
{
    (void)state;
    content_store *s = store_with(SMALL_MAX, 1 << 20, 64, 0);
    content_file f;
    char *html = big_html('x');

    assert_int_equal(open_str(s, "/big.bin", &f), CONTENT_OK);
    assert_null(f.data);
    assert_true(f.fd >= 0);
    assert_string_equal(f.mime, "application/octet-stream");
    content_file_release(&f);
    assert_int_equal(f.fd, -1);

    assert_int_equal(open_str(s, "/big.html", &f), CONTENT_OK);
    assert_true(f.is_html);
    assert_non_null(f.data);
    assert_int_equal(f.fd, -1);
    assert_int_equal(f.size, HTML_BIG_LEN);
    assert_memory_equal(f.data, html, HTML_BIG_LEN);
    assert_sha(&f, html, HTML_BIG_LEN);
    content_file_release(&f);
    assert_null(f.data);

    /* The mapped HTML's digest follows a change. */
    char *html2 = big_html('y');
    put("big.html", html2, HTML_BIG_LEN);
    set_mtime("big.html", 1300000000, 0);
    assert_int_equal(open_str(s, "/big.html", &f), CONTENT_OK);
    assert_memory_equal(f.data, html2, HTML_BIG_LEN);
    assert_sha(&f, html2, HTML_BIG_LEN);
    content_file_release(&f);
    put("big.html", html, HTML_BIG_LEN);
    free(html2);
    free(html);
    content_store_free(s);
}

/* -------------------------------------------------------- concurrency */

typedef struct worker_arg {
    content_store *store;
    int failures;
    unsigned seed;
} worker_arg;

static uint8_t want_big[32], want_html[32], want_root[32], want_a[32];

static void *worker(void *p)
{
    worker_arg *w = p;
    static const char *urls[] = {"/",       "/a.txt",   "/big.bin",         "/big.html",
                                 "/sub",    "/missing", "/../outside-file", "/la.txt",
                                 "/lb.txt", "/lc.txt"};
    for (int i = 0; i < 3000; i++) {
        const char *url = urls[rand_r(&w->seed) % (sizeof urls / sizeof urls[0])];
        content_file f;
        content_status st = open_str(w->store, url, &f);
        const uint8_t *want = NULL;
        content_status want_st = CONTENT_OK;
        if (strcmp(url, "/") == 0)
            want = want_root;
        else if (strcmp(url, "/a.txt") == 0)
            want = want_a;
        else if (strcmp(url, "/big.bin") == 0)
            want = want_big;
        else if (strcmp(url, "/big.html") == 0)
            want = want_html;
        else if (strcmp(url, "/sub") == 0)
            want_st = CONTENT_REDIRECT;
        else if (url[1] == 'l')
            want_st = CONTENT_OK;
        else
            want_st = CONTENT_NOT_FOUND;
        if (st != want_st)
            w->failures++;
        if (st == CONTENT_OK) {
            if (want && memcmp(f.sha256, want, 32) != 0)
                w->failures++;
            if (f.data) {
                /* Touch every byte: a freed or unmapped body would show here. */
                uint8_t got[32];
                SHA256(f.data, f.size, got);
                if (memcmp(got, f.sha256, 32) != 0)
                    w->failures++;
            } else if (f.fd < 0) {
                w->failures++;
            }
        }
        content_file_release(&f);
    }
    return NULL;
}

static void run_workers(content_store *s)
{
    pthread_t t[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){.store = s, .failures = 0, .seed = (unsigned)i * 7919u + 1};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
}

/* ------------------------------------------------------------- injection */

#define ELEMENT "<script src=\"/_receipt/agent.js\" async></script>"

static size_t offset_of(const char *html)
{
    return content_inject_offset((const uint8_t *)html, strlen(html));
}

static void test_inject_offset(void **state)
{
    (void)state;
    /* before the last </body>, in any case; at the end when there is none */
    assert_int_equal(offset_of("<html><body>x</body></html>"), 13);
    assert_int_equal(offset_of("<html><BODY>x</BODY></html>"), 13);
    assert_int_equal(offset_of("<p>no body"), 10);
    assert_int_equal(offset_of(""), 0);
    assert_int_equal(offset_of("</body>"), 0);
    assert_int_equal(offset_of("</bod"), 5);
    assert_int_equal(offset_of("<</body><"), 1);
    const char *several = "<body><script>'</body>'</script><!-- </BODY> --></Body>\n</html>";
    assert_int_equal(offset_of(several), strstr(several, "</Body>") - several);
    const char *trailing = "<body>x</body></html><!-- </body -->";
    assert_int_equal(offset_of(trailing), 7);
    const char *lt_only = "<<<<<<<<";
    assert_int_equal(offset_of(lt_only), strlen(lt_only));
}

static content_store *injecting_store(size_t body_max)
{
    content_options o;
    content_options_default(&o);
    o.body_max = body_max;
    o.revalidate_ms = 0;
    o.mime_types = empty_mime;
    o.inject_element = ELEMENT;
    char err[256] = "";
    content_store *s = content_store_new(root, &o, err, sizeof err);
    if (!s)
        fail_msg("content_store_new: %s", err);
    return s;
}

/* The injected form of f, as a response sends it. Caller frees. */
static uint8_t *injected_of(const content_file *f)
{
    uint8_t *b = malloc(f->injected_size);
    assert_non_null(b);
    if (f->injected_data != NULL) {
        memcpy(b, f->injected_data, f->injected_size);
    } else {
        memcpy(b, f->data, f->inject_at);
        memcpy(b + f->inject_at, f->element, f->element_len);
        memcpy(b + f->inject_at + f->element_len, f->data + f->inject_at, f->size - f->inject_at);
    }
    return b;
}

/* What a page is expected to look like: the element before </body>. */
static void expect_injected(content_file *f, const char *html, size_t n)
{
    const char *end = NULL;
    for (const char *p = html; (p = strcasestr(p, "</body>")) != NULL; p++)
        end = p;
    size_t at = end != NULL ? (size_t)(end - html) : n;
    size_t elen = strlen(ELEMENT);
    char *want = malloc(n + elen);
    assert_non_null(want);
    memcpy(want, html, at);
    memcpy(want + at, ELEMENT, elen);
    memcpy(want + at + elen, html + at, n - at);

    assert_true(f->injectable);
    assert_int_equal(f->injected_size, n + elen);
    assert_int_equal(f->inject_at, at);
    uint8_t *got = injected_of(f);
    assert_memory_equal(got, want, n + elen);
    uint8_t digest[32];
    SHA256((const uint8_t *)want, n + elen, digest);
    assert_memory_equal(f->injected_sha256, digest, 32);
    char b64[48] = "", header[64];
    /* standard base64 of the digest, as Repr-Digest carries it */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < 33; i += 3) {
        uint32_t v = (uint32_t)digest[i] << 16 | (i + 1 < 32 ? digest[i + 1] : 0) << 8 |
                     (i + 2 < 32 ? digest[i + 2] : 0);
        b64[o++] = alphabet[v >> 18 & 63];
        b64[o++] = alphabet[v >> 12 & 63];
        b64[o++] = i + 1 < 32 ? alphabet[v >> 6 & 63] : '=';
        b64[o++] = i + 2 < 32 ? alphabet[v & 63] : '=';
        if (i + 3 >= 32)
            break;
    }
    b64[o] = '\0';
    snprintf(header, sizeof header, "sha-256=:%s:", b64);
    assert_string_equal(f->injected_repr_digest, header);
    /* The stored form is untouched, and its digest is the version's. */
    assert_sha(f, html, n);
    assert_memory_equal(f->data, html, n);
    free(got);
    free(want);
}

/*
 * A cached body sent as stored, from CONTENT_SNAPSHOT_MIN bytes up, comes
 * with a sealed memory file of the same bytes: what sendfile sends is what
 * the digest names, whatever happens to the file on disk. Smaller bodies
 * and injected pages have none.
 */
static void test_snapshot_bodies(void **state)
{
    (void)state;
    size_t n = CONTENT_SNAPSHOT_MIN + 123;
    uint8_t *bytes = malloc(n);
    assert_non_null(bytes);
    for (size_t i = 0; i < n; i++)
        bytes[i] = (uint8_t)(i * 7 + 1);
    put("snap.bin", bytes, n);
    put("under.bin", bytes, CONTENT_SNAPSHOT_MIN - 1);
    content_store *s = store_with(4 * CONTENT_SNAPSHOT_MIN, 1024 * 1024, 64, 3600 * 1000);
    content_file f;

    assert_int_equal(open_str(s, "/snap.bin", &f), CONTENT_OK);
    assert_true(f.snapshot_fd >= 0);
    assert_memory_equal(f.data, bytes, n);
    assert_sha(&f, bytes, n);
    uint8_t *through_fd = malloc(n + 1);
    assert_non_null(through_fd);
    assert_int_equal(pread(f.snapshot_fd, through_fd, n + 1, 0), (ssize_t)n);
    assert_memory_equal(through_fd, bytes, n);
    /* Sealed: it can be neither written nor resized, by anyone holding it. */
    assert_int_equal(pwrite(f.snapshot_fd, "x", 1, 0), -1);
    assert_int_equal(errno, EPERM);
    assert_int_not_equal(ftruncate(f.snapshot_fd, 1), 0);
    int kept = dup(f.snapshot_fd);
    assert_true(kept >= 0);
    content_file_release(&f);
    assert_int_equal(f.snapshot_fd, -1);

    /* The file rewritten in place: the snapshot a response holds keeps
     * the version it was opened at. */
    memset(bytes, 'z', n);
    put("snap.bin", bytes, n);
    memset(through_fd, 0, n);
    assert_int_equal(pread(kept, through_fd, n, 0), (ssize_t)n);
    assert_int_equal(through_fd[0], 1);
    assert_int_equal(through_fd[n - 1], (uint8_t)((n - 1) * 7 + 1));
    close(kept);
    free(through_fd);

    assert_int_equal(open_str(s, "/under.bin", &f), CONTENT_OK);
    assert_int_equal(f.snapshot_fd, -1);
    assert_non_null(f.data);
    content_file_release(&f);
    content_store_free(s);

    /* An injected page is sent from memory in its injected form. */
    char *html = malloc(n + 1);
    assert_non_null(html);
    memset(html, 'h', n);
    memcpy(html + n - 15, "</body></html>\n", 15);
    html[n] = '\0';
    put("snap.html", html, n);
    s = injecting_store(4 * CONTENT_SNAPSHOT_MIN);
    assert_int_equal(open_str(s, "/snap.html", &f), CONTENT_OK);
    assert_true(f.injectable);
    assert_int_equal(f.snapshot_fd, -1);
    content_file_release(&f);
    content_store_free(s);
    free(html);
    free(bytes);
}

static void test_injected_forms(void **state)
{
    (void)state;
    content_file f;
    const char *page = "<html><body><p>one</p></body></html>\n";
    put_str("inj.html", page);
    put_str("inj.txt", page);

    /* Small: made once per version, in the cached body. */
    content_store *s = injecting_store(SMALL_MAX);
    assert_int_equal(open_str(s, "/inj.html", &f), CONTENT_OK);
    assert_non_null(f.injected_data);
    expect_injected(&f, page, strlen(page));
    const uint8_t *first = f.injected_data;
    content_file_release(&f);
    assert_int_equal(open_str(s, "/inj.html", &f), CONTENT_OK);
    assert_ptr_equal(f.injected_data, first); /* no copy per response */
    content_file_release(&f);
    /* A new version: a new injected form. */
    const char *v2 = "<html><body><p>two</p></BODY></html>\n";
    put_str("inj.html", v2);
    set_mtime("inj.html", 1300000000, 0);
    assert_int_equal(open_str(s, "/inj.html", &f), CONTENT_OK);
    expect_injected(&f, v2, strlen(v2));
    content_file_release(&f);
    /* Not HTML: no injected form. */
    assert_int_equal(open_str(s, "/inj.txt", &f), CONTENT_OK);
    assert_false(f.injectable);
    content_file_release(&f);
    content_store_free(s);

    /* Larger than the cache's bodies: mapped, the three parts around the
     * element, the digest from the digest cache. */
    char *big = big_html('y');
    put("binj.html", big, HTML_BIG_LEN);
    s = injecting_store(1024);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(open_str(s, "/binj.html", &f), CONTENT_OK);
        assert_null(f.injected_data);
        expect_injected(&f, big, HTML_BIG_LEN);
        content_file_release(&f);
    }
    /* The same file under a name that is not HTML: the version's digest
     * from the cache, no injected form. */
    char target[512], alias[512];
    path_in(target, sizeof target, "binj.html");
    path_in(alias, sizeof alias, "binj.bin");
    assert_int_equal(link(target, alias), 0);
    assert_int_equal(open_str(s, "/binj.bin", &f), CONTENT_OK);
    assert_false(f.injectable);
    assert_sha(&f, big, HTML_BIG_LEN);
    content_file_release(&f);
    content_store_free(s);

    /* Hashed first as something not HTML, then as HTML: the injected
     * digest is added. */
    s = injecting_store(1024);
    assert_int_equal(open_str(s, "/binj.bin", &f), CONTENT_OK);
    assert_false(f.injectable);
    content_file_release(&f);
    assert_int_equal(open_str(s, "/binj.html", &f), CONTENT_OK);
    expect_injected(&f, big, HTML_BIG_LEN);
    content_file_release(&f);
    content_store_free(s);
    free(big);

    /* No element: nothing is injectable. */
    s = store_with(SMALL_MAX, 1 << 20, 64, 1000);
    assert_int_equal(open_str(s, "/inj.html", &f), CONTENT_OK);
    assert_false(f.injectable);
    content_file_release(&f);
    content_store_free(s);

    /* An element longer than the store takes is refused at start. */
    content_options o;
    content_options_default(&o);
    char long_element[CONTENT_ELEMENT_MAX + 2];
    memset(long_element, 'e', sizeof long_element - 1);
    long_element[sizeof long_element - 1] = '\0';
    o.inject_element = long_element;
    char err[256] = "";
    assert_null(content_store_new(root, &o, err, sizeof err));
    assert_non_null(strstr(err, "too long"));
}

/* The digest rule's vector of docs/protocol.md (test vectors), computed
 * with Python's hashlib: the page as sent, the element before </body>. */
static void test_injected_vector(void **state)
{
    (void)state;
    const char *page = "<!doctype html><html><head><title>Terms</title></head><body><p>Version "
                       "3.</p></body></html>\n";
    put_str("vector.html", page);
    content_store *s = injecting_store(SMALL_MAX);
    content_file f;
    assert_int_equal(open_str(s, "/vector.html", &f), CONTENT_OK);
    assert_int_equal(f.size, 92);
    assert_int_equal(f.injected_size, 140);
    assert_string_equal(f.repr_digest, "sha-256=:+7A6dFOliy0z9T5qoWDrf73VKQaeW44mvDwAI6B46u8=:");
    assert_string_equal(f.injected_repr_digest,
                        "sha-256=:oxI/A8A1cWR0/qewXQMYoU3AQXkFud3Zb9M2yujl2AE=:");
    const char *sent = "<!doctype html><html><head><title>Terms</title></head><body><p>Version "
                       "3.</p><script src=\"/_receipt/agent.js\" async></script></body></html>\n";
    assert_memory_equal(f.injected_data, sent, 140);
    /* The same digests from the functions an upstream's answer uses. */
    static const char element[] = "<script src=\"/_receipt/agent.js\" async></script>";
    uint8_t sha[32];
    char digest[64];
    size_t at = content_inject_offset((const uint8_t *)page, 92);
    assert_true(content_injected_sha256(NULL, (const uint8_t *)page, 92, at, element,
                                        sizeof element - 1, sha));
    assert_memory_equal(sha, f.injected_sha256, 32);
    content_repr_digest(f.sha256, digest);
    assert_string_equal(digest, f.repr_digest);
    content_file_release(&f);
    content_store_free(s);
    /* Media types as upstreams send them. */
    assert_true(mime_is_html("text/html"));
    assert_true(mime_is_html("Text/HTML; charset=utf-8"));
    assert_true(mime_is_html("text/html ;charset=utf-8"));
    assert_false(mime_is_html("text/htmlx"));
    assert_false(mime_is_html("application/xhtml+xml"));
}

static void test_concurrent(void **state)
{
    (void)state;
    uint8_t *big = big_bytes();
    SHA256(big, BIG_SIZE, want_big);
    free(big);
    char *html = big_html('x');
    SHA256((const uint8_t *)html, HTML_BIG_LEN, want_html);
    free(html);
    const char *root_html = "<html><body>root</body></html>\n";
    SHA256((const uint8_t *)root_html, strlen(root_html), want_root);
    SHA256((const uint8_t *)"hello\n", 6, want_a);

    /* Revalidating every time, with a tight cache and digest cache: evictions race hits. */
    content_store *s = store_with(SMALL_MAX, 2500, 2, 0);
    run_workers(s);
    content_store_free(s);
    /* Fresh hits only. */
    s = store_with(SMALL_MAX, 1 << 20, 64, 3600 * 1000);
    run_workers(s);
    content_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_paths),
        cmocka_unit_test(test_good_paths),
        cmocka_unit_test(test_forbidden),
        cmocka_unit_test(test_store_errors),
        cmocka_unit_test(test_mime_builtin),
        cmocka_unit_test(test_mime_file),
        cmocka_unit_test(test_digest_vectors),
        cmocka_unit_test(test_etag_last_modified),
        cmocka_unit_test(test_digest_cache_invalidation),
        cmocka_unit_test(test_body_revalidation),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_large_files),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_inject_offset),
        cmocka_unit_test(test_injected_forms),
        cmocka_unit_test(test_injected_vector),
        cmocka_unit_test(test_snapshot_bodies),
    };
    return cmocka_run_group_tests_name("content", tests, group_setup, group_teardown);
}
