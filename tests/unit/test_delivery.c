/* delivery: issuing (ID, kind, digests, bound and unbound tickets), the fixed agent element
 * and the "content" member. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/delivery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t secret[TICKET_SECRET_LEN] = {9, 8, 7, 6, 5, 4, 3, 2, 1};
static const uint8_t digest[32] = {0xde, 0xad, 0xbe, 0xef};

static const uint8_t injected[32] = {0xfe, 0xed};

/* A page of 42 bytes sent as 90 with the element, kind page. */
static delivery_content page(const char *path)
{
    return (delivery_content){
        .path = path,
        .path_len = strlen(path),
        .kind = LEDGER_KIND_PAGE,
        .sha256 = digest,
        .size = 42,
        .delivered_sha256 = injected,
        .delivered_size = 90,
    };
}

/* The element is fixed: no ticket, nothing that changes per delivery. */
static void test_element(void **state)
{
    (void)state;
    assert_string_equal(DELIVERY_ELEMENT, "<script src=\"/_receipt/agent.js\" async></script>");
}

static void test_issue(void **state)
{
    (void)state;
    ticket_sealer *sealer = ticket_sealer_new(secret);
    assert_non_null(sealer);
    delivery a, b;
    uint64_t now = UINT64_C(1764100000000);
    const delivery_content a_html = page("/a.html");
    assert_int_equal(delivery_issue(sealer, &a_html, now, 60, NULL, &a), 0);
    assert_int_equal(delivery_issue(sealer, &a_html, now, 60, NULL, &b), 0);
    assert_int_equal(strlen(a.id_text), UUID7_STR_LEN);
    assert_string_not_equal(a.id_text, b.id_text);
    assert_true(strcmp(a.id_text, b.id_text) < 0);
    assert_int_equal(strlen(a.ticket), a.ticket_len);

    ticket_claims opened;
    assert_int_equal(ticket_open(sealer, a.ticket, a.ticket_len, now, &opened), TICKET_OK);
    assert_memory_equal(&opened.delivery, &a.id, sizeof a.id);
    assert_string_equal(opened.path, "/a.html");
    assert_memory_equal(opened.sha256, digest, 32);
    assert_int_equal(opened.size, 42);
    assert_memory_equal(opened.delivered_sha256, injected, 32);
    assert_int_equal(opened.delivered_size, 90);
    assert_int_equal(opened.kind, LEDGER_KIND_PAGE);
    assert_int_equal(opened.issued_ms, now);
    assert_int_equal(opened.expires_ms, now + 60000);
    assert_false(opened.bound);
    assert_int_equal(ticket_open(sealer, a.ticket, a.ticket_len, now + 60000, &opened),
                     TICKET_EXPIRED);

    uint8_t client[32];
    memset(client, 0x5a, sizeof client);
    delivery_content download = page("/a.html");
    download.kind = LEDGER_KIND_DOWNLOAD;
    download.delivered_sha256 = digest;
    download.delivered_size = 42;
    assert_int_equal(delivery_issue(sealer, &download, now, 60, client, &a), 0);
    assert_int_equal(ticket_open(sealer, a.ticket, a.ticket_len, now, &opened), TICKET_OK);
    assert_true(opened.bound);
    assert_memory_equal(opened.client_id, client, 32);
    assert_int_equal(opened.kind, LEDGER_KIND_DOWNLOAD);
    assert_memory_equal(opened.delivered_sha256, digest, 32);
    assert_int_equal(opened.delivered_size, 42);

    char long_path[TICKET_PATH_MAX + 2];
    memset(long_path, 'p', sizeof long_path);
    long_path[0] = '/';
    delivery_content longest = page("/");
    longest.path = long_path;
    longest.path_len = TICKET_PATH_MAX + 1;
    assert_int_equal(delivery_issue(sealer, &longest, now, 60, NULL, &a), -1);
    /* The largest ticket: bound, injected, the longest path. */
    longest.path_len = TICKET_PATH_MAX;
    longest.kind = LEDGER_KIND_TRACKED;
    assert_int_equal(delivery_issue(sealer, &longest, now, 60, client, &a), 0);
    assert_true(a.ticket_len <= TICKET_MAX_LEN);
    ticket_sealer_free(sealer);
}

