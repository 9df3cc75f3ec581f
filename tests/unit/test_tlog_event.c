/*
 * tlog_event: the canonical text of each ledger event, and rows rebuilt
 * from their events as the ledger applied them.
 */
#include "common/evpack.h"
#include "common/jcs.h"
#include "daemon/tlog_event.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID       "01900000-0000-7000-8000-000000000001"
#define CLIENT_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define CLIENT_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

static void fill_issue(ledger_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = LEDGER_EVENT_ISSUE;
    snprintf(ev->row.id, sizeof ev->row.id, ID);
    snprintf(ev->row.path, sizeof ev->row.path, "/notices/\"q\"\n\xc3\xa9.pdf");
    for (int i = 0; i < 32; i++)
        ev->row.sha256[i] = (uint8_t)i;
    ev->row.size = 1234;
    ev->row.kind = LEDGER_KIND_DOWNLOAD;
    for (int i = 0; i < 32; i++)
        ev->row.delivered_sha256[i] = (uint8_t)(255 - i);
    ev->row.delivered_size = 1300;
    snprintf(ev->row.server, sizeof ev->row.server, "site");
    snprintf(ev->row.client_addr, sizeof ev->row.client_addr, "192.0.2.1");
    snprintf(ev->row.user_agent, sizeof ev->row.user_agent, "curl/8");
    ev->row.issued_ms = 1764100000000;
    snprintf(ev->row.issued_node, sizeof ev->row.issued_node, "a");
    ev->row.status = LEDGER_ISSUED;
}

static void bind_to(ledger_event *ev, const char *client)
{
    snprintf(ev->row.client, sizeof ev->row.client, "%s", client);
    snprintf(ev->row.bound_addr, sizeof ev->row.bound_addr, "198.51.100.2");
    ev->row.bound_ms = ev->row.issued_ms + 10;
    snprintf(ev->row.bound_node, sizeof ev->row.bound_node, "b");
}

static void fill_confirm(ledger_event *ev, const char *client, bool intact)
{
    fill_issue(ev);
    ev->kind = LEDGER_EVENT_CONFIRM;
    bind_to(ev, client);
    ev->row.status = intact ? LEDGER_CONFIRMED : LEDGER_CORRUPTED;
    ev->row.confirmed_ms = ev->row.issued_ms + 50;
    snprintf(ev->row.confirm_addr, sizeof ev->row.confirm_addr, "2001:db8::1");
    ev->row.received_has_sha256 = intact;
    memcpy(ev->row.received_sha256, ev->row.sha256, 32);
    ev->row.received_size = ev->row.size;
    ev->row.received_at_ms = ev->row.confirmed_ms - 5;
    snprintf(ev->row.receipt, sizeof ev->row.receipt, "eyJ.e30.sig");
    snprintf(ev->row.confirmed_node, sizeof ev->row.confirmed_node, "c");
}

static int fold(const ledger_event *ev, tlog_event_row *state, tlog_event_info *info, char *err)
{
    char text[TLOG_EVENT_MAX + 1];
    size_t n = tlog_event_text(ev, text, sizeof text);
    assert_int_not_equal(n, 0);
    return tlog_event_fold(text, n, info, state, err, 256);
}

/* The event's packed form, made beside its text, unpacks to the same text,
 * in fewer bytes; and too little room for it gives no packed form, not a
 * wrong one. */
