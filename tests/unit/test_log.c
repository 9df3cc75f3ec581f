/* log: below the level, a message costs one comparison: its arguments are
 * not even evaluated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int evaluated;

static const char *costly(void)
{
    evaluated++;
    return "value";
}

static void test_level_first(void **state)
{
    (void)state;
    /* Keep the test's output clean: the lines that are written go nowhere. */
    FILE *null = freopen("/dev/null", "w", stderr);
    assert_non_null(null);

    log_set_level(LOG_LEVEL_WARN);
    evaluated = 0;
    log_debug("%s", costly());
    log_info("%s", costly());
    assert_int_equal(evaluated, 0);
    log_warn("%s", costly());
    log_error("%s", costly());
    assert_int_equal(evaluated, 2);

    log_set_level(LOG_LEVEL_DEBUG);
    log_debug("%s", costly());
    assert_int_equal(evaluated, 3);
    assert_int_equal(log_get_level(), LOG_LEVEL_DEBUG);

    /* An if without braces stays one statement. */
    if (evaluated == 0)
        log_error("%s", costly());
    else
        evaluated = 10;
    assert_int_equal(evaluated, 10);
}

static void test_level_names(void **state)
{
    (void)state;
    log_level l;
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("loud", &l), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_first),
        cmocka_unit_test(test_level_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
