#include "daemon/report.h"

#include "daemon/export.h"
#include "daemon/ledger.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_ERR_MAX  512
#define REPORT_CELL_MAX (LEDGER_PATH_MAX * 4 + 1) /* a path with every byte as \xHH */

static const char report_usage[] =
    "usage: receiptd report [--state-dir DIR | --ledger URL] [--format table|csv|json]\n"
    "                       [--content PATH] [--client ID] [--status S] [--kind K]\n"
    "                       [--since TIME] [--until TIME]\n"
    "\n"
    "Prints the deliveries in the ledger, newest first, read directly from the\n"
    "ledger (no running server needed; safe while one runs).\n"
    "\n"
    "  --state-dir DIR   the server's state directory; reads DIR/ledger.sqlite\n"
    "                    (default /var/lib/receiptd)\n"
    "  --ledger URL      the ledger to read instead: sqlite:PATH, or PostgreSQL\n"
    "                    (postgresql://USER@HOST/DB or a key=value string)\n"
    "  --format FORMAT   table (default), csv (RFC 4180, a header line first) or\n"
    "                    json (one array of the items of GET /api/deliveries)\n"
    "  --content PATH    only deliveries of this content path\n"
    "  --client ID       only deliveries bound to or confirmed by this client\n"
    "  --status S        issued, bound, confirmed, corrupted or pending (issued or\n"
    "                    bound); several joined with commas\n"
    "  --kind K          page, download, view, device or tracked; several joined\n"
    "                    with commas\n"
    "  --since TIME      issued at or after TIME\n"
    "  --until TIME      issued before TIME\n"
    "                    TIME: Unix milliseconds, YYYY-MM-DD (UTC) or RFC 3339\n"
    "                    (2025-11-25T19:46:40Z, 2025-11-25T20:46:40+01:00)\n"
    "  --help            this text\n"
    "\n"
    "Exit status: 0 done, 1 the ledger cannot be read, 2 a usage error.\n";

typedef enum report_format { FORMAT_TABLE, FORMAT_CSV, FORMAT_JSON } report_format;

enum {
    OPT_STATE_DIR = 256,
    OPT_LEDGER,
    OPT_FORMAT,
    OPT_CONTENT,
    OPT_CLIENT,
    OPT_STATUS,
    OPT_KIND,
    OPT_SINCE,
    OPT_UNTIL,
    OPT_HELP,
};

static const struct option report_options[] = {
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"ledger", required_argument, NULL, OPT_LEDGER},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"content", required_argument, NULL, OPT_CONTENT},
    {"client", required_argument, NULL, OPT_CLIENT},
    {"status", required_argument, NULL, OPT_STATUS},
    {"kind", required_argument, NULL, OPT_KIND},
    {"since", required_argument, NULL, OPT_SINCE},
    {"until", required_argument, NULL, OPT_UNTIL},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* A table cell: control characters and DEL as \xHH, so that a hostile path
 * can neither break the layout nor send escape sequences to a terminal. */
static void table_cell(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && len + 5 <= cap; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\') {
            out[len++] = '\\';
            out[len++] = 'x';
            out[len++] = hex[*p >> 4];
            out[len++] = hex[*p & 15];
        } else {
            out[len++] = (char)*p;
        }
    }
    out[len] = '\0';
}

typedef struct counts {
    unsigned long long rows, confirmed, corrupted, pending;
} counts;

typedef struct totals {
    unsigned long long rows;
    counts all;
    counts kind[LEDGER_KIND_COUNT];
} totals;

static void count(counts *c, ledger_status status)
{
    c->rows++;
    if (status == LEDGER_CONFIRMED)
        c->confirmed++;
    else if (status == LEDGER_CORRUPTED)
        c->corrupted++;
    else
        c->pending++;
}

/* The table's last lines: the totals, and each kind with its rate. */
static void print_totals(const totals *t)
{
    const counts *a = &t->all;
    printf("\n%llu deliveries: %llu confirmed, %llu corrupted, %llu pending\n", a->rows,
           a->confirmed, a->corrupted, a->pending);
    for (size_t k = 0; k < LEDGER_KIND_COUNT; k++) {
        const counts *c = &t->kind[k];
        if (c->rows == 0)
            continue;
        printf("  %-9s %llu: %llu confirmed, %llu corrupted, %llu pending (%.1f %% confirmed)\n",
               ledger_kind_name((ledger_kind)k), c->rows, c->confirmed, c->corrupted, c->pending,
               100.0 * (double)(c->confirmed + c->corrupted) / (double)c->rows);
    }
}

