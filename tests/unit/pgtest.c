#include "pgtest.h"

#include <libpq-fe.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *pgtest_unavailable(void)
{
    const char *url = getenv("RECEIPT_TEST_PG");
    if (url == NULL || url[0] == '\0' || getenv("RECEIPT_TEST_PG_HOST") == NULL ||
        getenv("RECEIPT_TEST_PG_PORT") == NULL)
        return "no PostgreSQL server for the tests: run under tests/with-postgres "
               "(make check does)";
    return NULL;
}

static PGconn *connect_db(const char *name)
{
    char conninfo[PGTEST_URL_MAX];
    snprintf(conninfo, sizeof conninfo, "host=%s port=%s user=receipt dbname=%s",
             getenv("RECEIPT_TEST_PG_HOST"), getenv("RECEIPT_TEST_PG_PORT"), name);
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pgtest: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

int pgtest_exec(const char *name, const char *sql, char *out, size_t cap)
{
    PGconn *c = connect_db(name);
    int rc = -1;
    if (c == NULL)
        return -1;
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "pgtest: %s: %s", sql, PQresultErrorMessage(res));
        goto out;
    }
    if (out != NULL && cap > 0) {
        out[0] = '\0';
        if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0)
            snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
    }
    rc = 0;
out:
    PQclear(res);
    PQfinish(c);
    return rc;
}

int pgtest_create(char *name, char *url, bool keyvalue)
{
    static atomic_uint counter;
    char sql[PGTEST_NAME_MAX + 64];
    if (pgtest_unavailable() != NULL)
        return -1;
    snprintf(name, PGTEST_NAME_MAX, "unit_%ld_%u", (long)getpid(), atomic_fetch_add(&counter, 1));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (pgtest_exec("postgres", sql, NULL, 0) != 0)
        return -1;
    if (keyvalue)
        snprintf(url, PGTEST_URL_MAX, "host=%s port=%s user=receipt dbname=%s",
                 getenv("RECEIPT_TEST_PG_HOST"), getenv("RECEIPT_TEST_PG_PORT"), name);
    else
        snprintf(url, PGTEST_URL_MAX, "postgresql://receipt@/%s?host=%s&port=%s", name,
                 getenv("RECEIPT_TEST_PG_HOST"), getenv("RECEIPT_TEST_PG_PORT"));
    return 0;
}

int pgtest_drop(const char *name)
{
    char sql[PGTEST_NAME_MAX + 64];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    return pgtest_exec("postgres", sql, NULL, 0);
}
