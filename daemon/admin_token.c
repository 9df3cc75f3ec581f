#include "daemon/admin_token.h"

#include "common/b64.h"
#include "common/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ADMIN_TOKEN_BYTES 32

static bool token_chars_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == '~'))
            return false;
    }
    return true;
}

static int token_read(const char *file, char *token, char *err, size_t errlen)
{
    char text[ADMIN_TOKEN_MAX + 3];
    struct stat st;
    int ret = -1;
    int fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", file);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        /* Whoever reads it reads the whole ledger: same rule as the keys. */
        snprintf(err, errlen, "%s grants access to group or others: chmod 600 %s", file, file);
        goto out;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    if (n < 0) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        goto out;
    }
    size_t len = (size_t)n;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (len < ADMIN_TOKEN_MIN || len > ADMIN_TOKEN_MAX || !token_chars_valid(text, len)) {
        snprintf(err, errlen, "%s: the token must be %d to %d base64url characters", file,
                 ADMIN_TOKEN_MIN, ADMIN_TOKEN_MAX);
        goto out;
    }
    memcpy(token, text, len);
    token[len] = '\0';
    ret = 0;
out:
    close(fd);
    return ret;
}

/* 0 made, 1 someone else made it first, -1 error. Through a temporary file
 * (durable.h): a crash leaves no token, or the whole of it. */
static int token_create(const char *file, char *token, char *err, size_t errlen)
{
    uint8_t raw[ADMIN_TOKEN_BYTES];
    char line[ADMIN_TOKEN_MAX + 2];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        snprintf(err, errlen, "no random bytes for the admin token");
        return -1;
    }
    size_t len = b64url_encode(raw, sizeof raw, token);
    OPENSSL_cleanse(raw, sizeof raw);
    memcpy(line, token, len);
    line[len] = '\n';
    int rc = durable_write_atomic(file, line, len + 1, 0600, false, err, errlen);
    OPENSSL_cleanse(line, sizeof line);
    return rc;
}

int admin_token_load(const char *state_dir, bool create, char *token, bool *created, char *err,
                     size_t errlen)
{
    char file[PATH_MAX];
    int n = snprintf(file, sizeof file, "%s/%s", state_dir, ADMIN_TOKEN_FILE);
    *created = false;
    if (n < 0 || (size_t)n >= sizeof file) {
        snprintf(err, errlen, "state directory path too long");
        return -1;
    }
    if (access(file, F_OK) != 0 && errno == ENOENT) {
        if (!create)
            return 1;
        int rc = token_create(file, token, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            *created = true;
            return 0;
        }
    }
    return token_read(file, token, err, errlen);
}