static void check_packed(const ledger_event *ev)
{
    char text[TLOG_EVENT_MAX + 1], unpacked[TLOG_EVENT_MAX];
    uint8_t packed[TLOG_EVENT_MAX + 1];
    size_t packed_len = 0;
    size_t n = tlog_event_text_packed(ev, text, sizeof text, packed, sizeof packed, &packed_len);
    assert_int_not_equal(n, 0);
    char plain[TLOG_EVENT_MAX + 1];
    assert_int_equal(tlog_event_text(ev, plain, sizeof plain), n);
    assert_string_equal(plain, text);
    assert_true(packed_len > 0 && packed_len <= n + 1);
    assert_int_equal(evpack_decode(packed, packed_len, unpacked, sizeof unpacked), (long)n);
    assert_memory_equal(unpacked, text, n);
    /* What the generic packer makes of the text unpacks the same. */
    uint8_t again[EVPACK_MAX(TLOG_EVENT_MAX)];
    size_t again_len = evpack_encode(text, n, again, sizeof again);
    assert_int_equal(evpack_decode(again, again_len, unpacked, sizeof unpacked), (long)n);
    assert_memory_equal(unpacked, text, n);
    size_t small = 0;
    assert_int_equal(tlog_event_text_packed(ev, text, sizeof text, packed, packed_len - 1, &small),
                     n);
    assert_int_equal(small, 0);
}

/* Every kind of event packs and unpacks to its text. */
static void test_packed_forms(void **state)
{
    (void)state;
    ledger_event ev;
    fill_issue(&ev);
    check_packed(&ev);
    ev.kind = LEDGER_EVENT_BIND;
    snprintf(ev.row.client, sizeof ev.row.client, "%s", CLIENT_A);
    ev.row.status = LEDGER_BOUND;
    check_packed(&ev);
    fill_confirm(&ev, CLIENT_A, true);
    check_packed(&ev);
    fill_confirm(&ev, CLIENT_A, false);
    check_packed(&ev);
    ev.row.receipt[0] = '\0';
    check_packed(&ev);
    ev.kind = LEDGER_EVENT_COPY;
    check_packed(&ev);
}

static void test_text_is_canonical(void **state)
{
    (void)state;
    ledger_event ev;
    char text[TLOG_EVENT_MAX + 1];
    fill_issue(&ev);
    size_t n = tlog_event_text(&ev, text, sizeof text);
    assert_int_not_equal(n, 0);
    assert_int_equal(n, strlen(text));
    assert_true(jcs_is_canonical(text, n));
    assert_non_null(strstr(text, "\"type\":\"issued\""));
    assert_non_null(strstr(text, "\"delivery\":\"" ID "\""));
    assert_non_null(strstr(text, "\"path\":\"/notices/\\\"q\\\"\\n\xc3\xa9.pdf\""));
    assert_non_null(strstr(text, "\"v\":1"));
    assert_non_null(strstr(text, "\"kind\":\"download\""));
    assert_non_null(strstr(text, "\"delivered_size\":1300"));
    assert_null(strstr(text, "\"client\""));
    /* Too small a buffer: nothing. */
    assert_int_equal(tlog_event_text(&ev, text, 40), 0);
    /* Text that is no UTF-8 (a user agent is whatever a client sent) is
     * committed with U+FFFD for each bad byte, and the row still matches. */
    snprintf(ev.row.user_agent, sizeof ev.row.user_agent, "bad\xff\xfe agent\xc3");
    n = tlog_event_text(&ev, text, sizeof text);
    assert_int_not_equal(n, 0);
    assert_true(jcs_is_canonical(text, n));
    assert_non_null(
        strstr(text, "\"user_agent\":\"bad\xef\xbf\xbd\xef\xbf\xbd agent\xef\xbf\xbd\""));
    tlog_event_row folded = {0};
    tlog_event_info info;
    char err[256];
    assert_int_equal(tlog_event_fold(text, n, &info, &folded, err, sizeof err), 0);
    assert_true(tlog_event_row_matches(&folded, &ev.row, err, sizeof err));
    snprintf(ev.row.user_agent, sizeof ev.row.user_agent, "bad\xfe\xff agent\xc3");
    assert_true(tlog_event_row_matches(&folded, &ev.row, err, sizeof err)); /* the same repaired */
    snprintf(ev.row.user_agent, sizeof ev.row.user_agent, "bad\xff\xfe agent");
    assert_false(tlog_event_row_matches(&folded, &ev.row, err, sizeof err));
    assert_string_equal(err, "user_agent");
    /* A column full of bytes that are no UTF-8: the event holds three times
     * the column's bytes, and still folds into a row that matches it. */
    memset(ev.row.user_agent, 0x80, sizeof ev.row.user_agent - 1);
    ev.row.user_agent[sizeof ev.row.user_agent - 1] = '\0';
    n = tlog_event_text(&ev, text, sizeof text);
    assert_int_not_equal(n, 0);
    memset(&folded, 0, sizeof folded);
    assert_int_equal(tlog_event_fold(text, n, &info, &folded, err, sizeof err), 0);
    assert_true(tlog_event_row_matches(&folded, &ev.row, err, sizeof err));
    ev.row.user_agent[7] = 'x';
    assert_false(tlog_event_row_matches(&folded, &ev.row, err, sizeof err));
    assert_string_equal(err, "user_agent");
    /* A literal U+FFFD in the row is the same text as a byte it repairs. */
    snprintf(ev.row.user_agent, sizeof ev.row.user_agent, "a\xef\xbf\xbd b");
    n = tlog_event_text(&ev, text, sizeof text);
    memset(&folded, 0, sizeof folded);
    assert_int_equal(tlog_event_fold(text, n, &info, &folded, err, sizeof err), 0);
    assert_true(tlog_event_row_matches(&folded, &ev.row, err, sizeof err));
    snprintf(ev.row.user_agent, sizeof ev.row.user_agent, "a\x80 b");
    assert_true(tlog_event_row_matches(&folded, &ev.row, err, sizeof err));
    /* A size beyond 2^53 - 1 cannot be committed. */
    fill_issue(&ev);
    ev.row.size = UINT64_C(1) << 53;
    assert_int_equal(tlog_event_text(&ev, text, sizeof text), 0);

    fill_confirm(&ev, CLIENT_A, true);
    n = tlog_event_text(&ev, text, sizeof text);
    assert_true(jcs_is_canonical(text, n));
    char hash[TLOG_RECEIPT_HASH_LEN + 1];
    tlog_event_receipt_hash(ev.row.receipt, hash);
    assert_int_equal(strlen(hash), TLOG_RECEIPT_HASH_LEN);
    assert_non_null(strstr(text, hash));
    assert_null(strstr(text, "eyJ.e30.sig"));
}

