/*
 * track: the path rules' glob matcher agrees with a plain recursive one
 * (on inputs small enough for it), and never takes more than length x
 * length steps however the stars fall.
 */
#include "daemon/track.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The obvious definition, exponential at worst: for short inputs only. */
static bool reference(const char *g, const char *p)
{
    if (*g == '\0')
        return *p == '\0';
    if (g[0] == '*' && g[1] == '*') {
        for (const char *q = p;; q++) {
            if (reference(g + 2, q))
                return true;
            if (*q == '\0')
                return false;
        }
    }
    if (g[0] == '*') {
        for (const char *q = p;; q++) {
            if (reference(g + 1, q))
                return true;
            if (*q == '\0' || *q == '/')
                return false;
        }
    }
    if (*p == '\0')
        return false;
    if (g[0] == '?' ? *p != '/' : g[0] == *p)
        return reference(g + 1, p + 1);
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* glob NUL path */
    const uint8_t *nul = memchr(data, '\0', size);
    if (nul == NULL)
        return 0;
    size_t glen = (size_t)(nul - data);
    size_t plen = size - glen - 1;
    if (glen > CONFIG_GLOB_MAX || plen > 1024 || memchr(nul + 1, '\0', plen) != NULL)
        return 0;
    char glob[CONFIG_GLOB_MAX + 1], path[1025];
    memcpy(glob, data, glen);
    glob[glen] = '\0';
    memcpy(path, nul + 1, plen);
    path[plen] = '\0';
    bool got = track_glob_match(glob, path);
    if (glen <= 12 && plen <= 16 && got != reference(glob, path))
        abort();
    return 0;
}
