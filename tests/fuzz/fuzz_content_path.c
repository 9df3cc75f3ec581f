/*
 * Arbitrary bytes as a decoded URL path against a small fixed root. Every
 * path served must be canonical ("/" first, no empty, "." or ".." segment,
 * no dotfile) and no byte from outside the root may be served.
 */
#include "daemon/content.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OUTSIDE_MARK "OUTSIDE-MARK"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char top[64];
static content_store *store;

static void put(const char *rel, const char *body, size_t n)
{
    char full[256];
    snprintf(full, sizeof full, "%s/%s", top, rel);
    int fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, body, n) != (ssize_t)n)
        abort();
    close(fd);
}

static void mk(const char *rel)
{
    char full[256];
    snprintf(full, sizeof full, "%s/%s", top, rel);
    if (mkdir(full, 0755) != 0)
        abort();
}

static void ln(const char *target, const char *rel)
{
    char full[256];
    snprintf(full, sizeof full, "%s/%s", top, rel);
    if (symlink(target, full) != 0)
        abort();
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static void cleanup(void)
{
    content_store_free(store);
    store = NULL;
    nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char big[200];
    const char *tmp = getenv("TMPDIR");
    snprintf(top, sizeof top, "%s/receipt-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(top))
        abort();
    put("outside", OUTSIDE_MARK, strlen(OUTSIDE_MARK));
    mk("root");
    put("root/index.html", "<html><body>i</body></html>", 27);
    put("root/a.txt", "a", 1);
    put("root/.hidden", OUTSIDE_MARK, strlen(OUTSIDE_MARK));
    mk("root/sub");
    put("root/sub/index.html", "<p>sub</p>", 10);
    put("root/sub/b.css", "b{}", 3);
    mk("root/sub/.git");
    put("root/sub/.git/config", OUTSIDE_MARK, strlen(OUTSIDE_MARK));
    mk("root/%2e%2e");
    put("root/%2e%2e/x", "literal", 7);
    memset(big, 'b', sizeof big);
    put("root/big.bin", big, sizeof big);
    put("root/big.html", big, sizeof big);
    ln("a.txt", "root/link");
    ln("sub", "root/linkdir");
    ln("../outside", "root/up");
    ln("../../outside", "root/sub/up2");
    ln("/etc/passwd", "root/passwd");

    char root[128];
    snprintf(root, sizeof root, "%s/root", top);
    content_options o;
    content_options_default(&o);
    o.body_max = 64; /* both in memory and by fd/mapping */
    o.cache_bytes = 4096;
    o.digest_entries = 4;
    o.revalidate_ms = 0;
    char err[256];
    store = content_store_new(root, &o, err, sizeof err);
    if (!store) {
        fprintf(stderr, "content_store_new: %s\n", err);
        abort();
    }
    atexit(cleanup);
    return 0;
}

static void check_canonical(const content_file *f, bool redirect)
{
    const char *p = f->path;
    size_t n = f->path_len;
    if (n == 0 || n > CONTENT_PATH_MAX || p[0] != '/' || strlen(p) != n)
        abort();
    /* Walk the segments; a redirect's path ends in '/', a file's does not. */
    size_t i = 1;
    while (i < n) {
        size_t start = i;
        while (i < n && p[i] != '/')
            i++;
        size_t seg = i - start;
        if (seg == 0 || p[start] == '.')
            abort(); /* "//", ".", "..", dotfiles */
        if (seg == 2 && p[start] == '.' && p[start + 1] == '.')
            abort();
        if (i < n)
            i++;
    }
    if (redirect != (p[n - 1] == '/'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    content_file f;
    content_status st = content_open(store, (const char *)data, size, &f);
    if (st == CONTENT_OK) {
        check_canonical(&f, false);
        if ((f.data == NULL) == (f.fd < 0))
            abort(); /* exactly one of them */
        char buf[256];
        size_t n = f.size < sizeof buf ? (size_t)f.size : sizeof buf;
        if (f.data) {
            memcpy(buf, f.data, n);
            if (f.size > 0 && f.data[f.size - 1] == 0x7f)
                abort(); /* reads the last byte: out-of-bounds shows here */
        } else if (pread(f.fd, buf, n, 0) != (ssize_t)n) {
            abort();
        }
        if (n >= strlen(OUTSIDE_MARK) && memcmp(buf, OUTSIDE_MARK, strlen(OUTSIDE_MARK)) == 0)
            abort();
    } else if (st == CONTENT_REDIRECT) {
        check_canonical(&f, true);
        if (f.data || f.fd >= 0)
            abort();
    } else if (f.data || f.fd >= 0 || f.priv) {
        abort();
    }
    content_file_release(&f);
    return 0;
}