/* Texts of every kind of byte (quotes, backslashes, each control, DEL,
 * UTF-8 and bytes that are none) in the members an event copies from a
 * request: the event is canonical JSON, and the row it folds into is the
 * event's. */
static void test_text_of_any_bytes(void **state)
{
    (void)state;
    static const unsigned char odd[] = {'"',  '\\', '\b', '\t', '\n', '\f', '\r', 0x01, 0x1f,
                                        0x7f, 0xc3, 0xa9, 0xe2, 0x80, 0x94, 0xf0, 0x9f, 0x98,
                                        0x80, 0xff, 0xc0, 0xed, 0xa0, '/',  ' '};
    unsigned seed = 7;
    for (int round = 0; round < 2000; round++) {
        ledger_event ev;
        fill_confirm(&ev, CLIENT_A, round % 2 == 0);
        char *fields[] = {ev.row.path, ev.row.user_agent, ev.row.server};
        size_t caps[] = {sizeof ev.row.path, sizeof ev.row.user_agent, sizeof ev.row.server};
        for (size_t f = 0; f < 3; f++) {
            /* up to the column's size, though each byte may become
             * U+FFFD's three in the event */
            size_t n = (size_t)(rand_r(&seed) % 40) + 1;
            if (round % 50 == 0)
                n = caps[f] - 1;
            if (n >= caps[f])
                n = caps[f] - 1;
            for (size_t i = 0; i < n; i++) {
                unsigned char c = rand_r(&seed) % 3 == 0
                                      ? odd[rand_r(&seed) % sizeof odd]
                                      : (unsigned char)('a' + rand_r(&seed) % 26);
                fields[f][i] = c == 0 ? 'z' : (char)c;
            }
            fields[f][n] = '\0';
        }
        char text[TLOG_EVENT_MAX + 1];
        size_t n = tlog_event_text(&ev, text, sizeof text);
        assert_int_not_equal(n, 0);
        assert_int_equal(n, strlen(text));
        assert_true(jcs_is_canonical(text, n));
        tlog_event_row folded = {0};
        tlog_event_info info;
        char err[256];
        assert_int_equal(tlog_event_fold(text, n, &info, &folded, err, sizeof err), 0);
        assert_true(tlog_event_row_matches(&folded, &ev.row, err, sizeof err));
        check_packed(&ev);
    }
}

