/* Fuzzes the --config file parser: every line through the option table's
 * parsers, the FILE:LINE errors, the command line applied after the file.
 * Inputs that name an address option are skipped: a host name there would
 * go to the resolver. */
#include "daemon/config.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > CONFIG_FILE_MAX || memmem(data, size, "listen", 6) != NULL ||
        memmem(data, size, "redirect", 8) != NULL)
        return 0;
    int fd = memfd_create("receiptd.conf", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size || fchmod(fd, 0600) != 0) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char *argv[] = {"receiptd", "--config", path, "--add-header", "X-A: b", NULL};
    config cfg;
    char err[CONFIG_ERR_MAX];
    config_result r = config_parse(&cfg, 5, argv, err, sizeof err);
    if (r == CONFIG_USAGE && err[0] == '\0')
        __builtin_trap(); /* every refusal says why */
    config_free(&cfg);
    close(fd);
    return 0;
}