static void print_table_row(const ledger_delivery *d, totals *t)
{
    char issued[EXPORT_TIME_MAX];
    char confirmed[EXPORT_TIME_MAX] = "-";
    char path[REPORT_CELL_MAX];
    export_format_time(d->issued_ms, issued);
    if (d->confirmed_ms != 0)
        export_format_time(d->confirmed_ms, confirmed);
    table_cell(d->path, path, sizeof path);
    printf("%-36s  %-9s  %-8s  %-24s  %-24s  %-43s  %s\n", d->id, ledger_status_name(d->status),
           ledger_kind_name(d->kind), issued, confirmed, d->client[0] != '\0' ? d->client : "-",
           path);
    t->rows++;
    count(&t->all, d->status);
    if ((size_t)d->kind < LEDGER_KIND_COUNT)
        count(&t->kind[d->kind], d->status);
}

static int print_rows(ledger *lg, const ledger_filter *f, report_format format)
{
    char *text = malloc(EXPORT_ITEM_MAX);
    ledger_delivery *row = malloc(sizeof *row);
    ledger_cursor *cur = NULL;
    totals t = {0};
    int rc = -1;
    if (text == NULL || row == NULL) {
        fprintf(stderr, "receiptd report: out of memory\n");
        goto out;
    }
    cur = ledger_query(lg, f);
    if (cur == NULL) {
        fprintf(stderr, "receiptd report: %s\n", ledger_error(lg));
        goto out;
    }
    if (format == FORMAT_CSV)
        fputs(export_csv_header, stdout);
    else if (format == FORMAT_JSON)
        fputs("[", stdout);
    else
        printf("%-36s  %-9s  %-8s  %-24s  %-24s  %-43s  %s\n", "DELIVERY", "STATUS", "KIND",
               "ISSUED", "CONFIRMED", "CLIENT", "CONTENT");

    while ((rc = ledger_cursor_next(cur, row)) == 1) {
        jbuf b;
        jbuf_init(&b, text, EXPORT_ITEM_MAX);
        if (format == FORMAT_TABLE) {
            print_table_row(row, &t);
            continue;
        }
        if (format == FORMAT_CSV) {
            export_item_csv(&b, row);
        } else {
            jbuf_adds(&b, t.rows > 0 ? ",\n" : "\n");
            export_item_json(&b, row, false);
        }
        if (b.failed) {
            fprintf(stderr, "receiptd report: row %s is too large to print\n", row->id);
            rc = -1;
            break;
        }
        fwrite(b.data, 1, b.len, stdout);
        t.rows++;
    }
    if (rc < 0) {
        if (ledger_error(lg)[0] != '\0')
            fprintf(stderr, "receiptd report: %s\n", ledger_error(lg));
        goto out;
    }
    if (format == FORMAT_JSON)
        fputs(t.rows > 0 ? "\n]\n" : "]\n", stdout);
    else if (format == FORMAT_TABLE)
        print_totals(&t);
    rc = 0;
out:
    ledger_cursor_free(cur);
    free(row);
    free(text);
    return rc;
}

int report_main(int argc, char **argv)
{
    const char *state_dir = "/var/lib/receiptd";
    const char *ledger_url = NULL;
    export_filter_text ft = {0};
    report_format format = FORMAT_TABLE;
    char err[REPORT_ERR_MAX];
    ledger_filter f;
    int opt;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", report_options, NULL)) != -1) {
        switch (opt) {
        case OPT_STATE_DIR:
            state_dir = optarg;
            break;
        case OPT_LEDGER:
            ledger_url = optarg;
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "table") == 0) {
                format = FORMAT_TABLE;
            } else if (strcmp(optarg, "csv") == 0) {
                format = FORMAT_CSV;
            } else if (strcmp(optarg, "json") == 0) {
                format = FORMAT_JSON;
            } else {
                fprintf(stderr, "receiptd report: --format '%s': use table, csv or json\n", optarg);
                return 2;
            }
            break;
        case OPT_CONTENT:
            ft.content = optarg;
            break;
        case OPT_CLIENT:
            ft.client = optarg;
            break;
        case OPT_STATUS:
            ft.status = optarg;
            break;
        case OPT_KIND:
            ft.kind = optarg;
            break;
        case OPT_SINCE:
            ft.since = optarg;
            break;
        case OPT_UNTIL:
            ft.until = optarg;
            break;
        case OPT_HELP:
            fputs(report_usage, stdout);
            return 0;
        case '?':
        default:
            fprintf(stderr, "receiptd report: option '%s' needs a value or is unknown\n",
                    argv[optind - 1]);
            fputs("Try 'receiptd report --help'.\n", stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "receiptd report: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (export_filter_parse(&f, &ft, err, sizeof err) != 0) {
        fprintf(stderr, "receiptd report: --%s\n", err);
        return 2;
    }

    ledger *lg = ledger_open(ledger_url, state_dir, true, err, sizeof err);
    if (lg == NULL) {
        fprintf(stderr, "receiptd report: %s\n", err);
        return 1;
    }
    int rc = print_rows(lg, &f, format);
    ledger_close(lg);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "receiptd report: cannot write the output\n");
        return 1;
    }
    return rc == 0 ? 0 : 1;
}
