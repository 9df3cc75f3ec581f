/*
 * track: which requests are deliveries, as a table of cases (fetch
 * metadata, the agent's header, --track and --untrack in order,
 * --track-subresources), and the globs of the path rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/track.h"

#include <stdio.h>
#include <string.h>

static void test_globs(void **state)
{
    (void)state;
    static const struct {
        const char *glob, *path;
        bool match;
    } cases[] = {
        {"/a.html", "/a.html", true},
        {"/a.html", "/a.htm", false},
        {"/a.html", "/a.html5", false},
        {"/*.pdf", "/x.pdf", true},
        {"/*.pdf", "/docs/x.pdf", false}, /* '*' stays within a segment */
        {"/**.pdf", "/docs/x.pdf", true},
        {"**.pdf", "/x.pdf", true},
        {"**.pdf", "/a/b/c.pdf", true},
        {"**.pdf", "/a/b/c.pdfx", false},
        {"/img/**", "/img/a.png", true},
        {"/img/**", "/img/a/b/c.png", true},
        {"/img/**", "/img/", true},
        {"/img/**", "/images/a.png", false},
        {"/img/*", "/img/a/b.png", false},
        {"/*/index.html", "/docs/index.html", true},
        {"/*/index.html", "/index.html", false},
        {"/?.txt", "/a.txt", true},
        {"/?.txt", "/ab.txt", false},
        {"/?.txt", "//.txt", false}, /* '?' is no '/' */
        {"/a*b*c", "/abc", true},
        {"/a*b*c", "/aXbYc", true},
        {"/a*b*c", "/aXbY", false},
        {"/**/x/*.pdf", "/a/b/x/y.pdf", true},
        {"/**/x/*.pdf", "/a/b/x/z/y.pdf", false},
        {"/***", "/a/b", true},
        {"*", "/a", false},
        {"**", "/a/b", true},
        {"/caf\xc3\xa9.html", "/caf\xc3\xa9.html", true},
        {"/*.html", "/caf\xc3\xa9.html", true},
        {"/caf?.html", "/caf\xc3\xa9.html", false}, /* '?' is one byte */
        {"/caf??.html", "/caf\xc3\xa9.html", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (track_glob_match(cases[i].glob, cases[i].path) != cases[i].match)
            fail_msg("glob %s on %s: expected %s", cases[i].glob, cases[i].path,
                     cases[i].match ? "a match" : "none");
    }
}

