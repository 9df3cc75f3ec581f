/* The proof in a confirmation's answer (evidence_proof_json()). */
#include "daemon/evidence.h"
#include "daemon/jbuf.h"
#include "daemon/ledger.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static ledger_proof *proof_of(const char *event)
{
    ledger_proof *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->present = true;
    p->index = 7;
    p->size = 9;
    memset(p->salt, 0xa5, sizeof p->salt);
    p->hash_count = 2;
    memset(p->hashes[0], 1, LEDGER_HASH_LEN);
    memset(p->hashes[1], 2, LEDGER_HASH_LEN);
    snprintf(p->event, sizeof p->event, "%s", event);
    snprintf(p->checkpoint, sizeof p->checkpoint, "example.com/_receipt/log\n9\nroot\n\n— sig\n");
    return p;
}

/* The answer's text for event, and what the general string rule makes of
 * the same event, which it must equal byte for byte. */
static void check_event(const char *event)
{
    ledger_proof *p = proof_of(event);
    char mem[16384], want_mem[16384];
    jbuf b, want;
    jbuf_init(&b, mem, sizeof mem);
    evidence_proof_json(&b, p);
    assert_false(b.failed);

    jbuf_init(&want, want_mem, sizeof want_mem);
    jbuf_adds(&want, "{");
    jbuf_member_str(&want, "event", p->event);
    assert_false(want.failed);
    /* `"event":"..."` as the general rule writes it, inside the answer. */
    assert_non_null(strstr(b.data, want.data + 1));

    json_error_t err;
    json_t *doc = json_loads(b.data, 0, &err);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "index")), 7);
    json_t *leaf = json_object_get(doc, "leaf");
    assert_non_null(leaf);
    assert_string_equal(json_string_value(json_object_get(leaf, "salt")),
                        "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU");
    assert_int_equal(json_array_size(json_object_get(doc, "hashes")), 2);
    assert_string_equal(json_string_value(json_object_get(doc, "checkpoint")), p->checkpoint);
    json_decref(doc);
    free(p);
}

/* A canonical event text: quotes, a backslash escape, non-ASCII UTF-8. */
static void test_canonical_event(void **state)
{
    (void)state;
    check_event("{\"delivery\":\"01a2346f-c96c-7000-8640-4678544eb0dc\",\"path\":\"/caf\xc3\xa9 "
                "\\\"x\\\"\",\"size\":971,\"type\":\"issued\",\"user_agent\":\"a\\\\b \\u001f\","
                "\"v\":1}");
    check_event("");
    check_event("\"\\\"\\\\");
}

/* Text no event has (a raw control character, DEL, bytes that are not
 * UTF-8) is written by the general rule all the same. */
static void test_other_text(void **state)
{
    (void)state;
    check_event("{\"a\":\"tab\there\"}");
    check_event("{\"a\":\"del\x7f\"}");
    check_event("{\"a\":\"bad \xff\xfe utf-8\"}");
    check_event("\n");
}

/* The longest event text fits. */
static void test_longest_event(void **state)
{
    (void)state;
    char *text = malloc(LEDGER_EVENT_TEXT_MAX + 1);
    assert_non_null(text);
    for (size_t i = 0; i < LEDGER_EVENT_TEXT_MAX; i++)
        text[i] = i % 3 == 0 ? '"' : 'x';
    text[LEDGER_EVENT_TEXT_MAX] = '\0';
    check_event(text);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_event),
        cmocka_unit_test(test_other_text),
        cmocka_unit_test(test_longest_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
