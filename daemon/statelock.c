#include "daemon/statelock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int statelock_acquire(const char *state_dir, char *err, size_t errlen)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", state_dir, STATELOCK_FILE) >= sizeof path) {
        snprintf(err, errlen, "the state directory's path is too long");
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            snprintf(err, errlen, "another receiptd is using %s (it holds %s)", state_dir, path);
            return STATELOCK_HELD;
        }
        snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        return -1;
    }
    return fd;
}