/* Starting a ledger event from a ticket: its issuance fields, the server,
 * nothing else. */
static void test_event_start(void **state)
{
    (void)state;
    ticket_sealer *sealer = ticket_sealer_new(secret);
    delivery d;
    uint64_t now = UINT64_C(1764100000000);
    const delivery_content a_html = page("/a.html");
    assert_int_equal(delivery_issue(sealer, &a_html, now, 60, NULL, &d), 0);
    ledger_event *ev = malloc(sizeof *ev);
    assert_non_null(ev);
    memset(ev, 0x5a, sizeof *ev);
    delivery_event_start(LEDGER_EVENT_BIND, &d.claims, "edge-1", "node-b", ev);
    assert_int_equal(ev->kind, LEDGER_EVENT_BIND);
    assert_string_equal(ev->row.id, d.id_text);
    assert_string_equal(ev->row.path, "/a.html");
    assert_memory_equal(ev->row.sha256, digest, 32);
    assert_int_equal(ev->row.size, 42);
    assert_int_equal(ev->row.issued_ms, now);
    assert_string_equal(ev->row.server, "edge-1");
    assert_string_equal(ev->row.client, "");
    assert_int_equal(ev->row.bound_ms, 0);
    assert_int_equal(ev->row.confirmed_ms, 0);
    assert_string_equal(ev->row.receipt, "");
    /* The node of the event's own step, and no other. */
    assert_string_equal(ev->row.bound_node, "node-b");
    assert_string_equal(ev->row.issued_node, "");
    assert_string_equal(ev->row.confirmed_node, "");
    memset(ev, 0x5a, sizeof *ev);
    delivery_event_start(LEDGER_EVENT_ISSUE, &d.claims, "edge-1", "node-a", ev);
    assert_string_equal(ev->row.issued_node, "node-a");
    assert_string_equal(ev->row.bound_node, "");
    memset(ev, 0x5a, sizeof *ev);
    delivery_event_start(LEDGER_EVENT_CONFIRM, &d.claims, "edge-1", "node-c", ev);
    assert_string_equal(ev->row.confirmed_node, "node-c");
    assert_string_equal(ev->row.issued_node, "");
    free(ev);
    ticket_sealer_free(sealer);
}

/*
 * The "content" member of plug-in data and receipts. Its path is escaped by
 * the one JSON rule (jbuf.h) since the escapers were merged: DEL, which the
 * listener's own escaper let through, is \u007f, and bytes that are not
 * UTF-8, for which it refused the whole payload (a 500), are U+FFFD. The
 * content store lets neither into a path, so no answer changes.
 */
static void test_content_json(void **state)
{
    (void)state;
    ticket_claims t;
    memset(&t, 0, sizeof t);
    memcpy(t.sha256, digest, 32);
    t.size = 42;
    memcpy(t.delivered_sha256, injected, 32);
    t.delivered_size = 90;
    static const struct {
        const char *path, *json;
    } cases[] = {
        {"/a \"b\".html", "/a \\\"b\\\".html"},
        {"/caf\xc3\xa9.html", "/caf\xc3\xa9.html"},
        {"/del\x7f", "/del\\u007f"},
        {"/bad\xff", "/bad\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t.path_len = strlen(cases[i].path);
        memcpy(t.path, cases[i].path, t.path_len + 1);
        char mem[512], want[512];
        jbuf b;
        jbuf_init(&b, mem, sizeof mem);
        jbuf_adds(&b, "{\"v\":1");
        delivery_content_json(&b, &t);
        jbuf_adds(&b, "}");
        assert_false(b.failed);
        snprintf(want, sizeof want,
                 "{\"v\":1,\"content\":{\"path\":\"%s\","
                 "\"sha256\":\"_u0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"size\":90,"
                 "\"version\":{\"sha256\":\"3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                 "\"size\":42}}}",
                 cases[i].json);
        assert_string_equal(mem, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_element),
        cmocka_unit_test(test_issue),
        cmocka_unit_test(test_event_start),
        cmocka_unit_test(test_content_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
