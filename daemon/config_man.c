/*
 * config-man: prints the OPTIONS section of receiptd(8) from the option
 * table (config.h), for scripts/update-man, which puts it into
 * docs/receiptd.8; scripts/check-tree fails when the page is not current.
 */
#include "daemon/config.h"

#include <stdio.h>

int main(void)
{
    config_print_man(stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}
