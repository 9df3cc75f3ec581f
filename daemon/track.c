#include "daemon/track.h"

#include <string.h>

/*
 * The glob as a small automaton: a state is an offset into the glob (the
 * end is the accepting one), and a set of states is live at once, so that
 * no pattern costs more than (glob length) x (path length) steps, however
 * many stars it holds. A star's state stays live while it consumes
 * characters; the state after it is live from the start (a star may match
 * nothing).
 */
static size_t star_len(const char *glob, size_t at)
{
    if (glob[at] != '*')
        return 0;
    return glob[at + 1] == '*' ? 2 : 1;
}

/* Adds state at and what it reaches without consuming a character. */
static void reach(const char *glob, size_t at, bool *live)
{
    for (;;) {
        live[at] = true;
        size_t n = star_len(glob, at);
        if (n == 0)
            return;
        at += n;
    }
}

bool track_glob_match(const char *glob, const char *path)
{
    size_t glen = strnlen(glob, CONFIG_GLOB_MAX + 1);
    if (glen > CONFIG_GLOB_MAX)
        return false;
    bool a[CONFIG_GLOB_MAX + 1] = {false};
    bool b[CONFIG_GLOB_MAX + 1];
    bool *live = a, *next = b;
    reach(glob, 0, live);
    for (const char *p = path; *p != '\0'; p++) {
        memset(next, 0, glen + 1);
        bool any = false;
        for (size_t at = 0; at < glen; at++) {
            if (!live[at])
                continue;
            size_t n = star_len(glob, at);
            if (n == 2 || (n == 1 && *p != '/')) {
                reach(glob, at, next); /* the star takes this character too */
                any = true;
            } else if (n == 0 && (glob[at] == *p || (glob[at] == '?' && *p != '/'))) {
                reach(glob, at + 1, next);
                any = true;
            }
        }
        if (!any)
            return false;
        bool *t = live;
        live = next;
        next = t;
    }
    return live[glen];
}

/* The kind that fetch metadata gives; false: a subresource, no delivery. */
static bool kind_by_request(const track_request *r, ledger_kind *kind)
{
    static const char *const documents[] = {"document", "iframe", "frame", "embed", "object"};
    if (r->receipt_fetch != NULL && strcmp(r->receipt_fetch, TRACK_FETCH_DOWNLOAD) == 0) {
        *kind = LEDGER_KIND_DOWNLOAD;
        return true;
    }
    /* Browsers that send fetch metadata always send Sec-Fetch-Dest; other
     * clients may send Sec-Fetch-Mode alone (Node's fetch does). */
    if (r->fetch_dest == NULL) {
        *kind = LEDGER_KIND_DEVICE;
        return true;
    }
    for (size_t i = 0; i < sizeof documents / sizeof documents[0]; i++) {
        if (strcmp(r->fetch_dest, documents[i]) == 0) {
            *kind = r->is_html ? LEDGER_KIND_PAGE : LEDGER_KIND_VIEW;
            return true;
        }
    }
    if (strcmp(r->fetch_dest, "empty") == 0 && r->fetch_mode != NULL &&
        strcmp(r->fetch_mode, "navigate") == 0) {
        *kind = LEDGER_KIND_DOWNLOAD;
        return true;
    }
    return false;
}

bool track_decide(const config *cfg, const track_request *r, ledger_kind *kind)
{
    int rule = -1; /* -1: no rule matched; 0: untracked; 1: tracked */
    for (size_t i = cfg->path_rule_count; i-- > 0;) {
        if (track_glob_match(cfg->path_rules[i].glob, r->path)) {
            rule = cfg->path_rules[i].track ? 1 : 0;
            break;
        }
    }
    if (rule == 0)
        return false;
    if (kind_by_request(r, kind))
        return true;
    if (rule == 1 || cfg->track_subresources) {
        *kind = LEDGER_KIND_TRACKED;
        return true;
    }
    return false;
}
