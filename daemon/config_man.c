/*
 * config-man: prints the OPTIONS section of receiptd(8) from the option
 * table (config.h), or with "sample" the sample configuration file, for
 * scripts/update-man, which puts them into docs/receiptd.8 and
 * dist/receiptd.conf; scripts/check-tree fails when either is not current.
 */
#include "daemon/config.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "sample") == 0)
        config_print_sample(stdout);
    else
        config_print_man(stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}