/* issued, bound, confirmed: the row the ledger holds. */
static void test_fold_life(void **state)
{
    (void)state;
    ledger_event ev;
    tlog_event_row row = {0};
    tlog_event_info info;
    char err[256];
    fill_issue(&ev);
    assert_int_equal(fold(&ev, &row, &info, err), 0);
    assert_int_equal(info.type, TLOG_EVENT_ISSUED);
    assert_string_equal(info.delivery, ID);
    assert_true(row.exists);
    assert_true(tlog_event_row_matches(&row, &ev.row, err, sizeof err));

    ev.kind = LEDGER_EVENT_BIND;
    bind_to(&ev, CLIENT_A);
    ev.row.status = LEDGER_BOUND;
    assert_int_equal(fold(&ev, &row, &info, err), 0);
    assert_true(tlog_event_row_matches(&row, &ev.row, err, sizeof err));

    /* A second binding is refused: the row is bound already. */
    tlog_event_row copy = row;
    assert_int_equal(fold(&ev, &copy, &info, err), -1);
    assert_non_null(strstr(err, "already bound"));

    ledger_event conf;
    fill_confirm(&conf, CLIENT_A, true);
    assert_int_equal(fold(&conf, &row, &info, err), 0);
    assert_int_equal(info.type, TLOG_EVENT_CONFIRMED);
    assert_true(tlog_event_row_matches(&row, &conf.row, err, sizeof err));

    /* A row that differs is named by its columns. */
    ledger_delivery edited = conf.row;
    snprintf(edited.path, sizeof edited.path, "/other.pdf");
    edited.received_size++;
    assert_false(tlog_event_row_matches(&row, &edited, err, sizeof err));
    assert_string_equal(err, "path, received_size");
    edited = conf.row;
    edited.kind = LEDGER_KIND_PAGE;
    edited.delivered_sha256[3] ^= 1;
    assert_false(tlog_event_row_matches(&row, &edited, err, sizeof err));
    assert_string_equal(err, "kind, delivered_sha256");
    edited = conf.row;
    snprintf(edited.receipt, sizeof edited.receipt, "eyJ.e30.other");
    assert_false(tlog_event_row_matches(&row, &edited, err, sizeof err));
    assert_string_equal(err, "receipt");
    edited.status = LEDGER_CORRUPTED;
    assert_false(tlog_event_row_matches(&row, &edited, err, sizeof err));

    /* Nothing follows a final event. */
    assert_int_equal(fold(&conf, &row, &info, err), -1);
    fill_issue(&ev);
    assert_int_equal(fold(&ev, &row, &info, err), -1);

    /* No events: no row. */
    tlog_event_row none = {0};
    assert_false(tlog_event_row_matches(&none, &conf.row, err, sizeof err));
}

/* A confirmation that carries another client's binding replaces it, as
 * the ledger does; a confirmation of a row the log never saw makes it. */
static void test_fold_confirm_rebinds(void **state)
{
    (void)state;
    ledger_event ev;
    tlog_event_row row = {0};
    tlog_event_info info;
    char err[256];
    fill_issue(&ev);
    ev.kind = LEDGER_EVENT_BIND;
    bind_to(&ev, CLIENT_A);
    ev.row.status = LEDGER_BOUND;
    assert_int_equal(fold(&ev, &row, &info, err), 0);
    ledger_event conf;
    fill_confirm(&conf, CLIENT_B, false);
    assert_int_equal(fold(&conf, &row, &info, err), 0);
    assert_int_equal(info.type, TLOG_EVENT_CORRUPTED);
    assert_string_equal(row.row.client, CLIENT_B);
    assert_true(tlog_event_row_matches(&row, &conf.row, err, sizeof err));

    tlog_event_row fresh = {0};
    assert_int_equal(fold(&conf, &fresh, &info, err), 0);
    assert_true(tlog_event_row_matches(&fresh, &conf.row, err, sizeof err));
}

