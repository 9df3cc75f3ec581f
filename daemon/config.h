/*
 * config: receiptd's options.
 *
 * One table in config.c declares every option: its name, the kind of value
 * it takes and where in struct config that goes, its limits, its default,
 * and its help for --help and for receiptd(8). Parsing the command line,
 * printing --help and writing the OPTIONS section of docs/receiptd.8 all
 * read that table, so adding an option is one entry there (and a member
 * here). config_set() sets one option by name from text: the command line
 * goes through it, and so can a configuration file of "name value" lines.
 *
 * Defaults are text in the table, set through the same parsers as given
 * values, so that what --help and the man page say is what the server does.
 * Strings in a config are its own (config_free() releases them).
 *
 * --config FILE reads the same names from a file, one "name value" a line;
 * the command line is applied after it, and an option it names replaces
 * the file's value (for a repeatable option, the file's whole list). The
 * sample configuration, dist/receiptd.conf, is printed from the table too
 * (config_print_sample()).
 */
#ifndef RECEIPT_DAEMON_CONFIG_H
#define RECEIPT_DAEMON_CONFIG_H

#include "common/compiler.h"
#include "daemon/log.h"
#include "daemon/proxy.h"
#include "daemon/upstream_url.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define CONFIG_HOSTPORT_MAX      300
#define CONFIG_URL_MAX           512
#define CONFIG_SERVER_ID_MAX     63
#define CONFIG_EXTRA_HEADERS_MAX 32
#define CONFIG_PATH_RULES_MAX    64  /* --track and --untrack together */
#define CONFIG_GLOB_MAX          255 /* bytes of one of their globs */
#define CONFIG_ERR_MAX           512
#define CONFIG_FILE_MAX          (64 * 1024) /* bytes of a --config file */
#define CONFIG_LINE_MAX          4096        /* bytes of one of its lines */
#define CONFIG_UPSTREAMS_MAX     32          /* --upstream and --upstream-for together */

typedef struct config_header {
    char *name;
    char *value;
} config_header;

/* One --track (track true) or --untrack glob, in the order given. */
typedef struct config_path_rule {
    bool track;
    char *glob;
} config_path_rule;

/* Requests whose path starts with prefix go to url ("/" for --upstream). */
typedef struct config_upstream {
    char *prefix;
    upstream_url url;
    bool catch_all; /* from --upstream, not --upstream-for */
} config_upstream;

/* A listening address as given and as resolved. */
typedef struct config_address {
    char text[CONFIG_HOSTPORT_MAX + 1]; /* "" when switched off */
    struct sockaddr_storage addr;
    socklen_t len;
} config_address;

typedef struct config {
    char *root; /* NULL: no content directory, upstreams only */
    char *state_dir;
    char *ledger_url;  /* NULL: STATE_DIR/ledger.sqlite */
    char *access_log;  /* NULL: none */
    char *config_file; /* --config; NULL: none */
    char *tls_cert;    /* PEM certificate and chain; NULL: plain HTTP */
    char *tls_key;
    char *admin_tls_cert; /* the admin listener's own pair; NULL: plain HTTP */
    char *admin_tls_key;
    config_address redirect_http; /* text "" when off */
    proxy_set trusted_proxies;
    config_address listen;
    config_address admin_listen;         /* text "" with --admin-listen off */
    bool admin_explicit;                 /* given, not defaulted: failing to bind it is fatal */
    char public_url[CONFIG_URL_MAX + 1]; /* no trailing slash */
    char server_id[CONFIG_SERVER_ID_MAX + 1]; /* the site: the same on every node */
    char node_id[CONFIG_SERVER_ID_MAX + 1];   /* this node of the site */
    uint64_t ticket_ttl_s;
    bool inject;
    bool track_subresources; /* every 200 is a delivery, as before fetch metadata */
    config_path_rule path_rules[CONFIG_PATH_RULES_MAX];
    size_t path_rule_count;
    bool evidence_log; /* keep the evidence log (tlog.h) */
    bool check_only;
    bool check_quick; /* --check-config: --check without the ledger's full integrity check */
    log_level level;
    unsigned threads;
    unsigned max_connections;
    unsigned per_ip_connections; /* 0: no per-address limit */
    unsigned idle_timeout_s;
    unsigned header_timeout_s;
    unsigned min_body_rate; /* bytes per second; 0: none */
    size_t connection_memory;
    size_t queue_capacity;
    size_t batch_max;
    size_t cache_bytes;
    unsigned shutdown_grace_s;
    config_header headers[CONFIG_EXTRA_HEADERS_MAX];
    size_t header_count;
    config_upstream upstreams[CONFIG_UPSTREAMS_MAX]; /* in the order given */
    size_t upstream_count;
    char *upstream_host; /* NULL: the client's Host; "upstream": each upstream's own */
    char *upstream_ca;   /* NULL: the system's certificate authorities */
    unsigned upstream_timeout_s;
    size_t proxy_buffer;     /* bytes of a tracked body kept in memory */
    uint64_t proxy_max_body; /* bytes of a body passed through at most, either way */
    char *temp_dir;
    uint64_t given; /* bit i: option i of the table was set (not defaulted) */
} config;

typedef enum config_result {
    CONFIG_OK = 0,
    CONFIG_EXIT_OK, /* --help or --version printed: exit 0 */
    CONFIG_USAGE,   /* err says what is wrong: exit 2      */
} config_result;

/*
 * Fills cfg with the defaults, then the options of the --config file if
 * argv names one, then the options of argv (--NAME VALUE or --NAME=VALUE),
 * then what is derived from them (the public URL, the server ID), and
 * checks that nothing required is missing and that the options agree. On
 * CONFIG_USAGE err names the first problem (FILE:LINE: for one in the
 * file); cfg is to be freed whatever the result.
 */
WARN_UNUSED_RESULT config_result config_parse(config *cfg, int argc, char **argv, char *err,
                                              size_t errlen);

/*
 * Sets the option called name (without dashes) from value (NULL for an
 * option that takes none), as a line "name value" of a configuration file
 * would. Options of the command line alone (help, version) are refused.
 * Returns 0, or -1 with err naming the option and the problem.
 */
WARN_UNUSED_RESULT int config_set(config *cfg, const char *name, const char *value, char *err,
                                  size_t errlen);

/*
 * What is valid but will not work as an operator expects, one sentence
 * each, for the log at start and for --check: a public URL of plain http on
 * a host that is not loopback (browsers run the agent, and send fetch
 * metadata, only on https and loopback origins), and a listener on an
 * address that is not loopback without --public-url (plug-in data and
 * receipts then name an address that other hosts may not reach). Fills up
 * to max lines of out and returns how many.
 */
#define CONFIG_WARNINGS_MAX 4
#define CONFIG_WARNING_LEN  1536
size_t config_warnings(const config *cfg, char out[][CONFIG_WARNING_LEN], size_t max);

/* Releases what the config owns. NULL-safe. */
void config_free(config *cfg);

/* The text of --help. */
void config_print_help(FILE *f);

/* The OPTIONS section of receiptd(8), in roff, from the same table. */
void config_print_man(FILE *f);

/* A configuration file with every option commented out at its default
 * (dist/receiptd.conf), from the same table. */
void config_print_sample(FILE *f);

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" into an address. */
int config_parse_hostport(const char *text, struct sockaddr_storage *addr, socklen_t *len,
                          char *err, size_t errlen);

#endif
