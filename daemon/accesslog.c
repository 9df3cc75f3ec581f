#include "daemon/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct accesslog {
    int fd;
    char *path;
};

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

accesslog *accesslog_open(const char *path, char *err, size_t errlen)
{
    accesslog *log = calloc(1, sizeof *log);
    if (log == NULL)
        goto fail;
    log->fd = open_log(path);
    if (log->fd < 0) {
        snprintf(err, errlen, "cannot open access log %s: %s", path, strerror(errno));
        goto fail;
    }
    log->path = strdup(path);
    if (log->path == NULL)
        goto fail;
    return log;
fail:
    if (log != NULL && log->fd >= 0)
        close(log->fd);
    free(log);
    return NULL;
}

int accesslog_reopen(accesslog *log)
{
    if (log == NULL)
        return 0;
    int fd = open_log(log->path);
    if (fd < 0)
        return -1;
    int rc = dup2(fd, log->fd) < 0 ? -1 : 0;
    close(fd);
    return rc;
}

/* Copies text into out, escaping what would break the quoted field. */
static size_t put_escaped(char *out, size_t cap, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = 0;
    if (text == NULL || *text == '\0')
        text = "-";
    for (const unsigned char *p = (const unsigned char *)text; *p && len + 4 < cap; p++) {
        if (*p == '"' || *p == '\\' || *p < 0x20 || *p >= 0x7f) {
            out[len++] = '\\';
            out[len++] = 'x';
            out[len++] = hex[*p >> 4];
            out[len++] = hex[*p & 15];
        } else {
            out[len++] = (char)*p;
        }
    }
    return len;
}

void accesslog_write(accesslog *log, const accesslog_entry *e)
{
    if (log == NULL)
        return;
    char line[ACCESSLOG_LINE_MAX];
    size_t cap = sizeof line - 2; /* room for the newline */
    size_t len = 0;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);

    len += put_escaped(line + len, cap - len, e->client_addr);
    len += strftime(line + len, cap - len, " - - [%d/%b/%Y:%H:%M:%S +0000] \"", &tm);
    len += put_escaped(line + len, cap - len, e->method);
    if (len < cap)
        line[len++] = ' ';
    len += put_escaped(line + len, (cap - len) > 2048 ? 2048 : cap - len, e->uri);
    if (len < cap)
        line[len++] = ' ';
    len += put_escaped(line + len, cap - len, e->version);
    len += (size_t)snprintf(line + len, cap - len, "\" %u %llu \"", e->status,
                            (unsigned long long)e->bytes);
    if (len > cap)
        len = cap;
    len += put_escaped(line + len, cap - len, e->referer);
    if (len + 3 < cap) {
        memcpy(line + len, "\" \"", 3);
        len += 3;
    }
    len += put_escaped(line + len, cap - len, e->user_agent);
    if (len > cap - 1)
        len = cap - 1;
    line[len++] = '"';
    line[len++] = '\n';
    ssize_t ignored = write(log->fd, line, len);
    (void)ignored;
}

void accesslog_close(accesslog *log)
{
    if (log == NULL)
        return;
    if (log->fd >= 0)
        close(log->fd);
    free(log->path);
    free(log);
}
