/*
 * Fuzzes the recovery file reader: the input, behind a valid header, is the
 * file a crash or a bad disk could leave. Whatever it holds, the reader
 * must end (at the end, or at damage) without reading past what it has.
 */
#include "daemon/recovery.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char file[128];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char header[RECOVERY_HEADER_LEN] = "receiptd ledger recovery v1\n";
    char err[RECOVERY_ERR_MAX];
    recovery_summary rs;
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "/tmp/fuzz_recovery.XXXXXX");
        if (mkdtemp(dir) == NULL)
            abort();
        snprintf(file, sizeof file, "%s/%s", dir, RECOVERY_FILE);
    }
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    /* Half the inputs get a valid header, so that the records are reached. */
    bool with_header = size > 0 && (data[0] & 1);
    if ((with_header && write(fd, header, sizeof header) != (ssize_t)sizeof header) ||
        (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)))
        abort();
    close(fd);
    if (recovery_inspect(dir, &rs, err, sizeof err) == 0) {
        if (!rs.exists || rs.damaged_at > RECOVERY_HEADER_LEN + size)
            abort();
    }
    return 0;
}