/* Many stars cost length x length steps, not exponential ones. */
static void test_glob_stars(void **state)
{
    (void)state;
    char glob[CONFIG_GLOB_MAX + 1], path[CONFIG_GLOB_MAX + 1];
    memset(glob, '*', CONFIG_GLOB_MAX);
    glob[0] = '/';
    glob[CONFIG_GLOB_MAX - 1] = 'b';
    glob[CONFIG_GLOB_MAX] = '\0';
    memset(path, 'a', CONFIG_GLOB_MAX);
    path[0] = '/';
    path[CONFIG_GLOB_MAX] = '\0';
    assert_false(track_glob_match(glob, path));
    path[CONFIG_GLOB_MAX - 1] = 'b';
    assert_true(track_glob_match(glob, path));
    /* Longer than any glob the configuration takes: matches nothing. */
    char longer[CONFIG_GLOB_MAX + 2];
    memset(longer, '*', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_false(track_glob_match(longer, "/a"));
}

#define NONE -1
enum {
    PAGE = LEDGER_KIND_PAGE,
    DOWNLOAD = LEDGER_KIND_DOWNLOAD,
    VIEW = LEDGER_KIND_VIEW,
    DEVICE = LEDGER_KIND_DEVICE,
    TRACKED = LEDGER_KIND_TRACKED
};

typedef struct rule_case {
    const char *rules; /* "+GLOB -GLOB ...": --track and --untrack in order */
    bool subresources; /* --track-subresources */
    const char *path;
    bool html;
    const char *dest, *mode, *receipt_fetch;
    int kind; /* NONE: no delivery */
} rule_case;

static const rule_case cases[] = {
    /* fetch metadata alone */
    {"", false, "/index.html", true, "document", "navigate", NULL, PAGE},
    {"", false, "/frame.html", true, "iframe", "navigate", NULL, PAGE},
    {"", false, "/frame.html", true, "frame", "navigate", NULL, PAGE},
    {"", false, "/embedded.html", true, "embed", "no-cors", NULL, PAGE},
    {"", false, "/object.html", true, "object", "no-cors", NULL, PAGE},
    {"", false, "/doc.pdf", false, "document", "navigate", NULL, VIEW},
    {"", false, "/doc.pdf", false, "iframe", "navigate", NULL, VIEW},
    {"", false, "/doc.pdf", false, "embed", "no-cors", NULL, VIEW},
    {"", false, "/doc.pdf", false, "empty", "navigate", NULL, DOWNLOAD},
    {"", false, "/page.html", true, "empty", "navigate", NULL, DOWNLOAD},
    {"", false, "/doc.pdf", false, "empty", "cors", "download", DOWNLOAD},
    {"", false, "/doc.pdf", false, "empty", "same-origin", "download", DOWNLOAD},
    {"", false, "/doc.pdf", false, NULL, NULL, "download", DOWNLOAD},
    {"", false, "/doc.pdf", false, "empty", "cors", "other", NONE},
    {"", false, "/doc.pdf", false, "empty", "cors", "Download", NONE},
    {"", false, "/img/a.png", false, "image", "no-cors", NULL, NONE},
    {"", false, "/style.css", false, "style", "no-cors", NULL, NONE},
    {"", false, "/app.js", false, "script", "no-cors", NULL, NONE},
    {"", false, "/font.woff2", false, "font", "cors", NULL, NONE},
    {"", false, "/clip.mp4", false, "video", "no-cors", NULL, NONE},
    {"", false, "/sound.ogg", false, "audio", "no-cors", NULL, NONE},
    {"", false, "/subs.vtt", false, "track", "cors", NULL, NONE},
    {"", false, "/app.webmanifest", false, "manifest", "cors", NULL, NONE},
    {"", false, "/worker.js", false, "worker", "same-origin", NULL, NONE},
    {"", false, "/data.json", false, "empty", "cors", NULL, NONE},
    {"", false, "/part.html", true, "empty", "cors", NULL, NONE},
    /* no Sec-Fetch-Dest: devices, scripts, and Node's fetch (Mode alone) */
    {"", false, "/firmware.bin", false, NULL, NULL, NULL, DEVICE},
    {"", false, "/index.html", true, NULL, NULL, NULL, DEVICE},
    {"", false, "/index.html", true, NULL, "cors", NULL, DEVICE},
    /* --track-subresources: every 200 */
    {"", true, "/img/a.png", false, "image", "no-cors", NULL, TRACKED},
    {"", true, "/data.json", false, "empty", "cors", NULL, TRACKED},
    {"", true, "/index.html", true, "document", "navigate", NULL, PAGE},
    {"", true, "/firmware.bin", false, NULL, NULL, NULL, DEVICE},
    /* --track: a subresource becomes tracked; others keep their kind */
    {"+/img/charts/**", false, "/img/charts/q1.png", false, "image", "no-cors", NULL, TRACKED},
    {"+/img/charts/**", false, "/img/logo.png", false, "image", "no-cors", NULL, NONE},
    {"+**.pdf", false, "/a/b.pdf", false, "document", "navigate", NULL, VIEW},
    {"+**.pdf", false, "/a/b.pdf", false, NULL, NULL, NULL, DEVICE},
    /* --untrack: nothing is a delivery, whatever the request */
    {"-/status/**", false, "/status/up.html", true, "document", "navigate", NULL, NONE},
    {"-/status/**", false, "/status/up.json", false, NULL, NULL, NULL, NONE},
    {"-/status/**", false, "/status/a.pdf", false, "empty", "cors", "download", NONE},
    {"-/status/**", true, "/status/up.png", false, "image", "no-cors", NULL, NONE},
    {"-/status/**", false, "/statusx.html", true, "document", "navigate", NULL, PAGE},
    /* the last rule that matches wins */
    {"-/status/** +/status/notice.html", false, "/status/notice.html", true, "document", "navigate",
     NULL, PAGE},
    {"-/status/** +/status/notice.html", false, "/status/other.html", true, "document", "navigate",
     NULL, NONE},
    {"+/status/notice.html -/status/**", false, "/status/notice.html", true, "document", "navigate",
     NULL, NONE},
    {"+/img/** -/img/*.svg", false, "/img/a.svg", false, "image", "no-cors", NULL, NONE},
    {"+/img/** -/img/*.svg", false, "/img/a.png", false, "image", "no-cors", NULL, TRACKED},
    {"+/img/** -/img/*.svg", false, "/img/x/a.svg", false, "image", "no-cors", NULL, TRACKED},
    {"-** +/img/a.png", true, "/img/a.png", false, "image", "no-cors", NULL, TRACKED},
    {"-** +/img/a.png", true, "/img/b.png", false, "image", "no-cors", NULL, NONE},
};

/* Fills cfg's path rules from "+GLOB -GLOB ..."; globs point into buf. */
static void set_rules(config *cfg, const char *rules, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", rules);
    cfg->path_rule_count = 0;
    char *save = NULL;
    for (char *w = strtok_r(buf, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
        assert_true(w[0] == '+' || w[0] == '-');
        cfg->path_rules[cfg->path_rule_count].track = w[0] == '+';
        cfg->path_rules[cfg->path_rule_count].glob = w + 1;
        cfg->path_rule_count++;
    }
}

static void test_decide(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const rule_case *c = &cases[i];
        config cfg;
        char buf[256];
        memset(&cfg, 0, sizeof cfg);
        set_rules(&cfg, c->rules, buf, sizeof buf);
        cfg.track_subresources = c->subresources;
        const track_request r = {
            .path = c->path,
            .is_html = c->html,
            .fetch_dest = c->dest,
            .fetch_mode = c->mode,
            .receipt_fetch = c->receipt_fetch,
        };
        ledger_kind kind = LEDGER_KIND_COUNT;
        bool delivery = track_decide(&cfg, &r, &kind);
        int got = delivery ? (int)kind : NONE;
        if (got != c->kind)
            fail_msg("case %zu (%s%s, %s, dest %s, mode %s, Receipt-Fetch %s): %s, expected %s", i,
                     c->rules, c->subresources ? " subresources" : "", c->path,
                     c->dest ? c->dest : "-", c->mode ? c->mode : "-",
                     c->receipt_fetch ? c->receipt_fetch : "-",
                     got == NONE ? "none" : ledger_kind_name((ledger_kind)got),
                     c->kind == NONE ? "none" : ledger_kind_name((ledger_kind)c->kind));
    }
}

static void test_kind_names(void **state)
{
    (void)state;
    static const char *const names[] = {"page", "download", "view", "device", "tracked"};
    for (int k = 0; k < LEDGER_KIND_COUNT; k++) {
        ledger_kind back;
        assert_string_equal(ledger_kind_name((ledger_kind)k), names[k]);
        assert_int_equal(ledger_kind_parse(names[k], &back), 0);
        assert_int_equal(back, k);
    }
    ledger_kind back;
    assert_int_equal(ledger_kind_parse("Page", &back), -1);
    assert_int_equal(ledger_kind_parse("", &back), -1);
    assert_string_equal(ledger_kind_name((ledger_kind)LEDGER_KIND_COUNT), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_globs),
        cmocka_unit_test(test_glob_stars),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
