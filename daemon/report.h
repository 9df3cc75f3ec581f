/*
 * report: `receiptd report`, the ledger's deliveries on standard output as a
 * table, CSV or JSON, read directly from the ledger (read-only; no running
 * server needed). main() hands it argv when the first argument is
 * "report". The items are those of the admin API (docs/api.md).
 */
#ifndef RECEIPT_DAEMON_REPORT_H
#define RECEIPT_DAEMON_REPORT_H

/* Returns the exit status: 0, 1 when the ledger cannot be read, 2 for usage. */
int report_main(int argc, char **argv);

#endif
