#include "common/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define DURABLE_TEMP_TRIES 32

/* Leaves errno as e, so that callers can still tell ENOENT from others. */
static void durable_err(char *err, size_t errlen, const char *what, const char *path, int e)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
    errno = e;
}

/* The directory part of path, "." when there is none. */
static int durable_dirname(const char *path, char out[DURABLE_PATH_MAX])
{
    size_t n = strlen(path);
    if (n >= DURABLE_PATH_MAX)
        return -1;
    memcpy(out, path, n + 1);
    char *d = dirname(out);
    if (d != out)
        memmove(out, d, strlen(d) + 1);
    return 0;
}

int durable_open_temp(const char *path, mode_t mode, char *tmp, char *err, size_t errlen)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = strlen(path);
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash == NULL ? 0 : (size_t)(slash - path) + 1;
    const char *base = path + dir_len;
    if (*base == '\0' || n + sizeof(DURABLE_TMP_MARK) + 8 >= DURABLE_PATH_MAX) {
        durable_err(err, errlen, "cannot write", path, EINVAL);
        return -1;
    }
    for (int attempt = 0; attempt < DURABLE_TEMP_TRIES; attempt++) {
        uint8_t rnd[6];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
            durable_err(err, errlen, "no randomness for", path, errno);
            return -1;
        }
        char suffix[7];
        for (size_t i = 0; i < 6; i++)
            suffix[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
        suffix[6] = '\0';
        snprintf(tmp, DURABLE_PATH_MAX, "%.*s.%s%s%s", (int)dir_len, path, base, DURABLE_TMP_MARK,
                 suffix);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST) {
            durable_err(err, errlen, "cannot create", tmp, errno);
            return -1;
        }
    }
    durable_err(err, errlen, "cannot create a temporary file for", path, EEXIST);
    return -1;
}

int durable_write_all(int fd, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int durable_stage(const char *path, const void *data, size_t n, mode_t mode, char *tmp, char *err,
                  size_t errlen)
{
    int fd = durable_open_temp(path, mode, tmp, err, errlen);
    if (fd < 0)
        return -1;
    int rc = -1;
    if (durable_write_all(fd, data, n) != 0) {
        durable_err(err, errlen, "cannot write", tmp, errno);
        goto out;
    }
    if (fsync(fd) != 0) {
        durable_err(err, errlen, "cannot sync", tmp, errno);
        goto out;
    }
    rc = 0;
out:
    if (close(fd) != 0 && rc == 0) {
        durable_err(err, errlen, "cannot close", tmp, errno);
        rc = -1;
    }
    if (rc != 0)
        unlink(tmp);
    return rc;
}

int durable_sync_parent(const char *path)
{
    char dir[DURABLE_PATH_MAX];
    if (durable_dirname(path, dir) != 0)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int durable_commit(const char *tmp, const char *path, bool overwrite, char *err, size_t errlen)
{
    if (overwrite) {
        if (rename(tmp, path) != 0) {
            durable_err(err, errlen, "cannot rename to", path, errno);
            unlink(tmp);
            return -1;
        }
    } else {
        /* A hard link fails with EEXIST instead of replacing, on every
         * file system that has links; renameat2(RENAME_NOREPLACE) does not
         * exist on all of them. */
        int linked = link(tmp, path);
        int e = errno;
        if (linked != 0 && (e == EPERM || e == EOPNOTSUPP || e == ENOSYS)) {
            /* No hard links here (e.g. FAT): the kernel's no-replace rename. */
            if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
                linked = 0;
            e = errno;
        }
        if (linked != 0) {
            unlink(tmp);
            if (e == EEXIST) {
                durable_err(err, errlen, "will not overwrite", path, e);
                return 1;
            }
            durable_err(err, errlen, "cannot create", path, e);
            return -1;
        }
        unlink(tmp);
    }
    if (durable_sync_parent(path) != 0) {
        durable_err(err, errlen, "cannot sync the directory of", path, errno);
        return -1;
    }
    return 0;
}

int durable_write_atomic(const char *path, const void *data, size_t n, mode_t mode, bool overwrite,
                         char *err, size_t errlen)
{
    char tmp[DURABLE_PATH_MAX];
    if (durable_stage(path, data, n, mode, tmp, err, errlen) != 0)
        return -1;
    return durable_commit(tmp, path, overwrite, err, errlen);
}

int durable_mkdirs(const char *dir, mode_t mode, char *err, size_t errlen)
{
    char buf[DURABLE_PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(buf)) {
        durable_err(err, errlen, "cannot create directory", dir, ENAMETOOLONG);
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST) {
            durable_err(err, errlen, "cannot create directory", buf, errno);
            return -1;
        }
        buf[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        durable_err(err, errlen, "not a directory:", dir, ENOTDIR);
        return -1;
    }
    return 0;
}

int durable_read(const char *path, size_t cap, char **out, size_t *len, mode_t *st_mode, char *err,
                 size_t errlen)
{
    *out = NULL;
    *len = 0;
    char *buf = NULL;
    int rc = -1;
    /* O_NONBLOCK: opening a FIFO to read otherwise waits for a writer, for
     * ever (a certificate path made a FIFO would hang the thread that
     * reloads it); a regular file reads the same either way. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        durable_err(err, errlen, "cannot open", path, errno);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        durable_err(err, errlen, "cannot stat", path, errno);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        durable_err(err, errlen, "not a regular file:", path, EINVAL);
        errno = EINVAL;
        goto out;
    }
    if ((uint64_t)st.st_size > cap) {
        durable_err(err, errlen, "file too large:", path, EFBIG);
        errno = EFBIG;
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        durable_err(err, errlen, "cannot read", path, ENOMEM);
        goto out;
    }
    size_t got = 0;
    for (;;) {
        if (got == (size_t)st.st_size) {
            /* One more byte tells whether the file grew past its stat. */
            char extra;
            ssize_t r = read(fd, &extra, 1);
            if (r == 0)
                break;
            if (r < 0 && errno == EINTR)
                continue;
            durable_err(err, errlen, "file changed while read:", path, EAGAIN);
            goto out;
        }
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            durable_err(err, errlen, "cannot read", path, errno);
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    if (st_mode != NULL)
        *st_mode = st.st_mode;
    *out = buf;
    *len = got;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

bool durable_is_temp_name(const char *name)
{
    if (name[0] != '.')
        return false;
    const char *mark = strstr(name, DURABLE_TMP_MARK);
    return mark != NULL && strlen(mark) == sizeof(DURABLE_TMP_MARK) - 1 + 6;
}
