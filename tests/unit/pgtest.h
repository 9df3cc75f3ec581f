/*
 * pgtest: databases of their own for the unit tests that run against
 * PostgreSQL, on the server tests/with-postgres starts (RECEIPT_TEST_PG).
 */
#ifndef RECEIPT_TESTS_PGTEST_H
#define RECEIPT_TESTS_PGTEST_H

#include <stdbool.h>
#include <stddef.h>

#define PGTEST_URL_MAX  512
#define PGTEST_NAME_MAX 64

/* Why PostgreSQL tests cannot run here, or NULL when they can. */
const char *pgtest_unavailable(void);

/*
 * Makes an empty database with a fresh name; its name goes to name
 * (PGTEST_NAME_MAX) and a connection string for it to url (PGTEST_URL_MAX),
 * as a postgresql:// URL or, with keyvalue, as a key/value string.
 * Returns 0 or -1.
 */
int pgtest_create(char *name, char *url, bool keyvalue);

/* Drops it (closing whatever is still connected); returns 0 or -1. */
int pgtest_drop(const char *name);

/*
 * Runs sql on the database name and copies the first value of the first
 * row, as text, into out (may be NULL). Returns 0 or -1 (message on stderr).
 */
int pgtest_exec(const char *name, const char *sql, char *out, size_t cap);

#endif