static void test_log_key_and_existing(void **state)
{
    (void)state;
    char text[TLOG_EVENT_MAX + 1], err[256];
    tlog_event_info info;
    tlog_event_row row = {0};
    size_t n = tlog_event_log_key("a+01020304+AQ", "b+01020304+AQ", 5, text, sizeof text);
    assert_string_equal(text, "{\"key\":\"a+01020304+AQ\",\"previous\":\"b+01020304+AQ\","
                              "\"time_ms\":5,\"type\":\"log_key\",\"v\":1}");
    assert_int_equal(tlog_event_fold(text, n, &info, &row, err, sizeof err), 0);
    assert_int_equal(info.type, TLOG_EVENT_LOG_KEY);
    assert_string_equal(info.key, "a+01020304+AQ");
    assert_string_equal(info.previous, "b+01020304+AQ");
    assert_int_equal(info.time_ms, 5);
    assert_false(row.exists);

    ledger_event conf;
    fill_confirm(&conf, CLIENT_A, true);
    n = tlog_event_existing(&conf.row, text, sizeof text);
    assert_int_equal(tlog_event_fold(text, n, &info, &row, err, sizeof err), 0);
    assert_int_equal(info.type, TLOG_EVENT_EXISTING);
    assert_true(tlog_event_row_matches(&row, &conf.row, err, sizeof err));
    /* A second "existing" for the same delivery is refused. */
    assert_int_equal(tlog_event_fold(text, n, &info, &row, err, sizeof err), -1);
}

/* Texts that are not events: refused with a reason, the state unchanged. */
static void test_fold_refuses(void **state)
{
    (void)state;
    const char *bad[] = {
        "{\"type\": \"issued\"}",                                     /* not canonical */
        "{\"type\":\"issued\",\"v\":1}",                              /* columns missing */
        "{\"type\":\"shipped\",\"v\":1}",                             /* no such type */
        "{\"key\":\"k\",\"time_ms\":1,\"type\":\"log_key\",\"v\":2}", /* version */
        "{\"extra\":1,\"key\":\"k\",\"time_ms\":1,\"type\":\"log_key\",\"v\":1}",
        "[]",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tlog_event_info info;
        tlog_event_row row = {0};
        char err[256] = "";
        assert_int_equal(tlog_event_fold(bad[i], strlen(bad[i]), &info, &row, err, sizeof err), -1);
        assert_string_not_equal(err, "");
        assert_false(row.exists);
    }
    /* An event with a member its type does not have. */
    ledger_event ev;
    char text[TLOG_EVENT_MAX + 1], err[256];
    fill_issue(&ev);
    size_t n = tlog_event_text(&ev, text, sizeof text);
    memmove(text + 1 + 10, text + 1, n); /* {"aaaaa":1,... */
    memcpy(text + 1, "\"aaaaa\":1,", 10);
    tlog_event_info info;
    tlog_event_row row = {0};
    assert_int_equal(tlog_event_fold(text, n + 10, &info, &row, err, sizeof err), -1);
    assert_non_null(strstr(err, "members"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_is_canonical),    cmocka_unit_test(test_packed_forms),
        cmocka_unit_test(test_text_of_any_bytes),    cmocka_unit_test(test_fold_life),
        cmocka_unit_test(test_fold_confirm_rebinds), cmocka_unit_test(test_log_key_and_existing),
        cmocka_unit_test(test_fold_refuses),
    };
    return cmocka_run_group_tests_name("tlog_event", tests, NULL, NULL);
}
